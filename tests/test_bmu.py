"""Best-matching-unit search against brute-force float64 distances."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

import somgen._bmu as bmu_mod
import somgen._parallel as parallel_mod
from somgen._bmu import (
    _best_matching_units,
    _direct_distances,
    _frame_from_data,
)
from somgen._parallel import _chunk_slices


def _data(n_samples=300, n_units=23, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = (
        rng.normal(size=(n_samples, n_features))
        * [3.0, 1.0, 0.5, 2.0, 1.0][:n_features]
    )
    codebook = rng.normal(size=(n_units, n_features)) * 2.0 - 0.5
    return X, codebook


def _brute_force(X, codebook):
    """Float64 squared distances by direct differences, (n_samples, n_units)."""
    X64 = np.asarray(X, dtype=np.float64)
    C64 = np.asarray(codebook, dtype=np.float64)
    return ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(axis=2)


def _assert_exact(got, X, codebook, rank=0):
    """``got`` is the rank-th nearest unit by brute force, up to exact ties."""
    dist = _brute_force(X, codebook)
    order = np.argsort(dist, axis=1, kind="stable")
    expected = order[:, rank]
    rows = np.arange(len(got))
    # Where two units are at exactly the same float64 distance, either is right.
    tied = dist[rows, got] == dist[rows, expected]
    assert np.all((got == expected) | tied), np.flatnonzero(~tied & (got != expected))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(parallel_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(parallel_mod, "_MIN_CHUNK", 7)


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_best_matching_units_match_cdist_argmin(n_features):
    X, codebook = _data(n_features=n_features)
    best, second = _best_matching_units(X, codebook)
    assert second is None
    assert best.dtype == np.int64
    assert best.shape == (X.shape[0],)
    assert_array_equal(best, cdist(X, codebook, "sqeuclidean").argmin(axis=1))


@pytest.mark.parametrize("n_jobs", [None, 1, 2])
def test_best_matching_units_second_best_match_argsort(n_jobs, small_chunks):
    X, codebook = _data(seed=1)
    best, second = _best_matching_units(X, codebook, second=True, n_jobs=n_jobs)
    order = np.argsort(cdist(X, codebook, "sqeuclidean"), axis=1)
    assert_array_equal(best, order[:, 0])
    assert_array_equal(second, order[:, 1])
    assert second.dtype == np.int64
    assert (best != second).all()


def test_best_matching_units_two_unit_codebook():
    X, codebook = _data(n_units=2, seed=2)
    best, second = _best_matching_units(X, codebook, second=True)
    assert_array_equal(best, cdist(X, codebook).argmin(axis=1))
    assert_array_equal(second, 1 - best)


def test_best_matching_units_one_unit_codebook(small_chunks):
    X, codebook = _data(n_units=1, seed=3)
    best, second = _best_matching_units(X, codebook, second=True, n_jobs=2)
    assert_array_equal(best, 0)
    assert_array_equal(second, 0)
    best, second = _best_matching_units(X.astype(np.float32), codebook)
    assert_array_equal(best, 0)
    assert second is None


def test_best_matching_units_hand_computed():
    codebook = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, -10.0]])
    X = np.array([[1.0, 1.0], [9.0, -1.0], [-1.0, -8.0], [6.0, 0.0], [-4.0, -6.0]])
    best, second = _best_matching_units(X, codebook, second=True)
    assert_array_equal(best, [0, 1, 2, 1, 2])
    assert_array_equal(second, [1, 0, 0, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1e3, 1e4, 1e7])
def test_best_matching_units_exact_on_offset_clusters(dtype, offset):
    # Two unit-spread clusters at +-offset: the mean is ~0, so centring does not
    # help. Before the exact re-ranking, float32 picked 26-28 % wrong units at
    # 1e3 and 96 % at 1e4, and float64 7 % at 1e7.
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.normal(size=(2000, 2)) + offset, rng.normal(size=(2000, 2)) - offset]
    ).astype(dtype)
    codebook = np.vstack(
        [rng.normal(size=(50, 2)) + offset, rng.normal(size=(50, 2)) - offset]
    ).astype(dtype)
    frame = _frame_from_data(X)[0]
    best, second = _best_matching_units(X, codebook, second=True, frame=frame)
    _assert_exact(best, X, codebook)
    _assert_exact(second, X, codebook, rank=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_best_matching_units_exact_with_near_duplicate_prototypes(dtype):
    # After a wide first epoch many prototypes differ by less than float32's
    # resolution: the float32 scores tie where float64 distances do not.
    rng = np.random.RandomState(1)
    centre = rng.normal(size=8)
    codebook = centre + 1e-6 * rng.normal(size=(60, 8))
    X = (centre + 1e-5 * rng.normal(size=(3000, 8))).astype(dtype)
    best, second = _best_matching_units(X, codebook, second=True)
    _assert_exact(best, X, codebook)
    _assert_exact(second, X, codebook, rank=1)
    # Far more distinct winners than float32 scores alone would find.
    assert np.unique(best).size > 40


def test_best_matching_units_handle_values_near_the_float_limits():
    codebook = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 0.5]])
    big = np.finfo(np.float64).max / 4
    X = np.array([[1e300, 1e300], [-big, 0.0], [1e-300, 0.0], [0.9, 0.9]])
    best, second, dist = _best_matching_units(X, codebook, second=True, distances=True)
    assert_array_equal(best, [1, 2, 0, 1])
    assert np.all(np.isfinite(dist))
    assert dist[0] == pytest.approx(np.sqrt(2) * 1e300, rel=1e-12)
    # float32 data whose centred products overflow in float32.
    X32 = np.array([[3e38, 3e38], [0.9, 0.9]], dtype=np.float32)
    best32, _ = _best_matching_units(X32, codebook)
    assert_array_equal(best32, [1, 1])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    log_offset=st.floats(0.0, 6.0),
    log_spread=st.floats(-3.0, 1.0),
    n_units=st.integers(1, 40),
    n_features=st.integers(1, 6),
    float32=st.booleans(),
)
def test_best_matching_units_property_equal_brute_force(
    seed, log_offset, log_spread, n_units, n_features, float32
):
    rng = np.random.RandomState(seed)
    offset = 10.0**log_offset * rng.choice([-1.0, 1.0], size=n_features)
    spread = 10.0**log_spread
    X = offset + spread * rng.normal(size=(200, n_features))
    codebook = offset + spread * rng.normal(size=(n_units, n_features))
    if float32:
        X = X.astype(np.float32)
        codebook = codebook.astype(np.float32)
    frame = _frame_from_data(X)[0]
    best, second = _best_matching_units(X, codebook, second=True, frame=frame)
    _assert_exact(best, X, codebook)
    if n_units > 1:
        _assert_exact(second, X, codebook, rank=1)


def test_best_matching_units_invariant_to_chunking(monkeypatch):
    X, codebook = _data(n_samples=250, n_units=10, seed=6)
    ref_best, ref_second = _best_matching_units(X, codebook, second=True)
    assert len(_chunk_slices(250, 10)) == 1
    monkeypatch.setattr(parallel_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(parallel_mod, "_MIN_CHUNK", 7)
    monkeypatch.setattr(bmu_mod, "_BLOCK_BYTES", 64)
    slices = _chunk_slices(250, 10)
    assert len(slices) > 10
    # The partition covers every sample exactly once, in order.
    covered = np.concatenate([np.arange(250)[s] for s in slices])
    assert_array_equal(covered, np.arange(250))
    best, second = _best_matching_units(X, codebook, second=True)
    assert_array_equal(best, ref_best)
    assert_array_equal(second, ref_second)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_best_matching_units_invariant_to_n_jobs(dtype, small_chunks):
    X, codebook = _data(n_samples=400, seed=7)
    X = X.astype(dtype)
    one = _best_matching_units(X, codebook, second=True, n_jobs=1)
    two = _best_matching_units(X, codebook, second=True, n_jobs=2)
    assert_array_equal(one[0], two[0])
    assert_array_equal(one[1], two[1])


def test_chunk_slices_independent_of_data_beyond_shape():
    # Sizes depend on (n_samples, n_units) only; small inputs give one chunk.
    assert _chunk_slices(0, 5) == []
    assert _chunk_slices(10, 5) == [slice(0, 10)]
    big = _chunk_slices(10**6, 1000)
    sizes = {s.stop - s.start for s in big[:-1]}
    assert sizes == {max(parallel_mod._MIN_CHUNK, parallel_mod._CHUNK_ELEMENTS // 1000)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_distances_match_brute_force(dtype):
    X, codebook = _data(n_samples=120, seed=8)
    X = X.astype(dtype)
    units = np.random.RandomState(0).randint(codebook.shape[0], size=120)
    got = _direct_distances(X.astype(np.float64), codebook, units) ** 2
    assert got.dtype == np.float64
    X64 = X.astype(np.float64)
    expected = np.array(
        [
            sum((X64[i, f] - codebook[u, f]) ** 2 for f in range(X.shape[1]))
            for i, u in enumerate(units)
        ]
    )
    assert_allclose(got, expected, rtol=1e-12)
    full = cdist(X64, codebook, "sqeuclidean")
    assert_allclose(got, full[np.arange(120), units], rtol=1e-12)


def test_direct_distances_do_not_overflow_or_underflow():
    codebook = np.array([[0.0, 0.0], [1e-300, 0.0]])
    X = np.array([[1e300, 1e300], [3e-300, 4e-300]])
    got = _direct_distances(X, codebook, np.array([0, 0]))
    assert_allclose(got, [np.sqrt(2) * 1e300, 5e-300], rtol=1e-14)
