"""Smoke run of benchmarks/bench_compose.py in its quick mode (slow, run in CI)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
