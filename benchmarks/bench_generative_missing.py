"""SOMGenerativeModel on data with missing values and on sparse matrices.

1. Missing values. On digits (dequantised with U(0, 1) noise), breast cancer
   and 20,000 x 32 Gaussian blobs (20 centres), each standardised on a 70 %
   training split (seed 0), the script hides 10, 30 and 50 % of the training
   entries completely at random (every row keeps one observed value) and fits
   the default ``SOMGenerativeModel()`` by EM with missing data. It reports the
   held-out mean log-likelihood on the complete test rows against the same
   model fitted on

   * the complete training data (the reference: what the missing values cost),
   * the training data with the NaN replaced by column means
     (``SimpleImputer``, the usual workaround),
   * the complete training rows only (when at least 20 remain),

   the held-out marginal log-likelihood of test rows with the same fraction
   missing, the RMSE of ``impute`` on the hidden training entries against
   ``KNNImputer(5)`` (digits and breast cancer) and ``SimpleImputer``, and the
   fit time with missing values over the complete-data fit.

2. Sparse input. A seeded bag-of-words-like CSR matrix (20,000 x 5,000 at
   0.2 %: Zipf-like column popularity, values 1 + Poisson(1)) fitted by
   ``SOMGenerativeModel(SelfOrganizingMap(10, 10), max_iter=10,
   discrete_features=None)`` as CSR and as a dense array (``"auto"`` would
   dequantize the dense counts and take the sparse ones as continuous): time
   ratio, traced peak memory of each fit (``tracemalloc``) against the size of
   the dense matrix, and the largest relative difference of the fitted means
   and held-out scores. Then the SelfOrganizingMap benchmark's 200,000 x
   20,000 matrix at 0.1 % (30.5 GB dense) fitted as CSR only (same model):
   time and traced peak.

3. Covariance types. 5,000 x 16 blobs with 30 % missing: fit time over the
   complete-data fit for each covariance type (at most 20 EM iterations, the
   data-sized map of the complete data: no selection of the map size).

Usage::

    python benchmarks/bench_generative_missing.py [--quick] [--output PATH]

``main(argv=None)`` runs the same thing from Python and returns the results.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._initialization import _data_sized_grid

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The data generators of the SelfOrganizingMap benchmark (same MCAR masks and
# bag of words).
from bench_missing_sparse import _bag_of_words, _mcar, _timed  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "bench_generative_missing.json"

FULL = {
    "fractions": (0.1, 0.3, 0.5),
    "blobs": (20_000, 32),
    "sparse": (20_000, 5_000, 2e-3),
    "sparse_map": (10, 10),
    "sparse_large": (200_000, 20_000, 1e-3),
    "covariance_blobs": (5_000, 16),
    "knn_max_rows": 5_000,
}
QUICK = {
    "fractions": (0.3,),
    "blobs": (2_000, 8),
    "sparse": (2_000, 500, 1e-2),
    "sparse_map": (4, 4),
    "sparse_large": (10_000, 2_000, 2e-3),
    "covariance_blobs": (500, 6),
    "knn_max_rows": 5_000,
}


def _fit(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
        return SOMGenerativeModel(random_state=0).fit(X)


def _data_sets(config):
    rng = np.random.RandomState(0)
    digits = load_digits().data
    digits = digits + rng.uniform(size=digits.shape)
    blobs, _ = make_blobs(
        n_samples=config["blobs"][0],
        n_features=config["blobs"][1],
        centers=20,
        cluster_std=2.0,
        random_state=0,
    )
    return {
        "digits": digits,
        "breast_cancer": load_breast_cancer().data,
        "blobs": blobs,
    }


def _missing_rows(name, X, config):
    train, test = train_test_split(X, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(train)
    train, test = scaler.transform(train), scaler.transform(test)
    reference, complete_s = _timed(lambda: _fit(train))
    reference_score = reference.score(test)
    rows = []
    for fraction in config["fractions"]:
        train_missing, mask = _mcar(train, fraction, seed=1)
        test_missing, _ = _mcar(test, fraction, seed=2)
        model, missing_s = _timed(lambda: _fit(train_missing))  # noqa: B023
        filled_mean = SimpleImputer().fit_transform(train_missing)
        complete_rows = ~mask.any(axis=1)
        only_complete = (
            _fit(train[complete_rows]).score(test)
            if complete_rows.sum() >= 20
            else None
        )
        hidden = train[mask]
        rmse = {
            "model": float(
                np.sqrt(np.mean((model.impute(train_missing)[mask] - hidden) ** 2))
            ),
            "mean": float(np.sqrt(np.mean((filled_mean[mask] - hidden) ** 2))),
        }
        if train.shape[0] <= config["knn_max_rows"]:
            knn = KNNImputer(n_neighbors=5).fit_transform(train_missing)
            rmse["knn"] = float(np.sqrt(np.mean((knn[mask] - hidden) ** 2)))
        row = {
            "data": name,
            "shape": list(train.shape),
            "missing": fraction,
            "complete_rows": int(complete_rows.sum()),
            "test_ll": {
                "missing_fit": float(model.score(test)),
                "complete_fit": float(reference_score),
                "mean_imputed_fit": float(_fit(filled_mean).score(test)),
                "complete_rows_fit": (
                    None if only_complete is None else float(only_complete)
                ),
            },
            "test_marginal_ll": float(model.score(test_missing)),
            "n_iter": int(model.n_iter_),
            "rmse": rmse,
            "fit_time_ratio": missing_s / complete_s,
            "fit_s": {"missing": missing_s, "complete": complete_s},
        }
        print(json.dumps(row))
        rows.append(row)
    return rows


def _covariance_rows(config):
    """Fit time with 30 % missing over the complete-data fit, per covariance
    type (20 EM iterations at most), on blobs: 'full' and 'tied' handle a
    missingness pattern shared by few rows row by row (one d x d inverse per
    row and unit), 'diag' and 'spherical' all patterns in one product."""
    n_samples, n_features = config["covariance_blobs"]
    X, _ = make_blobs(n_samples, n_features, centers=10, random_state=0)
    X_missing, _ = _mcar(X, 0.3, seed=1)
    # The data-sized map of the complete data for every fit: the rows compare
    # the cost of EM, not the choice of the map size.
    shape = _data_sized_grid(X)
    rows = []
    for covariance_type in ("full", "tied", "diag", "spherical"):

        def fit(data, covariance_type=covariance_type):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
                return SOMGenerativeModel(
                    SelfOrganizingMap(*shape, random_state=0),
                    covariance_type=covariance_type,
                    max_iter=20,
                    random_state=0,
                ).fit(data)

        model, missing_s = _timed(lambda: fit(X_missing))  # noqa: B023
        reference, complete_s = _timed(lambda: fit(X))  # noqa: B023
        row = {
            "covariance_type": covariance_type,
            "shape": [n_samples, n_features],
            "n_units": int(model.means_.shape[0]),
            "fit_s": {"missing": missing_s, "complete": complete_s},
            "time_ratio": missing_s / complete_s,
            "n_iter": {
                "missing": int(model.n_iter_),
                "complete": int(reference.n_iter_),
            },
        }
        print(json.dumps(row))
        rows.append(row)
    return rows


def _traced(func):
    tracemalloc.start()
    try:
        start = time.perf_counter()
        value = func()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return value, elapsed, peak


def _sparse_row(config):
    n_samples, n_features, density = config["sparse"]
    X = _bag_of_words(n_samples, n_features, density)
    X_test = _bag_of_words(n_samples // 4, n_features, density, seed=1)

    def fit(data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
            # discrete_features=None: the dense counts would otherwise be
            # dequantized ("auto" takes sparse input as continuous).
            return SOMGenerativeModel(
                SelfOrganizingMap(*config["sparse_map"], random_state=0),
                max_iter=10,
                discrete_features=None,
                random_state=0,
            ).fit(data)

    sparse_model, sparse_s, sparse_peak = _traced(lambda: fit(X))
    dense = X.toarray()
    dense_model, dense_s, dense_peak = _traced(lambda: fit(dense))
    scale = np.abs(dense_model.means_).max()
    scores_sparse = sparse_model.score_samples(X_test)
    scores_dense = dense_model.score_samples(X_test.toarray())
    row = {
        "shape": [n_samples, n_features],
        "density": density,
        "nnz": int(X.nnz),
        "csr_mib": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20,
        "dense_mib": dense.nbytes / 2**20,
        "fit_s": {"sparse": sparse_s, "dense": dense_s},
        "time_ratio": sparse_s / dense_s,
        "peak_mib": {"sparse": sparse_peak / 2**20, "dense_fit": dense_peak / 2**20},
        "means_max_rel_diff": float(
            np.abs(sparse_model.means_ - dense_model.means_).max() / scale
        ),
        "scores_max_abs_diff": float(np.abs(scores_sparse - scores_dense).max()),
    }
    print(json.dumps(row))
    return row


def _sparse_large_row(config):
    """The SelfOrganizingMap benchmark's bag of words (30.5 GB dense): the
    sparse fit only, its time and traced peak."""
    n_samples, n_features, density = config["sparse_large"]
    X = _bag_of_words(n_samples, n_features, density)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning))
            return SOMGenerativeModel(
                SelfOrganizingMap(*config["sparse_map"], random_state=0),
                max_iter=10,
                random_state=0,
            ).fit(X)

    model, seconds, peak = _traced(fit)
    row = {
        "shape": [n_samples, n_features],
        "density": density,
        "nnz": int(X.nnz),
        "csr_mib": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20,
        "dense_mib": n_samples * n_features * 8 / 2**20,
        "fit_s": seconds,
        "n_iter": int(model.n_iter_),
        "peak_mib": peak / 2**20,
        "lower_bound": float(model.lower_bound_),
    }
    print(json.dumps(row))
    return row


def main(argv=None):
    """Run the benchmark; returns the results dict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 30 %")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    start = time.perf_counter()
    load_before = os.getloadavg()
    missing = []
    for name, X in _data_sets(config).items():
        missing += _missing_rows(name, X, config)
    sparse_result = _sparse_row(config)
    sparse_large = _sparse_large_row(config)
    covariance_rows = _covariance_rows(config)
    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "wall_s": time.perf_counter() - start,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "somgen": somgen.__version__,
            "config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in config.items()
            },
        },
        "missing": missing,
        "sparse": sparse_result,
        "sparse_large": sparse_large,
        "covariance_types": covariance_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.output}")
    return results


if __name__ == "__main__":
    main()
