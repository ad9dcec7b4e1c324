"""TransformedDensity and sample_pipeline, tested against independent references."""

import pickle

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import multivariate_normal, norm
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from somgen import (
    SelfOrganizingMap,
    SOMGenerativeModel,
    TransformedDensity,
    sample_pipeline,
)
from somgen.utils._sklearn_compat import InvalidParameterError

TRANSFORMERS = [
    "passthrough",
    StandardScaler(),
    StandardScaler(with_mean=False),
    StandardScaler(with_std=False),
    MinMaxScaler(feature_range=(-1.0, 3.0)),
    MaxAbsScaler(),
    RobustScaler(quantile_range=(10.0, 90.0), unit_variance=True),
    PCA(),
    PCA(whiten=True),
]


def _densities():
    return [
        GaussianMixture(2, random_state=0),
        KernelDensity(bandwidth=0.3),
        SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0),
    ]


def _ids(values):
    return [repr(v).replace("\n", "").replace(" ", "") for v in values]


@pytest.fixture(scope="module")
def data_1d():
    rng = np.random.RandomState(0)
    # raw units far from 1 so that forgetting the Jacobian is visible
    return np.concatenate([rng.normal(40.0, 5.0, 120), rng.normal(70.0, 3.0, 80)])[
        :, None
    ]


@pytest.fixture(scope="module")
def data_2d():
    rng = np.random.RandomState(1)
    # correlated, with very different scales: PCA rotates and whitening matters
    Z = rng.normal(size=(300, 2))
    return Z @ np.array([[8.0, 0.3], [-2.0, 0.4]]) + np.array([50.0, -3.0])


# ----------------------------------------------------------- scikit-learn contract
ESTIMATORS = [
    TransformedDensity(
        StandardScaler(),
        GaussianMixture(2, init_params="random_from_data", random_state=0),
    ),
    TransformedDensity(PCA(whiten=True), KernelDensity()),
    TransformedDensity(
        "passthrough", SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0)
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_transformed_density_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=_ids(ESTIMATORS))
def test_transformed_density_param_validation(estimator):
    check_param_validation("TransformedDensity", estimator)


# ------------------------------------------------------------------ exactness
@pytest.mark.parametrize("density", _densities(), ids=_ids(_densities()))
@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=_ids(TRANSFORMERS))
def test_transformed_density_integrates_to_one_1d(data_1d, transformer, density):
    model = TransformedDensity(transformer, density).fit(data_1d)
    lo, hi = data_1d.min() - 250.0, data_1d.max() + 250.0

    def pdf(x):
        return float(np.exp(model.score_samples([[x]])[0]))

    total, _ = integrate.quad(pdf, lo, hi, limit=500, points=[40.0, 55.0, 70.0])
    assert total == pytest.approx(1.0, abs=2e-4)


@pytest.mark.parametrize(
    "density",
    [
        GaussianMixture(3, covariance_type="full", random_state=0),
        KernelDensity(bandwidth=0.4),
        SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0),
    ],
    ids=["gmm", "kde", "som"],
)
@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=_ids(TRANSFORMERS))
def test_transformed_density_integrates_to_one_2d(data_2d, transformer, density):
    model = TransformedDensity(transformer, density).fit(data_2d)
    # the data's principal axes: integrate on a grid aligned with them, in raw
    # units (the change of variables is a rotation: unit Jacobian)
    centre = data_2d.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(data_2d.T))
    half = 20.0 * np.sqrt(eigval)
    u = np.linspace(-half[0], half[0], 481)
    v = np.linspace(-half[1], half[1], 481)
    U, V = np.meshgrid(u, v, indexing="ij")
    points = centre + np.column_stack([U.ravel(), V.ravel()]) @ eigvec.T
    pdf = np.exp(model.score_samples(points)).reshape(U.shape)
    total = integrate.trapezoid(integrate.trapezoid(pdf, v, axis=1), u)
    assert total == pytest.approx(1.0, abs=2e-3)


