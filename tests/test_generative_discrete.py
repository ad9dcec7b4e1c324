"""Discrete columns in SOMGenerativeModel: detection, dequantization, rounding."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import integrate, sparse

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._discrete import _cell_edges, _dequantize, _round_to_levels


def _table(n_samples=600, seed=0):
    """Two correlated continuous columns and a binary one depending on them."""
    rng = np.random.RandomState(seed)
    continuous = rng.randn(n_samples, 2) @ np.array([[1.0, 0.6], [0.0, 0.8]])
    binary = (continuous[:, 0] + 0.5 * rng.randn(n_samples) > 0).astype(float)
    return np.column_stack([continuous, binary])


def _model(**params):
    return SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0), random_state=0, **params
    )


def test_auto_detects_few_valued_columns_only():
    rng = np.random.RandomState(0)
    X = np.column_stack(
        [
            rng.randn(200),  # continuous
            rng.randint(0, 2, 200),  # binary
            rng.randint(0, 10, 200) * 0.5,  # ten levels
            rng.randint(0, 11, 200),  # eleven levels: continuous
            np.zeros(200),  # constant: nothing to dequantize
        ]
    )
    model = _model().fit(X)
    assert_array_equal(model.discrete_features_, [1, 2])
    assert_array_equal(model.discrete_levels_[0], [0.0, 1.0])
    assert_array_equal(model.discrete_levels_[1], np.arange(10) * 0.5)
    # Too few rows per value: 8 rows of a 3-valued column are not "discrete".
    small = np.column_stack([rng.randn(8), np.tile([0.0, 1.0, 2.0, 0.0], 2)])
    assert _model().fit(small).discrete_features_.size == 0


def test_explicit_columns_none_and_errors():
    X = _table()
    assert_array_equal(_model(discrete_features=[2]).fit(X).discrete_features_, [2])
    mask = np.array([False, False, True])
    assert_array_equal(_model(discrete_features=mask).fit(X).discrete_features_, [2])
    assert _model(discrete_features=None).fit(X).discrete_features_.size == 0
    with pytest.raises(ValueError, match="has 1 distinct observed value"):
        _model(discrete_features=[0]).fit(np.column_stack([np.zeros(50), X[:50]]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\]"):
        _model(discrete_features=[3]).fit(X)
    with pytest.raises(ValueError, match="boolean mask needs 3 entries"):
        _model(discrete_features=[True, False]).fit(X)
    with pytest.raises(ValueError, match="needs dense input"):
        _model(discrete_features=[2]).fit(sparse.csr_matrix(X))


def test_without_discrete_columns_the_model_is_unchanged():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 3)
    a = _model().fit(X)
    b = _model(discrete_features=None).fit(X)
    assert pickle.dumps(a.means_) == pickle.dumps(b.means_)
    assert_array_equal(a.covariances_, b.covariances_)
    assert_array_equal(a.sample(50)[0], b.sample(50)[0])


def test_dequantize_spreads_each_value_over_its_cell():
    levels = np.array([-1.0, 0.5, 1.0])
    edges = _cell_edges(levels)
    assert_array_equal(edges, [-1.75, -0.25, 0.75, 1.25])
    X = np.column_stack([np.repeat(levels, 2000), np.arange(6000.0)])
    X[0, 0] = np.nan
    noisy = _dequantize(X, np.array([0]), [levels], np.random.RandomState(0))
    assert np.isnan(noisy[0, 0])
    assert_array_equal(noisy[:, 1], X[:, 1])
    for v, (low, high) in zip(
        levels, zip(edges[:-1], edges[1:], strict=True), strict=True
    ):
        moved = noisy[1:, 0][X[1:, 0] == v]
        assert moved.min() >= low and moved.max() < high
        # Uniform over the cell: mean at its centre, variance width^2 / 12.
        assert moved.mean() == pytest.approx((low + high) / 2, abs=0.03 * (high - low))
        assert moved.var() == pytest.approx((high - low) ** 2 / 12, rel=0.1)
    # Rounding maps every point of a cell (and beyond the outer ones) back.
    back = _round_to_levels(noisy.copy(), np.array([0]), [levels])
    assert_array_equal(back[1:, 0], X[1:, 0])
    far = _round_to_levels(np.array([[-9.0], [9.0]]), np.array([0]), [levels])
    assert_array_equal(far.ravel(), [-1.0, 1.0])


def _binary_only(n_samples, p, seed):
    rng = np.random.RandomState(seed)
    return (rng.uniform(size=(n_samples, 1)) < p).astype(float)


def test_the_density_of_a_binary_column_does_not_spike():
    # One binary column: as it is, the mixture collapses components onto the
    # two values (density far above 1 / width at the values); dequantized,
    # the density at a value times the cell width is its probability, and
    # the mass of each cell is the value's frequency.
    X = _binary_only(1000, 0.3, seed=0)
    p1 = X.mean()
    dequantized = _model().fit(X)
    spiky = _model(discrete_features=None).fit(X)
    width = 1.0  # cells [-0.5, 0.5) and [0.5, 1.5)
    at_values = np.exp(dequantized.score_samples([[0.0], [1.0]]))
    assert at_values * width == pytest.approx([1 - p1, p1], rel=0.25)
    assert np.all(np.exp(spiky.score_samples([[0.0], [1.0]])) * width > 10)

    def density(x):
        return float(np.exp(dequantized.score_samples([[x]])[0]))

    mass_one, _ = integrate.quad(density, 0.5, 1.5, limit=200)
    assert mass_one == pytest.approx(p1, abs=0.03)


def test_samples_take_the_training_values_with_their_frequencies():
    X = _table(2000)
    model = _model().fit(X)
    samples, _ = model.sample(4000, random_state=1)
    assert set(np.unique(samples[:, 2])) <= {0.0, 1.0}
    assert samples[:, 2].mean() == pytest.approx(X[:, 2].mean(), abs=0.05)
    # The continuous columns are not rounded.
    assert np.unique(samples[:, 0]).size == samples.shape[0]
    # Conditional draws of a missing binary entry are values too.
    rows = X[:20].copy()
    rows[:, 2] = np.nan
    rows[0, 0] = np.nan
    draws = model.sample_conditional(rows, 5, random_state=0)
    assert set(np.unique(draws[:, :, 2])) <= {0.0, 1.0}
    assert_array_equal(draws[:, 1:, :2], np.broadcast_to(rows[1:, :2], (5, 19, 2)))


def test_dequantized_fit_is_reproducible_and_handles_missing_values():
    X = _table()
    a = _model().fit(X)
    b = _model().fit(X)
    assert_array_equal(a.means_, b.means_)
    X_missing = X.copy()
    X_missing[::7, 2] = np.nan
    model = _model().fit(X_missing)
    assert_array_equal(model.discrete_features_, [2])
    assert np.isfinite(model.score(X))


def test_dask_fit_refuses_discrete_columns():
    da = pytest.importorskip("dask.array")
    X = _table(400)
    with pytest.raises(ValueError, match=r"Columns \[2\] are discrete"):
        _model().fit(da.from_array(X, chunks=100))
    # Treated as continuous, the Dask fit equals the in-memory one.
    lazy = _model(discrete_features=None).fit(da.from_array(X, chunks=100))
    eager = _model(discrete_features=None).fit(X)
    np.testing.assert_allclose(lazy.means_, eager.means_, rtol=1e-10, atol=1e-12)
