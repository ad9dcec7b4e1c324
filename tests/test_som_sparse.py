"""Sparse input (CSR / CSC) in SelfOrganizingMap and the metrics: equal to dense."""

import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse

import somgen._initialization as init_mod
import somgen._parallel as parallel_mod
from somgen import SelfOrganizingMap
from somgen._bmu import _best_matching_units, _frame_from_data
from somgen._initialization import _leading_components
from somgen.metrics import hit_counts, quantization_error, topographic_error

FORMATS = [sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array]


def _sparse_data(n_samples=300, n_features=40, density=0.15, offset=0.0, seed=0):
    """Non-negative, bag-of-words-like counts (plus an optional offset on the
    stored values)."""
    rng = np.random.RandomState(seed)
    X = sparse.random(
        n_samples,
        n_features,
        density=density,
        format="csr",
        random_state=rng,
        data_rvs=lambda k: rng.poisson(3.0, size=k) + 1.0 + offset,
    )
    return X


def _brute_sq(X, codebook):
    X = np.asarray(X, dtype=np.float64)
    codebook = np.asarray(codebook, dtype=np.float64)
    return ((X[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)


def _assert_rank(got, dist, rank=0):
    order = np.argsort(dist, axis=1, kind="stable")
    rows = np.arange(len(got))
    expected = order[:, rank]
    tied = dist[rows, got] == dist[rows, expected]
    assert np.all((got == expected) | tied)


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(parallel_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(parallel_mod, "_MIN_CHUNK", 7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_best_matching_units_sparse_match_brute_force(dtype, offset, small_chunks):
    X = _sparse_data(offset=offset).astype(dtype)
    rng = np.random.RandomState(1)
    codebook = X[rng.choice(X.shape[0], 15)].toarray() + rng.normal(size=(15, 40))
    codebook[1] = codebook[0] + 1e-3  # near-duplicate prototypes
    codebook = codebook.astype(dtype)
    best, second, dist = _best_matching_units(X, codebook, second=True, distances=True)
    ref = _brute_sq(X.toarray(), codebook)
    _assert_rank(best, ref)
    _assert_rank(second, ref, rank=1)
    assert_allclose(dist**2, ref[np.arange(X.shape[0]), best], rtol=1e-9)


@pytest.mark.parametrize("container", FORMATS)
@pytest.mark.parametrize("algorithm", ["batch", "online"])
def test_som_sparse_fit_equals_dense_fit_float64(container, algorithm):
    X = _sparse_data(seed=2)
    dense = X.toarray()
    params = dict(algorithm=algorithm, n_epochs=4, batch_size=6, random_state=0)
    som_sparse = SelfOrganizingMap(4, 5, **params).fit(container(X))
    som_dense = SelfOrganizingMap(4, 5, **params).fit(dense)
    assert som_sparse.codebook_.dtype == np.float64
    scale = np.abs(som_dense.codebook_).max()
    assert_allclose(
        som_sparse.codebook_, som_dense.codebook_, rtol=0, atol=1e-10 * scale
    )
    assert_array_equal(som_sparse.predict(container(X)), som_dense.predict(dense))
    assert_array_equal(som_sparse.transform(container(X)), som_dense.transform(dense))
    assert som_sparse.score(container(X)) == pytest.approx(
        som_dense.score(dense), rel=1e-10
    )
    assert som_sparse.quantization_error_ == pytest.approx(
        som_dense.quantization_error_, rel=1e-10
    )
    assert som_sparse.topographic_error_ == som_dense.topographic_error_


@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_matrix])
def test_som_sparse_float32_matches_dense(container):
    X = _sparse_data(seed=3).astype(np.float32)
    dense = X.toarray()
    som_sparse = SelfOrganizingMap(3, 4, n_epochs=3, random_state=0).fit(container(X))
    som_dense = SelfOrganizingMap(3, 4, n_epochs=3, random_state=0).fit(dense)
    assert som_sparse.codebook_.dtype == np.float32
    assert som_sparse.transform(container(X)).dtype == np.float32
    assert_allclose(som_sparse.codebook_, som_dense.codebook_, rtol=1e-4, atol=1e-4)
    # On one codebook the BMUs are exact whatever the input format.
    assert_array_equal(som_dense.predict(container(X)), som_dense.predict(dense))
    assert som_dense.score(container(X)) == pytest.approx(
        som_dense.score(dense), rel=1e-6
    )


@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_matrix])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_metrics_sparse_equal_dense(container, dtype):
    X = _sparse_data(seed=4).astype(dtype)
    codebook = np.random.RandomState(0).uniform(0, 2, size=(12, 40)).astype(dtype)
    grid = dict(n_rows=3, n_cols=4)
    dense = X.toarray()
    assert quantization_error(container(X), codebook) == pytest.approx(
        quantization_error(dense, codebook), rel=1e-10
    )
    assert topographic_error(container(X), codebook, **grid) == topographic_error(
        dense, codebook, **grid
    )
    assert_array_equal(
        hit_counts(container(X), codebook, **grid), hit_counts(dense, codebook, **grid)
    )