def _hand_log_det(transformer, X):
    """log|det J| of the fitted transformer, from the data alone."""

    def nonzero(scale):
        return np.where(scale == 0.0, 1.0, scale)

    if isinstance(transformer, StandardScaler):
        if not transformer.with_std:
            return 0.0
        return -np.sum(np.log(nonzero(X.std(axis=0))))
    if isinstance(transformer, MinMaxScaler):
        low, high = transformer.feature_range
        data_range = nonzero(X.max(axis=0) - X.min(axis=0))
        return np.sum(np.log((high - low) / data_range))
    if isinstance(transformer, MaxAbsScaler):
        return -np.sum(np.log(nonzero(np.abs(X).max(axis=0))))
    if isinstance(transformer, RobustScaler):
        q_low, q_high = transformer.quantile_range
        iqr = np.percentile(X, q_high, axis=0) - np.percentile(X, q_low, axis=0)
        scale = nonzero(iqr)
        if transformer.unit_variance:  # the IQR of a standard normal
            scale = scale / (norm.ppf(q_high / 100.0) - norm.ppf(q_low / 100.0))
        return -np.sum(np.log(scale))
    if isinstance(transformer, PCA):
        if not transformer.whiten:
            return 0.0
        return -0.5 * np.sum(np.log(np.linalg.eigvalsh(np.cov(X.T))))
    assert transformer == "passthrough"
    return 0.0


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=_ids(TRANSFORMERS))
def test_transformed_density_log_det_jacobian_by_hand(transformer):
    rng = np.random.RandomState(2)
    X = rng.normal([3.0, -20.0, 0.0], [0.01, 30.0, 2.0], size=(50, 3))
    if not isinstance(transformer, PCA):
        X[:, 2] = 7.5  # a constant feature: scikit-learn scales it by 1
    model = TransformedDensity(transformer, GaussianMixture(random_state=0)).fit(X)
    assert isinstance(model.log_det_jacobian_, float)
    assert model.log_det_jacobian_ == pytest.approx(
        _hand_log_det(transformer, X), abs=1e-9
    )


def test_transformed_density_log_det_known_values():
    X = np.array([[-1.0, 10.0], [1.0, 30.0], [3.0, 50.0]])
    fit = TransformedDensity(StandardScaler(), KernelDensity()).fit
    std = np.array([np.sqrt(8.0 / 3.0), np.sqrt(800.0 / 3.0)])
    assert fit(X).log_det_jacobian_ == pytest.approx(-np.log(std).sum(), abs=1e-12)
    fit = TransformedDensity(MaxAbsScaler(), KernelDensity()).fit
    assert fit(X).log_det_jacobian_ == pytest.approx(-np.log(150.0), abs=1e-12)
    fit = TransformedDensity(MinMaxScaler(), KernelDensity()).fit
    assert fit(X).log_det_jacobian_ == pytest.approx(-np.log(160.0), abs=1e-12)


@pytest.mark.parametrize("density", _densities(), ids=_ids(_densities()))
@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=_ids(TRANSFORMERS))
def test_transformed_density_score_samples_is_scaled_model_plus_log_det(
    data_2d, transformer, density
):
    model = TransformedDensity(transformer, density).fit(data_2d)
    if transformer == "passthrough":
        Z = data_2d
    else:
        Z = clone(transformer).fit(data_2d).transform(data_2d)
    scaled = clone(density).fit(Z)
    expected = scaled.score_samples(Z) + _hand_log_det(transformer, data_2d)
    np.testing.assert_allclose(model.score_samples(data_2d), expected, atol=1e-10)
    assert model.score(data_2d) == pytest.approx(expected.mean(), abs=1e-10)


@pytest.mark.parametrize(
    "transformer", [StandardScaler(), PCA(), PCA(whiten=True), RobustScaler()]
)
def test_transformed_density_gaussian_matches_scipy(data_2d, transformer):
    # one full-covariance Gaussian after an affine map is the raw-units MLE Gaussian
    gmm = GaussianMixture(1, covariance_type="full", reg_covar=0.0, random_state=0)
    model = TransformedDensity(transformer, gmm).fit(data_2d)
    reference = multivariate_normal(data_2d.mean(axis=0), np.cov(data_2d.T, bias=True))
    X_test = data_2d[:20] + np.array([5.0, 0.5])
    np.testing.assert_allclose(
        model.score_samples(X_test), reference.logpdf(X_test), rtol=1e-8, atol=1e-8
    )


