"""SelfOrganizingMap with n_rows="auto" / n_cols="auto": grid sizes resolved
from the training data into n_rows_ and n_cols_."""

import io
import pickle
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.preprocessing import StandardScaler

import somgen._som as som_module
from somgen import SelfOrganizingMap
from somgen._initialization import _data_sized_grid, _data_sized_units, _grid_shape
from somgen._som import _MAX_AUTO_UNITS, _resolve_grid_shape


@pytest.fixture(scope="module")
def iris():
    X, _ = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X)


@pytest.fixture(scope="module")
def digits():
    X, _ = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X)


def _stretched(n_samples, seed=0):
    """Gaussian data with principal spreads 4, 1 and 0.5 (an elongated grid)."""
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n_samples, 3)) * [4.0, 1.0, 0.5] + 10.0


def _with_missing(X, fraction, seed=0):
    """``X`` with a ``fraction`` of NaN, one observed value left in every row."""
    rng = np.random.RandomState(seed)
    mask = rng.uniform(size=X.shape) < fraction
    mask[np.arange(X.shape[0]), rng.randint(X.shape[1], size=X.shape[0])] = False
    return np.where(mask, np.nan, X)


def _resolve(n_rows, n_cols, n_samples, grid=None, topology="rectangular", **kw):
    """``_resolve_grid_shape`` with a data-sized grid given as a pair."""

    def sized_grid():
        assert grid is not None, "the data-sized grid was not expected"
        return grid

    return _resolve_grid_shape(
        n_rows, n_cols, n_samples, topology, kw.get("periodic", False), sized_grid
    )


# ------------------------------------------------------------- the default
def test_som_auto_size_is_the_default_and_a_parameter():
    som = SelfOrganizingMap()
    assert som.n_rows == "auto" and som.n_cols == "auto"
    params = som.get_params()
    assert params["n_rows"] == "auto" and params["n_cols"] == "auto"
    cloned = clone(SelfOrganizingMap(n_cols=7))
    assert cloned.get_params()["n_rows"] == "auto"
    assert cloned.get_params()["n_cols"] == 7
    assert not hasattr(som, "n_rows_")


@pytest.mark.parametrize("name", ["iris", "digits", "stretched"])
def test_som_auto_size_equals_data_sized_grid(name, iris, digits):
    X = {"iris": iris, "digits": digits, "stretched": _stretched(1000)}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never more units than samples
        som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X)
    expected = _data_sized_grid(X)
    assert (som.n_rows_, som.n_cols_) == expected
    assert isinstance(som.n_rows_, int) and isinstance(som.n_cols_, int)
    assert som.codebook_.shape == (expected[0] * expected[1], X.shape[1])
    assert som.unit_coords_.shape == (expected[0] * expected[1], 2)
    assert som._fitted_grid["n_rows"] == som.n_rows_
    assert som._fitted_grid["n_cols"] == som.n_cols_
    # The parameters are left as given.
    assert som.get_params()["n_rows"] == "auto"
    assert som.get_params()["n_cols"] == "auto"


def test_som_auto_size_known_shapes(iris, digits):
    # 150 iris samples: 15 units (n / 10); 1797 digits: 85 units, a square.
    assert _data_sized_grid(iris) == (3, 5)
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(digits)
    assert (som.n_rows_, som.n_cols_) == (9, 9)
    # The longer side follows the columns on elongated data.
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(_stretched(1000))
    assert som.n_cols_ > 2 * som.n_rows_


def test_som_auto_size_sigma_start_uses_the_resolved_grid(digits):
    som = SelfOrganizingMap(n_cols=20, n_epochs=2, verbose=1, random_state=0)
    out = io.StringIO()
    with redirect_stdout(out):
        som.fit(digits)
    # 85 units / 20 columns: 4 rows; sigma starts at half the longer side.
    assert (som.n_rows_, som.n_cols_) == (4, 20)
    assert "epoch 1/2  sigma=10.000" in out.getvalue()


