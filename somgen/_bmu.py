"""Exact, chunked best- and second-best-matching-unit search.

Fast path
---------
Squared distances are expanded as ``||x||^2 - 2 x.w + ||w||^2``. The ``||x||^2``
term does not change which unit is closest, so units are ranked by the score
``||w||^2 - 2 x.w``. The norms are folded into the matrix product: every block
of samples gets a column of ones and the codebook the row ``||w||^2``, so one
GEMM ``[X, 1] @ [-2 W^T; ||w||^2]`` yields the scores, in the data's dtype
(float32 stays float32). Data and prototypes are first mapped to an internal
frame, ``x * scale - offset``, with ``offset`` the training mean and ``scale``
a power of two (1 unless the data's magnitude is beyond ``2**+-40``), so the
products neither overflow nor underflow and power-of-two scaling never rounds.

Exactness
---------
The expanded score is not exact: in float32, or for data far from the offset, the
rounding error can exceed the gap between the two closest units. Every score
carries a rigorous bound on its rounding error (Higham's ``gamma_n`` bound for a
dot product of length ``n = n_features + 1``, plus the rounding of the inputs),
``|score~_k - score_k| <= b_i = c u (2 ||x_i|| M + M^2)`` with ``M`` the largest
prototype norm and ``u`` the unit roundoff. A unit whose computed score is more
than ``2 b_i`` above the computed minimum cannot be the best, so the exact best
unit is always among the *candidates* within ``2 b_i``. Rows with a single
candidate (nearly all of them) are done; the others are re-ranked by direct
float64 distances ``sum_j (x_j - w_j)^2`` over their candidates only. The
second-best unit is found the same way, with candidates within ``2 b_i`` of the
second-smallest score. The result equals an argmin over brute-force float64
distances, in float32 and float64, except between distances that are equal in
float64 (ties go to the lowest unit index, like ``numpy.argmin``).

Rows whose scores are not finite (data so far from the map that a float32
product overflows) take every unit as a candidate, and the direct distances are
computed with a per-row power-of-two rescaling, so no input gives NaN.

Missing values
--------------
Dense data may hold NaN for missing values. The squared distance of a sample
with observed features ``O`` (``|O| = n_obs`` of ``n_features``) is
``n_features / n_obs * sum_{j in O} (x_j - w_j)^2``: the observed part,
rescaled to the scale of a complete sample, so distances of samples with
different numbers of missing values are comparable (the factor does not
change which unit is closest). With ``M`` the observation mask and ``X0`` the
data with NaN set to 0, the observed part is ``sum_O x^2 - 2 X0 @ W.T + M @
(W**2).T``: one GEMM ``[X0, M] @ [-2 W^T; (W**2)^T]`` of depth ``2 n_features``
ranks the units, with the same rounding bound (for a dot product of that
length) and the same float64 re-rank, on masked direct distances. Only the rows
of a chunk that hold a NaN take this path; complete rows go through the fast
path unchanged. A row with no observed value is taken at the centre of the
frame (the training mean for a fitted map): it is imputed by the mean.

Sparse input
------------
CSR matrices are searched by sparse-dense products ``X @ (-2 W_c^T)`` against
the centred prototypes ``W_c``; the frame offset ``m`` is folded into a
per-unit constant, ``||w_c||^2 - 2 (x - m).w_c = ||w_c||^2 + 2 m.w_c - 2
x.w_c``, so X is never centred (which would destroy its sparsity) nor
densified. The bound, ``u (2 ||x|| M + M^2 + 2 ||m|| M)``, uses the row norms
of the raw samples, precomputed from the stored values; the few rows to
re-rank are densified (only those). Direct distances to the best unit are
``||w||^2 + sum_{j stored} ((x_j - w_j)^2 - w_j^2)``, over the stored values
only, except for rows so close to their prototype that the subtraction could
lose more than ``2**-40`` of the distance (recomputed by differences).

Chunks
------
Samples are processed in chunks whose size depends only on
``(n_samples, n_units)``; within a chunk, scores are computed by cache-sized row
blocks. Memory is O(chunk x n_units), X is never copied whole, and the result is
identical for any number of threads (see ``somgen._parallel``).
"""

from typing import NamedTuple

import numpy as np
from scipy import sparse

from somgen._parallel import (
    _BLOCK_BYTES,
    _chunk_slices,
    _effective_n_threads,
    _map_chunks,
    _scratch,
)

