"""SelfOrganizingMap on data with missing values and on sparse matrices.

1. Missing values. On digits (1797 x 64) and on 50,000 x 32 Gaussian blobs,
   with 10, 30 and 50 % of the entries missing completely at random (every row
   keeps at least one observed value), the script fits a map on the data with
   missing values and one on the complete data, and reports

   * the quantization and topographic errors of both maps, measured on the
     complete data (the cost of the missing values on the map itself);
   * the RMSE of the missing entries filled from each sample's best-matching
     prototype (``SelfOrganizingMap._impute``), against scikit-learn's
     ``KNNImputer`` (5 neighbours; on the blobs fitted on a random subset of
     ``--knn-max-samples`` rows, its cost being quadratic), ``IterativeImputer``
     and ``SimpleImputer`` (mean), also normalised by the standard deviation of
     the true missing values;
   * the time of the fit with missing values over the complete-data fit.

2. Sparse input. A seeded bag-of-words-like CSR matrix (200,000 x 20,000 at
   0.1 % density: rows uniform, columns drawn with a Zipf-like popularity
   ``p_j ~ (j + 1) ** -1.1``, values ``1 + Poisson(1)``) is fitted by a 10 x 10
   map (``--quick``: 10,000 x 1,000 at 0.5 %, a 5 x 5 map). The script reports
   the fit time and the peak memory traced during the
   fit (``tracemalloc``: every NumPy / SciPy buffer), compared with the size
   of the dense matrix, and with a dense fit of the first ``--dense-rows``
   rows scaled up linearly to all rows; and the time of one batch epoch
   (``somgen._training._batch_statistics``) over the time of one sparse-dense
   product ``X @ W^T`` of the same shapes. Targets: the dense matrix is never
   materialised (peak well below its size) and an epoch costs at most 3
   products.

Usage::

    python benchmarks/bench_missing_sparse.py [--quick] [--output PATH]
        [--n-jobs N] [--dense-rows N] [--knn-max-samples N]

``main(argv=None)`` runs the same thing from Python and returns the results.
"""

import argparse
import datetime
import json
import platform
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

from somgen import SelfOrganizingMap
from somgen._training import _batch_statistics
from somgen.metrics import topographic_error

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_missing_sparse.json"
FRACTIONS = (0.1, 0.3, 0.5)
QUICK_FRACTIONS = (0.3,)
EPOCH_TARGET = 3.0

FULL = {
    "digits_rows": None,
    "blobs": (50_000, 32),
    "map": (10, 10),
    "n_epochs": 10,
    "sparse": (200_000, 20_000, 1e-3),
    "dense_rows": 20_000,
    "knn_max_samples": 10_000,
    "iterative_max_iter": 10,
}
QUICK = {
    "digits_rows": 600,
    "blobs": (2_000, 8),
    "map": (5, 5),
    "n_epochs": 5,
    "sparse": (10_000, 1_000, 5e-3),
    "dense_rows": 1_000,
    "knn_max_samples": 1_000,
    "iterative_max_iter": 2,
}


def _mcar(X, fraction, seed):
    """Copy of ``X`` with ``fraction`` of the entries NaN, completely at random,
    keeping one random observed entry per row."""
    rng = np.random.RandomState(seed)
    mask = rng.uniform(size=X.shape) < fraction
    mask[np.arange(X.shape[0]), rng.randint(X.shape[1], size=X.shape[0])] = False
    X_missing = np.array(X, dtype=np.float64, copy=True)
    X_missing[mask] = np.nan
    return X_missing, mask


def _rmse(filled, X, mask):
    err = filled[mask] - X[mask]
    rmse = float(np.sqrt(np.mean(err**2)))
    return rmse, rmse / float(np.std(X[mask]))


def _timed(func):
    start = time.perf_counter()
    value = func()
    return value, time.perf_counter() - start


