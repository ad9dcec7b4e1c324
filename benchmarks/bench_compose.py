"""Densities that compose: latent densities, raw units, conditional coverage.

On the data sets of ``bench_generative.py`` (dequantized digits, breast
cancer, wine, iris, S-curve) plus two moons, each split 75/25 with five seeds
(a StandardScaler fitted on the training part), the script measures

1. the held-out mean log-likelihood of ``SOMGenerativeModel`` (10x10 map, or
   one unit per ten training samples on the small sets) without a latent
   density, with
   ``latent_density="auto"`` and with the formerly documented
   ``latent_density=KernelDensity(bandwidth=1.0)``;
2. the identity between the raw-unit held-out log-likelihood of
   ``TransformedDensity(StandardScaler(), model)`` and the scaled model's plus
   the analytic log-Jacobian ``-sum(log sigma_j)`` (maximum absolute deviation
   per sample);
3. the empirical coverage of 90 % intervals (5 % and 95 % quantiles of 200
   draws of ``sample_conditional``) on the held-out rows with 20 % of the
   entries masked at random.

Usage::

    python benchmarks/bench_compose.py [--quick] [--output PATH]
        [--datasets NAME ...]

``main(argv=None)`` runs the same thing from Python and returns the results.
"""

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

from somgen import SelfOrganizingMap, SOMGenerativeModel, TransformedDensity

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "bench_compose.json"
DATASETS = ("digits", "breast_cancer", "wine", "iris", "moons", "s_curve")
QUICK_DATASETS = ("iris", "moons")
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
MASK_FRACTION = 0.2
N_DRAWS = 200
LEVEL = 0.9


def _bench_generative():
    spec = importlib.util.spec_from_file_location(
        "bench_generative", HERE / "bench_generative.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name, generative):
    if name == "moons":
        X, _ = make_moons(1000, noise=0.1, random_state=generative.DATA_SEED)
        return X
    return generative._load(name)


def _map(n_train, generative):
    """About one unit per ten training samples, at most 10x10: the maps of the
    runs of record in README_compose.md (``bench_generative.py`` now uses the
    model's own default map, sized from the data)."""
    n_units = int(min(100, max(4, round(n_train / 10))))
    n_rows = int(np.floor(np.sqrt(n_units)))
    return n_rows, int(round(n_units / n_rows))


def _latent_row(name, seed, X_train, X_test, shape):
    scaler = StandardScaler().fit(X_train)
    Z_train, Z_test = scaler.transform(X_train), scaler.transform(X_test)
    row = {"dataset": name, "seed": seed, "map": list(shape)}
    for label, latent in (
        ("none", None),
        ("auto", "auto"),
        ("kde_1.0", KernelDensity(bandwidth=1.0)),
    ):
        model = SOMGenerativeModel(
            SelfOrganizingMap(*shape, random_state=seed),
            latent_density=latent,
            random_state=seed,
        ).fit(Z_train)
        row[label] = model.score(Z_test)
        if label == "auto":
            chosen = model.latent_density_
            row["auto_bandwidth"] = None if chosen is None else chosen.bandwidth
            cv = model.latent_cv_results_
            row["auto_cv_best"] = cv["bandwidth"][int(np.argmax(cv["mean_test_score"]))]
        if label == "none":
            plain = model
    # raw units: TransformedDensity against the scaled model + log-Jacobian
    raw = TransformedDensity(
        StandardScaler(),
        SOMGenerativeModel(
            SelfOrganizingMap(*shape, random_state=seed), random_state=seed
        ),
    ).fit(X_train)
    log_det = -np.sum(np.log(scaler.scale_))
    deviation = raw.score_samples(X_test) - (plain.score_samples(Z_test) + log_det)
    row["raw_ll"] = raw.score(X_test)
    row["raw_identity_max_abs"] = float(np.max(np.abs(deviation)))
    # conditional coverage on held-out rows, 20 % of the entries masked
    rng = np.random.RandomState(seed)
    mask = rng.uniform(size=Z_test.shape) < MASK_FRACTION
    masked = np.where(mask, np.nan, Z_test)
    draws = plain.sample_conditional(masked, n_draws=N_DRAWS, random_state=seed)
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0)
    inside = (low <= Z_test) & (Z_test <= high)
    row["coverage"] = float(inside[mask].mean())
    row["n_masked"] = int(mask.sum())
    return row


def _summary(rows, datasets):
    out = []
    for name in datasets:
        sub = [r for r in rows if r["dataset"] == name]
        if not sub:
            continue
        none = np.array([r["none"] for r in sub])
        auto = np.array([r["auto"] for r in sub])
        kde = np.array([r["kde_1.0"] for r in sub])
        out.append(
            {
                "dataset": name,
                "map": sub[0]["map"],
                "none": float(none.mean()),
                "auto": float(auto.mean()),
                "kde_1.0": float(kde.mean()),
                "auto_minus_none": float((auto - none).mean()),
                "kde_minus_none": float((kde - none).mean()),
                "auto_bandwidths": [r["auto_bandwidth"] for r in sub],
                "raw_identity_max_abs": max(r["raw_identity_max_abs"] for r in sub),
                "coverage": float(np.mean([r["coverage"] for r in sub])),
            }
        )
    return out


def _print(summary):
    head = (
        f"{'dataset':14s} {'map':>6s} {'none':>9s} {'auto':>9s} {'kde1.0':>9s} "
        f"{'auto-none':>10s} {'kde-none':>9s} {'|raw id|':>9s} {'cover90':>8s}"
        "  auto picks"
    )
    print(head)
    for s in summary:
        picks = ",".join("-" if b is None else f"{b:g}" for b in s["auto_bandwidths"])
        print(
            f"{s['dataset']:14s} {'x'.join(map(str, s['map'])):>6s} "
            f"{s['none']:9.3f} {s['auto']:9.3f} {s['kde_1.0']:9.3f} "
            f"{s['auto_minus_none']:10.4f} {s['kde_minus_none']:9.4f} "
            f"{s['raw_identity_max_abs']:9.1e} {s['coverage']:8.3f}  {picks}"
        )


def main(argv=None):
    """Run the benchmark; returns the results dict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="iris, moons; 2 splits")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=None)
    args = parser.parse_args(argv)
    datasets = args.datasets or (QUICK_DATASETS if args.quick else DATASETS)
    seeds = QUICK_SEEDS if args.quick else SEEDS
    generative = _bench_generative()
    start = time.perf_counter()
    rows = []
    for name in datasets:
        X = _load(name, generative)
        for seed in seeds:
            X_train, X_test = train_test_split(X, test_size=0.25, random_state=seed)
            shape = _map(len(X_train), generative)
            rows.append(_latent_row(name, seed, X_train, X_test, shape))
    summary = _summary(rows, datasets)
    _print(summary)
    auto_wins = float(np.mean([s["auto_minus_none"] for s in summary]))
    print(f"mean auto - none over the data sets: {auto_wins:+.4f} nats/sample")
    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "argv": list(argv) if argv is not None else sys.argv[1:],
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "wall_s": time.perf_counter() - start,
            "python": platform.python_version(),
            "somgen": somgen.__version__,
        },
        "rows": rows,
        "summary": summary,
        "mean_auto_minus_none": auto_wins,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
