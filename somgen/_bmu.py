"""Chunked best- and second-best-matching-unit search.

Squared distances are expanded as ``||x||^2 - 2 x.w + ||w||^2``. The ``||x||^2``
term does not change which unit is closest, so the search ranks units by
``||w||^2 - 2 x.w``: one GEMM per chunk of samples against ``-2 W^T`` plus a
broadcast of the folded norms. Callers pass data and codebook *centred* on the
same float64 offset, which keeps the expansion accurate in float32.

Samples are processed in chunks of a size that depends only on
``(n_samples, n_units)``, so memory is O(chunk x n_units) and the partition -- and
hence every floating-point sum built on it -- is identical whatever ``n_jobs`` is.
"""

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

# Elements of the (chunk, n_units) score matrix held per chunk (~16 MiB in float32).
_CHUNK_ELEMENTS = 1 << 22
_MIN_CHUNK = 256


def _chunk_slices(n_samples, n_units):
    """The fixed partition of samples into chunks (independent of ``n_jobs``)."""
    size = max(_MIN_CHUNK, _CHUNK_ELEMENTS // max(n_units, 1))
    return [slice(s, min(s + size, n_samples)) for s in range(0, n_samples, size)]


def _prepare_codebook(codebook, dtype):
    """Return ``(-2 W^T, ||w||^2)`` in ``dtype`` for the ranking GEMM."""
    codebook = np.asarray(codebook, dtype=np.float64)
    neg2_t = np.ascontiguousarray((-2.0 * codebook).T, dtype=dtype)
    sq_norms = np.einsum("ij,ij->i", codebook, codebook).astype(dtype)
    return neg2_t, sq_norms


def _rank_scores(X_chunk, neg2_t, sq_norms):
    """``||w||^2 - 2 x.w`` for a chunk, shape (chunk, n_units)."""
    scores = X_chunk @ neg2_t
    scores += sq_norms
    return scores


def _bmu_chunk(X_chunk, neg2_t, sq_norms, second=False):
    """Best (and optionally second-best) unit of each sample in a chunk."""
    scores = _rank_scores(X_chunk, neg2_t, sq_norms)
    best = np.argmin(scores, axis=1)
    if not second:
        return best, None
    if scores.shape[1] == 1:
        return best, best.copy()
    scores[np.arange(scores.shape[0]), best] = np.inf
    return best, np.argmin(scores, axis=1)


def _map_chunks(func, X, n_units, n_jobs):
    """Apply ``func(X_chunk)`` over the fixed chunk grid, results in chunk order.

    BLAS is pinned to one thread per worker so ``n_jobs`` threads do not
    oversubscribe the cores; GEMM releases the GIL, so threads scale.
    """
    slices = _chunk_slices(X.shape[0], n_units)
    if n_jobs is None or n_jobs == 1 or len(slices) == 1:
        return [func(X[s]) for s in slices]
    with threadpool_limits(limits=1, user_api="blas"):
        return Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(func)(X[s]) for s in slices
        )


def _best_matching_units(X, codebook, *, second=False, n_jobs=None):
    """Indices of the best (and second-best) matching units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Centred data.
    codebook : ndarray of shape (n_units, n_features)
        Codebook centred on the same offset as ``X``.
    second : bool, default=False
        Also return the second-best unit (equal to the best for one-unit maps).
    n_jobs : int, default=None
        Threads over chunks; results do not depend on it.

    Returns
    -------
    best : ndarray of shape (n_samples,), int64
    second_best : ndarray of shape (n_samples,), int64, or None
    """
    neg2_t, sq_norms = _prepare_codebook(codebook, X.dtype)

    def work(chunk):
        return _bmu_chunk(chunk, neg2_t, sq_norms, second=second)

    parts = _map_chunks(work, X, codebook.shape[0], n_jobs)
    best = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    if not second:
        return best, None
    return best, np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False)


def _sq_distances_to_units(X, codebook, units):
    """Exact squared distances ``||x_i - w_{units_i}||^2`` in float64, chunked."""
    out = np.empty(X.shape[0])
    codebook = np.asarray(codebook, dtype=np.float64)
    for s in _chunk_slices(X.shape[0], X.shape[1]):
        diff = np.asarray(X[s], dtype=np.float64) - codebook[units[s]]
        out[s] = np.einsum("ij,ij->i", diff, diff)
    return out