# Data whose magnitude lies in this range is used unscaled.
_SAFE_LOW = 2.0**-40
_SAFE_HIGH = 2.0**40
# Below this magnitude, squared differences of float64 values cannot overflow.
_SAFE_DIRECT = 2.0**500
# Candidate pairs re-ranked at once: bounds the (pairs, n_features) buffer.
_RERANK_FLOATS = 1 << 18
# Sparse distances lose about eps * ||w||^2 to cancellation; beyond this ratio
# of ||w||^2 to the squared distance they are recomputed by differences.
_SPARSE_CANCELLATION = 2.0**10


class _Frame(NamedTuple):
    """The internal frame ``x * scale - offset`` (``offset`` in internal units)."""

    offset: np.ndarray
    scale: float


def _pow2_scale(magnitude):
    """Power of two bringing ``magnitude`` near 1, or 1 if it is already safe."""
    magnitude = float(magnitude)
    if not np.isfinite(magnitude) or magnitude == 0.0:
        return 1.0
    if _SAFE_LOW <= magnitude <= _SAFE_HIGH:
        return 1.0
    _, exponent = np.frexp(magnitude)
    return float(np.ldexp(1.0, -int(exponent)))


def _has_nan(X):
    """Whether dense ``X`` holds a NaN (a reduction, no copy of ``X``)."""
    if sparse.issparse(X) or X.size == 0:
        return False
    return bool(np.isnan(np.min(X)))


def _column_ranges(X):
    """Per-feature minimum and maximum of ``X`` in float64, by chunks.

    Missing values (NaN) are ignored; a feature with no observed value gets the
    empty range ``(inf, -inf)``. Sparse matrices count their implicit zeros.
    """
    if sparse.issparse(X):
        low, high = X.min(axis=0), X.max(axis=0)
        low, high = (
            np.asarray(
                v.toarray() if sparse.issparse(v) else v, dtype=np.float64
            ).ravel()
            for v in (low, high)
        )
        return low, high
    low = np.full(X.shape[1], np.inf)
    high = np.full(X.shape[1], -np.inf)
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        block_low = X[s].min(axis=0)
        if np.isnan(block_low).any():
            np.fmin(low, np.fmin.reduce(X[s], axis=0), out=low)
            np.fmax(high, np.fmax.reduce(X[s], axis=0), out=high)
        else:
            np.minimum(low, block_low, out=low)
            np.maximum(high, X[s].max(axis=0), out=high)
    return low, high


def _column_sums(X, scale):
    """Per-feature sums of ``X * scale`` (float64) and counts of observed values.

    The counts are None when nothing is missing (every feature counts
    ``n_samples``).
    """
    if sparse.issparse(X):
        total = np.asarray(X.sum(axis=0, dtype=np.float64)).ravel()
        return total * scale, None
    total = np.zeros(X.shape[1])
    counts = None
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        block = X[s] if scale == 1.0 else X[s] * scale
        block_sum = block.sum(axis=0, dtype=np.float64)
        if np.isnan(block_sum).any():
            observed = ~np.isnan(block)
            block_sum = np.where(observed, block, 0).sum(axis=0, dtype=np.float64)
            if counts is None:
                counts = np.full(X.shape[1], float(s.start))
            counts += observed.sum(axis=0)
        elif counts is not None:
            counts += s.stop - s.start
        total += block_sum
    return total, counts


def _finite_max_abs(*arrays):
    """Largest finite magnitude in ``arrays`` (0 if none)."""
    values = np.concatenate([np.abs(np.ravel(a)) for a in arrays])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 0.0


def _frame_from_data(X):
    """Internal frame of training data, and the data's box in that frame.

    ``offset`` is the data's mean and ``scale`` a power of two chosen so that
    neither the raw nor the centred values leave ``[2**-40, 2**40]`` in
    magnitude (when they do not, ``scale`` is 1). Both come from chunked passes;
    no copy of ``X`` is made. Missing values (NaN) are ignored: the mean of a
    feature is over its observed values. A sparse ``X`` stays sparse (its mean
    is computed from the stored values and the implicit zeros).

    Returns
    -------
    frame : _Frame
    low, high : ndarray of shape (n_features,)
        The data's bounding box in the internal frame.
    """
    low, high = _column_ranges(X)
    scale_raw = _pow2_scale(_finite_max_abs(low, high))
    total, counts = _column_sums(X, scale_raw)
    if counts is None:
        mean = total / X.shape[0]
    else:
        mean = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
    low = low * scale_raw - mean
    high = high * scale_raw - mean
    scale_centred = _pow2_scale(_finite_max_abs(low, high))
    frame = _Frame(mean * scale_centred, scale_raw * scale_centred)
    return frame, low * scale_centred, high * scale_centred


