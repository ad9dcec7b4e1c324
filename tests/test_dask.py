"""Dask input: batch fit equal to the in-memory fit, lazy inference, reductions,
validation before the first epoch, a real LocalCluster and a lost worker."""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KernelDensity

import somgen._dask as dask_mod
from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen.metrics import hit_counts, quantization_error, topographic_error

RTOL = 1e-10


def _blobs(n_samples=3000, n_features=5, offset=10.0, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=4.0, size=(4, n_features))
    X = centres[rng.randint(4, size=n_samples)]
    X = X + rng.normal(size=(n_samples, n_features)) * np.linspace(2.0, 0.5, n_features)
    return (X + offset).astype(dtype)


def _with_missing(X, fraction=0.1, seed=0):
    rng = np.random.RandomState(seed)
    X = np.array(X, copy=True)
    mask = rng.uniform(size=X.shape) < fraction
    mask[np.arange(X.shape[0]), rng.randint(X.shape[1], size=X.shape[0])] = False
    X[mask] = np.nan
    return X


def _assert_same_fit(dasked, in_memory, rtol=RTOL):
    """The Dask fit has the in-memory fit's attributes, equal within rtol."""
    assert sorted(vars(dasked)) == sorted(vars(in_memory))
    assert dasked.codebook_.dtype == in_memory.codebook_.dtype
    scale = np.abs(in_memory.codebook_).max()
    assert_allclose(dasked.codebook_, in_memory.codebook_, rtol=0, atol=rtol * scale)
    assert_allclose(dasked.quantization_error_, in_memory.quantization_error_, rtol)
    assert dasked.topographic_error_ == pytest.approx(in_memory.topographic_error_)
    assert_array_equal(dasked.unit_coords_, in_memory.unit_coords_)
    assert_allclose(dasked._offset, in_memory._offset, rtol=rtol, atol=1e-300)
    assert dasked._scale == in_memory._scale
    assert_allclose(dasked._box, in_memory._box, rtol=rtol, atol=rtol * scale)
    assert dasked.n_iter_ == in_memory.n_iter_
    assert dasked.n_features_in_ == in_memory.n_features_in_
    assert dasked._fitted_grid == in_memory._fitted_grid


@pytest.fixture
def threads():
    with dask.config.set(scheduler="threads", num_workers=2):
        yield


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("computed before .compute()")


# -------------------------------------------------------------------- import
def test_dask_is_not_imported_by_the_core_install():
    code = (
        "import sys, numpy as np\n"
        "from somgen import SelfOrganizingMap, SOMGenerativeModel\n"
        "X = np.random.RandomState(0).normal(size=(60, 3))\n"
        "som = SelfOrganizingMap(2, 3, n_epochs=2, random_state=0).fit(X)\n"
        "som.predict(X); som.score(X)\n"
        "assert 'dask' not in sys.modules, 'dask imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dask_missing_array_module_names_the_extra(monkeypatch):
    X = da.from_array(_blobs(100), chunks=50)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match=r"somgen\[dask\]"):
        SelfOrganizingMap(2, 2).fit(X)


def test_dask_is_dask_collection():
    X = _blobs(10)
    assert not dask_mod._is_dask_collection(X)
    assert not dask_mod._is_dask_collection([[1.0, 2.0]])
    assert dask_mod._is_dask_collection(da.from_array(X))
    with pytest.raises(TypeError, match="dask.array.Array"):
        SelfOrganizingMap(2, 2).fit(dask.delayed(X))


# ---------------------------------------------------------------- batch fit
@pytest.mark.parametrize("init", ["pca", "random", "sample"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dask_fit_equals_in_memory_fit(threads, init, dtype):
    X = _blobs(dtype=dtype)
    params = dict(n_rows=5, n_cols=7, n_epochs=6, init=init, random_state=0)
    expected = SelfOrganizingMap(**params).fit(X)
    # Uneven row blocks, features split across column blocks (rechunked).
    X_dask = da.from_array(X, chunks=((700, 1000, 1, 1299), (2, 3)))
    got = SelfOrganizingMap(**params).fit(X_dask)
    _assert_same_fit(got, expected)
    # One block holds the in-memory chunk grid: the statistics are the same.
    one = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=-1))
    _assert_same_fit(one, expected)


