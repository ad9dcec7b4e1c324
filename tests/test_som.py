"""Behaviour of SelfOrganizingMap: training, inference, errors, persistence."""

import io
import pickle
import re

import joblib
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap
from somgen.metrics import quantization_error, topographic_error
from somgen.utils._sklearn_compat import InvalidParameterError


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


# --------------------------------------------------------------------- training
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("neighborhood", ["gaussian", "bubble", "triangle"])
def test_som_trains_every_configuration(iris, topology, periodic, neighborhood):
    X, _ = iris
    som = SelfOrganizingMap(
        6,
        6,
        topology=topology,
        periodic=periodic,
        neighborhood=neighborhood,
        sigma_end=1.0,
        n_epochs=15,
        random_state=0,
    ).fit(X)
    init_qe = quantization_error(X, np.repeat(X.mean(0, keepdims=True), 36, 0))
    assert np.all(np.isfinite(som.codebook_))
    # Every kernel organises the map: far better than the single mean, and few
    # best/second-best pairs fall apart on the grid.
    assert som.quantization_error_ < 0.5 * init_qe
    assert som.topographic_error_ < 0.25
    assert som.n_iter_ == 15


@pytest.mark.parametrize("algorithm", ["batch", "online"])
@pytest.mark.parametrize("periodic", [False, True])
def test_som_mexican_hat_stays_bounded(iris, algorithm, periodic):
    # The negative lobe repels units with a force growing with their distance;
    # unbounded, the online rule diverges geometrically (to ~1e70 here).
    X, _ = iris
    som = SelfOrganizingMap(
        6,
        6,
        neighborhood="mexican_hat",
        periodic=periodic,
        algorithm=algorithm,
        n_epochs=15,
        random_state=0,
    ).fit(X)
    assert np.all(som.codebook_ >= X.min(axis=0) - 1e-12)
    assert np.all(som.codebook_ <= X.max(axis=0) + 1e-12)
    init_qe = quantization_error(X, X.mean(0, keepdims=True))
    assert som.quantization_error_ < init_qe


@pytest.mark.parametrize("decay", ["linear", "exponential", "inverse"])
@pytest.mark.parametrize("init", ["pca", "random", "sample"])
def test_som_online_matches_batch_quality(iris, decay, init):
    X, _ = iris
    batch = SelfOrganizingMap(5, 5, decay=decay, init=init, random_state=0).fit(X)
    online = SelfOrganizingMap(
        5,
        5,
        decay=decay,
        init=init,
        algorithm="online",
        n_epochs=20,
        random_state=0,
    ).fit(X)
    assert online.quantization_error_ < 1.25 * batch.quantization_error_
    assert online.topographic_error_ < 0.2


def test_som_fitted_attributes_match_metrics(digits):
    X, _ = digits
    som = SelfOrganizingMap(8, 9, topology="hexagonal", random_state=0).fit(X)
    assert som.codebook_.shape == (72, 64)
    assert som.unit_coords_.shape == (72, 2)
    assert som.cluster_centers_ is som.codebook_
    assert som.quantization_error_ == pytest.approx(
        quantization_error(X, som.codebook_), rel=1e-10
    )
    assert som.topographic_error_ == pytest.approx(
        topographic_error(X, som.codebook_, n_rows=8, n_cols=9, topology="hexagonal")
    )
    assert som.score(X) == pytest.approx(-som.quantization_error_, rel=1e-10)


def test_som_larger_sigma_end_is_smoother_and_coarser(digits):
    X, _ = digits
    fine = SelfOrganizingMap(10, 10, sigma_end=0.5, random_state=0).fit(X)
    smooth = SelfOrganizingMap(10, 10, sigma_end=2.0, random_state=0).fit(X)
    assert fine.quantization_error_ < smooth.quantization_error_
    assert smooth.topographic_error_ <= fine.topographic_error_


def test_som_batch_fit_is_deterministic_and_n_jobs_invariant(monkeypatch):
    # Several chunks so that threads really split the work.
    monkeypatch.setattr("somgen._parallel._CHUNK_ELEMENTS", 64 * 25)
    monkeypatch.setattr("somgen._parallel._MIN_CHUNK", 16)
    X, _ = make_blobs(2000, 7, centers=6, random_state=0)
    fits = [
        SelfOrganizingMap(5, 5, n_jobs=n_jobs, random_state=3).fit(X)
        for n_jobs in (1, 2, -1, 1)
    ]
    for other in fits[1:]:
        np.testing.assert_array_equal(fits[0].codebook_, other.codebook_)