def test_transformed_density_score_is_mean_for_kernel_density(data_2d):
    model = TransformedDensity(StandardScaler(), KernelDensity()).fit(data_2d)
    scores = model.score_samples(data_2d)
    assert model.score(data_2d) == pytest.approx(scores.mean(), rel=1e-12)
    # KernelDensity.score itself is a sum, in scaled units
    assert model.density_.score(model.transformer_.transform(data_2d)) == (
        pytest.approx(np.sum(scores - model.log_det_jacobian_), rel=1e-12)
    )


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "transformer, match",
    [
        (FunctionTransformer(np.log1p, np.expm1), "FunctionTransformer"),
        (QuantileTransformer(n_quantiles=10), "QuantileTransformer"),
        (PCA(n_components=1), "kept 1 of 2 components"),
        (MinMaxScaler(clip=True), "clip=True"),
    ],
)
def test_transformed_density_unsupported_transformer(data_2d, transformer, match):
    model = TransformedDensity(transformer, GaussianMixture())
    with pytest.raises((TypeError, ValueError), match=match) as info:
        model.fit(np.abs(data_2d))
    if not isinstance(transformer, (PCA, MinMaxScaler)):
        assert info.type is TypeError
        assert "StandardScaler" in str(info.value)  # lists the supported ones
        assert "PCA" in str(info.value)


def test_transformed_density_rejects_subclass_of_supported(data_2d):
    class LogScaler(StandardScaler):
        def transform(self, X, copy=None):
            return np.log(super().transform(X, copy=copy) + 10.0)

    with pytest.raises(TypeError, match="LogScaler"):
        TransformedDensity(LogScaler(), GaussianMixture()).fit(data_2d)


def test_transformed_density_rejects_transformer_without_inverse(data_2d):
    with pytest.raises(InvalidParameterError, match="inverse_transform"):
        TransformedDensity(Normalizer(), GaussianMixture()).fit(data_2d)


def test_transformed_density_not_fitted_and_bad_n_samples(data_2d):
    model = TransformedDensity(StandardScaler(), GaussianMixture())
    with pytest.raises(NotFittedError):
        model.sample(3)
    with pytest.raises(NotFittedError):
        model.score_samples(data_2d)
    model.fit(data_2d)
    for n_samples in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_samples"):
            model.sample(n_samples)


# ------------------------------------------------------------------- sampling
@pytest.mark.parametrize(
    "density",
    [
        GaussianMixture(2, random_state=0),
        KernelDensity(bandwidth=0.02),  # narrow: barely inflates the variance
        SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0),
    ],
    ids=["gmm", "kde", "som"],
)
@pytest.mark.parametrize(
    "transformer",
    ["passthrough", StandardScaler(), MinMaxScaler(), PCA(whiten=True)],
    ids=["passthrough", "standard", "minmax", "pca-whiten"],
)
def test_transformed_density_sample_in_raw_units(transformer, density):
    rng = np.random.RandomState(3)
    mean, std = np.array([100.0, -5.0]), np.array([10.0, 0.1])
    X = rng.normal(mean, std, size=(400, 2))
    model = TransformedDensity(transformer, density).fit(X)
    X_new = model.sample(4000, random_state=0)
    assert isinstance(X_new, np.ndarray)
    assert X_new.shape == (4000, 2)
    assert np.all(np.abs(X_new.mean(axis=0) - mean) < 0.1 * std)
    np.testing.assert_allclose(X_new.std(axis=0), std, rtol=0.15)
    # seeded per call, reproducibly, without changing the fitted density
    np.testing.assert_array_equal(
        model.sample(5, random_state=1), model.sample(5, random_state=1)
    )
    assert repr(model.density_) == repr(density)  # seeding left it unchanged


