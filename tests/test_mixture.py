"""Tests of the pinned-means Gaussian mixture kernels in somgen._mixture."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from somgen._mixture import (
    _compute_precision_cholesky,
    _conditional_impute,
    _estimate_covariances,
    _estimate_log_gaussian_prob,
    _estimate_log_resp,
    _n_parameters,
    _pinned_em,
    _sample,
    _score_samples_chunked,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


# ---------------------------------------------------------------------------
# Independent helpers
# ---------------------------------------------------------------------------


def _random_spd(rng, n_features):
    A = rng.normal(size=(n_features, n_features))
    scales = rng.uniform(0.3, 2.0, size=n_features)
    return (A @ A.T) / n_features * np.outer(scales, scales) + 0.1 * np.eye(n_features)


def _random_covariances(rng, n_components, n_features, covariance_type):
    if covariance_type == "full":
        return np.stack([_random_spd(rng, n_features) for _ in range(n_components)])
    if covariance_type == "tied":
        return _random_spd(rng, n_features)
    if covariance_type == "diag":
        return rng.uniform(0.2, 2.0, size=(n_components, n_features))
    return rng.uniform(0.2, 2.0, size=n_components)


def _to_full(covariances, covariance_type, n_components, n_features):
    if covariance_type == "full":
        return np.asarray(covariances)
    if covariance_type == "tied":
        return np.repeat(covariances[np.newaxis], n_components, axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in covariances])
    return np.stack([v * np.eye(n_features) for v in covariances])


def _random_mixture(rng, n_components, n_features, covariance_type):
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = rng.normal(scale=3.0, size=(n_components, n_features))
    covariances = _random_covariances(rng, n_components, n_features, covariance_type)
    return weights, means, covariances


def _scipy_log_prob(X, means, covariances, covariance_type):
    n_components, n_features = means.shape
    full = _to_full(covariances, covariance_type, n_components, n_features)
    return np.column_stack(
        [
            stats.multivariate_normal(means[k], full[k]).logpdf(X).reshape(-1)
            for k in range(n_components)
        ]
    )


def _mixture_pdf(X, weights, means, covariances, covariance_type):
    n_components, n_features = means.shape
    full = _to_full(covariances, covariance_type, n_components, n_features)
    return sum(
        w * stats.multivariate_normal(m, c).pdf(X)
        for w, m, c in zip(weights, means, full, strict=True)
    )


def _sample_mixture(rng, weights, means, full_covariances, n_samples):
    labels = rng.choice(len(weights), size=n_samples, p=weights)
    X = np.empty((n_samples, means.shape[1]))
    for k in range(len(weights)):
        mask = labels == k
        X[mask] = rng.multivariate_normal(
            means[k], full_covariances[k], size=mask.sum()
        )
    return X, labels


def _mixture_data(seed=0, n_samples=400, n_features=3, n_components=4):
    """Data from a mixture, and pinned means near (not at) the true ones."""
    rng = np.random.RandomState(seed)
    weights, true_means, covs = _random_mixture(rng, n_components, n_features, "full")
    X, _ = _sample_mixture(rng, weights, true_means, covs, n_samples)
    means = true_means + rng.normal(scale=0.3, size=true_means.shape)
    return X, means


def _precision_chol(covariances, covariance_type):
    return _compute_precision_cholesky(covariances, covariance_type)


# ---------------------------------------------------------------------------
# Log-densities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [0.0, -1e4])
def test_estimate_log_gaussian_prob_matches_scipy(covariance_type, offset):
    rng = np.random.RandomState(0)
    n_components, n_features = 4, 3
    _, means, covariances = _random_mixture(
        rng, n_components, n_features, covariance_type
    )
    means += offset
    X = rng.normal(scale=4.0, size=(60, n_features)) + offset
    X[:4] = means  # densities at the modes
    prec_chol = _precision_chol(covariances, covariance_type)

    log_prob = _estimate_log_gaussian_prob(X, means, prec_chol, covariance_type)
    expected = _scipy_log_prob(X, means, covariances, covariance_type)
    assert log_prob.shape == (60, n_components)
    assert_allclose(log_prob, expected, rtol=1e-10, atol=1e-9)

    chunked = _estimate_log_gaussian_prob(
        X, means, prec_chol, covariance_type, chunk_size=7
    )
    assert_allclose(chunked, log_prob, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_chunked_matches_brute_force(covariance_type):
    rng = np.random.RandomState(1)
    weights, means, covariances = _random_mixture(rng, 5, 2, covariance_type)
    weights[2] = 0.0  # a dead component must not break the sum
    weights /= weights.sum()
    X = rng.normal(scale=4.0, size=(53, 2))
    prec_chol = _precision_chol(covariances, covariance_type)

    expected = np.log(_mixture_pdf(X, weights, means, covariances, covariance_type))
    results = [
        _score_samples_chunked(
            X, weights, means, prec_chol, covariance_type, chunk_size=chunk_size
        )
        for chunk_size in (None, 1, 7, 53, 1000)
    ]
    assert_allclose(results[0], expected, rtol=1e-10)
    for result in results[1:]:
        assert_allclose(result, results[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_compute_precision_cholesky_matches_sklearn(covariance_type):
    rng = np.random.RandomState(2)
    X = np.vstack(
        [
            rng.normal(size=(100, 3)) @ rng.normal(size=(3, 3)) + center
            for center in ([0, 0, 0], [6, -4, 2], [-5, 5, -6])
        ]
    )
    gm = GaussianMixture(
        n_components=3, covariance_type=covariance_type, random_state=0
    ).fit(X)

    prec_chol = _compute_precision_cholesky(gm.covariances_, covariance_type)
    assert prec_chol.shape == gm.precisions_cholesky_.shape
    assert_allclose(prec_chol, gm.precisions_cholesky_, rtol=1e-8, atol=1e-10)

    log_prob = _estimate_log_gaussian_prob(X, gm.means_, prec_chol, covariance_type)
    assert_allclose(
        logsumexp(log_prob + np.log(gm.weights_), axis=1),
        gm.score_samples(X),
        rtol=1e-10,
    )
    assert_allclose(
        _score_samples_chunked(
            X, gm.weights_, gm.means_, prec_chol, covariance_type, chunk_size=32
        ),
        gm.score_samples(X),
        rtol=1e-10,
    )


@pytest.mark.parametrize(
    "covariance_type, covariances",
    [
        ("full", np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])),
        ("tied", np.array([[1.0, 0.0], [0.0, -1e-3]])),
        ("diag", np.array([[1.0, 1.0], [1.0, 0.0]])),
        ("spherical", np.array([1.0, -2.0])),
        ("full", np.array([np.eye(2), [[np.nan, 0.0], [0.0, 1.0]]])),
    ],
)
def test_compute_precision_cholesky_rejects_non_positive_definite(
    covariance_type, covariances
):
    with pytest.raises(ValueError, match="not positive definite.*reg_covar"):
        _compute_precision_cholesky(covariances, covariance_type)


def test_estimate_log_resp_is_normalised_posterior():
    rng = np.random.RandomState(3)
    weights, means, covariances = _random_mixture(rng, 4, 2, "full")
    X = rng.normal(scale=3.0, size=(30, 2))
    prec_chol = _precision_chol(covariances, "full")

    log_resp, mean_log_norm = _estimate_log_resp(X, weights, means, prec_chol, "full")
    joint = weights * np.exp(_scipy_log_prob(X, means, covariances, "full"))
    assert_allclose(np.exp(log_resp), joint / joint.sum(1, keepdims=True), rtol=1e-9)
    assert_allclose(mean_log_norm, np.mean(np.log(joint.sum(1))), rtol=1e-10)


# ---------------------------------------------------------------------------
# Covariances around pinned means
# ---------------------------------------------------------------------------


def _naive_covariances(X, resp, means, covariance_type, shrinkage, reg_covar):
    """Per-component loops over samples, with the MAP formula written out."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    nk = np.zeros(n_components)
    scatter = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        for i in range(n_samples):
            diff = X[i] - means[k]
            scatter[k] += resp[i, k] * np.outer(diff, diff)
            nk[k] += resp[i, k]
    pooled = scatter.sum(0) / n_samples
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
        if nk[k] + shrinkage > 0:
            cov = (S + shrinkage * prior) / (nk[k] + shrinkage)
        else:
            cov = prior
        if covariance_type == "full":
            cov = cov + reg_covar * np.eye(n_features)
        else:
            cov = cov + reg_covar
        covs.append(cov)
    return np.array(covs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shrinkage", [0.0, 3.5])
@pytest.mark.parametrize("hard", [False, True])
def test_estimate_covariances_matches_naive_loop(covariance_type, shrinkage, hard):
    rng = np.random.RandomState(4)
    n_samples, n_components, n_features = 45, 4, 3
    X = rng.normal(scale=2.0, size=(n_samples, n_features)) - 1.0
    means = rng.normal(size=(n_components, n_features))
    if hard:
        labels = rng.choice([0, 1, 3], size=n_samples)  # unit 2 is empty
        resp = np.eye(n_components)[labels]
    else:
        resp = rng.dirichlet(np.ones(n_components), size=n_samples)
        resp[:, 2] = 0.0  # an empty component among soft ones
        resp /= resp.sum(1, keepdims=True)
    reg_covar = 1e-4

    expected = _naive_covariances(X, resp, means, covariance_type, shrinkage, reg_covar)
    covs = _estimate_covariances(
        X, resp, means, covariance_type, shrinkage=shrinkage, reg_covar=reg_covar
    )
    assert covs.shape == expected.shape
    assert_allclose(covs, expected, rtol=1e-10, atol=1e-12)

    chunked = _estimate_covariances(
        X,
        resp,
        means,
        covariance_type,
        shrinkage=shrinkage,
        reg_covar=reg_covar,
        chunk_size=4,
    )
    assert_allclose(chunked, covs, rtol=1e-12, atol=1e-14)
    if hard:
        from_labels = _estimate_covariances(
            X, labels, means, covariance_type, shrinkage=shrinkage, reg_covar=reg_covar
        )
        assert_allclose(from_labels, covs, rtol=1e-12, atol=1e-14)
    _compute_precision_cholesky(covs, covariance_type)  # all valid, even unit 2


def test_estimate_covariances_empty_component_gets_pooled_target():
    rng = np.random.RandomState(5)
    X = rng.normal(size=(30, 2))
    means = np.array([[0.0, 0.0], [1.0, 1.0], [50.0, 50.0]])
    labels = np.array([0] * 20 + [1] * 10)
    prior = np.array([[2.0, 0.5], [0.5, 1.0]])
    covs = _estimate_covariances(
        X, labels, means, "full", reg_covar=0.1, covariance_prior=prior
    )
    assert_allclose(covs[2], prior + 0.1 * np.eye(2))
    with pytest.raises(ValueError, match="covariance_prior"):
        _estimate_covariances(X, labels, means, "diag", covariance_prior=prior)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        _estimate_covariances(X, labels + 2, means, "full")


# ---------------------------------------------------------------------------
# Pinned-means EM
# ---------------------------------------------------------------------------


def _brute_force_objective(
    X, weights, means, covs, covariance_type, prior, s, alpha, r, with_weights=True
):
    """The penalised objective, written out from scipy densities."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    full = _to_full(covs, covariance_type, n_components, n_features)
    inverse = np.linalg.inv(full)
    log_f = (
        _scipy_log_prob(X, means, full, "full")
        + np.log(weights)
        - 0.5 * r * np.trace(inverse, axis1=1, axis2=2)
    )
    value = logsumexp(log_f, axis=1).sum()
    if with_weights and alpha > 0:
        value += alpha * np.log(weights).sum()
    if s > 0:
        if covariance_type == "diag":
            target = np.diag(prior)
        elif covariance_type == "spherical":
            target = prior * np.eye(n_features)
        else:
            target = prior
        target = target + r * np.eye(n_features)
        matrices = full[:1] if covariance_type == "tied" else full
        for cov in matrices:
            value -= (
                0.5
                * s
                * (np.trace(np.linalg.solve(cov, target)) + np.linalg.slogdet(cov)[1])
            )
    return value / n_samples


def _em_init(X, means, covariance_type):
    labels = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    covs = _estimate_covariances(X, labels, means, covariance_type, shrinkage=1.0)
    weights = np.full(means.shape[0], 1.0 / means.shape[0])
    return weights, covs


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "shrinkage, weight_concentration, reg_covar",
    [(0.0, 0.0, 0.0), (0.0, 0.5, 1e-6), (5.0, 1.0, 1e-2), (50.0, 2.0, 0.3)],
)
def test_pinned_em_objective_never_decreases(
    covariance_type, shrinkage, weight_concentration, reg_covar
):
    X, means = _mixture_data(seed=6)
    means_before = means.copy()
    weights0, covs0 = _em_init(X, means, covariance_type)

    result = _pinned_em(
        X,
        means,
        weights0,
        covs0,
        covariance_type,
        shrinkage=shrinkage,
        weight_concentration=weight_concentration,
        reg_covar=reg_covar,
        max_iter=40,
        tol=-np.inf,  # run every iteration
        chunk_size=64,
    )
    history = result["history"]
    assert_array_equal(means, means_before)
    assert result["n_iter"] == 40 and not result["converged"]
    assert history.shape == (41,)
    assert result["lower_bound"] == history[-1]
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[:-1]))
    assert history[-1] > history[0]
    assert_allclose(result["weights"].sum(), 1.0)
    assert np.all(result["weights"] > 0)

    # The tracked value is the stated penalised objective.
    expected = _brute_force_objective(
        X,
        result["weights"],
        means,
        result["covariances"],
        covariance_type,
        result["covariance_prior"],
        shrinkage,
        weight_concentration,
        reg_covar,
    )
    assert_allclose(result["lower_bound"], expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pinned_em_fixed_point_maximises_objective(covariance_type):
    # At convergence, the M-step is the exact maximiser: any small move of the
    # weights or covariances lowers the penalised objective.
    X, means = _mixture_data(seed=7, n_samples=150, n_features=2, n_components=3)
    weights0, covs0 = _em_init(X, means, covariance_type)
    s, alpha, r = 4.0, 1.5, 0.05
    result = _pinned_em(
        X,
        means,
        weights0,
        covs0,
        covariance_type,
        shrinkage=s,
        weight_concentration=alpha,
        reg_covar=r,
        max_iter=5000,
        tol=1e-14,
    )
    assert result["converged"]
    prior = result["covariance_prior"]

    def objective(weights, covs):
        return _brute_force_objective(
            X, weights, means, covs, covariance_type, prior, s, alpha, r
        )

    best = objective(result["weights"], result["covariances"])
    rng = np.random.RandomState(0)
    for eps in (1e-3, -1e-3):
        weights = result["weights"] * (1 + eps * rng.normal(size=3))
        assert objective(weights / weights.sum(), result["covariances"]) < best
        covs = result["covariances"]
        if covariance_type in ("full", "tied"):
            B = rng.normal(size=covs.shape[-2:])
            moved = covs + eps * (B + B.T)
        else:
            moved = covs * (1 + eps * rng.normal(size=covs.shape))
        assert objective(result["weights"], moved) < best
        assert objective(result["weights"], covs * (1 + eps)) < best


def test_pinned_em_improves_log_likelihood_and_converges():
    X, means = _mixture_data(seed=8, n_samples=5000)
    weights0 = np.full(4, 0.25)
    covs0 = np.stack([4.0 * np.eye(3)] * 4)
    init_ll = np.mean(
        _score_samples_chunked(
            X, weights0, means, _precision_chol(covs0, "full"), "full"
        )
    )
    result = _pinned_em(
        X, means, weights0, covs0, "full", reg_covar=1e-6, max_iter=200, tol=1e-6
    )
    assert result["converged"]
    assert 1 < result["n_iter"] < 200
    assert result["history"].shape == (result["n_iter"] + 1,)
    assert result["history"][-1] - result["history"][-2] < 1e-6

    final_ll = np.mean(
        _score_samples_chunked(
            X, result["weights"], means, result["precisions_cholesky"], "full"
        )
    )
    assert_allclose(result["log_likelihood"], final_ll, rtol=1e-10)
    assert final_ll > init_ll + 0.1
    assert_allclose(
        result["precisions_cholesky"],
        _precision_chol(result["covariances"], "full"),
    )


def test_pinned_em_update_weights_false_keeps_weights():
    X, means = _mixture_data(seed=9)
    weights0, covs0 = _em_init(X, means, "diag")
    weights0 = np.array([0.1, 0.2, 0.3, 0.4])
    result = _pinned_em(
        X,
        means,
        weights0,
        covs0,
        "diag",
        shrinkage=2.0,
        weight_concentration=3.0,
        update_weights=False,
        max_iter=20,
        tol=-np.inf,
    )
    assert_array_equal(result["weights"], weights0)
    assert np.all(np.diff(result["history"]) >= -1e-10 * np.abs(result["history"][1:]))
    expected = _brute_force_objective(
        X,
        weights0,
        means,
        result["covariances"],
        "diag",
        result["covariance_prior"],
        2.0,
        3.0,
        1e-6,
        with_weights=False,
    )
    assert_allclose(result["lower_bound"], expected, rtol=1e-10)


@pytest.mark.parametrize("weight_concentration", [0.0, 1.0])
def test_pinned_em_unit_far_from_data_stays_valid(weight_concentration):
    # A prototype no sample reaches gets zero responsibilities; its covariance
    # falls back to the pooled target and its weight to the Dirichlet floor.
    X, means = _mixture_data(seed=11, n_samples=300)
    means = np.vstack([means, np.full(3, 1e4)])
    weights0 = np.full(5, 0.2)
    covs0 = np.ones(5)
    result = _pinned_em(
        X,
        means,
        weights0,
        covs0,
        "spherical",
        weight_concentration=weight_concentration,
        reg_covar=1e-3,
        max_iter=30,
        tol=-np.inf,
    )
    n_samples = X.shape[0]
    assert_allclose(
        result["weights"][4],
        weight_concentration / (n_samples + 5 * weight_concentration),
    )
    assert_allclose(result["covariances"][4], result["covariance_prior"] + 1e-3)
    assert np.all(np.isfinite(result["history"]))
    assert np.all(np.diff(result["history"]) >= -1e-10 * np.abs(result["history"][1:]))


def test_pinned_em_rejects_non_positive_definite_init():
    X, means = _mixture_data(seed=10)
    with pytest.raises(ValueError, match="reg_covar"):
        _pinned_em(
            X, means, np.full(4, 0.25), np.array([1.0, 1.0, 0.0, 1.0]), "spherical"
        )


# ---------------------------------------------------------------------------
# The density is a density
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_chunked_integrates_to_one_in_1d(covariance_type):
    rng = np.random.RandomState(11)
    weights, means, covariances = _random_mixture(rng, 3, 1, covariance_type)
    prec_chol = _precision_chol(covariances, covariance_type)

    def density(x):
        return np.exp(
            _score_samples_chunked(
                np.array([[x]]), weights, means, prec_chol, covariance_type
            )[0]
        )

    total = integrate.quad(density, -40, 40, points=sorted(means[:, 0]), limit=200)[0]
    assert_allclose(total, 1.0, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_chunked_integrates_to_one_in_2d(covariance_type):
    rng = np.random.RandomState(12)
    weights, means, covariances = _random_mixture(rng, 3, 2, covariance_type)
    means = np.clip(means, -5, 5)
    prec_chol = _precision_chol(covariances, covariance_type)
    grid = np.linspace(-14, 14, 561)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    points = np.column_stack([xx.ravel(), yy.ravel()])
    density = np.exp(
        _score_samples_chunked(points, weights, means, prec_chol, covariance_type)
    ).reshape(xx.shape)
    total = integrate.trapezoid(integrate.trapezoid(density, grid, axis=1), grid)
    assert_allclose(total, 1.0, rtol=1e-4)


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments_match_mixture(covariance_type):
    rng = np.random.RandomState(13)
    n_components, n_features = 3, 2
    weights, means, covariances = _random_mixture(
        rng, n_components, n_features, covariance_type
    )
    X, labels = _sample(
        np.random.RandomState(0), 200_000, weights, means, covariances, covariance_type
    )
    assert X.shape == (200_000, n_features)
    assert labels.shape == (200_000,)

    full = _to_full(covariances, covariance_type, n_components, n_features)
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, full + means[:, :, None] * means[:, None])
    cov = second - np.outer(mean, mean)
    assert_allclose(X.mean(0), mean, atol=0.03)
    assert_allclose(np.cov(X.T), cov, atol=0.06, rtol=0.02)

    # Labels tell which component drew each row.
    assert_allclose(np.bincount(labels, minlength=3) / 200_000, weights, atol=5e-3)
    for k in range(n_components):
        assert_allclose(X[labels == k].mean(0), means[k], atol=0.05)
        assert_allclose(np.cov(X[labels == k].T), full[k], atol=0.06, rtol=0.03)


def test_sample_units_restrict_and_renormalise():
    rng = np.random.RandomState(14)
    weights, means, covariances = _random_mixture(rng, 5, 2, "diag")
    units = [4, 1]
    X, labels = _sample(
        np.random.default_rng(0), 20_000, weights, means, covariances, "diag", units
    )
    assert set(np.unique(labels)) == {1, 4}
    expected = weights[[1, 4]] / weights[[1, 4]].sum()
    assert_allclose(np.mean(labels == 1), expected[0], atol=0.015)
    assert_allclose(X[labels == 4].mean(0), means[4], atol=0.05)

    _, single = _sample(
        np.random.default_rng(0), 50, weights, means, covariances, "diag", units=3
    )
    assert_array_equal(single, 3)


def test_sample_is_shuffled_and_reproducible():
    rng = np.random.RandomState(15)
    weights, means, covariances = _random_mixture(rng, 4, 3, "full")
    X1, labels1 = _sample(
        np.random.RandomState(7), 500, weights, means, covariances, "full"
    )
    X2, labels2 = _sample(
        np.random.RandomState(7), 500, weights, means, covariances, "full"
    )
    assert_array_equal(X1, X2)
    assert_array_equal(labels1, labels2)
    assert np.any(np.diff(labels1) < 0)  # not grouped by component
    X3, _ = _sample(np.random.RandomState(8), 500, weights, means, covariances, "full")
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize(
    "units, match",
    [
        ([0, 5], r"indices in \[0, 4\].*\[5\]"),
        ([-1], r"indices in \[0, 4\].*\[-1\]"),
        ([0.0, 1.0], "integer"),
        ([True, False], "integer"),
        ([], "non-empty"),
        ([[0, 1]], "1-D"),
    ],
)
def test_sample_rejects_invalid_units(units, match):
    rng = np.random.RandomState(16)
    weights, means, covariances = _random_mixture(rng, 5, 2, "spherical")
    with pytest.raises(ValueError, match=match):
        _sample(rng, 10, weights, means, covariances, "spherical", units=units)


def test_sample_rejects_zero_weight_units_and_bad_covariance():
    weights = np.array([0.0, 1.0])
    means = np.zeros((2, 2))
    covariances = np.stack([np.eye(2), np.eye(2)])
    with pytest.raises(ValueError, match="zero total weight"):
        _sample(np.random.RandomState(0), 5, weights, means, covariances, "full", [0])
    covariances[1] = [[1.0, 3.0], [3.0, 1.0]]
    with pytest.raises(ValueError, match=r"component\(s\) \[1\].*reg_covar"):
        _sample(np.random.RandomState(0), 5, weights, means, covariances, "full")


# ---------------------------------------------------------------------------
# Conditional imputation
# ---------------------------------------------------------------------------


def test_conditional_impute_single_gaussian_matches_formula():
    rng = np.random.RandomState(17)
    mean = rng.normal(size=4)
    cov = _random_spd(rng, 4)
    X = rng.normal(scale=2.0, size=(6, 4))
    X[0, [1]] = np.nan
    X[1, [0, 3]] = np.nan
    X[2, [1, 2, 3]] = np.nan
    X[3, [0, 3]] = np.nan
    X_filled = _conditional_impute(X, np.ones(1), mean[None], cov[None], "full")
    for i in range(4):
        m = np.isnan(X[i])
        o = ~m
        gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m)]).T
        expected = mean[m] + gain @ (X[i, o] - mean[o])
        assert_allclose(X_filled[i, m], expected, rtol=1e-10)
        assert_array_equal(X_filled[i, o], X[i, o])
    assert_array_equal(X_filled[4:], X[4:])


def _brute_force_impute(X, weights, means, covariances, covariance_type):
    n_components, n_features = means.shape
    full = _to_full(covariances, covariance_type, n_components, n_features)
    X_filled = X.copy()
    for i in range(X.shape[0]):
        m = np.isnan(X[i])
        o = ~m
        if not m.any():
            continue
        if not o.any():
            X_filled[i] = weights @ means
            continue
        posterior = np.array(
            [
                weights[k]
                * stats.multivariate_normal(means[k, o], full[k][np.ix_(o, o)]).pdf(
                    X[i, o]
                )
                for k in range(n_components)
            ]
        )
        posterior /= posterior.sum()
        value = np.zeros(m.sum())
        for k in range(n_components):
            S_oo = full[k][np.ix_(o, o)]
            S_mo = full[k][np.ix_(m, o)]
            value += posterior[k] * (
                means[k, m] + S_mo @ np.linalg.solve(S_oo, X[i, o] - means[k, o])
            )
        X_filled[i, m] = value
    return X_filled


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_impute_matches_brute_force(covariance_type):
    rng = np.random.RandomState(18)
    n_components, n_features = 4, 3
    weights, means, covariances = _random_mixture(
        rng, n_components, n_features, covariance_type
    )
    X = rng.normal(scale=3.0, size=(40, n_features))
    mask = rng.uniform(size=X.shape) < 0.35
    mask[0] = True  # fully missing
    mask[1] = False  # complete
    X[mask] = np.nan

    X_filled = _conditional_impute(X, weights, means, covariances, covariance_type)
    expected = _brute_force_impute(X, weights, means, covariances, covariance_type)
    assert not np.isnan(X_filled).any()
    assert_allclose(X_filled, expected, rtol=1e-9, atol=1e-12)
    assert_allclose(X_filled[0], weights @ means)
    assert_array_equal(X_filled[1], X[1])
    assert_array_equal(X_filled[~mask], X[~mask])

    chunked = _conditional_impute(
        X, weights, means, covariances, covariance_type, chunk_size=2
    )
    assert_allclose(chunked, X_filled, rtol=1e-12)
    assert np.isnan(X).sum() == mask.sum()  # the input is left untouched


def test_conditional_impute_without_missing_values_is_identity():
    rng = np.random.RandomState(19)
    weights, means, covariances = _random_mixture(rng, 2, 3, "tied")
    X = rng.normal(size=(5, 3))
    X_filled = _conditional_impute(X, weights, means, covariances, "tied")
    assert_array_equal(X_filled, X)
    assert X_filled is not X


# ---------------------------------------------------------------------------
# Model size
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_n_parameters_matches_sklearn_bic(covariance_type):
    rng = np.random.RandomState(20)
    X = rng.normal(size=(200, 4))
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    n_samples = X.shape[0]
    sklearn_count = (gm.bic(X) + 2 * gm.score(X) * n_samples) / np.log(n_samples)
    count = _n_parameters(3, 4, covariance_type, means_free=True)
    assert count == round(sklearn_count)
    assert _n_parameters(3, 4, covariance_type) == count - 12
    assert (
        _n_parameters(3, 4, covariance_type, means_free=True, weights_free=False)
        == count - 2
    )
