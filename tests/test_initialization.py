"""Codebook initialisation against scikit-learn's PCA and direct checks."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA

import somgen._initialization as init_mod
from somgen._initialization import (
    _leading_components,
    _pca_init,
    _random_init,
    _sample_init,
)
from somgen._topology import _unit_coordinates


def _anisotropic_data(n_samples=400, seed=0):
    """Centred 4-D data with distinct variances along a random rotation."""
    rng = np.random.RandomState(seed)
    Z = rng.normal(size=(n_samples, 4)) * [5.0, 2.0, 0.7, 0.2]
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    X = Z @ Q.T + [10.0, -3.0, 0.5, 100.0]
    return X - X.mean(axis=0)


def _reference_axes(Xc):
    """Top-2 axes (sign: largest loading positive) and biased variances."""
    pca = PCA(n_components=2, svd_solver="full").fit(Xc)
    axes = pca.components_.copy()
    for axis in axes:
        if axis[np.argmax(np.abs(axis))] < 0:
            axis *= -1
    n = Xc.shape[0]
    return axes, pca.explained_variance_ * (n - 1) / n


def _normalised_grid(n_rows, n_cols):
    """Rectangular grid positions rescaled to [-1, 1], (u along cols, v along rows)."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    u = (cols - (n_cols - 1) / 2) / ((n_cols - 1) / 2) if n_cols > 1 else 0 * cols
    v = (rows - (n_rows - 1) / 2) / ((n_rows - 1) / 2) if n_rows > 1 else 0 * rows
    return u.astype(float), v.astype(float)


# -------------------------------------------------------------------------- PCA
def test_leading_components_match_sklearn_pca():
    Xc = _anisotropic_data()
    components, variances = _leading_components(Xc, np.random.RandomState(0))
    axes, ref_var = _reference_axes(Xc)
    for got, ref in zip(components, axes, strict=True):
        sign = np.sign(got @ ref)
        assert_allclose(sign * got, ref, atol=1e-10)
    assert_allclose(variances, ref_var, rtol=1e-10)
    # Deterministic sign: the largest-magnitude loading is positive.
    for axis in components:
        assert axis[np.argmax(np.abs(axis))] > 0
    assert_allclose(components, axes, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 7), (7, 4), (5, 5), (1, 6), (6, 1)])
def test_pca_init_rectangular_closed_form(shape):
    n_rows, n_cols = shape
    Xc = _anisotropic_data(seed=1)
    axes, var = _reference_axes(Xc)
    sd = np.sqrt(var)
    coords = _unit_coordinates(n_rows, n_cols, "rectangular")
    got = _pca_init(Xc, coords, np.random.RandomState(0))
    u, v = _normalised_grid(n_rows, n_cols)
    if n_rows > n_cols:  # the longer side follows the first component
        u, v = v, u
    expected = np.outer(u, sd[0] * axes[0]) + np.outer(v, sd[1] * axes[1])
    assert got.shape == (n_rows * n_cols, 4)
    assert got.dtype == np.float64
    assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("shape", [(3, 8), (8, 3), (6, 6), (4, 5)])
def test_pca_init_spans_one_sd_in_principal_plane(topology, shape):
    Xc = _anisotropic_data(seed=2)
    axes, var = _reference_axes(Xc)
    coords = _unit_coordinates(*shape, topology)
    got = _pca_init(Xc, coords, np.random.RandomState(0))
    # In the plane of the two leading components.
    residual = got - (got @ axes.T) @ axes
    assert_allclose(residual, 0.0, atol=1e-9)
    # The map is centred on the data mean.
    assert_allclose(got.mean(axis=0), 0.0, atol=1e-9)
    proj = got @ axes.T
    ptp_x, ptp_y = np.ptp(coords, axis=0)
    first = 1 if ptp_y > ptp_x else 0
    along = coords[:, first]
    across = coords[:, 1 - first]
    # Spans sqrt(eigenvalue) along each axis (one side reaches exactly 1 sd).
    for k in range(2):
        assert np.abs(proj[:, k]).max() == pytest.approx(np.sqrt(var[k]), rel=1e-9)
    # The first component varies along the longer side only, increasing linearly.
    slope1 = np.polyfit(along, proj[:, 0], 1)
    assert_allclose(np.polyval(slope1, along), proj[:, 0], atol=1e-9)
    slope2 = np.polyfit(across, proj[:, 1], 1)
    assert_allclose(np.polyval(slope2, across), proj[:, 1], atol=1e-9)
    assert slope1[0] > 0 and slope2[0] > 0


