"""Latent densities on the map: latent_density="auto" and truncated sampling."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_moons
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from somgen import SelfOrganizingMap, SOMGenerativeModel, sample_pipeline
from somgen._latent import LATENT_BANDWIDTHS, _grid_box, sample_latent


@pytest.fixture(scope="module")
def moons():
    X, _ = make_moons(400, noise=0.1, random_state=0)
    return StandardScaler().fit_transform(X)


AUTO_ESTIMATORS = [
    SOMGenerativeModel(SelfOrganizingMap(3, 3), latent_density="auto", random_state=0),
    SOMGenerativeModel(
        SelfOrganizingMap(2, 3, topology="hexagonal"),
        covariance_type="full",
        latent_density="auto",
        refine=None,
        random_state=0,
    ),
]


@parametrize_with_checks(AUTO_ESTIMATORS)
def test_generative_latent_auto_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", AUTO_ESTIMATORS, ids=repr)
def test_generative_latent_auto_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)


def _cv_scores_by_hand(model, X):
    """The CV of latent_density="auto", recomputed with public estimators."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(model.random_state)
    # a som passed in draws nothing from the model's random state
    som = model.som_
    units = som.predict(X)
    cell = np.array([1.0, 1.0])
    points = som.unit_coords_[units] + (rng.uniform(size=(len(X), 2)) - 0.5) * cell
    folds = KFold(5, shuffle=True, random_state=rng.randint(np.iinfo(np.int32).max))
    scores = np.zeros((1 + len(LATENT_BANDWIDTHS), 5))
    for f, (train, test) in enumerate(folds.split(X)):
        plain = SOMGenerativeModel(FrozenEstimator(som)).fit(X[train])
        scores[0, f] = plain.score(X[test])
        for c, bandwidth in enumerate(LATENT_BANDWIDTHS, start=1):
            kde = KernelDensity(bandwidth=bandwidth).fit(points[train])
            log_w = kde.score_samples(som.unit_coords_)
            weights = np.exp(log_w - log_w.max())
            weights /= weights.sum()
            # the same mixture with fixed weights: EM on the covariances only
            fixed = SOMGenerativeModel(
                FrozenEstimator(som), latent_density=_Fixed(weights)
            ).fit(X[train])
            scores[c, f] = fixed.score(X[test])
    return scores


def _chosen(cv):
    """The bandwidth of the one-standard-error rule, recomputed by a loop."""
    scores = cv["split_test_scores"]
    best, best_score = None, scores[0].mean()
    for c in range(1, len(scores)):
        gains = scores[c] - scores[0]
        stderr = np.std(gains, ddof=1) / np.sqrt(len(gains))
        eligible = gains.mean() > stderr and all(g > 0 for g in gains)
        assert cv["eligible"][c] == eligible
        if eligible and scores[c].mean() > best_score:
            best, best_score = cv["bandwidth"][c], scores[c].mean()
    return best


class _Fixed:
    """A "latent density" whose values at the units are given weights."""

    def __init__(self, weights):
        self.weights = weights

    def get_params(self, deep=True):
        return {"weights": self.weights}

    def set_params(self, **params):
        self.weights = params["weights"]
        return self

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return np.log(self.weights)


def test_generative_latent_auto_cv_matches_hand_computation(moons):
    model = SOMGenerativeModel(
        SelfOrganizingMap(5, 5, random_state=0), latent_density="auto", random_state=3
    ).fit(moons)
    cv = model.latent_cv_results_
    assert cv["bandwidth"] == [None, *LATENT_BANDWIDTHS]
    np.testing.assert_allclose(
        cv["split_test_scores"], _cv_scores_by_hand(model, moons), rtol=1e-10
    )
    np.testing.assert_allclose(cv["mean_test_score"], cv["split_test_scores"].mean(1))
    best = _chosen(cv)
    if best is None:
        assert model.latent_density_ is None
    else:
        assert model.latent_density_.bandwidth == best


