"""Speed and correctness benchmark of somgen's SelfOrganizingMap.

Every speed claim is a ratio of two timings taken in the same run, in
alternating blocks of back-to-back runs so that a change of machine load hits
both sides alike:

1. per-epoch cost of the batch algorithm against a bare chunked GEMM of the same
   shapes (target: ratio <= 2), with a breakdown of one epoch and prototypes of
   alternative kernels;
2. bit-identity of the fitted codebook across ``n_jobs``;
3. float32 against float64 (fit time, BMU disagreement, quantization error);
4. peer libraries (MiniSom, XPySom) on the same data, grid, schedule and
   initial codebook, scored by one numpy implementation of QE and TE.

Usage::

    python benchmarks/bench_som.py [--quick] [--output PATH]

``main(argv=None)`` runs the same thing from Python and returns the exit status:
0, or 1 when the codebooks of ``n_jobs=1`` and ``n_jobs=2`` differ. A ratio above
the target prints FAIL but does not change the exit status.
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import resource
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from scipy import sparse
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

import somgen._bmu as _bmu_module
from somgen import SelfOrganizingMap
from somgen._bmu import (
    _BLOCK_BYTES,
    _blas_pinned,
    _chunk_slices,
    _prepare_codebook,
)
from somgen._initialization import _pca_init
from somgen._neighborhood import _neighborhood_weights
from somgen._topology import _pairwise_grid_sq_distances, _unit_coordinates
from somgen._training import (
    _batch_statistics,
    _neighborhood_blocks,
    _smooth_statistics,
)

TARGET_RATIO = 2.0
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "bench_som.json"

# name, n_samples, n_features, n_rows, n_cols
FULL = {
    "epoch_cases": [("A", 50_000, 32, 20, 20), ("B", 200_000, 16, 30, 30)],
    "repeats": 7,
    "fit_epochs": 10,
    "identity_epochs": 5,
    "fit_repeats": 3,
    "sub_sweep": (1 << 16, 1 << 18, 1 << 20, None),
    "peer_synthetic": (50_000, 32, 20, 20),
    "peer_digits_grid": (12, 16),
    "minisom_max_samples": 50_000,
}
QUICK = {
    "epoch_cases": [("A", 10_000, 32, 10, 10), ("B", 20_000, 16, 15, 15)],
    "repeats": 5,
    "fit_epochs": 5,
    "identity_epochs": 3,
    "fit_repeats": 1,
    "sub_sweep": (1 << 18, None),
    "peer_synthetic": (5_000, 32, 10, 10),
    "peer_digits_grid": (8, 10),
    "minisom_max_samples": 2_000,
}
_KIND = "gaussian"
# Scores per BMU sub-block in the "L2 sub-blocks" prototype (L2 is 2 MiB a core).
_SUB_BLOCK_BYTES = 1 << 18
# Every fit passes its schedule explicitly (somgen's defaults may change; MiniSom
# can only decay sigma to 1): sigma goes linearly from half the longer side of
# the grid to SIGMA_END.
SIGMA_END = 1.0


def _sigma_start(n_rows, n_cols):
    return max(n_rows, n_cols) / 2.0


def _som(n_rows, n_cols, **params):
    """A SelfOrganizingMap with the benchmark's explicit schedule."""
    return SelfOrganizingMap(
        n_rows,
        n_cols,
        neighborhood=_KIND,
        sigma_start=_sigma_start(n_rows, n_cols),
        sigma_end=SIGMA_END,
        decay="linear",
        algorithm="batch",
        **params,
    )


# --------------------------------------------------------------------- helpers
def _synthetic(n_samples, n_features, seed=0):
    """Standardized Gaussian blobs: clustered data, like real SOM inputs."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=24,
        cluster_std=2.0,
        random_state=seed,
    )
    X -= X.mean(axis=0)
    X /= X.std(axis=0)
    return X


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_digits().data)


def _initial_codebook(X, n_rows, n_cols):
    """somgen's PCA initial codebook, uncentred, float64 (shared by every fit)."""
    X = np.asarray(X, dtype=np.float64)
    offset = X.mean(axis=0)
    coords = _unit_coordinates(n_rows, n_cols, "rectangular")
    return _pca_init(X - offset, coords, np.random.RandomState(0)) + offset


