"""SelfOrganizingMap on Dask: overhead against the in-memory fit, and out of core.

1. Overhead. Seeded Gaussian blobs, 2,000,000 x 16 float32 (``--quick``:
   20,000 x 16), a 30 x 30 map (quick: 10 x 10), the same initial codebook
   (the in-memory PCA initialisation, passed as ``init``). The script times
   every batch epoch of the in-memory fit (``n_jobs`` threads) and of Dask fits
   on the same data, in the same run: the threaded scheduler (blocks of
   ``--block-rows`` rows over the in-memory array) and a ``LocalCluster``
   (``--n-workers`` processes of ``--threads-per-worker`` threads, the blocks
   persisted on the workers first). It reports the median epoch time of each
   and its ratio to the in-memory one (target: at most 1.5), and the largest
   relative difference of the Dask codebooks from the in-memory one (the
   equality contract: 1e-10).

2. Out of core. A lazily generated dask array, 400,000,000 x 16 float32
   (25.6 GB; quick: 200,000 x 16) whose blocks are drawn on the fly from seeded
   blobs (the block index seeds the generator, so a block regenerated after a
   lost worker is the same), is fitted by a 20 x 20 map for 2 epochs (quick:
   5 x 5) on a fresh ``LocalCluster``. Nothing is persisted: every pass
   regenerates the data, which is the point (they do not fit in memory). The
   script reports the time of every pass, ``samples * epochs / s`` of the
   epochs against the in-memory rate (an in-memory fit of the same map on
   ``--memory-rows`` generated rows), the peak resident memory of every worker
   process and of the client (``getrusage``; target: a few blocks, far below
   the data size), and the time and value of ``score`` of a
   ``SOMGenerativeModel`` fitted in memory on a subsample (its map frozen: the
   one fitted on Dask) and evaluated lazily on the whole array.

Load averages (1, 5, 15 min) are recorded before and after each part: the
figures are only meaningful on a quiet machine.

Usage::

    python benchmarks/bench_dask.py [--quick] [--output PATH] [--n-jobs N]
        [--n-workers N] [--threads-per-worker N] [--block-rows N]
        [--rows N] [--ooc-rows N] [--memory-rows N]
        [--scheduler-address ADDRESS] [--skip-overhead] [--skip-out-of-core]

``--scheduler-address`` runs both parts on an existing cluster instead of
local ones (the peak memory is then that of its workers' lifetimes).
``main(argv=None)`` runs the same thing from Python and returns the results.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

import dask
import dask.array as da
import distributed
from sklearn.frozen import FrozenEstimator

import somgen._dask as dask_backend
from somgen import SelfOrganizingMap, SOMGenerativeModel

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_dask.json"
OVERHEAD_TARGET = 1.5
N_FEATURES = 16
N_CENTRES = 8

FULL = {
    "rows": 2_000_000,
    "map": (30, 30),
    "n_epochs": 5,
    "block_rows": 200_000,
    "ooc_rows": 400_000_000,
    "ooc_block_rows": 1_000_000,
    "ooc_map": (20, 20),
    "ooc_epochs": 2,
    "memory_rows": 2_000_000,
    "subsample": 200_000,
}
QUICK = {
    "rows": 20_000,
    "map": (10, 10),
    "n_epochs": 3,
    "block_rows": 5_000,
    "ooc_rows": 200_000,
    "ooc_block_rows": 20_000,
    "ooc_map": (5, 5),
    "ooc_epochs": 2,
    "memory_rows": 20_000,
    "subsample": 5_000,
}


# ----------------------------------------------------------------------- data
def _centres(seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(scale=5.0, size=(N_CENTRES, N_FEATURES))


def _blob_rows(n_rows, seed, centres):
    """``n_rows`` seeded blob samples, float32."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(N_CENTRES, size=n_rows)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    X += centres[labels].astype(np.float32)
    return X


def _blob_block(block_id=None, block_info=None, centres=None, stream=0):
    """One block of the lazily generated array, seeded by its index."""
    n_rows = block_info[None]["chunk-shape"][0]
    return _blob_rows(n_rows, [stream, block_id[0]], centres)


