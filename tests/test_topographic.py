"""Tests of the topographic means: grid Laplacian, anchored mean prior and the
data-sized default map of SOMGenerativeModel.

Kernels are checked against independent references: brute-force sums over
adjacent pairs found from unit coordinates, dense direct solves of the mean
M-step, scatters recomputed around the moved means, responsibilities from
scipy.stats and numpy eigenvalues.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse, stats
from sklearn.base import clone
from sklearn.datasets import load_iris, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from test_mixture import _random_covariances, _to_full

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._initialization import _data_sized_grid, _data_sized_units
from somgen._mixture import (
    _absolute_stiffness,
    _compute_precision_cholesky,
    _e_step_statistics,
    _moved_scatter,
    _pinned_em,
    _pooled_target,
    _precision_matrices,
    _soft_scatter,
    _update_means,
)
from somgen._topology import _grid_laplacian, _unit_coordinates
from somgen.metrics import topographic_error
from somgen.utils._sklearn_compat import InvalidParameterError

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
_HEX_HEIGHT = np.sqrt(3.0) / 2.0


# ---------------------------------------------------------------------------
# Independent helpers
# ---------------------------------------------------------------------------


def _brute_adjacency(n_rows, n_cols, topology, periodic):
    """Unordered pairs of distinct units at (minimum-image) grid distance 1."""
    coords = _unit_coordinates(n_rows, n_cols, topology)
    width = float(n_cols)
    height = float(n_rows) * (1.0 if topology == "rectangular" else _HEX_HEIGHT)
    shifts = [(0, 0)]
    if periodic:
        shifts = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    pairs = set()
    n_units = n_rows * n_cols
    for i in range(n_units):
        for j in range(i + 1, n_units):
            distance = min(
                np.hypot(
                    coords[i, 0] - coords[j, 0] + a * width,
                    coords[i, 1] - coords[j, 1] + b * height,
                )
                for a, b in shifts
            )
            if abs(distance - 1.0) < 1e-9:
                pairs.add((i, j))
    return pairs


def _broadcast_target(target, covariance_type, n_components):
    """Initial covariances equal to a pooled target, in the layout of the type."""
    if covariance_type == "full":
        return np.repeat(target[np.newaxis], n_components, axis=0)
    if covariance_type == "tied":
        return np.array(target)
    if covariance_type == "diag":
        return np.repeat(target[np.newaxis], n_components, axis=0)
    return np.full(n_components, float(target))


def _brute_scatter(X, resp, means, covariance_type):
    """Scatter around ``means`` by explicit sums over components."""
    n_components, n_features = means.shape
    full = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        diff = X - means[k]
        full[k] = np.einsum("i,ij,il->jl", resp[:, k], diff, diff)
    if covariance_type == "full":
        return full
    if covariance_type == "tied":
        return full.sum(axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(S) for S in full])
    return np.array([np.trace(S) / n_features for S in full])


def _scipy_resp(X, weights, means, covariances, covariance_type, reg_covar):
    """E-step responsibilities with scipy densities and the reg_covar factor."""
    n_components, n_features = means.shape
    full = _to_full(covariances, covariance_type, n_components, n_features)
    log_prob = np.column_stack(
        [
            np.log(weights[k])
            + stats.multivariate_normal(means[k], full[k]).logpdf(X)
            - 0.5 * reg_covar * np.trace(np.linalg.inv(full[k]))
            for k in range(n_components)
        ]
    )
    log_prob -= log_prob.max(axis=1, keepdims=True)
    resp = np.exp(log_prob)
    return resp / resp.sum(axis=1, keepdims=True)


def _som_data(n_features=2, n_samples=300, seed=0):
    """A curved, anisotropic cloud and a 3 x 3 map fitted on it."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-2.0, 2.0, size=n_samples)
    X = np.column_stack([t, 0.5 * t**2]) + rng.normal(scale=0.3, size=(n_samples, 2))
    if n_features == 3:
        X = np.column_stack([X, X[:, 0] - X[:, 1] + rng.normal(size=n_samples)])
    som = SelfOrganizingMap(3, 3, random_state=0).fit(X)
    return X, som


def _em_inputs(X, som, covariance_type):
    means = som.codebook_.astype(np.float64)
    labels = som.predict(X)
    target = _pooled_target(X, labels, means, covariance_type)
    n_components = means.shape[0]
    weights = np.full(n_components, 1.0 / n_components)
    covariances = _broadcast_target(target, covariance_type, n_components)
    return means, weights, covariances, target


def _gaussian_3d(n_samples, seed):
    cov = np.array([[2.0, 0.8, 0.3], [0.8, 1.0, -0.4], [0.3, -0.4, 0.5]])
    rng = np.random.default_rng(seed)
    X = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=n_samples)
    X_test = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=1000)
    return X, X_test


# ---------------------------------------------------------------------------
# _grid_laplacian
# ---------------------------------------------------------------------------

GRIDS = [
    (n_rows, n_cols, topology, periodic)
    for n_rows, n_cols in [(1, 1), (1, 4), (2, 2), (3, 4), (4, 4), (4, 3), (2, 5)]
    for topology in ("rectangular", "hexagonal")
    for periodic in (False, True)
    if not (periodic and topology == "hexagonal" and n_rows % 2)
]