# ---------------------------------------------------------- one side given
@pytest.mark.parametrize("given", [1, 3, 4, 7, 40, 100])
def test_som_auto_size_one_side_given(digits, given):
    n_units = _data_sized_units(digits.shape[0])
    assert n_units == 85
    other = max(1, round(n_units / given))
    rows = SelfOrganizingMap(given, "auto", n_epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # more units than samples
        rows.fit(digits)
    assert (rows.n_rows_, rows.n_cols_) == (given, other)
    cols = SelfOrganizingMap("auto", given, n_epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cols.fit(digits)
    assert (cols.n_rows_, cols.n_cols_) == (other, given)
    assert cols.get_params()["n_rows"] == "auto"


def test_som_auto_size_explicit_sizes_are_kept(iris):
    som = SelfOrganizingMap(4, 6, n_epochs=1, random_state=0).fit(iris)
    assert (som.n_rows_, som.n_cols_) == (4, 6)
    assert _resolve(4, 6, 10**9) == (4, 6)


# ------------------------------------------------ periodic hexagonal grids
def test_som_auto_size_hexagonal_periodic_gets_even_rows(iris, digits):
    # iris: data-sized 3 x 5 (15 units) -> 4 rows, round(15 / 4) = 4 columns.
    hexagonal = dict(topology="hexagonal", periodic=True, n_epochs=2, random_state=0)
    som = SelfOrganizingMap(**hexagonal).fit(iris)
    assert (som.n_rows_, som.n_cols_) == (4, 4)
    # digits: 9 x 9 -> 10 x 8.
    som = SelfOrganizingMap(**hexagonal).fit(digits)
    assert (som.n_rows_, som.n_cols_) == (10, 8)
    assert np.isfinite(som.codebook_).all()
    # n_cols given: round(85 / 9) = 9 rows, rounded up to 10.
    som = SelfOrganizingMap("auto", 9, **hexagonal).fit(digits)
    assert (som.n_rows_, som.n_cols_) == (10, 9)
    # Planar hexagonal and periodic rectangular maps keep odd rows.
    som = SelfOrganizingMap(topology="hexagonal", n_epochs=1).fit(iris)
    assert (som.n_rows_, som.n_cols_) == (3, 5)
    som = SelfOrganizingMap(periodic=True, n_epochs=1).fit(iris)
    assert (som.n_rows_, som.n_cols_) == (3, 5)


def test_som_auto_size_hexagonal_periodic_explicit_odd_rows_raise(digits):
    som = SelfOrganizingMap(5, "auto", topology="hexagonal", periodic=True)
    with pytest.raises(ValueError, match="even number of rows.*got n_rows=5"):
        som.fit(digits)
    assert not hasattr(som, "n_rows_")


@pytest.mark.parametrize(
    "n_rows, n_cols, grid, expected",
    [
        ("auto", "auto", (1, 1), (2, 1)),  # at least 2 rows
        ("auto", "auto", (2, 7), (2, 7)),  # already even
        ("auto", "auto", (3, 5), (4, 4)),
        ("auto", "auto", (5, 22), (6, 18)),  # 110 units: round(110 / 6)
        ("auto", "auto", (1, 2500), (2, 1250)),
        # Capped 2500 units / 3 columns = 833 rows; 834 x 3 would pass the cap.
        ("auto", 3, None, (832, 3)),
        ("auto", 4, None, (624, 4)),  # 625 rows: 626 x 4 would pass the cap
        ("auto", 10, None, (250, 10)),
    ],
)
def test_som_auto_size_even_rows_rule(n_rows, n_cols, grid, expected):
    n_samples = 10**7 if grid is None else 10_000
    got = _resolve(n_rows, n_cols, n_samples, grid, "hexagonal", periodic=True)
    assert got == expected
    assert got[0] % 2 == 0


# ---------------------------------------------------------------- tiny data
@pytest.mark.parametrize("n_samples", [1, 2, 15, 19])
@pytest.mark.parametrize(
    "params",
    [{}, {"topology": "hexagonal"}, {"algorithm": "online", "batch_size": 2}],
    ids=["rectangular", "hexagonal", "online"],
)
def test_som_auto_size_tiny_data_gives_one_unit(n_samples, params):
    X = np.random.RandomState(0).normal(size=(n_samples, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        som = SelfOrganizingMap(n_epochs=2, random_state=0, **params).fit(X)
    assert (som.n_rows_, som.n_cols_) == (1, 1)
    assert som.topographic_error_ == 0.0
    np.testing.assert_array_equal(som.predict(X), np.zeros(n_samples))
    assert som.transform(X).shape == (n_samples, 2)


def test_som_auto_size_small_data_gives_a_small_map():
    X = _stretched(25)  # 2 units (n / 10)
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X)
    assert (som.n_rows_, som.n_cols_) == (1, 2)
    X = _stretched(60)  # 6 units
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X)
    assert som.n_rows_ * som.n_cols_ == 6


def test_som_auto_size_tiny_data_periodic_hexagonal():
    X = np.random.RandomState(0).normal(size=(15, 2))
    som = SelfOrganizingMap(topology="hexagonal", periodic=True, n_epochs=2)
    som.fit(X)
    assert (som.n_rows_, som.n_cols_) == (2, 1)


# ----------------------------------------------------------------- the cap
def test_som_auto_size_cap_constant():
    assert _MAX_AUTO_UNITS == 2500
    # Reached near 1.5 million samples.
    assert _data_sized_units(1_500_000) < _MAX_AUTO_UNITS
    assert _data_sized_units(1_600_000) > _MAX_AUTO_UNITS


@pytest.mark.parametrize(
    "grid, expected",
    [
        ((50, 50), (50, 50)),
        ((40, 60), (40, 60)),
        ((100, 100), (50, 50)),
        ((20, 500), (10, 250)),  # the ratio is kept
        ((1, 20_000), (1, 2500)),  # a side at 1 stays 1, the other is capped
        ((63, 64), (50, 50)),
        ((7, 358), (7, 357)),  # 7 x 358 after scaling: the longer side gives
    ],
)
def test_som_auto_size_cap_scales_both_sides(grid, expected):
    n_samples = 10**9  # 63246 units uncapped
    got = _resolve("auto", "auto", n_samples, grid)
    assert got == expected
    assert got[0] * got[1] <= _MAX_AUTO_UNITS


def test_som_auto_size_cap_with_the_rows_of_real_data():
    # The grid _data_sized_grid would give for 10**8 samples of the stretched
    # data (about 20000 units, sides in the ratio 4 : 1).
    variances = np.array([16.0, 1.0])
    grid = _grid_shape(_data_sized_units(10**8), variances)
    assert grid[0] * grid[1] > 5 * _MAX_AUTO_UNITS
    n_rows, n_cols = _resolve("auto", "auto", 10**8, grid)
    assert n_rows * n_cols <= _MAX_AUTO_UNITS
    assert n_rows * n_cols >= 0.95 * _MAX_AUTO_UNITS
    assert n_cols / n_rows == pytest.approx(grid[1] / grid[0], rel=0.05)


@pytest.mark.parametrize("given", [1, 6, 7, 50, 3000])
def test_som_auto_size_cap_with_one_side_given(given):
    n_samples = 10**9
    other = max(1, min(round(_MAX_AUTO_UNITS / given), _MAX_AUTO_UNITS // given))
    assert _resolve(given, "auto", n_samples) == (given, other)
    assert _resolve("auto", given, n_samples) == (other, given)
    if given <= _MAX_AUTO_UNITS:
        assert given * other <= _MAX_AUTO_UNITS


def test_som_auto_size_cap_applies_to_fit(digits, monkeypatch):
    monkeypatch.setattr(som_module, "_MAX_AUTO_UNITS", 20)
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(digits)
    # 9 x 9 scaled by sqrt(20 / 81): 4 x 4 (4 x 5 would be 20 too, but the
    # sides are scaled alike and rounded).
    assert (som.n_rows_, som.n_cols_) == (4, 4)
    som = SelfOrganizingMap(2, "auto", n_epochs=1, random_state=0).fit(digits)
    assert (som.n_rows_, som.n_cols_) == (2, 10)
    # Explicit sizes are never capped.
    som = SelfOrganizingMap(6, 6, n_epochs=1, random_state=0).fit(digits)
    assert (som.n_rows_, som.n_cols_) == (6, 6)


# -------------------------------------------------------------- partial_fit
@pytest.mark.parametrize("algorithm", ["batch", "online"])
def test_som_auto_size_partial_fit_resolves_from_the_first_batch(digits, algorithm):
    som = SelfOrganizingMap(algorithm=algorithm, batch_size=10, random_state=0)
    first = digits[:200]  # 20 units
    som.partial_fit(first)
    shape = _data_sized_grid(first)
    assert (som.n_rows_, som.n_cols_) == shape
    assert som.n_rows_ * som.n_cols_ == 20
    som.partial_fit(digits[200:])  # a larger batch keeps the grid
    assert (som.n_rows_, som.n_cols_) == shape
    assert som.codebook_.shape == (20, digits.shape[1])
    assert som.n_iter_ == 2
    # Setting the resolved sizes explicitly continues the same map ...
    som.set_params(n_rows=shape[0], n_cols=shape[1]).partial_fit(digits[:100])
    assert som.n_iter_ == 3
    # ... other sizes do not.
    som.set_params(n_rows=shape[0] + 1)
    with pytest.raises(ValueError, match="partial_fit cannot continue"):
        som.partial_fit(digits[:100])
    assert (som.n_rows_, som.n_cols_) == shape
    # Back to "auto": the fitted grid is kept.
    som.set_params(n_rows="auto", n_cols="auto").partial_fit(digits[:100])
    assert (som.n_rows_, som.n_cols_) == shape


def test_som_auto_size_partial_fit_after_fit_keeps_the_fitted_grid(iris, digits):
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(iris)
    som.partial_fit(np.tile(iris, (10, 1)))
    assert (som.n_rows_, som.n_cols_) == (3, 5)
    # A new fit resolves again, from its data.
    som.fit(digits[:, :4])
    assert (som.n_rows_, som.n_cols_) == _data_sized_grid(digits[:, :4])


# ------------------------------------------------------- failed (re)fits
@pytest.mark.parametrize(
    "bad, match",
    [
        ("nan-column", "no observed value in feature"),
        ("inf", "infinity"),
        ("empty", "0 sample"),
    ],
)
def test_som_auto_size_failed_refit_keeps_the_fitted_sizes(iris, digits, bad, match):
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(iris)
    state = pickle.dumps(som)
    X = digits.copy()
    if bad == "nan-column":
        X[:, 3] = np.nan
    elif bad == "inf":
        X[7, 0] = np.inf
    else:
        X = X[:0]
    with pytest.raises(ValueError, match=match):
        som.fit(X)
    assert (som.n_rows_, som.n_cols_) == (3, 5)
    assert som.n_features_in_ == 4
    assert pickle.dumps(som) == state


def test_som_auto_size_failed_fit_with_an_array_init_names_auto(iris):
    som = SelfOrganizingMap(init=np.zeros((9, 4)))
    with pytest.raises(ValueError, match=r"for a 3x5 map on 4 features \(n_rows and "):
        som.fit(iris)
    assert not hasattr(som, "n_rows_")
    som = SelfOrganizingMap(3, "auto", init=np.zeros((15, 4)), n_epochs=1).fit(iris)
    assert (som.n_rows_, som.n_cols_) == (3, 5)


def test_som_auto_size_failed_partial_fit_keeps_the_fitted_sizes(digits):
    som = SelfOrganizingMap(random_state=0).partial_fit(digits[:300])
    state = pickle.dumps(som)
    with pytest.raises(ValueError, match="features"):
        som.partial_fit(digits[:300, :5])
    assert pickle.dumps(som) == state


# ------------------------------------------------- sparse and missing data
def test_som_auto_size_sparse_input(digits):
    X = sparse.csr_matrix(np.where(np.abs(digits) < 0.5, 0.0, digits))
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X)
    assert (som.n_rows_, som.n_cols_) == _data_sized_grid(X)
    dense = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X.toarray())
    assert (dense.n_rows_, dense.n_cols_) == (som.n_rows_, som.n_cols_)
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(X.tocsc())
    assert (som.n_rows_, som.n_cols_) == _data_sized_grid(X)


def test_som_auto_size_missing_values(iris):
    X = _stretched(1000)
    X_nan = _with_missing(X, 0.2)
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(X_nan)
    assert (som.n_rows_, som.n_cols_) == _data_sized_grid(X_nan)
    assert som.n_cols_ > som.n_rows_
    # A row without observed values warns and still resolves.
    X_nan[0] = np.nan
    with pytest.warns(UserWarning, match="no observed value"):
        som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(X_nan)
    assert (som.n_rows_, som.n_cols_) == _data_sized_grid(X_nan)


def test_som_auto_size_float32_data(digits):
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(digits.astype(np.float32))
    assert (som.n_rows_, som.n_cols_) == (9, 9)
    assert som.codebook_.dtype == np.float32


# ------------------------------------------------------------ persistence
def test_som_auto_size_pickle_keeps_the_resolved_sizes(iris):
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(iris)
    restored = pickle.loads(pickle.dumps(som))
    assert (restored.n_rows_, restored.n_cols_) == (3, 5)
    assert restored.get_params()["n_rows"] == "auto"
    np.testing.assert_array_equal(restored.predict(iris), som.predict(iris))
    restored.partial_fit(iris)  # continues on the pickled grid
    assert (restored.n_rows_, restored.n_cols_) == (3, 5)


def test_som_auto_size_clone_of_a_fitted_map_is_unfitted(iris):
    som = SelfOrganizingMap(n_epochs=1, random_state=0).fit(iris)
    cloned = clone(som)
    assert cloned.n_rows == "auto" and not hasattr(cloned, "n_rows_")
    cloned.fit(iris[:40])  # 4 units
    assert cloned.n_rows_ * cloned.n_cols_ == 4
    assert (som.n_rows_, som.n_cols_) == (3, 5)


# --------------------------------------------------------------- plotting
def test_som_auto_size_displays_use_the_resolved_grid(iris):
    pytest.importorskip("matplotlib")
    from somgen.plotting import HitMapDisplay, UMatrixDisplay

    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(iris)
    umatrix = UMatrixDisplay.from_estimator(som)
    assert np.asarray(umatrix.values).size == 15
    hits = HitMapDisplay.from_estimator(som, iris)
    assert np.asarray(hits.values).sum() == len(iris)


# -------------------------------------------------------------------- Dask
def _dask_threads():
    dask = pytest.importorskip("dask")
    return dask.config.set(scheduler="threads", num_workers=2)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_rows": 3},
        {"n_cols": 4},
        {"topology": "hexagonal", "periodic": True},
    ],
    ids=["auto", "rows-given", "cols-given", "hexagonal-periodic"],
)
@pytest.mark.parametrize("missing", [False, True])
def test_som_auto_size_dask_fit_resolves_like_in_memory(params, missing):
    da = pytest.importorskip("dask.array")
    X = _stretched(3000)
    if missing:
        X = _with_missing(X, 0.1)
    params = dict(n_epochs=2, random_state=0, **params)
    expected = SelfOrganizingMap(**params).fit(X)
    with _dask_threads():
        got = SelfOrganizingMap(**params).fit(da.from_array(X, chunks=700))
    assert (got.n_rows_, got.n_cols_) == (expected.n_rows_, expected.n_cols_)
    assert got._fitted_grid == expected._fitted_grid
    assert got.get_params()["n_rows"] == params.get("n_rows", "auto")
    scale = np.abs(expected.codebook_).max()
    np.testing.assert_allclose(
        got.codebook_, expected.codebook_, rtol=0, atol=1e-10 * scale
    )


def test_som_auto_size_dask_dataframe_and_partial_fit():
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X = _stretched(2000)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    with _dask_threads():
        got = SelfOrganizingMap(n_epochs=1, random_state=0).fit(
            dd.from_pandas(frame, npartitions=3)
        )
        stream = SelfOrganizingMap(random_state=0)
        stream.partial_fit(da.from_array(X[:300], chunks=100))  # 30 units
        stream.partial_fit(da.from_array(X[300:], chunks=500))
    assert (got.n_rows_, got.n_cols_) == _data_sized_grid(X)
    assert (stream.n_rows_, stream.n_cols_) == _data_sized_grid(X[:300])
    assert stream.n_iter_ == 2


def test_som_auto_size_dask_failed_fit_keeps_the_fitted_sizes(iris):
    da = pytest.importorskip("dask.array")
    som = SelfOrganizingMap(n_epochs=2, random_state=0).fit(iris)
    state = pickle.dumps(som)
    X = _stretched(600)
    X[:, 1] = np.nan
    with _dask_threads(), pytest.raises(ValueError, match="no observed value"):
        som.fit(da.from_array(X, chunks=200))
    assert pickle.dumps(som) == state