def test_transformed_density_sample_seeds_gaussian_mixture(data_2d):
    model = TransformedDensity(StandardScaler(), GaussianMixture(2, random_state=0))
    model.fit(data_2d)
    a = model.sample(10, random_state=5)
    b = model.sample(10, random_state=5)
    c = model.sample(10, random_state=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert model.density_.random_state == 0
    # None keeps GaussianMixture's own seed
    np.testing.assert_array_equal(model.sample(10), model.sample(10))
    expected = model.transformer_.inverse_transform(model.density_.sample(10)[0])
    np.testing.assert_array_equal(model.sample(10), expected)


# ------------------------------------------------------ model selection, copies
def test_transformed_density_grid_search_picks_components():
    rng = np.random.RandomState(4)
    X = np.concatenate(
        [
            rng.normal([0.0, 100.0], [1.0, 20.0], (150, 2)),
            rng.normal([8.0, 300.0], [1.0, 20.0], (150, 2)),
        ]
    )
    model = TransformedDensity(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(model, {"density__n_components": [1, 2]}, cv=3).fit(X)
    assert search.best_params_ == {"density__n_components": 2}
    best = search.best_estimator_
    assert best.density_.n_components == 2
    assert search.best_score_ == pytest.approx(
        np.mean(search.cv_results_["mean_test_score"][1]), rel=1e-12
    )


def test_transformed_density_grid_search_over_transformers_and_kde(data_2d):
    model = TransformedDensity(StandardScaler(), KernelDensity())
    grid = {
        "transformer": [StandardScaler(), PCA(whiten=True)],
        "density__bandwidth": [0.01, 0.3, 10.0],
    }
    search = GridSearchCV(model, grid, cv=3).fit(data_2d)
    assert search.best_params_["density__bandwidth"] == 0.3
    # mean held-out log-likelihoods, comparable because both are in raw units
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert np.all(search.cv_results_["mean_test_score"] < 0)


def test_transformed_density_nested_params():
    model = TransformedDensity(StandardScaler(), GaussianMixture())
    params = model.get_params()
    assert "transformer__with_mean" in params
    assert "density__n_components" in params
    model.set_params(transformer__with_mean=False, density__n_components=3)
    assert model.transformer.with_mean is False
    assert model.density.n_components == 3


@pytest.mark.parametrize("density", _densities(), ids=_ids(_densities()))
def test_transformed_density_clone_and_pickle(data_2d, density):
    transformer = PCA(whiten=True)
    model = TransformedDensity(transformer, density).fit(data_2d)
    assert model.transformer_ is not transformer
    assert model.density_ is not density
    assert not hasattr(density, "n_features_in_")  # the parameter is untouched
    unfitted = clone(model)
    assert not hasattr(unfitted, "density_")
    assert unfitted.get_params()["density"] is not model.density
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        restored.score_samples(data_2d), model.score_samples(data_2d)
    )
    assert restored.log_det_jacobian_ == model.log_det_jacobian_
    refit = clone(model).fit(data_2d)
    np.testing.assert_allclose(
        refit.score_samples(data_2d), model.score_samples(data_2d), rtol=1e-12
    )


# ------------------------------------------------------------- sample_pipeline
def test_sample_pipeline_scaler_gaussian_mixture():
    rng = np.random.RandomState(5)
    mean, std = np.array([-40.0, 2.0]), np.array([5.0, 0.01])
    X = rng.normal(mean, std, size=(300, 2))
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0)).fit(X)
    X_new = sample_pipeline(pipe, 3000, random_state=0)
    assert X_new.shape == (3000, 2)
    assert np.all(np.abs(X_new.mean(axis=0) - mean) < 0.1 * std)
    np.testing.assert_allclose(X_new.std(axis=0), std, rtol=0.1)
    np.testing.assert_array_equal(
        sample_pipeline(pipe, 7, random_state=3),
        sample_pipeline(pipe, 7, random_state=3),
    )
    # same draws as TransformedDensity, which also knows the raw-unit density
    model = TransformedDensity(StandardScaler(), GaussianMixture(random_state=0))
    np.testing.assert_allclose(
        model.fit(X).sample(7, random_state=3),
        sample_pipeline(pipe, 7, random_state=3),
        rtol=1e-12,
    )
    # the pipeline's own densities are in scaled units
    np.testing.assert_allclose(
        pipe.score_samples(X), model.score_samples(X) - model.log_det_jacobian_
    )