@pytest.mark.parametrize(("n_rows", "n_cols", "topology", "periodic"), GRIDS)
def test_grid_laplacian_matches_brute_force_pairs(n_rows, n_cols, topology, periodic):
    L = _grid_laplacian(n_rows, n_cols, topology, periodic)
    n_units = n_rows * n_cols
    assert sparse.issparse(L)
    assert L.shape == (n_units, n_units)
    dense = L.toarray()
    assert_array_equal(dense, dense.T)
    assert_array_equal(dense.sum(axis=1), np.zeros(n_units))

    pairs = _brute_adjacency(n_rows, n_cols, topology, periodic)
    expected = np.zeros((n_units, n_units))
    for i, j in pairs:
        expected[i, j] = expected[j, i] = -1.0
    np.fill_diagonal(expected, -expected.sum(axis=1))
    assert_array_equal(dense, expected)

    rng = np.random.default_rng(n_units)
    m = rng.normal(size=(n_units, 3))
    brute = sum(np.sum((m[i] - m[j]) ** 2) for i, j in pairs)
    assert_allclose(np.sum(m * (L @ m)), brute, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("n_rows", "n_cols", "topology", "periodic", "degree"),
    [
        (5, 6, "rectangular", True, 4),
        (4, 6, "hexagonal", True, 6),
        (3, 3, "rectangular", True, 4),
        # Tiny tori: offsets wrap onto the same unit and count once.
        (2, 2, "rectangular", True, 2),
        (2, 3, "hexagonal", True, 4),
        (2, 2, "hexagonal", True, 3),
        (1, 3, "rectangular", True, 2),
    ],
)
def test_grid_laplacian_torus_degrees(n_rows, n_cols, topology, periodic, degree):
    L = _grid_laplacian(n_rows, n_cols, topology, periodic)
    assert_array_equal(L.diagonal(), np.full(n_rows * n_cols, degree))
    # Simple graph: off-diagonal entries are 0 or -1, never -2.
    off = L.toarray() - np.diag(L.diagonal())
    assert set(np.unique(off)) <= {0.0, -1.0}


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_grid_laplacian_null_space_is_constants(topology):
    L = _grid_laplacian(4, 5, topology, False).toarray()
    eigenvalues = np.linalg.eigvalsh(L)
    assert abs(eigenvalues[0]) < 1e-12
    assert eigenvalues[1] > 1e-3  # connected: only the constants are free


def test_grid_laplacian_planar_degrees():
    L = _grid_laplacian(3, 4, "rectangular", False)
    degree = L.diagonal().reshape(3, 4)
    assert_array_equal(degree, [[2, 3, 3, 2], [3, 4, 4, 3], [2, 3, 3, 2]])
    L = _grid_laplacian(3, 3, "hexagonal", False)
    # Odd row shifted right: the centre unit has 6 neighbours.
    assert L.diagonal()[4] == 6


# ---------------------------------------------------------------------------
# _update_means
# ---------------------------------------------------------------------------


def _mean_system(nk, U, shift, precisions_dense, stiffness, anchors, laplacian):
    """Dense (K d) x (K d) system of the mean M-step, solved directly."""
    n_components, n_features = U.shape
    A = np.zeros((n_components * n_features, n_components * n_features))
    rhs = np.zeros(n_components * n_features)
    sums = U + nk[:, np.newaxis] * shift
    for k in range(n_components):
        block = slice(k * n_features, (k + 1) * n_features)
        A[block, block] = nk[k] * precisions_dense[k]
        rhs[block] = precisions_dense[k] @ sums[k]
    L = laplacian.toarray()
    A += stiffness * np.kron(L, np.eye(n_features))
    rhs += stiffness * (L @ anchors).ravel()
    return np.linalg.solve(A, rhs).reshape(n_components, n_features)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("stiffness", [0.3, 2.0, 10.0, 1e4])
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_update_means_matches_dense_solve(covariance_type, stiffness, topology):
    rng = np.random.default_rng(7)
    n_rows, n_cols, n_features = 3, 4, 3
    n_components = n_rows * n_cols
    covariances = _random_covariances(rng, n_components, n_features, covariance_type)
    precisions = _precision_matrices(
        _compute_precision_cholesky(covariances, covariance_type), covariance_type
    )
    full = _to_full(covariances, covariance_type, n_components, n_features)
    precisions_dense = np.linalg.inv(full)
    nk = rng.uniform(0.5, 20.0, size=n_components)
    nk[5] = 0.0  # an empty component, tied to its neighbours by the prior
    shift = rng.normal(size=n_features)
    U = rng.normal(scale=3.0, size=(n_components, n_features)) * nk[:, np.newaxis]
    anchors = rng.normal(scale=2.0, size=(n_components, n_features))
    means = anchors + rng.normal(scale=0.5, size=anchors.shape)
    laplacian = _grid_laplacian(n_rows, n_cols, topology, False)
    means_before = means.copy()

    new = _update_means(
        nk,
        U,
        shift,
        means,
        precisions,
        covariance_type,
        stiffness=stiffness,
        anchors=anchors,
        laplacian=laplacian,
    )
    expected = _mean_system(
        nk, U, shift, precisions_dense, stiffness, anchors, laplacian
    )
    assert_allclose(new, expected, rtol=1e-8, atol=1e-8 * np.abs(expected).max())
    assert_array_equal(means, means_before)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_update_means_zero_stiffness_gives_weighted_means(covariance_type):
    rng = np.random.default_rng(3)
    n_components, n_features = 6, 2
    covariances = _random_covariances(rng, n_components, n_features, covariance_type)
    precisions = _precision_matrices(
        _compute_precision_cholesky(covariances, covariance_type), covariance_type
    )
    nk = rng.uniform(1.0, 5.0, size=n_components)
    nk[2] = 0.0
    U = rng.normal(size=(n_components, n_features))
    U[2] = 0.0
    shift = rng.normal(size=n_features)
    means = rng.normal(size=(n_components, n_features))
    means_before = means.copy()
    new = _update_means(
        nk,
        U,
        shift,
        means,
        precisions,
        covariance_type,
        stiffness=0.0,
        anchors=np.zeros_like(means),
        laplacian=None,
    )
    occupied = nk > 0
    assert_allclose(new[occupied], U[occupied] / nk[occupied, None] + shift)
    # Kept up to the rounding of (mu - shift) + shift.
    assert_allclose(new[2], means_before[2], rtol=1e-14, atol=1e-15)
    assert_array_equal(means, means_before)


