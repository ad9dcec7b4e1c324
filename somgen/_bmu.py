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

Chunks
------
Samples are processed in chunks whose size depends only on
``(n_samples, n_units)``; within a chunk, scores are computed by cache-sized row
blocks. Memory is O(chunk x n_units), X is never copied whole, and the result is
identical for any number of threads (see ``somgen._parallel``).
"""

from typing import NamedTuple

import numpy as np

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


def _column_ranges(X):
    """Per-feature minimum and maximum of ``X`` in float64, by chunks."""
    low = np.full(X.shape[1], np.inf)
    high = np.full(X.shape[1], -np.inf)
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        np.minimum(low, X[s].min(axis=0), out=low)
        np.maximum(high, X[s].max(axis=0), out=high)
    return low, high


def _frame_from_data(X):
    """Internal frame of training data, and the data's box in that frame.

    ``offset`` is the data's mean and ``scale`` a power of two chosen so that
    neither the raw nor the centred values leave ``[2**-40, 2**40]`` in
    magnitude (when they do not, ``scale`` is 1). Both come from chunked passes;
    no copy of ``X`` is made.

    Returns
    -------
    frame : _Frame
    low, high : ndarray of shape (n_features,)
        The data's bounding box in the internal frame.
    """
    low, high = _column_ranges(X)
    scale_raw = _pow2_scale(max(np.abs(low).max(), np.abs(high).max()))
    total = np.zeros(X.shape[1])
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        block = X[s] if scale_raw == 1.0 else X[s] * scale_raw
        total += block.sum(axis=0, dtype=np.float64)
    mean = total / X.shape[0]
    low = low * scale_raw - mean
    high = high * scale_raw - mean
    scale_centred = _pow2_scale(max(np.abs(low).max(), np.abs(high).max()))
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
    reference : ndarray of shape (n_units, n_features), float64
        Prototypes in the coordinates of the direct (re-ranking) distances.
    shift : ndarray of shape (n_features,) or None
        Samples enter the direct distances as ``x * scale - shift``.
    scale : float
    max_norm : float
        Largest prototype norm in the internal frame.
    unit_roundoff : float
        Rounding-error constant of the search dtype, ``(n_features + 8) * eps``.
    """

    def __init__(self, centred, reference, shift, scale, dtype):
        centred = np.asarray(centred, dtype=np.float64)
        n_units, n_features = centred.shape
        self.ranking = np.empty((n_features + 1, n_units), dtype=dtype)
        self.ranking[:-1] = -2.0 * centred.T
        sq_norms = np.einsum("ij,ij->i", centred, centred)
        self.ranking[-1] = sq_norms
        self.reference = np.ascontiguousarray(reference, dtype=np.float64)
        self.shift = shift
        self.scale = float(scale)
        self.max_norm = float(np.sqrt(sq_norms.max())) if n_units else 0.0
        self.reference_magnitude = (
            float(np.abs(self.reference).max()) if self.reference.size else 0.0
        )
        self.unit_roundoff = (n_features + 8) * float(np.finfo(dtype).eps)
        # Twice the error bound of a score, as ``slope * ||x|| + intercept``.
        m = self.max_norm
        self.margin_slope = 4.0 * self.unit_roundoff * m
        self.margin_intercept = 2.0 * self.unit_roundoff * m * m

    @property
    def n_units(self):
        return self.ranking.shape[1]

    def reference_rows(self, X_rows):
        """Samples in the coordinates of :attr:`reference`, float64."""
        rows = np.multiply(X_rows, self.scale, dtype=np.float64)
        if self.shift is not None:
            rows -= self.shift
        return rows


def _internal_search(codebook, frame, dtype):
    """Search structure for a float64 codebook already in the internal frame
    (training): direct distances use ``x * scale - offset`` against it."""
    return _SearchCodebook(codebook, codebook, frame.offset, frame.scale, dtype)


def _model_search(codebook, frame, dtype):
    """Search structure for a codebook in data units (prediction): direct
    distances are ``||x - w||`` in float64 (scaled by the frame's power of two)."""
    reference = np.asarray(codebook, dtype=np.float64) * frame.scale
    return _SearchCodebook(
        reference - frame.offset, reference, None, frame.scale, dtype
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


def _direct_distances(rows, reference, units):
    """Float64 distances ``||rows_i - reference_{units_i}||``, overflow-free."""
    picked = reference[units]
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


def _direct_bmus(rows, reference):
    """Best units of a few float64 ``rows`` by direct distances (no GEMM).

    For mini-batches so small that the fast path's bookkeeping costs more than
    the ``rows x units x features`` differences themselves; exact by
    construction. ``rows`` and ``reference`` must be in the same frame and far
    from the float64 limits (the internal frame guarantees it for training data).
    """
    diff = rows[:, None, :] - reference[None, :, :]
    return np.einsum("ikj,ikj->ik", diff, diff).argmin(axis=1)


def _rerank(X_rows, candidates, search, second):
    """Exact best (and second-best) unit among boolean ``candidates`` per row.

    Candidates are ranked by their direct float64 squared distance; exact ties
    are broken by the expanded score ``||w||^2 - 2 x.w`` (which still tells
    units apart for samples so far away that ``x - w`` rounds to ``x``), then
    by the lowest unit index.
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
        factors = _row_factors(ref_rows, search.reference_magnitude)
        f = factors[rows_idx]
        x = ref_rows[rows_idx] * f[:, None]
        w = search.reference[units] * f[:, None]
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


def _search_block(X_block, augmented, x_norm, search, scores, second):
    """Exact best (and second-best) units of one row block.

    ``x_norm`` holds the float64 norms of the block's rows in the internal
    frame; ``scores`` is a (n_rows, n_units) buffer of the search dtype,
    overwritten. Returns ``(best, second_best or None, best_scores)`` where
    ``best_scores`` are the computed (approximate) scores of the best units.
    """
    n, n_units = scores.shape
    with np.errstate(over="ignore", invalid="ignore"):
        np.matmul(augmented, search.ranking, out=scores)
    rows = np.arange(n)
    best = np.argmin(scores, axis=1)
    best_scores = scores[rows, best]
    if n_units == 1:
        return best, (best.copy() if second else None), best_scores
    # Candidates for the best unit score at most `threshold`; a NaN or infinite
    # threshold (overflow) makes every unit a candidate below.
    with np.errstate(over="ignore", invalid="ignore"):
        margin = x_norm * search.margin_slope
        margin += search.margin_intercept
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
        exact_best, exact_second = _rerank(X_block[idx], candidates, search, second)
        best[idx] = exact_best
        if second:
            second_best[idx] = exact_second
    return best, second_best, best_scores


def _scored_blocks(X_chunk, augmented, search, second):
    """Yield ``(rows, best, second_best, best_scores, x_norm)`` over cache-sized
    row blocks of a chunk.

    The block grid depends only on the chunk's shape and the search dtype, so
    results are independent of the number of threads.
    """
    n = X_chunk.shape[0]
    n_units = search.n_units
    itemsize = search.ranking.dtype.itemsize
    size = max(8, _BLOCK_BYTES // (n_units * itemsize))
    buffer = _scratch("scores", (min(size, n), n_units), search.ranking.dtype)
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


def _search_chunk(X_chunk, search, frame, *, second=False, distances=False):
    """Exact BMUs of one chunk of raw samples.

    Returns ``(best, second_best or None, distances or None)``; the distances
    are the direct float64 distances to the best unit, in internal units.
    """
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