def test_generative_latent_auto_none_is_the_plain_model(moons):
    som = SelfOrganizingMap(5, 5, random_state=0)
    plain = SOMGenerativeModel(som, random_state=0).fit(moons)
    auto = SOMGenerativeModel(som, latent_density="auto", random_state=0).fit(moons)
    assert _chosen(auto.latent_cv_results_) is None
    assert auto.latent_density_ is None
    np.testing.assert_array_equal(auto.weights_, plain.weights_)
    np.testing.assert_array_equal(auto.covariances_, plain.covariances_)


def test_generative_latent_auto_picks_a_kde_when_it_wins():
    # Hits that alternate between neighbouring units: the smooth weights of a
    # kernel density generalise better than the raw frequencies.
    rng = np.random.RandomState(0)
    centers = np.stack(np.meshgrid(np.arange(8.0), [0.0]), -1).reshape(-1, 2)
    counts = np.where(np.arange(8) % 2 == 0, 3, 1)
    X = np.repeat(centers, counts, axis=0) + rng.normal(scale=0.05, size=(16, 2))
    X = np.concatenate([X] * 2) + rng.normal(scale=0.05, size=(32, 2))
    model = SOMGenerativeModel(
        SelfOrganizingMap(1, 8, random_state=0),
        latent_density="auto",
        weight_concentration=0.0,
        random_state=0,
    ).fit(X)
    cv = model.latent_cv_results_
    assert np.all(np.isfinite(cv["mean_test_score"]))
    assert np.isclose(model.weights_.sum(), 1.0)
    best = _chosen(cv)
    assert (model.latent_density_ is None) == (best is None)
    if best is not None:
        assert model.latent_density_.bandwidth == best
        # the chosen kernel density beats no latent density in the CV
        assert cv["mean_test_score"].max() > cv["mean_test_score"][0]


def test_generative_latent_auto_deterministic_and_exact(moons):
    model = SOMGenerativeModel(
        SelfOrganizingMap(4, 4, random_state=0), latent_density="auto", random_state=1
    )
    a = clone(model).fit(moons)
    b = clone(model).fit(moons)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(
        a.latent_cv_results_["split_test_scores"],
        b.latent_cv_results_["split_test_scores"],
    )
    assert np.isclose(a.weights_.sum(), 1.0) and np.all(a.weights_ > 0)


@pytest.mark.filterwarnings("ignore:The map has more units")
@pytest.mark.parametrize("n_samples", [1, 2, 3])
def test_generative_latent_auto_too_few_samples_keeps_no_latent(n_samples):
    X = np.arange(2.0 * n_samples).reshape(n_samples, 2)
    model = SOMGenerativeModel(
        SelfOrganizingMap(2, 2), latent_density="auto", random_state=0
    ).fit(X)
    assert model.latent_density_ is None
    assert model.latent_cv_results_["split_test_scores"].shape == (7, 0)


def test_generative_latent_cv_results_none_without_auto(moons):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 3), random_state=0).fit(moons)
    assert model.latent_cv_results_ is None
    model.set_params(latent_density="auto").fit(moons)
    assert model.latent_cv_results_ is not None
    model.set_params(latent_density=KernelDensity()).fit(moons)
    assert model.latent_cv_results_ is None