@pytest.mark.parametrize("stiffness", [1e6, 1e9])
def test_update_means_huge_stiffness_moves_means_together(stiffness):
    """Stiffness -> inf: the deviation from the anchors is one common shift,
    the precision-weighted mean of the free per-unit shifts (up to O(1 /
    stiffness)).

    At 1e9 this fails (measured error 1.7e-3): the conjugate gradients stop at
    ``_MEAN_RTOL * ||rhs||``, and ``rhs`` holds ``stiffness * L (W - shift)``,
    so the tolerance grows with the stiffness while the common shift is set
    by the O(1) data terms. With ``_MEAN_RTOL = 1e-18`` the error is 2.5e-8.
    """
    rng = np.random.default_rng(11)
    n_components, n_features = 9, 2
    covariances = rng.uniform(0.5, 2.0, size=(n_components, n_features))
    precisions = 1.0 / covariances
    nk = rng.uniform(1.0, 10.0, size=n_components)
    anchors = rng.normal(size=(n_components, n_features))
    targets = anchors + rng.normal(size=anchors.shape)
    shift = np.zeros(n_features)
    U = nk[:, None] * targets
    new = _update_means(
        nk,
        U,
        shift,
        anchors.copy(),
        precisions,
        "diag",
        stiffness=stiffness,
        anchors=anchors,
        laplacian=_grid_laplacian(3, 3, "rectangular", False),
    )
    dense = _mean_system(
        nk,
        U,
        shift,
        np.stack([np.diag(p) for p in precisions]),
        stiffness,
        anchors,
        _grid_laplacian(3, 3, "rectangular", False),
    )
    weight = nk[:, None] * precisions
    common = (weight * (targets - anchors)).sum(axis=0) / weight.sum(axis=0)
    # The dense solve approaches the limit (spread O(data / stiffness)) ...
    assert_allclose(
        dense - anchors, np.broadcast_to(common, anchors.shape), atol=100 / stiffness
    )
    # ... and the conjugate gradients must match the dense solve.
    assert_allclose(new, dense, atol=1e-7)


# ---------------------------------------------------------------------------
# _moved_scatter and the first moments of the E-step
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_moved_scatter_matches_direct_scatter(covariance_type):
    rng = np.random.default_rng(5)
    n_samples, n_components, n_features = 60, 5, 3
    X = rng.normal(scale=2.0, size=(n_samples, n_features)) + 4.0
    resp = rng.dirichlet(np.ones(n_components), size=n_samples)
    resp[:, 3] = 0.0  # an empty component
    resp /= resp.sum(axis=1, keepdims=True)
    means = rng.normal(size=(n_components, n_features)) + 4.0
    delta = rng.normal(scale=0.7, size=(n_components, n_features))
    nk = resp.sum(axis=0)
    first = np.stack(
        [resp[:, k] @ (X - means[k]) for k in range(n_components)]
    )  # sum_i r_ik (x_i - mu_k)
    scatter = _brute_scatter(X, resp, means, covariance_type)
    moved = _moved_scatter(nk, scatter, first, delta, covariance_type)
    expected = _brute_scatter(X, resp, means + delta, covariance_type)
    assert moved.shape == expected.shape
    assert_allclose(moved, expected, rtol=1e-10, atol=1e-10)
    # The inputs are not modified.
    assert_allclose(scatter, _brute_scatter(X, resp, means, covariance_type))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_soft_scatter_first_moment_matches_brute_force(covariance_type):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    resp = rng.dirichlet(np.ones(4), size=40)
    means = rng.normal(size=(4, 3))
    shift = means.mean(axis=0)
    nk, scatter, U = _soft_scatter(
        X, resp, means, covariance_type, shift=shift, first_moment=True
    )
    expected_U = np.stack([resp[:, k] @ (X - shift) for k in range(4)])
    assert_allclose(U, expected_U, rtol=1e-12, atol=1e-12)
    assert_allclose(nk, resp.sum(axis=0))
    assert_allclose(scatter, _brute_scatter(X, resp, means, covariance_type))
    nk2, scatter2 = _soft_scatter(X, resp, means, covariance_type, shift=shift)
    assert_array_equal(nk2, nk)
    assert_array_equal(scatter2, scatter)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_statistics_first_moment_matches_scipy(covariance_type):
    rng = np.random.default_rng(4)
    n_components, n_features = 4, 2
    X = rng.normal(scale=2.0, size=(50, n_features))
    means = rng.normal(size=(n_components, n_features))
    weights = rng.dirichlet(np.ones(n_components))
    covariances = _random_covariances(rng, n_components, n_features, covariance_type)
    chol = _compute_precision_cholesky(covariances, covariance_type)
    reg_covar = 1e-3
    *_, nk, scatter, U, shift = _e_step_statistics(
        X,
        weights,
        means,
        chol,
        covariance_type,
        reg_covar=reg_covar,
        chunk_size=16,
        first_moment=True,
    )
    resp = _scipy_resp(X, weights, means, covariances, covariance_type, reg_covar)
    assert_allclose(shift, means.mean(axis=0))
    assert_allclose(nk, resp.sum(axis=0), rtol=1e-9)
    assert_allclose(U, resp.T @ (X - shift), rtol=1e-9, atol=1e-9)
    assert_allclose(scatter, _brute_scatter(X, resp, means, covariance_type), rtol=1e-9)


