"""SOMGenerativeModel at the edges: far inputs, bounded memory, extreme parameters."""

import tracemalloc

import numpy as np
import pytest
from joblib import parallel_config
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris, make_blobs
from sklearn.preprocessing import StandardScaler

import somgen._mixture
from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen.utils._sklearn_compat import InvalidParameterError

COVARIANCE_TYPES = ["spherical", "diag", "tied", "full"]
HUGE = np.finfo(np.float64).max / 4


@pytest.fixture(scope="module")
def iris():
    X, _ = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X)


def _component_covariances(model):
    d = model.means_.shape[1]
    cov = model.covariances_
    if model.covariance_type == "spherical":
        return cov[:, None, None] * np.eye(d)
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    if model.covariance_type == "tied":
        return np.broadcast_to(cov, (len(model.weights_), d, d))
    return cov


def _scipy_joint(model, X):
    """log pi_k + log N(x | mu_k, Sigma_k) from scipy, shape (n, K)."""
    return np.column_stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(
                model.weights_, model.means_, _component_covariances(model), strict=True
            )
        ]
    )


# ----------------------------------------------------------- far-away inputs
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_predict_proba_sums_to_one_off_a_constant_feature(
    covariance_type,
):
    # A feature constant in training has variance reg_covar; a test value 3e5
    # puts the log-densities near -5e16, and the rows summed to 12-16.
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=(300, 2)), np.full(300, 5.0)])
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        random_state=0,
    ).fit(X)
    X_test = np.column_stack([rng.normal(size=(20, 2)), np.full(20, 3e5)])
    proba = model.predict_proba(X_test)
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_array_equal(model.predict(X_test), proba.argmax(axis=1))
    # Honest float64 values, as scipy computes them.
    joint = _scipy_joint(model, X_test)
    assert_allclose(model.score_samples(X_test), logsumexp(joint, axis=1), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_outliers_up_to_float_max_stay_finite(iris, covariance_type):
    # Above |x| ~ 1e155 the squares overflowed: predict_proba and impute
    # returned NaN.
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        random_state=0,
    ).fit(iris)
    X = np.array(
        [
            [1e300, 0.0, 0.0, 0.0],
            [-1e300, 1e300, -1e300, 1e300],
            [HUGE, -HUGE, HUGE, 0.0],
            [0.0, 0.0, 0.0, -HUGE],
            [1e150, -1e150, 0.5, 0.5],
            [1e6, -1e6, 1e6, -1e6],
        ]
    )
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    labels = model.predict(X)
    assert labels.dtype.kind == "i"
    assert np.all((labels >= 0) & (labels < 9))
    assert_array_equal(proba[np.arange(len(X)), labels], proba.max(axis=1))

    log_density = model.score_samples(X)
    assert not np.any(np.isnan(log_density))
    assert np.all(log_density[:4] == -np.inf)  # below float range: honest
    assert np.all(np.isfinite(log_density[4:]))

    X_missing = X.copy()
    X_missing[:, 1] = np.nan
    filled = model.impute(X_missing)
    assert np.all(np.isfinite(filled))
    assert_array_equal(filled[:, [0, 2, 3]], X[:, [0, 2, 3]])