@pytest.mark.parametrize(
    "params",
    [
        dict(topology="hexagonal", neighborhood="mexican_hat"),
        dict(periodic=True, neighborhood="bubble", decay="linear"),
        dict(init=np.linspace(-1.0, 1.0, 12 * 4).reshape(12, 4) + 10.0),
    ],
)
def test_dask_fit_equals_in_memory_fit_on_other_maps(threads, params):
    X = _blobs(n_features=4)
    params = dict(n_rows=4, n_cols=3, n_epochs=4, random_state=1, **params)
    expected = SelfOrganizingMap(**params).fit(X)
    got = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=1000))
    _assert_same_fit(got, expected)


def test_dask_fit_missing_values_and_extreme_scale(threads):
    # NaN in the data (per-feature counts), and data beyond 2**40: the frame
    # needs a second pass of scaled column sums.
    X = _with_missing(_blobs(2000, offset=3.0)) * 2.0**60
    params = dict(n_rows=4, n_cols=4, n_epochs=4, random_state=0)
    expected = SelfOrganizingMap(**params).fit(X)
    assert expected._scale != 1.0
    got = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=600))
    _assert_same_fit(got, expected)


def test_dask_fit_integer_data_become_float64(threads):
    X = np.round(_blobs(500)).astype(np.int64)
    params = dict(n_rows=3, n_cols=3, n_epochs=3, random_state=0)
    expected = SelfOrganizingMap(**params).fit(X)
    got = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=128))
    assert got.codebook_.dtype == np.float64
    _assert_same_fit(got, expected)


def test_dask_partial_fit_batch_equals_in_memory(threads):
    X = _blobs(2400)
    params = dict(n_rows=4, n_cols=5, n_epochs=3, random_state=0)
    expected, got = SelfOrganizingMap(**params), SelfOrganizingMap(**params)
    for part in (slice(0, 1200), slice(1200, 2400)):
        expected.partial_fit(X[part])
        got.partial_fit(da.from_array(X[part], chunks=500))
        _assert_same_fit(got, expected)
    # A Dask call continues an in-memory fit (and the other way round).
    expected.partial_fit(X[:700])
    got.partial_fit(X[:700])
    _assert_same_fit(got, expected)


def test_dask_fit_verbose_reports_every_epoch(threads, capsys):
    X = da.from_array(_blobs(300), chunks=100)
    SelfOrganizingMap(2, 2, n_epochs=3, verbose=1).fit(X)
    assert capsys.readouterr().out.count("[SelfOrganizingMap] epoch") == 3


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_dask_online_algorithm_is_in_memory_only(method):
    X = da.from_array(_blobs(100), chunks=50)
    som = SelfOrganizingMap(2, 2, algorithm="online")
    with pytest.raises(ValueError, match=r"in-memory only.*algorithm='batch'"):
        getattr(som, method)(X)
    assert not hasattr(som, "codebook_")


def test_dask_fit_reduction_is_identical_for_any_scheduler():
    X = da.from_array(_blobs(4000), chunks=300)  # 14 blocks: a two-level tree
    params = dict(n_rows=5, n_cols=5, n_epochs=3, random_state=0)
    fits = []
    for config in (
        dict(scheduler="synchronous"),
        dict(scheduler="threads", num_workers=1),
        dict(scheduler="threads", num_workers=4),
    ):
        with dask.config.set(**config):
            fits.append(SelfOrganizingMap(**params).fit(X))
    for other in fits[1:]:
        assert_array_equal(other.codebook_, fits[0].codebook_)
        assert other.quantization_error_ == fits[0].quantization_error_


# ---------------------------------------------------------------- validation
def _message(func):
    with pytest.raises(Exception) as info:
        func()
    return info.type, str(info.value)


@pytest.fixture
def no_epoch(monkeypatch):
    """Fail the test if an epoch starts."""

    def epoch(*args, **kwargs):
        raise AssertionError("an epoch started")

    monkeypatch.setattr(dask_mod, "_epoch", epoch)