# ---------------------------------------------------------------------------
# _pinned_em with moving means
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("stiffness", [0.0, 0.1, 10.0])
@pytest.mark.parametrize("n_features", [2, 3])
def test_pinned_em_moving_means_history_never_decreases(
    covariance_type, stiffness, n_features
):
    X, som = _som_data(n_features)
    means, weights, covariances, target = _em_inputs(X, som, covariance_type)
    lam = _absolute_stiffness(stiffness, X.shape[0], target, means.shape[0])
    result = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        shrinkage=1.0,
        weight_concentration=1.0,
        max_iter=30,
        tol=-np.inf,  # run every iteration
        covariance_prior=target,
        chunk_size=64,
        mean_stiffness=lam,
        laplacian=_grid_laplacian(3, 3, "rectangular", False),
    )
    history = result["history"]
    assert history.shape == (31,)
    assert result["lower_bound"] == history[-1]
    steps = np.diff(history)
    assert np.all(steps >= -1e-12 * np.abs(history[1:])), steps.min()
    assert_array_equal(means, som.codebook_)  # the anchors are not modified
    # The means did move (the prior is finite).
    assert np.abs(result["means"] - means).max() > 1e-3


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_pinned_em_lower_bound_matches_independent_objective(covariance_type):
    """The per-sample objective, with the roughness penalty lambda / (2 n)
    tr((mu - W)^T L (mu - W)), recomputed with scipy densities."""
    X, som = _som_data(2)
    means, weights, covariances, target = _em_inputs(X, som, covariance_type)
    n_samples, n_features = X.shape
    laplacian = _grid_laplacian(3, 3, "rectangular", False)
    lam, s, alpha, r = 50.0, 1.5, 2.0, 1e-3
    result = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        shrinkage=s,
        weight_concentration=alpha,
        reg_covar=r,
        max_iter=4,
        tol=-np.inf,
        covariance_prior=target,
        mean_stiffness=lam,
        laplacian=laplacian,
    )
    pi, mu, cov = result["weights"], result["means"], result["covariances"]
    K = mu.shape[0]
    full = _to_full(cov, covariance_type, K, n_features)
    inv = np.linalg.inv(full)
    log_terms = np.column_stack(
        [
            np.log(pi[k])
            + stats.multivariate_normal(mu[k], full[k]).logpdf(X)
            - 0.5 * r * np.trace(inv[k])
            for k in range(K)
        ]
    )
    data_term = np.sum(np.logaddexp.reduce(log_terms, axis=1))
    target_full = np.diag(target) if covariance_type == "diag" else target
    target_full = target_full + r * np.eye(n_features)
    cov_prior = (
        -0.5
        * s
        * sum(
            np.trace(inv[k] @ target_full) + np.linalg.slogdet(full[k])[1]
            for k in range(K)
        )
    )
    # The anchors are the prototypes scaled about their centroid by one factor.
    anchors = result["anchors"]
    centre = means.mean(axis=0)
    scale = np.sum((anchors - centre) * (means - centre)) / np.sum(
        (means - centre) ** 2
    )
    assert_allclose(anchors, centre + scale * (means - centre), rtol=1e-12, atol=1e-12)
    deviation = mu - anchors
    pairs = _brute_adjacency(3, 3, "rectangular", False)
    penalty = (
        0.5 * lam * sum(np.sum((deviation[i] - deviation[j]) ** 2) for i, j in pairs)
    )
    expected = (
        data_term + alpha * np.sum(np.log(pi)) + cov_prior - penalty
    ) / n_samples
    assert_allclose(result["lower_bound"], expected, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pinned_em_infinite_stiffness_is_pinned_em(covariance_type):
    X, som = _som_data(2)
    means, weights, covariances, target = _em_inputs(X, som, covariance_type)
    options = {"shrinkage": 1.0, "max_iter": 20, "covariance_prior": target}
    pinned = _pinned_em(X, means, weights, covariances, covariance_type, **options)
    infinite = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        mean_stiffness=np.inf,
        laplacian=_grid_laplacian(3, 3, "rectangular", False),
        **options,
    )
    assert_array_equal(infinite["means"], means)
    for key in ("weights", "means", "covariances", "precisions_cholesky", "history"):
        assert_array_equal(infinite[key], pinned[key])
    assert infinite["n_iter"] == pinned["n_iter"]
    assert infinite["lower_bound"] == pinned["lower_bound"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pinned_em_huge_stiffness_shifts_means_together(covariance_type):
    X, som = _som_data(3)
    means, weights, covariances, target = _em_inputs(X, som, covariance_type)
    # A common shift of the anchored means is free (null space of L): move the
    # data so that the free shift is large.
    X = X + np.array([0.5, -0.3, 0.2])
    result = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        shrinkage=1.0,
        max_iter=20,
        covariance_prior=target,
        mean_stiffness=1e9,
        laplacian=_grid_laplacian(3, 3, "rectangular", False),
    )
    deviation = result["means"] - means
    common = deviation.mean(axis=0)
    assert np.abs(common).max() > 0.05
    assert_allclose(deviation, np.broadcast_to(common, deviation.shape), atol=1e-5)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pinned_em_zero_stiffness_converges_to_weighted_means(covariance_type):
    """Free means: at convergence, every mean is the responsibility-weighted
    mean of the data under the returned mixture (the EM fixed point)."""
    X, som = _som_data(2)
    means, weights, covariances, target = _em_inputs(X, som, covariance_type)
    reg_covar = 1e-6
    result = _pinned_em(
        X,
        means,
        weights,
        covariances,
        covariance_type,
        shrinkage=1.0,
        reg_covar=reg_covar,
        max_iter=3000,
        tol=1e-10,
        covariance_prior=target,
        mean_stiffness=0.0,
    )
    assert result["converged"]
    resp = _scipy_resp(
        X,
        result["weights"],
        result["means"],
        result["covariances"],
        covariance_type,
        reg_covar,
    )
    weighted = (resp.T @ X) / resp.sum(axis=0)[:, None]
    assert_allclose(result["means"], weighted, atol=1e-5)
    assert np.abs(result["means"] - means).max() > 1e-2