def _frame_from_codebook(codebook):
    """Internal frame centred on the mean prototype (used by the metrics)."""
    codebook = np.asarray(codebook, dtype=np.float64)
    scale_raw = _pow2_scale(np.abs(codebook).max())
    scaled = codebook * scale_raw
    mean = scaled.mean(axis=0)
    scale_centred = _pow2_scale(np.abs(scaled - mean).max())
    return _Frame(mean * scale_centred, scale_raw * scale_centred)


def _to_frame(X_block, frame, out):
    """Write ``X_block * scale - offset`` (computed in float64) into ``out``."""
    if frame.scale == 1.0:
        np.subtract(X_block, frame.offset, out=out, casting="unsafe")
    else:
        scaled = np.multiply(X_block, frame.scale, dtype=np.float64)
        np.subtract(scaled, frame.offset, out=out, casting="unsafe")
    return out


def _augment(X_chunk, frame, dtype):
    """``[X_chunk * scale - offset, 1]`` in ``dtype``: the left GEMM operand."""
    n, d = X_chunk.shape
    augmented = _scratch("augmented", (n, d + 1), dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        _to_frame(X_chunk, frame, augmented[:, :d])
    augmented[:, d] = 1.0
    return augmented


class _SearchCodebook:
    """A codebook prepared for the exact search.

    Attributes
    ----------
    ranking : ndarray of shape (n_features + 1, n_units)
        ``[-2 W^T; ||w||^2]`` of the prototypes in the internal frame, in the
        search dtype.
    centred : ndarray of shape (n_units, n_features), float64
        Prototypes in the internal frame.
    reference : ndarray of shape (n_units, n_features), float64
        Prototypes in the coordinates of the direct (re-ranking) distances.
    shift : ndarray of shape (n_features,) or None
        Samples enter the direct distances as ``x * scale - shift``.
    scale : float
    offset : ndarray of shape (n_features,)
        Offset of the internal frame (``x * scale - offset``).
    centre : ndarray of shape (n_features,)
        The frame's centre (``x * scale == offset``) in the coordinates of
        :attr:`reference`: where a sample with no observed value is taken.
    max_norm : float
        Largest prototype norm in the internal frame.
    unit_roundoff : float
        Rounding-error constant of the search dtype, ``(n_features + 8) * eps``.
    """

    def __init__(self, centred, reference, shift, scale, dtype, offset=None):
        centred = np.asarray(centred, dtype=np.float64)
        n_units, n_features = centred.shape
        self.dtype = np.dtype(dtype)
        self.centred = centred
        self.ranking = np.empty((n_features + 1, n_units), dtype=dtype)
        self.ranking[:-1] = -2.0 * centred.T
        sq_norms = np.einsum("ij,ij->i", centred, centred)
        self.ranking[-1] = sq_norms
        self.sq_norms = sq_norms
        self.reference = np.ascontiguousarray(reference, dtype=np.float64)
        self.shift = shift
        self.scale = float(scale)
        self.offset = (
            np.zeros(n_features) if offset is None else np.asarray(offset, float)
        )
        self.centre = self.offset if shift is None else self.offset - shift
        self.max_norm = float(np.sqrt(sq_norms.max())) if n_units else 0.0
        self.reference_magnitude = (
            float(np.abs(self.reference).max()) if self.reference.size else 0.0
        )
        self.eps = float(np.finfo(dtype).eps)
        self.unit_roundoff = (n_features + 8) * self.eps
        # Twice the error bound of a score, as ``slope * ||x|| + intercept``.
        m = self.max_norm
        self.margin_slope = 4.0 * self.unit_roundoff * m
        self.margin_intercept = 2.0 * self.unit_roundoff * m * m
        self._masked = None
        self._sparse = None
        self._raw = None

    @property
    def n_units(self):
        return self.ranking.shape[1]

    @property
    def n_features(self):
        return self.centred.shape[1]

    def masked_terms(self):
        """``([-2 W^T; (W**2)^T], slope, intercept)`` for rows with NaN.

        The ranking of depth ``2 n_features`` scores ``[X0, M]`` (data with NaN
        set to 0, observation mask); the rounding bound is the fast path's for
        a dot product of that length.
        """
        if self._masked is None:
            d = self.n_features
            ranking = np.empty((2 * d, self.n_units), dtype=self.dtype)
            ranking[:d] = -2.0 * self.centred.T
            ranking[d:] = (self.centred * self.centred).T
            u = (2 * d + 8) * self.eps
            m = self.max_norm
            self._masked = (ranking, 4.0 * u * m, 2.0 * u * m * m)
        return self._masked

    def sparse_terms(self):
        """``(-2 W^T, bias, slope, intercept)`` for sparse rows.

        Scores are ``x @ (-2 W^T) * scale + bias`` with ``bias = ||w||^2 + 2
        offset.w`` (W centred): the fast path's scores, without centring x.
        The bound is in the norm of the raw (scaled) sample:
        ``u (2 ||x|| M + M^2 + 2 ||offset|| M)``.
        """
        if self._sparse is None:
            weights = np.ascontiguousarray(self.ranking[:-1])
            bias = self.sq_norms + 2.0 * (self.centred @ self.offset)
            bias = bias.astype(self.dtype)
            u = self.unit_roundoff
            m = self.max_norm
            offset_norm = float(np.linalg.norm(self.offset))
            intercept = 2.0 * u * (m * m + 2.0 * offset_norm * m)
            self._sparse = (weights, bias, 4.0 * u * m, intercept)
        return self._sparse

    def raw_reference(self):
        """Prototypes in the coordinates of ``x * scale`` (float64) and their
        squared norms, for the direct distances of sparse rows."""
        if self._raw is None:
            raw = self.reference
            if self.shift is not None:
                raw = raw + self.shift
            self._raw = (raw, np.einsum("ij,ij->i", raw, raw))
        return self._raw

    def reference_rows(self, X_rows):
        """Samples in the coordinates of :attr:`reference`, float64."""
        rows = np.multiply(X_rows, self.scale, dtype=np.float64)
        if self.shift is not None:
            rows -= self.shift
        return rows


def _internal_search(codebook, frame, dtype):
    """Search structure for a float64 codebook already in the internal frame
    (training): direct distances use ``x * scale - offset`` against it."""
    return _SearchCodebook(
        codebook, codebook, frame.offset, frame.scale, dtype, offset=frame.offset
    )


def _model_search(codebook, frame, dtype):
    """Search structure for a codebook in data units (prediction): direct
    distances are ``||x - w||`` in float64 (scaled by the frame's power of two)."""
    reference = np.asarray(codebook, dtype=np.float64) * frame.scale
    return _SearchCodebook(
        reference - frame.offset,
        reference,
        None,
        frame.scale,
        dtype,
        offset=frame.offset,
    )


def _row_factors(rows, reference_magnitude):
    """Per-row powers of two bringing ``rows`` and the prototypes below 1.

    Multiplying both sides of a difference by the same power of two is exact
    (barring underflow), so scaled squared distances rank exactly like the
    unscaled ones while never overflowing.
    """
    magnitude = np.abs(rows).max(axis=1) if rows.shape[1] else np.zeros(len(rows))
    np.maximum(magnitude, reference_magnitude, out=magnitude)
    _, exponent = np.frexp(magnitude)
    return np.ldexp(1.0, -exponent)


def _scaled_sq_distances(rows, reference, units, factors):
    """``factors_i^2 ||rows_i - reference_{units_i}||^2`` (rows already picked)."""
    f = factors[:, None]
    diff = rows * f
    diff -= reference[units] * f
    return np.einsum("ij,ij->i", diff, diff)


def _pair_distances(rows, picked):
    """Float64 distances ``||rows_i - picked_i||``, overflow-free."""
    if rows.size == 0:
        return np.zeros(len(rows))
    if max(np.abs(rows).max(), np.abs(picked).max()) < _SAFE_DIRECT:
        # No square can overflow (nor a sum of fewer than 2**20 of them).
        diff = rows - picked
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))
    magnitude = np.abs(picked).max(axis=1) if picked.shape[1] else 0.0
    factors = _row_factors(rows, magnitude)
    sq = _scaled_sq_distances(rows, picked, np.arange(len(rows)), factors)
    return np.sqrt(sq) / factors