# --------------------------------------------------------- truncated sampling
@pytest.mark.parametrize(
    "som",
    [
        SelfOrganizingMap(5, 4, random_state=0),
        SelfOrganizingMap(4, 5, topology="hexagonal", random_state=0),
        SelfOrganizingMap(1, 6, random_state=0),
    ],
    ids=["rectangular", "hexagonal", "one-row"],
)
@pytest.mark.parametrize("density", [KernelDensity(bandwidth=0.8), GaussianMixture(3)])
def test_sample_latent_never_leaves_the_grid(moons, som, density):
    som = clone(som).fit(moons)
    density = clone(density).fit(som.transform(moons))
    # the untruncated density does put mass off the grid
    raw = density.sample(4000)
    raw = raw[0] if isinstance(raw, tuple) else raw
    low, high = _grid_box(som)
    assert np.mean(np.any((raw < low) | (raw > high), axis=1)) > 0.05
    coords = sample_latent(density, som, 3000, random_state=0)
    assert coords.shape == (3000, 2)
    assert np.all((coords >= low) & (coords <= high))
    np.testing.assert_array_equal(
        coords, sample_latent(density, som, 3000, random_state=0)
    )
    # the map decodes them without clamping: inside the units' bounding box,
    # except along an axis with a single unit, which the map ignores
    flat = np.ptp(som.unit_coords_, axis=0) == 0
    np.testing.assert_array_equal(np.isinf(low), flat)
    np.testing.assert_allclose(low[~flat], som.unit_coords_.min(axis=0)[~flat])
    np.testing.assert_allclose(high[~flat], som.unit_coords_.max(axis=0)[~flat])


def test_sample_latent_is_the_truncated_law(moons):
    # 1-D check of the law: a KDE on a 1 x n grid, truncated to [0, n - 1],
    # against the exact truncated CDF of a single Gaussian kernel.
    from scipy.stats import norm

    som = SelfOrganizingMap(1, 5, random_state=0).fit(moons)
    kde = KernelDensity(bandwidth=1.5).fit([[0.5, 0.0]])
    coords = sample_latent(kde, som, 20000, random_state=0)
    x = np.sort(coords[:, 0])
    z = norm.cdf([0.0, 4.0], loc=0.5, scale=1.5)
    cdf = (norm.cdf(x, loc=0.5, scale=1.5) - z[0]) / (z[1] - z[0])
    ecdf = np.arange(1, len(x) + 1) / len(x)
    assert np.max(np.abs(cdf - ecdf)) < 0.015  # Kolmogorov-Smirnov, n = 20000


def test_sample_latent_raises_when_the_density_is_off_the_grid(moons):
    som = SelfOrganizingMap(3, 3, random_state=0).fit(moons)
    kde = KernelDensity(bandwidth=0.1).fit([[50.0, 50.0]])
    with pytest.raises(ValueError, match="landed on the grid"):
        sample_latent(kde, som, 10, random_state=0)
    with pytest.raises(ValueError, match="shape"):
        sample_latent(KernelDensity().fit(moons[:, :1]), som, 5, random_state=0)


def test_sample_latent_periodic_map_is_not_truncated(moons):
    som = SelfOrganizingMap(4, 4, periodic=True, random_state=0).fit(moons)
    kde = KernelDensity(bandwidth=2.0).fit(som.transform(moons))
    assert _grid_box(som) is None
    np.testing.assert_array_equal(
        sample_latent(kde, som, 100, random_state=0),
        kde.sample(100, random_state=np.random.RandomState(0)),
    )


def test_sample_pipeline_truncates_latent_samples_to_the_grid(moons):
    pipe = make_pipeline(
        StandardScaler(),
        SelfOrganizingMap(5, 5, random_state=0),
        KernelDensity(bandwidth=0.5),
    ).fit(moons)
    som = pipe[1]
    X_new = sample_pipeline(pipe, 2000, random_state=0)
    coords = sample_latent(pipe[-1], som, 2000, random_state=0)
    expected = pipe[0].inverse_transform(som.inverse_transform(coords))
    np.testing.assert_allclose(X_new, expected)
    # nothing clamped: no sample sits exactly on a corner prototype, where the
    # 47 % of draws off the grid would otherwise pile up
    corners = som.inverse_transform([[0, 0], [4, 0], [0, 4], [4, 4]])
    corners = pipe[0].inverse_transform(corners)
    dist = np.min(np.linalg.norm(X_new[:, None] - corners[None], axis=2), axis=1)
    assert np.mean(dist < 1e-9) == 0.0