def test_pinned_em_finite_stiffness_needs_laplacian():
    X, som = _som_data(2)
    means, weights, covariances, target = _em_inputs(X, som, "diag")
    with pytest.raises(ValueError, match="needs the grid laplacian"):
        _pinned_em(X, means, weights, covariances, "diag", mean_stiffness=1.0)


# ---------------------------------------------------------------------------
# _pooled_target and _absolute_stiffness
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pooled_target_divides_by_degrees_of_freedom(covariance_type):
    rng = np.random.default_rng(8)
    n_samples, n_components, n_features = 30, 7, 3
    X = rng.normal(size=(n_samples, n_features)) * [1.0, 2.0, 0.5]
    labels = rng.integers(0, 5, size=n_samples)  # units 5 and 6 stay empty
    labels[0] = 4
    means = rng.normal(size=(n_components, n_features))
    residuals = X - means[labels]
    dof = n_samples - np.unique(labels).size
    full = residuals.T @ residuals / dof
    expected = {
        "full": full,
        "tied": full,
        "diag": np.diag(full),
        "spherical": np.trace(full) / n_features,
    }[covariance_type]
    target = _pooled_target(X, labels, means, covariance_type)
    assert_allclose(target, expected, rtol=1e-12)
    if covariance_type == "spherical":
        assert isinstance(target, float)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pooled_target_falls_back_to_scott_variance(covariance_type):
    rng = np.random.default_rng(9)
    n_samples, n_features = 5, 2
    X = rng.normal(size=(n_samples, n_features)) * [1.0, 3.0]
    labels = np.array([0, 3, 5, 6, 7])  # one sample per occupied unit
    means = rng.normal(size=(8, n_features))
    means[labels] = X  # every sample is its unit's mean: zero scatter
    factor = n_samples ** (-2.0 / (n_features + 4))
    cov = np.cov(X, rowvar=False, bias=True) * factor
    expected = {
        "full": cov,
        "tied": cov,
        "diag": np.diag(cov),
        "spherical": np.trace(cov) / n_features,
    }[covariance_type]
    target = _pooled_target(X, labels, means, covariance_type)
    assert_allclose(target, expected, rtol=1e-12)
    variances = np.diag(target) if np.ndim(target) == 2 else np.asarray(target)
    assert np.all(variances > 0.0)


def test_absolute_stiffness_scales_with_samples_per_unit_and_variance():
    assert _absolute_stiffness(2.0, 300, np.array([1.0, 3.0]), 10) == pytest.approx(
        2.0 * 30 / 2.0
    )
    assert _absolute_stiffness(
        1.0, 100, np.array([[4.0, 1.0], [1.0, 2.0]]), 4
    ) == pytest.approx(25 / 3.0)
    assert _absolute_stiffness(0.5, 40, 2.0, 8) == pytest.approx(0.5 * 5 / 2.0)
    assert _absolute_stiffness(np.inf, 40, 2.0, 8) == np.inf
    assert _absolute_stiffness(0.0, 40, 2.0, 8) == 0.0
    # reg_covar floors the variance: a zero target gives a finite lambda.
    assert _absolute_stiffness(1.0, 40, 0.0, 8, reg_covar=1e-6) == pytest.approx(5e6)
    assert _absolute_stiffness(1.0, 40, 2.0, 8, reg_covar=1.0) == pytest.approx(5 / 3)


