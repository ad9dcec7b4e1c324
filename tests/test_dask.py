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


def test_dask_generative_fit_asks_for_memory(fitted):
    X, _, _ = fitted
    model = SOMGenerativeModel()
    with pytest.raises(ValueError, match=r"in memory \(X.compute\(\)"):
        model.fit(da.from_array(X))
    assert not hasattr(model, "means_")


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
    from sklearn.frozen import FrozenEstimator

    model = SOMGenerativeModel(som=FrozenEstimator(restored), random_state=0).fit(X)
    assert np.isfinite(model.score(da.from_array(X, chunks=256)))


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
    ``to_dask_array``, ``partitions`` (dask.dataframe needs pyarrow, which the
    test extra does not install)."""

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