def _timings(funcs, repeats, rounds=2):
    """Seconds of ``repeats`` (rounded up to a multiple of ``rounds``) runs of
    each callable.

    Each callable runs in back-to-back blocks, as the epochs of a fit do, and the
    blocks of the callables alternate ``rounds`` times so that a drift of the
    machine's load hits all of them. The first run of each block is untimed: it
    absorbs what the previous block left behind (caches, spinning BLAS threads).
    """
    per_block = -(-repeats // rounds)
    times = [[] for _ in funcs]
    for _ in range(rounds):
        for f, t in zip(funcs, times, strict=True):
            f()
            for _ in range(per_block):
                tic = time.perf_counter()
                f()
                t.append(time.perf_counter() - tic)
    return [np.array(t) for t in times]


def _medians(funcs, repeats):
    """Median seconds of each callable (see ``_timings``)."""
    return [float(np.median(t)) for t in _timings(funcs, repeats)]


def _table(headers, rows):
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(out)


def _section(title):
    print(f"\n## {title}\n", flush=True)


def _grid(n_rows, n_cols):
    return dict(n_rows=n_rows, n_cols=n_cols, topology="rectangular", periodic=False)


class _Case:
    """Centred data, codebook and grid of one per-epoch timing case."""

    def __init__(self, name, n_samples, n_features, n_rows, n_cols, dtype):
        X = _synthetic(n_samples, n_features)
        self.name = name
        self.shape = (n_samples, n_features, n_rows, n_cols)
        self.dtype = np.dtype(dtype)
        self.n_units = n_rows * n_cols
        self.grid = _grid(n_rows, n_cols)
        self.coords = _unit_coordinates(n_rows, n_cols, "rectangular")
        # As in fit: data centred on their float64 mean, kept in their dtype.
        self.Xc = (X - X.mean(axis=0)).astype(dtype)
        self.codebook = _pca_init(
            self.Xc.astype(np.float64), self.coords, np.random.RandomState(0)
        )
        self.sigma = max(n_rows, n_cols) / 4.0  # mid-schedule width
        self.slices = _chunk_slices(n_samples, self.n_units)

    @property
    def label(self):
        n, f, r, c = self.shape
        return f"{self.name} {n}x{f} {r}x{c} {self.dtype.name}"

    def epoch(self, n_jobs):
        def run():
            # As in SelfOrganizingMap.fit: BLAS held on one thread for the whole
            # epoch when n_jobs > 1, smoothing included.
            with _blas_pinned(n_jobs):
                sums, counts, _ = _batch_statistics(self.Xc, self.codebook, n_jobs)
                _smooth_statistics(
                    sums,
                    counts,
                    self.codebook,
                    self.coords,
                    self.grid,
                    self.sigma,
                    _KIND,
                )

        return run

    def gemm(self, slices=None):
        """The baseline: ``X_chunk @ W.T`` over a chunk grid, result discarded."""
        W = self.codebook.astype(self.dtype)
        slices = self.slices if slices is None else slices
        Xc = self.Xc

        def run():
            for s in slices:
                Xc[s] @ W.T

        return run

    def gemm_into_buffer(self):
        """The strict baseline: the same GEMMs written into one preallocated
        matrix (no allocation and page faults per chunk)."""
        W_t = np.ascontiguousarray(self.codebook.T, dtype=self.dtype)
        rows = max(s.stop - s.start for s in self.slices)
        buf = np.empty((rows, self.n_units), self.dtype)
        Xc = self.Xc

        def run():
            for s in self.slices:
                np.matmul(Xc[s], W_t, out=buf[: s.stop - s.start])

        return run


# ------------------------------------------------------- 1. per-epoch vs GEMM
def bench_epoch(cases, repeats):
    rows = []
    for case in cases:
        for n_jobs in (1, 2):
            with threadpool_limits(limits=n_jobs, user_api="blas"):
                t_epoch, t_gemm, t_buf = _timings(
                    [case.epoch(n_jobs), case.gemm(), case.gemm_into_buffer()],
                    repeats,
                )
            epoch, gemm = float(np.median(t_epoch)), float(np.median(t_gemm))
            gemm_buf = float(np.median(t_buf))
            ratio = epoch / gemm
            rows.append(
                dict(
                    case=case.label,
                    n_jobs=n_jobs,
                    blas_threads=n_jobs,
                    n_chunks=len(case.slices),
                    chunk_rows=case.slices[0].stop - case.slices[0].start,
                    epoch_ms=1e3 * epoch,
                    gemm_ms=1e3 * gemm,
                    ratio=ratio,
                    ratio_of_minima=float(t_epoch.min() / t_gemm.min()),
                    gemm_into_buffer_ms=1e3 * gemm_buf,
                    ratio_vs_gemm_into_buffer=epoch / gemm_buf,
                    passed=bool(ratio <= TARGET_RATIO),
                )
            )
    _section(f"1. Per-epoch time / chunked GEMM time (target <= {TARGET_RATIO})")
    print(
        "epoch = _batch_statistics + _smooth_statistics; GEMM = X_chunk @ W.T over "
        "the same chunk grid.\nn_jobs=1 vs GEMM on 1 BLAS thread; n_jobs=2 vs GEMM "
        f"on 2 BLAS threads; median of {repeats}+ runs in alternating back-to-back "
        "blocks.\n"
        "GEMM out= : the same GEMMs into one preallocated matrix (stricter).\n"
    )
    print(
        _table(
            [
                "case",
                "n_jobs",
                "chunks",
                "epoch ms",
                "GEMM ms",
                "ratio",
                "",
                "ratio of minima",
                "GEMM out= ms",
                "ratio vs out=",
            ],
            [
                [
                    r["case"],
                    r["n_jobs"],
                    f"{r['n_chunks']}x{r['chunk_rows']}",
                    f"{r['epoch_ms']:.1f}",
                    f"{r['gemm_ms']:.1f}",
                    f"{r['ratio']:.2f}",
                    "PASS" if r["passed"] else "FAIL",
                    f"{r['ratio_of_minima']:.2f}",
                    f"{r['gemm_into_buffer_ms']:.1f}",
                    f"{r['ratio_vs_gemm_into_buffer']:.2f}",
                ]
                for r in rows
            ],
        )
    )
    return rows


_STEPS = (
    "prepare codebook",
    "augment chunk [X, 1]",
    "GEMM [X, 1] @ [-2W^T; ||w||^2]",
    "argmin",
    "min scores",
    "one-hot accumulation",
    "reduce chunks",
    "neighbourhood kernel",
    "smoothing GEMM",
)


def _timed_chunk(t, X_chunk, ranking, n_units):
    """``_chunk_statistics`` with a timer per step: GEMM and argmin by the same
    cache-sized row blocks as somgen's kernel (``somgen._bmu._BLOCK_BYTES``)."""
    clock = time.perf_counter
    tic = clock()
    n, d = X_chunk.shape
    augmented = np.empty((n, d + 1), dtype=ranking.dtype)
    augmented[:, :d] = X_chunk
    augmented[:, d] = 1.0
    size = max(8, _BLOCK_BYTES // (n_units * ranking.dtype.itemsize))
    buffer = np.empty((min(size, n), n_units), dtype=ranking.dtype)
    bmu = np.empty(n, dtype=np.intp)
    err = 0.0
    tac = clock()
    t["augment chunk [X, 1]"] += tac - tic
    for start in range(0, n, size):
        rows = slice(start, min(start + size, n))
        scores = buffer[: rows.stop - start]
        tic = clock()
        np.matmul(augmented[rows], ranking, out=scores)
        tac = clock()
        t["GEMM [X, 1] @ [-2W^T; ||w||^2]"] += tac - tic
        np.argmin(scores, axis=1, out=bmu[rows])
        tic = clock()
        t["argmin"] += tic - tac
        picked = scores[np.arange(scores.shape[0]), bmu[rows]]
        err += float(picked.sum(dtype=np.float64))
        t["min scores"] += clock() - tic
    tic = clock()
    onehot = sparse.csc_matrix((np.ones(n), bmu, np.arange(n + 1)), shape=(n_units, n))
    sums = onehot @ np.asarray(X_chunk, dtype=np.float64)
    counts = np.bincount(bmu, minlength=n_units).astype(np.float64)
    t["one-hot accumulation"] += clock() - tic
    return sums, counts, err


def _split_ranking(codebook, dtype):
    """``(-2 W^T, ||w||^2)``: the two parts of somgen's folded ranking matrix."""
    ranking = _prepare_codebook(codebook, dtype)
    return np.ascontiguousarray(ranking[:-1]), ranking[-1].copy()


def _breakdown_once(case):
    """One epoch of the current kernel, replicated step by step with timers."""
    t = dict.fromkeys(_STEPS, 0.0)
    n_units = case.n_units
    clock = time.perf_counter
    tic = clock()
    ranking = _prepare_codebook(case.codebook, case.dtype)
    t["prepare codebook"] += clock() - tic
    parts = [_timed_chunk(t, case.Xc[s], ranking, n_units) for s in case.slices]
    tic = clock()
    sums = np.zeros((n_units, case.Xc.shape[1]))
    counts = np.zeros(n_units)
    for part_sums, part_counts, _ in parts:
        sums += part_sums
        counts += part_counts
    t["reduce chunks"] += clock() - tic
    new = np.array(case.codebook, dtype=np.float64, copy=True)
    blocks = _neighborhood_blocks(case.coords, case.grid, case.sigma, _KIND)
    while True:
        tic = clock()
        item = next(blocks, None)
        tac = clock()
        t["neighbourhood kernel"] += tac - tic
        if item is None:
            break
        rows, h = item
        num = h @ sums
        den = h @ counts
        ok = den > 1e-12 * max(counts.sum(), 1.0)
        new[rows][ok] = num[ok] / den[ok, None]
        t["smoothing GEMM"] += clock() - tac
    return t


def bench_breakdown(cases, repeats):
    """Median time of every step of one epoch (n_jobs=1, one BLAS thread)."""
    out = []
    _section("1b. Breakdown of one epoch (n_jobs=1, 1 BLAS thread)")
    print(
        "Steps of somgen._training._chunk_statistics / _smooth_statistics, "
        f"replicated with timers; median of {repeats} runs.\n"
    )
    for case in cases:
        with threadpool_limits(limits=1, user_api="blas"):
            _breakdown_once(case)
            runs = [_breakdown_once(case) for _ in range(repeats)]
        steps = {k: 1e3 * float(np.median([r[k] for r in runs])) for k in runs[0]}
        total = sum(steps.values())
        out.append(dict(case=case.label, steps_ms=steps, total_ms=total))
        print(case.label)
        print(
            _table(
                ["step", "ms", "% of epoch"],
                [[k, f"{v:.1f}", f"{100 * v / total:.0f}%"] for k, v in steps.items()]
                + [["total", f"{total:.1f}", "100%"]],
            )
        )
        print()
    return out


# ------------------------------------------------- 1c. prototypes of kernels
def _variant_chunk(X_chunk, W_t, sq_norms, n_units, n_features, opts, buf):
    """Statistics of one chunk.

    With ``opts["fold"]`` the last column of ``X_chunk`` is ones and the last row
    of ``W_t`` is ``||w||^2``. ``buf`` is a reusable score matrix or None. With
    ``opts["sub_rows"]`` the BMUs of the chunk are found ``sub_rows`` rows at a
    time, so each block of scores stays in the L2 cache between the GEMM that
    writes it and the argmin that reads it.
    """
    n = X_chunk.shape[0]
    step = opts["sub_rows"] or n
    bmu = np.empty(n, dtype=np.intp)
    err = 0.0
    for start in range(0, n, step):
        stop = min(start + step, n)
        if buf is None:
            scores = X_chunk[start:stop] @ W_t
        else:
            scores = np.matmul(X_chunk[start:stop], W_t, out=buf[: stop - start])
        if not opts["fold"]:
            scores += sq_norms
        np.argmin(scores, axis=1, out=bmu[start:stop])
        if not opts["lean"]:  # the per-epoch error, only printed when verbose
            picked = scores[np.arange(stop - start), bmu[start:stop]]
            err += float(picked.sum(dtype=np.float64))
    if not opts["lean"]:
        xs = X_chunk[:, :n_features]
        err += float(np.einsum("ij,ij->", xs, xs, dtype=np.float64))
    onehot = sparse.csc_matrix((np.ones(n), bmu, np.arange(n + 1)), shape=(n_units, n))
    acc = onehot @ np.asarray(X_chunk, dtype=np.float64)
    if opts["fold"]:  # the ones column sums to the counts
        return acc[:, :n_features], acc[:, n_features], err
    return acc, np.bincount(bmu, minlength=n_units).astype(np.float64), err


def _variant_slices(n_samples, n_units, elements):
    size = max(64, elements // n_units)
    return [slice(s, min(s + size, n_samples)) for s in range(0, n_samples, size)]


class _Variant:
    """A prototype epoch kernel on the data of a case. What a fit would build
    once (augmented data, grid distances, thread pool, score buffers) is built
    here or in the warm-up run, outside the timed epochs.

    Options: ``fold`` (``||w||^2`` folded into the GEMM through a column of
    ones), ``buffer`` (one reused score matrix per worker thread), ``lean`` (no
    per-epoch squared error; grid distances cached, only the kernel recomputed),
    ``pool`` (a persistent thread pool and a cached threadpoolctl controller
    instead of a joblib Parallel and threadpool_limits per epoch).
    """

    def __init__(
        self, case, *, fold, buffer, lean, pool, sub_bytes=None, elements=None
    ):
        self.case = case
        row_bytes = case.n_units * case.dtype.itemsize
        sub_rows = None if sub_bytes is None else max(8, sub_bytes // row_bytes)
        self.opts = dict(fold=fold, lean=lean, sub_rows=sub_rows)
        self.buffer = buffer
        self.n_features = case.Xc.shape[1]
        self.slices = (
            case.slices
            if elements is None
            else _variant_slices(case.Xc.shape[0], case.n_units, elements)
        )
        neg2_t, sq_norms = _split_ranking(case.codebook, case.dtype)
        if fold:
            ones = np.ones((case.Xc.shape[0], 1), dtype=case.dtype)
            self.X = np.hstack([case.Xc, ones])
            self.W_t = np.ascontiguousarray(np.vstack([neg2_t, sq_norms[None, :]]))
        else:
            self.X, self.W_t = case.Xc, neg2_t
        self.sq_norms = sq_norms
        self.sq_grid = (
            _pairwise_grid_sq_distances(case.coords, case.coords, **case.grid)
            if lean
            else None
        )
        self.local = threading.local()
        self.executor = ThreadPoolExecutor(2) if pool else None
        self.controller = ThreadpoolController() if pool else None

    def close(self):
        if self.executor is not None:
            self.executor.shutdown()

    def _buffer(self):
        if not self.buffer:
            return None
        buf = getattr(self.local, "buf", None)
        if buf is None:
            rows = self.opts["sub_rows"] or max(s.stop - s.start for s in self.slices)
            buf = self.local.buf = np.empty((rows, self.case.n_units), self.W_t.dtype)
        return buf

    def _statistics(self, n_jobs):
        args = (self.W_t, self.sq_norms, self.case.n_units, self.n_features)

        def work(chunk):
            return _variant_chunk(chunk, *args, self.opts, self._buffer())

        chunks = (self.X[s] for s in self.slices)
        if n_jobs == 1 or len(self.slices) == 1:
            parts = [work(c) for c in chunks]
        elif self.executor is not None:
            with self.controller.limit(limits=1, user_api="blas"):
                parts = list(self.executor.map(work, chunks))
        else:
            with threadpool_limits(limits=1, user_api="blas"):
                parts = Parallel(n_jobs=n_jobs, prefer="threads")(
                    delayed(work)(c) for c in chunks
                )
        sums = np.zeros((self.case.n_units, self.n_features))
        counts = np.zeros(self.case.n_units)
        for part_sums, part_counts, _ in parts:
            sums += part_sums
            counts += part_counts
        return sums, counts

    def _smooth(self, sums, counts):
        case = self.case
        if self.sq_grid is None:
            return _smooth_statistics(
                sums, counts, case.codebook, case.coords, case.grid, case.sigma, _KIND
            )
        h = _neighborhood_weights(self.sq_grid, case.sigma, _KIND)
        num, den = h @ sums, h @ counts
        new = np.array(case.codebook, dtype=np.float64, copy=True)
        ok = den > 1e-12 * max(counts.sum(), 1.0)
        new[ok] = num[ok] / den[ok, None]
        return new

    def epoch(self, n_jobs):
        def run():
            return self._smooth(*self._statistics(n_jobs))

        if self.executor is None or n_jobs == 1:
            return run

        def pinned():
            # The whole epoch, smoothing included, on one BLAS thread: no
            # multi-threaded BLAS call leaves OpenBLAS workers spinning while
            # the pool's threads run (a fit would hold this limit throughout).
            with self.controller.limit(limits=1, user_api="blas"):
                return run()

        return pinned


# Cumulative: each prototype adds one change to the previous one.
_VARIANTS = {
    "fold ||w||^2 into the GEMM": dict(fold=True, buffer=False, lean=False),
    "+ reused score buffer": dict(fold=True, buffer=True, lean=False),
    "+ no sq. error, cached grid": dict(fold=True, buffer=True, lean=True),
    "+ L2 sub-blocks for GEMM+argmin": dict(
        fold=True, buffer=True, lean=True, sub_bytes=_SUB_BLOCK_BYTES
    ),
}
_LEANEST = "+ L2 sub-blocks for GEMM+argmin"
_POOLED = "+ thread pool, epoch on 1 BLAS thread"
_CAPPED = "current, score chunk <= 16 MiB"


@contextlib.contextmanager
def _chunk_elements(elements):
    """Patch somgen._bmu._CHUNK_ELEMENTS in this process only."""
    saved = _bmu_module._CHUNK_ELEMENTS
    _bmu_module._CHUNK_ELEMENTS = elements
    try:
        yield
    finally:
        _bmu_module._CHUNK_ELEMENTS = saved


class _Capped:
    """The current kernel with float64 score chunks of 16 MiB instead of 32 MiB
    (``_CHUNK_ELEMENTS`` = 16 MiB / itemsize; float32 is unchanged)."""

    def __init__(self, case):
        self.case = case
        self.elements = (16 << 20) // case.dtype.itemsize

    def epoch(self, n_jobs):
        inner = self.case.epoch(n_jobs)

        def run():
            with _chunk_elements(self.elements):
                inner()

        return run

    def _statistics(self, n_jobs):
        with _chunk_elements(self.elements):
            return _batch_statistics(self.case.Xc, self.case.codebook, n_jobs)[:2]

    def close(self):
        pass


def bench_prototypes(cases, repeats, sub_sweep):
    """Alternative epoch kernels, each timed against the GEMM of section 1."""
    rows, sweep, augment = [], [], []
    for case in cases:
        reference = _batch_statistics(case.Xc, case.codebook, 1)[1]
        tic = time.perf_counter()
        np.hstack([case.Xc, np.ones((case.Xc.shape[0], 1), case.dtype)])
        augment.append(dict(case=case.label, ms=1e3 * (time.perf_counter() - tic)))
        for n_jobs in (1, 2):
            variants = {}
            if hasattr(_bmu_module, "_CHUNK_ELEMENTS"):
                variants[_CAPPED] = _Capped(case)
            for name, opts in _VARIANTS.items():
                variants[name] = _Variant(case, **opts, pool=False)
            if n_jobs == 2:
                variants[_POOLED] = _Variant(case, **_VARIANTS[_LEANEST], pool=True)
            funcs = [case.epoch(n_jobs), case.gemm()]
            funcs += [v.epoch(n_jobs) for v in variants.values()]
            with threadpool_limits(limits=n_jobs, user_api="blas"):
                times = _medians(funcs, repeats)
            epoch, gemm = times[0], times[1]
            rows.append(
                dict(
                    case=case.label,
                    n_jobs=n_jobs,
                    kernel="current",
                    epoch_ms=1e3 * epoch,
                    ratio=epoch / gemm,
                    speedup=1.0,
                    max_count_diff=0,
                )
            )
            for (name, variant), t in zip(variants.items(), times[2:], strict=True):
                counts = variant._statistics(n_jobs)[1]
                rows.append(
                    dict(
                        case=case.label,
                        n_jobs=n_jobs,
                        kernel=name,
                        epoch_ms=1e3 * t,
                        ratio=t / gemm,
                        speedup=epoch / t,
                        max_count_diff=int(np.abs(counts - reference).max()),
                    )
                )
                variant.close()
        # Size of the BMU sub-blocks of the leanest prototype (None: whole chunk).
        with threadpool_limits(limits=1, user_api="blas"):
            opts = dict(_VARIANTS[_LEANEST])
            funcs, labels = [case.gemm()], []
            for sub_bytes in sub_sweep:
                opts["sub_bytes"] = sub_bytes
                v = _Variant(case, **opts, pool=False)
                funcs.append(v.epoch(1))
                labels.append((sub_bytes, v.opts["sub_rows"]))
            times = _medians(funcs, repeats)
            for (sub_bytes, sub_rows), t in zip(labels, times[1:], strict=True):
                sweep.append(
                    dict(
                        case=case.label,
                        sub_block_bytes=sub_bytes,
                        sub_block_rows=sub_rows,
                        epoch_ms=1e3 * t,
                        gemm_ms=1e3 * times[0],
                        ratio=t / times[0],
                    )
                )
    _section("1d. Prototype kernels (in this script only; somgen untouched)")
    print(
        "Cumulative changes. ratio = prototype epoch / the GEMM baseline timed in "
        "the same loop;\nspeedup = current epoch / prototype epoch; count diff = "
        "max |BMU counts - counts of the current kernel|.\n"
    )
    print(
        _table(
            ["case", "n_jobs", "kernel", "epoch ms", "ratio", "speedup", "count diff"],
            [
                [
                    r["case"],
                    r["n_jobs"],
                    r["kernel"],
                    f"{r['epoch_ms']:.1f}",
                    f"{r['ratio']:.2f}",
                    f"{r['speedup']:.2f}x",
                    r["max_count_diff"],
                ]
                for r in rows
            ],
        )
    )
    print(
        "\nOne-off cost of the augmented copy [X, 1] (once per fit): "
        + "; ".join(f"{a['case']}: {a['ms']:.1f} ms" for a in augment)
    )
    print(
        "\nBMU sub-block size of the last single-thread prototype (n_jobs=1, 1 BLAS "
        "thread; 'whole chunk' = no sub-blocks):\n"
    )
    print(
        _table(
            ["case", "sub-block", "rows", "epoch ms", "GEMM ms", "ratio"],
            [
                [
                    r["case"],
                    "whole chunk"
                    if r["sub_block_bytes"] is None
                    else f"{r['sub_block_bytes'] >> 10} KiB",
                    r["sub_block_rows"] or "-",
                    f"{r['epoch_ms']:.1f}",
                    f"{r['gemm_ms']:.1f}",
                    f"{r['ratio']:.2f}",
                ]
                for r in sweep
            ],
        )
    )
    return dict(variants=rows, augment_once=augment, sub_block_sweep=sweep)


def _min_ms(f, repeats):
    f()
    best = np.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - tic)
    return 1e3 * best


def bench_diagnostics(cases, repeats):
    """Fixed costs and interactions behind the n_jobs=2 and float64 numbers."""
    out = {}
    n_tasks = max(len(c.slices) for c in cases)
    executor = ThreadPoolExecutor(2)
    controller = ThreadpoolController()

    def joblib_call():
        Parallel(n_jobs=2, prefer="threads")(delayed(abs)(i) for i in range(n_tasks))

    def limits_call():
        with threadpool_limits(limits=1, user_api="blas"):
            pass

    def controller_call():
        with controller.limit(limits=1, user_api="blas"):
            pass

    out["joblib_parallel_call_ms"] = _min_ms(joblib_call, repeats)
    out["executor_map_ms"] = _min_ms(
        lambda: list(executor.map(abs, range(n_tasks))), repeats
    )
    out["threadpool_limits_ms"] = _min_ms(limits_call, 3 * repeats)
    out["cached_controller_limit_ms"] = _min_ms(controller_call, 3 * repeats)
    executor.shutdown()
    out["n_tasks"] = n_tasks

    # OpenBLAS workers spin for a while after a multi-threaded call; a parallel
    # section that starts right after one shares the cores with them.
    case = max((c for c in cases if c.dtype == np.float32), key=lambda c: c.shape[0])
    H = np.exp(-np.random.RandomState(0).rand(case.n_units, case.n_units))
    S = np.ones((case.n_units, case.Xc.shape[1]))

    def stats():
        _batch_statistics(case.Xc, case.codebook, 2)

    def stats_after_blas():
        H @ S  # like the smoothing of the previous epoch, on 2 BLAS threads
        tic = time.perf_counter()
        stats()
        return time.perf_counter() - tic

    with threadpool_limits(limits=2, user_api="blas"):
        alone = _min_ms(stats, repeats)
        stats_after_blas()
        after = 1e3 * min(stats_after_blas() for _ in range(repeats))
    out["spin"] = dict(case=case.label, back_to_back_ms=alone, after_blas2_ms=after)

    # Page faults of the score matrices (one fresh allocation per chunk). Whether
    # glibc serves a freed 32 MiB block again or maps new pages depends on the
    # state of the heap, so this is measured, not assumed.
    faults = []
    for case in cases:
        row = dict(case=case.label)
        rows = case.slices[0].stop - case.slices[0].start
        row["chunk_MiB"] = rows * case.n_units * case.dtype.itemsize / 2**20
        with threadpool_limits(limits=1, user_api="blas"):
            for name, f in (("fresh", case.gemm()), ("out=", case.gemm_into_buffer())):
                f()
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                tic = time.perf_counter()
                for _ in range(3):
                    f()
                wall = (time.perf_counter() - tic) / 3
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                row[name] = dict(
                    ms=1e3 * wall,
                    minor_faults=(r1.ru_minflt - r0.ru_minflt) // 3,
                    sys_ms=1e3 * (r1.ru_stime - r0.ru_stime) / 3,
                )
        faults.append(row)
    out["page_faults"] = faults

    _section("1c. Diagnostics")
    print(
        f"joblib Parallel(n_jobs=2, prefer='threads') on {n_tasks} trivial tasks: "
        f"{out['joblib_parallel_call_ms']:.2f} ms a call; ThreadPoolExecutor.map: "
        f"{out['executor_map_ms']:.2f} ms"
    )
    print(
        f"threadpool_limits(1) enter+exit: {out['threadpool_limits_ms']:.3f} ms; "
        f"cached ThreadpoolController.limit: {out['cached_controller_limit_ms']:.3f} ms"
    )
    sp = out["spin"]
    print(
        f"_batch_statistics(n_jobs=2), {sp['case']}: {sp['back_to_back_ms']:.1f} ms "
        f"back to back; {sp['after_blas2_ms']:.1f} ms right after a 2-thread BLAS "
        "call (OpenBLAS workers still spinning)"
    )
    print("\nOne pass of the GEMM baseline, fresh output per chunk vs one buffer:\n")
    print(
        _table(
            [
                "case",
                "chunk MiB",
                "fresh ms",
                "faults",
                "sys ms",
                "buffer ms",
                "faults",
                "sys ms",
            ],
            [
                [
                    r["case"],
                    f"{r['chunk_MiB']:.1f}",
                    f"{r['fresh']['ms']:.1f}",
                    r["fresh"]["minor_faults"],
                    f"{r['fresh']['sys_ms']:.1f}",
                    f"{r['out=']['ms']:.1f}",
                    r["out="]["minor_faults"],
                    f"{r['out=']['sys_ms']:.1f}",
                ]
                for r in faults
            ],
        )
    )
    return out


# ------------------------------------------------------------ 2. bit-identity
def bench_identity(datasets, n_epochs):
    rows = []
    for name, X, n_rows, n_cols in datasets:
        for dtype in (np.float64, np.float32):
            Xd = X.astype(dtype)
            fits = {}
            for n_jobs in (1, 2):
                som = _som(
                    n_rows, n_cols, n_epochs=n_epochs, n_jobs=n_jobs, random_state=0
                )
                fits[n_jobs] = som.fit(Xd)
            a, b = fits[1].codebook_, fits[2].codebook_
            rows.append(
                dict(
                    data=f"{name} {X.shape[0]}x{X.shape[1]} {n_rows}x{n_cols}",
                    dtype=np.dtype(dtype).name,
                    n_epochs=n_epochs,
                    identical=bool(np.array_equal(a, b)),
                    max_abs_diff=float(np.abs(a.astype(float) - b).max()),
                    same_qe=fits[1].quantization_error_ == fits[2].quantization_error_,
                )
            )
    _section("2. Bit-identity of the codebook, n_jobs=1 vs n_jobs=2")
    print(
        _table(
            ["data", "dtype", "epochs", "np.array_equal", "max |diff|", "same QE"],
            [
                [
                    r["data"],
                    r["dtype"],
                    r["n_epochs"],
                    r["identical"],
                    f"{r['max_abs_diff']:.3g}",
                    r["same_qe"],
                ]
                for r in rows
            ],
        )
    )
    return rows


# ---------------------------------------------------- 3. float32 vs float64
def bench_dtypes(datasets, n_epochs, repeats):
    rows = []
    for name, X, n_rows, n_cols in datasets:
        init = _initial_codebook(X, n_rows, n_cols)
        X32 = X.astype(np.float32)

        def fitter(Xd, som):
            return lambda: som.fit(Xd)

        f64 = fitter(X, _som(n_rows, n_cols, n_epochs=n_epochs, init=init))
        f32 = fitter(X32, _som(n_rows, n_cols, n_epochs=n_epochs, init=init))
        t64, t32 = _medians([f64, f32], repeats)
        m64 = _som(n_rows, n_cols, n_epochs=n_epochs, init=init).fit(X)
        m32 = _som(n_rows, n_cols, n_epochs=n_epochs, init=init).fit(X32)
        # Fitted maps compared, and the pure arithmetic effect: one float64
        # codebook searched in float32 and in float64.
        fit_diff = float(np.mean(m64.predict(X) != m32.predict(X32)))
        arith_diff = float(np.mean(m64.predict(X) != m64.predict(X32)))
        rows.append(
            dict(
                data=f"{name} {X.shape[0]}x{X.shape[1]} {n_rows}x{n_cols}",
                n_epochs=n_epochs,
                fit64_s=t64,
                fit32_s=t32,
                time_ratio_64_over_32=t64 / t32,
                bmu_diff_fitted=fit_diff,
                bmu_diff_same_codebook=arith_diff,
                qe64=m64.quantization_error_,
                qe32=m32.quantization_error_,
                te64=m64.topographic_error_,
                te32=m32.topographic_error_,
            )
        )
    _section("3. float32 vs float64 (same PCA initial codebook, default threads)")
    print(
        _table(
            [
                "data",
                "fit f64 s",
                "fit f32 s",
                "f64/f32",
                "BMU diff (fits)",
                "BMU diff (same codebook)",
                "QE f64",
                "QE f32",
                "TE f64",
                "TE f32",
            ],
            [
                [
                    r["data"],
                    f"{r['fit64_s']:.2f}",
                    f"{r['fit32_s']:.2f}",
                    f"{r['time_ratio_64_over_32']:.2f}",
                    f"{100 * r['bmu_diff_fitted']:.3f}%",
                    f"{100 * r['bmu_diff_same_codebook']:.4f}%",
                    f"{r['qe64']:.5f}",
                    f"{r['qe32']:.5f}",
                    f"{r['te64']:.4f}",
                    f"{r['te32']:.4f}",
                ]
                for r in rows
            ],
        )
    )
    return rows


# -------------------------------------------------------------- 4. peers
def qe_te(X, codebook, n_rows, n_cols, chunk=4096):
    """Quantization and topographic error of a row-major codebook, in float64.

    QE is the mean Euclidean distance to the closest prototype; TE the fraction
    of samples whose two closest units are not 8-neighbours on the rectangular
    grid (unit ``k`` at row ``k // n_cols``, column ``k % n_cols``).
    """
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(codebook, dtype=np.float64).reshape(n_rows * n_cols, -1)
    offset = W.mean(axis=0)
    Wc = W - offset
    w2 = np.einsum("ij,ij->i", Wc, Wc)
    dist, best, second = [], [], []
    for start in range(0, X.shape[0], chunk):
        Xc = X[start : start + chunk] - offset
        scores = w2 - 2.0 * (Xc @ Wc.T)
        two = np.argpartition(scores, 1, axis=1)[:, :2]
        rows = np.arange(Xc.shape[0])[:, None]
        two = np.take_along_axis(
            two, np.argsort(scores[rows, two], axis=1, kind="stable"), axis=1
        )
        diff = Xc - Wc[two[:, 0]]
        dist.append(np.sqrt(np.einsum("ij,ij->i", diff, diff)))
        best.append(two[:, 0])
        second.append(two[:, 1])
    best, second = np.concatenate(best), np.concatenate(second)
    dr = np.abs(best // n_cols - second // n_cols)
    dc = np.abs(best % n_cols - second % n_cols)
    adjacent = np.maximum(dr, dc) == 1
    return float(np.mean(np.concatenate(dist))), float(np.mean(~adjacent))


def _import_quietly(name):
    """Import an optional peer library; None when it is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # XPySom prints on import
            return __import__(name)
    except ImportError:
        return None


def _run_somgen(X, n_rows, n_cols, n_epochs, init, repeats):
    def fit():
        return _som(n_rows, n_cols, n_epochs=n_epochs, init=init).fit(X)

    (t,) = _medians([fit], repeats)
    som = fit()
    return t, som.codebook_


def _run_minisom(minisom, X, n_rows, n_cols, n_epochs, init, sigma):
    som = minisom.MiniSom(
        n_rows,
        n_cols,
        X.shape[1],
        sigma=sigma,
        learning_rate=0.5,
        decay_function="linear_decay_to_zero",
        neighborhood_function="gaussian",
        topology="rectangular",
        activation_distance="euclidean",
        random_seed=0,
        sigma_decay_function="linear_decay_to_one",
    )
    # MiniSom's weights are (x, y, n_features) and unit (i, j) sits at grid
    # position (i, j): with x = n_rows, a C-order reshape is row-major.
    som._weights = init.reshape(n_rows, n_cols, -1).copy()
    tic = time.perf_counter()
    som.train_batch(X, n_epochs * X.shape[0])
    t = time.perf_counter() - tic
    return t, som.get_weights()


def _run_xpysom(xpysom, X, n_rows, n_cols, n_epochs, init, sigma):
    som = xpysom.XPySom(
        n_rows,
        n_cols,
        X.shape[1],
        sigma=sigma,
        sigmaN=SIGMA_END,
        learning_rate=0.5,
        learning_rateN=0.01,
        decay_function="linear",
        neighborhood_function="gaussian",
        std_coeff=1.0,  # exp(-d^2 / (2 std_coeff^2 sigma^2)) = somgen's gaussian
        topology="rectangular",
        activation_distance="euclidean",
        random_seed=0,
        xp=np,
    )
    som._weights = init.reshape(n_rows, n_cols, -1).astype(np.float32)
    tic = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        som.train(X, n_epochs)
    t = time.perf_counter() - tic
    return t, som.get_weights()


def bench_peers(datasets, n_epochs, repeats, minisom_max_samples):
    minisom = _import_quietly("minisom")
    xpysom = _import_quietly("xpysom")
    versions = {
        "minisom": _version("minisom") if minisom else "not installed",
        "xpysom": _version("xpysom") if xpysom else "not installed",
    }
    rows, checks = [], []
    for name, X_full, n_rows, n_cols in datasets:
        sigma = _sigma_start(n_rows, n_cols)
        init = _initial_codebook(X_full, n_rows, n_cols)
        samples = {X_full.shape[0]}
        if minisom and X_full.shape[0] > minisom_max_samples:
            samples.add(minisom_max_samples)
        ours = {}
        for n in sorted(samples):
            X = X_full[:n]
            for dtype in (np.float64, np.float32):
                t, cb = _run_somgen(
                    X.astype(dtype), n_rows, n_cols, n_epochs, init, repeats
                )
                ours[n, np.dtype(dtype).name] = t
                qe, te = qe_te(X, cb, n_rows, n_cols)
                rows.append(
                    dict(
                        data=name,
                        n_samples=n,
                        library="somgen",
                        run=f"batch, {np.dtype(dtype).name}",
                        fit_s=t,
                        qe=qe,
                        te=te,
                        time_vs_somgen=1.0,
                    )
                )
        for lib, module, runner, dtype, how in (
            (
                "minisom",
                minisom,
                _run_minisom,
                "float64",
                "train_batch: sequential online updates",
            ),
            (
                "xpysom",
                xpysom,
                _run_xpysom,
                "float32",
                "train: Kohonen batch map, numpy backend",
            ),
        ):
            if module is None:
                rows.append(
                    dict(
                        data=name,
                        n_samples=X_full.shape[0],
                        library=lib,
                        run="not installed",
                        fit_s=None,
                        qe=None,
                        te=None,
                        time_vs_somgen=None,
                    )
                )
                continue
            n = min(
                X_full.shape[0],
                minisom_max_samples if lib == "minisom" else X_full.shape[0],
            )
            X = X_full[:n]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t, weights = runner(module, X, n_rows, n_cols, n_epochs, init, sigma)
            codebook = np.asarray(weights).reshape(n_rows * n_cols, -1)
            qe, te = qe_te(X, codebook, n_rows, n_cols)
            rows.append(
                dict(
                    data=name,
                    n_samples=n,
                    library=lib,
                    run=f"{how}, {dtype}",
                    fit_s=t,
                    qe=qe,
                    te=te,
                    time_vs_somgen=t / ours[n, dtype],
                )
            )
            if lib == "minisom" and n_rows != n_cols:
                # Layout check: reading (x, y) the other way round scrambles the
                # grid, so its TE must be much worse.
                wrong = np.asarray(weights).transpose(1, 0, 2)
                _, te_wrong = qe_te(
                    X, wrong.reshape(n_rows * n_cols, -1), n_rows, n_cols
                )
                checks.append(dict(data=name, te_right=te, te_transposed=te_wrong))
    # The numpy QE/TE against somgen's own measures on one of our fits.
    name, X, n_rows, n_cols = datasets[0]
    som = _som(n_rows, n_cols, n_epochs=n_epochs, random_state=0).fit(X)
    qe, te = qe_te(X, som.codebook_, n_rows, n_cols)
    metric_check = dict(
        data=name,
        qe_numpy=qe,
        qe_somgen=som.quantization_error_,
        te_numpy=te,
        te_somgen=som.topographic_error_,
    )

    _section("4. Peer libraries (same data, grid, init, epochs and sigma schedule)")
    print(f"versions: {versions}")
    print(
        "QE/TE computed by this script (float64 numpy) on every library's codebook;"
        "\nx somgen = fit time / somgen's fit time on the same samples in the same "
        "dtype the peer computes in.\n"
    )
    print(
        _table(
            ["data", "samples", "library", "run", "fit s", "QE", "TE", "x somgen"],
            [
                [
                    r["data"],
                    r["n_samples"],
                    r["library"],
                    r["run"],
                    "-" if r["fit_s"] is None else f"{r['fit_s']:.2f}",
                    "-" if r["qe"] is None else f"{r['qe']:.4f}",
                    "-" if r["te"] is None else f"{r['te']:.4f}",
                    "-"
                    if r["time_vs_somgen"] is None
                    else f"{r['time_vs_somgen']:.1f}",
                ]
                for r in rows
            ],
        )
    )
    for c in checks:
        print(
            f"\nMiniSom layout check ({c['data']}): TE as (x=rows, y=cols) "
            f"{c['te_right']:.4f}; read transposed {c['te_transposed']:.4f}"
        )
    print(
        f"numpy QE/TE vs somgen's own ({metric_check['data']}): QE "
        f"{metric_check['qe_numpy']:.6f} vs {metric_check['qe_somgen']:.6f}, TE "
        f"{metric_check['te_numpy']:.4f} vs {metric_check['te_somgen']:.4f}"
    )
    return dict(
        versions=versions, rows=rows, layout_checks=checks, metric_check=metric_check
    )


# ------------------------------------------------------------------ main
def _version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meta(argv, quick):
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(["python benchmarks/bench_som.py", *argv]),
        mode="quick" if quick else "full",
        machine=platform.machine(),
        processor=_cpu_model(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        versions={
            k: _version(k)
            for k in (
                "numpy",
                "scipy",
                "scikit-learn",
                "joblib",
                "threadpoolctl",
                "minisom",
                "xpysom",
            )
        },
        somgen=somgen.__version__,
        blas=[
            {
                k: d.get(k)
                for k in ("internal_api", "version", "num_threads", "architecture")
            }
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ],
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (< 60 s)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    tic = time.perf_counter()
    meta = _meta(argv, args.quick)
    meta["loadavg_start"] = os.getloadavg()
    print(f"# somgen benchmark ({meta['mode']}), {meta['date']}")
    print(f"cpus={meta['cpu_count']} python={meta['python']} {meta['versions']}")

    cases = [
        _Case(name, n, f, r, c, dtype)
        for name, n, f, r, c in cfg["epoch_cases"]
        for dtype in (np.float64, np.float32)
    ]
    results = dict(meta=meta)
    results["epoch"] = bench_epoch(cases, cfg["repeats"])
    results["breakdown"] = bench_breakdown(cases, cfg["repeats"])
    results["diagnostics"] = bench_diagnostics(cases, cfg["repeats"])
    results["prototypes"] = bench_prototypes(cases, cfg["repeats"], cfg["sub_sweep"])
    del cases

    fit_sets = [
        (name, _synthetic(n, f), r, c) for name, n, f, r, c in cfg["epoch_cases"]
    ]
    results["bit_identity"] = bench_identity(fit_sets, cfg["identity_epochs"])
    results["dtypes"] = bench_dtypes(fit_sets, cfg["fit_epochs"], cfg["fit_repeats"])
    del fit_sets

    n, f, r, c = cfg["peer_synthetic"]
    peer_sets = [
        ("digits", _digits(), *cfg["peer_digits_grid"]),
        ("synthetic", _synthetic(n, f), r, c),
    ]
    results["peers"] = bench_peers(
        peer_sets, cfg["fit_epochs"], cfg["fit_repeats"], cfg["minisom_max_samples"]
    )

    meta["loadavg_end"] = os.getloadavg()
    meta["elapsed_s"] = time.perf_counter() - tic
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=_json_default))
    identical = all(r["identical"] for r in results["bit_identity"])
    n_fail = sum(not r["passed"] for r in results["epoch"])
    print(
        f"\nper-epoch ratio: {len(results['epoch']) - n_fail} PASS, {n_fail} FAIL; "
        f"bit-identity across n_jobs: {'OK' if identical else 'FAILED'}; "
        f"{meta['elapsed_s']:.0f} s; results in {args.output}"
    )
    return 0 if identical else 1


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


if __name__ == "__main__":
    sys.exit(main())
