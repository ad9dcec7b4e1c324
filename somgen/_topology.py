"""Unit coordinates, grid distances and adjacency of rectangular and hexagonal maps.

Units are numbered row-major: unit ``k`` sits at row ``k // n_cols`` and column
``k % n_cols``. Coordinates are Cartesian positions in the plane, ``(x, y)``:

* rectangular: ``(col, row)``;
* hexagonal (odd rows shifted right by half a unit): ``(col + (row % 2) / 2,
  row * sqrt(3) / 2)``, so that the six neighbours of every unit lie at distance 1.

A periodic (toroidal) map wraps around both axes; its grid distance is the shortest
Euclidean distance over the periodic images. A periodic hexagonal map needs an even
number of rows so that the row shift matches across the seam.

Besides dense (n_units, n_units) matrices for small maps, the module offers
O(n_units) descriptions of the lattice: the adjacent pairs of units, and the 1-D
offset tables (row classes, row and column offsets with their squared distances)
from which ``_neighborhood._smooth`` builds separable and banded filters. It also
holds the interpolation stencil that decodes continuous map coordinates
(``SelfOrganizingMap.inverse_transform``) and the check of grids that a map cannot
represent.
"""

import numpy as np
from scipy import sparse

_HEX_DY = np.sqrt(3.0) / 2.0
TOPOLOGIES = ("rectangular", "hexagonal")

# Neighbour offsets (d_row, d_col). Hexagonal offsets depend on the row parity:
# odd rows are shifted right by half a unit.
_RECT_OFFSETS = {
    4: ((-1, 0), (0, -1), (0, 1), (1, 0)),
    8: ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)),
}
_HEX_OFFSETS = (
    ((-1, -1), (-1, 0), (0, -1), (0, 1), (1, -1), (1, 0)),  # even rows
    ((-1, 0), (-1, 1), (0, -1), (0, 1), (1, 0), (1, 1)),  # odd rows
)


def _check_grid(n_rows, n_cols, topology, periodic):
    """Raise a ValueError for a grid that the map cannot represent.

    Parameters
    ----------
    n_rows, n_cols : int
        Grid shape.
    topology : {"rectangular", "hexagonal"}
    periodic : bool

    Raises
    ------
    ValueError
        For an unknown topology or a periodic hexagonal grid with an odd number
        of rows (its odd-row shift would not match across the seam).
    """
    if topology not in TOPOLOGIES:
        raise ValueError(
            f"Unknown topology {topology!r}; expected one of {TOPOLOGIES}."
        )
    if periodic and topology == "hexagonal" and n_rows % 2:
        raise ValueError(
            "A periodic hexagonal map needs an even number of rows so that the "
            f"row offsets match across the seam; got n_rows={n_rows}."
        )


