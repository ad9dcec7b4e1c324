"""Map size of ``SOMGenerativeModel(som=None)``: cross-validated against the
data-sized map alone and against a single Gaussian.

``SOMGenerativeModel()`` chooses its map among the data-sized map (K units,
about ``2 sqrt(n)``, at most ``n / 10``), K / 3, K / 9 and one unit by held-out
likelihood on folds of the training data (up to 10,000 samples). This script
measures what the selection buys on nine data-generating processes that none
of the other benchmarks use (a correlated 3-D Gaussian, diabetes, Friedman 1
and 2, blobs, a noisy swiss roll, a classification cloud, an anisotropic 5-D
and an isotropic 10-D Gaussian)
at 20 to 1,500 training samples, against

- *K units*: the same model on the data-sized map, no selection (the
  previous default);
- *one Gaussian*: ``GaussianMixture(1, covariance_type="diag")``, the floor
  the issue asks the default never to fall below.

Each cell draws its training samples and 2,000 test samples from a pool of
20,000 (diabetes: its 442 rows), standardised on the training part; 6 draws
below 500 training samples, 3 above. Reported per cell: mean and worst
held-out log-likelihood gap to one Gaussian (nats per sample), the chosen
unit counts, and the fit time of the default relative to the K-unit model in
the same run (quiet machine; the selection runs about ten fits).

Usage::

    python benchmarks/bench_generative_size.py [--quick] [--output PATH]

``main(argv=None)`` runs the same thing from Python and returns the results.
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import (
    load_diabetes,
    make_blobs,
    make_classification,
    make_friedman1,
    make_friedman2,
    make_gaussian_quantiles,
    make_hastie_10_2,
    make_swiss_roll,
)
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._initialization import _data_sized_grid, _data_sized_units

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_generative_size.json"
SIZES = (20, 50, 150, 500, 1500)
N_TEST = 2000


def _pools(quick):
    rng = np.random.RandomState(0)
    cov = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, -0.4], [0.3, -0.4, 0.5]])
    pools = {
        "gauss3": lambda: rng.multivariate_normal([1.0, -2.0, 0.5], cov, 20000),
        "diabetes": lambda: load_diabetes().data,
        "friedman1": lambda: make_friedman1(20000, 10, random_state=0)[0],
        "friedman2": lambda: make_friedman2(20000, random_state=0)[0],
        "hastie_10d_gaussian": lambda: make_hastie_10_2(20000, random_state=0)[0],
        "blobs": lambda: make_blobs(20000, 10, centers=8, random_state=0)[0],
        "swiss_roll": lambda: make_swiss_roll(20000, noise=0.3, random_state=0)[0],
        "classification": lambda: make_classification(
            20000, 20, n_informative=8, random_state=0
        )[0],
        "anisotropic_gaussian": lambda: (
            make_gaussian_quantiles(n_samples=20000, n_features=5, random_state=0)[0]
            * [1.0, 2.0, 0.5, 1.0, 3.0]
        ),
    }
    if quick:
        return {k: pools[k] for k in ("gauss3", "blobs")}
    return pools


def _cell(pool, n, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pool))
    X, X_test = pool[order[:n]], pool[order[n : n + N_TEST]]
    scaler = StandardScaler().fit(X)
    X, X_test = scaler.transform(X), scaler.transform(X_test)
    gaussian = GaussianMixture(1, covariance_type="diag").fit(X).score(X_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tic = time.perf_counter()
        default = SOMGenerativeModel(random_state=seed).fit(X)
        default_s = time.perf_counter() - tic
        # The previous default: the data-sized map, seeded as the default's.
        map_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max)
        tic = time.perf_counter()
        k_units = SOMGenerativeModel(
            SelfOrganizingMap(*_data_sized_grid(X), random_state=map_seed),
            random_state=seed,
        ).fit(X)
        k_units_s = time.perf_counter() - tic
    return dict(
        default_gap=float(default.score(X_test) - gaussian),
        k_units_gap=float(k_units.score(X_test) - gaussian),
        chosen_units=int(default.means_.shape[0]),
        k_units=int(k_units.means_.shape[0]),
        time_ratio=default_s / k_units_s,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 pools, 2 sizes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    meta = dict(
        mode="quick" if args.quick else "full",
        date=time.strftime("%Y-%m-%d %H:%M"),
        python=platform.python_version(),
        numpy=np.__version__,
        somgen=somgen.__version__,
        cpu_count=os.cpu_count(),
        loadavg_at_start=os.getloadavg(),
    )
    print(f"# bench_generative_size ({meta['mode']}), {meta}\n")
    print(
        "pool                  n      K    default - 1 Gaussian   K units - 1 Gaussian"
        "   chosen units               time x"
    )
    tic = time.perf_counter()
    cells = []
    sizes = SIZES[:2] if args.quick else SIZES
    for name, load in _pools(args.quick).items():
        pool = np.asarray(load(), dtype=np.float64)
        for n in sizes:
            if len(pool) - n < 100:  # diabetes: too few rows left to test on
                continue
            seeds = range(6 if n < 500 else 3)
            runs = [_cell(pool, n, seed) for seed in seeds]
            cell = dict(
                pool=name,
                n=n,
                K=_data_sized_units(n),
                runs=runs,
                default_mean=float(np.mean([r["default_gap"] for r in runs])),
                default_worst=float(np.min([r["default_gap"] for r in runs])),
                k_units_mean=float(np.mean([r["k_units_gap"] for r in runs])),
                k_units_worst=float(np.min([r["k_units_gap"] for r in runs])),
                time_ratio=float(np.median([r["time_ratio"] for r in runs])),
            )
            cells.append(cell)
            print(
                f"{name:20s} {n:5d} {cell['K']:4d}    "
                f"{cell['default_mean']:+8.3f} ({cell['default_worst']:+7.3f})"
                f"     {cell['k_units_mean']:+8.3f} ({cell['k_units_worst']:+7.3f})"
                f"     {str([r['chosen_units'] for r in runs]):26s} "
                f"{cell['time_ratio']:5.1f}",
                flush=True,
            )
    summary = dict(
        mean_gap_default=float(np.mean([c["default_mean"] for c in cells])),
        mean_gap_k_units=float(np.mean([c["k_units_mean"] for c in cells])),
        cells=len(cells),
        cells_below_gaussian_default=int(sum(c["default_mean"] < 0 for c in cells)),
        cells_below_gaussian_k_units=int(sum(c["k_units_mean"] < 0 for c in cells)),
        cells_below_minus_0_05_default=int(
            sum(c["default_mean"] < -0.05 for c in cells)
        ),
        cells_below_minus_0_05_k_units=int(
            sum(c["k_units_mean"] < -0.05 for c in cells)
        ),
        default_better_or_equal=int(
            sum(c["default_mean"] >= c["k_units_mean"] for c in cells)
        ),
        median_time_ratio=float(np.median([c["time_ratio"] for c in cells])),
    )
    meta["wall_s"] = time.perf_counter() - tic
    meta["loadavg_at_end"] = os.getloadavg()
    print(
        f"\nmean gap to one Gaussian over {summary['cells']} cells: default "
        f"{summary['mean_gap_default']:+.3f}, K units "
        f"{summary['mean_gap_k_units']:+.3f}"
        f"\ncells with a mean below one Gaussian: default "
        f"{summary['cells_below_gaussian_default']}, K units "
        f"{summary['cells_below_gaussian_k_units']} (below -0.05: "
        f"{summary['cells_below_minus_0_05_default']} vs "
        f"{summary['cells_below_minus_0_05_k_units']})"
        f"\ndefault >= K units in {summary['default_better_or_equal']}/"
        f"{summary['cells']} cells; median fit time ratio "
        f"{summary['median_time_ratio']:.1f}x\nwall {meta['wall_s']:.0f} s, load "
        f"{meta['loadavg_at_start'][0]:.2f} -> {meta['loadavg_at_end'][0]:.2f}"
    )
    results = dict(meta=meta, cells=cells, summary=summary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
