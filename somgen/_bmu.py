"""Chunked best- and second-best-matching-unit search.

Squared distances are expanded as ``||x||^2 - 2 x.w + ||w||^2``. The ``||x||^2``
term does not change which unit is closest, so the search ranks units by
``||w||^2 - 2 x.w``. The norms are folded into the matrix product: every chunk
of samples gets a column of ones and the codebook the row ``||w||^2``, so a
single GEMM ``[X, 1] @ [-2 W^T; ||w||^2]`` yields the ranking scores, with no
extra pass over the (chunk, n_units) matrix. Callers pass data and codebook
*centred* on the same float64 offset, which keeps the expansion accurate in
float32.

Samples are processed in chunks of a size that depends only on
``(n_samples, n_units)``, so memory is O(chunk x n_units) and the partition -- and
hence every floating-point sum built on it -- is identical whatever ``n_jobs`` is.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from joblib import effective_n_jobs
from threadpoolctl import ThreadpoolController

# Elements of the (chunk, n_units) score matrix held per chunk: 16 MiB in float64.
# Staying below glibc's 32 MiB mmap threshold lets the allocator reuse the block
# from one chunk to the next instead of faulting fresh pages in every time.
_CHUNK_ELEMENTS = 1 << 21
_MIN_CHUNK = 256
# Within a chunk, scores are computed and reduced by sub-blocks of about 1 MiB so
# that each block is still in the L2 cache when the argmin reads it back.
_BLOCK_BYTES = 1 << 20

_THREADPOOL_CONTROLLER = None


def _blas_controller():
    """A cached ThreadpoolController (building one inspects every loaded library)."""
    global _THREADPOOL_CONTROLLER
    if _THREADPOOL_CONTROLLER is None:
        _THREADPOOL_CONTROLLER = ThreadpoolController()
    return _THREADPOOL_CONTROLLER


def _blas_pinned(n_jobs):
    """Context pinning BLAS to one thread when ``n_jobs`` workers will run.

    Held for a whole fit, not only around the chunk pool: after a multi-threaded
    BLAS call (such as the neighbourhood smoothing) OpenBLAS leaves its workers
    spinning, and they steal the cores from the next epoch's chunk threads.
    """
    if effective_n_jobs(n_jobs) > 1:
        return _blas_controller().limit(limits=1, user_api="blas")
    return contextlib.nullcontext()


def _chunk_slices(n_samples, n_units):
    """The fixed partition of samples into chunks (independent of ``n_jobs``)."""
    size = max(_MIN_CHUNK, _CHUNK_ELEMENTS // max(n_units, 1))
    return [slice(s, min(s + size, n_samples)) for s in range(0, n_samples, size)]


def _prepare_codebook(codebook, dtype):
    """The ranking matrix ``[-2 W^T; ||w||^2]``, shape (n_features + 1, n_units).

    Computed in float64 from the (centred) codebook and cast once to ``dtype``.
    """
    codebook = np.asarray(codebook, dtype=np.float64)
    ranking = np.empty((codebook.shape[1] + 1, codebook.shape[0]), dtype=dtype)
    ranking[:-1] = -2.0 * codebook.T
    ranking[-1] = np.einsum("ij,ij->i", codebook, codebook)
    return ranking


def _augment(X_chunk, dtype):
    """``[X_chunk, 1]`` in ``dtype``, the left operand of the ranking GEMM."""
    n, d = X_chunk.shape
    augmented = np.empty((n, d + 1), dtype=dtype)
    augmented[:, :d] = X_chunk
    augmented[:, d] = 1.0
    return augmented


def _scored_blocks(X_chunk, ranking):
    """Yield ``(rows, scores)`` over cache-sized row blocks of a chunk.

    ``scores`` is a reused buffer holding the ranking scores of ``rows``; it is
    overwritten by the next block. The block grid depends only on the chunk's
    shape and dtype, so results stay independent of ``n_jobs``.
    """
    n = X_chunk.shape[0]
    n_units = ranking.shape[1]
    size = max(8, _BLOCK_BYTES // (n_units * ranking.dtype.itemsize))
    augmented = _augment(X_chunk, ranking.dtype)
    buffer = np.empty((min(size, n), n_units), dtype=ranking.dtype)
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        scores = buffer[: rows.stop - start]
        np.matmul(augmented[rows], ranking, out=scores)
        yield rows, scores


def _bmu_chunk(X_chunk, ranking, second=False):
    """Best (and optionally second-best) unit of each sample in a chunk."""
    n = X_chunk.shape[0]
    best = np.empty(n, dtype=np.intp)
    second_best = np.empty(n, dtype=np.intp) if second else None
    for rows, scores in _scored_blocks(X_chunk, ranking):
        np.argmin(scores, axis=1, out=best[rows])
        if not second:
            continue
        if scores.shape[1] == 1:
            second_best[rows] = best[rows]
            continue
        scores[np.arange(scores.shape[0]), best[rows]] = np.inf
        np.argmin(scores, axis=1, out=second_best[rows])
    return best, second_best


def _map_chunks(func, X, n_units, n_jobs):
    """Apply ``func(X_chunk)`` over the fixed chunk grid, results in chunk order.

    With several workers, BLAS is pinned to one thread so that ``n_jobs``
    threads do not oversubscribe the cores; GEMM releases the GIL, so threads
    scale. A plain thread pool keeps the per-call overhead far below joblib's.
    """
    slices = _chunk_slices(X.shape[0], n_units)
    n_workers = min(effective_n_jobs(n_jobs), len(slices))
    if n_workers <= 1:
        return [func(X[s]) for s in slices]
    with _blas_controller().limit(limits=1, user_api="blas"):
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return list(pool.map(func, (X[s] for s in slices)))


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
    ranking = _prepare_codebook(codebook, X.dtype)

    def work(chunk):
        return _bmu_chunk(chunk, ranking, second=second)

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
