"""Conditional sampling, unit masks and pandas output of SOMGenerativeModel."""

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._mixture import _conditional_sample

COVARIANCE_TYPES = ["spherical", "diag", "tied", "full"]


@pytest.fixture(scope="module")
def iris():
    X, _ = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X)


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def model(request, iris):
    return SOMGenerativeModel(
        SelfOrganizingMap(3, 3), covariance_type=request.param, random_state=0
    ).fit(iris)


def _gaussian_mixture(n_samples, rng):
    """Samples of a fixed, well separated 3-D Gaussian mixture."""
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 4.0, 4.0]])
    factors = np.random.RandomState(0).normal(size=(3, 3, 3)) * 0.5
    covariances = np.einsum("kij,klj->kil", factors, factors) + 0.3 * np.eye(3)
    roots = np.linalg.cholesky(covariances)
    k = rng.choice(3, n_samples, p=[0.5, 0.3, 0.2])
    noise = rng.normal(size=(n_samples, 3))
    return centres[k] + np.einsum("nij,nj->ni", roots[k], noise)


def _dense_covariances(covariances, covariance_type, n_components, n_features):
    if covariance_type == "spherical":
        return covariances[:, None, None] * np.eye(n_features)
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    return covariances


def _random_covariances(covariance_type, n_components, n_features, rng):
    if covariance_type == "spherical":
        return rng.uniform(0.5, 2.0, size=n_components)
    if covariance_type == "diag":
        return rng.uniform(0.5, 2.0, size=(n_components, n_features))
    A = rng.normal(size=(n_components, n_features, n_features))
    full = np.einsum("kij,klj->kil", A, A) + 0.5 * np.eye(n_features)
    return full[0] if covariance_type == "tied" else full


# ------------------------------------------------------------ moments
def test_sample_conditional_mean_converges_to_impute(model, iris):
    rng = np.random.RandomState(0)
    X = iris[rng.choice(len(iris), 12, replace=False)].copy()
    X[0, 1] = np.nan
    X[1, [0, 2]] = np.nan
    X[2, [1, 2, 3]] = np.nan
    X[3] = np.nan  # fully missing
    X[4:8, 3] = np.nan  # a pattern shared by several rows
    X[8, [0, 3]] = np.nan
    n_draws = 4000
    draws = model.sample_conditional(X, n_draws, random_state=0)
    expected = model.impute(X)
    mean = draws.mean(axis=0)
    standard_error = draws.std(axis=0) / np.sqrt(n_draws)
    missing = np.isnan(X)
    assert np.all(standard_error[missing] > 0)
    assert np.all(
        np.abs(mean - expected)[missing] <= 5 * standard_error[missing] + 1e-12
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_conditional_covariance_is_schur_complement(covariance_type):
    # Two far apart components: the row is dominated by the first one, so the
    # draws follow its conditional Gaussian, whose covariance is the Schur
    # complement Sigma_mm - Sigma_mo Sigma_oo^{-1} Sigma_om.
    rng = np.random.RandomState(0)
    n_features = 4
    means = np.array([[0.5, -1.0, 2.0, 0.0], [60.0, 60.0, -60.0, 60.0]])
    covariances = _random_covariances(covariance_type, 2, n_features, rng)
    weights = np.array([0.3, 0.7])
    x = np.array([[1.0, np.nan, 1.5, np.nan]])
    obs, miss = np.array([0, 2]), np.array([1, 3])
    n_draws = 40000
    draws = _conditional_sample(
        np.random.RandomState(1),
        x,
        n_draws,
        weights,
        means,
        covariances,
        covariance_type,
    )[:, 0, miss]
    cov = _dense_covariances(covariances, covariance_type, 2, n_features)[0]
    S_oo = cov[np.ix_(obs, obs)]
    S_mo = cov[np.ix_(miss, obs)]
    expected_cov = cov[np.ix_(miss, miss)] - S_mo @ np.linalg.solve(S_oo, S_mo.T)
    expected_mean = means[0, miss] + S_mo @ np.linalg.solve(
        S_oo, x[0, obs] - means[0, obs]
    )
    empirical_cov = np.cov(draws, rowvar=False)
    # Standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n).
    scale = np.sqrt(
        (np.outer(np.diag(expected_cov), np.diag(expected_cov)) + expected_cov**2)
        / n_draws
    )
    assert np.all(np.abs(empirical_cov - expected_cov) <= 5 * scale)
    mean_error = np.sqrt(np.diag(expected_cov) / n_draws)
    assert np.all(np.abs(draws.mean(axis=0) - expected_mean) <= 5 * mean_error)


def test_sample_conditional_fully_missing_rows_draw_from_the_mixture():
    rng = np.random.RandomState(0)
    means = np.array([[0.0, 0.0], [5.0, -5.0]])
    covariances = np.array([[[1.0, 0.5], [0.5, 2.0]], [[0.5, 0.0], [0.0, 0.5]]])
    weights = np.array([0.25, 0.75])
    draws = _conditional_sample(
        rng, np.full((1, 2), np.nan), 40000, weights, means, covariances, "full"
    )[:, 0]
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covariances) + np.einsum(
        "k,ki,kj->ij", weights, means, means
    )
    total = second - np.outer(mean, mean)
    np.testing.assert_allclose(
        draws.mean(axis=0), mean, atol=5 * np.sqrt(total.max() / 40000)
    )
    np.testing.assert_allclose(np.cov(draws, rowvar=False), total, rtol=0.05, atol=0.05)