def test_default_model_on_data_equal_to_their_prototypes_keeps_its_means():
    # Two distinct values only: every sample equals its unit's prototype and
    # the pooled target is ~1e-30. lambda was then ~1e31 times the data's
    # pull, and rounding noise shifted all the means by 1e5 (density 1e-6).
    rng = np.random.RandomState(0)
    flags = (rng.uniform(size=(1000, 1)) < 0.3).astype(float)
    model = SOMGenerativeModel(discrete_features=None, random_state=0).fit(flags)
    assert np.all(np.abs(model.means_) <= 1.0 + 1e-6)
    assert np.all(np.exp(model.score_samples([[0.0], [1.0]])) > 10)


# ---------------------------------------------------------------------------
# _data_sized_grid
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [1, 2, 5, 7, 19])
def test_data_sized_grid_single_unit_for_tiny_data(n_samples):
    X = np.random.default_rng(0).normal(size=(n_samples, 3))
    assert _data_sized_grid(X) == (1, 1)


@pytest.mark.parametrize("n_samples", [8, 20, 50, 150, 1000, 5000])
def test_data_sized_grid_size(n_samples):
    X = np.random.default_rng(1).normal(size=(n_samples, 3)) * [3.0, 1.5, 0.5]
    n_rows, n_cols = _data_sized_grid(X)
    n_units = max(1, min(round(2 * np.sqrt(n_samples)), n_samples // 10))
    assert n_rows >= 1 and n_cols >= n_rows
    # Rounding the sides moves the size by at most half a row.
    assert abs(n_rows * n_cols - n_units) <= n_rows / 2
    assert n_rows * n_cols <= max(1, n_samples / 10) + n_rows / 2


@pytest.mark.parametrize("angle", [0.0, 0.7, 2.0])
def test_data_sized_grid_follows_principal_axes(angle):
    rng = np.random.default_rng(2)
    n_samples = 2000
    X = rng.normal(size=(n_samples, 3)) * [4.0, 1.0, 0.3]
    c, s = np.cos(angle), np.sin(angle)
    X = X @ np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) + 10.0
    eigenvalues = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))[::-1]
    ratio = np.sqrt(eigenvalues[0] / eigenvalues[1])
    n_units = round(2 * np.sqrt(n_samples))
    n_rows, n_cols = _data_sized_grid(X)
    assert n_rows == round(np.sqrt(n_units / ratio))
    assert n_cols == round(n_units / n_rows)
    assert 0.7 * ratio < n_cols / n_rows < 1.5 * ratio
    assert _data_sized_grid(X) == (n_rows, n_cols)  # deterministic
    assert _data_sized_grid(X[:, [1, 0, 2]]) == (n_rows, n_cols)


def test_data_sized_grid_isotropic_cloud_is_square():
    X = np.random.default_rng(3).normal(size=(900, 2))
    n_rows, n_cols = _data_sized_grid(X)
    assert abs(n_rows - n_cols) <= 1
    assert n_rows * n_cols == pytest.approx(60, abs=n_rows / 2)


# ---------------------------------------------------------------------------
# SOMGenerativeModel
# ---------------------------------------------------------------------------


def _grid_of(som):
    return {
        "n_rows": som.n_rows,
        "n_cols": som.n_cols,
        "topology": som.topology,
        "periodic": som.periodic,
    }


@pytest.mark.parametrize(
    "som",
    [
        SelfOrganizingMap(4, 4, random_state=0),
        SelfOrganizingMap(4, 5, topology="hexagonal", periodic=True, random_state=0),
    ],
    ids=["rect", "hex-torus"],
)
def test_som_generative_model_topographic_error(som):
    X, _ = load_iris(return_X_y=True)
    pinned = SOMGenerativeModel(som, mean_stiffness=np.inf).fit(X)
    assert_array_equal(pinned.means_, pinned.som_.codebook_)
    assert pinned.topographic_error_ == topographic_error(
        X, pinned.som_.codebook_, **_grid_of(pinned.som_)
    )
    model = SOMGenerativeModel(som).fit(X)
    assert not np.array_equal(model.means_, model.som_.codebook_)
    assert model.topographic_error_ == topographic_error(
        X, model.means_, **_grid_of(model.som_)
    )
    assert 0.0 <= model.topographic_error_ <= 1.0


