"""Map size of SOMGenerativeModel(som=None): selection by held-out likelihood."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen import _initialization as init_mod
from somgen._initialization import (
    _data_sized_grid,
    _data_sized_units,
    _grid_shape,
    _principal_variances,
)


def _gaussian(n, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.arange(1, d + 1)


def test_cv_results_hold_the_candidates_and_the_choice():
    X = _gaussian(300)
    model = SOMGenerativeModel(random_state=0).fit(X)
    results = model.map_size_cv_results_
    k = _data_sized_units(300)
    variances = _principal_variances(X)
    expected = sorted(
        {_grid_shape(u, variances) for u in (k, round(k / 3), round(k / 9), 1)},
        key=lambda shape: -shape[0] * shape[1],
    )
    assert results["shape"] == expected
    assert results["shape"][0] == _data_sized_grid(X)
    assert list(results["n_units"]) == [r * c for r, c in expected]
    # 2000 // 300 = 6 folds (between 3 and 10).
    assert results["split_test_scores"].shape == (len(results["n_units"]), 6)
    assert_mean = results["split_test_scores"].mean(axis=1)
    np.testing.assert_allclose(results["mean_test_score"], assert_mean)
    best = int(np.argmax(results["mean_test_score"]))
    assert (model.som_.n_rows, model.som_.n_cols) == results["shape"][best]


def test_fold_scores_equal_models_fitted_on_the_folds():
    """The selection's scores are those of this model on the folds (an
    independent recomputation with the public API)."""
    X = _gaussian(120, d=3, seed=1)
    model = SOMGenerativeModel(random_state=3, max_iter=30).fit(X)
    results = model.map_size_cv_results_
    seed = np.random.RandomState(3).randint(np.iinfo(np.int32).max)
    fold_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max)
    n_splits = results["split_test_scores"].shape[1]
    assert n_splits == 10  # 2000 // 120 = 16, at most 10
    folds = KFold(n_splits, shuffle=True, random_state=fold_seed).split(X)
    for f, (train, test) in enumerate(folds):
        for c, shape in enumerate(results["shape"]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fold_model = SOMGenerativeModel(
                    SelfOrganizingMap(*shape, random_state=seed),
                    max_iter=30,
                    discrete_features=None,
                    random_state=fold_seed,
                ).fit(X[train])
            assert fold_model.score(X[test]) == pytest.approx(
                results["split_test_scores"][c, f], rel=1e-12
            )


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_data_get_one_unit_and_tie_with_one_gaussian(seed):
    """On Gaussian data the data-sized mixture loses to one Gaussian (the
    reason for the selection); the selected model does not."""
    X, X_test = _gaussian(300, seed=seed), _gaussian(3000, seed=seed + 10)
    model = SOMGenerativeModel(random_state=seed).fit(X)
    gaussian = GaussianMixture(1, covariance_type="diag").fit(X)
    sized = SOMGenerativeModel(
        SelfOrganizingMap(*_data_sized_grid(X), random_state=0), random_state=seed
    ).fit(X)
    assert model.means_.shape[0] == 1
    assert model.score(X_test) > gaussian.score(X_test) - 0.01
    assert sized.score(X_test) < gaussian.score(X_test) - 0.1


def test_structured_data_keep_a_mixture():
    X, _ = make_blobs(600, 4, centers=6, random_state=0)
    model = SOMGenerativeModel(random_state=0).fit(X)
    assert model.means_.shape[0] >= 6


def test_selection_is_reproducible_and_leaves_no_warning_filter():
    X = load_digits().data[:400] + np.random.RandomState(0).uniform(size=(400, 64))
    filters = list(warnings.filters)
    a = SOMGenerativeModel(random_state=7).fit(X)
    b = SOMGenerativeModel(random_state=7).fit(X)
    assert warnings.filters == filters
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(
        a.map_size_cv_results_["split_test_scores"],
        b.map_size_cv_results_["split_test_scores"],
    )


def test_the_final_model_is_the_candidate_refitted_on_all_data():
    """The final map is the chosen shape seeded as the data-sized default was
    (same draw from random_state), refitted on all the data."""
    X, _ = make_blobs(400, 3, centers=8, random_state=2)
    model = SOMGenerativeModel(random_state=0).fit(X)
    results = model.map_size_cv_results_
    shape = results["shape"][int(np.argmax(results["mean_test_score"]))]
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    refit = SOMGenerativeModel(
        SelfOrganizingMap(*shape, random_state=seed), random_state=0
    ).fit(X)
    assert model.som_.random_state == seed
    np.testing.assert_allclose(model.means_, refit.means_, rtol=1e-12)
    np.testing.assert_allclose(model.covariances_, refit.covariances_, rtol=1e-12)


def test_no_selection_for_a_given_map_one_candidate_or_large_data(monkeypatch):
    X = _gaussian(300)
    given = SOMGenerativeModel(SelfOrganizingMap(3, 3, random_state=0)).fit(X)
    assert given.map_size_cv_results_ is None
    tiny = SOMGenerativeModel(random_state=0).fit(X[:15])  # K = 1
    assert tiny.map_size_cv_results_ is None
    assert tiny.means_.shape[0] == 1
    monkeypatch.setattr(init_mod, "_MAP_SIZE_CV_MAX_SAMPLES", 299)
    from somgen import _generative

    monkeypatch.setattr(_generative, "_MAP_SIZE_CV_MAX_SAMPLES", 299)
    large = SOMGenerativeModel(random_state=0).fit(X)
    assert large.map_size_cv_results_ is None
    assert (large.som_.n_rows, large.som_.n_cols) == _data_sized_grid(X)


def test_selection_with_missing_values_and_sparse_input():
    from scipy import sparse

    rng = np.random.default_rng(0)
    X = _gaussian(200)
    X_nan = X.copy()
    X_nan[rng.random(X.shape) < 0.2] = np.nan
    model = SOMGenerativeModel(random_state=0).fit(X_nan)
    assert np.all(np.isfinite(model.map_size_cv_results_["mean_test_score"]))
    X_sparse = sparse.random(200, 30, density=0.2, format="csr", random_state=0)
    model = SOMGenerativeModel(random_state=0).fit(X_sparse)
    assert np.all(np.isfinite(model.map_size_cv_results_["mean_test_score"]))


def test_a_failed_fit_keeps_the_previous_selection():
    X = _gaussian(200)
    model = SOMGenerativeModel(random_state=0).fit(X)
    before = model.map_size_cv_results_
    with pytest.raises(ValueError):
        model.fit(np.full((50, 5), np.inf))
    assert model.map_size_cv_results_ is before
