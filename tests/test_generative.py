"""Behaviour of SOMGenerativeModel, tested on its own outputs."""

import pickle

import joblib
import numpy as np
import pytest
from scipy import integrate, sparse
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.frozen import FrozenEstimator
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen.utils._sklearn_compat import InvalidParameterError

COVARIANCE_TYPES = ["spherical", "diag", "tied", "full"]


@pytest.fixture(scope="module")
def iris():
    X, _ = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X)


def _mixture_moments(model):
    """Analytic mean and covariance of the fitted mixture."""
    w, mu = model.weights_, model.means_
    d = mu.shape[1]
    cov = model.covariances_
    if model.covariance_type == "spherical":
        covs = cov[:, None, None] * np.eye(d)
    elif model.covariance_type == "diag":
        covs = np.stack([np.diag(c) for c in cov])
    elif model.covariance_type == "tied":
        covs = np.broadcast_to(cov, (len(w), d, d))
    else:
        covs = cov
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, mu, mu)
    return mean, second - np.outer(mean, mean), covs


def _brute_force_log_density(model, X):
    _, _, covs = _mixture_moments(model)
    comp = np.stack(
        [
            multivariate_normal(m, c).logpdf(X)
            for m, c in zip(model.means_, covs, strict=True)
        ],
        axis=-1,
    )
    return logsumexp(comp + np.log(model.weights_), axis=-1)


# ------------------------------------------------------------------- density
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_score_samples_matches_brute_force(iris, covariance_type):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 4), covariance_type=covariance_type, random_state=0
    ).fit(iris)
    np.testing.assert_allclose(
        model.score_samples(iris), _brute_force_log_density(model, iris), rtol=1e-9
    )
    assert model.score(iris) == pytest.approx(np.mean(model.score_samples(iris)))
    assert model.score_samples(iris).dtype == np.float64
    assert model.weights_.sum() == pytest.approx(1.0)
    # The means moved from the prototypes (default mean_stiffness=1) ...
    assert not np.array_equal(model.means_, model.som_.codebook_)
    # ... and stay pinned to them with mean_stiffness=inf.
    pinned = SOMGenerativeModel(
        SelfOrganizingMap(3, 4),
        covariance_type=covariance_type,
        mean_stiffness=np.inf,
        random_state=0,
    ).fit(iris)
    np.testing.assert_array_equal(pinned.means_, pinned.som_.codebook_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_density_integrates_to_one_1d(covariance_type):
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(-2, 0.5, 150), rng.normal(1.5, 1.0, 250)])[:, None]
    model = SOMGenerativeModel(
        SelfOrganizingMap(1, 6), covariance_type=covariance_type, random_state=0
    ).fit(X)
    total, _ = integrate.quad(
        lambda t: np.exp(model.score_samples([[t]]))[0], -15, 15, limit=200
    )
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "covariance_type, latent",
    [
        ("diag", None),
        ("full", None),
        ("spherical", KernelDensity(bandwidth=0.7)),
        ("tied", GaussianMixture(2, random_state=0)),
    ],
)
def test_generative_density_integrates_to_one_2d(covariance_type, latent):
    X, _ = make_blobs(400, 2, centers=3, cluster_std=0.6, random_state=1)
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3),
        covariance_type=covariance_type,
        latent_density=latent,
        random_state=0,
    ).fit(X)
    lo, hi = X.min(0) - 4, X.max(0) + 4
    gx = np.linspace(lo[0], hi[0], 400)
    gy = np.linspace(lo[1], hi[1], 400)
    xx, yy = np.meshgrid(gx, gy)
    dens = np.exp(model.score_samples(np.column_stack([xx.ravel(), yy.ravel()])))
    total = integrate.trapezoid(
        integrate.trapezoid(dens.reshape(xx.shape), gx, axis=1), gy
    )
    assert total == pytest.approx(1.0, abs=2e-3)