def test_som_generative_model_stiffness_improves_fit():
    held_out = {np.inf: [], 1.0: []}
    for seed in range(3):
        X, _ = make_moons(1000, noise=0.1, random_state=seed)
        X_test, _ = make_moons(1000, noise=0.1, random_state=seed + 100)
        bounds = []
        for stiffness in (np.inf, 10.0, 1.0, 0.1):
            model = SOMGenerativeModel(
                SelfOrganizingMap(4, 4, random_state=0), mean_stiffness=stiffness
            ).fit(X)
            bounds.append(model.lower_bound_)
            if stiffness in held_out:
                held_out[stiffness].append(model.score(X_test))
        # A weaker prior leaves the means freer: a higher training objective.
        assert np.all(np.diff(bounds) > 0), bounds
    # Measured: about +0.05 nats per sample on every seed.
    assert np.mean(held_out[1.0]) > np.mean(held_out[np.inf]) + 0.02
    assert np.all(np.array(held_out[1.0]) > np.array(held_out[np.inf]))


def test_som_generative_model_lower_bounds_and_convergence():
    X, _ = load_iris(return_X_y=True)
    som = SelfOrganizingMap(3, 3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SOMGenerativeModel(som).fit(X)
    assert model.converged_
    assert model.lower_bounds_.shape == (model.n_iter_,)
    assert model.lower_bounds_[-1] == model.lower_bound_
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12 * np.abs(model.lower_bound_))

    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = SOMGenerativeModel(som, max_iter=1, tol=0.0).fit(X)
    assert not short.converged_
    assert short.n_iter_ == 1
    assert short.lower_bounds_.shape == (1,)
    assert short.lower_bounds_[0] == short.lower_bound_

    pinned = SOMGenerativeModel(som, refine=None).fit(X)
    assert pinned.lower_bounds_.shape == (0,)
    assert pinned.n_iter_ == 0


def test_som_generative_model_default_fit_on_iris_does_not_warn():
    X, _ = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SOMGenerativeModel(random_state=0).fit(X)
    assert model.som_.n_rows * model.som_.n_cols <= 150 / 4


def test_som_generative_model_small_sample_warning_and_score():
    """A 6 x 6 map on 40 samples is too large: a warning says so, the model
    stays finite, and the default map sized from the data does better."""
    X, X_test = _gaussian_3d(40, seed=0)
    with pytest.warns(UserWarning, match="fewer than 2 samples per unit"):
        model = SOMGenerativeModel(
            SelfOrganizingMap(6, 6, random_state=0), random_state=0
        ).fit(X)
    assert np.all(np.isfinite(model.score_samples(X_test)))
    default = SOMGenerativeModel(random_state=0).fit(X)
    # The data-sized map has 4 units; the selection may keep fewer.
    assert default.som_.n_rows * default.som_.n_cols <= 4
    assert default.score(X_test) > model.score(X_test) + 1.0


def test_som_generative_model_small_sample_warning_threshold():
    X, _ = _gaussian_3d(18, seed=1)
    som = SelfOrganizingMap(3, 3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SOMGenerativeModel(som).fit(X)  # exactly 2 samples per unit
    with pytest.warns(UserWarning, match="9 units for 17 samples"):
        SOMGenerativeModel(som).fit(X[:17])


def test_som_generative_model_no_small_sample_warning_on_default_map():
    X, _ = _gaussian_3d(40, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SOMGenerativeModel(random_state=0).fit(X)


@pytest.mark.parametrize(
    "n_samples, mean_floor, worst_floor",
    # Measured on 10 draws (mean, worst) with the map size chosen by
    # cross-validation: n=5 +0.08, -0.02 (one unit: a single Gaussian with
    # shrunk variances); n=20 -0.12, -0.82 (one unit on 8 draws, two on 2: the
    # 10-fold selection on 20 rows is noisy; without it -0.16); n=50 +0.02,
    # -0.22; n=200 +0.61, +0.49 (20 units). Data drawn from one correlated
    # Gaussian are the worst case for a mixture (see
    # benchmarks/bench_generative_size.py).
    [(5, 0.0, -0.05), (20, -0.15, -0.9), (50, 0.0, -0.3), (200, 0.5, 0.4)],
)
def test_som_generative_model_default_vs_single_gaussian(
    n_samples, mean_floor, worst_floor
):
    """Default fits against one diagonal Gaussian on draws of a Gaussian sample
    (the worst case for a mixture): the bounds measured when sizes were chosen,
    so that a regression of the default map size or of the covariances fails."""
    gaps = []
    for seed in range(10):
        X, X_test = _gaussian_3d(n_samples, seed)
        model = SOMGenerativeModel(random_state=0).fit(X)
        gaussian = GaussianMixture(1, covariance_type="diag").fit(X)
        gaps.append(model.score(X_test) - gaussian.score(X_test))
    assert np.mean(gaps) >= mean_floor, gaps
    assert np.min(gaps) >= worst_floor, gaps


@pytest.mark.parametrize("n_samples", [5, 20, 50])
def test_som_generative_model_default_not_below_single_gaussian_iris(n_samples):
    X_all, _ = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(X_all.shape[0])
    X, X_test = X_all[order[:n_samples]], X_all[order[n_samples:]]
    model = SOMGenerativeModel(random_state=0).fit(X)
    gaussian = GaussianMixture(1, covariance_type="diag").fit(X)
    assert model.score(X_test) >= gaussian.score(X_test) - 0.05


def test_som_generative_model_grid_search_over_default_map():
    X, _ = load_iris(return_X_y=True)
    search = GridSearchCV(
        SOMGenerativeModel(random_state=0),
        {"som__n_rows": [2, 3], "som__n_cols": [2, 3]},
        cv=3,
    ).fit(X)
    best = search.best_estimator_
    assert isinstance(best.som_, SelfOrganizingMap)
    assert (best.som_.n_rows, best.som_.n_cols) == (
        search.best_params_["som__n_rows"],
        search.best_params_["som__n_cols"],
    )
    assert best.means_.shape == (best.som_.n_rows * best.som_.n_cols, 4)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_som_generative_model_set_params_replaces_default_map():
    model = SOMGenerativeModel().set_params(som__n_rows=3)
    assert isinstance(model.som, SelfOrganizingMap)
    assert model.som.n_rows == 3
    assert model.som.n_cols == SelfOrganizingMap().n_cols
    assert model.get_params()["som__n_rows"] == 3
    cloned = clone(model)
    assert cloned.som is not model.som
    assert cloned.som.get_params() == model.som.get_params()
    # Without som__ parameters, som stays None; explicit som wins.
    assert SOMGenerativeModel().set_params(mean_stiffness=2.0).som is None
    som = SelfOrganizingMap(2, 5)
    model = SOMGenerativeModel().set_params(som=som, som__n_rows=4)
    assert model.som is som and som.n_rows == 4 and som.n_cols == 5


@pytest.mark.parametrize("value", [-1, -1e-9, "a", np.nan, None])
def test_som_generative_model_invalid_mean_stiffness(value):
    X, _ = load_iris(return_X_y=True)
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), mean_stiffness=value)
    with pytest.raises(InvalidParameterError, match="mean_stiffness"):
        model.fit(X)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 3, np.inf])