@pytest.mark.parametrize(
    "make",
    [
        lambda X: np.where(np.arange(len(X))[:, None] == 1500, np.inf, X),
        lambda X: X[:0],
        lambda X: np.full_like(X, "a", dtype=object),
        lambda X: X.astype(np.complex128),
        lambda X: np.where(np.arange(X.shape[1]) == 2, np.nan, X),
    ],
    ids=["inf", "empty", "strings", "complex", "unobserved-feature"],
)
def test_dask_invalid_input_fails_before_the_first_epoch(threads, no_epoch, make):
    X = make(_blobs(2000))
    expected = _message(lambda: SelfOrganizingMap(2, 2).fit(X))
    som = SelfOrganizingMap(2, 2)
    got = _message(lambda: som.fit(da.from_array(X, chunks=500)))
    if X.dtype.kind == "c":  # the message shows the first block, not all of X
        got, expected = (got[0], got[1][:26]), (expected[0], expected[1][:26])
    assert got == expected
    assert not hasattr(som, "n_features_in_")


def test_dask_feature_count_is_checked_like_in_memory(threads, no_epoch):
    X = _blobs(400)
    som = SelfOrganizingMap(2, 2, n_epochs=2).fit(X)
    expected = _message(lambda: som.partial_fit(X[:, :3]))
    assert _message(lambda: som.partial_fit(da.from_array(X[:, :3]))) == expected
    for method in ("predict", "transform", "score"):
        expected = _message(lambda m=method: getattr(som, m)(X[:, :3]))
        assert _message(lambda m=method: getattr(som, m)(da.from_array(X[:, :3]))) == (
            expected
        )


def test_dask_checks_without_a_data_pass_fail_before_computing():
    X = da.from_array(_blobs(400), chunks=100)
    fitted = SelfOrganizingMap(2, 2, n_epochs=1).fit(_blobs(50)[:, :3])
    with dask.config.set(scheduler=_raising_scheduler):
        with pytest.raises(ValueError, match="sigma_start=0.1 must be greater"):
            SelfOrganizingMap(2, 2, sigma_start=0.1, sigma_end=0.5).fit(X)
        with pytest.raises(ValueError, match="init has shape"):
            SelfOrganizingMap(2, 2, init=np.zeros((4, 3))).fit(X)
        with pytest.raises(ValueError, match="X has 5 features, but"):
            fitted.partial_fit(X)


def test_dask_rows_without_observed_values_warn_with_global_rows(threads):
    X = _with_missing(_blobs(1000))
    X[[3, 777]] = np.nan
    params = dict(n_rows=3, n_cols=3, n_epochs=2, random_state=0)
    with pytest.warns(UserWarning) as expected:
        reference = SelfOrganizingMap(**params).fit(X)
    with pytest.warns(UserWarning) as got:
        fitted = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=300))
    assert [str(w.message) for w in got] == [str(w.message) for w in expected]
    assert got[0].filename == __file__
    _assert_same_fit(fitted, reference)


def test_dask_more_units_than_samples_warns_like_in_memory(threads):
    X = _blobs(10)
    with pytest.warns(UserWarning, match="more units") as expected:
        SelfOrganizingMap(4, 4, n_epochs=1).fit(X)
    with pytest.warns(UserWarning, match="more units") as got:
        SelfOrganizingMap(4, 4, n_epochs=1).fit(da.from_array(X, chunks=3))
    assert str(got[0].message) == str(expected[0].message)
    assert got[0].filename == __file__