def test_pca_init_single_sample_gives_zero_codebook():
    Xc = np.zeros((1, 3))
    coords = _unit_coordinates(3, 4, "rectangular")
    got = _pca_init(Xc, coords, np.random.RandomState(0))
    assert got.shape == (12, 3)
    assert_array_equal(got, 0.0)
    got1 = _pca_init(np.zeros((1, 1)), coords, np.random.RandomState(0))
    assert_array_equal(got1, np.zeros((12, 1)))


def test_pca_init_single_feature():
    rng = np.random.RandomState(3)
    x = rng.normal(scale=3.0, size=(200, 1))
    Xc = x - x.mean()
    sd = Xc.std()
    coords = _unit_coordinates(3, 5, "rectangular")
    got = _pca_init(Xc, coords, np.random.RandomState(0))
    u, _ = _normalised_grid(3, 5)
    assert got.shape == (15, 1)
    assert_allclose(got[:, 0], u * sd, atol=1e-12)


def test_pca_init_collinear_data():
    rng = np.random.RandomState(4)
    direction = np.array([1.0, -2.0, 0.5])
    direction /= np.linalg.norm(direction)
    t = rng.normal(scale=2.0, size=200)
    X = np.outer(t, direction) + [3.0, 1.0, -7.0]
    Xc = X - X.mean(axis=0)
    coords = _unit_coordinates(4, 6, "rectangular")
    got = _pca_init(Xc, coords, np.random.RandomState(0))
    assert np.isfinite(got).all()
    along = got @ direction
    assert_allclose(got - np.outer(along, direction), 0.0, atol=1e-6)
    u, _ = _normalised_grid(4, 6)
    sign = np.sign(along[-1] - along[0])
    assert_allclose(sign * along, u * (t - t.mean()).std(), atol=1e-6)


def test_pca_init_deterministic_sign_under_row_permutation(monkeypatch):
    Xc = _anisotropic_data(seed=5)
    coords = _unit_coordinates(5, 6, "hexagonal")
    ref = _pca_init(Xc, coords, np.random.RandomState(0))
    perm = np.random.RandomState(1).permutation(Xc.shape[0])
    assert_allclose(_pca_init(Xc[perm], coords, np.random.RandomState(9)), ref)
    # Covariance accumulated in several blocks gives the same map.
    monkeypatch.setattr(init_mod, "_COV_CHUNK", 37)
    assert_allclose(_pca_init(Xc, coords, np.random.RandomState(0)), ref, atol=1e-10)
    # float32 input is accumulated in float64.
    got32 = _pca_init(Xc.astype(np.float32), coords, np.random.RandomState(0))
    assert got32.dtype == np.float64
    assert_allclose(got32, ref, rtol=1e-5, atol=1e-5)


def test_pca_init_randomized_path_matches_exact(monkeypatch):
    Xc = _anisotropic_data(seed=6)
    coords = _unit_coordinates(4, 6, "rectangular")
    exact = _pca_init(Xc, coords, np.random.RandomState(0))
    monkeypatch.setattr(init_mod, "_EXACT_PCA_MAX_FEATURES", 2)
    randomized = _pca_init(Xc, coords, np.random.RandomState(0))
    assert_allclose(randomized, exact, atol=1e-6)


