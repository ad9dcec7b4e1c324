"""Neighbourhood smoothing (``_neighborhood._smooth``) against the dense product
``H @ values`` built by brute force from the full matrix of grid distances."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from somgen._neighborhood import NEIGHBORHOODS, _neighborhood_weights, _smooth
from somgen._topology import _grid_sq_distances

# Odd and even sizes, single rows and columns, and axes longer than 64 units,
# where the 1-D filters switch from one dense matrix to dense blocks along the
# band.
SHAPES = [
    (1, 1),
    (1, 6),
    (1, 7),
    (6, 1),
    (7, 1),
    (2, 2),
    (3, 4),
    (4, 3),
    (6, 7),
    (9, 8),
    (2, 90),
    (90, 2),
    (140, 3),
]
GRID_CASES = [
    (shape, topology, periodic)
    for shape in SHAPES
    for topology in ("rectangular", "hexagonal")
    for periodic in (False, True)
    # The estimator and _smooth refuse periodic hexagonal maps with odd rows.
    if not (periodic and topology == "hexagonal" and shape[0] % 2)
]
# Widths around the lattice distances 1, sqrt(3), 2 and far beyond the map.
SIGMAS = [0.3, 0.5, 1.0, math.sqrt(3.0), 2.5, 7.3, 40.0, 1e3]


def _values(n_units, seed):
    """Statistics of mixed signs and very different scales per column."""
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n_units, 3)) * [1.0, 1e6, 1e-6]


def _dense_reference(values, shape, topology, periodic, sigma, kind):
    sq = _grid_sq_distances(*shape, topology, periodic)
    H = _neighborhood_weights(sq, sigma, kind)
    return H @ values, np.abs(H) @ np.abs(values)


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("shape, topology, periodic", GRID_CASES)
def test_smooth_matches_dense_product(shape, topology, periodic, kind):
    values = _values(shape[0] * shape[1], seed=shape[0] * 100 + shape[1])
    grid = dict(n_rows=shape[0], n_cols=shape[1], topology=topology)
    for sigma in SIGMAS:
        expected, scale = _dense_reference(
            values, shape, topology, periodic, sigma, kind
        )
        got = _smooth(values, periodic=periodic, sigma=sigma, kind=kind, **grid)
        assert got.shape == values.shape
        assert got.dtype == np.float64
        # Relative to the row's scale |H| @ |values| (the Mexican hat cancels).
        error = np.abs(got - expected)
        assert (error <= 1e-12 * scale).all(), (sigma, (error / scale).max())


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("shape, topology, periodic", GRID_CASES)
def test_smooth_tiny_sigma_is_identity(shape, topology, periodic, kind):
    values = _values(shape[0] * shape[1], seed=1)
    grid = dict(n_rows=shape[0], n_cols=shape[1], topology=topology)
    for sigma in (1e-3, 1e-150, 1e-200, 5e-324):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = _smooth(values, periodic=periodic, sigma=sigma, kind=kind, **grid)
        assert_array_equal(got, values)
        assert got is not values


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
@pytest.mark.parametrize("shape, topology, periodic", GRID_CASES)
def test_smooth_huge_sigma_sums_every_unit(shape, topology, periodic, kind):
    # Every weight is 1 (d / sigma underflows): each unit gets the column sums.
    values = _values(shape[0] * shape[1], seed=2)
    grid = dict(n_rows=shape[0], n_cols=shape[1], topology=topology)
    expected = np.broadcast_to(values.sum(axis=0), values.shape)
    scale = np.abs(values).sum(axis=0)
    for sigma in (1e150, 1e300, np.finfo(np.float64).max):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = _smooth(values, periodic=periodic, sigma=sigma, kind=kind, **grid)
        assert np.isfinite(got).all()
        assert (np.abs(got - expected) <= 1e-13 * scale).all()


@pytest.mark.parametrize("kind", NEIGHBORHOODS)
def test_smooth_one_dimensional_values_and_empty_columns(kind):
    shape, topology = (5, 6), "hexagonal"
    values = _values(30, seed=3)[:, 0]
    grid = dict(n_rows=5, n_cols=6, topology=topology, periodic=False)
    got = _smooth(values, sigma=1.5, kind=kind, **grid)
    expected, scale = _dense_reference(values, shape, topology, False, 1.5, kind)
    assert got.shape == (30,)
    assert (np.abs(got - expected) <= 1e-12 * scale).all()
    empty = _smooth(np.zeros((30, 0)), sigma=1.5, kind=kind, **grid)
    assert empty.shape == (30, 0)


def test_smooth_bubble_counts_lattice_rings():
    # On a torus every unit sees the same neighbourhood: smoothing ones counts
    # the units within sigma: 1 + 6 (hex ring at 1) + 6 (ring at sqrt(3)), and
    # 1 + 4 + 4 (rect rings at 1 and sqrt(2)).
    ones = np.ones((8 * 10, 1))
    hexagonal = dict(n_rows=8, n_cols=10, topology="hexagonal", periodic=True)
    rectangular = dict(n_rows=8, n_cols=10, topology="rectangular", periodic=True)
    hex_1 = _smooth(ones, sigma=1.0, kind="bubble", **hexagonal)
    hex_sqrt3 = _smooth(ones, sigma=math.sqrt(3.0), kind="bubble", **hexagonal)
    rect_sqrt2 = _smooth(ones, sigma=math.sqrt(2.0), kind="bubble", **rectangular)
    assert_array_equal(hex_1, 7.0)
    assert_array_equal(hex_sqrt3, 13.0)
    assert_array_equal(rect_sqrt2, 9.0)


def test_smooth_is_linear_and_matches_dense_on_a_unit_impulse():
    # H @ e_k is column k of H: the kernel seen from unit k, a unit near a corner
    # of a planar hexagonal map (a column of H is a row: H is symmetric).
    shape = (7, 9)
    sq = _grid_sq_distances(*shape, "hexagonal", False)
    for kind in NEIGHBORHOODS:
        H = _neighborhood_weights(sq, 2.2, kind)
        for k in (0, 10, 62):
            impulse = np.zeros(63)
            impulse[k] = 1.0
            got = _smooth(
                impulse,
                n_rows=7,
                n_cols=9,
                topology="hexagonal",
                periodic=False,
                sigma=2.2,
                kind=kind,
            )
            assert_allclose(got, H[:, k], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(values=np.ones((11, 2))), "values has 11 rows, but a 3x4 grid has 12"),
        (dict(kind="cone"), "Unknown neighborhood 'cone'"),
        (dict(sigma=0.0), "sigma must be positive"),
        (dict(sigma=-1.0), "sigma must be positive"),
        (dict(sigma=np.nan), "sigma must be positive"),
        (
            dict(topology="hexagonal", periodic=True, n_rows=3),
            "periodic hexagonal map needs an even number of rows",
        ),
        (dict(topology="square"), "Unknown topology 'square'"),
    ],
)
def test_smooth_rejects_bad_input(kwargs, match):
    params = dict(
        values=np.ones((12, 2)),
        n_rows=3,
        n_cols=4,
        topology="rectangular",
        periodic=False,
        sigma=1.0,
        kind="gaussian",
    )
    params.update(kwargs)
    values = params.pop("values")
    with pytest.raises(ValueError, match=match):
        _smooth(values, **params)