def test_som_float32_is_preserved_and_picks_the_same_units():
    rng = np.random.RandomState(0)
    # A large common offset: naive float32 distances would lose the signal.
    X = 1e4 + rng.normal(size=(3000, 12))
    som64 = SelfOrganizingMap(6, 6, random_state=0).fit(X)
    som32 = SelfOrganizingMap(6, 6, random_state=0).fit(X.astype(np.float32))
    assert som32.codebook_.dtype == np.float32
    assert som32.transform(X.astype(np.float32)).dtype == np.float32
    assert som32.inverse_transform([[1.0, 2.0]]).dtype == np.float32
    # Rounding X to float32 (steps of 1e-3 at 1e4) already moves near-ties, so
    # the two fits are compared by quality, and the float32 BMU search against
    # float64 brute force on the same (rounded) data and codebook.
    assert som32.quantization_error_ == pytest.approx(
        som64.quantization_error_, rel=1e-2
    )
    X32 = X.astype(np.float32)
    ref = cdist(X32.astype(np.float64), som32.codebook_.astype(np.float64))
    agree = np.mean(som32.predict(X32) == ref.argmin(axis=1))
    assert agree > 0.999


def test_som_handles_one_sample_and_one_feature():
    som = SelfOrganizingMap(3, 4, random_state=0).fit([[1.0, -2.0, 3.0]])
    np.testing.assert_allclose(som.codebook_, np.tile([1.0, -2.0, 3.0], (12, 1)))
    assert som.quantization_error_ == 0.0
    X = np.linspace(-3, 3, 50)[:, None]
    som = SelfOrganizingMap(1, 10, random_state=0).fit(X)
    # A 1-D map of 1-D data orders itself: prototypes are monotone.
    diffs = np.diff(som.codebook_.ravel())
    assert np.all(diffs > 0) or np.all(diffs < 0)
    assert som.topographic_error_ == 0.0


def test_som_one_unit_map_is_the_mean():
    X, _ = make_blobs(100, 3, random_state=0)
    som = SelfOrganizingMap(1, 1).fit(X)
    np.testing.assert_allclose(som.codebook_[0], X.mean(axis=0))
    assert som.topographic_error_ == 0.0
    np.testing.assert_array_equal(som.predict(X), 0)


def test_som_array_init_is_used_and_not_modified():
    X, _ = make_blobs(60, 2, random_state=0)
    init = np.arange(8.0).reshape(4, 2)
    init_copy = init.copy()
    som = SelfOrganizingMap(
        2,
        2,
        init=init,
        n_epochs=1,
        sigma_start=0.1,
        sigma_end=0.1,
        neighborhood="bubble",
    ).fit(X)
    np.testing.assert_array_equal(init, init_copy)
    # One bubble epoch with sigma < 1 is one k-means (Lloyd) step from init.
    labels = cdist(X, init).argmin(axis=1)
    for k in range(4):
        expected = X[labels == k].mean(0) if np.any(labels == k) else init[k]
        np.testing.assert_allclose(som.codebook_[k], expected)


def test_som_verbose_reports_epochs(capsys, iris):
    SelfOrganizingMap(3, 3, n_epochs=3, verbose=1).fit(iris[0])
    out = capsys.readouterr().out
    assert len(re.findall(r"epoch \d/3  sigma=", out)) == 3


# -------------------------------------------------------------------- inference
def test_som_transform_predict_inverse_transform_agree(digits):
    X, _ = digits
    for topology in ("rectangular", "hexagonal"):
        som = SelfOrganizingMap(7, 5, topology=topology, random_state=0).fit(X)
        units = som.predict(X)
        np.testing.assert_array_equal(units, cdist(X, som.codebook_).argmin(1))
        coords = som.transform(X)
        np.testing.assert_array_equal(coords, som.unit_coords_[units])
        # Decoding a unit's own position gives back exactly its prototype.
        np.testing.assert_array_equal(
            som.inverse_transform(coords), som.codebook_[units]
        )
        np.testing.assert_array_equal(som.fit_predict(X), units)


