"""Property-based tests of the mixture kernels (hypothesis, bounded budgets)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import linalg
from scipy.special import logsumexp

from somgen._mixture import (
    _compute_precision_cholesky,
    _predict,
    _predict_proba,
    _score_samples_chunked,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def _mixture(seed, covariance_type, n_components, n_features, offset, spread):
    """Components of width ``spread`` around ``offset``, and samples near them."""
    rng = np.random.RandomState(seed)
    centres = offset * rng.choice([-1.0, 1.0], size=(n_components, 1))
    means = centres + spread * rng.normal(scale=3.0, size=(n_components, n_features))
    if covariance_type == "full":
        A = rng.normal(size=(n_components, n_features, n_features))
        covariances = A @ A.transpose(0, 2, 1) / n_features + np.eye(n_features)
    elif covariance_type == "tied":
        A = rng.normal(size=(n_features, n_features))
        covariances = A @ A.T / n_features + np.eye(n_features)
    elif covariance_type == "diag":
        covariances = rng.uniform(0.3, 3.0, size=(n_components, n_features))
    else:
        covariances = rng.uniform(0.3, 3.0, size=n_components)
    covariances = covariances * spread**2
    weights = rng.dirichlet(np.full(n_components, 1.0))
    labels = rng.randint(n_components, size=25)
    X = means[labels] + spread * rng.normal(scale=2.0, size=(25, n_features))
    return weights, means, covariances, X, rng


def _direct_log_prob(X, means, covariances, covariance_type):
    """Gaussian log-densities computed directly from ``x - mu_k``, in float64."""
    n_components, n_features = means.shape
    out = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        diff = X - means[k]
        if covariance_type == "diag":
            variances = covariances[k]
        elif covariance_type == "spherical":
            variances = np.full(n_features, covariances[k])
        else:
            cov = covariances if covariance_type == "tied" else covariances[k]
            factor = linalg.cholesky(cov, lower=True)
            z = linalg.solve_triangular(factor, diff.T, lower=True)
            log_det = 2.0 * np.sum(np.log(np.diag(factor)))
            out[:, k] = -0.5 * (np.sum(z**2, axis=0) + log_det)
            continue
        out[:, k] = -0.5 * (
            np.sum(diff**2 / variances, axis=1) + np.sum(np.log(variances))
        )
    return out - 0.5 * n_features * np.log(2.0 * np.pi)


mixtures = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        "covariance_type": st.sampled_from(COVARIANCE_TYPES),
        "n_components": st.integers(1, 6),
        "n_features": st.integers(1, 4),
        "offset": st.sampled_from([0.0, 1.0, 1e3, 1e6]),
        "spread": st.sampled_from([1e-3, 1e-1, 1.0, 30.0]),
    }
)


@settings(max_examples=120, deadline=None)
@given(
    mixture=mixtures,
    outlier=st.sampled_from([0.0, 1e5, 1e20, 1e155, 1e300, np.finfo(float).max / 4]),
)
def test_predict_proba_rows_sum_to_one_for_any_finite_input(mixture, outlier):
    weights, means, covariances, X, rng = _mixture(**mixture)
    covariance_type = mixture["covariance_type"]
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    # Some rows get a coordinate (or all of them) pushed far out.
    X[::3, rng.randint(X.shape[1])] = outlier
    X[1::5] = -outlier * rng.choice([-1.0, 1.0], size=X.shape[1])

    proba = _predict_proba(X, weights, means, prec_chol, covariance_type)
    assert np.all(np.isfinite(proba))
    assert np.all(proba >= 0.0)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    labels = _predict(X, weights, means, prec_chol, covariance_type)
    assert np.all(proba[np.arange(X.shape[0]), labels] == proba.max(axis=1))
    log_density = _score_samples_chunked(X, weights, means, prec_chol, covariance_type)
    assert not np.any(np.isnan(log_density))
    assert not np.any(log_density == np.inf)


@settings(max_examples=120, deadline=None)
@given(mixture=mixtures)
def test_score_samples_matches_direct_float64_reference(mixture):
    weights, means, covariances, X, _ = _mixture(**mixture)
    covariance_type = mixture["covariance_type"]
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    direct = _direct_log_prob(X, means, covariances, covariance_type)
    expected = logsumexp(direct + np.log(weights), axis=1)
    result = _score_samples_chunked(X, weights, means, prec_chol, covariance_type)
    # The log-densities are O(n_features * log(1 / spread)) here: exact to
    # 1e-6 nats plus their own relative rounding.
    assert_allclose(result, expected, rtol=1e-12, atol=1e-6)
