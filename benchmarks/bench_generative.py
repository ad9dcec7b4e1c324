"""Held-out likelihood and sample quality of SOMGenerativeModel.

The generative model is compared with GaussianMixture and KernelDensity on
scikit-learn's bundled data (dequantized digits, breast cancer, wine, iris,
and breast cancer with its first feature thresholded at the median, a table with
a binary column) and on generated manifolds (an S-curve, two moons, two
circles). Every data set is split 75/25 into train and test with five seeds;
a StandardScaler is fitted on the training part only and applied to both. On
each split the script fits

1. ``SOMGenerativeModel`` with its defaults (a map sized from the data,
   topographic means with ``mean_stiffness=1``), and the same with pinned means
   (``mean_stiffness=inf``, the first version's model);
2. ``GaussianMixture`` with as many diagonal components as the default map has
   units;
3. ``SOMGenerativeModel`` tuned by ``GridSearchCV`` (cv=3) over map size,
   ``mean_stiffness``, ``reg_covar`` and covariance type;
4. ``GaussianMixture`` tuned by ``GridSearchCV`` (cv=3) over the number of
   components, the covariance type and ``reg_covar``, with as many candidates
   as 3;
5. ``KernelDensity`` tuned by ``GridSearchCV`` (cv=3) over the bandwidth.

It reports the held-out mean log-likelihood of each (mean of ``score_samples``
on the test set), paired differences across splits, whether a search chose a
value on the edge of its grid, and the quality of samples drawn from each
fitted model (as many as the test set), measured against the test set in the
standardised space: unbiased MMD^2 with a Gaussian kernel at three bandwidths,
energy distance, leave-one-out 1-NN two-sample accuracy, the DCR (distance to
closest training record) ratio, a memorisation check, and the variance ratio
(from 20,000 samples, over the test set's and over the training set's).

Usage::

    python benchmarks/bench_generative.py [--quick] [--output PATH] [--n-jobs N]
        [--datasets NAME ...]

``main(argv=None)`` runs the same thing from Python and returns the results
dict. The targets print PASS or FAIL; a FAIL does not raise.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_iris,
    load_wine,
    make_circles,
    make_moons,
    make_s_curve,
)
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._initialization import _data_sized_grid

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "bench_generative.json"
DATASETS = (
    "digits",
    "breast_cancer",
    "wine",
    "iris",
    "s_curve",
    "moons",
    "circles",
    "binary_table",
)
DATA_SEED = 0  # dequantization noise of the digits, manifold draws, subsample

# Map sizes searched by the tuned model, per data set, from small maps to
# about the size of the default (2 sqrt(n) units) and beyond. The GMM grid
# spans the same range of unit counts. The small sets stop at 6x6 so that
# every fold of the 3-fold search (about 75 samples for iris) can hold a
# GaussianMixture of that size.
MAP_SIZES = {
    "digits": ((5, 5), (8, 8), (10, 10), (12, 12)),
    "breast_cancer": ((1, 2), (2, 2), (3, 3), (4, 5)),
    "wine": ((1, 2), (2, 2), (3, 3), (4, 4)),
    "iris": ((1, 2), (2, 2), (3, 3), (4, 4)),
    "s_curve": ((4, 4), (6, 6), (8, 8), (12, 12)),
    "moons": ((3, 3), (5, 5), (8, 8), (12, 12)),
    "circles": ((3, 3), (5, 5), (8, 8), (12, 12)),
    "binary_table": ((1, 2), (2, 2), (3, 3), (4, 5)),
}
# A first run chose the smallest finite stiffness (0.1) on the manifolds and
# reg_covar=0.03, the largest, on five sets: both ranges were widened. The
# GaussianMixture tunes reg_covar, so the SOM model tunes it too (its largest
# value, like the mixture's, 0.1); to keep 32 candidates, the stiffness grid
# went from (inf, 3, 0.3, 0.03) to the two values the searches had chosen most:
# pinned means and 0.03.
MEAN_STIFFNESS = (np.inf, 0.03)
SOM_REG_COVARS = (1e-6, 1e-1)
REG_COVARS = (1e-6, 1e-2, 3e-2, 1e-1)

FULL = dict(
    datasets=DATASETS,
    seeds=(0, 1, 2, 3, 4),
    map_sizes=MAP_SIZES,
    mean_stiffness=MEAN_STIFFNESS,
    som_reg_covars=SOM_REG_COVARS,
    covariance_types=("diag", "full"),
    reg_covars=REG_COVARS,
    kde_factors=tuple(np.geomspace(1 / 16, 2.0, 12)),
)
QUICK = dict(
    datasets=("digits", "iris"),
    seeds=(0, 1),
    map_sizes={k: v[1:3] for k, v in MAP_SIZES.items()},
    mean_stiffness=(np.inf, 1.0),
    som_reg_covars=(1e-6,),
    covariance_types=("diag", "full"),
    reg_covars=(1e-6, 3e-2),
    kde_factors=tuple(np.geomspace(1 / 16, 1.0, 5)),
)

# Targets (see the issue "SOMGenerativeModel 2").
TARGET_MIN_WINS = 4  # default SOM >= GMM(K units, diag) on at least 4 of 5 splits
TARGET_SETS_WON = 6  # tuned SOM > tuned GMM on average on at least 6 of 8 sets
TARGET_VAR = (0.97, 1.03)
TARGET_DCR = 0.95
TARGET_TE = 0.15
MMD_FRACTIONS = (1.0, 0.5, 0.25)  # of the median pairwise distance of the test set
N_VARIANCE_SAMPLES = 20000


# --------------------------------------------------------------------- data
def _load(name):
    """The raw data set (float64), before any split or scaling."""
    if name == "digits":
        X = load_digits().data.astype(np.float64)
        # Pixel values are integers 0..16: uniform noise over each integer cell
        # turns the discrete data into a continuous density.
        return X + np.random.RandomState(DATA_SEED).uniform(size=X.shape)
    if name == "s_curve":
        X, _ = make_s_curve(2000, noise=0.05, random_state=DATA_SEED)
        return X
    if name == "moons":
        return make_moons(2000, noise=0.05, random_state=DATA_SEED)[0]
    if name == "circles":
        X, _ = make_circles(2000, noise=0.05, factor=0.5, random_state=DATA_SEED)
        return X
    if name == "binary_table":
        X = load_breast_cancer().data.astype(np.float64)
        # A binary column: the first feature above or below its median.
        X[:, 0] = (X[:, 0] > np.median(X[:, 0])).astype(np.float64)
        return X
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine, "iris": load_iris}
    return loader[name]().data.astype(np.float64)


def _split(X, seed):
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


# ------------------------------------------------------------------ metrics
def _off_diagonal_mean(M):
    n = M.shape[0]
    return (M.sum() - np.trace(M)) / (n * (n - 1))


def _mmd2_unbiased(D_xx, D_yy, D_xy, bandwidth):
    """Unbiased MMD^2 with k(a, b) = exp(-|a - b|^2 / (2 h^2)), from distances."""
    gamma = 0.5 / bandwidth**2
    return (
        _off_diagonal_mean(np.exp(-gamma * D_xx**2))
        + _off_diagonal_mean(np.exp(-gamma * D_yy**2))
        - 2.0 * np.exp(-gamma * D_xy**2).mean()
    )


def _energy_distance(D_xx, D_yy, D_xy):
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| (U-statistics within each set)."""
    return 2.0 * D_xy.mean() - _off_diagonal_mean(D_xx) - _off_diagonal_mean(D_yy)


