"""Neighbourhood kernels evaluated on squared grid distances, and their action on
per-unit statistics.

Every kernel maps a squared grid distance ``d2`` and a width ``sigma > 0`` to a
weight; the best-matching unit itself (``d2 = 0``) always gets weight 1:

* ``gaussian``: ``exp(-d2 / (2 sigma^2))``;
* ``bubble``: ``1`` where ``d <= sigma``, else ``0``;
* ``mexican_hat``: ``(1 - d2 / sigma^2) exp(-d2 / (2 sigma^2))`` (negative
  beyond ``sigma``: units there are pushed away);
* ``triangle``: ``max(0, 1 - d / sigma)``.

The kernels depend on grid distance only, so they are correct on hexagonal and
toroidal maps as long as the distances are (see ``_topology``). They never form
``sigma ** 2``, which overflows or underflows for extreme widths: any
``sigma > 0`` gives finite weights (all ones for a huge ``sigma``, the identity
for a tiny one).

:func:`_smooth` applies the (n_units, n_units) neighbourhood matrix to per-unit
statistics without forming it, in O(n_units x kernel support) operations. Both
lattices have Cartesian unit positions whose horizontal offset depends only on
the row parity, so every kernel splits into 1-D filters along rows and columns:

* the Gaussian is separable, ``g(dx) g(dy)``, and the Mexican hat is the sum of
  two separable terms, ``a(dx) g(dy) - g(dx) b(dy)`` with ``a(t) = (1 - t^2 /
  sigma^2) g(t)`` and ``b(t) = t^2 / sigma^2 g(t)``: a column filter then a row
  filter per term;
* the bubble and the triangle are not separable: for each row offset within
  the kernel's radius, a column filter whose weights depend on that offset.

On a hexagonal grid the column filters between rows of different parity are
shifted by half a unit. Filter weights of magnitude below ``_TRUNCATION``
(1e-16; every kernel, and every 1-D factor, is at most 1) are dropped, so a
filter's support is finite, and each 1-D filter is applied as a dense matrix
product, or by dense blocks along its band when the band is narrow.
"""

import numpy as np

from somgen._topology import (
    _check_grid,
    _column_offsets,
    _row_classes,
    _row_offsets,
)

NEIGHBORHOODS = ("gaussian", "bubble", "mexican_hat", "triangle")

# Filter weights below this magnitude are dropped (the kernels peak at 1).
_TRUNCATION = 1e-16
# d2 / sigma^2 is capped here: exp(-_RATIO_CAP / 2) is exactly 0, so no weight
# changes, but an infinite ratio can no longer meet a zero (inf * 0 = NaN).
_RATIO_CAP = 2000.0
# Filters along an axis this short, or with a band at least half as wide as the
# axis, are applied as one dense matrix product.
_DENSE_AXIS = 64
# Target rows per dense block of a banded filter.
_BAND_BLOCK = 64
# Constant filters at least this wide go through prefix sums.
_BOX_MIN_TAPS = 32


def _check_kind(kind):
    if kind not in NEIGHBORHOODS:
        raise ValueError(
            f"Unknown neighborhood {kind!r}; expected one of {NEIGHBORHOODS}."
        )


def _significant(weights):
    """Mask of the weights that a filter keeps (magnitude >= ``_TRUNCATION``)."""
    return np.abs(weights) >= _TRUNCATION


def _scaled_sq(sq_dist, sigma):
    """``sq_dist / sigma^2``, capped at ``_RATIO_CAP``, without forming
    ``sigma^2`` (which overflows for ``sigma > 1e154`` and underflows for
    ``sigma < 1e-162``)."""
    with np.errstate(over="ignore", under="ignore"):
        ratio = np.asarray(sq_dist, dtype=np.float64) / sigma / sigma
    return np.minimum(ratio, _RATIO_CAP)


def _neighborhood_weights(sq_dist, sigma, kind):
    """Kernel weights for squared grid distances.

    Parameters
    ----------
    sq_dist : ndarray
        Squared grid distances, any shape.
    sigma : float
        Kernel width, strictly positive; any positive float64 is safe.
    kind : {"gaussian", "bubble", "mexican_hat", "triangle"}

    Returns
    -------
    weights : ndarray of the same shape as ``sq_dist``, float64
    """
    _check_kind(kind)
    sq_dist = np.asarray(sq_dist, dtype=np.float64)
    sigma = float(sigma)
    if kind == "triangle":
        with np.errstate(over="ignore"):
            return np.maximum(0.0, 1.0 - np.sqrt(sq_dist) / sigma)
    ratio = _scaled_sq(sq_dist, sigma)
    if kind == "gaussian":
        return np.exp(-0.5 * ratio)
    if kind == "bubble":
        return (ratio <= 1.0 + 1e-12).astype(np.float64)
    return (1.0 - ratio) * np.exp(-0.5 * ratio)  # mexican_hat