def lazy_blobs(n_rows, block_rows, stream=0):
    """A dask array of seeded blobs generated block by block on demand
    (``stream`` and the block index seed each block)."""
    sizes = [block_rows] * (n_rows // block_rows)
    if n_rows % block_rows:
        sizes.append(n_rows % block_rows)
    return da.map_blocks(
        _blob_block,
        chunks=(tuple(sizes), (N_FEATURES,)),
        dtype=np.float32,
        meta=np.empty((0, 0), dtype=np.float32),
        centres=_centres(),
        stream=stream,
    )


# -------------------------------------------------------------------- timing
class _EpochTimer:
    """Wall time of every batch epoch, in memory and on Dask (wrapping the
    private epoch functions for the duration of a ``with`` block)."""

    def __init__(self):
        self.times = []

    def _wrap(self, func):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.times.append(time.perf_counter() - start)

        return timed

    def __enter__(self):
        self._memory = SelfOrganizingMap._batch_epoch
        self._dask = dask_backend._epoch
        SelfOrganizingMap._batch_epoch = self._wrap(self._memory)
        dask_backend._epoch = self._wrap(self._dask)
        return self

    def __exit__(self, *exc):
        SelfOrganizingMap._batch_epoch = self._memory
        dask_backend._epoch = self._dask


def _timed_fit(X, params):
    with _EpochTimer() as timer:
        start = time.perf_counter()
        som = SelfOrganizingMap(**params).fit(X)
        total = time.perf_counter() - start
    return som, timer.times, total


def _load():
    return list(os.getloadavg())


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker_peak_rss_mib():
    """Peak resident memory of this process's own address space (MiB).

    ``/proc/self/status`` ``VmHWM`` where it exists: ``getrusage``'s
    ``ru_maxrss`` survives fork and exec on Linux, so a worker spawned by a
    client that had used 700 MiB reports at least 700 MiB whatever it used
    itself (the run of record measured that way: see README_dask.md).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _cluster(args):
    """A client on ``--scheduler-address`` or on a fresh LocalCluster."""
    if args.scheduler_address:
        return distributed.Client(args.scheduler_address), None
    cluster = distributed.LocalCluster(
        n_workers=args.n_workers,
        threads_per_worker=args.threads_per_worker,
        processes=True,
        dashboard_address=":0",
    )
    return distributed.Client(cluster), cluster


# ------------------------------------------------------------------ overhead
def overhead(config, args):
    n_rows, n_cols = config["map"]
    # The same seeded blocks in memory and on the cluster (generated there).
    X_lazy = lazy_blobs(config["rows"], config["block_rows"], stream=0)
    X = X_lazy.compute(scheduler="threads")
    load_before = _load()
    init = SelfOrganizingMap(n_rows, n_cols, n_epochs=1, random_state=0)
    init = init.fit(X[: min(len(X), 200_000)]).codebook_.astype(np.float64)
    params = dict(
        n_rows=n_rows,
        n_cols=n_cols,
        n_epochs=config["n_epochs"],
        init=init,
        n_jobs=args.n_jobs,
        random_state=0,
    )
    runs = []
    reference, times, total = _timed_fit(X, params)
    runs.append(("in-memory", times, total, reference))
    X_dask = da.from_array(X, chunks=(config["block_rows"], N_FEATURES))
    with dask.config.set(scheduler="threads", num_workers=args.n_jobs):
        som, times, total = _timed_fit(X_dask, params)
    runs.append(("dask threads", times, total, som))
    if not args.no_cluster:
        client, cluster = _cluster(args)
        try:
            start = time.perf_counter()
            persisted = client.persist(X_lazy)
            distributed.wait(persisted)
            persist_s = time.perf_counter() - start
            som, times, total = _timed_fit(persisted, params)
            runs.append(("dask LocalCluster", times, total, som))
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        persist_s = None
    base = statistics.median(runs[0][1])
    rows = []
    for name, times, total, som in runs:
        epoch = statistics.median(times)
        row = {
            "run": name,
            "epoch_s_median": epoch,
            "epoch_s": times,
            "fit_s": total,
            "ratio_to_in_memory": epoch / base,
            "codebook_rel_diff": _relative_difference(
                som.codebook_.astype(np.float64), reference.codebook_
            ),
        }
        rows.append(row)
        print(
            f"{name:18s} epoch {epoch:8.3f} s  x{row['ratio_to_in_memory']:.2f} "
            f"(target <= {OVERHEAD_TARGET})  fit {total:7.2f} s  "
            f"codebook rel. diff {row['codebook_rel_diff']:.1e}"
        )
    return {
        "shape": [config["rows"], N_FEATURES],
        "dtype": "float32",
        "map": list(config["map"]),
        "n_epochs": config["n_epochs"],
        "block_rows": config["block_rows"],
        "persist_s": persist_s,
        "runs": rows,
        "target_met": all(r["ratio_to_in_memory"] <= OVERHEAD_TARGET for r in rows),
        "load_before": load_before,
        "load_after": _load(),
    }


# -------------------------------------------------------------- out of core
def out_of_core(config, args):
    n_rows, n_cols = config["ooc_map"]
    epochs = config["ooc_epochs"]
    X = lazy_blobs(config["ooc_rows"], config["ooc_block_rows"], stream=1)
    data_gib = X.nbytes / 2**30
    load_before = _load()
    params = dict(n_rows=n_rows, n_cols=n_cols, n_epochs=epochs, random_state=0)

    # The in-memory rate on generated rows of the same law.
    X_memory = lazy_blobs(config["memory_rows"], config["ooc_block_rows"], stream=2)
    X_memory = X_memory.compute(scheduler="threads")
    _, memory_times, _ = _timed_fit(X_memory, dict(params, n_jobs=args.n_jobs))
    memory_rate = config["memory_rows"] / statistics.median(memory_times)
    del X_memory

    client, cluster = _cluster(args)
    try:
        som, times, total = _timed_fit(X, params)
        rate = config["ooc_rows"] / statistics.median(times)
        # The generative model: fitted in memory on a subsample, on the map
        # fitted on Dask, then scored lazily over the whole array.
        subsample = X[: config["subsample"]].compute()
        model = SOMGenerativeModel(
            som=FrozenEstimator(som), covariance_type="diag", random_state=0
        ).fit(subsample)
        start = time.perf_counter()
        score = model.score(X)
        score_s = time.perf_counter() - start
        workers = client.run(_worker_peak_rss_mib)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    block_mib = config["ooc_block_rows"] * N_FEATURES * 4 / 2**20
    result = {
        "shape": [config["ooc_rows"], N_FEATURES],
        "data_gib": data_gib,
        "block_rows": config["ooc_block_rows"],
        "block_mib": block_mib,
        "map": list(config["ooc_map"]),
        "n_epochs": epochs,
        "fit_s": total,
        "epoch_s": times,
        "samples_epochs_per_s": rate,
        "in_memory_samples_epochs_per_s": memory_rate,
        "rate_ratio": rate / memory_rate,
        "quantization_error": som.quantization_error_,
        "score": score,
        "score_s": score_s,
        "worker_peak_rss_mib": workers,
        "client_peak_rss_mib": _peak_rss_mib(),
        "load_before": load_before,
        "load_after": _load(),
    }
    peak = max(workers.values())
    print(
        f"out of core: {config['ooc_rows']:,} x {N_FEATURES} float32 "
        f"({data_gib:.2f} GiB, blocks of {block_mib:.0f} MiB), {n_rows}x{n_cols} "
        f"map, {epochs} epochs: fit {total:.1f} s, "
        f"{rate:,.0f} samples*epochs/s ({rate / memory_rate:.2f} x in-memory "
        f"{memory_rate:,.0f}); peak worker RSS {peak:.0f} MiB; score "
        f"{score:.4f} in {score_s:.1f} s"
    )
    return result


# ---------------------------------------------------------------------- main
def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--block-rows", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--ooc-rows", type=int, default=None)
    parser.add_argument("--memory-rows", type=int, default=None)
    parser.add_argument("--scheduler-address", default=None)
    parser.add_argument("--no-cluster", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-out-of-core", action="store_true")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    for key in ("block_rows", "rows", "ooc_rows", "memory_rows"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "somgen": somgen.__version__,
            "numpy": np.__version__,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "config": config,
            "args": {k: str(v) for k, v in vars(args).items()},
        }
    }
    if not args.skip_overhead:
        results["overhead"] = overhead(config, args)
    if not args.skip_out_of_core:
        results["out_of_core"] = out_of_core(config, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.output}")
    return results


if __name__ == "__main__":
    main()