def test_generative_em_improves_training_likelihood():
    X, _ = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(
        X + np.random.RandomState(0).uniform(size=X.shape)
    )
    som = SelfOrganizingMap(6, 6, random_state=0)
    one_shot = SOMGenerativeModel(som, refine=None).fit(X)
    refined = SOMGenerativeModel(som, refine="em", mean_stiffness=np.inf).fit(X)
    assert one_shot.n_iter_ == 0 and one_shot.converged_
    assert refined.n_iter_ >= 1
    assert refined.score(X) > one_shot.score(X) + 0.3
    # The map, hence the means, are the same: only weights and covariances move.
    np.testing.assert_array_equal(refined.means_, one_shot.means_)
    # Means free to move under the grid prior gain more on the same data.
    topographic = SOMGenerativeModel(som, refine="em", mean_stiffness=1.0).fit(X)
    assert topographic.score(X) > refined.score(X)


def test_generative_hit_weights_without_refinement(iris):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3), refine=None, weight_concentration=2.0
    ).fit(iris)
    hits = np.bincount(model.som_.predict(iris), minlength=9)
    np.testing.assert_allclose(model.weights_, (hits + 2.0) / (len(iris) + 18.0))


def test_generative_shrinkage_pulls_toward_pooled(iris):
    weak = SOMGenerativeModel(
        SelfOrganizingMap(4, 4), refine=None, covariance_shrinkage=1e-3
    ).fit(iris)
    strong = SOMGenerativeModel(
        SelfOrganizingMap(4, 4), refine=None, covariance_shrinkage=1e6
    ).fit(iris)
    # Infinite shrinkage: every unit has the pooled residual variances.
    spread = strong.covariances_.std(axis=0) / strong.covariances_.mean(axis=0)
    assert np.all(spread < 1e-3)
    assert np.all(weak.covariances_.std(axis=0) > 10 * strong.covariances_.std(0))


def test_generative_latent_density_sets_weights(iris):
    kde = KernelDensity(bandwidth=1.0)
    model = SOMGenerativeModel(
        SelfOrganizingMap(4, 5), latent_density=kde, random_state=0
    ).fit(iris)
    assert model.latent_density_ is not kde  # a fitted clone
    log_p = model.latent_density_.score_samples(model.som_.unit_coords_)
    np.testing.assert_allclose(model.weights_, np.exp(log_p - logsumexp(log_p)))
    assert "bandwidth_" not in vars(kde) and not hasattr(kde, "tree_")


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_generative_sample_moments_match_model(iris, covariance_type):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3), covariance_type=covariance_type, random_state=0
    ).fit(iris)
    X_new, units = model.sample(200_000, random_state=1)
    mean, cov, _ = _mixture_moments(model)
    # Statistics measured on the samples themselves.
    np.testing.assert_allclose(X_new.mean(axis=0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(X_new, rowvar=False), cov, atol=0.02)
    freq = np.bincount(units, minlength=9) / len(units)
    np.testing.assert_allclose(freq, model.weights_, atol=0.005)
    # Drawn in random order, not grouped by unit.
    assert np.mean(np.diff(units) != 0) > 0.5


def test_generative_sample_units_restricts_region(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0).fit(iris)
    region = [0, 1, 4, 5]
    X_new, units = model.sample(5000, units=region, random_state=0)
    assert set(np.unique(units)) <= set(region)
    assert len(set(np.unique(units))) == 4
    # Each sample is centred on its own unit's prototype.
    for k in region:
        np.testing.assert_allclose(
            X_new[units == k].mean(0), model.means_[k], atol=0.15
        )
    with pytest.raises(ValueError, match="unit"):
        model.sample(3, units=[16])
    with pytest.raises(ValueError, match="unit"):
        model.sample(3, units=[])


def test_generative_sample_reproducible_and_per_call_seed(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=5).fit(iris)
    a, ua = model.sample(50)
    b, ub = model.sample(50)
    np.testing.assert_array_equal(a, b)  # the estimator's int seed, each call
    c, _ = model.sample(50, random_state=0)
    d, _ = model.sample(50, random_state=0)
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)
    for bad in (0, -2, 2.5, "3", True):
        with pytest.raises(ValueError, match="n_samples must be a positive integer"):
            model.sample(bad)


