"""Smoke runs of the benchmark scripts in their quick modes (slow, run in CI)."""

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
def test_bench_generative_quick_meets_digits_targets(tmp_path, capsys):
    bench = _load("bench_generative")
    out = tmp_path / "generative.json"
    results = bench.main(
        ["--quick", "--n-jobs", "1", "--datasets", "digits", "--output", str(out)]
    )
    assert json.loads(out.read_text())["meta"]["mode"] == "quick"
    targets = {t["name"]: t["passed"] for t in results["targets"]}
    assert len(targets) == 4
    assert all(targets.values()), targets
    assert "PASS" in capsys.readouterr().out