def test_som_inverse_transform_interpolates_rectangular():
    X, _ = make_blobs(50, 3, random_state=0)
    som = SelfOrganizingMap(3, 4, random_state=0).fit(X)
    W = som.codebook_.reshape(3, 4, 3)  # (row, col, feature)
    x, y = 1.25, 0.5  # between columns 1-2 and rows 0-1
    expected = (
        0.75 * 0.5 * W[0, 1]
        + 0.25 * 0.5 * W[0, 2]
        + 0.75 * 0.5 * W[1, 1]
        + 0.25 * 0.5 * W[1, 2]
    )
    np.testing.assert_allclose(som.inverse_transform([[x, y]])[0], expected)
    # Outside a planar map: clamped to the border.
    np.testing.assert_allclose(som.inverse_transform([[-5.0, 10.0]])[0], W[2, 0])
    # On a torus, half-way across the seam between the last and first column.
    torus = SelfOrganizingMap(3, 4, periodic=True, random_state=0).fit(X)
    Wt = torus.codebook_.reshape(3, 4, 3)
    np.testing.assert_allclose(
        torus.inverse_transform([[3.5, 0.0]])[0], 0.5 * (Wt[0, 3] + Wt[0, 0])
    )
    np.testing.assert_allclose(
        torus.inverse_transform([[-0.5, 0.0]])[0], 0.5 * (Wt[0, 3] + Wt[0, 0])
    )


def test_som_inverse_transform_hexagonal_centroid():
    X, _ = make_blobs(50, 3, random_state=0)
    som = SelfOrganizingMap(4, 4, topology="hexagonal", random_state=0).fit(X)
    W, C = som.codebook_, som.unit_coords_
    # Units 0 (0,0), 1 (0,1) and 4 (1,0) form a triangle on the hex lattice.
    centroid = C[[0, 1, 4]].mean(axis=0)
    np.testing.assert_allclose(
        som.inverse_transform([centroid])[0], W[[0, 1, 4]].mean(axis=0)
    )
    # Midpoint of an edge: average of its two units.
    mid = C[[5, 6]].mean(axis=0)
    np.testing.assert_allclose(som.inverse_transform([mid])[0], W[[5, 6]].mean(0))


def test_som_inverse_transform_rejects_wrong_shape():
    som = SelfOrganizingMap(2, 2).fit(np.eye(4))
    with pytest.raises(ValueError, match=r"map coordinates of shape \(n_samples, 2\)"):
        som.inverse_transform(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        som.inverse_transform([[np.nan, 0.0]])


def test_som_predict_on_new_data_uses_fitted_offset():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 4)) + 100.0
    som = SelfOrganizingMap(4, 4, random_state=0).fit(X)
    X_new = rng.normal(size=(200, 4)) + 100.0
    np.testing.assert_array_equal(
        som.predict(X_new), cdist(X_new, som.codebook_).argmin(1)
    )


# ---------------------------------------------------------------- partial_fit
def test_som_partial_fit_streams_to_a_good_map(digits):
    X, _ = digits
    full = SelfOrganizingMap(8, 8, random_state=0).fit(X)
    for algorithm in ("batch", "online"):
        # A stream keeps adapting: its rate must not decay to (almost) zero.
        stream = SelfOrganizingMap(
            8,
            8,
            algorithm=algorithm,
            batch_size=8,
            learning_rate_start=1.0,
            learning_rate_end=0.3,
            n_epochs=10,
            random_state=0,
        )
        for epoch in range(3):
            for chunk in np.array_split(np.random.RandomState(epoch).permutation(X), 5):
                assert stream.partial_fit(chunk) is stream
        assert stream.n_iter_ == 15
        assert quantization_error(X, stream.codebook_) < 1.2 * full.quantization_error_
        assert topographic_error(X, stream.codebook_, n_rows=8, n_cols=8) < 0.2


def test_som_partial_fit_with_rate_one_is_a_batch_epoch():
    X, _ = make_blobs(300, 4, random_state=1)
    kwargs = dict(
        sigma_start=2.0,
        sigma_end=2.0,
        learning_rate_start=1.0,
        learning_rate_end=1.0,
        random_state=0,
    )
    fitted = SelfOrganizingMap(4, 4, n_epochs=1, **kwargs).fit(X)
    streamed = SelfOrganizingMap(4, 4, **kwargs).partial_fit(X)
    np.testing.assert_allclose(streamed.codebook_, fitted.codebook_, rtol=1e-12)