def test_generative_pickle_sample_bit_identical(iris, tmp_path):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 4), covariance_type="full", random_state=0
    ).fit(iris)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    for other in (pickle.loads(pickle.dumps(model)), joblib.load(path)):
        for seed in (0, 123):
            x1, u1 = model.sample(100, random_state=seed)
            x2, u2 = other.sample(100, random_state=seed)
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(u1, u2)
        np.testing.assert_array_equal(
            other.score_samples(iris), model.score_samples(iris)
        )


# ------------------------------------------------------ posterior, criteria
def test_generative_predict_proba_and_predict(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(iris)
    proba = model.predict_proba(iris)
    assert proba.shape == (len(iris), 9)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(iris), proba.argmax(axis=1))
    # Bayes' rule from the component densities.
    _, _, covs = _mixture_moments(model)
    joint = np.stack(
        [
            w * multivariate_normal(m, c).pdf(iris)
            for w, m, c in zip(model.weights_, model.means_, covs, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        proba, joint / joint.sum(1, keepdims=True), rtol=1e-8, atol=1e-300
    )


@pytest.mark.parametrize(
    "covariance_type, n_cov",
    [("spherical", 9), ("diag", 9 * 4), ("tied", 10), ("full", 9 * 10)],
)
def test_generative_bic_aic(iris, covariance_type, n_cov):
    model = SOMGenerativeModel(
        SelfOrganizingMap(3, 3), covariance_type=covariance_type, random_state=0
    ).fit(iris)
    n_params = 8 + 9 * 4 + n_cov  # weights, prototypes, covariances
    log_lik = model.score_samples(iris).sum()
    assert model.bic(iris) == pytest.approx(-2 * log_lik + n_params * np.log(150))
    assert model.aic(iris) == pytest.approx(-2 * log_lik + 2 * n_params)


# -------------------------------------------------------------------- impute
def test_generative_impute_conditional_mean(iris):
    model = SOMGenerativeModel(
        SelfOrganizingMap(4, 4), covariance_type="full", random_state=0
    ).fit(iris)
    rng = np.random.RandomState(0)
    mask = rng.uniform(size=iris.shape) < 0.25
    mask[:5] = False  # complete rows
    mask[5] = True  # a fully missing row
    X_nan = np.where(mask, np.nan, iris)
    filled = model.impute(X_nan)
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~mask], iris[~mask])
    mean, _, _ = _mixture_moments(model)
    np.testing.assert_allclose(filled[5], mean)
    # Conditioning on the observed features beats the (zero) column mean.
    err_model = np.sqrt(np.mean((filled[mask] - iris[mask]) ** 2))
    err_mean = np.sqrt(np.mean(iris[mask] ** 2))
    assert err_model < 0.6 * err_mean
    with pytest.raises(ValueError, match="infinity"):
        model.impute([[np.inf, 0, 0, 0]])


# ------------------------------------------------------- ecosystem & errors
def test_generative_grid_search_without_y(iris):
    search = GridSearchCV(
        SOMGenerativeModel(SelfOrganizingMap(), random_state=0),
        {
            "som__n_rows": [2, 4],
            "som__sigma_end": [0.5, 1.0],
            "covariance_type": ["diag", "full"],
        },
        cv=3,
    ).fit(iris)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    best = search.best_estimator_
    assert best.som_.n_rows == search.best_params_["som__n_rows"]
    # The default scorer is the held-out mean log-likelihood.
    assert search.best_score_ == pytest.approx(scores.max())


def test_generative_in_pipeline():
    X, _ = load_iris(return_X_y=True)
    pipe = make_pipeline(
        StandardScaler(), SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0)
    ).fit(X)
    scaler, model = pipe[0], pipe[-1]
    np.testing.assert_allclose(
        pipe.score_samples(X), model.score_samples(scaler.transform(X))
    )
    assert pipe.score(X) == pytest.approx(model.score(scaler.transform(X)))


