"""Test-session settings, loaded by pytest before anything imports scipy."""

import os

# scikit-learn's estimator checks include an array-API dispatch check that
# needs this set before scipy is imported; without it the check is skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
# Plots in doctests and tests render off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")