def _missing_rows(name, X, fractions, config, n_jobs, seed=0):
    n_rows, n_cols = config["map"]
    params = dict(n_epochs=config["n_epochs"], n_jobs=n_jobs, random_state=seed)
    complete, t_complete = _timed(
        lambda: SelfOrganizingMap(n_rows, n_cols, **params).fit(X)
    )
    grid = dict(n_rows=n_rows, n_cols=n_cols)
    base_qe = -complete.score(X)
    base_te = topographic_error(X, complete.codebook_, **grid)
    rows = []
    for fraction in fractions:
        X_missing, mask = _mcar(X, fraction, seed)
        som, t_missing = _timed(
            lambda X_missing=X_missing: SelfOrganizingMap(n_rows, n_cols, **params).fit(
                X_missing
            )
        )
        row = {
            "dataset": name,
            "shape": list(X.shape),
            "fraction": fraction,
            "qe_complete_fit": base_qe,
            "te_complete_fit": base_te,
            "qe_missing_fit": -som.score(X),
            "te_missing_fit": topographic_error(X, som.codebook_, **grid),
            "fit_s_complete": t_complete,
            "fit_s_missing": t_missing,
            "time_ratio": t_missing / t_complete,
        }
        row["qe_ratio"] = row["qe_missing_fit"] / base_qe
        imputers = {
            "som": lambda X_missing=X_missing, som=som: som._impute(X_missing),
            "simple_mean": lambda X_missing=X_missing: SimpleImputer().fit_transform(
                X_missing
            ),
            "knn": lambda X_missing=X_missing: _knn(
                X_missing, config["knn_max_samples"], seed
            ),
            "iterative": lambda X_missing=X_missing: _iterative(
                X_missing, config["iterative_max_iter"], seed
            ),
        }
        for key, impute in imputers.items():
            filled, seconds = _timed(impute)
            rmse, nrmse = _rmse(filled, X, mask)
            row[f"rmse_{key}"] = rmse
            row[f"nrmse_{key}"] = nrmse
            row[f"impute_s_{key}"] = seconds
        rows.append(row)
        print(
            f"{name:6s} {fraction:4.0%} missing: QE {row['qe_missing_fit']:.4g} "
            f"(complete fit {base_qe:.4g}), TE {row['te_missing_fit']:.3f} "
            f"({base_te:.3f}), time x{row['time_ratio']:.2f}; impute RMSE "
            f"som {row['rmse_som']:.4g} knn {row['rmse_knn']:.4g} "
            f"iterative {row['rmse_iterative']:.4g} "
            f"mean {row['rmse_simple_mean']:.4g}"
        )
    return rows


