"""Test-session settings, loaded by pytest before anything imports scipy."""

import os

# scikit-learn's estimator checks include an array-API dispatch check that
# needs this set before scipy is imported; without it the check is skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# Plots in doctests and tests render off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")

# Generated or executed by the documentation build, not tests: the gallery
# scripts run in tests/test_docs_build.py, and docs/conf.py may probe the network.
collect_ignore = [
    "examples",
    "docs/conf.py",
    "docs/_build",
    "docs/_templates",
    "docs/auto_examples",
    "docs/generated",
    "docs/sg_execution_times.rst",
]
