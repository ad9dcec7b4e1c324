"""Speed, exactness and memory of SelfOrganizingMap as users run it.

Sections (every speed figure is a ratio to a baseline timed in the same run):

1. Quiet per-epoch time of ``fit`` (default parameters, batch) against a bare
   chunked GEMM ``X @ W.T`` of the same shapes on the same number of threads,
   for ``n_jobs`` = None (the default), 1 and 2, float32 and float64; and the
   thread scaling ``epoch(n_jobs=1) / epoch(n_jobs=2)``.
2. The same per-epoch times while a competing process runs multi-threaded
   numpy (a loop of 300x300 float64 matmuls, started by this script): the ratio
   loaded / quiet, with the load average beside it.
3. Bit-identity of the fitted codebook across ``n_jobs``.
4. Cost of the end-of-fit quality pass (exact best + second-best unit and the
   distance to the best, for QE / TE) in epochs.
5. Exactness: BMUs against a brute-force float64 search on clusters far from
   the mean, with the fast expanded GEMM ranking alone shown for contrast;
   the float32 collapse workloads (random init, linear decay) with QE / TE of
   float32 and float64 side by side.
6. Big maps: per-epoch time of a 200x200 and a 1000x1000 map on few samples,
   and ``u_matrix`` of the 1000x1000 map.
7. Peak memory (tracemalloc) of fit / predict / transform / score on 2,000,000
   rows, and of ``SOMGenerativeModel.predict`` / ``score_samples``, against
   the input's size.

Run it alone on the machine (nothing else timing code on the same cores):
``python benchmarks/bench_som.py`` (``--quick`` for a smoke run).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import somgen
from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._bmu import _best_matching_units
from somgen._parallel import _chunk_slices, _single_threaded_blas
from somgen.metrics import u_matrix

DEFAULT_OUTPUT = Path(__file__).with_name("results") / "bench_som.json"
_BUSY = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((300, 300))\n"
    "while True:\n"
    "    a = a @ a\n"
    "    a /= np.abs(a).max()\n"
)


def _table(headers, rows):
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(headers)
    ]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print()


def _section(title):
    print(f"## {title}\n")


def _load():
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}"


def _min_time(func, repeats):
    best = np.inf
    for _ in range(repeats):
        tic = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - tic)
    return best


def _median_time(func, repeats):
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        func()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def _data(n_samples, n_features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 2.0, n_features)
    return X.astype(dtype)


def _per_epoch(X, side, n_jobs, repeats, timer):
    """Per-epoch time of the public fit: (fit(5 epochs) - fit(1 epoch)) / 4."""

    def fit(n_epochs):
        return lambda: SelfOrganizingMap(
            side, side, n_epochs=n_epochs, n_jobs=n_jobs, random_state=0
        ).fit(X)

    long, short = timer(fit(5), repeats), timer(fit(1), repeats)
    return max(long - short, 1e-9) / 4.0


def _bare_gemm(X, side, n_threads, repeats):
    """Chunked GEMM X @ W.T into a reused buffer, BLAS on ``n_threads``."""
    n_units = side * side
    W_t = np.ascontiguousarray(X[:n_units].T)
    slices = _chunk_slices(X.shape[0], n_units, X.shape[1])
    buffer = np.empty((slices[0].stop - slices[0].start, n_units), dtype=X.dtype)

    def run():
        for s in slices:
            np.matmul(X[s], W_t, out=buffer[: s.stop - s.start])

    with threadpool_limits(limits=n_threads, user_api="blas"):
        return _min_time(run, repeats)


class _BusyProcess:
    """A competing multi-threaded numpy process, for the load test."""

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BUSY],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2.0)  # let it reach its steady state
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(10)
        time.sleep(1.0)


def bench_epoch(cases, repeats, results):
    _section("1-2. Per-epoch time: quiet vs a bare GEMM, and under load")
    rows, records = [], []
    for n_samples, n_features, side in cases:
        for dtype in (np.float32, np.float64):
            X = _data(n_samples, n_features, dtype)
            label = f"{n_samples}x{n_features} {side}x{side} {np.dtype(dtype).name}"
            gemm = {t: _bare_gemm(X, side, t, repeats) for t in (1, 2)}
            quiet = {
                n_jobs: _per_epoch(X, side, n_jobs, repeats, _min_time)
                for n_jobs in (None, 1, 2)
            }
            quiet_load = _load()
            with _BusyProcess():
                loaded = {
                    n_jobs: _per_epoch(X, side, n_jobs, repeats, _median_time)
                    for n_jobs in (None, 1, 2)
                }
                busy_load = _load()
            for n_jobs in (None, 1, 2):
                threads = 1 if n_jobs == 1 else 2
                ratio_gemm = quiet[n_jobs] / gemm[threads]
                ratio_load = loaded[n_jobs] / quiet[n_jobs]
                record = dict(
                    case=label,
                    n_jobs=n_jobs,
                    epoch_s=quiet[n_jobs],
                    gemm_s=gemm[threads],
                    ratio_gemm=ratio_gemm,
                    pass_gemm=ratio_gemm <= 1.5,
                    loaded_epoch_s=loaded[n_jobs],
                    ratio_load=ratio_load,
                    pass_load=ratio_load <= 2.5,
                    load_quiet=quiet_load,
                    load_busy=busy_load,
                )
                records.append(record)
                rows.append(
                    [
                        label,
                        str(n_jobs),
                        f"{1e3 * quiet[n_jobs]:.1f}",
                        f"{1e3 * gemm[threads]:.1f} ({threads}t)",
                        f"{ratio_gemm:.2f} {'PASS' if ratio_gemm <= 1.5 else 'FAIL'}",
                        f"{1e3 * loaded[n_jobs]:.1f}",
                        f"{ratio_load:.2f} {'PASS' if ratio_load <= 2.5 else 'FAIL'}",
                        f"{quiet_load} / {busy_load}",
                    ]
                )
    _table(
        [
            "case",
            "n_jobs",
            "epoch ms",
            "GEMM ms",
            "epoch/GEMM (<=1.5)",
            "loaded ms",
            "loaded/quiet (<=2.5)",
            "loadavg quiet/busy",
        ],
        rows,
    )
    scaling = []
    for rec1 in records:
        if rec1["n_jobs"] != 1:
            continue
        rec2 = next(
            r for r in records if r["case"] == rec1["case"] and r["n_jobs"] == 2
        )
        speedup = rec1["epoch_s"] / rec2["epoch_s"]
        scaling.append(dict(case=rec1["case"], speedup=speedup, pass_=speedup >= 1.6))
    _table(
        ["case", "epoch(n_jobs=1) / epoch(n_jobs=2) (>=1.6 on the largest case)"],
        [[s["case"], f"{s['speedup']:.2f}"] for s in scaling],
    )
    results["epoch"] = records
    results["scaling"] = scaling


def bench_identity(n_samples, results):
    _section("3. Bit-identity of the fitted codebook across n_jobs")
    rows, records = [], []
    for dtype in (np.float32, np.float64):
        X = _data(n_samples, 16, dtype, seed=3) + 5.0
        fits = {
            n_jobs: SelfOrganizingMap(12, 12, n_jobs=n_jobs, random_state=0).fit(X)
            for n_jobs in (1, 2, None, -1)
        }
        ref = fits[1].codebook_
        identical = all(np.array_equal(f.codebook_, ref) for f in fits.values())
        records.append(dict(dtype=np.dtype(dtype).name, identical=identical))
        rows.append([np.dtype(dtype).name, "yes" if identical else "NO"])
    _table(["dtype", "n_jobs 1 / 2 / None / -1 identical"], rows)
    results["bit_identity"] = records


def bench_quality_pass(n_samples, side, repeats, results):
    _section("4. End-of-fit quality pass (exact BMU + second BMU + distance)")
    rows, records = [], []
    for dtype in (np.float32, np.float64):
        X = _data(n_samples, 16, dtype)
        epoch = _per_epoch(X, side, None, repeats, _min_time)
        som = SelfOrganizingMap(side, side, n_epochs=1, random_state=0).fit(X)

        def quality(X=X, som=som):
            with _single_threaded_blas():
                _best_matching_units(
                    X,
                    som.codebook_,
                    second=True,
                    distances=True,
                    frame=som._frame,
                    n_jobs=None,
                )

        cost = _min_time(quality, repeats)
        records.append(
            dict(dtype=np.dtype(dtype).name, epochs=cost / epoch, seconds=cost)
        )
        rows.append(
            [
                f"{n_samples}x16 {side}x{side} {np.dtype(dtype).name}",
                f"{1e3 * cost:.1f}",
                f"{1e3 * epoch:.1f}",
                f"{cost / epoch:.2f}",
            ]
        )
    _table(["case", "quality pass ms", "epoch ms", "in epochs"], rows)
    results["quality_pass"] = records


def _naive_bmus(X, codebook):
    """The fast path alone: float ranking scores of centred data, no re-rank."""
    offset = np.asarray(X, dtype=np.float64).mean(axis=0)
    Xc = (X.astype(np.float64) - offset).astype(X.dtype)
    W = codebook.astype(np.float64) - offset
    scores = np.einsum("ij,ij->i", W, W)[None, :] - 2.0 * Xc @ W.T.astype(X.dtype)
    return scores.argmin(axis=1)


def bench_exactness(collapse_cases, seeds, results):
    _section("5a. BMUs on two clusters at +-offset vs brute-force float64")
    rows, records = [], []
    rng = np.random.default_rng(0)
    for offset in (1e3, 1e4, 1e7):
        base = np.vstack(
            [
                rng.standard_normal((2000, 2)) + offset,
                rng.standard_normal((2000, 2)) - offset,
            ]
        )
        for dtype in (np.float32, np.float64):
            X = base.astype(dtype)
            som = SelfOrganizingMap(10, 10, random_state=0).fit(X)
            X64, C64 = X.astype(np.float64), som.codebook_.astype(np.float64)
            d2 = ((X64[:, None, :] - C64[None]) ** 2).sum(axis=2)
            truth = d2.argmin(axis=1)
            wrong = float(np.mean(som.predict(X) != truth))
            naive = float(np.mean(_naive_bmus(X, som.codebook_) != truth))
            qe_true = float(np.sqrt(d2.min(axis=1)).mean())
            records.append(
                dict(
                    offset=offset,
                    dtype=np.dtype(dtype).name,
                    wrong=wrong,
                    wrong_fast_path_alone=naive,
                    qe=som.quantization_error_,
                    qe_brute_force=qe_true,
                )
            )
            rows.append(
                [
                    f"+-{offset:g}",
                    np.dtype(dtype).name,
                    f"{100 * wrong:.2f} %",
                    f"{100 * naive:.2f} %",
                    f"{som.quantization_error_:.6f}",
                    f"{qe_true:.6f}",
                ]
            )
    _table(
        [
            "offset",
            "dtype",
            "wrong BMUs (somgen)",
            "wrong (float ranking alone)",
            "QE_",
            "QE brute force",
        ],
        rows,
    )
    results["offsets"] = records

    _section("5b. float32 vs float64: random init, linear decay (collapse workloads)")
    rows, records = [], []
    for n_samples, n_features, side, n_epochs in collapse_cases:
        X, _ = make_blobs(n_samples, n_features, centers=10, random_state=0)
        X = StandardScaler().fit_transform(X)
        for seed in seeds:
            out = {}
            for dtype in (np.float32, np.float64):
                som = SelfOrganizingMap(
                    side,
                    side,
                    init="random",
                    decay="linear",
                    n_epochs=n_epochs,
                    random_state=seed,
                ).fit(X.astype(dtype))
                out[np.dtype(dtype).name] = (
                    som.quantization_error_,
                    som.topographic_error_,
                )
            records.append(
                dict(
                    case=f"{n_samples}x{n_features} {side}x{side} {n_epochs} ep",
                    seed=seed,
                    **{f"{k}_qe": v[0] for k, v in out.items()},
                    **{f"{k}_te": v[1] for k, v in out.items()},
                )
            )
            rows.append(
                [
                    f"{n_samples}x{n_features} {side}x{side}",
                    seed,
                    f"{out['float32'][0]:.4f}",
                    f"{out['float64'][0]:.4f}",
                    f"{out['float32'][1]:.4f}",
                    f"{out['float64'][1]:.4f}",
                ]
            )
    _table(["data / map", "seed", "QE f32", "QE f64", "TE f32", "TE f64"], rows)
    results["collapse"] = records


def bench_big_maps(sides, repeats, results):
    _section("6. Big maps: per-epoch time on 10 samples, and u_matrix")
    rows, records = [], []
    X = _data(10, 8, np.float64)
    for side in sides:
        with warnings.catch_warnings():
            # More units than samples on purpose: silence the estimator's warning.
            warnings.filterwarnings("ignore", message="The map has more units")
            per_epoch = _per_epoch(X, side, None, repeats=1, timer=_min_time)
            som = SelfOrganizingMap(side, side, n_epochs=1, random_state=0).fit(X)
        umat = _min_time(
            lambda som=som, side=side: u_matrix(
                som.codebook_, n_rows=side, n_cols=side, topology="rectangular"
            ),
            repeats,
        )
        records.append(dict(side=side, epoch_s=per_epoch, u_matrix_s=umat))
        rows.append([f"{side}x{side}", f"{per_epoch:.3f}", f"{umat:.3f}"])
    _table(["map", "epoch s", "u_matrix s"], rows)
    results["big_maps"] = records


def _peak(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_memory(n_samples, results):
    _section(f"7. Peak memory above the input, {n_samples} rows (tracemalloc)")
    rows, records = [], []
    for dtype in (np.float32, np.float64):
        X = _data(n_samples, 16, dtype)
        som = SelfOrganizingMap(30, 30, n_epochs=2, random_state=0)
        calls = {
            "fit (2 epochs)": lambda som=som, X=X: som.fit(X),
            "predict": lambda som=som, X=X: som.predict(X),
            "transform": lambda som=som, X=X: som.transform(X),
            "score": lambda som=som, X=X: som.score(X),
        }
        for name, call in calls.items():
            peak = _peak(call)
            records.append(
                dict(
                    dtype=np.dtype(dtype).name,
                    call=name,
                    peak_mib=peak / 2**20,
                    input_mib=X.nbytes / 2**20,
                )
            )
            rows.append(
                [
                    np.dtype(dtype).name,
                    f"SelfOrganizingMap.{name}",
                    f"{peak / 2**20:.1f}",
                    f"{X.nbytes / 2**20:.1f}",
                    f"{peak / X.nbytes:.2f}",
                ]
            )
    X = _data(n_samples, 32, np.float64)
    model = SOMGenerativeModel(
        SelfOrganizingMap(30, 30, n_epochs=3, random_state=0), max_iter=2
    ).fit(X[: min(n_samples, 50_000)])
    for name, call in {
        "predict": lambda: model.predict(X),
        "score_samples": lambda: model.score_samples(X),
    }.items():
        peak = _peak(call)
        records.append(
            dict(
                dtype="float64",
                call=f"SOMGenerativeModel.{name}",
                peak_mib=peak / 2**20,
                input_mib=X.nbytes / 2**20,
            )
        )
        rows.append(
            [
                "float64",
                f"SOMGenerativeModel.{name} (900 units, 32 features)",
                f"{peak / 2**20:.1f}",
                f"{X.nbytes / 2**20:.1f}",
                f"{peak / X.nbytes:.2f}",
            ]
        )
    _table(["dtype", "call", "peak MiB", "input MiB", "peak / input"], rows)
    results["memory"] = records


def _meta(quick):
    return dict(
        mode="quick" if quick else "full",
        date=time.strftime("%Y-%m-%d %H:%M"),
        python=platform.python_version(),
        numpy=np.__version__,
        somgen=somgen.__version__,
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        loadavg_at_start=os.getloadavg(),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    quick = args.quick
    results = {"meta": _meta(quick)}
    print(f"# bench_som ({results['meta']['mode']}), {results['meta']}\n")
    tic = time.perf_counter()
    if quick:
        bench_epoch([(5_000, 16, 8)], 2, results)
        bench_identity(3_000, results)
        bench_quality_pass(5_000, 8, 2, results)
        bench_exactness([(5_000, 16, 8, 4)], [0], results)
        bench_big_maps([60], 1, results)
        bench_memory(20_000, results)
    else:
        bench_epoch([(50_000, 32, 20), (200_000, 16, 30)], 3, results)
        bench_identity(50_000, results)
        bench_quality_pass(1_000_000, 30, 3, results)
        bench_exactness([(50_000, 32, 20, 10), (200_000, 16, 30, 5)], range(6), results)
        bench_big_maps([200, 1000], 1, results)
        bench_memory(2_000_000, results)
    results["meta"]["seconds"] = time.perf_counter() - tic
    print(f"done in {results['meta']['seconds']:.0f} s; results in {args.output}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
