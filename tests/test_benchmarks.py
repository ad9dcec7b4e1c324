"""Smoke runs of the benchmark scripts in their quick modes (slow, run in CI)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_generative_quick_meets_digits_targets(tmp_path, capsys):
    bench = _load("bench_generative")
    out = tmp_path / "generative.json"
    results = bench.main(
        ["--quick", "--n-jobs", "1", "--datasets", "digits", "--output", str(out)]
    )
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    targets = {t["name"]: t["passed"] for t in results["targets"]}
    # The likelihood, copying and order targets hold on the digits even in the
    # quick run; the variance ratios and sample distances are reported (see
    # benchmarks/README_generative.md for where the full run misses them).
    must_pass = [
        "digits: tuned SOM - tuned GMM held-out LL, mean",
        "digits: tuned SOM - tuned KDE held-out LL, mean",
        "digits: DCR ratio of the default SOM, mean",
        "digits: default SOM >= GMM(K units, diag) held-out LL",
        "digits: topographic error of the default model's means, mean",
    ]
    assert {name: targets[name] for name in must_pass} == dict.fromkeys(must_pass, True)
    assert "digits: sample / test variance of SOM default, mean" in targets
    assert "PASS" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_som_quick_runs_exact_and_bit_identical(tmp_path):
    bench = _load("bench_som")
    out = tmp_path / "som.json"
    assert bench.main(["--quick", "--output", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["meta"]["mode"] == "quick"
    assert all(row["identical"] for row in results["bit_identity"])
    assert len(results["epoch"]) == 6
    assert all(
        row["ratio_gemm"] > 0 and row["ratio_load"] > 0 for row in results["epoch"]
    )
    # Exactness does not depend on the machine: somgen's BMUs are the
    # brute-force ones on every offset workload.
    assert all(row["wrong"] == 0.0 for row in results["offsets"])
    assert all(
        abs(row["float32_qe"] - row["float64_qe"]) < 0.02 * row["float64_qe"]
        for row in results["collapse"]
    )
    assert all(row["peak_mib"] < 4 * row["input_mib"] + 64 for row in results["memory"])


@pytest.mark.slow
def test_bench_generative_speed_quick_runs_and_impute_matches(tmp_path):
    bench = _load("bench_generative_speed")
    out = tmp_path / "speed.json"
    results = bench.main(["--quick", "--repeat", "1", "--json", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    assert {row["covariance_type"] for row in results["kernels"]} >= {
        "diag",
        "spherical",
        "tied",
        "full",
    }
    # The fast impute must agree with the previous algorithm (not a timing).
    assert results["impute"]["max_abs_diff_vs_reference"] < 1e-9


@pytest.mark.slow
def test_bench_oversampling_quick_runs_and_never_copies(tmp_path):
    bench = _load("bench_oversampling")
    out = tmp_path / "oversampling.json"
    results = bench.main(["--quick", "--n-jobs", "1", "--output", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    samplers = {row["sampler"] for row in results["records"]}
    assert {"som", "smote", "none"} <= samplers
    som_dcr = [r["dcr_ratio"] for r in results["records"] if r["sampler"] == "som"]
    assert som_dcr and all(d > 0 for d in som_dcr)  # never an exact copy


@pytest.mark.slow
def test_bench_compose_quick_raw_units_and_latent_auto(tmp_path, capsys):
    bench = _load("bench_compose")
    out = tmp_path / "compose.json"
    results = bench.main(["--quick", "--output", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    assert [s["dataset"] for s in results["summary"]] == ["iris", "moons"]
    for row in results["rows"]:
        # TransformedDensity in raw units = scaled model + analytic log-Jacobian
        assert row["raw_identity_max_abs"] < 1e-10
        assert row["auto_bandwidth"] in (None, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
        assert 0.0 <= row["coverage"] <= 1.0 and row["n_masked"] > 0
    for s in results["summary"]:
        assert len(s["auto_bandwidths"]) == 2
    assert "auto picks" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_missing_sparse_tiny_runs(tmp_path):
    bench = _load("bench_missing_sparse")
    out = tmp_path / "missing_sparse.json"
    sizes = {
        "digits_rows": 200,
        "blobs": [300, 6],
        "map": [3, 3],
        "n_epochs": 2,
        "sparse": [2000, 300, 0.01],
        "dense_rows": 200,
        "knn_max_samples": 200,
        "iterative_max_iter": 1,
    }
    results = bench.main(
        ["--quick", "--n-jobs", "1", "--sizes", json.dumps(sizes), "--output", str(out)]
    )
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    assert [row["dataset"] for row in results["missing"]] == ["digits", "blobs"]
    for row in results["missing"]:
        assert row["fraction"] == 0.3
        # Filling from the BMU prototype beats filling with the mean.
        assert row["rmse_som"] < row["rmse_simple_mean"]
        assert row["qe_missing_fit"] > 0 and row["time_ratio"] > 0
    sparse_row = results["sparse"]
    # Tiny sizes: fixed overheads, but still below one dense copy of X.
    assert sparse_row["fit_peak_traced_mib"] < sparse_row["dense_equivalent_mib"]
    assert sparse_row["epoch_over_product"] > 0


@pytest.mark.slow
def test_bench_dask_quick_runs_and_matches_in_memory(tmp_path):
    bench = _load("bench_dask")
    out = tmp_path / "dask.json"
    results = bench.main(["--quick", "--output", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    runs = results["overhead"]["runs"]
    assert [row["run"] for row in runs] == [
        "in-memory",
        "dask threads",
        "dask LocalCluster",
    ]
    # The equality contract, not a timing.
    assert all(row["codebook_rel_diff"] <= 1e-10 for row in runs)
    assert all(row["epoch_s_median"] > 0 for row in runs)
    ooc = results["out_of_core"]
    assert len(ooc["epoch_s"]) == ooc["n_epochs"] == 2
    assert len(ooc["worker_peak_rss_mib"]) == 2
    assert np.isfinite(ooc["score"]) and ooc["samples_epochs_per_s"] > 0


@pytest.mark.slow
def test_bench_generative_missing_quick_runs(tmp_path):
    bench = _load("bench_generative_missing")
    out = tmp_path / "generative_missing.json"
    results = bench.main(["--quick", "--output", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    assert [row["data"] for row in results["missing"]] == [
        "digits",
        "breast_cancer",
        "blobs",
    ]
    for row in results["missing"]:
        ll = row["test_ll"]
        # EM with missing data beats fitting on mean-imputed data, and the
        # model's imputation beats the column means.
        assert ll["missing_fit"] > ll["mean_imputed_fit"]
        assert row["rmse"]["model"] < row["rmse"]["mean"]
    sparse_row = results["sparse"]
    assert sparse_row["means_max_rel_diff"] < 1e-10
    assert sparse_row["scores_max_abs_diff"] < 1e-8


@pytest.mark.slow
def test_bench_som_auto_size_quick(tmp_path):
    bench = _load("bench_som_auto_size")
    out = tmp_path / "auto_size.json"
    results = bench.main(["--quick", "--output", str(out)])
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    iris = results["datasets"]["iris"]["splits"]
    for split in iris:
        assert split["10x10"]["shape"] == [10, 10]
        # 100 units on 112 rows copy the training rows; the data-sized map
        # does not, and its held-out likelihood is higher.
        assert split["auto"]["units_per_sample"] < 0.11  # n // 10 units, rounded
        assert split["auto"]["dcr"] > split["10x10"]["dcr"]
        assert split["auto"]["ll"] > split["10x10"]["ll"]
    for entry in results["datasets"].values():
        for timing in entry["times"].values():
            assert timing["seconds"]["auto"] > 0
    assert set(results["summary"]) == {"10x10", "toolbox"}