def test_som_sparse_partial_fit_equals_dense():
    X = _sparse_data(seed=5)
    dense = X.toarray()
    a = SelfOrganizingMap(3, 3, random_state=0)
    b = SelfOrganizingMap(3, 3, random_state=0)
    for rows in np.array_split(np.arange(X.shape[0]), 3):
        a.partial_fit(X[rows])
        b.partial_fit(dense[rows])
    assert_allclose(a.codebook_, b.codebook_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("init", ["random", "sample"])
def test_som_sparse_other_inits_equal_dense(init):
    X = _sparse_data(seed=6)
    a = SelfOrganizingMap(3, 3, init=init, n_epochs=2, random_state=0).fit(X)
    b = SelfOrganizingMap(3, 3, init=init, n_epochs=2, random_state=0).fit(X.toarray())
    assert_allclose(a.codebook_, b.codebook_, rtol=1e-10, atol=1e-12)


def test_frame_from_sparse_data_equals_dense():
    X = _sparse_data(seed=7)
    got, low, high = _frame_from_data(X)
    expected, low_d, high_d = _frame_from_data(X.toarray())
    assert got.scale == expected.scale
    assert_allclose(got.offset, expected.offset, rtol=1e-14)
    assert_allclose(low, low_d)
    assert_allclose(high, high_d)


def test_leading_components_sparse_equal_dense(monkeypatch):
    X = _sparse_data(n_features=30, seed=8)
    frame, _, _ = _frame_from_data(X)
    for max_features in (2000, 2):  # exact, then randomized
        monkeypatch.setattr(init_mod, "_EXACT_PCA_MAX_FEATURES", max_features)
        dense = _leading_components(X.toarray(), np.random.RandomState(0), frame)
        got = _leading_components(X, np.random.RandomState(0), frame)
        assert_allclose(got[1], dense[1], rtol=1e-9)
        assert_allclose(got[0], dense[0], atol=1e-7)


def test_som_sparse_fit_never_densifies():
    # 4000 x 20000 float64 would take 640 MB dense.
    rng = np.random.RandomState(0)
    X = sparse.random(4000, 20000, density=5e-4, format="csr", random_state=rng)
    som = SelfOrganizingMap(4, 4, n_epochs=2, random_state=0)
    tracemalloc.start()
    try:
        som.fit(X)
        som.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak / 2**20


def test_som_sparse_nan_is_an_error():
    X = _sparse_data(seed=9)
    X.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN stored in a sparse matrix"):
        SelfOrganizingMap(2, 2).fit(X)
    som = SelfOrganizingMap(2, 2).fit(_sparse_data(seed=9))
    with pytest.raises(ValueError, match="NaN stored in a sparse matrix"):
        som.predict(X)
    with pytest.raises(ValueError, match="NaN stored in a sparse matrix"):
        quantization_error(X, som.codebook_)


def test_som_sparse_tags():
    tags = SelfOrganizingMap().__sklearn_tags__()
    assert tags.input_tags.sparse
    assert tags.input_tags.allow_nan


def test_som_sparse_invariant_to_n_jobs_and_chunking(small_chunks):
    X = _sparse_data(n_samples=200, seed=10)
    fits = [
        SelfOrganizingMap(3, 4, n_epochs=3, n_jobs=n_jobs, random_state=0).fit(X)
        for n_jobs in (1, 2)
    ]
    assert_array_equal(fits[0].codebook_, fits[1].codebook_)
    assert fits[0].quantization_error_ == fits[1].quantization_error_
