"""SelfOrganizingMap at the edges: float32 exactness, far offsets, values near
the float limits, schedule extremes, memory, and parameter changes."""

import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap
from somgen.utils._sklearn_compat import InvalidParameterError


def _brute_force_bmus(X, codebook):
    X64 = np.asarray(X, dtype=np.float64)
    C64 = np.asarray(codebook, dtype=np.float64)
    d2 = ((X64[:, None, :] - C64[None]) ** 2).sum(axis=2)
    return d2.argmin(axis=1), np.sqrt(d2.min(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize(
    "n_samples, n_features, side, n_epochs, seed",
    [(50_000, 32, 20, 10, 0), (60_000, 16, 30, 5, 1)],
)
def test_som_float32_random_init_linear_decay_does_not_collapse(
    n_samples, n_features, side, n_epochs, seed
):
    # The workloads (the second with fewer rows): float32 collapsed the
    # map (QE 3.89 / TE 0.67 vs 1.01 / 0.03 in float64) because after a wide
    # first epoch many prototypes were float32 duplicates and the float32
    # ranking picked 17 distinct winners where exact distances give 204.
    X, _ = make_blobs(n_samples, n_features, centers=10, random_state=seed)
    X = StandardScaler().fit_transform(X)
    params = dict(init="random", decay="linear", n_epochs=n_epochs, random_state=seed)
    som64 = SelfOrganizingMap(side, side, **params).fit(X)
    som32 = SelfOrganizingMap(side, side, **params).fit(X.astype(np.float32))
    assert som32.codebook_.dtype == np.float32
    assert som32.quantization_error_ == pytest.approx(
        som64.quantization_error_, rel=0.02
    )
    # The collapse gave TE 0.67; a folded but sound map stays well below. (TE of
    # a random-init map after few epochs varies with rounding in either dtype.)
    assert som32.topographic_error_ < 0.25
    assert som64.topographic_error_ < 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [1e3, 1e4])
def test_som_predict_is_exact_on_clusters_far_from_the_mean(dtype, offset):
    # Two unit-spread clusters at +-offset: float32 picked 26-28 % wrong BMUs at
    # 1e3 and 96 % at 1e4 (QE 0.330 vs 0.297).
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.normal(size=(2000, 2)) + offset, rng.normal(size=(2000, 2)) - offset]
    ).astype(dtype)
    som = SelfOrganizingMap(10, 10, random_state=0).fit(X)
    expected, dist = _brute_force_bmus(X, som.codebook_)
    assert_array_equal(som.predict(X), expected)
    assert som.quantization_error_ == pytest.approx(dist.mean(), rel=1e-12)
    assert som.score(X) == pytest.approx(-dist.mean(), rel=1e-12)


@pytest.mark.parametrize("algorithm", ["batch", "online"])
@pytest.mark.parametrize("exponent", [600, -600, 1000, -1000])
def test_som_fit_is_scale_equivariant_near_the_float_limits(algorithm, exponent):
    # Data >= ~1.3e154 gave LinAlgError (batch) or a NaN codebook (online);
    # data <= ~1e-154 underflowed (one unit, QE 0.0).
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3)) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]
    params = dict(n_epochs=3, algorithm=algorithm, batch_size=16, random_state=0)
    reference = SelfOrganizingMap(4, 5, **params).fit(X)
    scale = 2.0**exponent
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        som = SelfOrganizingMap(4, 5, **params).fit(X * scale)
        units = som.predict(X * scale)
    assert np.all(np.isfinite(som.codebook_))
    assert_allclose(som.codebook_ / scale, reference.codebook_, rtol=1e-9, atol=0)
    assert som.quantization_error_ / scale == pytest.approx(
        reference.quantization_error_, rel=1e-9
    )
    assert_array_equal(units, reference.predict(X))


def test_som_float32_data_near_float32_limits():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(400, 2))
    reference = SelfOrganizingMap(3, 3, random_state=0).fit(X.astype(np.float32))
    for scale in (2.0**100, 2.0**-100):
        X32 = (X * scale).astype(np.float32)
        som = SelfOrganizingMap(3, 3, random_state=0).fit(X32)
        assert np.all(np.isfinite(som.codebook_))
        assert_allclose(som.codebook_ / scale, reference.codebook_, rtol=1e-4)
        assert som.quantization_error_ > 0


def test_som_predict_far_outliers_is_finite_and_sensible():
    X = np.random.RandomState(2).normal(size=(200, 2))
    som = SelfOrganizingMap(4, 4, random_state=0).fit(X)
    big = np.finfo(np.float64).max / 4
    outliers = np.array([[1e300, 1e300], [-big, -big], [big, -big]])
    units = som.predict(outliers)
    # The closest prototype of a far point maximises its projection on the
    # point's direction.
    codebook = som.codebook_
    for unit, direction in zip(units, np.sign(outliers), strict=True):
        projection = codebook @ direction
        assert projection[unit] == projection.max()
    assert np.isinf(som.score(outliers)) or som.score(outliers) < -1e299
    assert np.all(np.isfinite(som.transform(outliers)))