def _one_nn_accuracy(D_xx, D_yy, D_xy):
    """Leave-one-out 1-NN accuracy of telling X from Y (0.5 is ideal)."""
    D = np.block([[D_xx, D_xy], [D_xy.T, D_yy]])
    np.fill_diagonal(D, np.inf)
    labels = np.r_[np.zeros(D_xx.shape[0]), np.ones(D_yy.shape[0])]
    return float(np.mean(labels[D.argmin(axis=1)] == labels))


class _SplitReference:
    """What every model's samples are compared with on one split."""

    def __init__(self, X_train, X_test):
        self.X_train = X_train
        self.X_test = X_test
        self.D_tt = cdist(X_test, X_test)
        iu = np.triu_indices(len(X_test), k=1)
        self.median_distance = float(np.median(self.D_tt[iu]))
        self.test_dcr = float(np.median(cdist(X_test, X_train).min(axis=1)))
        self.test_total_var = float(X_test.var(axis=0).sum())
        self.train_total_var = float(X_train.var(axis=0).sum())

    def metrics(self, S):
        """Sample-quality metrics of samples ``S`` against the test set."""
        D_ss = cdist(S, S)
        D_st = cdist(S, self.X_test)
        out = {
            f"mmd2_h{f:g}": float(
                _mmd2_unbiased(D_ss, self.D_tt, D_st, f * self.median_distance)
            )
            for f in MMD_FRACTIONS
        }
        out["energy"] = float(_energy_distance(D_ss, self.D_tt, D_st))
        out["nn1_acc"] = _one_nn_accuracy(D_ss, self.D_tt, D_st)
        sample_dcr = float(np.median(cdist(S, self.X_train).min(axis=1)))
        out["dcr_ratio"] = sample_dcr / self.test_dcr
        return out

    def variance(self, S):
        """Total variance of many samples over that of the test and train sets.

        A dispersion check that helps to read MMD and energy distance; the
        ratio to the training set (what the model was fitted to) is free of
        the test set's own sampling noise.
        """
        total = float(S.var(axis=0).sum())
        return {
            "var_ratio": total / self.test_total_var,
            "var_ratio_train": total / self.train_total_var,
        }