def test_dask_failed_fit_leaves_a_fitted_map_unchanged(threads):
    X = _blobs(300)
    som = SelfOrganizingMap(2, 2, n_epochs=2, random_state=0).fit(X)
    before = pickle.dumps(som)
    bad = X.copy()
    bad[5, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        som.fit(da.from_array(bad, chunks=100))
    assert pickle.dumps(som) == before


# ----------------------------------------------------------- lazy inference
@pytest.fixture(scope="module")
def fitted():
    X = _blobs(1500, n_features=4)
    som = SelfOrganizingMap(4, 4, n_epochs=4, random_state=0).fit(X)
    model = SOMGenerativeModel(som=SelfOrganizingMap(4, 4, random_state=0)).fit(X)
    return X, som, model


LAZY = [
    ("som", "predict", (), np.int64),
    ("som", "transform", (2,), "input"),
    ("model", "score_samples", (), np.float64),
    ("model", "predict_proba", (16,), np.float64),
    ("model", "predict", (), np.int64),
    ("model", "impute", (4,), np.float64),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("owner, method, tail, out_dtype", LAZY)
def test_dask_inference_is_lazy_with_right_chunks(
    fitted, owner, method, tail, out_dtype, dtype
):
    X, som, model = fitted
    estimator = som if owner == "som" else model
    X = _with_missing(X) if method == "impute" else X.astype(dtype)
    X_dask = da.from_array(X, chunks=((400, 400, 700), (1, 3)))
    with dask.config.set(scheduler=_raising_scheduler):
        lazy = getattr(estimator, method)(X_dask)
    assert isinstance(lazy, da.Array)
    assert lazy.chunks == ((400, 400, 700),) + tuple((t,) for t in tail)
    expected = getattr(estimator, method)(X)
    assert lazy.dtype == expected.dtype
    if out_dtype == "input":
        assert lazy.dtype == np.dtype(dtype)
    with dask.config.set(scheduler="threads"):
        computed = lazy.compute()
    assert computed.dtype == expected.dtype
    assert_allclose(computed, expected, rtol=1e-12)


def test_dask_inference_snapshots_the_fitted_model(fitted):
    X, som, _ = fitted
    som = pickle.loads(pickle.dumps(som))
    lazy = som.predict(da.from_array(X, chunks=500))
    expected = som.predict(X)
    som.fit(X[::-1] * 2.0)  # refitting does not change the graph built before
    with dask.config.set(scheduler="threads"):
        assert_array_equal(lazy.compute(), expected)


def test_dask_scores_and_metrics_reduce(threads, fitted):
    X, som, model = fitted
    X_dask = da.from_array(X, chunks=333)
    grid = dict(n_rows=4, n_cols=4)
    assert som.score(X_dask) == pytest.approx(som.score(X), rel=1e-12)
    assert model.score(X_dask) == pytest.approx(model.score(X), rel=1e-12)
    cb = som.codebook_
    assert quantization_error(X_dask, cb) == pytest.approx(
        quantization_error(X, cb), rel=1e-12
    )
    assert topographic_error(X_dask, cb, **grid) == topographic_error(X, cb, **grid)
    assert_array_equal(hit_counts(X_dask, cb, **grid), hit_counts(X, cb, **grid))
    # The metrics' messages are the in-memory ones, with global row indices.
    X_nan = X.copy()
    X_nan[[10, 900]] = np.nan
    expected = _message(lambda: quantization_error(X_nan, cb))
    assert _message(lambda: quantization_error(da.from_array(X_nan, 333), cb)) == (
        expected
    )
    expected = _message(lambda: hit_counts(X[:, :3], cb, **grid))
    assert _message(lambda: hit_counts(da.from_array(X[:, :3]), cb, **grid)) == (
        expected
    )


def test_dask_fitted_map_pickles_without_dask_objects(threads):
    X = _blobs(1000)
    som = SelfOrganizingMap(3, 4, n_epochs=3, random_state=0).fit(
        da.from_array(X, chunks=256)
    )
    for name, value in vars(som).items():
        assert "dask" not in type(value).__module__, name
    restored = pickle.loads(pickle.dumps(som))
    assert_array_equal(restored.codebook_, som.codebook_)
    assert_array_equal(restored.predict(X), som.predict(X))
    # A map fitted on Dask serves the generative model fitted in memory.
    model = SOMGenerativeModel(som=FrozenEstimator(restored), random_state=0).fit(X)
    assert np.isfinite(model.score(da.from_array(X, chunks=256)))


# --------------------------------------------------------- generative model
GENERATIVE_ARRAYS = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_cholesky_",
    "lower_bounds_",
)


def _assert_same_generative_fit(dasked, in_memory, rtol=RTOL):
    """The Dask fit of the generative model has the in-memory fit's attributes,
    equal within rtol (relative to each attribute's scale)."""
    assert sorted(vars(dasked)) == sorted(vars(in_memory))
    for name in GENERATIVE_ARRAYS:
        got, expected = getattr(dasked, name), getattr(in_memory, name)
        assert got.shape == expected.shape, name
        assert got.dtype == expected.dtype, name
        scale = np.abs(expected).max() if expected.size else 0.0
        assert_allclose(got, expected, rtol=0, atol=rtol * scale, err_msg=name)
    assert dasked.lower_bound_ == pytest.approx(in_memory.lower_bound_, rel=rtol)
    assert dasked.n_iter_ == in_memory.n_iter_
    assert dasked.converged_ == in_memory.converged_
    assert dasked.topographic_error_ == in_memory.topographic_error_
    assert dasked.latent_cv_results_ is None
    assert dasked.n_features_in_ == in_memory.n_features_in_
    if hasattr(in_memory, "feature_names_in_"):
        assert_array_equal(dasked.feature_names_in_, in_memory.feature_names_in_)
    _assert_same_fit(dasked.som_, in_memory.som_, rtol)


@pytest.mark.parametrize("som", [None, "3x4"])
@pytest.mark.parametrize("mean_stiffness", [1.0, np.inf, 0.0])
@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_dask_generative_fit_equals_in_memory_fit(
    threads, covariance_type, mean_stiffness, som
):
    X = _blobs(700, n_features=3)
    params = dict(
        som=None if som is None else SelfOrganizingMap(3, 4, random_state=0),
        covariance_type=covariance_type,
        mean_stiffness=mean_stiffness,
        random_state=0,
    )
    expected = SOMGenerativeModel(**params).fit(X)
    # 10 uneven blocks: a two-level reduction tree.
    got = SOMGenerativeModel(**params).fit(da.from_array(X, chunks=75))
    assert got.n_iter_ > 1
    _assert_same_generative_fit(got, expected)


@pytest.mark.parametrize(
    "params",
    [
        dict(refine=None),
        dict(latent_density=KernelDensity(bandwidth=1.0), covariance_type="full"),
        dict(weight_concentration=0.0, covariance_shrinkage=3.0, max_iter=3),
        dict(
            som=FrozenEstimator(
                SelfOrganizingMap(3, 5, random_state=0).fit(_blobs(600, n_features=4))
            )
        ),
    ],
    ids=["refine-none", "latent-density", "no-concentration", "frozen-map"],
)
def test_dask_generative_fit_equals_in_memory_other_options(threads, params):
    X = _blobs(600, n_features=4)
    som = SelfOrganizingMap(4, 4, random_state=0)
    params = {"som": som, "random_state": 3, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = SOMGenerativeModel(**params).fit(X)
        got = SOMGenerativeModel(**params).fit(da.from_array(X, chunks=128))
    _assert_same_generative_fit(got, expected)
    if isinstance(params["som"], FrozenEstimator):
        # The frozen map is used as it is, never refitted.
        assert_array_equal(got.som_.codebook_, params["som"].codebook_)
        assert got.means_.shape == (15, 4)
    if params.get("latent_density") is not None:
        # The same dequantization noise: the same fitted latent density.
        assert_array_equal(
            got.latent_density_.tree_.data, expected.latent_density_.tree_.data
        )


def test_dask_generative_fit_float32_frame_empty_blocks_and_scott_target(threads):
    # float32 blocks are validated to float64, as in memory.
    X = _blobs(500, n_features=3, dtype=np.float32)
    params = dict(som=SelfOrganizingMap(3, 3, random_state=0), random_state=0)
    expected = SOMGenerativeModel(**params).fit(X)
    got = SOMGenerativeModel(**params).fit(da.from_array(X, chunks=128))
    _assert_same_generative_fit(got, expected)
    # A DataFrame: the feature names are the model's, not the map's.
    frame = pd.DataFrame(_blobs(600, n_features=3), columns=["a", "b", "c"])
    expected = SOMGenerativeModel(**params).fit(frame)
    got = SOMGenerativeModel(**params).fit(_DaskFrameStandIn(frame, 250))
    _assert_same_generative_fit(got, expected)
    assert_array_equal(got.feature_names_in_, ["a", "b", "c"])
    # Empty blocks hold no sample and add nothing.
    X = _blobs(700, n_features=3)
    for extra in (dict(), dict(refine=None), dict(latent_density=KernelDensity())):
        params = dict(
            som=SelfOrganizingMap(3, 3, random_state=0), random_state=0, **extra
        )
        expected = SOMGenerativeModel(**params).fit(X)
        got = SOMGenerativeModel(**params).fit(
            da.from_array(X, chunks=((0, 300, 0, 400), (3,)))
        )
        _assert_same_generative_fit(got, expected)
    # As many occupied units as samples: the pooled target falls back on
    # Scott's rule (a second pass around the data's mean).
    X = np.array([[i, 3.0 * (i % 3)] for i in range(8)]) + np.arange(16).reshape(8, 2)
    params = dict(som=SelfOrganizingMap(3, 4, random_state=0), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = SOMGenerativeModel(**params).fit(X)
        got = SOMGenerativeModel(**params).fit(da.from_array(X, chunks=3))
    assert len(np.unique(expected.som_.predict(X))) == len(X)  # no dof left
    _assert_same_generative_fit(got, expected)


def test_dask_generative_fit_is_identical_for_any_scheduler():
    X = da.from_array(_blobs(1500, n_features=3), chunks=100)  # 15 blocks
    params = dict(som=SelfOrganizingMap(4, 4, random_state=0), random_state=0)
    fits = []
    for config in (
        dict(scheduler="synchronous"),
        dict(scheduler="threads", num_workers=1),
        dict(scheduler="threads", num_workers=4),
    ):
        with dask.config.set(**config):
            fits.append(SOMGenerativeModel(**params).fit(X))
    for other in fits[1:]:
        for name in GENERATIVE_ARRAYS:
            assert_array_equal(getattr(other, name), getattr(fits[0], name))
        assert other.lower_bound_ == fits[0].lower_bound_


def test_dask_generative_fit_latent_auto_is_in_memory_only():
    X = da.from_array(_blobs(400), chunks=100)
    model = SOMGenerativeModel(latent_density="auto")
    with dask.config.set(scheduler=_raising_scheduler):
        with pytest.raises(ValueError, match="latent_density='auto' is in-memory"):
            model.fit(X)
    assert not hasattr(model, "means_")


@pytest.mark.parametrize(
    "make",
    [
        lambda X: np.where(np.arange(len(X))[:, None] == 350, np.inf, X),
        lambda X: X[:0],
        lambda X: np.full_like(X, "a", dtype=object),
    ],
    ids=["inf", "empty", "strings"],
)
def test_dask_generative_invalid_input_fails_like_in_memory(threads, no_epoch, make):
    X = make(_blobs(500))
    expected = _message(lambda: SOMGenerativeModel().fit(X))
    model = SOMGenerativeModel()
    assert _message(lambda: model.fit(da.from_array(X, chunks=100))) == expected
    assert not hasattr(model, "n_features_in_")


def test_dask_generative_fit_with_nan_says_to_fit_in_memory(threads, no_epoch):
    # In memory, NaN are missing values (EM with missing data); the dask fit
    # does not implement that and says so instead of fitting wrong statistics.
    X = _blobs(500)
    X[350, 1] = np.nan
    assert np.isfinite(SOMGenerativeModel(random_state=0).fit(X).lower_bound_)
    model = SOMGenerativeModel()
    with pytest.raises(ValueError, match="fits dask data without missing values"):
        model.fit(da.from_array(X, chunks=100))
    assert not hasattr(model, "n_features_in_")


def test_dask_generative_failed_fit_leaves_a_fitted_model_unchanged(threads):
    X = _blobs(400, n_features=3)
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(X)
    before = pickle.dumps(model)
    bad = _blobs(400, n_features=4)
    bad[390, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.fit(da.from_array(bad, chunks=100))
    assert pickle.dumps(model) == before
    # A failure inside EM (after the map is fitted) restores it too.
    with dask.config.set(scheduler="threads"):
        original = dask_mod._block_e_step
        try:
            dask_mod._block_e_step = _failing
            with pytest.raises(RuntimeError, match="lost"):
                model.fit(da.from_array(_blobs(300, n_features=4), chunks=100))
        finally:
            dask_mod._block_e_step = original
    assert pickle.dumps(model) == before


def _failing(*args, **kwargs):
    raise RuntimeError("lost")


def test_dask_generative_model_pickles_without_dask_objects(threads):
    X = _blobs(600, n_features=3)
    model = SOMGenerativeModel(random_state=0).fit(da.from_array(X, chunks=150))
    for name, value in [*vars(model).items(), *vars(model.som_).items()]:
        assert "dask" not in type(value).__module__, name
    restored = pickle.loads(pickle.dumps(model))
    for name in GENERATIVE_ARRAYS:
        assert_array_equal(getattr(restored, name), getattr(model, name))
    assert_array_equal(restored.score_samples(X), model.score_samples(X))


# ------------------------------------------------------------- LocalCluster
@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cluster = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",
        )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_dask_local_cluster_fit_equals_in_memory_and_threads(client):
    X = _with_missing(_blobs(4000), fraction=0.05)
    X_dask = da.from_array(X, chunks=350)
    params = dict(n_rows=5, n_cols=6, n_epochs=4, random_state=0)
    expected = SelfOrganizingMap(**params).fit(X)
    got = SelfOrganizingMap(**params).fit(X_dask)  # the client is the default
    _assert_same_fit(got, expected)
    with dask.config.set(scheduler="synchronous"):
        single = SelfOrganizingMap(**params).fit(X_dask)
    # Two worker processes and one thread: the same fixed reduction tree.
    assert_array_equal(got.codebook_, single.codebook_)
    assert got.quantization_error_ == single.quantization_error_
    lazy = got.transform(X_dask)
    assert_array_equal(lazy.compute(), expected.transform(X))
    assert got.score(X_dask) == pytest.approx(expected.score(X), rel=1e-10)


@pytest.mark.slow
def test_dask_local_cluster_generative_fit_equals_in_memory_and_threads(client):
    X = _blobs(3000, n_features=4)
    X_dask = da.from_array(X, chunks=250)
    params = dict(covariance_type="full", random_state=0)
    expected = SOMGenerativeModel(**params).fit(X)
    got = SOMGenerativeModel(**params).fit(X_dask)  # the client is the default
    _assert_same_generative_fit(got, expected)
    with dask.config.set(scheduler="synchronous"):
        single = SOMGenerativeModel(**params).fit(X_dask)
    for name in GENERATIVE_ARRAYS:
        assert_array_equal(getattr(got, name), getattr(single, name))
    assert got.lower_bound_ == single.lower_bound_


def _slow_copy(block):
    time.sleep(0.03)
    return block.copy()


@pytest.mark.slow
def test_dask_fit_survives_a_lost_worker(client, monkeypatch):
    X = _blobs(3000)
    # 20 blocks that take time to produce: the fit lasts about two seconds.
    X_dask = da.from_array(X, chunks=150).map_blocks(_slow_copy, dtype=X.dtype)
    params = dict(n_rows=4, n_cols=4, n_epochs=5, random_state=0)
    with dask.config.set(scheduler="threads", num_workers=8):
        reference = SelfOrganizingMap(**params).fit(X_dask)

    started = threading.Event()
    epoch = dask_mod._epoch

    def watched_epoch(*args, **kwargs):
        started.set()
        return epoch(*args, **kwargs)

    monkeypatch.setattr(dask_mod, "_epoch", watched_epoch)
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]

    def kill():
        started.wait(30)
        time.sleep(0.2)  # inside the first epoch's tasks
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    got = SelfOrganizingMap(**params).fit(X_dask)
    killer.join()
    pids = client.run(os.getpid).values()
    assert pid not in pids  # the worker process did die mid-fit
    assert_array_equal(got.codebook_, reference.codebook_)
    assert got.quantization_error_ == reference.quantization_error_
    client.wait_for_workers(2, timeout=30)


class _DaskFrameStandIn:
    """The part of the dask DataFrame API that somgen reads: ``_meta``,
    ``to_dask_array``, ``partitions``, with partitions of a chosen object dtype
    (the real dask.dataframe converts object columns to pyarrow strings)."""

    __module__ = "dask.dataframe.dask_expr._collection"
    ndim = 2

    def __init__(self, frame, rows_per_partition):
        self._meta = frame.iloc[:0]
        self._frame = frame
        self._array = da.from_array(frame.to_numpy(), chunks=(rows_per_partition, -1))

    def __dask_graph__(self):
        return self._array.__dask_graph__()

    def to_dask_array(self, lengths=False):
        return self._array

    @property
    def partitions(self):
        frame, size = self._frame, self._array.chunks[0][0]
        return [
            dask.delayed(frame.iloc[i : i + size]) for i in range(0, len(frame), size)
        ]


def test_dask_dataframe_feature_names(threads):
    frame = pd.DataFrame(_blobs(1200, n_features=3), columns=["a", "b", "c"])
    params = dict(n_rows=3, n_cols=3, n_epochs=3, random_state=0)
    expected = SelfOrganizingMap(**params).fit(frame)
    som = SelfOrganizingMap(**params).fit(_DaskFrameStandIn(frame, 500))
    _assert_same_fit(som, expected)
    assert_array_equal(som.feature_names_in_, ["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named blocks: no warning per block
        units = som.predict(_DaskFrameStandIn(frame, 500)).compute()
    assert_array_equal(units, expected.predict(frame))
    renamed = frame.rename(columns={"c": "z"})
    expected = _message(lambda: som.predict(renamed))
    assert _message(lambda: som.predict(_DaskFrameStandIn(renamed, 500))) == expected
    # Non-numeric columns: the in-memory message, from the first partition.
    text = frame.astype({"b": object})
    text.loc[3, "b"] = "spam"
    expected = _message(lambda: SelfOrganizingMap(**params).fit(text))
    got = _message(
        lambda: SelfOrganizingMap(**params).fit(_DaskFrameStandIn(text, 500))
    )
    assert got == expected


def test_dask_dataframe_from_pandas_fits_like_in_memory(threads):
    """A real dask DataFrame (dask.dataframe, from the test extra)."""
    import dask.dataframe as dd

    frame = pd.DataFrame(_blobs(1200, n_features=3), columns=["a", "b", "c"])
    params = dict(n_rows=3, n_cols=3, n_epochs=3, random_state=0)
    expected = SelfOrganizingMap(**params).fit(frame)
    data = dd.from_pandas(frame, npartitions=3)
    som = SelfOrganizingMap(**params).fit(data)
    _assert_same_fit(som, expected)
    assert_array_equal(som.feature_names_in_, ["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named blocks: no warning per block
        units = som.predict(data).compute()
    assert_array_equal(units, expected.predict(frame))
    model = SOMGenerativeModel(SelfOrganizingMap(2, 3), random_state=0)
    reference = clone(model).fit(frame)
    fitted = model.fit(data)
    assert_allclose(fitted.means_, reference.means_, rtol=1e-10, atol=1e-12)
    assert_allclose(
        fitted.score_samples(data).compute(),
        reference.score_samples(frame),
        rtol=1e-10,
    )


def test_dask_lazy_methods_accept_empty_blocks():
    """A dask array may hold empty row blocks (e.g. after filtering): the lazy
    methods give empty outputs there and the same values elsewhere."""
    X = np.random.RandomState(0).normal(size=(60, 3))
    som = SelfOrganizingMap(3, 3, random_state=0).fit(X)
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(X)
    blocks = da.from_array(X, chunks=((25, 0, 35), (3,)))
    assert blocks.chunks[0] == (25, 0, 35)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(som.predict(blocks).compute(), som.predict(X))
        np.testing.assert_array_equal(som.transform(blocks).compute(), som.transform(X))
        np.testing.assert_allclose(
            model.score_samples(blocks).compute(), model.score_samples(X), rtol=1e-12
        )
        np.testing.assert_allclose(
            model.predict_proba(blocks).compute(), model.predict_proba(X), rtol=1e-12
        )