def _direct_distances(rows, reference, units):
    """Float64 distances ``||rows_i - reference_{units_i}||``, overflow-free."""
    return _pair_distances(rows, reference[units])


def _observed(rows, centre):
    """Masked rows: NaN set to 0, and the observation mask.

    Rows with no observed value are replaced by ``centre`` and count as fully
    observed (they are imputed by the frame's centre, the training mean).
    Returns ``(rows, missing, n_observed)``; ``rows`` is modified in place.
    """
    missing = np.isnan(rows)
    n_observed = rows.shape[1] - missing.sum(axis=1)
    rows[missing] = 0.0
    empty = n_observed == 0
    if empty.any():
        rows[empty] = centre
        missing[empty] = False
        n_observed[empty] = rows.shape[1]
    return rows, missing, n_observed


def _masked_direct_distances(rows, reference, units, centre):
    """Distances over the observed features of float64 ``rows`` (NaN missing),
    rescaled by ``sqrt(n_features / n_observed)``."""
    rows, missing, n_observed = _observed(np.array(rows, dtype=np.float64), centre)
    picked = reference[units]
    picked[missing] = 0.0
    dist = _pair_distances(rows, picked)
    return dist * np.sqrt(rows.shape[1] / n_observed)


def _sparse_direct_distances(X_rows, search, units):
    """Float64 distances of sparse rows to ``units``, over stored values only:
    ``||w||^2 + sum_{j stored} ((x_j - w_j)^2 - w_j^2)``, in reference units.

    O(stored values): the rows are not densified, except the few whose
    distance is so small against ``||w||`` that the subtraction could lose
    more than about ``2**-40`` of it; those are computed by direct
    differences, a bounded number of rows at a time.
    """
    raw, raw_sq_norms = search.raw_reference()
    n = X_rows.shape[0]
    row_of = np.repeat(np.arange(n), np.diff(X_rows.indptr))
    x = np.asarray(X_rows.data, dtype=np.float64) * search.scale
    w = raw[units[row_of], X_rows.indices]
    terms = (x - w) ** 2 - w * w
    sq = raw_sq_norms[units] + np.bincount(row_of, weights=terms, minlength=n)
    np.maximum(sq, 0.0, out=sq)
    inexact = np.flatnonzero(raw_sq_norms[units] > _SPARSE_CANCELLATION * sq)
    step = max(1, _RERANK_FLOATS // max(raw.shape[1], 1))
    for start in range(0, inexact.size, step):
        rows = inexact[start : start + step]
        dense = np.multiply(X_rows[rows].toarray(), search.scale, dtype=np.float64)
        sq[rows] = _pair_distances(dense, raw[units[rows]]) ** 2
    return np.sqrt(sq)


def _direct_bmus(rows, reference):
    """Best units of a few float64 ``rows`` by direct distances (no GEMM).

    For mini-batches so small that the fast path's bookkeeping costs more than
    the ``rows x units x features`` differences themselves; exact by
    construction. ``rows`` and ``reference`` must be in the same frame and far
    from the float64 limits (the internal frame guarantees it for training data).
    Missing values (NaN) are left out of the distances; a row with no observed
    value is taken at the origin (the frame's centre).
    """
    diff = rows[:, None, :] - reference[None, :, :]
    missing = np.isnan(rows)
    if missing.any():
        empty = missing.all(axis=1)
        diff[np.broadcast_to(missing[:, None, :], diff.shape)] = 0.0
        if empty.any():
            diff[empty] = -reference[None, :, :]
    return np.einsum("ikj,ikj->ik", diff, diff).argmin(axis=1)


def _rerank(X_rows, candidates, search, second, masked=False):
    """Exact best (and second-best) unit among boolean ``candidates`` per row.

    Candidates are ranked by their direct float64 squared distance; exact ties
    are broken by the expanded score ``||w||^2 - 2 x.w`` (which still tells
    units apart for samples so far away that ``x - w`` rounds to ``x``), then
    by the lowest unit index. With ``masked``, NaN marks missing values: the
    distances and scores run over the observed features of each row (the
    factor ``n_features / n_observed`` is the same for all units of a row, so
    it is left out of the ranking).
    """
    n_rows = candidates.shape[0]
    best = np.empty(n_rows, dtype=np.intp)
    second_best = np.empty(n_rows, dtype=np.intp) if second else None
    counts = candidates.sum(axis=1)
    n_features = search.reference.shape[1]
    budget = max(search.n_units, _RERANK_FLOATS // max(n_features, 1))
    total = np.cumsum(counts)
    start = 0
    while start < n_rows:
        # Rows whose candidate pairs fit in the buffer (at least one row).
        done = total[start - 1] if start else 0
        stop = max(int(np.searchsorted(total, done + budget, side="right")), start + 1)
        rows_idx, units = np.nonzero(candidates[start:stop])
        ref_rows = search.reference_rows(X_rows[start:stop])
        if masked:
            ref_rows, missing, _ = _observed(ref_rows, search.centre)
        factors = _row_factors(ref_rows, search.reference_magnitude)
        f = factors[rows_idx]
        x = ref_rows[rows_idx] * f[:, None]
        w = search.reference[units] * f[:, None]
        if masked:
            w[missing[rows_idx]] = 0.0
        diff = x - w
        sq = np.einsum("ij,ij->i", diff, diff)
        score = np.einsum("ij,ij->i", w, w - 2.0 * x)
        order = np.lexsort((units, score, sq, rows_idx))
        grouped = rows_idx[order]
        first = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        best[start:stop] = units[order[first]]
        if second:
            # Every row has at least two candidates unless the map has one unit.
            nxt = np.minimum(first + 1, len(order) - 1)
            has_two = (nxt < len(order)) & (grouped[nxt] == grouped[first])
            has_two &= nxt != first
            second_best[start:stop] = np.where(
                has_two, units[order[nxt]], units[order[first]]
            )
        start = stop
    return best, second_best


def _select(scores, x_norm, slope, intercept, second, rerank):
    """Exact best (and second-best) units of one block from its scores.

    ``scores`` (n_rows, n_units) holds the computed scores, overwritten;
    ``x_norm`` the float64 norms entering the bound ``slope * ||x|| +
    intercept`` (twice the rounding bound of a score); ``rerank(idx,
    candidates)`` re-ranks rows ``idx`` of the block exactly. Returns ``(best,
    second_best or None, best_scores)`` where ``best_scores`` are the computed
    (approximate) scores of the best units.
    """
    n, n_units = scores.shape
    rows = np.arange(n)
    best = np.argmin(scores, axis=1)
    best_scores = scores[rows, best]
    if n_units == 1:
        return best, (best.copy() if second else None), best_scores
    # Candidates for the best unit score at most `threshold`; a NaN or infinite
    # threshold (overflow) makes every unit a candidate below.
    with np.errstate(over="ignore", invalid="ignore"):
        margin = x_norm * slope
        margin += intercept
        threshold = margin + best_scores
    scores[rows, best] = np.inf
    second_best = None
    if not second:
        limit = threshold
        ambiguous = ~(scores.min(axis=1) > threshold)
    else:
        second_best = np.argmin(scores, axis=1)
        second_scores = scores[rows, second_best]
        with np.errstate(over="ignore", invalid="ignore"):
            limit = margin + second_scores
        if n_units > 2:
            scores[rows, second_best] = np.inf
            ambiguous = ~(scores.min(axis=1) > limit)
        else:
            ambiguous = ~np.isfinite(limit)
        ambiguous |= ~(second_scores > threshold)
    if ambiguous.any():
        idx = np.flatnonzero(ambiguous)
        candidates = scores[idx] <= limit[idx, None]
        candidates[np.arange(idx.size), best[idx]] = True
        if second:
            candidates[np.arange(idx.size), second_best[idx]] = True
        candidates[~np.isfinite(limit[idx])] = True
        exact_best, exact_second = rerank(idx, candidates)
        best[idx] = exact_best
        if second:
            second_best[idx] = exact_second
    return best, second_best, best_scores


def _search_block(X_block, augmented, x_norm, search, scores, second):
    """Exact best (and second-best) units of one row block of complete samples.

    ``x_norm`` holds the float64 norms of the block's rows in the internal
    frame; ``scores`` is a (n_rows, n_units) buffer of the search dtype,
    overwritten. Returns ``(best, second_best or None, best_scores)`` where
    ``best_scores`` are the computed (approximate) scores of the best units.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        np.matmul(augmented, search.ranking, out=scores)

    def rerank(idx, candidates):
        return _rerank(X_block[idx], candidates, search, second)

    return _select(
        scores, x_norm, search.margin_slope, search.margin_intercept, second, rerank
    )


def _block_size(search):
    """Rows per score block: depends only on the map and the search dtype."""
    return max(8, _BLOCK_BYTES // (search.n_units * search.ranking.dtype.itemsize))


def _scored_blocks(X_chunk, augmented, search, second):
    """Yield ``(rows, best, second_best, best_scores, x_norm)`` over cache-sized
    row blocks of a chunk of complete samples.

    The block grid depends only on the chunk's shape and the search dtype, so
    results are independent of the number of threads.
    """
    n = X_chunk.shape[0]
    size = _block_size(search)
    buffer = _scratch("scores", (min(size, n), search.n_units), search.ranking.dtype)
    x = augmented[:, :-1]
    with np.errstate(over="ignore", invalid="ignore"):
        x_norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        scores = buffer[: rows.stop - start]
        best, second_best, best_scores = _search_block(
            X_chunk[rows], augmented[rows], x_norm[rows], search, scores, second
        )
        yield rows, best, second_best, best_scores, x_norm[rows]


def _masked_augment(X_rows, frame, dtype):
    """``[X0, M]`` in ``dtype``: samples in the internal frame with NaN set to
    0, and their observation mask (the left operand of the masked GEMM).

    A row with no observed value is set to the frame's centre (0) with a full
    mask: it is imputed by the mean. Returns ``(augmented, n_observed)``, with
    0 observed for such rows.
    """
    n, d = X_rows.shape
    augmented = _scratch("masked", (n, 2 * d), dtype)
    x = augmented[:, :d]
    with np.errstate(over="ignore", invalid="ignore"):
        _to_frame(X_rows, frame, x)
    missing = np.isnan(x)
    x[missing] = 0.0
    np.logical_not(missing, out=missing)
    augmented[:, d:] = missing
    n_observed = missing.sum(axis=1)
    augmented[n_observed == 0, d:] = 1.0
    return augmented, n_observed


def _masked_scored_blocks(X_rows, augmented, search, second):
    """Like :func:`_scored_blocks`, for rows holding NaN (``augmented`` from
    :func:`_masked_augment`); ``best_scores + x_norm**2`` is the unscaled
    squared distance over the observed features."""
    n = X_rows.shape[0]
    d = search.n_features
    ranking, slope, intercept = search.masked_terms()
    size = _block_size(search)
    buffer = _scratch("scores", (min(size, n), search.n_units), search.ranking.dtype)
    x = augmented[:, :d]
    with np.errstate(over="ignore", invalid="ignore"):
        x_norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        scores = buffer[: rows.stop - start]
        with np.errstate(over="ignore", invalid="ignore"):
            np.matmul(augmented[rows], ranking, out=scores)
        X_block = X_rows[rows]

        def rerank(idx, candidates, X_block=X_block):
            return _rerank(X_block[idx], candidates, search, second, masked=True)

        best, second_best, best_scores = _select(
            scores, x_norm[rows], slope, intercept, second, rerank
        )
        yield rows, best, second_best, best_scores, x_norm[rows]


def _sparse_row_norms(X_chunk, search):
    """Norms of the scaled raw rows ``||x * scale||`` and of the centred rows
    ``||x * scale - offset||`` (float64) of a CSR chunk."""
    data = np.asarray(X_chunk.data, dtype=np.float64) * search.scale
    row_of = np.repeat(np.arange(X_chunk.shape[0]), np.diff(X_chunk.indptr))
    raw_sq = np.bincount(row_of, weights=data * data, minlength=X_chunk.shape[0])
    cross = np.bincount(
        row_of,
        weights=data * search.offset[X_chunk.indices],
        minlength=X_chunk.shape[0],
    )
    offset_sq = float(search.offset @ search.offset)
    centred_sq = np.maximum(raw_sq - 2.0 * cross + offset_sq, 0.0)
    return np.sqrt(raw_sq), np.sqrt(centred_sq)


def _sparse_scored_blocks(X_chunk, search, second):
    """Like :func:`_scored_blocks`, for a CSR chunk: sparse-dense products
    against the centred prototypes, the offset folded into a per-unit bias.

    Yields ``x_norm`` as the norms of the centred rows, so ``best_scores +
    x_norm**2`` is the squared distance as in the dense path.
    """
    n = X_chunk.shape[0]
    weights, bias, slope, intercept = search.sparse_terms()
    raw_norm, centred_norm = _sparse_row_norms(X_chunk, search)
    size = _block_size(search)
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        X_block = X_chunk[rows]
        with np.errstate(over="ignore", invalid="ignore"):
            scores = np.asarray(X_block @ weights, dtype=search.dtype)
            if search.scale != 1.0:
                scores *= search.dtype.type(search.scale)
            scores += bias

        def rerank(idx, candidates, X_block=X_block):
            dense = X_block[idx].toarray()
            return _rerank(dense, candidates, search, second)

        best, second_best, best_scores = _select(
            scores, raw_norm[rows], slope, intercept, second, rerank
        )
        yield rows, best, second_best, best_scores, centred_norm[rows]


def _missing_rows(X_chunk):
    """Boolean mask of the rows of a dense chunk holding a NaN, or None."""
    if sparse.issparse(X_chunk) or not _has_nan(X_chunk):
        return None
    return np.isnan(X_chunk).any(axis=1)


def _search_complete(X_chunk, search, frame, second, distances):
    n = X_chunk.shape[0]
    augmented = _augment(X_chunk, frame, search.ranking.dtype)
    best = np.empty(n, dtype=np.intp)
    second_best = np.empty(n, dtype=np.intp) if second else None
    dist = np.empty(n) if distances else None
    for rows, b, s, _, _ in _scored_blocks(X_chunk, augmented, search, second):
        best[rows] = b
        if second:
            second_best[rows] = s
        if distances:
            # By blocks: the float64 temporaries stay O(block x n_features).
            dist[rows] = _direct_distances(
                search.reference_rows(X_chunk[rows]), search.reference, b
            )
    return best, second_best, dist


def _search_masked(X_rows, search, frame, second, distances):
    n = X_rows.shape[0]
    augmented, _ = _masked_augment(X_rows, frame, search.ranking.dtype)
    best = np.empty(n, dtype=np.intp)
    second_best = np.empty(n, dtype=np.intp) if second else None
    dist = np.empty(n) if distances else None
    for rows, b, s, _, _ in _masked_scored_blocks(X_rows, augmented, search, second):
        best[rows] = b
        if second:
            second_best[rows] = s
        if distances:
            dist[rows] = _masked_direct_distances(
                search.reference_rows(X_rows[rows]),
                search.reference,
                b,
                search.centre,
            )
    return best, second_best, dist


def _search_sparse(X_chunk, search, second, distances):
    X_chunk = sparse.csr_matrix(X_chunk)
    n = X_chunk.shape[0]
    best = np.empty(n, dtype=np.intp)
    second_best = np.empty(n, dtype=np.intp) if second else None
    dist = np.empty(n) if distances else None
    for rows, b, s, _, _ in _sparse_scored_blocks(X_chunk, search, second):
        best[rows] = b
        if second:
            second_best[rows] = s
        if distances:
            dist[rows] = _sparse_direct_distances(X_chunk[rows], search, b)
    return best, second_best, dist


def _search_chunk(X_chunk, search, frame, *, second=False, distances=False):
    """Exact BMUs of one chunk of raw samples (dense, with or without NaN, or
    sparse).

    Returns ``(best, second_best or None, distances or None)``; the distances
    are the direct float64 distances to the best unit, in internal units
    (over the observed features, rescaled, for rows with NaN). Rows without
    NaN go through the fast path whatever the others hold.
    """
    if sparse.issparse(X_chunk):
        return _search_sparse(X_chunk, search, second, distances)
    missing = _missing_rows(X_chunk)
    if missing is None:
        return _search_complete(X_chunk, search, frame, second, distances)
    n = X_chunk.shape[0]
    best = np.empty(n, dtype=np.intp)
    second_best = np.empty(n, dtype=np.intp) if second else None
    dist = np.empty(n) if distances else None
    for part, search_part in (
        (~missing, _search_complete),
        (missing, _search_masked),
    ):
        if not part.any():
            continue
        b, s, d = search_part(X_chunk[part], search, frame, second, distances)
        best[part] = b
        if second:
            second_best[part] = s
        if distances:
            dist[part] = d
    return best, second_best, dist


def _best_matching_units(
    X, codebook, *, second=False, n_jobs=None, frame=None, distances=False
):
    """Exact indices of the best (and second-best) matching units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Raw data (not centred). float32 data are searched in float32 and then
        re-ranked, so the result is exact in both dtypes.
    codebook : ndarray of shape (n_units, n_features)
        Prototypes in data units.
    second : bool, default=False
        Also return the second-best unit (equal to the best for one-unit maps).
    n_jobs : int, default=None
        Threads over chunks (see ``somgen._parallel``); results do not depend
        on it.
    frame : _Frame, default=None
        Internal frame (a fitted map's); by default centred on the codebook.
    distances : bool, default=False
        Also return the float64 Euclidean distance of each sample to its best
        unit, in data units.

    Returns
    -------
    best : ndarray of shape (n_samples,), int64
    second_best : ndarray of shape (n_samples,), int64, or None
    distances : ndarray of shape (n_samples,), float64 (only if requested)
    """
    if frame is None:
        frame = _frame_from_codebook(codebook)
    search = _model_search(codebook, frame, X.dtype)

    def work(chunk):
        return _search_chunk(chunk, search, frame, second=second, distances=distances)

    parts = _map_chunks(work, X, search.n_units, _effective_n_threads(n_jobs))
    best = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    second_best = None
    if second:
        second_best = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if not distances:
        return best, second_best
    dist = np.concatenate([p[2] for p in parts]) / frame.scale
    return best, second_best, dist