def test_sample_pipeline_scaler_pca_som():
    rng = np.random.RandomState(6)
    X = rng.normal([10.0, -10.0, 0.0], [3.0, 1.0, 0.2], size=(300, 3))
    scaler, pca = StandardScaler(), PCA(n_components=2)
    som = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0)
    pipe = Pipeline(
        [("scale", scaler), ("skip", "passthrough"), ("pca", pca), ("som", som)]
    ).fit(X)
    X_new = sample_pipeline(pipe, 2000, random_state=0)
    assert X_new.shape == (2000, 3)
    Z, _ = pipe.named_steps["som"].sample(2000, random_state=0)
    expected = pipe.named_steps["scale"].inverse_transform(
        pipe.named_steps["pca"].inverse_transform(Z)
    )
    np.testing.assert_allclose(X_new, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(X_new.mean(axis=0), X.mean(axis=0), atol=0.15)


def test_sample_pipeline_kernel_density_and_none_step(data_1d):
    pipe = Pipeline(
        [
            ("none", None),
            ("scale", MinMaxScaler()),
            ("kde", KernelDensity(bandwidth=0.05)),
        ]
    ).fit(data_1d)
    X_new = sample_pipeline(pipe, 500, random_state=0)
    assert X_new.shape == (500, 1)
    # within a few bandwidths (0.05 * data range) of the data, in raw units
    margin = 4 * 0.05 * np.ptp(data_1d)
    assert data_1d.min() - margin < X_new.min() < data_1d.min() + 5.0
    assert data_1d.max() - 5.0 < X_new.max() < data_1d.max() + margin


def test_sample_pipeline_errors(data_2d):
    pipe = Pipeline(
        [("norm", Normalizer()), ("gmm", GaussianMixture(random_state=0))]
    ).fit(data_2d)
    with pytest.raises(TypeError, match="'norm'.*inverse_transform"):
        sample_pipeline(pipe, 2)
    pipe = Pipeline([("scale", StandardScaler()), ("pca", PCA())]).fit(data_2d)
    with pytest.raises(TypeError, match="'pca'.*sample"):
        sample_pipeline(pipe, 2)
    pipe = Pipeline([("scale", StandardScaler()), ("end", "passthrough")]).fit(data_2d)
    with pytest.raises(TypeError, match="'end'.*sample"):
        sample_pipeline(pipe, 2)
    unfitted = make_pipeline(StandardScaler(), GaussianMixture())
    with pytest.raises(NotFittedError):
        sample_pipeline(unfitted, 2)
    fitted = make_pipeline(StandardScaler(), GaussianMixture()).fit(data_2d)
    with pytest.raises(InvalidParameterError, match="n_samples"):
        sample_pipeline(fitted, 0)
    with pytest.raises(InvalidParameterError, match="pipeline"):
        sample_pipeline(GaussianMixture().fit(data_2d), 2)


class _UnseededDensity(GaussianMixture):
    """A density whose sample takes no random_state and that has no seed."""

    def __init__(self, n_components=1):
        super().__init__(n_components)

    def get_params(self, deep=True):
        return {"n_components": self.n_components}


def test_transformed_density_sample_without_seed_or_method(data_2d):
    model = TransformedDensity(StandardScaler(), _UnseededDensity()).fit(data_2d)
    assert model.sample(3).shape == (3, 2)
    with pytest.raises(TypeError, match="cannot be seeded"):
        model.sample(3, random_state=0)
    model = TransformedDensity(StandardScaler(), KernelDensity(kernel="linear"))
    with pytest.raises(NotImplementedError):  # KernelDensity's own limitation
        model.fit(data_2d).sample(3)
    pipe = make_pipeline(StandardScaler(), _UnseededDensity()).fit(data_2d)
    with pytest.raises(TypeError, match="'_unseededdensity'.*cannot be seeded"):
        sample_pipeline(pipe, 3, random_state=0)


def test_transformed_density_failed_fit_leaves_fitted_model_unchanged():
    from sklearn.mixture import GaussianMixture
    from sklearn.preprocessing import StandardScaler

    from somgen import TransformedDensity

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 2))
    model = TransformedDensity(StandardScaler(), GaussianMixture(2, random_state=0))
    model.fit(X)
    before = model.score_samples(X[:5])
    state = dict(model.__dict__)
    with pytest.raises(ValueError):
        model.fit(np.full((3, 5), np.nan))  # wrong features and NaN
    assert model.__dict__.keys() == state.keys()
    assert model.n_features_in_ == 2
    np.testing.assert_array_equal(model.score_samples(X[:5]), before)
