"""Neighbourhood kernels against their closed forms, written with ``math``."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from somgen._neighborhood import NEIGHBORHOODS, _neighborhood_weights
from somgen._topology import _adjacency, _grid_sq_distances

DISTANCES = [0.0, 0.25, 0.5, 1.0, math.sqrt(2.0), math.sqrt(3.0), 2.0, 3.0, 10.0]
SIGMAS = [0.3, 1.0, 2.5]


def _ref_weight(d, sigma, kind):
    """Kernel value at grid distance ``d`` (not squared), scalar maths."""
    if kind == "gaussian":
        return math.exp(-(d**2) / (2.0 * sigma**2))
    if kind == "bubble":
        return 1.0 if d <= sigma else 0.0
    if kind == "mexican_hat":
        return (1.0 - d**2 / sigma**2) * math.exp(-(d**2) / (2.0 * sigma**2))
    return max(0.0, 1.0 - d / sigma)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("sigma", SIGMAS)
def test_neighborhood_weights_match_closed_form(kind, sigma):
    d = np.array(DISTANCES)
    got = _neighborhood_weights(d**2, sigma, kind)
    expected = [_ref_weight(x, sigma, kind) for x in DISTANCES]
    assert got.dtype == np.float64
    assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
def test_neighborhood_weights_keep_shape_and_accept_integers(kind):
    sq = np.arange(12).reshape(3, 4)
    got = _neighborhood_weights(sq, 1.5, kind)
    assert got.shape == (3, 4)
    assert got.dtype == np.float64
    expected = [[_ref_weight(math.sqrt(v), 1.5, kind) for v in row] for row in sq]
    assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("sigma", [1e-3, 0.3, 1.0, 7.0, 1e3])
def test_neighborhood_weights_one_at_zero_distance(kind, sigma):
    assert _neighborhood_weights(np.zeros(3), sigma, kind).tolist() == [1.0] * 3
    assert _neighborhood_weights(0.0, sigma, kind) == 1.0


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
def test_neighborhood_weights_non_increasing_inside_sigma(kind):
    sigma = 2.0
    d = np.linspace(0.0, sigma, 41)
    w = _neighborhood_weights(d**2, sigma, kind)
    assert (np.diff(w) <= 0).all()
    assert (w <= 1.0).all()


@pytest.mark.parametrize("periodic", [False, True])
def test_neighborhood_bubble_includes_hex_neighbours_at_sigma_one(periodic):
    # Hex neighbour distances involve sqrt(3); the bubble must see exactly 1.
    sq = _grid_sq_distances(6, 5, "hexagonal", periodic)
    adj = _adjacency(6, 5, "hexagonal", periodic)
    w = _neighborhood_weights(sq, 1.0, "bubble")
    assert_array_equal(w.astype(bool), adj | np.eye(30, dtype=bool))
    if periodic:
        assert_array_equal(w.sum(axis=1), 7.0)


def test_neighborhood_bubble_second_hex_ring_at_sigma_sqrt3():
    # Within sqrt(3): the unit, 6 neighbours at 1, 6 second-ring units at sqrt(3);
    # the units at distance 2 stay out.
    sq = _grid_sq_distances(6, 6, "hexagonal", True)
    w = _neighborhood_weights(sq, math.sqrt(3.0), "bubble")
    assert_array_equal(w.sum(axis=1), 13.0)


@pytest.mark.parametrize("periodic", [False, True])
def test_neighborhood_bubble_rectangular_rings(periodic):
    sq = _grid_sq_distances(5, 6, "rectangular", periodic)
    eye = np.eye(30, dtype=bool)
    adj8 = _adjacency(5, 6, "rectangular", periodic, connectivity=8)
    adj4 = _adjacency(5, 6, "rectangular", periodic, connectivity=4)
    w1 = _neighborhood_weights(sq, 1.0, "bubble")
    w2 = _neighborhood_weights(sq, math.sqrt(2.0), "bubble")
    assert_array_equal(w1.astype(bool), adj4 | eye)
    assert_array_equal(w2.astype(bool), adj8 | eye)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_neighborhood_mexican_hat_sign_changes_at_sigma(sigma):
    inside = np.array([0.0, 0.3, 0.9, 0.999]) * sigma
    outside = np.array([1.001, 1.5, 2.0, 4.0]) * sigma
    assert (_neighborhood_weights(inside**2, sigma, "mexican_hat") > 0).all()
    assert (_neighborhood_weights(outside**2, sigma, "mexican_hat") < 0).all()
    assert _neighborhood_weights(sigma**2, sigma, "mexican_hat") == pytest.approx(
        0.0, abs=1e-15
    )
    # The most negative value is at d = sqrt(3) sigma: -2 exp(-3/2).
    d = np.linspace(0, 10 * sigma, 10001)
    w = _neighborhood_weights(d**2, sigma, "mexican_hat")
    assert w.min() == pytest.approx(-2.0 * math.exp(-1.5), rel=1e-6)
    assert d[np.argmin(w)] == pytest.approx(math.sqrt(3.0) * sigma, rel=1e-3)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_neighborhood_triangle_zero_beyond_sigma(sigma):
    d = np.array([1.0, 1.001, 2.0, 50.0]) * sigma
    w = _neighborhood_weights(d**2, sigma, "triangle")
    assert_array_equal(w, 0.0)
    inside = np.array([0.25, 0.5, 0.75]) * sigma
    assert_allclose(
        _neighborhood_weights(inside**2, sigma, "triangle"), [0.75, 0.5, 0.25]
    )


def test_neighborhood_gaussian_at_one_sigma():
    assert _neighborhood_weights(4.0, 2.0, "gaussian") == pytest.approx(
        math.exp(-0.5), rel=1e-15
    )


@pytest.mark.parametrize("kind", ["Gaussian", "cone", "", "mexican-hat"])
def test_neighborhood_weights_unknown_kind_raises(kind):
    with pytest.raises(ValueError, match="Unknown neighborhood"):
        _neighborhood_weights(np.zeros(2), 1.0, kind)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("sigma", [1e155, 1e300, np.finfo(np.float64).max])
def test_neighborhood_weights_huge_sigma_are_ones(kind, sigma):
    # sigma ** 2 overflows: the weights must still be finite, here all 1.
    sq = np.array([0.0, 1.0, 3.0, 1e4, 1e12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = _neighborhood_weights(sq, sigma, kind)
    assert_array_equal(w, 1.0)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("sigma", [1e-155, 1e-200, 5e-324])
def test_neighborhood_weights_tiny_sigma_only_zero_distance(kind, sigma):
    # sigma ** 2 underflows to 0: no NaN (0 / 0) or inf * 0, only d = 0 weighs.
    sq = np.array([0.0, 1e-300, 0.25, 1.0, 3.0, 1e12])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = _neighborhood_weights(sq, sigma, kind)
    assert_array_equal(w, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
def test_neighborhood_weights_continuous_in_extreme_sigma(kind):
    # Where sigma ** 2 is about to overflow or underflow (d ** 2 still a normal
    # float), the robust formula still follows the closed form.
    for sigma, d in [(1e150, 3e150), (1e-150, 2e-150), (1e-100, 1.3e-100)]:
        got = _neighborhood_weights(d**2, sigma, kind)
        assert got == pytest.approx(_ref_weight(d / sigma, 1.0, kind), rel=1e-12)