# ------------------------------------------------------------ bounded memory
def _peak_bytes(func):
    tracemalloc.start()
    try:
        result = func()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, result


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_generative_predict_memory_is_bounded_by_the_chunks(
    covariance_type, monkeypatch
):
    # predict peaked at about 6 (n_samples, n_units) matrices for a 0.3 MB
    # result. Now each thread holds one chunk at a time, and predict_proba adds
    # only its output. numpy reports its allocations to tracemalloc.
    X_train, _ = make_blobs(1000, 4, centers=5, random_state=0)
    model = SOMGenerativeModel(
        SelfOrganizingMap(8, 8, random_state=0),
        covariance_type=covariance_type,
        refine=None,
        random_state=0,
    ).fit(X_train)
    n_units = 64
    X = np.random.RandomState(0).normal(scale=5.0, size=(40_000, 4))
    n_by_k = 8 * X.shape[0] * n_units  # 20 MB
    chunk_floats, sub_chunk_floats, n_threads = 2**15, 2**14, 2
    monkeypatch.setattr(somgen._mixture, "_CHUNK_FLOATS", chunk_floats)
    monkeypatch.setattr(somgen._mixture, "_SUB_CHUNK_FLOATS", sub_chunk_floats)
    # Every temporary of a chunk together holds at most 4 chunk budgets, and
    # two products of full covariances (1.3 MB per thread here).
    per_thread = 8 * (4 * chunk_floats + 2 * sub_chunk_floats)
    bound = n_threads * per_thread
    assert bound < n_by_k / 5

    with parallel_config(n_jobs=n_threads):
        peak, labels = _peak_bytes(lambda: model.predict(X))
        assert peak < labels.nbytes + bound

        peak, proba = _peak_bytes(lambda: model.predict_proba(X))
        assert proba.nbytes == n_by_k
        assert peak < n_by_k + bound

        peak, log_density = _peak_bytes(lambda: model.score_samples(X))
        assert peak < log_density.nbytes + bound

    # Chunking changes nothing.
    monkeypatch.setattr(somgen._mixture, "_CHUNK_FLOATS", 2**21)
    monkeypatch.setattr(somgen._mixture, "_SUB_CHUNK_FLOATS", 2**17)
    assert_array_equal(model.predict(X), labels)
    assert_allclose(model.predict_proba(X), proba, rtol=1e-12, atol=1e-300)


# --------------------------------------------------------- extreme parameters
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_huge_weight_concentration_gives_uniform_weights(
    iris, covariance_type
):
    # alpha = 1e308 passed validation, then K * alpha overflowed.
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        weight_concentration=1e308,
        random_state=0,
    ).fit(iris)
    assert_allclose(model.weights_, np.full(9, 1 / 9), rtol=1e-15)
    assert model.converged_
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.score_samples(iris)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_huge_shrinkage_gives_the_pooled_covariance(iris, covariance_type):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        covariance_shrinkage=1e308,
        random_state=0,
    ).fit(iris)
    covariances = model.covariances_
    if covariance_type != "tied":
        # Every unit has the same (pooled) covariance.
        assert_allclose(covariances, np.broadcast_to(covariances[0], covariances.shape))
    assert model.converged_
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.score_samples(iris)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("reg_covar", [1e308, np.finfo(np.float64).max])
def test_generative_huge_reg_covar_works(iris, covariance_type, reg_covar):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        random_state=0,
    ).fit(iris)
    log_density = model.score_samples(iris)
    # Every component is N(mu_k, reg_covar I) up to a relative 1e-300.
    d = iris.shape[1]
    expected = -0.5 * d * (np.log(2 * np.pi) + np.log(reg_covar))
    assert_allclose(log_density, expected, rtol=1e-12)
    samples, _ = model.sample(5, random_state=0)
    assert np.all(np.isfinite(samples))
    assert_allclose(model.predict_proba(iris).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        {"weight_concentration": 5e-324},
        {"covariance_shrinkage": 5e-324},
        {"reg_covar": 5e-324},
        {"weight_concentration": 0.0},
        {"tol": 0.0},
        {"max_iter": 1},
        {"tol": 1e308},
    ],
)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_extreme_accepted_parameters_fit(iris, covariance_type, params):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3, random_state=0),
        covariance_type=covariance_type,
        random_state=0,
        **params,
    ).fit(iris)
    assert 1 <= model.n_iter_ <= model.max_iter
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.score_samples(iris)))
    assert_allclose(model.weights_.sum(), 1.0)
    if params.get("tol") == 1e308 or params.get("max_iter") == 1:
        assert model.n_iter_ == 1


@pytest.mark.parametrize(
    "name", ["weight_concentration", "covariance_shrinkage", "reg_covar", "tol"]
)
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_generative_non_finite_parameters_are_rejected_by_name(iris, name, value):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        SOMGenerativeModel(SelfOrganizingMap(2, 2), **{name: value}).fit(iris)


def test_generative_default_map_ignores_the_seed_on_few_features(iris):
    # What the random_state docstring promises: the default map (batch, PCA
    # initialisation) draws no random numbers for data with few features.
    a = SOMGenerativeModel(random_state=0).fit(iris)
    b = SOMGenerativeModel(random_state=1).fit(iris)
    assert a.som_.random_state != b.som_.random_state
    assert_array_equal(a.means_, b.means_)
    assert_array_equal(a.covariances_, b.covariances_)
    assert not np.array_equal(a.sample(5)[0], b.sample(5)[0])