def test_som_partial_fit_after_fit_continues_at_schedule_end(iris):
    X, _ = iris
    som = SelfOrganizingMap(4, 4, n_epochs=5, random_state=0).fit(X)
    before = som.codebook_.copy()
    som.partial_fit(X[:20])
    assert som.n_iter_ == 6
    assert not np.array_equal(before, som.codebook_)
    with pytest.raises(
        ValueError,
        match="X has 3 features, but SelfOrganizingMap is expecting 4 features",
    ):
        som.partial_fit(X[:, :3])


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"topology": "hexagonal", "periodic": True, "n_rows": 3},
            "periodic hexagonal map needs an even number of rows",
        ),
        (
            {"sigma_start": 0.5, "sigma_end": 2.0},
            r"sigma_start=0.5 must be greater than or equal to sigma_end=2.0",
        ),
        (
            {"learning_rate_start": 0.1, "learning_rate_end": 0.5},
            "learning_rate_start=0.1 must be greater",
        ),
        (
            {"n_rows": 10, "n_cols": 10, "init": np.zeros((5, 4))},
            r"init has shape \(5, 4\), but the map needs one prototype per unit: "
            r"\(100, 4\) for a 10x10 map on 4 features\.$",
        ),
    ],
)
def test_som_inconsistent_parameters_raise(iris, params, match):
    with pytest.raises(ValueError, match=match):
        SelfOrganizingMap(**params).fit(iris[0])


@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"n_rows": 0},
            "'n_rows' parameter of SelfOrganizingMap must be a str among "
            r"\{'auto'\} or an int",
        ),
        ({"topology": "triangular"}, "'topology' parameter"),
        ({"neighborhood": "cosine"}, "'neighborhood' parameter"),
        ({"sigma_end": -1.0}, "'sigma_end' parameter"),
        ({"learning_rate_start": 1.5}, "'learning_rate_start' parameter"),
        ({"init": "kmeans++"}, "'init' parameter"),
        ({"algorithm": "sgd"}, "'algorithm' parameter"),
        ({"n_epochs": 0}, "'n_epochs' parameter"),
    ],
)
def test_som_nonsense_parameters_raise(iris, params, match):
    with pytest.raises(InvalidParameterError, match=match):
        SelfOrganizingMap(**params).fit(iris[0])


@pytest.mark.parametrize(
    "X, error, match",
    [
        ([[np.nan, np.nan], [0.0, np.nan]], ValueError, r"feature\(s\) \[1\]"),
        ([[1.0, np.inf], [0.0, 1.0]], ValueError, "Input X contains infinity"),
        (np.empty((0, 3)), ValueError, "0 sample"),
        (np.empty((3, 0)), ValueError, "0 feature"),
        ([1.0, 2.0, 3.0], ValueError, "Expected 2D array, got 1D array"),
        (np.array([[1 + 2j, 0], [0, 1]]), ValueError, "Complex data not supported"),
        (
            np.array([["a", "b"], ["c", "d"]], dtype=object),
            ValueError,
            "could not convert|argument must be",
        ),
    ],
)
def test_som_bad_input_raises(X, error, match):
    with pytest.raises(error, match=match):
        SelfOrganizingMap(2, 2).fit(X)