def test_generative_frozen_map_is_not_refitted(iris):
    som = SelfOrganizingMap(3, 3, random_state=0).fit(iris)
    before = som.codebook_.copy()
    model = SOMGenerativeModel(FrozenEstimator(som), mean_stiffness=np.inf).fit(
        iris[:40]
    )
    np.testing.assert_array_equal(model.means_, before)
    np.testing.assert_array_equal(som.codebook_, before)
    with pytest.raises(ValueError, match="X has 3 features, but the map was fitted"):
        SOMGenerativeModel(FrozenEstimator(som)).fit(iris[:, :3])


def test_generative_default_map_is_seeded(iris):
    a = SOMGenerativeModel(random_state=0).fit(iris)
    b = SOMGenerativeModel(random_state=0).fit(iris)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    # Sized from the data: about 2 sqrt(n) units, sides in the ratio of the
    # two leading principal axes.
    eigenvalues = np.linalg.eigvalsh(np.cov(iris, rowvar=False))[::-1]
    ratio = np.sqrt(eigenvalues[0] / eigenvalues[1])
    n_units = min(round(2 * np.sqrt(len(iris))), len(iris) // 10)
    n_rows = round(np.sqrt(n_units / ratio))
    assert (a.som_.n_rows, a.som_.n_cols) == (n_rows, round(n_units / n_rows))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"som": "a map"}, InvalidParameterError, "'som' parameter"),
        ({"covariance_type": "banded"}, InvalidParameterError, "'covariance_type'"),
        (
            {"covariance_shrinkage": 0.0},
            InvalidParameterError,
            "'covariance_shrinkage'",
        ),
        ({"weight_concentration": -1}, InvalidParameterError, "'weight_concentration'"),
        (
            {"latent_density": "kde"},
            InvalidParameterError,
            "'latent_density'",
        ),
        ({"refine": "vb"}, InvalidParameterError, "'refine'"),
        ({"reg_covar": -1e-3}, InvalidParameterError, "'reg_covar'"),
    ],
)
def test_generative_nonsense_parameters_raise(iris, params, error, match):
    with pytest.raises(error, match=match):
        SOMGenerativeModel(**params).fit(iris)


def test_generative_bad_input_raises(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(iris)
    with pytest.raises(ValueError, match="X has 3 features, but SOMGenerativeModel"):
        model.score_samples(iris[:, :3])
    with pytest.raises(ValueError, match="Input X contains infinity"):
        model.score_samples([[np.inf, 0, 0, 0]])
    with pytest.raises(ValueError, match="Input X contains infinity"):
        SOMGenerativeModel().fit([[np.inf, 0.0], [1.0, 1.0]])
    # NaN and sparse input are supported (tests/test_generative_missing.py),
    # but not NaN stored in a sparse matrix.
    with pytest.raises(ValueError, match="Sparse input holds NaN"):
        SOMGenerativeModel().fit(sparse.csr_matrix([[np.nan, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="Sparse input holds NaN"):
        model.score_samples(sparse.csr_matrix([[np.nan, 1.0, 0.0, 0.0]]))
    with pytest.raises(TypeError, match="predict_proba does not accept sparse"):
        model.predict_proba(sparse.csr_matrix(iris))


def test_generative_failed_fit_leaves_model_unchanged(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(iris)
    before = pickle.dumps(model)
    keys = set(vars(model))
    model.set_params(som=SelfOrganizingMap(3, 3, init=np.zeros((2, 2))))
    with pytest.raises(ValueError, match="init has shape"):
        model.fit(iris)
    assert set(vars(model)) == keys
    restored = pickle.loads(before)
    np.testing.assert_array_equal(model.covariances_, restored.covariances_)
    np.testing.assert_array_equal(
        model.score_samples(iris), restored.score_samples(iris)
    )


def test_generative_float32_input_gives_float64_density(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0)
    model.fit(iris.astype(np.float32))
    assert model.means_.dtype == np.float64
    assert model.score_samples(iris.astype(np.float32)).dtype == np.float64
