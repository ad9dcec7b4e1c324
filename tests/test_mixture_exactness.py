"""Exactness and robustness of the log-density kernels of somgen._mixture.

The kernels expand Mahalanobis distances into matrix products. These tests put
tight components far from the origin, where the expanded sums cancel, and
samples so far out that the distances overflow, and check every path (component
log-densities, mixture log-density, posteriors, EM statistics, imputation)
against independent references: direct float64 loops over components, and exact
rational arithmetic where float64 itself cannot tell the answer.
"""

from fractions import Fraction

import numpy as np
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from scipy import linalg, stats
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

import somgen._mixture
from somgen._mixture import (
    _compute_precision_cholesky,
    _conditional_impute,
    _estimate_covariances,
    _estimate_log_gaussian_prob,
    _estimate_log_resp,
    _pinned_em,
    _predict_proba,
    _score_samples_chunked,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


# ---------------------------------------------------------------------------
# Independent references
# ---------------------------------------------------------------------------


def _full(covariances, covariance_type, n_components, n_features):
    if covariance_type == "full":
        return np.asarray(covariances)
    if covariance_type == "tied":
        return np.repeat(covariances[np.newaxis], n_components, axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def _direct_log_prob(X, means, covariances, covariance_type):
    """Component log-densities from the differences ``x - mu_k``, one at a time.

    ``'diag'`` and ``'spherical'``: ``sum_j (x_j - mu_kj)^2 / var_kj``; the
    others: a triangular solve with the Cholesky factor of the covariance.
    """
    n_components, n_features = means.shape
    full = _full(covariances, covariance_type, n_components, n_features)
    out = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        diff = X - means[k]
        if covariance_type in ("diag", "spherical"):
            variances = np.diag(full[k])
            maha = np.sum(diff**2 / variances, axis=1)
            log_det = np.sum(np.log(variances))
        else:
            factor = linalg.cholesky(full[k], lower=True)
            z = linalg.solve_triangular(factor, diff.T, lower=True)
            maha = np.sum(z**2, axis=0)
            log_det = 2.0 * np.sum(np.log(np.diag(factor)))
        out[:, k] = -0.5 * (n_features * np.log(2 * np.pi) + log_det + maha)
    return out


def _random_covariances(rng, n_components, n_features, covariance_type, scale):
    if covariance_type == "full":
        A = rng.normal(size=(n_components, n_features, n_features))
        return scale**2 * (A @ A.transpose(0, 2, 1) / n_features + np.eye(n_features))
    if covariance_type == "tied":
        A = rng.normal(size=(n_features, n_features))
        return scale**2 * (A @ A.T / n_features + np.eye(n_features))
    if covariance_type == "diag":
        return scale**2 * rng.uniform(0.5, 2.0, size=(n_components, n_features))
    return scale**2 * rng.uniform(0.5, 2.0, size=n_components)


def _tight_clusters(covariance_type, *, offset, spread=1e-3, seed=0, n_features=3):
    """Two groups of tight components at +-offset, and samples drawn from them."""
    rng = np.random.RandomState(seed)
    n_components = 6
    sides = np.where(np.arange(n_components) % 2 == 0, offset, -offset)
    means = sides[:, np.newaxis] + rng.normal(
        scale=3 * spread, size=(n_components, n_features)
    )
    covariances = _random_covariances(
        rng, n_components, n_features, covariance_type, spread
    )
    weights = rng.dirichlet(np.full(n_components, 3.0))
    labels = rng.randint(n_components, size=150)
    X = means[labels] + rng.normal(scale=spread, size=(150, n_features))
    return X, weights, means, covariances


# ---------------------------------------------------------------------------
# Cancellation far from the origin
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e3, 1e6])
def test_score_samples_exact_for_tight_components_far_from_origin(
    covariance_type, offset
):
    # The expanded form x^2 p - 2 x mu p + mu^2 p lost up to 255 nats here.
    X, weights, means, covariances = _tight_clusters(covariance_type, offset=offset)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    direct = _direct_log_prob(X, means, covariances, covariance_type)
    expected = logsumexp(direct + np.log(weights), axis=1)
    for chunk_size in (None, 7):
        result = _score_samples_chunked(
            X, weights, means, prec_chol, covariance_type, chunk_size=chunk_size
        )
        assert_allclose(result, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimate_log_gaussian_prob_every_entry_exact_far_from_origin(
    covariance_type,
):
    X, _, means, covariances = _tight_clusters(covariance_type, offset=1e6, seed=1)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    log_prob = _estimate_log_gaussian_prob(X, means, prec_chol, covariance_type)
    expected = _direct_log_prob(X, means, covariances, covariance_type)
    # Entries of the far group are about -1e18: exact up to their own rounding.
    assert_allclose(log_prob, expected, rtol=1e-12, atol=1e-6)
    near = expected > -1e3
    assert near.sum() >= X.shape[0]  # every sample has its own group
    assert_allclose(log_prob[near], expected[near], rtol=0, atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posteriors_exact_far_from_origin(covariance_type):
    X, weights, means, covariances = _tight_clusters(
        covariance_type, offset=1e6, seed=2
    )
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    log_resp, mean_log_norm = _estimate_log_resp(
        X, weights, means, prec_chol, covariance_type
    )
    joint = _direct_log_prob(X, means, covariances, covariance_type) + np.log(weights)
    norm = logsumexp(joint, axis=1)
    expected = np.exp(joint - norm[:, np.newaxis])
    assert_allclose(np.exp(log_resp), expected, rtol=1e-6, atol=1e-12)
    assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_allclose(mean_log_norm, norm.mean(), rtol=0, atol=1e-6)


def _naive_soft_covariances(X, resp, means, covariance_type, shrinkage, reg_covar):
    """MAP covariances from per-sample loops, with the pooled prior."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    scatter = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        for i in range(n_samples):
            diff = X[i] - means[k]
            scatter[k] += resp[i, k] * np.outer(diff, diff)
    nk = resp.sum(axis=0)
    pooled = scatter.sum(axis=0) / nk.sum()
    if covariance_type == "tied":
        return pooled + reg_covar * np.eye(n_features)
    covs = []
    for k in range(n_components):
        if covariance_type == "full":
            S, prior = scatter[k], pooled
        elif covariance_type == "diag":
            S, prior = np.diag(scatter[k]), np.diag(pooled)
        else:
            S = np.trace(scatter[k]) / n_features
            prior = np.trace(pooled) / n_features
        cov = (S + shrinkage * prior) / (nk[k] + shrinkage)
        covs.append(cov + reg_covar * (np.eye(n_features) if S.ndim == 2 else 1.0))
    return np.array(covs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_soft_covariances_exact_far_from_origin(covariance_type, offset):
    # The scatter is expanded into matrix products around the mean of the
    # means; far from it, the guard must recompute the components directly.
    X, _, means, _ = _tight_clusters(covariance_type, offset=offset, seed=3)
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.full(means.shape[0], 0.3), size=X.shape[0])
    expected = _naive_soft_covariances(X, resp, means, covariance_type, 2.0, 1e-9)
    for chunk_size in (None, 16):
        covs = _estimate_covariances(
            X,
            resp,
            means,
            covariance_type,
            shrinkage=2.0,
            reg_covar=1e-9,
            chunk_size=chunk_size,
        )
        assert_allclose(covs, expected, rtol=1e-9, atol=0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pinned_em_far_from_origin_is_monotone_and_exact(covariance_type):
    X, weights, means, covariances = _tight_clusters(
        covariance_type, offset=1e6, seed=4
    )
    result = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        shrinkage=1.0,
        weight_concentration=1.0,
        reg_covar=1e-9,
        max_iter=15,
        tol=-np.inf,
    )
    history = result["history"]
    assert np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    direct = _direct_log_prob(X, means, result["covariances"], covariance_type)
    expected = logsumexp(direct + np.log(result["weights"]), axis=1).mean()
    assert_allclose(result["log_likelihood"], expected, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------
# Samples far beyond the data
# ---------------------------------------------------------------------------


def _small_mixture(covariance_type, seed=0, n_components=5, n_features=3):
    rng = np.random.RandomState(seed)
    means = rng.normal(scale=2.0, size=(n_components, n_features))
    covariances = _random_covariances(
        rng, n_components, n_features, covariance_type, 1.0
    )
    weights = rng.dirichlet(np.full(n_components, 2.0))
    return weights, means, covariances


def _exact_best_component(x, weights, means, prec_chol, covariance_type):
    """Argmax of the exact weighted log-density, in rational arithmetic.

    Computes ``maha_k = |P_k^T (x - mu_k)|^2`` exactly from the float64 inputs;
    the constants (weights, normalisers) are rounded, which only matters when
    the distances differ by less than about 1e-15 of their size.
    """
    n_components, n_features = means.shape
    scores = []
    for k in range(n_components):
        diff = [
            Fraction(float(a)) - Fraction(float(b))
            for a, b in zip(x, means[k], strict=True)
        ]
        if covariance_type == "diag":
            scales = [Fraction(float(p)) for p in prec_chol[k]]
            y = [p * d for p, d in zip(scales, diff, strict=True)]
            log_det = np.sum(np.log(prec_chol[k]))
        elif covariance_type == "spherical":
            y = [Fraction(float(prec_chol[k])) * d for d in diff]
            log_det = n_features * np.log(prec_chol[k])
        else:
            P = prec_chol if covariance_type == "tied" else prec_chol[k]
            y = [
                sum(Fraction(float(P[i, j])) * diff[i] for i in range(n_features))
                for j in range(n_features)
            ]
            log_det = np.sum(np.log(np.diag(P)))
        maha = sum(v * v for v in y)
        scores.append(Fraction(float(np.log(weights[k]) + log_det)) - maha / 2)
    best = max(scores)
    winners = [k for k, score in enumerate(scores) if score == best]
    assert len(winners) == 1
    return winners[0]


def _outliers(scale):
    rng = np.random.RandomState(0)
    directions = rng.normal(size=(12, 3))
    directions /= np.abs(directions).max(axis=1, keepdims=True)
    directions[0] = [1.0, 0.0, 0.0]
    directions[1] = [0.0, -1.0, 0.0]
    return directions * scale


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("scale", [1e300, np.finfo(np.float64).max / 4])
def test_posterior_of_outliers_beyond_float_range_is_exact_limit(
    covariance_type, scale
):
    # The squares overflowed to inf and inf - inf made every posterior NaN.
    # Every log-density is -inf in float64 here: the posterior is its limit.
    weights, means, covariances = _small_mixture(covariance_type, seed=5)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    X = _outliers(scale)
    with np.errstate(over="ignore"):
        direct = _direct_log_prob(X, means, covariances, covariance_type)
    assert np.all(direct == -np.inf)

    log_resp, _ = _estimate_log_resp(X, weights, means, prec_chol, covariance_type)
    proba = np.exp(log_resp)
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for x, row in zip(X, proba, strict=True):
        best = _exact_best_component(x, weights, means, prec_chol, covariance_type)
        assert row[best] == pytest.approx(1.0, abs=1e-12)

    log_density = _score_samples_chunked(X, weights, means, prec_chol, covariance_type)
    assert_array_equal(log_density, -np.inf)  # honest, and never NaN


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("scale", [1e20, 1e150])
def test_posterior_of_far_outliers_matches_direct_float64(covariance_type, scale):
    # Finite but astronomically negative log-densities: exactly what a direct
    # float64 evaluation gives, rows summing to one.
    weights, means, covariances = _small_mixture(covariance_type, seed=5)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    X = _outliers(scale)
    joint = _direct_log_prob(X, means, covariances, covariance_type) + np.log(weights)
    norm = logsumexp(joint, axis=1)
    expected = np.exp(joint - joint.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    log_resp, _ = _estimate_log_resp(X, weights, means, prec_chol, covariance_type)
    assert_allclose(np.exp(log_resp), expected, atol=1e-9)
    assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    log_density = _score_samples_chunked(X, weights, means, prec_chol, covariance_type)
    assert_allclose(log_density, norm, rtol=1e-13)


@pytest.mark.parametrize("covariance_type", ["spherical", "tied"])
def test_posterior_limit_breaks_ties_of_the_quadratic_term(covariance_type):
    # Equal precisions: |x|^2 p is the same for every component, and the
    # exact posterior goes to the largest x^T Lambda mu_k, then to the weights.
    weights, means, covariances = _small_mixture(covariance_type, seed=6)
    if covariance_type == "spherical":
        covariances = np.full_like(covariances, 0.7)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    X = np.array([[1e300, 0.0, 0.0], [0.0, 0.0, -1e300], [1e300, -3e299, 2e299]])
    log_resp, _ = _estimate_log_resp(X, weights, means, prec_chol, covariance_type)
    for x, row in zip(X, np.exp(log_resp), strict=True):
        best = _exact_best_component(x, weights, means, prec_chol, covariance_type)
        assert row[best] == 1.0

    # A copy of the winner ties with it in every term: they share the
    # posterior in proportion to their weights.
    x = X[2]
    best = _exact_best_component(x, weights, means, prec_chol, covariance_type)
    twin_means = np.vstack([means, means[best]])
    twin_weights = np.append(weights, 3.0 * weights[best])
    twin_weights /= twin_weights.sum()
    twin_chol = prec_chol
    if covariance_type == "spherical":
        twin_chol = np.append(prec_chol, prec_chol[best])
    log_resp, _ = _estimate_log_resp(
        x[np.newaxis], twin_weights, twin_means, twin_chol, covariance_type
    )
    proba = np.exp(log_resp[0])
    assert_allclose(proba[[best, -1]], [0.25, 0.75], rtol=1e-12)
    assert_allclose(proba.sum(), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posteriors_sum_to_one_for_huge_log_densities(covariance_type):
    # A feature constant in training has variance reg_covar: a test value 3e5
    # gives log-densities near -1e16, where subtracting the log-normaliser
    # left rows summing to 12-16.
    rng = np.random.RandomState(7)
    weights, means, covariances = _small_mixture(covariance_type, seed=7)
    means[:, 2] = 5.0
    if covariance_type == "diag":
        covariances[:, 2] = 1e-6
    elif covariance_type in ("full", "tied"):
        stack = covariances[np.newaxis] if covariance_type == "tied" else covariances
        stack[:, 2, :] = stack[:, :, 2] = 0.0
        stack[:, 2, 2] = 1e-6
    else:
        covariances[:] = 1e-6
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    X = rng.normal(size=(40, 3))
    X[:, 2] = rng.choice([3e5, -3e5, 1e8, 5.0 + 1e-3], size=40)
    log_resp, _ = _estimate_log_resp(X, weights, means, prec_chol, covariance_type)
    proba = np.exp(log_resp)
    assert np.all(np.isfinite(log_resp[log_resp > -np.inf]))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# Imputation from the precision factors
# ---------------------------------------------------------------------------


def _direct_impute(X, weights, means, covariances, covariance_type):
    """Conditional means from the covariance blocks, row by row (scipy)."""
    n_components, n_features = means.shape
    full = _full(covariances, covariance_type, n_components, n_features)
    X_filled = X.copy()
    for i in np.flatnonzero(np.isnan(X).any(axis=1)):
        m = np.isnan(X[i])
        o = ~m
        if not o.any():
            X_filled[i] = weights @ means
            continue
        log_post = np.array(
            [
                np.log(weights[k])
                + stats.multivariate_normal(means[k, o], full[k][np.ix_(o, o)]).logpdf(
                    X[i, o]
                )
                for k in range(n_components)
            ]
        )
        post = np.exp(log_post - logsumexp(log_post))
        X_filled[i, m] = sum(
            post[k]
            * (
                means[k, m]
                + full[k][np.ix_(m, o)]
                @ np.linalg.solve(full[k][np.ix_(o, o)], X[i, o] - means[k, o])
            )
            for k in range(n_components)
        )
    return X_filled


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_impute_random_patterns_match_direct_formula(covariance_type):
    rng = np.random.RandomState(8)
    n_components, n_features = 4, 6
    means = rng.normal(scale=2.0, size=(n_components, n_features)) + 50.0
    covariances = _random_covariances(
        rng, n_components, n_features, covariance_type, 1.0
    )
    weights = rng.dirichlet(np.full(n_components, 2.0))
    X = means[rng.randint(n_components, size=120)] + rng.normal(size=(120, n_features))
    # Mostly distinct patterns, from one to all features missing.
    n_missing = rng.randint(1, n_features + 1, size=120)
    for i, count in enumerate(n_missing):
        X[i, rng.choice(n_features, count, replace=False)] = np.nan
    X[:3] = X[3]  # a few rows share a pattern (and values)

    X_filled = _conditional_impute(X, weights, means, covariances, covariance_type)
    expected = _direct_impute(X, weights, means, covariances, covariance_type)
    assert not np.isnan(X_filled).any()
    assert_allclose(X_filled, expected, rtol=1e-9, atol=1e-9)
    observed = ~np.isnan(X)
    assert_array_equal(X_filled[observed], X[observed])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_impute_stays_finite_for_extreme_observed_values(
    covariance_type,
):
    weights, means, covariances = _small_mixture(covariance_type, seed=9)
    X = np.array(
        [
            [1e300, np.nan, 0.0],
            [np.nan, -np.finfo(np.float64).max / 4, 1.0],
            [3e5, 1.0, np.nan],
        ]
    )
    X_filled = _conditional_impute(X, weights, means, covariances, covariance_type)
    assert not np.isnan(X_filled).any()
    if covariance_type in ("diag", "spherical"):
        # The conditional mean is a convex combination of the means.
        filled = X_filled[np.isnan(X)]
        assert np.all(filled >= means.min() - 1e-9)
        assert np.all(filled <= means.max() + 1e-9)


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_kernels_are_bit_identical_for_any_thread_count(covariance_type, monkeypatch):
    # Chunks are shared by threads and reduced in chunk order. Small calls
    # normally run in the calling thread: send these to the pool too.
    monkeypatch.setattr(somgen._mixture, "_SMALL_CALL_FLOATS", 0)
    X, weights, means, covariances = _tight_clusters(
        covariance_type, offset=1e6, seed=10
    )
    X[::7] *= 1e300 / 1e6  # outliers take the limit path
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)

    def run():
        em = _pinned_em(
            X[1::7],
            means,
            weights,
            covariances,
            covariance_type,
            shrinkage=1.0,
            max_iter=3,
            tol=-np.inf,
            chunk_size=9,
        )
        proba = _predict_proba(
            X, weights, means, prec_chol, covariance_type, chunk_size=9
        )
        score = _score_samples_chunked(
            X, weights, means, prec_chol, covariance_type, chunk_size=9
        )
        return em["history"], em["covariances"], proba, score

    with threadpool_limits(limits=1, user_api="blas"):
        single = run()
    with parallel_config(n_jobs=3):
        pooled = run()
    for a, b in zip(single, pooled, strict=True):
        assert_array_equal(a, b)
