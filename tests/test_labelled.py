"""Class-conditional model on one map, and SOM over-sampling."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import chisquare, multivariate_normal
from sklearn.datasets import make_blobs, make_classification
from sklearn.utils.estimator_checks import parametrize_with_checks

from somgen import SelfOrganizingMap, SOMClassConditionalModel, SOMOverSampler
from somgen._labelled import _AnchoredDraws, _sampling_strategy_counts

# imbalanced-learn is in the test extra: its integration is tested, never skipped
# (the fallback without it runs in a subprocess that hides it).


def _blobs(n_samples=300, random_state=0):
    X, y = make_blobs(
        n_samples=n_samples,
        centers=[[0.0, 0.0], [3.0, 1.0], [0.5, 3.5]],
        cluster_std=[0.6, 0.9, 0.5],
        random_state=random_state,
    )
    return X, y


def _imbalanced(n_samples=400, weights=(0.9, 0.1), random_state=0):
    return make_classification(
        n_samples=n_samples,
        n_features=5,
        n_informative=3,
        n_redundant=0,
        weights=list(weights),
        random_state=random_state,
    )


@pytest.fixture(scope="module")
def fitted_diag():
    X, y = _blobs()
    model = SOMClassConditionalModel(SelfOrganizingMap(3, 3), random_state=0)
    return model.fit(X, y), X, y


# ------------------------------------------------------------ common checks
@parametrize_with_checks(
    [
        SOMClassConditionalModel(),
        SOMClassConditionalModel(
            SelfOrganizingMap(3, 3),
            covariance_type="full",
            class_shrinkage=None,
            random_state=0,
        ),
        SOMClassConditionalModel(
            SelfOrganizingMap(2, 3), covariance_type="tied", random_state=0
        ),
    ]
)
def test_som_class_conditional_model_sklearn_checks(estimator, check):
    check(estimator)


def _imblearn_checks():
    from imblearn.utils.estimator_checks import estimator_checks_generator

    samplers = [
        SOMOverSampler(random_state=0),
        SOMOverSampler(
            covariance_type="spherical", class_shrinkage=None, random_state=1
        ),
    ]
    return [
        (estimator, check)
        for sampler in samplers
        for estimator, check in estimator_checks_generator(sampler)
    ]


def _check_id(value):
    if isinstance(value, SOMOverSampler):
        return repr(value)
    return getattr(value, "func", value).__name__


@pytest.mark.parametrize("estimator, check", _imblearn_checks(), ids=_check_id)
def test_som_over_sampler_imblearn_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------ class-conditional model
@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
def test_som_class_conditional_model_densities_integrate_to_one(covariance_type):
    X, y = _blobs(150)
    model = SOMClassConditionalModel(
        SelfOrganizingMap(3, 3), covariance_type=covariance_type, random_state=0
    ).fit(X, y)
    lo, hi = X.min(axis=0) - 6.0, X.max(axis=0) + 6.0
    n = 400
    g0, g1 = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    grid = np.stack(np.meshgrid(g0, g1), axis=-1).reshape(-1, 2)
    cell = (g0[1] - g0[0]) * (g1[1] - g1[0])
    density = np.exp(model.class_log_density(grid))
    assert_allclose(density.sum(axis=0) * cell, 1.0, atol=2e-3)
    marginal = np.exp(model.score_samples(grid))
    assert_allclose(marginal.sum() * cell, 1.0, atol=2e-3)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_som_class_conditional_model_density_matches_scipy(covariance_type):
    X, y = _blobs(150)
    model = SOMClassConditionalModel(
        SelfOrganizingMap(3, 3), covariance_type=covariance_type, random_state=0
    ).fit(X, y)
    points = np.array([[0.0, 0.0], [3.0, 1.0], [-4.0, 7.0], [12.0, -9.0]])
    expected = np.empty((points.shape[0], model.classes_.size))
    for c in range(model.classes_.size):
        parts = []
        for k in range(model.means_.shape[0]):
            cov = model.class_covariances_[c][k]
            cov = np.diag(cov) if covariance_type == "diag" else cov
            parts.append(
                np.log(model.class_weights_[c, k])
                + multivariate_normal(model.means_[k], cov).logpdf(points)
            )
        expected[:, c] = logsumexp(parts, axis=0)
    assert_allclose(model.class_log_density(points), expected, rtol=1e-9)


def test_som_class_conditional_model_posterior_is_bayes_rule(fitted_diag):
    model, X, y = fitted_diag
    points = np.vstack([X[::7], [[20.0, -20.0], [1.5, 1.5]]])
    joint = model.class_log_density(points) + np.log(model.class_prior_)
    expected = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    proba = model.predict_proba(points)
    assert_allclose(proba, expected, rtol=1e-10, atol=1e-300)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(model.predict(points), model.classes_[expected.argmax(1)])
    assert_allclose(model.score_samples(points), logsumexp(joint, axis=1))
    assert_allclose(model.class_prior_, np.bincount(y) / y.size)
    assert model.score(X, y) > 0.9  # accuracy of the generative classifier


def test_som_class_conditional_model_posterior_far_away_is_finite(fitted_diag):
    model, _, _ = fitted_diag
    proba = model.predict_proba([[1e200, -1e200], [1e6, 1e6]])
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0)


def test_som_class_conditional_model_conditional_score_samples(fitted_diag):
    model, X, y = fitted_diag
    per_class = model.class_log_density(X)
    assert_allclose(model.score_samples(X, y=y), per_class[np.arange(y.size), y])
    assert_allclose(model.score_samples(X, y=1), per_class[:, 1])
    with pytest.raises(ValueError, match="not classes of the model"):
        model.score_samples(X[:2], y=7)


def test_som_class_conditional_model_weights_and_shrinkage():
    X, y = _blobs(200)
    shared = SOMClassConditionalModel(
        SelfOrganizingMap(3, 3), class_shrinkage=None, random_state=0
    ).fit(X, y)
    assert_allclose(shared.class_weights_.sum(axis=1), 1.0)
    for c in range(3):
        assert_allclose(
            shared.class_covariances_[c], shared.generative_model_.covariances_
        )
    # Huge shrinkage -> the shared covariances; the class weights do not move.
    strong = SOMClassConditionalModel(
        SelfOrganizingMap(3, 3), class_shrinkage=1e12, random_state=0
    ).fit(X, y)
    assert_allclose(strong.class_covariances_, shared.class_covariances_, rtol=1e-6)
    assert_allclose(strong.class_weights_, shared.class_weights_)
    # Each class puts most of its weight where its rows are.
    for c in range(3):
        units = shared.som_.predict(X[y == c])
        assert shared.class_weights_[c, np.unique(units)].sum() > 0.9


def test_som_class_conditional_model_sample_proportions_chi_square(fitted_diag):
    model, _, _ = fitted_diag
    wanted = {0: 0.2, 1: 0.5, 2: 0.3}
    n = 4000
    _, y_new = model.sample(n, y=wanted, random_state=1)
    observed = np.bincount(y_new, minlength=3)
    assert chisquare(observed, n * np.array([0.2, 0.5, 0.3])).pvalue > 1e-3
    _, y_joint = model.sample(n, random_state=2)
    observed = np.bincount(y_joint, minlength=3)
    assert chisquare(observed, n * model.class_prior_).pvalue > 1e-3
    _, y_array = model.sample(50, y=[0.0, 0.0, 1.0], random_state=3)
    assert_array_equal(y_array, 2)


def test_som_class_conditional_model_sample_follows_class_density(fitted_diag):
    model, _, _ = fitted_diag
    for c in range(3):
        X_new, y_new = model.sample(20000, y=c, random_state=c)
        assert_array_equal(y_new, c)
        expected_mean = model.class_weights_[c] @ model.means_
        assert_allclose(X_new.mean(axis=0), expected_mean, atol=0.03)
        # The class density scores its own samples higher than the others do.
        assert np.mean(model.predict(X_new) == c) > 0.9


def test_som_class_conditional_model_sample_reproducible(fitted_diag):
    model, _, _ = fitted_diag
    a = model.sample(30, random_state=5)
    b = model.sample(30, random_state=5)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="not all be zero"):
        model.sample(5, y=[0, 0, 0])


def test_som_class_conditional_model_string_labels():
    X, y = _blobs(150)
    labels = np.array(["ant", "bee", "cat"])[y]
    model = SOMClassConditionalModel(SelfOrganizingMap(3, 3), random_state=0)
    model.fit(X, labels)
    assert_array_equal(model.classes_, ["ant", "bee", "cat"])
    _, y_new = model.sample(10, y="bee", random_state=0)
    assert_array_equal(y_new, "bee")
    assert set(model.predict(X)) <= {"ant", "bee", "cat"}


def test_som_class_conditional_model_bad_labels():
    X, y = _blobs(60)
    model = SOMClassConditionalModel(SelfOrganizingMap(2, 2), random_state=0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        model.fit(X, np.zeros(60))
    y_nan = y.astype(float)
    y_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X, y_nan)
    with pytest.raises(ValueError, match="Unknown label type"):
        model.fit(X, np.linspace(0, 1, 60))
    # A single-row class is a valid (if weak) class for the model.
    y_single = y.copy()
    y_single[0] = 5
    model.fit(X, y_single)
    assert_allclose(model.class_weights_.sum(axis=1), 1.0)


# ------------------------------------------------------------------ over-sampler
def test_sampling_strategy_counts_meanings():
    y = np.array([0] * 50 + [1] * 20 + [2] * 10)
    assert _sampling_strategy_counts("auto", y) == {1: 30, 2: 40}
    assert _sampling_strategy_counts("not majority", y) == {1: 30, 2: 40}
    assert _sampling_strategy_counts("minority", y) == {2: 40}
    assert _sampling_strategy_counts("not minority", y) == {0: 0, 1: 30}
    assert _sampling_strategy_counts("all", y) == {0: 0, 1: 30, 2: 40}
    assert _sampling_strategy_counts({1: 25, 2: 10}, y) == {1: 5, 2: 0}
    assert _sampling_strategy_counts(lambda t: {2: 12}, y) == {2: 2}
    binary = np.array([0] * 50 + [1] * 10)
    assert _sampling_strategy_counts(0.5, binary) == {1: 15}
    with pytest.raises(ValueError, match="binary"):
        _sampling_strategy_counts(0.5, y)
    with pytest.raises(ValueError, match="at least its current count"):
        _sampling_strategy_counts({0: 10}, y)
    with pytest.raises(ValueError, match="fewer than"):
        _sampling_strategy_counts(0.1, binary)
    with pytest.raises(ValueError, match="1 class"):
        _sampling_strategy_counts("auto", np.zeros(5))


@pytest.mark.parametrize(
    "strategy",
    ["auto", "minority", "not minority", "not majority", "all", {1: 30, 2: 40}],
)
def test_sampling_strategy_counts_agree_with_imblearn(strategy):
    from imblearn.utils import check_sampling_strategy

    y = np.array([0] * 50 + [1] * 20 + [2] * 10)
    expected = check_sampling_strategy(strategy, y, "over-sampling")
    assert _sampling_strategy_counts(strategy, y) == dict(expected)


@pytest.mark.parametrize(
    "strategy, expected",
    [
        ("auto", [120, 120, 120]),
        ("minority", [120, 40, 120]),
        ("not minority", [120, 120, 20]),
        ("not majority", [120, 120, 120]),
        ("all", [120, 120, 120]),
        ({1: 60, 2: 30}, [120, 60, 30]),
    ],
)
def test_som_over_sampler_counts_follow_strategy(strategy, expected):
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1, 2], [120, 40, 20])
    X = rng.normal(size=(180, 3)) + y[:, np.newaxis]
    # The middle class overlaps both others: no region where its balanced
    # posterior reaches the default 0.95, so counts are checked untruncated.
    sampler = SOMOverSampler(
        sampling_strategy=strategy,
        som=SelfOrganizingMap(3, 3),
        min_posterior=None,
        random_state=0,
    )
    X_res, y_res = sampler.fit_resample(X, y)
    assert_array_equal(np.bincount(y_res), expected)
    assert_array_equal(X_res[:180], X)
    assert_array_equal(y_res[:180], y)


def test_som_over_sampler_float_strategy_binary():
    X, y = _imbalanced()
    n_major, n_minor = np.bincount(y)
    sampler = SOMOverSampler(
        sampling_strategy=0.5, som=SelfOrganizingMap(3, 3), random_state=0
    )
    _, y_res = sampler.fit_resample(X, y)
    assert_array_equal(np.bincount(y_res), [n_major, int(0.5 * n_major)])
    assert n_minor < int(0.5 * n_major)


def test_som_over_sampler_never_copies_and_reports_dcr():
    X, y = _imbalanced()
    sampler = SOMOverSampler(som=SelfOrganizingMap(4, 4), random_state=0)
    X_res, y_res = sampler.fit_resample(X, y)
    X_new = X_res[X.shape[0] :]
    assert_array_equal(y_res[X.shape[0] :], 1)
    train = {row.tobytes() for row in X}
    assert not any(row.tobytes() in train for row in X_new)
    assert 0.3 < sampler.dcr_ratio_ < 3.0
    assert sampler.sampling_strategy_ == {1: int(np.ptp(np.bincount(y)))}


@pytest.mark.parametrize("min_posterior", [None, 0.5])
def test_som_over_sampler_redraws_exact_copies(monkeypatch, min_posterior):
    # locality=0: the model's own draws (_sample_classes) are the ones patched.
    X, y = _imbalanced(200)
    minority = np.flatnonzero(y == 1)
    original = SOMClassConditionalModel._sample_classes
    calls = []

    def copies_then_model(self, index, rng):
        # The first round returns half training rows, half model draws.
        X_draw = original(self, index, rng)
        if not calls:
            half = index.size // 2
            X_draw[:half] = X[rng.choice(minority, size=half)]
        calls.append(index.size)
        return X_draw

    monkeypatch.setattr(SOMClassConditionalModel, "_sample_classes", copies_then_model)
    sampler = SOMOverSampler(
        som=SelfOrganizingMap(3, 3),
        min_posterior=min_posterior,
        locality=0.0,
        random_state=0,
    )
    X_res, _ = sampler.fit_resample(X, y)
    assert len(calls) >= 2  # the copies were rejected and drawn again
    train = {row.tobytes() for row in X}
    assert not any(row.tobytes() in train for row in X_res[X.shape[0] :])


def test_som_over_sampler_redraws_exact_copies_anchored(monkeypatch):
    # Default locality > 0: the anchored draws are patched to return training
    # rows in their first round; those are rejected and drawn again.
    X, y = _imbalanced(200)
    minority = np.flatnonzero(y == 1)
    original = _AnchoredDraws.draw
    calls = []

    def copies_then_model(self, n_samples, rng):
        X_draw = original(self, n_samples, rng)
        if not calls:
            half = n_samples // 2
            X_draw[:half] = X[rng.choice(minority, size=half)]
        calls.append(n_samples)
        return X_draw

    monkeypatch.setattr(_AnchoredDraws, "draw", copies_then_model)
    sampler = SOMOverSampler(
        som=SelfOrganizingMap(3, 3), min_posterior=None, random_state=0
    )
    X_res, _ = sampler.fit_resample(X, y)
    assert len(calls) >= 2
    train = {row.tobytes() for row in X}
    assert not any(row.tobytes() in train for row in X_res[X.shape[0] :])


@pytest.mark.parametrize("locality", [0.5, 0.9])
def test_som_over_sampler_locality_moments(locality):
    # One unit: a new row is w + a (x_i - w) + sqrt(1 - a^2) e, e ~ N(0, Sigma_c),
    # x_i a uniformly drawn minority row, so the new rows have mean
    # w + a (mean_c - w) and covariance a^2 Cov(X_c) + (1 - a^2) Sigma_c.
    rng = np.random.RandomState(0)
    y = np.repeat([0, 1], [250, 50])
    X = rng.normal(size=(300, 2)) * [1.0, 0.5]
    X[y == 1] += [4.0, 1.0]
    sampler = SOMOverSampler(
        sampling_strategy={1: 40050},
        som=SelfOrganizingMap(1, 1),
        min_posterior=None,
        locality=locality,
        random_state=0,
    )
    X_res, _ = sampler.fit_resample(X, y)
    X_new = X_res[300:]
    model = sampler.model_
    w = model.means_[0]
    X_c = X[y == 1]
    sigma_c = np.diag(model.class_covariances_[1, 0])
    expected_mean = w + locality * (X_c.mean(axis=0) - w)
    assert_allclose(X_new.mean(axis=0), expected_mean, atol=0.05)
    a2 = locality**2
    expected_cov = a2 * np.cov(X_c.T, bias=True) + (1 - a2) * sigma_c
    assert_allclose(np.cov(X_new.T), expected_cov, rtol=0.1, atol=0.05)
    # The model's own draws (locality=0) are centred on the shared prototype.
    X_free = sampler.set_params(locality=0.0).fit_resample(X, y)[0][300:]
    assert_allclose(X_free.mean(axis=0), w, atol=0.1)


def test_som_over_sampler_locality_moves_rows_toward_data():
    X, y = _imbalanced(400)
    dcr = {}
    for locality in [0.0, 0.9, 0.99]:
        sampler = SOMOverSampler(
            som=SelfOrganizingMap(4, 4),
            min_posterior=None,
            locality=locality,
            random_state=0,
        )
        X_res, _ = sampler.fit_resample(X, y)
        train = {row.tobytes() for row in X}
        assert not any(row.tobytes() in train for row in X_res[X.shape[0] :])
        dcr[locality] = sampler.dcr_ratio_
    # Near 1 the new rows approach the anchors (not monotone for small a: the
    # unit noise then dominates either way).
    assert dcr[0.99] < dcr[0.9] < dcr[0.0]
    assert dcr[0.99] < 0.5 * dcr[0.0]


def test_som_over_sampler_locality_none_is_zero():
    X, y = _imbalanced(200)
    kwargs = dict(som=SelfOrganizingMap(3, 3), min_posterior=0.5, random_state=0)
    a = SOMOverSampler(locality=None, **kwargs).fit_resample(X, y)[0]
    b = SOMOverSampler(locality=0.0, **kwargs).fit_resample(X, y)[0]
    c = SOMOverSampler(locality=0.8, **kwargs).fit_resample(X, y)[0]
    assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("locality", [1.0, -0.1, 2, "near"])
def test_som_over_sampler_bad_locality(locality):
    X, y = _imbalanced(100)
    sampler = SOMOverSampler(
        som=SelfOrganizingMap(2, 2), locality=locality, random_state=0
    )
    with pytest.raises(ValueError, match="locality"):
        sampler.fit_resample(X, y)


def test_som_over_sampler_defaults():
    # Chosen by cross-validation outside the benchmark (see the docstring).
    params = SOMOverSampler().get_params()
    assert params["locality"] == 0.8
    assert params["min_posterior"] == 0.9
    assert params["som"] is None
    assert params["covariance_type"] == "diag"


@pytest.mark.parametrize("locality", [0.0, 0.8])
@pytest.mark.parametrize("min_posterior", [0.5, 0.95])
def test_som_over_sampler_min_posterior_truncates(min_posterior, locality):
    X, y = _imbalanced(400)
    sampler = SOMOverSampler(
        min_posterior=min_posterior, locality=locality, random_state=0
    )
    X_res, y_res = sampler.fit_resample(X, y)
    X_new = X_res[X.shape[0] :]
    assert_array_equal(y_res[X.shape[0] :], 1)
    # Every new row lies where the balanced Bayes posterior of its class,
    # recomputed from the fitted model's parts, reaches the threshold.
    log_density = sampler.model_.class_log_density(X_new)
    posterior = np.exp(log_density - logsumexp(log_density, axis=1, keepdims=True))
    assert np.all(posterior[:, 1] >= min_posterior)
    # Untruncated draws of the same model do fall below it.
    X_free, _ = sampler.model_.sample(2000, y=1, random_state=0)
    log_free = sampler.model_.class_log_density(X_free)
    free = np.exp(log_free - logsumexp(log_free, axis=1, keepdims=True))
    assert np.mean(free[:, 1] < min_posterior) > 0.01


def test_som_over_sampler_min_posterior_none_is_untruncated():
    X, y = _imbalanced(300)
    sampler = SOMOverSampler(
        som=SelfOrganizingMap(3, 3), min_posterior=None, random_state=0
    )
    X_res, _ = sampler.fit_resample(X, y)
    X_new = X_res[X.shape[0] :]
    log_density = sampler.model_.class_log_density(X_new)
    posterior = np.exp(log_density - logsumexp(log_density, axis=1, keepdims=True))
    assert np.mean(posterior[:, 1] < 0.5) > 0.0


def test_som_over_sampler_min_posterior_unreachable_error():
    # Both classes from one distribution: the balanced posterior stays near
    # 1/2, so nearly no draw reaches 0.99 and the sampler says why.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2))
    y = (rng.uniform(size=300) < 0.1).astype(int)
    sampler = SOMOverSampler(
        som=SelfOrganizingMap(3, 3), min_posterior=0.99, random_state=0
    )
    with pytest.raises(ValueError, match="min_posterior=0.99"):
        sampler.fit_resample(X, y)


def test_som_over_sampler_default_map_reproducible():
    X, y = _imbalanced(300)
    a = SOMOverSampler(random_state=7).fit_resample(X, y)
    b = SOMOverSampler(random_state=7).fit_resample(X, y)
    assert_array_equal(a[0], b[0])
    sampler = SOMOverSampler(random_state=7).fit(X, y)
    sampler.fit_resample(X, y)
    assert sampler.model_.som_.codebook_.shape[0] == 25


def test_som_over_sampler_reproducible_and_dtype():
    X, y = _imbalanced()
    X = X.astype(np.float32)
    a = SOMOverSampler(som=SelfOrganizingMap(3, 3), random_state=3).fit_resample(X, y)
    b = SOMOverSampler(som=SelfOrganizingMap(3, 3), random_state=3).fit_resample(X, y)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])
    assert a[0].dtype == np.float32
    c = SOMOverSampler(som=SelfOrganizingMap(3, 3), random_state=4).fit_resample(X, y)
    assert not np.array_equal(a[0], c[0])


def test_som_over_sampler_bad_labels():
    X, y = _imbalanced(100)
    sampler = SOMOverSampler(som=SelfOrganizingMap(2, 2), random_state=0)
    with pytest.raises(ValueError, match="class"):
        sampler.fit_resample(X, np.zeros(100))
    y_nan = y.astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sampler.fit_resample(X, y_nan)
    y_single = y.copy()
    y_single[0] = 2
    with pytest.raises(ValueError, match="single row"):
        sampler.fit_resample(X, y_single)


def test_som_over_sampler_without_imblearn():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["imblearn"] = None
        import numpy as np
        from somgen import SelfOrganizingMap, SOMOverSampler
        rng = np.random.RandomState(0)
        y = np.repeat([0, 1], [90, 15])
        X = rng.normal(size=(105, 3)) + y[:, None]
        sampler = SOMOverSampler(som=SelfOrganizingMap(3, 3), random_state=0)
        X_res, y_res = sampler.fit_resample(X, y)
        assert np.bincount(y_res).tolist() == [90, 90], np.bincount(y_res)
        assert sampler.sampling_strategy_ == {1: 75}
        assert "imblearn" not in type(sampler).__mro__[1].__module__
        _, y_half = sampler.set_params(sampling_strategy=0.5).fit_resample(X, y)
        assert np.bincount(y_half).tolist() == [90, 45]
        try:
            sampler.set_params(sampling_strategy="most").fit_resample(X, y)
        except ValueError as error:
            assert "sampling_strategy" in str(error)
        else:
            raise AssertionError("no error for a bad sampling_strategy")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_som_over_sampler_in_imblearn_pipeline_cross_validate():
    from imblearn.pipeline import make_pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_validate

    X, y = _imbalanced(300)
    pipe = make_pipeline(
        SOMOverSampler(som=SelfOrganizingMap(3, 3), random_state=0),
        LogisticRegression(),
    )
    scores = cross_validate(
        pipe,
        X,
        y,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
        scoring="balanced_accuracy",
    )
    assert np.all(scores["test_score"] > 0.5)


def test_som_over_sampler_keeps_pandas():
    import pandas as pd  # a test extra

    X, y = _imbalanced(200)
    X_df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    X_res, y_res = SOMOverSampler(
        som=SelfOrganizingMap(3, 3), random_state=0
    ).fit_resample(X_df, pd.Series(y, name="target"))
    assert list(X_res.columns) == list(X_df.columns)
    assert y_res.name == "target"


def test_class_conditional_model_fits_its_shared_model_on_the_data_as_given():
    # The per-class statistics use the rows as they are, so the shared model
    # must not dequantize few-valued columns (a binary feature here).
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.randn(300), rng.randint(0, 2, 300).astype(float)])
    y = (X[:, 0] > 0).astype(int)
    model = SOMClassConditionalModel(random_state=0).fit(X, y)
    assert model.generative_model_.discrete_features_.size == 0