# ------------------------------------------------------------------- models
def _som_grid(cfg, name, seed):
    estimator = SOMGenerativeModel(
        SelfOrganizingMap(random_state=seed), random_state=seed
    )
    sizes = cfg["map_sizes"][name]
    grid = [
        {
            "som__n_rows": [r],
            "som__n_cols": [c],
            "mean_stiffness": list(cfg["mean_stiffness"]),
            "reg_covar": list(cfg["som_reg_covars"]),
            "covariance_type": list(cfg["covariance_types"]),
        }
        for r, c in sizes
    ]
    return estimator, grid


def _gmm_components(cfg, name):
    """Component counts geometrically spaced over the range of unit counts of
    the map sizes, as many as make the GMM grid (counts x covariance types x
    reg_covar) as large as the SOM grid (sizes x stiffness x reg_covar x
    covariance types)."""
    units = [r * c for r, c in cfg["map_sizes"][name]]
    som_grid = len(units) * len(cfg["mean_stiffness"]) * len(cfg["som_reg_covars"])
    n = som_grid // len(cfg["reg_covars"])
    counts = np.unique(np.round(np.geomspace(min(units), max(units), n)).astype(int))
    return [int(k) for k in counts]


def _gmm_grid(cfg, name, seed):
    estimator = GaussianMixture(random_state=seed)
    grid = {
        "n_components": _gmm_components(cfg, name),
        "covariance_type": list(cfg["covariance_types"]),
        "reg_covar": list(cfg["reg_covars"]),
    }
    return estimator, grid


def _kde_grid(cfg, X_train):
    # Scott's factor on standardised data: the natural scale of a bandwidth.
    n, d = X_train.shape
    scott = n ** (-1.0 / (d + 4))
    bandwidths = [float(scott * f) for f in cfg["kde_factors"]]
    return KernelDensity(), {"bandwidth": bandwidths}


def _n_candidates(grid):
    grids = grid if isinstance(grid, list) else [grid]
    return sum(int(np.prod([len(v) for v in g.values()])) for g in grids)


def _describe(model):
    if isinstance(model, SOMGenerativeModel):
        som = model.som_
        return (
            f"{som.n_rows_}x{som.n_cols_} k{model.mean_stiffness:g} "
            f"r{model.reg_covar:g} {model.covariance_type}"
        )
    if isinstance(model, GaussianMixture):
        return f"K={model.n_components} {model.covariance_type} r{model.reg_covar:g}"
    return f"h={model.bandwidth:.3g}"


def _sample(model, n, seed):
    if isinstance(model, SOMGenerativeModel):
        return model.sample(n, random_state=seed)[0]
    if isinstance(model, GaussianMixture):
        return model.sample(n)[0]  # seeded by the model's random_state
    return model.sample(n, random_state=seed)