def _iterative(X_missing, max_iter, seed):
    """IterativeImputer (BayesianRidge), its convergence warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer = IterativeImputer(max_iter=max_iter, random_state=seed)
        return imputer.fit_transform(X_missing)


def _knn(X_missing, max_samples, seed):
    """KNNImputer fitted on at most ``max_samples`` rows (quadratic cost)."""
    imputer = KNNImputer(n_neighbors=5)
    if X_missing.shape[0] > max_samples:
        rng = np.random.RandomState(seed)
        imputer.fit(X_missing[rng.choice(X_missing.shape[0], max_samples, False)])
    else:
        imputer.fit(X_missing)
    return imputer.transform(X_missing)


def _bag_of_words(n_samples, n_features, density, seed=0):
    """Seeded CSR counts with Zipf-like column popularity."""
    rng = np.random.RandomState(seed)
    nnz = int(round(n_samples * n_features * density))
    popularity = (np.arange(n_features) + 1.0) ** -1.1
    popularity /= popularity.sum()
    rows = rng.randint(n_samples, size=nnz)
    cols = rng.choice(n_features, size=nnz, p=popularity)
    values = 1.0 + rng.poisson(1.0, size=nnz)
    X = sparse.coo_matrix((values, (rows, cols)), shape=(n_samples, n_features))
    X = X.tocsr()
    X.sum_duplicates()
    return X


def _traced_fit(make_som, X):
    """Fit time (untraced) and the peak traced memory of a second fit."""
    som, seconds = _timed(lambda: make_som().fit(X))
    tracemalloc.start()
    try:
        make_som().fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return som, seconds, peak / 2**20


def _sparse_row(config, n_jobs, seed=0):
    n_samples, n_features, density = config["sparse"]
    n_rows, n_cols = config["map"]
    X = _bag_of_words(n_samples, n_features, density, seed)
    sparse_mib = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    dense_mib = n_samples * n_features * 8 / 2**20

    def make_som():
        return SelfOrganizingMap(
            n_rows, n_cols, n_epochs=config["n_epochs"], n_jobs=n_jobs, random_state=0
        )

    som, fit_s, peak_mib = _traced_fit(make_som, X)
    # One epoch against one sparse-dense product of the same shapes.
    codebook = som._internal_codebook()
    n_threads = 1 if n_jobs is None else n_jobs
    _batch_statistics(X, som._frame, codebook, n_threads)  # warm-up
    epochs = []
    for _ in range(3):
        epochs.append(
            _timed(lambda: _batch_statistics(X, som._frame, codebook, n_threads))[1]
        )
    weights = np.ascontiguousarray(codebook.T)
    products = [_timed(lambda: X @ weights)[1] for _ in range(3)]
    epoch_s, product_s = min(epochs), min(products)

    dense_rows = min(config["dense_rows"], n_samples)
    X_dense = X[:dense_rows].toarray()
    _, dense_fit_s, dense_peak_mib = _traced_fit(make_som, X_dense)
    factor = n_samples / dense_rows
    row = {
        "shape": [n_samples, n_features],
        "density": density,
        "nnz": int(X.nnz),
        "map": [n_rows, n_cols],
        "n_epochs": config["n_epochs"],
        "sparse_input_mib": sparse_mib,
        "dense_equivalent_mib": dense_mib,
        "fit_s": fit_s,
        "fit_peak_traced_mib": peak_mib,
        "never_dense": peak_mib < 0.25 * dense_mib,
        "epoch_s": epoch_s,
        "product_s": product_s,
        "epoch_over_product": epoch_s / product_s,
        "epoch_target_met": epoch_s / product_s <= EPOCH_TARGET,
        "dense_subset_rows": dense_rows,
        "dense_subset_fit_s": dense_fit_s,
        "dense_subset_peak_traced_mib": dense_peak_mib,
        "dense_subset_input_mib": X_dense.nbytes / 2**20,
        "dense_scaled_fit_s": dense_fit_s * factor,
        "dense_scaled_memory_mib": (X_dense.nbytes / 2**20 + dense_peak_mib) * factor,
        "process_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 2**10,
    }
    print(
        f"sparse {n_samples}x{n_features} ({density:.2%}, {X.nnz} stored, "
        f"{sparse_mib:.0f} MiB; dense would be {dense_mib:.0f} MiB): fit "
        f"{fit_s:.2f}s, peak traced {peak_mib:.1f} MiB; epoch {epoch_s * 1e3:.1f} ms"
        f" = {row['epoch_over_product']:.2f} x one product "
        f"({product_s * 1e3:.1f} ms); dense fit of {dense_rows} rows scaled up: "
        f"{row['dense_scaled_fit_s']:.2f}s, {row['dense_scaled_memory_mib']:.0f} MiB"
    )
    return row


def main(argv=None):
    """Run the benchmark; returns the results dict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 30 %")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--dense-rows", type=int, default=None)
    parser.add_argument("--knn-max-samples", type=int, default=None)
    parser.add_argument(
        "--sizes",
        type=json.loads,
        default=None,
        help="JSON overrides of the size table (for smoke tests)",
    )
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.sizes:
        config.update(
            {k: tuple(v) if isinstance(v, list) else v for k, v in args.sizes.items()}
        )
    if args.dense_rows is not None:
        config["dense_rows"] = args.dense_rows
    if args.knn_max_samples is not None:
        config["knn_max_samples"] = args.knn_max_samples
    fractions = QUICK_FRACTIONS if args.quick else FRACTIONS
    start = time.perf_counter()

    digits = load_digits().data.astype(np.float64)[: config["digits_rows"]]
    blobs, _ = make_blobs(
        n_samples=config["blobs"][0],
        n_features=config["blobs"][1],
        centers=20,
        cluster_std=2.0,
        random_state=0,
    )
    missing = _missing_rows("digits", digits, fractions, config, args.n_jobs)
    missing += _missing_rows("blobs", blobs, fractions, config, args.n_jobs)
    sparse_result = _sparse_row(config, args.n_jobs)

    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "wall_s": time.perf_counter() - start,
            "python": platform.python_version(),
            "somgen": somgen.__version__,
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in config.items()
            },
        },
        "missing": missing,
        "sparse": sparse_result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.output}")
    return results


if __name__ == "__main__":
    main()