def _gaussian_moment(sq_dist, sigma):
    """``t^2 / sigma^2 exp(-t^2 / (2 sigma^2))`` for ``t^2 = sq_dist``: the
    factor ``b`` of the Mexican hat's second separable term."""
    ratio = _scaled_sq(sq_dist, sigma)
    return ratio * np.exp(-0.5 * ratio)


def _only_self(sigma, kind):
    """Whether every unit but the best-matching one gets a weight below
    ``_TRUNCATION`` (then the neighbourhood matrix is the identity).

    Distinct units of any grid are at least 1 apart. The Gaussian, the bubble
    and the triangle decrease with the distance; the Mexican hat's magnitude
    decreases beyond ``sqrt(3) sigma``.
    """
    if kind == "mexican_hat" and sigma > 1.0 / np.sqrt(3.0):
        return False
    return not _significant(_neighborhood_weights(1.0, sigma, kind))


def _add_filtered_rows(out, B, offsets, weights, periodic):
    """Add a 1-D translation-invariant filter of the rows of ``B`` to ``out``.

    ``out[i] += sum_k weights[k] * B[i - offsets[k]]``, over the source rows
    inside ``[0, n_in)`` (planar) or with indices modulo ``n_in`` (periodic).

    Parameters
    ----------
    out : ndarray of shape (n_out, width), float64
        Updated in place; may be a strided view with contiguous rows.
    B : ndarray of shape (n_in, width)
        May be a strided view with contiguous rows.
    offsets : ndarray of shape (n_taps,), int
        Target minus source row; distinct (modulo ``n_in`` if periodic).
    weights : ndarray of shape (n_taps,)
        Taps of magnitude below ``_TRUNCATION`` are dropped.
    periodic : bool
        If True, ``n_out`` must equal ``n_in``.
    """
    n_in, width = B.shape
    n_out = out.shape[0]
    keep = _significant(weights)
    offsets, weights = offsets[keep], weights[keep]
    if offsets.size == 0 or width == 0 or n_out == 0:
        return
    half = n_in // 2
    if periodic:  # shortest representative of each residue: a compact band
        offsets = (offsets + half) % n_in - half
    lo, hi = int(offsets.min()), int(offsets.max())
    band = hi - lo + 1
    if band >= _BOX_MIN_TAPS and offsets.size == band and np.all(weights == weights[0]):
        # A box filter (the bubble's column filters): prefix sums make it
        # O(n_out x width) whatever the band.
        _add_box_filtered_rows(out, B, lo, hi, weights[0], periodic)
        return
    table = np.zeros(band)
    table[offsets - lo] = weights

    def toeplitz(d):
        inside = (d >= lo) & (d <= hi)
        return np.where(inside, table[np.clip(d - lo, 0, band - 1)], 0.0)

    if n_in <= _DENSE_AXIS or 2 * band >= n_in:
        d = np.arange(n_out)[:, None] - np.arange(n_in)
        if periodic:
            d = (d + half) % n_in - half
        out += toeplitz(d) @ B
        return
    # Dense blocks along the band: target rows [i0, i0 + _BAND_BLOCK) read the
    # source rows [i0 - hi, i0 + _BAND_BLOCK - lo), always through the same
    # Toeplitz block; on a periodic axis that range wraps into up to three
    # contiguous pieces of B.
    size = _BAND_BLOCK
    kernel = toeplitz(np.arange(size)[:, None] - np.arange(size + band - 1) + hi)
    for i0 in range(0, n_out, size):
        i1 = min(i0 + size, n_out)
        j0, j1 = i0 - hi, i1 - lo
        if not periodic:
            j0, j1 = max(j0, 0), min(j1, n_in)
        j = j0
        while j < j1:
            base = (j // n_in) * n_in
            end = min(j1, base + n_in)
            block = kernel[: i1 - i0, j - (i0 - hi) : end - (i0 - hi)]
            out[i0:i1] += block @ B[j - base : end - base]
            j = end


def _add_box_filtered_rows(out, B, lo, hi, weight, periodic):
    """``out[i] += weight * sum_{d=lo..hi} B[i - d]`` by prefix sums.

    Planar: source rows outside ``[0, n_in)`` are skipped. Periodic: indices are
    taken modulo ``n_in`` (``hi - lo < n_in``). The rounding error is a few
    ``eps`` times the sum of ``|B|`` over the axis, against a window sum of at
    least ``_BOX_MIN_TAPS`` rows.
    """
    n_in = B.shape[0]
    prefix = np.zeros((n_in + 1, B.shape[1]))
    np.cumsum(B, axis=0, out=prefix[1:])
    i = np.arange(out.shape[0])
    if periodic:
        first, last = (i - hi) % n_in, (i - lo) % n_in
        window = prefix[last + 1] - prefix[first]
        wrapped = first > last
        window[wrapped] += prefix[n_in]
    else:
        first = np.clip(i - hi, 0, n_in)
        last = np.clip(i - lo + 1, 0, n_in)
        window = prefix[last] - prefix[first]
    window *= weight
    out += window


def _smooth(values, *, n_rows, n_cols, topology, periodic, sigma, kind):
    """Neighbourhood-weighted sums ``H @ values`` without forming ``H``.

    ``H[k, j] = _neighborhood_weights(d2(k, j), sigma, kind)`` where ``d2`` is
    the squared grid distance of ``_topology._pairwise_grid_sq_distances``.
    The cost is O(n_units x kernel support x m) operations and O(n_units x m)
    memory: separable filters for the Gaussian and the Mexican hat, one column
    filter per row offset within the radius for the bubble and the triangle.
    Weights below ``_TRUNCATION`` (1e-16, the kernels being 1 at distance 0) are
    dropped; otherwise the result equals the dense product up to rounding, a few
    1e-15 relative to ``|H| @ |values|`` (to the Gaussian envelope for the
    Mexican hat, whose two separable terms cancel near ``d = sigma``). When no
    other unit is within the support (a tiny ``sigma``), ``H`` is the identity
    and ``values`` is returned as a float64 copy.

    Parameters
    ----------
    values : ndarray of shape (n_units,) or (n_units, m)
        Per-unit statistics, units row-major (``k = row * n_cols + col``).
    n_rows, n_cols : int
        Grid shape.
    topology : {"rectangular", "hexagonal"}
    periodic : bool
    sigma : float
        Kernel width, any positive float64.
    kind : {"gaussian", "bubble", "mexican_hat", "triangle"}

    Returns
    -------
    smoothed : ndarray of the same shape as ``values``, float64

    Raises
    ------
    ValueError
        For an unknown kind, a non-positive ``sigma``, a number of rows of
        ``values`` other than ``n_rows * n_cols``, or a grid rejected by
        ``_topology._check_grid``.

    Examples
    --------
    >>> import numpy as np
    >>> from somgen._neighborhood import _smooth
    >>> impulse = np.array([0.0, 0.0, 1.0, 0.0, 0.0])  # a 1x5 map, unit 2
    >>> grid = dict(n_rows=1, n_cols=5, topology="rectangular", periodic=False)
    >>> _smooth(impulse, sigma=2.0, kind="triangle", **grid)
    array([0. , 0.5, 1. , 0.5, 0. ])
    >>> _smooth(np.ones(5), sigma=1.0, kind="bubble", **grid)
    array([2., 3., 3., 3., 2.])
    """
    _check_kind(kind)
    _check_grid(n_rows, n_cols, topology, periodic)
    values = np.asarray(values, dtype=np.float64)
    n_units = n_rows * n_cols
    if values.shape[0] != n_units:
        raise ValueError(
            f"values has {values.shape[0]} rows, but a {n_rows}x{n_cols} grid has "
            f"{n_units} units."
        )
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; got {sigma!r}.")
    sigma = float(sigma)
    if values.size == 0 or _only_self(sigma, kind):
        return values.copy()

    # Layout: (n_cols, n_rows, m), the rows grouped by class (even rows, then odd
    # rows on a hexagonal grid): every class is a contiguous block of rows, and a
    # column filter is one matrix product on a (n_cols, rows * m) view.
    m = values.size // n_units
    classes = _row_classes(n_rows, topology)
    step = 1 if topology == "rectangular" else 2
    order = np.concatenate([np.arange(p, n_rows, step) for p, _ in classes])
    grid = values.reshape(n_rows, n_cols, m)[order].transpose(1, 0, 2)
    grid = np.ascontiguousarray(grid)
    geometry = dict(n_rows=n_rows, n_cols=n_cols, topology=topology, periodic=periodic)
    if kind in ("gaussian", "mexican_hat"):
        out = _smooth_separable(grid, classes, sigma, kind, **geometry)
    else:
        out = _smooth_by_row_offsets(grid, classes, sigma, kind, **geometry)
    smoothed = np.empty((n_rows, n_cols, m))
    smoothed[order] = out
    return smoothed.reshape(values.shape)


def _class_rows(classes):
    """Slices of the class-ordered rows held by each row class."""
    bounds = np.cumsum([0] + [n for _, n in classes])
    return {p: slice(bounds[i], bounds[i + 1]) for i, (p, _) in enumerate(classes)}


def _smooth_separable(
    grid, classes, sigma, kind, *, n_rows, n_cols, topology, periodic
):
    """``H @ values`` for the Gaussian and the Mexican hat: per pair of row
    classes and per separable term, a column filter then a row filter.

    ``grid`` is the (n_cols, n_rows, m) class-ordered layout of :func:`_smooth`;
    returns the result as (n_rows, n_cols, m), class-ordered.
    """
    m = grid.shape[2]
    rows = _class_rows(classes)
    out = np.zeros((n_rows, n_cols, m))
    for target, n_target in classes:
        for source, n_source in classes:
            col_off, col_sq = _column_offsets(n_cols, (target - source) / 2, periodic)
            row_off, row_sq = _row_offsets(n_rows, topology, periodic, target, source)
            col_gauss = _neighborhood_weights(col_sq, sigma, "gaussian")
            row_gauss = _neighborhood_weights(row_sq, sigma, "gaussian")
            if kind == "gaussian":
                terms = [(col_gauss, row_gauss)]
            else:  # (1 - X - Y) g g = [(1 - X) g] g - g [Y g]
                col_hat = _neighborhood_weights(col_sq, sigma, "mexican_hat")
                row_moment = _gaussian_moment(row_sq, sigma)
                terms = [(col_hat, row_gauss), (col_gauss, -row_moment)]
            values = grid[:, rows[source]].reshape(n_cols, n_source * m)
            smoothed = out[rows[target]].reshape(n_target, n_cols * m)
            for col_taps, row_taps in terms:
                if not (_significant(col_taps).any() and _significant(row_taps).any()):
                    continue  # e.g. half-unit column shifts for a tiny sigma
                by_cols = np.zeros((n_cols, n_source * m))
                _add_filtered_rows(by_cols, values, col_off, col_taps, periodic)
                by_rows = by_cols.reshape(n_cols, n_source, m).transpose(1, 0, 2)
                by_rows = by_rows.reshape(n_source, n_cols * m)
                _add_filtered_rows(smoothed, by_rows, row_off, row_taps, periodic)
    return out


def _smooth_by_row_offsets(
    grid, classes, sigma, kind, *, n_rows, n_cols, topology, periodic
):
    """``H @ values`` for the bubble and the triangle: for every row offset
    within the kernel's radius, a column filter whose taps depend on it.

    ``grid`` is the (n_cols, n_rows, m) class-ordered layout of :func:`_smooth`;
    returns the result as (n_rows, n_cols, m), class-ordered.
    """
    m = grid.shape[2]
    rows = _class_rows(classes)
    out = np.zeros_like(grid)
    for target, n_target in classes:
        t_start = rows[target].start
        for source, n_source in classes:
            s_start = rows[source].start
            col_off, col_sq = _column_offsets(n_cols, (target - source) / 2, periodic)
            row_off, row_sq = _row_offsets(n_rows, topology, periodic, target, source)
            # Both kernels decrease with the distance: rows farther apart than the
            # radius contribute nothing.
            near = _significant(_neighborhood_weights(row_sq, sigma, kind))
            for offset, dy2 in zip(row_off[near], row_sq[near], strict=True):
                taps = _neighborhood_weights(col_sq + dy2, sigma, kind)
                for t0, t1, s0 in _row_runs(offset, n_target, n_source, periodic):
                    # Contiguous class rows: both reshapes are views.
                    n_run = (t1 - t0) * m
                    s0 += s_start
                    values = grid[:, s0 : s0 + t1 - t0].reshape(n_cols, n_run)
                    smoothed = out[:, t_start + t0 : t_start + t1]
                    smoothed = smoothed.reshape(n_cols, n_run)
                    _add_filtered_rows(smoothed, values, col_off, taps, periodic)
    return out.transpose(1, 0, 2)


def _row_runs(offset, n_target, n_source, periodic):
    """Runs ``(t0, t1, s0)`` of target class rows ``[t0, t1)`` whose source rows
    ``a - offset`` (modulo the class size if periodic) start at ``s0``."""
    if not periodic:
        t0, t1 = max(0, offset), min(n_target, n_source + offset)
        return [(t0, t1, t0 - offset)] if t0 < t1 else []
    runs = [(offset, n_target, 0)]
    if offset > 0:
        runs.append((0, offset, n_target - offset))
    return runs