# -------------------------------------------------------------- calibration
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_conditional_intervals_are_calibrated(covariance_type):
    # A well specified case: a 3-D Gaussian mixture, a 3x3 map. Mask 20 % of
    # the held-out entries; the 5-95 % quantiles of the draws must cover the
    # true values about 90 % of the time.
    X_train = _gaussian_mixture(3000, np.random.RandomState(0))
    X_test = _gaussian_mixture(1000, np.random.RandomState(1))
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3), covariance_type=covariance_type, random_state=0
    ).fit(X_train)
    mask = np.random.RandomState(2).uniform(size=X_test.shape) < 0.2
    draws = model.sample_conditional(
        np.where(mask, np.nan, X_test), 200, random_state=0
    )
    low, high = np.quantile(draws, [0.05, 0.95], axis=0)
    covered = ((X_test >= low) & (X_test <= high))[mask]
    assert mask.sum() > 500
    assert 0.85 <= covered.mean() <= 0.95


# ---------------------------------------------------------------- contract
def test_sample_conditional_shape_and_observed_entries(model, iris):
    X = iris[:6].copy()
    X[1, 0] = np.nan
    X[2, [1, 3]] = np.nan
    X[3] = np.nan
    draws = model.sample_conditional(X, random_state=0)
    assert draws.shape == (1, 6, 4)  # n_draws=1 is still 3-D
    assert draws.dtype == np.float64
    draws = model.sample_conditional(X, 7, random_state=0)
    assert draws.shape == (7, 6, 4)
    assert not np.isnan(draws).any()
    observed = ~np.isnan(X)
    for draw in draws:
        np.testing.assert_array_equal(draw[observed], X[observed])
    # Draws differ from one another.
    assert np.unique(draws[:, 1, 0]).size == 7
    # The input is left untouched.
    assert np.isnan(X[3]).all()


