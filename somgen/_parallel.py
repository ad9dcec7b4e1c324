"""Chunk sizes, the thread pool and BLAS thread limits: one home for all kernels.

Parallelism model
-----------------
Every pass over the data is split into a *fixed* grid of chunks whose size
depends only on ``(n_samples, n_units)``. Chunks are processed by a pool of
Python threads (matrix products release the GIL) and their results are reduced
in chunk order, so every floating-point sum is identical whatever the number of
threads.

Inside the chunk kernels BLAS always runs on one thread. Multi-threaded BLAS on
~1 MiB blocks gains little on a quiet machine and collapses on a loaded one:
OpenBLAS workers spin-wait for each other, and when another process holds a
core every small product waits for a descheduled thread (a fit became 8-47x
slower than with explicit threads). Pinning also makes the results independent
of the thread count, since single-threaded GEMM always sums in the same order.

BLAS thread limits are process-wide state. :func:`_single_threaded_blas` is
reference-counted under a lock, so overlapping calls from several user threads
(for example 8 threads calling ``predict`` on one model) restore the original
limits exactly once, when the last of them returns. While any somgen kernel
runs, other threads of the process also see BLAS limited to one thread.

Default number of threads (``n_jobs=None``)
-------------------------------------------
All usable cores (``joblib.cpu_count()``, which honours CPU affinity and
cgroup quotas), capped by the BLAS thread limit in effect when the call starts.
That limit is what ``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS`` /
``OPENBLAS_NUM_THREADS`` and joblib's process workers set (each of the
``n_jobs`` workers of ``GridSearchCV`` gets ``cpu_count // n_jobs`` threads, or
``inner_max_num_threads`` of ``joblib.parallel_config``), so nested parallelism
does not oversubscribe the cores. An enclosing
``joblib.parallel_config(n_jobs=k)`` with ``k > 1`` sets the count to ``k``.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import threadpoolctl
from joblib import cpu_count, effective_n_jobs
from scipy import sparse
from threadpoolctl import ThreadpoolController

# Elements of the (chunk, n_units) score matrix held per chunk: 16 MiB in float64.
# Staying below glibc's 32 MiB mmap threshold lets the allocator reuse the block
# from one chunk to the next instead of faulting fresh pages in every time.
_CHUNK_ELEMENTS = 1 << 21
_MIN_CHUNK = 256
# Within a chunk, scores are computed and reduced by sub-blocks of about 4 MiB
# (in L3). Smaller, L2-sized blocks are slightly faster on one thread but stop
# scaling on two: OpenBLAS serialises many small concurrent GEMM calls, and the
# per-block Python work holds the GIL (measured in benchmarks/README.md).
_BLOCK_BYTES = 1 << 22

_SCRATCH = threading.local()

_CONTROLLER = None
_PIN_LOCK = threading.Lock()
_PIN_DEPTH = 0
_PIN_LIMITER = None
_ORIGINAL_BLAS_THREADS = None


def _controller():
    """A cached ThreadpoolController (building one inspects every loaded library)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _release_blas_control():
    """Let any thread set OpenBLAS limits next.

    threadpoolctl (>= 3.6) lets only one "controlling" thread change the limits
    of OpenBLAS's process-wide pool and silently ignores the others, so a limit
    set by one thread and restored by another would never be restored. The pin
    below changes limits only under its own lock, and hands control back after
    every change.
    """
    controller_class = getattr(threadpoolctl, "OpenBLASController", None)
    clear = getattr(controller_class, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def _blas_thread_limit():
    """Largest thread count of the loaded BLAS libraries, outside our own pins.

    Returns None when no BLAS library is visible to threadpoolctl.
    """
    with _PIN_LOCK:
        if _PIN_DEPTH > 0:
            return _ORIGINAL_BLAS_THREADS
        counts = [
            lib.num_threads
            for lib in _controller().lib_controllers
            if lib.user_api == "blas"
        ]
    return max(counts) if counts else None


def _effective_n_threads(n_jobs):
    """Number of threads for the chunk pool.

    ``None`` means all usable cores capped by the BLAS thread limit in effect
    (and by an enclosing ``joblib.parallel_config(n_jobs=...)``); negative values
    follow joblib (``-1`` all cores, ``-2`` all but one, ...).
    """
    if n_jobs is None:
        # effective_n_jobs(None) is 1 unless parallel_config(n_jobs=k) is active.
        configured = effective_n_jobs(None)
        if configured > 1:
            return int(configured)
        n_threads = cpu_count()
        limit = _blas_thread_limit()
        if limit is not None and limit > 0:
            n_threads = min(n_threads, limit)
        return max(1, int(n_threads))
    return max(1, int(effective_n_jobs(int(n_jobs))))


@contextlib.contextmanager
def _single_threaded_blas():
    """Limit BLAS to one thread for the enclosed block, safely under threads.

    Reference-counted: the first entrant sets the limit, the last one to leave
    restores the limits found by the first, so overlapping contexts from
    several threads never leave the process pinned.
    """
    global _PIN_DEPTH, _PIN_LIMITER, _ORIGINAL_BLAS_THREADS
    with _PIN_LOCK:
        if _PIN_DEPTH == 0:
            counts = [
                lib.num_threads
                for lib in _controller().lib_controllers
                if lib.user_api == "blas"
            ]
            _ORIGINAL_BLAS_THREADS = max(counts) if counts else None
            _release_blas_control()
            _PIN_LIMITER = _controller().limit(limits=1, user_api="blas")
            _release_blas_control()
        _PIN_DEPTH += 1
    try:
        yield
    finally:
        with _PIN_LOCK:
            _PIN_DEPTH -= 1
            if _PIN_DEPTH == 0:
                limiter, _PIN_LIMITER = _PIN_LIMITER, None
                _ORIGINAL_BLAS_THREADS = None
                _release_blas_control()
                limiter.restore_original_limits()
                _release_blas_control()


def _scratch(name, shape, dtype):
    """A per-thread reusable buffer of at least ``shape`` (a view of that shape).

    Chunk kernels allocate the same few large temporaries for every chunk;
    fresh multi-MiB allocations are page-faulted in each time, and concurrent
    page faults serialise the threads in the kernel. Reusing one buffer per
    thread and name keeps them warm for the duration of one ``_map_chunks``
    call. The buffer is overwritten by the next call with the same name on the
    same thread: callers must not keep it.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    cache = getattr(_SCRATCH, "buffers", None)
    if cache is None:
        cache = _SCRATCH.buffers = {}
    buffer = cache.get((name, dtype))
    if buffer is None or buffer.size < size:
        buffer = cache[(name, dtype)] = np.empty(size, dtype=dtype)
    return buffer[:size].reshape(shape)


def _release_scratch():
    """Drop the calling thread's scratch buffers."""
    _SCRATCH.__dict__.pop("buffers", None)


def _chunk_slices(n_samples, n_units, n_features=0):
    """The fixed partition of samples into chunks (independent of ``n_jobs``).

    A chunk holds about ``_CHUNK_ELEMENTS`` values of its widest temporary: the
    (chunk, n_units) scores or the (chunk, n_features + 1) copy of its samples.
    """
    width = max(n_units, n_features + 1 if n_features else 0, 1)
    size = max(_MIN_CHUNK, _CHUNK_ELEMENTS // width)
    return [slice(s, min(s + size, n_samples)) for s in range(0, n_samples, size)]


def _map_chunks(func, X, n_units, n_threads, reduce=None):
    """Apply ``func(X_chunk)`` over the fixed chunk grid, results in chunk order.

    ``n_threads`` is a resolved thread count (see :func:`_effective_n_threads`).
    With ``reduce``, results are folded as they arrive, in chunk order
    (``acc = reduce(acc, result)``), so only O(n_threads) of them are alive at
    once and the value is identical for any thread count; otherwise the list of
    results is returned. BLAS is pinned to one thread for the whole call; GEMM
    releases the GIL, so the threads scale. A plain thread pool keeps the
    per-call overhead far below joblib's.
    """
    # A sparse chunk is never copied densely: only its scores bound the size.
    n_features = 0 if sparse.issparse(X) else X.shape[1]
    slices = _chunk_slices(X.shape[0], n_units, n_features)
    n_workers = min(int(n_threads), len(slices))

    def fold(results):
        if reduce is None:
            return list(results)
        acc = None
        for i, result in enumerate(results):
            acc = result if i == 0 else reduce(acc, result)
        return acc

    with _single_threaded_blas():
        if n_workers <= 1:
            try:
                return fold(func(X[s]) for s in slices)
            finally:
                # Scratch buffers live for one call only (pool threads take
                # theirs with them when the pool shuts down).
                _release_scratch()
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            return fold(pool.map(func, (X[s] for s in slices)))