# ----------------------------------------------------------------------- random
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_init_inside_bounding_box(dtype):
    rng = np.random.RandomState(7)
    Xc = (rng.normal(size=(50, 3)) * [1.0, 10.0, 0.01] - [0.0, 5.0, -2.0]).astype(dtype)
    got = _random_init(Xc, 500, np.random.RandomState(0))
    assert got.shape == (500, 3)
    assert got.dtype == np.float64
    low = Xc.min(axis=0).astype(np.float64)
    high = Xc.max(axis=0).astype(np.float64)
    assert (got >= low).all() and (got <= high).all()
    # Spread over the whole box, not a corner of it.
    width = high - low
    assert (got.min(axis=0) < low + 0.05 * width).all()
    assert (got.max(axis=0) > high - 0.05 * width).all()
    again = _random_init(Xc, 500, np.random.RandomState(0))
    assert_array_equal(got, again)


def test_random_init_constant_feature():
    Xc = np.column_stack([np.zeros(10), np.arange(10.0)])
    got = _random_init(Xc, 20, np.random.RandomState(0))
    assert_array_equal(got[:, 0], 0.0)


# ----------------------------------------------------------------------- sample
@pytest.mark.parametrize("n_units", [1, 10, 29, 30])
def test_sample_init_picks_distinct_rows(n_units):
    rng = np.random.RandomState(8)
    Xc = rng.normal(size=(30, 4))
    got = _sample_init(Xc, n_units, np.random.RandomState(0))
    assert got.shape == (n_units, 4)
    assert got.dtype == np.float64
    idx = [np.flatnonzero((Xc == row).all(axis=1)) for row in got]
    assert all(len(i) == 1 for i in idx)
    idx = np.concatenate(idx)
    assert len(set(idx.tolist())) == n_units  # without replacement
    if n_units == 30:
        assert sorted(idx.tolist()) == list(range(30))


def test_sample_init_with_replacement_when_more_units_than_samples():
    rng = np.random.RandomState(9)
    Xc = rng.normal(size=(5, 2)).astype(np.float32)
    got = _sample_init(Xc, 40, np.random.RandomState(0))
    assert got.shape == (40, 2)
    assert got.dtype == np.float64
    X64 = Xc.astype(np.float64)
    for row in got:
        assert (X64 == row).all(axis=1).sum() == 1
    # 40 draws among 5 rows: repeats are unavoidable.
    assert len(np.unique(got, axis=0)) <= 5


def test_observed_mean_matches_nanmean_across_chunks(monkeypatch):
    from somgen import _initialization

    monkeypatch.setattr(_initialization, "_COV_CHUNK", 7)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * [1.0, 1e3, 1e-3, 5.0] + [0.0, 1e6, -2.0, 3.0]
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 3] = np.nan  # never observed: 0
    expected = np.nanmean(X[:, :3], axis=0)
    got = _initialization._observed_mean(X)
    np.testing.assert_allclose(got[:3], expected, rtol=1e-12)
    assert got[3] == 0.0
    np.testing.assert_allclose(
        _initialization._observed_mean(X.astype(np.float32))[:3],
        np.nanmean(X[:, :3].astype(np.float32).astype(np.float64), axis=0),
        rtol=1e-12,
    )


def test_data_sized_grid_with_missing_values_does_not_copy_the_data():
    """Sizing a grid from data with NaN reads it by chunks: the traced peak
    stays well below the size of X (np.nanmean copied it whole)."""
    import tracemalloc

    from somgen._initialization import _data_sized_grid

    rng = np.random.default_rng(0)
    X = rng.normal(size=(150_000, 40))  # 48 MB; chunks of 8,192 rows
    X[rng.random(X.shape) < 0.1] = np.nan
    tracemalloc.start()
    try:
        _data_sized_grid(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.3 * X.nbytes, (peak, X.nbytes)
