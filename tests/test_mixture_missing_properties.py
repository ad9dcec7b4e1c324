"""Property-based tests of the missing-value and sparse kernels (hypothesis).

Marginal log-densities of rows with random NaN patterns, and sparse rows,
against the direct float64 reference on the observed coordinates, on data far
from the origin and at small and large scales.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy import sparse
from scipy.special import logsumexp
from test_mixture_properties import _direct_log_prob, _mixture, mixtures

from somgen._mixture import _compute_precision_cholesky
from somgen._mixture_missing import (
    _predict_proba_missing,
    _score_samples_missing,
    _sparse_score_samples,
)


def _marginal_reference(X, weights, means, covariances, covariance_type):
    """log sum_k pi_k N(x_o | mu_k,o, Sigma_k,oo), row by row, directly."""
    out = np.empty(X.shape[0])
    for i, x in enumerate(X):
        obs = ~np.isnan(x)
        if not obs.any():
            out[i] = logsumexp(np.log(weights))
            continue
        if covariance_type == "full":
            cov = covariances[:, obs][:, :, obs]
        elif covariance_type == "tied":
            cov = covariances[np.ix_(obs, obs)]
        elif covariance_type == "diag":
            cov = covariances[:, obs]
        else:
            cov = covariances
        direct = _direct_log_prob(x[obs][None], means[:, obs], cov, covariance_type)
        out[i] = logsumexp(direct[0] + np.log(weights))
    return out


@settings(max_examples=100, deadline=None)
@given(mixture=mixtures, missing=st.sampled_from([0.2, 0.5, 0.9]))
def test_marginal_scores_match_the_direct_reference(mixture, missing):
    weights, means, covariances, X, rng = _mixture(**mixture)
    covariance_type = mixture["covariance_type"]
    X[rng.uniform(size=X.shape) < missing] = np.nan
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    expected = _marginal_reference(X, weights, means, covariances, covariance_type)
    result = _score_samples_missing(X, weights, means, prec_chol, covariance_type)
    assert_allclose(result, expected, rtol=1e-12, atol=1e-6)
    proba = _predict_proba_missing(X, weights, means, prec_chol, covariance_type)
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    mixture=mixtures.filter(lambda m: m["covariance_type"] in ("diag", "spherical")),
    density=st.sampled_from([0.1, 0.5, 1.0]),
)
def test_sparse_scores_match_the_direct_reference(mixture, density):
    weights, means, covariances, X, rng = _mixture(**mixture)
    covariance_type = mixture["covariance_type"]
    X[rng.uniform(size=X.shape) >= density] = 0.0
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    direct = _direct_log_prob(X, means, covariances, covariance_type)
    expected = logsumexp(direct + np.log(weights), axis=1)
    result = _sparse_score_samples(
        sparse.csr_matrix(X), weights, means, prec_chol, covariance_type
    )
    assert_allclose(result, expected, rtol=1e-12, atol=1e-6)