def test_som_generative_model_valid_mean_stiffness(value):
    X, _ = load_iris(return_X_y=True)
    model = SOMGenerativeModel(
        SelfOrganizingMap(2, 2, random_state=0), mean_stiffness=value
    ).fit(X)
    assert np.all(np.isfinite(model.means_))
    assert np.isfinite(model.score(X))


def test_som_generative_model_failed_refit_keeps_model():
    X, _ = load_iris(return_X_y=True)
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3, random_state=0)).fit(X)
    state = {k: v for k, v in vars(model).items()}
    means = model.means_.copy()
    scores = model.score_samples(X)
    X_inf = X.copy()
    X_inf[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(X_inf)
    assert_array_equal(model.means_, means)
    assert_array_equal(model.score_samples(X), scores)
    assert set(vars(model)) == set(state)

    # A failure after validate_data(reset=True) (a frozen map fitted on 4
    # features, data with 3) must not leave n_features_in_ = 3 behind.
    frozen = SOMGenerativeModel(
        FrozenEstimator(SelfOrganizingMap(3, 3, random_state=0).fit(X))
    ).fit(X)
    means = frozen.means_.copy()
    with pytest.raises(ValueError, match="map was fitted on 4 features"):
        frozen.fit(X[:, :3])
    assert frozen.n_features_in_ == 4
    assert_array_equal(frozen.means_, means)
    assert np.isfinite(frozen.score(X))


def test_som_generative_model_with_an_auto_sized_map_equals_som_none():
    """A user-given ``SelfOrganizingMap()`` (sizes "auto") is sized like
    ``som=None`` and, with the same seed, gives the same model."""
    X, _ = load_iris(return_X_y=True)
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    given = SOMGenerativeModel(SelfOrganizingMap(random_state=seed), random_state=0)
    given.fit(X)
    default = SOMGenerativeModel(random_state=0).fit(X)
    assert (given.som_.n_rows_, given.som_.n_cols_) == _data_sized_grid(X)
    assert given.som_.n_rows == "auto"
    np.testing.assert_array_equal(given.means_, default.means_)
    np.testing.assert_array_equal(given.covariances_, default.covariances_)


def test_som_generative_model_grid_search_over_one_side_of_the_default_map():
    """Searching ``som__n_rows`` alone leaves ``n_cols="auto"``: sized from the
    data for the given number of rows."""
    X, _ = load_iris(return_X_y=True)
    search = GridSearchCV(
        SOMGenerativeModel(random_state=0), {"som__n_rows": [1, 2]}, cv=3
    ).fit(X)
    best = search.best_estimator_
    n_rows = search.best_params_["som__n_rows"]
    assert best.som.n_cols == "auto"
    assert best.som_.n_rows_ == n_rows
    assert best.som_.n_cols_ == round(_data_sized_units(X.shape[0]) / n_rows)
    assert best.means_.shape == (best.som_.n_rows_ * best.som_.n_cols_, 4)


def test_map_grid_of_a_duck_typed_map_reads_the_resolved_sizes():
    from types import SimpleNamespace

    from somgen._generative import _map_grid

    som = SimpleNamespace(
        n_rows="auto", n_cols="auto", n_rows_=2, n_cols_=3,
        topology="hexagonal", periodic=False,
    )  # fmt: skip
    assert _map_grid(som) == dict(
        n_rows=2, n_cols=3, topology="hexagonal", periodic=False
    )
    som = SimpleNamespace(n_rows=4, n_cols=5, topology="rectangular", periodic=True)
    assert _map_grid(som) == dict(
        n_rows=4, n_cols=5, topology="rectangular", periodic=True
    )
