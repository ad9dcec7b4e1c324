"""Packaging: one source for the version, and the license shipped."""

from importlib.metadata import metadata, version
from pathlib import Path

import somgen

ROOT = Path(__file__).resolve().parents[1]


def test_version_single_source():
    # pyproject.toml reads the version from somgen.__version__ (dynamic).
    assert version("somgen") == somgen.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = {attr = "somgen.__version__"}' in pyproject


def test_license_declared_and_present():
    assert metadata("somgen")["License-Expression"] == "BSD-3-Clause"
    text = (ROOT / "LICENSE").read_text()
    assert "Copyright (c) 2026, somgen developers" in text
    assert "Redistribution and use in source and binary forms" in text