def test_sample_conditional_without_missing_values_repeats_the_data(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(iris)
    draws = model.sample_conditional(iris[:5], 3)
    np.testing.assert_array_equal(draws, np.broadcast_to(iris[:5], (3, 5, 4)))


def test_sample_conditional_is_reproducible(model, iris):
    X = np.where(np.random.RandomState(0).uniform(size=iris.shape) < 0.3, np.nan, iris)
    first = model.sample_conditional(X, 5, random_state=42)
    np.testing.assert_array_equal(
        first, model.sample_conditional(X, 5, random_state=42)
    )
    assert not np.array_equal(first, model.sample_conditional(X, 5, random_state=43))
    # random_state=None uses the estimator's random_state (an int here).
    np.testing.assert_array_equal(
        model.sample_conditional(X, 2), model.sample_conditional(X, 2)
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_conditional_sample_does_not_depend_on_chunk_size(covariance_type):
    rng = np.random.RandomState(0)
    n_components, n_features = 5, 4
    means = rng.normal(size=(n_components, n_features)) * 3
    covariances = _random_covariances(covariance_type, n_components, n_features, rng)
    weights = rng.dirichlet(np.ones(n_components))
    X = rng.normal(size=(300, n_features)) * 3
    X[rng.uniform(size=X.shape) < 0.4] = np.nan
    args = (X, 3, weights, means, covariances, covariance_type)
    default = _conditional_sample(np.random.RandomState(7), *args)
    one_row = _conditional_sample(np.random.RandomState(7), *args, chunk_size=1)
    np.testing.assert_allclose(one_row, default, rtol=1e-12, atol=1e-12)


def test_sample_conditional_rejects_bad_input(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(iris)
    X = iris[:3].copy()
    X[0, 0] = np.nan
    for n_draws in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="n_draws must be a positive integer"):
            model.sample_conditional(X, n_draws)
    X[1, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.sample_conditional(X)
    with pytest.raises(ValueError, match="features"):
        model.sample_conditional(iris[:3, :3])
    with pytest.raises(NotFittedError):
        SOMGenerativeModel().sample_conditional(iris[:3])


# ------------------------------------------------------------- unit masks
def test_sample_units_mask_matches_indices(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(iris)
    mask = np.zeros(9, dtype=bool)
    mask[[0, 4, 5]] = True
    X_mask, units_mask = model.sample(200, units=mask, random_state=0)
    X_idx, units_idx = model.sample(200, units=[5, 0, 4], random_state=0)
    np.testing.assert_array_equal(X_mask, X_idx)
    np.testing.assert_array_equal(units_mask, units_idx)
    assert set(units_mask.tolist()) <= {0, 4, 5}
    # A list of booleans is a mask too.
    X_list, _ = model.sample(200, units=mask.tolist(), random_state=0)
    np.testing.assert_array_equal(X_list, X_mask)


def test_sample_units_mask_errors(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(iris)
    with pytest.raises(ValueError, match=r"shape \(9,\).*got shape \(8,\)"):
        model.sample(3, units=np.ones(8, dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(9,\)"):
        model.sample(3, units=np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="selects no unit"):
        model.sample(3, units=np.zeros(9, dtype=bool))
    with pytest.raises(ValueError, match="integer unit indices or a boolean mask"):
        model.sample(3, units=np.ones(9))


# ------------------------------------------------------------ pandas output
@pytest.fixture
def frame(iris):
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return pd.DataFrame(iris, columns=columns, index=np.arange(100, 250))


def test_impute_and_sample_pandas_output(frame):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(frame)
    X = frame.iloc[:10].copy()
    X.iloc[2, 1] = np.nan
    # Default: NumPy arrays, as for any scikit-learn estimator.
    expected = model.impute(X)
    assert isinstance(expected, np.ndarray)
    assert isinstance(model.sample(3)[0], np.ndarray)

    assert model.set_output(transform="pandas") is model
    filled = model.impute(X)
    assert isinstance(filled, pd.DataFrame)
    assert list(filled.columns) == list(frame.columns)
    assert list(filled.index) == list(X.index)
    np.testing.assert_array_equal(filled.to_numpy(), expected)
    X_new, units = model.sample(5, random_state=0)
    assert isinstance(X_new, pd.DataFrame)
    assert list(X_new.columns) == list(frame.columns)
    assert isinstance(units, np.ndarray)
    # Draws stay a 3-D array.
    assert isinstance(model.sample_conditional(X, 2), np.ndarray)
    # clone keeps the configuration, as for transformers.
    clone_model = clone(model).fit(frame)
    assert isinstance(clone_model.sample(2)[0], pd.DataFrame)
    # "default" switches back; None leaves it as is.
    model.set_output(transform="default").set_output(transform=None)
    assert isinstance(model.impute(X), np.ndarray)


def test_pandas_output_global_config_and_default_names(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(iris)
    with sklearn.config_context(transform_output="pandas"):
        X_new, _ = model.sample(4, random_state=0)
        assert isinstance(X_new, pd.DataFrame)
        assert list(X_new.columns) == ["x0", "x1", "x2", "x3"]
        filled = model.impute(iris[:3])
        assert list(filled.index) == [0, 1, 2]
        # An explicit choice on the estimator wins over the global setting.
        model.set_output(transform="default")
        assert isinstance(model.sample(2)[0], np.ndarray)


def test_set_output_rejects_unknown_container(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0)
    with pytest.raises(ValueError, match="'default', 'pandas' or None"):
        model.set_output(transform="polars")


def test_global_polars_output_config_leaves_arrays():
    # A global set_config(transform_output="polars") is common in pipelines;
    # the model must keep returning arrays rather than fail.
    from sklearn import config_context
    from sklearn.datasets import load_iris

    from somgen import SelfOrganizingMap, SOMGenerativeModel

    X, _ = load_iris(return_X_y=True)
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3, random_state=0)).fit(X)
    with config_context(transform_output="polars"):
        samples, units = model.sample(5, random_state=0)
        filled = model.impute(np.where(np.eye(4, dtype=bool)[:1], np.nan, X[:1]))
    assert isinstance(samples, np.ndarray) and isinstance(filled, np.ndarray)