@pytest.mark.parametrize(
    "params",
    [
        dict(sigma_start=1e300),
        dict(sigma_end=1e-200),
        dict(sigma_start=1e300, sigma_end=1e-200, decay="inverse"),
        dict(algorithm="online", learning_rate_end=1e-320, decay="inverse"),
        dict(algorithm="online", sigma_start=1e300, sigma_end=1e-200),
    ],
)
def test_som_schedule_extremes_train_a_finite_map(params):
    # sigma_start=1e300 raised OverflowError, sigma_end=1e-200 gave NaN
    # prototypes and learning_rate_end=1e-320 (inverse) an untrained codebook.
    X = np.random.RandomState(3).normal(size=(300, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        som = SelfOrganizingMap(5, 5, n_epochs=4, random_state=0, **params).fit(X)
    assert np.all(np.isfinite(som.codebook_))
    if params.get("sigma_start") is None:
        # Trained: far better than the mean alone. (With sigma_start=1e300 the
        # first epochs put every prototype on the mean, as asked.)
        spread = np.linalg.norm(X - X.mean(axis=0), axis=1).mean()
        assert som.quantization_error_ < 0.9 * spread


def test_som_n_jobs_zero_is_rejected():
    X = np.random.RandomState(4).normal(size=(50, 2))
    with pytest.raises(InvalidParameterError, match="n_jobs"):
        SelfOrganizingMap(3, 3, n_jobs=0).fit(X)


@pytest.mark.parametrize(
    "change",
    [
        dict(n_rows=7),
        dict(n_cols=2),
        dict(topology="hexagonal"),
        dict(periodic=True),
    ],
)
def test_som_partial_fit_after_grid_change_raises(change):
    # set_params(n_rows=7) then partial_fit trained a 36-unit codebook labelled
    # 7x6, or raised IndexError.
    X = np.random.RandomState(5).normal(size=(200, 3))
    som = SelfOrganizingMap(6, 6, random_state=0).fit(X)
    codebook = som.codebook_.copy()
    som.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"grid of this fitted map changed.*{name}"):
        som.partial_fit(X)
    assert_array_equal(som.codebook_, codebook)
    # fit starts over on the new grid.
    som.fit(X)
    assert som.codebook_.shape[0] == som.n_rows * som.n_cols


def test_som_warns_when_units_outnumber_samples():
    X = np.random.RandomState(6).normal(size=(20, 2))
    with pytest.warns(UserWarning, match=r"more units \(100\) than training samples"):
        SelfOrganizingMap(10, 10).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SelfOrganizingMap(4, 5).fit(X)


def test_som_online_verbose_reports_a_finite_error(capsys):
    X = np.random.RandomState(7).normal(size=(100, 2))
    SelfOrganizingMap(3, 3, algorithm="online", n_epochs=2, verbose=1).fit(X)
    out = capsys.readouterr().out
    assert "nan" not in out
    values = [float(line.split("rms_qe=")[1].split()[0]) for line in out.splitlines()]
    assert len(values) == 2 and all(0 < v < 2 for v in values)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_som_memory_is_input_plus_chunks(dtype, monkeypatch):
    # fit, predict, transform and score copied all of X to centre it
    # (+520 MiB for a 488 MiB input). With small chunks, what remains is
    # O(n_samples) (the labels), far below a copy of X.
    monkeypatch.setattr("somgen._parallel._CHUNK_ELEMENTS", 1 << 16)
    X = np.random.RandomState(8).normal(size=(100_000, 64)).astype(dtype)
    som = SelfOrganizingMap(8, 8, n_epochs=2, n_jobs=1, random_state=0)
    calls = {
        "fit": lambda: som.fit(X),
        "partial_fit": lambda: som.partial_fit(X),
        "predict": lambda: som.predict(X),
        "transform": lambda: som.transform(X),
        "score": lambda: som.score(X),
    }
    for name, call in calls.items():
        tracemalloc.start()
        try:
            call()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 0.4 * X.nbytes, (name, peak / X.nbytes)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_som_inverse_transform_huge_coordinates_clamp_or_wrap(topology, periodic):
    # inverse_transform([[1e19, 1e19]]) on a hexagonal map returned unit 0
    # (int64 overflow).
    X = np.random.RandomState(9).normal(size=(300, 3))
    som = SelfOrganizingMap(
        6, 6, topology=topology, periodic=periodic, random_state=0
    ).fit(X)
    out = som.inverse_transform([[1e19, 1e19], [-1e300, 1e300]])
    assert np.all(np.isfinite(out))
    if not periodic:
        # Clamped to the top-right and top-left corner units of the grid.
        assert_allclose(out[0], som.codebook_[-1])
        assert_allclose(out[1], som.codebook_[-6])


def test_som_inverse_transform_uses_the_fitted_grid_after_set_params():
    X = np.random.RandomState(10).normal(size=(300, 3))
    som = SelfOrganizingMap(6, 6, random_state=0).fit(X)
    expected = som.inverse_transform([[5.0, 5.0], [2.5, 1.0]])
    som.set_params(n_rows=7, n_cols=2)
    assert_allclose(som.inverse_transform([[5.0, 5.0], [2.5, 1.0]]), expected)
    assert_allclose(expected[0], som.codebook_[35])


def test_som_big_map_smoothing_never_forms_the_unit_by_unit_matrix():
    # Smoothing cost and memory grew as n_units^2 (a 200x200 map on 10 samples
    # took ~50 s per epoch, by blocks of a 40000-column neighbourhood matrix).
    X = np.random.RandomState(11).normal(size=(10, 3))
    som = SelfOrganizingMap(200, 200, n_epochs=2, random_state=0)
    tracemalloc.start()
    try:
        with pytest.warns(UserWarning, match="more units"):
            som.fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n_units = 200 * 200
    # A few (n_units, n_features + 1) arrays, far from one (n_units, n_units) block
    # row of 100 units (32 MB).
    assert peak < 100 * n_units * 8 / 2, peak
    assert np.all(np.isfinite(som.codebook_))
