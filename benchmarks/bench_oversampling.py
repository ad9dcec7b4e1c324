"""Classification quality after over-sampling: SOMOverSampler against imbalanced-learn.

Imbalanced binary problems made from scikit-learn data:

- ``breast_cancer``: malignant (the smaller class) vs benign;
- ``wine_ovr``: the least frequent wine cultivar vs the other two;
- ``digits_ovr``: the least frequent digit vs the other nine;
- ``clf_95_5`` and ``clf_99_1``: ``make_classification`` (2000 rows, 10 features,
  5 informative) with class weights 0.95/0.05 and 0.99/0.01.

Each is split by stratified 5-fold CV (one fixed seed). Inside each training fold
a StandardScaler is fitted, the sampler resamples the scaled training rows, and a
LogisticRegression and a HistGradientBoostingClassifier are fitted on the result;
the untouched test fold gives balanced accuracy, F1 of the minority class and
average precision (minority class scores). Samplers: none, RandomOverSampler,
SMOTE, BorderlineSMOTE, ADASYN and SOMOverSampler, all with their defaults and
``sampling_strategy="auto"`` (minority up to the majority count). Nothing is tuned:
the test folds are only scored.

For every sampler that adds rows the script also records the
distance-to-closest-record ratio of the new rows (``SOMOverSampler.dcr_ratio_``'s
definition, computed identically for every sampler): about 1 means new rows sit as
close to the training data as real rows sit to each other.

Paired differences SOMOverSampler - SMOTE are per problem and classifier (mean and
standard deviation over the folds); the targets compare the mean over problems and
classifiers, and count problems where SOMOverSampler is better. A FAIL does not
raise.

Usage::

    python benchmarks/bench_oversampling.py [--quick] [--output PATH] [--n-jobs N]

``--quick`` uses 3 folds, two problems and the LogisticRegression (under a minute).
``main(argv=None)`` runs the same from Python and returns the results dict.
"""

import argparse
import datetime
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

try:
    import somgen
except ImportError:  # running from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import somgen

import sklearn
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_wine,
    make_classification,
)
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from somgen._labelled import _distance_to_closest_record

METRICS = ("balanced_accuracy", "f1_minority", "average_precision")
SAMPLERS = ("none", "random", "smote", "borderline_smote", "adasyn", "som")
CLASSIFIERS = ("logistic", "hist_gb")


def _minority_vs_rest(X, y):
    labels, counts = np.unique(y, return_counts=True)
    positive = labels[np.argmin(counts)]
    return X, (y == positive).astype(int)


def load_problems(quick=False):
    problems = {}
    X, y = load_breast_cancer(return_X_y=True)
    problems["breast_cancer"] = (X, (y == 0).astype(int))  # 0 = malignant
    if not quick:
        problems["wine_ovr"] = _minority_vs_rest(*load_wine(return_X_y=True))
        problems["digits_ovr"] = _minority_vs_rest(*load_digits(return_X_y=True))
    for name, weights in (("clf_95_5", 0.95), ("clf_99_1", 0.99)):
        if quick and name == "clf_99_1":
            continue
        problems[name] = make_classification(
            n_samples=2000,
            n_features=10,
            n_informative=5,
            weights=[weights, 1 - weights],
            random_state=0,
        )
    return problems


def make_sampler(name, random_state):
    from imblearn.over_sampling import (
        ADASYN,
        SMOTE,
        BorderlineSMOTE,
        RandomOverSampler,
    )

    return {
        "none": None,
        "random": RandomOverSampler(random_state=random_state),
        "smote": SMOTE(random_state=random_state),
        "borderline_smote": BorderlineSMOTE(random_state=random_state),
        "adasyn": ADASYN(random_state=random_state),
        "som": somgen.SOMOverSampler(random_state=random_state),
    }[name]


def make_classifier(name):
    if name == "logistic":
        return LogisticRegression(max_iter=2000)
    return HistGradientBoostingClassifier(random_state=0)


