"""Missing values (NaN) in SelfOrganizingMap and the metrics, against brute force."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import somgen._parallel as parallel_mod
from somgen import SelfOrganizingMap
from somgen._bmu import _best_matching_units, _frame_from_data
from somgen._initialization import _pca_init
from somgen._neighborhood import _neighborhood_weights
from somgen._topology import _pairwise_grid_sq_distances, _unit_coordinates
from somgen._training import _online_update, _smooth_statistics
from somgen.metrics import hit_counts, quantization_error, topographic_error


def _with_missing(X, fraction, seed=0):
    """Copy of ``X`` with ``fraction`` of its entries NaN, completely at random,
    leaving at least one observed value per row."""
    rng = np.random.RandomState(seed)
    X = np.array(X, copy=True)
    mask = rng.uniform(size=X.shape) < fraction
    mask[np.arange(X.shape[0]), rng.randint(X.shape[1], size=X.shape[0])] = False
    X[mask] = np.nan
    return X


def _masked_sq_distances(X, codebook):
    """Brute-force ``n_features / n_obs * sum_obs (x - w)^2`` in float64."""
    X = np.asarray(X, dtype=np.float64)
    codebook = np.asarray(codebook, dtype=np.float64)
    observed = ~np.isnan(X)
    diff = np.where(observed, X, 0.0)[:, None, :] - codebook[None, :, :]
    diff *= observed[:, None, :]
    sq = (diff**2).sum(axis=2)
    return sq * (X.shape[1] / observed.sum(axis=1))[:, None]


def _assert_rank(got, dist, rank=0):
    """``got`` is the rank-th nearest unit, up to exact float64 ties."""
    order = np.argsort(dist, axis=1, kind="stable")
    rows = np.arange(len(got))
    expected = order[:, rank]
    tied = dist[rows, got] == dist[rows, expected]
    assert np.all((got == expected) | tied)


def _data(n_samples=400, n_features=6, n_units=20, offset=0.0, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features)) * np.arange(1, n_features + 1)
    codebook = rng.normal(size=(n_units, n_features)) * 2.0
    return X + offset, codebook + offset


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(parallel_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(parallel_mod, "_MIN_CHUNK", 7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_best_matching_units_missing_match_masked_brute_force(
    dtype, offset, fraction, small_chunks
):
    X, codebook = _data(offset=offset)
    X = _with_missing(X, fraction).astype(dtype)
    codebook = codebook.astype(dtype)
    # Near-duplicate prototypes: ties within the rounding bound get re-ranked.
    codebook[1] = codebook[0] + np.float32(1e-3)
    best, second, dist = _best_matching_units(X, codebook, second=True, distances=True)
    ref = _masked_sq_distances(X, codebook)
    _assert_rank(best, ref)
    _assert_rank(second, ref, rank=1)
    assert_allclose(dist**2, ref[np.arange(len(X)), best], rtol=1e-10)


def test_best_matching_units_complete_rows_unchanged_by_missing_rows(small_chunks):
    X, codebook = _data(seed=3)
    X_missing = _with_missing(X, 0.3, seed=1)
    stacked = np.vstack([X, X_missing])
    rows = np.random.RandomState(0).permutation(len(stacked))
    best, second, dist = _best_matching_units(
        stacked[rows], codebook, second=True, distances=True
    )
    ref_best, ref_second, ref_dist = _best_matching_units(
        X, codebook, second=True, distances=True
    )
    complete = rows < len(X)
    order = np.argsort(rows[complete])
    assert_array_equal(best[complete][order], ref_best)
    assert_array_equal(second[complete][order], ref_second)
    assert_array_equal(dist[complete][order], ref_dist)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_metrics_missing_match_masked_brute_force(dtype):
    X, codebook = _data(seed=2, n_units=12)
    X = _with_missing(X, 0.3).astype(dtype)
    ref = _masked_sq_distances(X, codebook)
    assert quantization_error(X, codebook) == pytest.approx(
        np.sqrt(ref.min(axis=1)).mean(), rel=1e-12
    )
    order = np.argsort(ref, axis=1)
    grid = dict(n_rows=3, n_cols=4)
    coords = _unit_coordinates(3, 4, "rectangular")
    gap = np.abs(coords[order[:, 0]] - coords[order[:, 1]]).max(axis=1)
    assert topographic_error(X, codebook, **grid) == pytest.approx(np.mean(gap > 1))
    assert_array_equal(
        hit_counts(X, codebook, **grid).ravel(),
        np.bincount(order[:, 0], minlength=12),
    )


@pytest.mark.parametrize("algorithm", ["batch", "online"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_som_missing_zero_fraction_equals_complete_fit_bit_for_bit(algorithm, dtype):
    X, _ = _data(n_samples=300)
    X = X.astype(dtype)
    X_missing = _with_missing(X, 0.0)
    assert not np.isnan(X_missing).any()
    params = dict(algorithm=algorithm, n_epochs=3, batch_size=7, random_state=0)
    complete = SelfOrganizingMap(4, 5, **params).fit(X)
    missing = SelfOrganizingMap(4, 5, **params).fit(X_missing)
    assert_array_equal(missing.codebook_, complete.codebook_)
    assert missing.quantization_error_ == complete.quantization_error_
    assert missing.topographic_error_ == complete.topographic_error_


@pytest.mark.parametrize("algorithm", ["batch", "online"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_som_missing_fit_predict_score_match_brute_force(algorithm, dtype):
    X, _ = _data(n_samples=300, seed=4)
    X = _with_missing(X, 0.3).astype(dtype)
    som = SelfOrganizingMap(
        4, 5, algorithm=algorithm, n_epochs=4, batch_size=5, random_state=0
    ).fit(X)
    assert som.codebook_.dtype == dtype
    assert np.isfinite(som.codebook_).all()
    ref = _masked_sq_distances(X, som.codebook_)
    best = som.predict(X)
    _assert_rank(best, ref)
    assert_array_equal(som.transform(X), som.unit_coords_[best].astype(dtype))
    qe = np.sqrt(ref.min(axis=1)).mean()
    assert som.score(X) == pytest.approx(-qe, rel=1e-12)
    assert som.quantization_error_ == pytest.approx(qe, rel=1e-12)
    te = topographic_error(X, som.codebook_, n_rows=4, n_cols=5)
    assert som.topographic_error_ == pytest.approx(te)


def test_som_missing_fit_is_close_to_complete_fit():
    X, _ = _data(n_samples=600, n_features=4, seed=5)
    complete = SelfOrganizingMap(4, 4, random_state=0).fit(X)
    missing = SelfOrganizingMap(4, 4, random_state=0).fit(_with_missing(X, 0.1))
    # Measured on the complete data, the map trained with 10 % missing values
    # quantizes almost as well.
    assert -missing.score(X) < 1.15 * -complete.score(X)


def test_som_missing_invariant_to_n_jobs_and_chunking(small_chunks):
    X, _ = _data(n_samples=200, seed=6)
    X = _with_missing(X, 0.2)
    fits = [
        SelfOrganizingMap(3, 4, n_epochs=3, n_jobs=n_jobs, random_state=0).fit(X)
        for n_jobs in (1, 2)
    ]
    assert_array_equal(fits[0].codebook_, fits[1].codebook_)
    assert fits[0].quantization_error_ == fits[1].quantization_error_


def test_smooth_statistics_per_feature_counts_match_dense_reference():
    rng = np.random.RandomState(0)
    grid = dict(n_rows=3, n_cols=4, topology="hexagonal", periodic=False)
    n_units, n_features = 12, 3
    sums = rng.normal(size=(n_units, n_features))
    counts = rng.randint(0, 4, size=(n_units, n_features)).astype(float)
    counts[:, 2] = 0.0  # a feature with no observed value anywhere
    codebook = rng.normal(size=(n_units, n_features))
    coords = _unit_coordinates(3, 4, "hexagonal")
    sq = _pairwise_grid_sq_distances(coords, coords, **grid)
    H = _neighborhood_weights(sq, 1.3, "gaussian")
    new = _smooth_statistics(sums, counts, codebook, grid, 1.3, "gaussian")
    assert_allclose(new[:, :2], (H @ sums[:, :2]) / (H @ counts[:, :2]))
    assert_array_equal(new[:, 2], codebook[:, 2])


def test_smooth_statistics_unit_without_observed_weight_keeps_its_value():
    grid = dict(n_rows=1, n_cols=3, topology="rectangular", periodic=False)
    sums = np.array([[2.0, 4.0], [0.0, 6.0], [0.0, 0.0]])
    counts = np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    codebook = np.full((3, 2), -1.0)
    # A bubble of width 0.5 is the identity: no smoothing between units.
    new = _smooth_statistics(sums, counts, codebook, grid, 0.5, "bubble")
    assert_array_equal(new, [[2.0, 4.0], [-1.0, 3.0], [-1.0, -1.0]])


def test_online_update_moves_only_observed_coordinates():
    codebook = np.zeros((2, 3))
    X = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    h = np.array([[1.0, 0.5], [1.0, 1.0]])
    _online_update(codebook, X, np.array([0, 0]), h, 1.0)
    assert_allclose(codebook, [[0.5, 0.0, 1.5], [0.25, 0.0, 0.75]])


def test_pca_init_missing_is_mean_imputed_pca():
    X, _ = _data(n_samples=200, n_features=5, seed=7)
    X_missing = _with_missing(X, 0.3)
    frame, _, _ = _frame_from_data(X_missing)
    coords = _unit_coordinates(3, 4, "rectangular")
    got = _pca_init(X_missing, coords, np.random.RandomState(0), frame=frame)
    # The frame's offset is the observed mean: mean imputation is exact there.
    mean = np.nanmean(X_missing, axis=0)
    imputed = np.where(np.isnan(X_missing), mean, X_missing)
    expected = _pca_init(imputed, coords, np.random.RandomState(0), frame=frame)
    assert_allclose(got, expected, atol=1e-12)
    assert_allclose(frame.offset / frame.scale, mean)


@pytest.mark.parametrize("init", ["pca", "random", "sample"])
def test_som_missing_every_init_gives_finite_codebook(init):
    X = _with_missing(_data(n_samples=100, seed=8)[0], 0.5)
    som = SelfOrganizingMap(3, 3, init=init, n_epochs=2, random_state=0).fit(X)
    assert np.isfinite(som.codebook_).all()


@pytest.mark.parametrize("algorithm", ["batch", "online"])
def test_som_missing_partial_fit(algorithm):
    X, _ = _data(n_samples=300, seed=9)
    X = _with_missing(X, 0.3)
    som = SelfOrganizingMap(3, 4, algorithm=algorithm, batch_size=4, random_state=0)
    for batch in np.array_split(X, 3):
        som.partial_fit(batch)
    assert som.n_iter_ == 3
    assert np.isfinite(som.codebook_).all()
    ref = _masked_sq_distances(X[200:], som.codebook_)
    assert som.quantization_error_ == pytest.approx(
        np.sqrt(ref.min(axis=1)).mean(), rel=1e-12
    )
    # A later batch may miss a feature entirely: that feature does not move.
    before = som.codebook_.copy()
    late = X[:50].copy()
    late[:, 0] = np.nan
    som.partial_fit(late)
    assert_array_equal(som.codebook_[:, 0], before[:, 0])


def test_som_impute_fills_from_bmu_prototype():
    X, _ = _data(n_samples=200, seed=10)
    X_missing = _with_missing(X, 0.3)
    som = SelfOrganizingMap(3, 4, random_state=0).fit(X_missing)
    filled = som._impute(X_missing)
    observed = ~np.isnan(X_missing)
    assert_array_equal(filled[observed], X_missing[observed])
    expected = som.codebook_[som.predict(X_missing)]
    assert_array_equal(filled[~observed], expected[~observed])


def test_som_missing_all_nan_row_warns_and_is_imputed_by_the_mean():
    X, _ = _data(n_samples=200, seed=11)
    X_missing = _with_missing(X, 0.2)
    X_missing[17] = np.nan
    with pytest.warns(UserWarning, match=r"no observed value .* row\(s\) \[17\]"):
        som = SelfOrganizingMap(3, 3, random_state=0).fit(X_missing)
    # It moves no prototype: the fit equals the fit without it.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        without = SelfOrganizingMap(3, 3, random_state=0).fit(
            np.delete(X_missing, 17, axis=0)
        )
    assert_allclose(som.codebook_, without.codebook_, rtol=1e-12, atol=1e-12)
    with pytest.warns(UserWarning, match=r"row\(s\) \[0\]"):
        unit = som.predict(np.full((1, X.shape[1]), np.nan))
    mean = np.nanmean(X_missing, axis=0)
    assert unit[0] == som.predict(mean[None])[0]


def test_som_missing_bad_inputs_raise_clear_errors():
    X, _ = _data(n_samples=50, seed=12)
    X_col = X.copy()
    X_col[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"no observed value in feature\(s\) \[2\]"):
        SelfOrganizingMap(2, 2).fit(X_col)
    with pytest.raises(ValueError, match=r"feature\(s\) \[2\]"):
        SelfOrganizingMap(2, 2).partial_fit(X_col)
    X_inf = X.copy()
    X_inf[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        SelfOrganizingMap(2, 2).fit(X_inf)
    som = SelfOrganizingMap(2, 2).fit(X)
    with pytest.raises(ValueError, match="infinity"):
        som.predict(X_inf)
    X_row = X.copy()
    X_row[4] = np.nan
    with pytest.raises(ValueError, match=r"row\(s\) \[4\]"):
        quantization_error(X_row, som.codebook_)


def test_som_missing_feature_names_in_error():
    pd = pytest.importorskip("pandas")
    X, _ = _data(n_samples=30, n_features=3, seed=13)
    X[:, 1] = np.nan
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"1 \('b'\)"):
        SelfOrganizingMap(2, 2).fit(frame)