def _models(cfg, name, seed, X_train, n_jobs):
    """(key, unfitted estimator) of every model of one split; the tuned ones are
    GridSearchCV objects."""
    n_rows, n_cols = _data_sized_grid(X_train)  # the default model's map
    out = [
        ("som_default", SOMGenerativeModel(random_state=seed)),
        (
            "som_pinned",
            SOMGenerativeModel(mean_stiffness=np.inf, random_state=seed),
        ),
        (
            "gmm_k_default",
            GaussianMixture(n_rows * n_cols, covariance_type="diag", random_state=seed),
        ),
    ]
    for key, (estimator, grid) in (
        ("som_tuned", _som_grid(cfg, name, seed)),
        ("gmm_tuned", _gmm_grid(cfg, name, seed)),
        ("kde_tuned", _kde_grid(cfg, X_train)),
    ):
        search = GridSearchCV(estimator, grid, cv=3, n_jobs=n_jobs)
        out.append((key, search))
    return out


def _run_split(cfg, name, seed, X_train, X_test, n_jobs):
    ref = _SplitReference(X_train, X_test)
    n_test = len(X_test)
    result = dict(
        seed=seed,
        median_distance=ref.median_distance,
        test_dcr=ref.test_dcr,
        models={},
    )
    rng = np.random.RandomState(DATA_SEED + seed)
    subsample = X_train[rng.choice(len(X_train), n_test, replace=False)]
    result["reference"] = {**ref.metrics(subsample), **ref.variance(subsample)}

    for key, estimator in _models(cfg, name, seed, X_train, n_jobs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tic = time.perf_counter()
            estimator.fit(X_train)
            fit_s = time.perf_counter() - tic
        entry = dict(fit_s=fit_s)
        if isinstance(estimator, GridSearchCV):
            scores = estimator.cv_results_["mean_test_score"]
            entry["n_candidates"] = len(scores)
            entry["n_failed_candidates"] = int(np.sum(~np.isfinite(scores)))
            entry["best_params"] = estimator.best_params_
            entry["best_cv_score"] = float(estimator.best_score_)
            entry["edge_hits"] = _edge_hits(estimator)
            model = estimator.best_estimator_
        else:
            model = estimator
        entry["config"] = _describe(model)
        entry["warnings"] = dict(Counter(type(w.message).__name__ for w in caught))
        log_density = model.score_samples(X_test)
        entry["test_ll"] = float(np.mean(log_density))
        entry["test_ll_nonfinite"] = int(np.sum(~np.isfinite(log_density)))
        if isinstance(model, SOMGenerativeModel):
            entry["topographic_error"] = float(model.som_.topographic_error_)
            entry["means_topographic_error"] = float(model.topographic_error_)
            entry["n_units"] = int(model.means_.shape[0])
            entry["em_converged"] = bool(model.converged_)
            entry["em_n_iter"] = int(model.n_iter_)
        elif isinstance(model, GaussianMixture):
            entry["n_units"] = int(model.n_components)
            entry["em_converged"] = bool(model.converged_)
        S = np.asarray(_sample(model, N_VARIANCE_SAMPLES, seed), dtype=np.float64)
        entry.update(ref.variance(S))
        # The distance metrics on as many samples as the test set has points,
        # drawn at random (GaussianMixture.sample returns its samples sorted
        # by component).
        order = np.random.RandomState(DATA_SEED + seed).permutation(len(S))
        entry.update(ref.metrics(S[order[:n_test]]))
        result["models"][key] = entry
    return result


def _edge_hits(search):
    """Parameters whose chosen value sits on the edge of a searched range.

    Only ordered parameters count (map size by its number of units, the
    number of components, ``mean_stiffness``, ``reg_covar``, the bandwidth);
    a value is on the edge when it is the smallest or largest of the values
    searched and more than one value was searched. ``mean_stiffness=inf``
    (pinned means) is a limit of the model, not a grid edge: it is reported
    separately as ``"pinned"``.
    """
    grids = (
        search.param_grid
        if isinstance(search.param_grid, list)
        else [search.param_grid]
    )
    best = search.best_params_
    values = {}
    for grid in grids:
        for key, options in grid.items():
            values.setdefault(key, set()).update(options)
    if "som__n_rows" in best:
        units = {
            r * c
            for grid in grids
            for r in grid["som__n_rows"]
            for c in grid["som__n_cols"]
        }
        values = {k: v for k, v in values.items() if not k.startswith("som__n_")}
        values["n_units"] = units
        best = {**best, "n_units": best["som__n_rows"] * best["som__n_cols"]}
    hits = []
    for key, options in values.items():
        if key == "covariance_type" or len(options) < 2:
            continue
        if key == "mean_stiffness":
            if best[key] == np.inf:
                hits.append("pinned")
            options = {v for v in options if np.isfinite(v)}
            if len(options) < 2 or not np.isfinite(best[key]):
                continue
        if best[key] in (min(options), max(options)):
            hits.append(f"{key}={best[key]:g}")
    return hits


# ------------------------------------------------------------------ summary
PAIRS = (
    ("som_default", "gmm_k_default", "default SOM - GMM(K units, diag)"),
    ("som_default", "som_pinned", "default SOM - pinned means"),
    ("som_tuned", "gmm_tuned", "tuned SOM - tuned GMM"),
    ("som_tuned", "kde_tuned", "tuned SOM - tuned KDE"),
)
METRICS = (
    "mmd2_h1",
    "mmd2_h0.5",
    "mmd2_h0.25",
    "energy",
    "nn1_acc",
    "dcr_ratio",
    "var_ratio",
    "var_ratio_train",
)


def _mean_std(values):
    v = np.asarray(values, dtype=np.float64)
    return dict(
        mean=float(v.mean()),
        std=float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        min=float(v.min()),
        max=float(v.max()),
    )


def _summarise(splits):
    keys = list(splits[0]["models"])
    summary = {}
    for key in keys:
        entries = [s["models"][key] for s in splits]
        row = {m: _mean_std([e[m] for e in entries]) for m in ("test_ll", *METRICS)}
        row["fit_s"] = _mean_std([e["fit_s"] for e in entries])
        for name in ("topographic_error", "means_topographic_error"):
            if name in entries[0]:
                row[name] = _mean_std([e[name] for e in entries])
        if "edge_hits" in entries[0]:
            row["edge_hits"] = dict(
                Counter(hit for e in entries for hit in e["edge_hits"]).most_common()
            )
        row["configs"] = dict(Counter(e["config"] for e in entries).most_common())
        summary[key] = row
    summary["reference"] = {
        m: _mean_std([s["reference"][m] for s in splits]) for m in METRICS
    }
    paired = []
    for a, b, label in PAIRS:
        if a not in keys or b not in keys:
            continue
        diff = np.array(
            [s["models"][a]["test_ll"] - s["models"][b]["test_ll"] for s in splits]
        )
        paired.append(
            dict(
                label=label,
                a=a,
                b=b,
                diffs=diff.tolist(),
                mean=float(diff.mean()),
                std=float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
                wins=int(np.sum(diff >= 0)),
                n=len(diff),
            )
        )
    return summary, paired


def _paired(dataset, label):
    return next(p for p in dataset["paired"] if p["label"] == label)


def _targets(datasets):
    """PASS/FAIL of the targets, over the data sets that were run."""
    targets = []

    def add(name, value, target, passed):
        targets.append(dict(name=name, value=value, target=target, passed=bool(passed)))

    won = 0
    for name, dataset in datasets.items():
        summary = dataset["summary"]
        n = len(dataset["splits"])
        gmm = _paired(dataset, "tuned SOM - tuned GMM")
        kde = _paired(dataset, "tuned SOM - tuned KDE")
        won += gmm["mean"] > 0
        add(
            f"{name}: tuned SOM - tuned GMM held-out LL, mean",
            f"{gmm['mean']:+.3f} ({gmm['wins']}/{n} splits)",
            ">= 0",
            gmm["mean"] >= 0,
        )
        add(
            f"{name}: tuned SOM - tuned KDE held-out LL, mean",
            f"{kde['mean']:+.3f} ({kde['wins']}/{n} splits)",
            ">= 0",
            kde["mean"] >= 0,
        )
        for key in ("som_tuned", "som_default"):
            var = summary[key]["var_ratio"]
            train = summary[key]["var_ratio_train"]["mean"]
            add(
                f"{name}: sample / test variance of {LABELS[key]}, mean",
                f"{var['mean']:.3f} (train {train:.3f})",
                f"in [{TARGET_VAR[0]}, {TARGET_VAR[1]}]",
                TARGET_VAR[0] <= var["mean"] <= TARGET_VAR[1],
            )
        dcr = summary["som_default"]["dcr_ratio"]
        add(
            f"{name}: DCR ratio of the default SOM, mean",
            f"{dcr['mean']:.3f} (splits {dcr['min']:.3f}..{dcr['max']:.3f})",
            f">= {TARGET_DCR}",
            dcr["mean"] >= TARGET_DCR,
        )
    if len(datasets) == len(DATASETS):
        add(
            "tuned SOM > tuned GMM on average, data sets",
            f"{won}/{len(datasets)}",
            f">= {TARGET_SETS_WON}/{len(DATASETS)}",
            won >= TARGET_SETS_WON,
        )
    if "digits" in datasets:
        digits = datasets["digits"]
        splits, summary = digits["splits"], digits["summary"]
        n = len(splits)
        wins = sum(
            s["models"]["som_default"]["test_ll"]
            >= s["models"]["gmm_k_default"]["test_ll"]
            for s in splits
        )
        need = int(np.ceil(TARGET_MIN_WINS / 5 * n))
        add(
            "digits: default SOM >= GMM(K units, diag) held-out LL",
            f"{wins}/{n} splits",
            f">= {need}/{n}",
            wins >= need,
        )
        for metric in ("mmd2_h1", "mmd2_h0.5", "mmd2_h0.25", "energy"):
            som, gmm = summary["som_tuned"][metric], summary["gmm_tuned"][metric]
            add(
                f"digits: {metric} of the tuned SOM vs the tuned GMM, mean",
                f"{som['mean']:.4f} vs {gmm['mean']:.4f}",
                "<=",
                som["mean"] <= gmm["mean"],
            )
        te = summary["som_default"]["means_topographic_error"]
        add(
            "digits: topographic error of the default model's means, mean",
            f"{te['mean']:.3f} (max {te['max']:.3f})",
            f"<= {TARGET_TE}",
            te["mean"] <= TARGET_TE,
        )
    return targets


# ------------------------------------------------------------------ printing
LABELS = {
    "som_default": "SOM default",
    "gmm_k_default": "GMM(K,diag)",
    "som_pinned": "SOM pinned",
    "som_tuned": "SOM tuned",
    "gmm_tuned": "GMM tuned",
    "kde_tuned": "KDE tuned",
    "reference": "train subsample (ref)",
}


def _table(headers, rows):
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells
    ]
    return "\n".join(lines)