def _unit_coordinates(n_rows, n_cols, topology):
    """Cartesian coordinates ``(x, y)`` of the units, shape (n_rows * n_cols, 2)."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    if topology == "rectangular":
        return np.column_stack([cols, rows]).astype(np.float64)
    return np.column_stack([cols + 0.5 * (rows % 2), rows * _HEX_DY])


def _grid_period(n_rows, n_cols, topology):
    """Lengths of the two periods ``(width, height)`` of a toroidal map."""
    if topology == "rectangular":
        return float(n_cols), float(n_rows)
    return float(n_cols), n_rows * _HEX_DY


def _wrap_deltas(delta, period):
    """Fold coordinate differences into ``[-period / 2, period / 2]``."""
    return delta - period * np.round(delta / period)


def _pairwise_grid_sq_distances(
    coords_a, coords_b, *, n_rows, n_cols, topology, periodic
):
    """Squared grid distances between two sets of unit coordinates.

    Parameters
    ----------
    coords_a : ndarray of shape (n_a, 2)
    coords_b : ndarray of shape (n_b, 2)

    Returns
    -------
    sq_dist : ndarray of shape (n_a, n_b)
    """
    dx = coords_a[:, None, 0] - coords_b[None, :, 0]
    dy = coords_a[:, None, 1] - coords_b[None, :, 1]
    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        dx = _wrap_deltas(dx, width)
        dy = _wrap_deltas(dy, height)
    sq = dx * dx + dy * dy
    # Lattice distances are integers or sums of quarters and threes-quarters;
    # remove the rounding noise of sqrt(3) so kernels with hard cut-offs (bubble)
    # see exact values.
    return np.round(sq, 9)


def _grid_sq_distances(n_rows, n_cols, topology, periodic):
    """Full (n_units, n_units) matrix of squared grid distances."""
    coords = _unit_coordinates(n_rows, n_cols, topology)
    return _pairwise_grid_sq_distances(
        coords,
        coords,
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
    )


def _adjacency(n_rows, n_cols, topology, periodic, connectivity=None):
    """Boolean (n_units, n_units) adjacency matrix of the map.

    Rectangular maps use the 8 surrounding units (``connectivity=8``, the
    default, Chebyshev distance 1) or the 4 edge-sharing units
    (``connectivity=4``); hexagonal maps use their 6 neighbours. On a periodic map
    neighbours wrap around the edges. A unit is never its own neighbour.
    """
    sq = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    limit = 2.0 if topology == "rectangular" and connectivity in (None, 8) else 1.0
    return (sq > 0) & (sq <= limit + 1e-9)


def _are_adjacent(
    units_a, units_b, *, n_rows, n_cols, topology, periodic, connectivity=None
):
    """Element-wise adjacency of two arrays of unit indices (no n_units^2 matrix).

    ``connectivity`` is 4 or 8 for rectangular maps (default 8) and 6 for
    hexagonal maps. A unit is not adjacent to itself.
    """
    coords = _unit_coordinates(n_rows, n_cols, topology)
    a = coords[np.asarray(units_a)]
    b = coords[np.asarray(units_b)]
    delta = a - b
    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        delta[:, 0] = _wrap_deltas(delta[:, 0], width)
        delta[:, 1] = _wrap_deltas(delta[:, 1], height)
    sq = np.round(np.einsum("ij,ij->i", delta, delta), 9)
    limit = 2.0 if topology == "rectangular" and connectivity in (None, 8) else 1.0
    return (sq > 0) & (sq <= limit + 1e-9)


def _adjacent_pairs(n_rows, n_cols, topology, periodic, connectivity=None):
    """Ordered pairs of adjacent units, in O(n_units) time and memory.

    The same relation as :func:`_adjacency`, without the (n_units, n_units)
    matrix: every unit is paired with each of its distinct neighbours (on a tiny
    periodic map a neighbour offset may wrap onto the unit itself or onto another
    offset's neighbour; such duplicates appear once, the unit itself never).

    Parameters
    ----------
    n_rows, n_cols : int
        Grid shape.
    topology : {"rectangular", "hexagonal"}
    periodic : bool
    connectivity : {4, 6, 8} or None, default=None
        8 (default) or 4 on a rectangular grid; hexagonal grids use 6.

    Returns
    -------
    units : ndarray of shape (n_pairs,), int64
        Non-decreasing.
    neighbours : ndarray of shape (n_pairs,), int64
        Increasing within each unit, so that ``(units, neighbours)`` equals
        ``np.nonzero(_adjacency(...))``.
    """
    _check_grid(n_rows, n_cols, topology, periodic)
    allowed = (None, 4, 8) if topology == "rectangular" else (None, 6)
    if connectivity not in allowed:
        raise ValueError(
            f"connectivity={connectivity!r} is not valid for a {topology} grid; "
            f"use one of {allowed}."
        )
    n_units = n_rows * n_cols
    rows, cols = np.divmod(np.arange(n_units, dtype=np.int64), n_cols)
    if topology == "rectangular":
        offsets = np.array(_RECT_OFFSETS[8 if connectivity is None else connectivity])
        d_row, d_col = offsets[:, 0], offsets[:, 1]
    else:
        offsets = np.array(_HEX_OFFSETS)[rows % 2]  # (n_units, 6, 2)
        d_row, d_col = offsets[..., 0], offsets[..., 1]
    nb_rows = rows[:, None] + d_row
    nb_cols = cols[:, None] + d_col
    if periodic:
        neighbours = (nb_rows % n_rows) * n_cols + nb_cols % n_cols
    else:
        inside = (nb_rows >= 0) & (nb_rows < n_rows) & (nb_cols >= 0)
        inside &= nb_cols < n_cols
        neighbours = np.where(inside, nb_rows * n_cols + nb_cols, -1)
    neighbours.sort(axis=1)
    keep = (neighbours >= 0) & (neighbours != np.arange(n_units)[:, None])
    keep[:, 1:] &= neighbours[:, 1:] != neighbours[:, :-1]
    units = np.broadcast_to(np.arange(n_units, dtype=np.int64)[:, None], keep.shape)
    return units[keep], neighbours[keep]


def _row_classes(n_rows, topology):
    """Classes of rows that share one horizontal shift.

    All rows of a rectangular grid form one class; a hexagonal grid has the even
    rows (shift 0) and the odd rows (shift 1/2). Row ``a`` of class ``p`` is grid
    row ``step * a + p``, with ``step`` 1 (rectangular) or 2 (hexagonal).

    Returns
    -------
    classes : list of (parity, n_class_rows)
        Non-empty classes only.
    """
    if topology == "rectangular":
        return [(0, n_rows)]
    return [(p, (n_rows - p + 1) // 2) for p in (0, 1) if n_rows > p]


def _row_offsets(n_rows, topology, periodic, target_parity, source_parity):
    """Offsets between the rows of two row classes and their vertical distances.

    Row ``a`` of the target class and row ``b`` of the source class (see
    :func:`_row_classes`) are ``e = a - b`` apart in class rows.

    Parameters
    ----------
    n_rows : int
    topology : {"rectangular", "hexagonal"}
    periodic : bool
    target_parity, source_parity : {0, 1}
        Row classes (always 0 on a rectangular grid).

    Returns
    -------
    offsets : ndarray of int64
        Every possible ``e``: ``-(n_source - 1) .. n_target - 1`` on a planar
        grid, the residues ``0 .. n_class - 1`` modulo the class size on a
        periodic grid (both classes then have the same size).
    sq_dist : ndarray of float64
        Squared vertical distance ``dy^2`` between the two rows (minimum image
        on a periodic grid), exact: an integer, or three quarters of one.
    """
    classes = dict(_row_classes(n_rows, topology))
    n_target, n_source = classes[target_parity], classes[source_parity]
    if periodic:
        offsets = np.arange(n_target, dtype=np.int64)
    else:
        offsets = np.arange(-(n_source - 1), n_target, dtype=np.int64)
    step = 1 if topology == "rectangular" else 2
    d_row = (step * offsets + (target_parity - source_parity)).astype(np.float64)
    if periodic:
        d_row = _wrap_deltas(d_row, float(n_rows))
    scale = 1.0 if topology == "rectangular" else 0.75  # _HEX_DY ** 2, exactly
    return offsets, scale * d_row * d_row


def _column_offsets(n_cols, shift, periodic):
    """Column offsets and squared horizontal distances within a pair of rows.

    A target unit in column ``c`` and a source unit in column ``c'`` of rows whose
    horizontal shifts differ by ``shift`` (0 or +-1/2) are ``dx = c - c' +
    shift`` apart (minimum image on a periodic grid).

    Parameters
    ----------
    n_cols : int
    shift : {0, 0.5, -0.5}
        Horizontal shift of the target row minus that of the source row.
    periodic : bool

    Returns
    -------
    offsets : ndarray of int64
        ``c - c'``: ``-(n_cols - 1) .. n_cols - 1`` on a planar grid, the
        residues ``0 .. n_cols - 1`` modulo ``n_cols`` on a periodic grid.
    sq_dist : ndarray of float64
        ``dx^2``, exact (a multiple of 1/4).
    """
    if periodic:
        offsets = np.arange(n_cols, dtype=np.int64)
    else:
        offsets = np.arange(-(n_cols - 1), n_cols, dtype=np.int64)
    d_col = offsets + float(shift)
    if periodic:
        d_col = _wrap_deltas(d_col, float(n_cols))
    return offsets, d_col * d_col


def _interpolation_stencil(points, *, n_rows, n_cols, topology, periodic):
    """Units and weights that interpolate the codebook at continuous positions.

    A rectangular grid interpolates bilinearly between the four surrounding
    units, a hexagonal grid barycentrically over the triangle of units that holds
    the point. On a unit's own position the stencil is that unit with weight 1.
    Positions outside a planar map are first clamped to the bounding box of its
    units, so that far-away points take the nearest border prototypes; on a
    periodic map they are reduced modulo the periods. Both happen before any
    conversion to integers, so huge coordinates (up to the float64 maximum) are
    safe.

    Parameters
    ----------
    points : ndarray of shape (n_points, 2)
        Map coordinates ``(x, y)`` (see :func:`_unit_coordinates`).
    n_rows, n_cols : int
        Grid shape.
    topology : {"rectangular", "hexagonal"}
    periodic : bool

    Returns
    -------
    units : ndarray of shape (n_points, 4) or (n_points, 3), int64
        Row-major unit indices (4 for rectangular, 3 for hexagonal grids; a unit
        may appear several times).
    weights : ndarray of the same shape, float64
        Non-negative, summing to 1 over each row.

    Raises
    ------
    ValueError
        If a coordinate is NaN or infinite, or for a grid rejected by
        :func:`_check_grid`.
    """
    _check_grid(n_rows, n_cols, topology, periodic)
    points = np.asarray(points, dtype=np.float64)
    if not np.isfinite(points).all():
        raise ValueError("Map coordinates must be finite; got NaN or infinity.")
    x, y = points[:, 0], points[:, 1]
    if topology == "rectangular":
        col0, fx = _split_axis(x, n_cols, periodic)
        row0, fy = _split_axis(y, n_rows, periodic)
        col1 = _neighbour_index(col0, n_cols, periodic)
        row1 = _neighbour_index(row0, n_rows, periodic)
        units = np.stack(
            [
                row0 * n_cols + col0,
                row0 * n_cols + col1,
                row1 * n_cols + col0,
                row1 * n_cols + col1,
            ],
            axis=1,
        )
        weights = np.stack(
            [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], axis=1
        )
        return units, weights

    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        x, y = np.mod(x, width), np.mod(y, height)
    else:
        x_max = n_cols - 1 + (0.5 if n_rows > 1 else 0.0)
        x = np.clip(x, 0.0, x_max)
        y = np.clip(y, 0.0, (n_rows - 1) * _HEX_DY)
    # Axial lattice coordinates (q, r) with position q a + r b, a = (1, 0),
    # b = (1/2, sqrt(3)/2); unit (row, col) has r = row, q = col - floor(row / 2).
    # Snapping removes the rounding of sqrt(3) so that unit positions are exact.
    r = y / _HEX_DY
    r = np.where(np.abs(r - np.round(r)) < 1e-9, np.round(r), r)
    q = x - r / 2.0
    q = np.where(np.abs(q - np.round(q)) < 1e-9, np.round(q), q)
    q0, r0 = np.floor(q), np.floor(r)
    u, v = q - q0, r - r0
    lower = (u + v <= 1.0)[:, None]
    vq = np.where(
        lower,
        np.stack([q0, q0 + 1, q0], axis=1),
        np.stack([q0 + 1, q0 + 1, q0], axis=1),
    )
    vr = np.where(
        lower,
        np.stack([r0, r0, r0 + 1], axis=1),
        np.stack([r0 + 1, r0, r0 + 1], axis=1),
    )
    weights = np.where(
        lower,
        np.stack([1 - u - v, u, v], axis=1),
        np.stack([u + v - 1, 1 - v, 1 - u], axis=1),
    )
    # |q|, |r| <= n_cols + n_rows here: the conversions cannot overflow.
    rows = vr.astype(np.int64)
    cols = (vq + np.floor(vr / 2.0)).astype(np.int64)
    if periodic:
        rows %= n_rows
        cols %= n_cols
    else:
        rows = np.clip(rows, 0, n_rows - 1)
        cols = np.clip(cols, 0, n_cols - 1)
    return rows * n_cols + cols, weights


def _split_axis(t, n, periodic):
    """Integer cell and fractional offset of coordinates along one grid axis.

    Coordinates are reduced modulo ``n`` (periodic) or clamped to ``[0, n - 1]``
    (planar) before the conversion to integers.
    """
    if n == 1:
        return np.zeros(t.shape, dtype=np.int64), np.zeros(t.shape)
    if periodic:
        t = np.mod(t, n)
        i0 = np.minimum(np.floor(t), n - 1)
    else:
        t = np.clip(t, 0, n - 1)
        i0 = np.minimum(np.floor(t), n - 2)
    return i0.astype(np.int64), t - i0


def _neighbour_index(i0, n, periodic):
    """Index of the next unit along an axis (the cell's far corner)."""
    if n == 1:
        return i0
    return (i0 + 1) % n if periodic else i0 + 1


def _grid_laplacian(n_rows, n_cols, topology, periodic):
    """Sparse graph Laplacian ``L = D - A`` of the grid's nearest neighbours.

    Rectangular grids use their 4 nearest neighbours, hexagonal grids their 6;
    toroidal grids wrap. ``m^T L m = sum over adjacent pairs (m_i - m_j)^2``.

    Returns
    -------
    laplacian : scipy.sparse.csr_matrix of shape (n_units, n_units)
    """
    connectivity = 4 if topology == "rectangular" else None
    units, neighbours = _adjacent_pairs(
        n_rows, n_cols, topology, periodic, connectivity=connectivity
    )
    n_units = n_rows * n_cols
    adjacency = sparse.csr_matrix(
        (np.ones(units.size), (units, neighbours)), shape=(n_units, n_units)
    )
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return (sparse.diags(degree) - adjacency).tocsr()