def test_som_sparse_input_with_nan_is_rejected_clearly():
    # Sparse input is supported (tests/test_som_sparse.py), NaN stored in it not.
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(np.array([[np.nan, 1.0], [0.0, 2.0], [3.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN stored in a sparse matrix"):
        SelfOrganizingMap(2, 2).fit(X)


def test_som_unfitted_methods_raise():
    from sklearn.exceptions import NotFittedError

    som = SelfOrganizingMap()
    for method in ("predict", "transform", "score"):
        with pytest.raises(NotFittedError):
            getattr(som, method)(np.eye(3))
    with pytest.raises(NotFittedError):
        som.inverse_transform([[0.0, 0.0]])


@pytest.mark.parametrize(
    "bad_params, bad_X",
    [
        ({}, [[np.nan, 1.0, 2.0, 3.0]]),
        ({"init": np.zeros((3, 4))}, None),
        ({"topology": "hexagonal", "periodic": True, "n_rows": 5}, None),
    ],
)
def test_som_failed_fit_leaves_fitted_model_unchanged(iris, bad_params, bad_X):
    X, _ = iris
    som = SelfOrganizingMap(4, 4, random_state=0).fit(X)
    state = pickle.dumps(som)
    attrs = dict(vars(som))
    som.set_params(**bad_params)
    with pytest.raises(ValueError):
        som.fit(X if bad_X is None else bad_X)
    assert set(vars(som)) == set(attrs)
    som.set_params(
        **{
            k: SelfOrganizingMap().get_params()[k] if k != "n_rows" else 4
            for k in bad_params
        }
    )
    restored = pickle.loads(state)
    np.testing.assert_array_equal(som.codebook_, restored.codebook_)
    assert som.n_features_in_ == 4
    np.testing.assert_array_equal(som.predict(X), restored.predict(X))


def test_som_failed_fit_on_other_feature_count_keeps_old_model(iris):
    X, _ = iris
    som = SelfOrganizingMap(3, 3, random_state=0, init=np.zeros((9, 4))).fit(X)
    before = som.codebook_.copy()
    with pytest.raises(ValueError, match="init has shape"):
        som.fit(np.ones((10, 7)))  # the array init does not fit 7 features
    assert som.n_features_in_ == 4
    np.testing.assert_array_equal(som.codebook_, before)


# ------------------------------------------------------ ecosystem & persistence
def test_som_in_pipeline_and_grid_search(digits):
    X, _ = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SelfOrganizingMap(n_cols=10, random_state=0))
    search = GridSearchCV(
        pipe,
        {"selforganizingmap__n_rows": [4, 8], "selforganizingmap__sigma_end": [0.5, 2]},
        cv=3,
    ).fit(X)
    # The default score is minus the quantization error: the larger, finer map
    # quantizes held-out digits better.
    assert search.best_params_ == {
        "selforganizingmap__n_rows": 8,
        "selforganizingmap__sigma_end": 0.5,
    }
    coords = search.best_estimator_.transform(X)
    assert coords.shape == (len(X), 2)


def test_som_clone_is_unfitted_with_same_params(iris):
    som = SelfOrganizingMap(3, 7, topology="hexagonal", random_state=1).fit(iris[0])
    twin = clone(som)
    assert twin.get_params() == som.get_params()
    assert not hasattr(twin, "codebook_")
    np.testing.assert_array_equal(twin.fit(iris[0]).codebook_, som.codebook_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_som_pickle_and_joblib_round_trips_bit_identical(digits, tmp_path, dtype):
    X = digits[0].astype(dtype)
    som = SelfOrganizingMap(6, 6, topology="hexagonal", random_state=0).fit(X)
    reloaded = pickle.loads(pickle.dumps(som))
    path = tmp_path / "som.joblib"
    joblib.dump(som, path)
    for other in (reloaded, joblib.load(path)):
        np.testing.assert_array_equal(other.codebook_, som.codebook_)
        np.testing.assert_array_equal(other.predict(X), som.predict(X))
        np.testing.assert_array_equal(other.transform(X), som.transform(X))
        assert other.score(X) == som.score(X)
    # A reloaded map keeps streaming exactly like the original.
    buf = io.BytesIO()
    pickle.dump(som, buf)
    buf.seek(0)
    copy = pickle.load(buf)
    np.testing.assert_array_equal(
        som.partial_fit(X[:100]).codebook_, copy.partial_fit(X[:100]).codebook_
    )


def test_som_set_output_pandas(iris):
    pd = pytest.importorskip("pandas", reason="pandas is a test extra")
    som = SelfOrganizingMap(3, 3, random_state=0).set_output(transform="pandas")
    frame = pd.DataFrame(iris[0], columns=["a", "b", "c", "d"])
    out = som.fit(frame).transform(frame)
    assert list(out.columns) == ["selforganizingmap0", "selforganizingmap1"]
    assert list(som.feature_names_in_) == ["a", "b", "c", "d"]


def test_som_partial_fit_keeps_one_generator_across_calls(iris):
    # Reseeding on every call would shuffle every batch in the same order.
    X, _ = iris
    som = SelfOrganizingMap(3, 3, algorithm="online", random_state=0)
    som.partial_fit(X)
    generator = som._random_state
    _, key, pos, *_ = generator.get_state()
    key = key.copy()
    som.partial_fit(X)
    assert som._random_state is generator
    _, new_key, new_pos, *_ = generator.get_state()
    assert new_pos != pos or not np.array_equal(new_key, key)  # it advanced
    # The sequence of calls stays reproducible from the seed, and fit resets it.
    again = clone(som)
    again.partial_fit(X).partial_fit(X)
    np.testing.assert_array_equal(again.codebook_, som.codebook_)
    refit = clone(som).fit(X).partial_fit(X)
    np.testing.assert_array_equal(
        refit.codebook_, clone(som).fit(X).partial_fit(X).codebook_
    )


def test_som_get_feature_names_out_needs_fit(iris):
    X, _ = iris
    som = SelfOrganizingMap(2, 2)
    with pytest.raises(NotFittedError):
        som.get_feature_names_out()
    names = som.fit(X).get_feature_names_out()
    assert list(names) == ["selforganizingmap0", "selforganizingmap1"]