def _model_table(summary):
    headers = [
        "model",
        "config (mode)",
        "test LL (mean±sd)",
        "MMD2 h",
        "MMD2 h/2",
        "MMD2 h/4",
        "energy",
        "1-NN acc",
        "DCR ratio",
        "var/test",
        "var/train",
        "TE map",
        "TE means",
        "edge hits",
        "fit s",
    ]
    rows = []
    for key, row in summary.items():
        if key == "reference":
            continue
        config, count = next(iter(row["configs"].items()))
        n = sum(row["configs"].values())
        te = row.get("topographic_error")
        te_means = row.get("means_topographic_error")
        edges = row.get("edge_hits", {})
        rows.append(
            [
                LABELS[key],
                config + (f" ({count}/{n})" if len(row["configs"]) > 1 else ""),
                f"{row['test_ll']['mean']:.3f}±{row['test_ll']['std']:.3f}",
                *(f"{row[m]['mean']:.4f}" for m in METRICS[:3]),
                f"{row['energy']['mean']:.4f}",
                f"{row['nn1_acc']['mean']:.3f}",
                f"{row['dcr_ratio']['mean']:.3f}",
                f"{row['var_ratio']['mean']:.3f}",
                f"{row['var_ratio_train']['mean']:.3f}",
                "" if te is None else f"{te['mean']:.3f}",
                "" if te_means is None else f"{te_means['mean']:.3f}",
                " ".join(f"{k}:{v}" for k, v in edges.items()),
                f"{row['fit_s']['mean']:.2f}",
            ]
        )
    ref = summary["reference"]
    rows.append(
        [
            LABELS["reference"],
            "",
            "",
            *(f"{ref[m]['mean']:.4f}" for m in METRICS[:3]),
            f"{ref['energy']['mean']:.4f}",
            f"{ref['nn1_acc']['mean']:.3f}",
            f"{ref['dcr_ratio']['mean']:.3f}",
            f"{ref['var_ratio']['mean']:.3f}",
            f"{ref['var_ratio_train']['mean']:.3f}",
            "",
            "",
            "",
            "",
        ]
    )
    return _table(headers, rows)