def run_fold(X, y, train, test, classifiers, fold):
    warnings.simplefilter("ignore")
    scaler = StandardScaler().fit(X[train])
    X_train, X_test = scaler.transform(X[train]), scaler.transform(X[test])
    y_train, y_test = y[train], y[test]
    rows = []
    for sampler_name in SAMPLERS:
        sampler = make_sampler(sampler_name, random_state=fold)
        dcr = None
        if sampler is None:
            X_res, y_res = X_train, y_train
        else:
            try:
                X_res, y_res = sampler.fit_resample(X_train, y_train)
            except (ValueError, RuntimeError) as error:  # e.g. ADASYN: no neighbours
                rows.append({"sampler": sampler_name, "error": str(error)})
                continue
            new = X_res[X_train.shape[0] :]
            if new.shape[0]:
                dcr = _distance_to_closest_record(
                    X_train, new, np.flatnonzero(y_train == 1)
                )
        for clf_name in classifiers:
            clf = make_classifier(clf_name).fit(X_res, y_res)
            score = clf.predict_proba(X_test)[:, 1]
            pred = clf.predict(X_test)
            rows.append(
                {
                    "sampler": sampler_name,
                    "classifier": clf_name,
                    "balanced_accuracy": balanced_accuracy_score(y_test, pred),
                    "f1_minority": f1_score(y_test, pred, pos_label=1),
                    "average_precision": average_precision_score(y_test, score),
                    "dcr_ratio": dcr,
                }
            )
    return rows


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    parser.add_argument("--n-jobs", type=int, default=-1)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    n_folds = 3 if args.quick else 5
    classifiers = ("logistic",) if args.quick else CLASSIFIERS
    problems = load_problems(args.quick)
    jobs = []
    for name, (X, y) in problems.items():
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=0)
        for fold, (train, test) in enumerate(cv.split(X, y)):
            jobs.append((name, fold, X, y, train, test))
    outputs = Parallel(n_jobs=args.n_jobs)(
        delayed(run_fold)(X, y, train, test, classifiers, fold)
        for _, fold, X, y, train, test in jobs
    )
    records = []
    for (name, fold, *_), rows in zip(jobs, outputs, strict=True):
        for row in rows:
            records.append({"problem": name, "fold": fold, **row})

    def values(problem, sampler, clf, metric):
        return np.array(
            [
                r[metric]
                for r in records
                if r["problem"] == problem
                and r["sampler"] == sampler
                and r.get("classifier") == clf
            ],
            dtype=float,
        )

    print(
        f"# bench_oversampling ({'quick' if args.quick else 'full'}): "
        f"{n_folds}-fold stratified CV, minority = positive class\n"
    )
    for name, (X, y) in problems.items():
        print(
            f"## {name}: {X.shape[0]} rows, {X.shape[1]} features, "
            f"minority {y.mean():.1%}"
        )
        table = []
        for clf in classifiers:
            for sampler in SAMPLERS:
                scores = [values(name, sampler, clf, m) for m in METRICS]
                if scores[0].size == 0:
                    table.append([clf, sampler, "error", "", "", ""])
                    continue
                dcr = values(name, sampler, clf, "dcr_ratio")
                table.append(
                    [clf, sampler]
                    + [f"{s.mean():.3f} +- {s.std():.3f}" for s in scores]
                    + ["" if np.all(np.isnan(dcr)) else f"{np.nanmean(dcr):.2f}"]
                )
        print(_table(["classifier", "sampler", *METRICS, "dcr_ratio"], table))
        errors = {
            r["sampler"]: r["error"]
            for r in records
            if r["problem"] == name and "error" in r
        }
        for sampler, message in errors.items():
            print(f"  {sampler} failed on some fold: {message[:100]}")
        print()

    print("## Paired differences SOMOverSampler - SMOTE (mean +- std over folds)")
    paired = []
    table = []
    for name in problems:
        for clf in classifiers:
            row = [name, clf]
            entry = {"problem": name, "classifier": clf}
            for metric in METRICS:
                som, smote = (values(name, s, clf, metric) for s in ("som", "smote"))
                if som.size != smote.size or som.size == 0:
                    row.append("n/a")
                    continue
                diff = som - smote
                entry[metric] = float(diff.mean())
                row.append(f"{diff.mean():+.3f} +- {diff.std():.3f}")
            paired.append(entry)
            table.append(row)
    print(_table(["problem", "classifier", *METRICS], table))

    targets = []
    for metric in METRICS:
        diffs = np.array([p[metric] for p in paired if metric in p])
        mean_ok = bool(diffs.mean() >= 0.0)
        per_problem = {}
        for p in paired:
            if metric in p:
                per_problem.setdefault(p["problem"], []).append(p[metric])
        wins = sum(np.mean(v) > 0.0 for v in per_problem.values())
        half_ok = bool(wins >= len(per_problem) / 2)
        targets.append(
            {
                "metric": metric,
                "mean_difference": float(diffs.mean()),
                "mean_ok": mean_ok,
                "problems_better": int(wins),
                "n_problems": len(per_problem),
                "half_ok": half_ok,
            }
        )
    dcr_som = np.array(
        [r["dcr_ratio"] for r in records if r.get("sampler") == "som"], dtype=float
    )
    dcr_smote = np.array(
        [r["dcr_ratio"] for r in records if r.get("sampler") == "smote"], dtype=float
    )
    print("\n## Targets")
    for t in targets:
        print(
            f"{t['metric']:<18} mean SOM-SMOTE {t['mean_difference']:+.4f} "
            f"({'PASS' if t['mean_ok'] else 'FAIL'} >= 0); better on "
            f"{t['problems_better']}/{t['n_problems']} problems "
            f"({'PASS' if t['half_ok'] else 'FAIL'} >= half)"
        )
    print(
        f"DCR ratio of new rows: SOMOverSampler median {np.nanmedian(dcr_som):.2f} "
        f"(range {np.nanmin(dcr_som):.2f}-{np.nanmax(dcr_som):.2f}), SMOTE median "
        f"{np.nanmedian(dcr_smote):.2f}"
    )
    elapsed = time.perf_counter() - start
    print(f"\n{elapsed:.1f} s")

    import imblearn

    results = {
        "meta": {
            "mode": "quick" if args.quick else "full",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "imblearn": imblearn.__version__,
            "somgen": somgen.__version__,
            "n_folds": n_folds,
            "seconds": elapsed,
        },
        "records": records,
        "paired": paired,
        "targets": targets,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
