"""Best-matching-unit search against scipy's cdist brute force."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import cdist

import somgen._bmu as bmu_mod
from somgen._bmu import _best_matching_units, _chunk_slices, _sq_distances_to_units


def _data(n_samples=300, n_units=23, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = (
        rng.normal(size=(n_samples, n_features))
        * [3.0, 1.0, 0.5, 2.0, 1.0][:n_features]
    )
    codebook = rng.normal(size=(n_units, n_features)) * 2.0 - 0.5
    return X, codebook


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(bmu_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(bmu_mod, "_MIN_CHUNK", 7)


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


def test_best_matching_units_float32_needs_centring():
    rng = np.random.RandomState(4)
    offset = 1e4
    X32 = (offset + 0.05 * rng.normal(size=(1000, 4))).astype(np.float32)
    codebook32 = (offset + 0.05 * rng.normal(size=(25, 4))).astype(np.float32)
    X64 = X32.astype(np.float64)
    ref = cdist(X64, codebook32.astype(np.float64), "sqeuclidean").argmin(axis=1)

    # As the estimator does: centre both on the float64 mean, keep X in float32.
    mean = X64.mean(axis=0)
    Xc = (X64 - mean).astype(np.float32)
    codebook_c = codebook32.astype(np.float64) - mean
    best, _ = _best_matching_units(Xc, codebook_c)
    assert np.mean(best == ref) >= 0.998

    # The uncentred float32 expansion loses the differences in ||w||^2 - 2 x.w.
    naive, _ = _best_matching_units(X32, codebook32.astype(np.float64))
    assert np.mean(naive == ref) < 0.5


def test_best_matching_units_float32_close_to_float64():
    X, codebook = _data(n_samples=500, seed=5)
    best64, _ = _best_matching_units(X, codebook)
    best32, _ = _best_matching_units(X.astype(np.float32), codebook)
    assert np.mean(best32 == best64) >= 0.998


def test_best_matching_units_invariant_to_chunking(monkeypatch):
    X, codebook = _data(n_samples=250, n_units=10, seed=6)
    ref_best, ref_second = _best_matching_units(X, codebook, second=True)
    assert len(_chunk_slices(250, 10)) == 1
    monkeypatch.setattr(bmu_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(bmu_mod, "_MIN_CHUNK", 7)
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
    assert sizes == {max(bmu_mod._MIN_CHUNK, bmu_mod._CHUNK_ELEMENTS // 1000)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sq_distances_to_units_match_brute_force(dtype, small_chunks):
    X, codebook = _data(n_samples=120, seed=8)
    X = X.astype(dtype)
    units = np.random.RandomState(0).randint(codebook.shape[0], size=120)
    got = _sq_distances_to_units(X, codebook, units)
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