def _paired_table(paired):
    headers = ["paired difference of test LL", "mean", "sd", "wins", "per split"]
    rows = [
        [
            p["label"],
            f"{p['mean']:+.3f}",
            f"{p['std']:.3f}",
            f"{p['wins']}/{p['n']}",
            " ".join(f"{d:+.2f}" for d in p["diffs"]),
        ]
        for p in paired
    ]
    return _table(headers, rows)


# ---------------------------------------------------------------------- main
def _version(name):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _meta(argv, quick, n_jobs):
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(["python benchmarks/bench_generative.py", *argv]),
        mode="quick" if quick else "full",
        n_jobs=n_jobs,
        blas_threads=1,
        machine=platform.machine(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        versions={k: _version(k) for k in ("numpy", "scipy", "scikit-learn")},
        somgen=somgen.__version__,
    )


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 data sets, 2 seeds, small grids"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--n-jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes of each GridSearchCV; results do not depend on it "
        "(default: 2, or 1 on a single core)",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=DATASETS,
        help="run only these data sets (default: all of the mode)",
    )
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.datasets:
        cfg["datasets"] = tuple(args.datasets)
    tic = time.perf_counter()
    meta = _meta(argv, args.quick, args.n_jobs)
    meta["loadavg_start"] = os.getloadavg()
    print(f"# SOMGenerativeModel benchmark ({meta['mode']}), {meta['date']}")
    print(
        f"cpus={meta['cpu_count']} python={meta['python']} somgen={meta['somgen']} "
        f"{meta['versions']}"
    )
    results = dict(meta=meta, config=cfg, datasets={})
    # Small fits: one BLAS thread each is faster than two that contend (the
    # search's worker processes get one each from joblib when n_jobs=2).
    with threadpool_limits(limits=1, user_api="blas"):
        for name in cfg["datasets"]:
            t0 = time.perf_counter()
            X = _load(name)
            splits = []
            for seed in cfg["seeds"]:
                X_train, X_test = _split(X, seed)
                splits.append(_run_split(cfg, name, seed, X_train, X_test, args.n_jobs))
            summary, paired = _summarise(splits)
            dataset = dict(
                n_samples=X.shape[0],
                n_features=X.shape[1],
                n_train=len(X_train),
                n_test=len(X_test),
                default_map=_data_sized_grid(X_train),
                grid_candidates=dict(
                    som=_n_candidates(_som_grid(cfg, name, 0)[1]),
                    gmm=_n_candidates(_gmm_grid(cfg, name, 0)[1]),
                    kde=len(cfg["kde_factors"]),
                ),
                splits=splits,
                summary=summary,
                paired=paired,
                wall_s=time.perf_counter() - t0,
            )
            results["datasets"][name] = dataset
            print(
                f"\n## {name}: {X.shape[0]} samples x {X.shape[1]} features, "
                f"train {len(X_train)} / test {len(X_test)}, {len(splits)} splits, "
                f"search candidates SOM {dataset['grid_candidates']['som']} / GMM "
                f"{dataset['grid_candidates']['gmm']} / KDE "
                f"{dataset['grid_candidates']['kde']} ({dataset['wall_s']:.1f} s)\n",
                flush=True,
            )
            print(_model_table(summary))
            print()
            print(_paired_table(paired), flush=True)

    targets = _targets(results["datasets"])
    results["targets"] = targets
    print("\n## targets\n")
    for t in targets:
        status = "PASS" if t["passed"] else "FAIL"
        print(f"{status}  {t['name']}: {t['value']} (target {t['target']})")

    meta["loadavg_end"] = os.getloadavg()
    meta["wall_s"] = time.perf_counter() - tic
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=_json_default))
    print(f"\ntotal wall time {meta['wall_s']:.1f} s; results in {args.output}")
    return results


if __name__ == "__main__":
    main()
