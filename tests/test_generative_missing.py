"""SOMGenerativeModel on incomplete (NaN) and sparse data.

References are independent: marginal densities from scipy's multivariate
normal on the observed block, the EM statistics from per-row conditional
Gaussians written out directly, normalisation by quadrature.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import integrate, sparse
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._mixture import _e_step_statistics
from somgen._mixture_missing import _missing_e_step, _split_rows

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def _data(n_samples=300, n_features=3, missing=0.25, seed=0):
    rng = np.random.RandomState(seed)
    mixing = rng.randn(n_features, n_features)
    X = np.vstack(
        [
            rng.randn(n_samples // 2, n_features) @ mixing,
            rng.randn(n_samples - n_samples // 2, n_features) @ mixing + 4.0,
        ]
    )
    X_missing = X.copy()
    X_missing[rng.rand(*X.shape) < missing] = np.nan
    return X, X_missing


def _fit(X, covariance_type, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return SOMGenerativeModel(
            SelfOrganizingMap(2, 3, random_state=0),
            covariance_type=covariance_type,
            random_state=0,
            **params,
        ).fit(X)


def _full_covariances(model):
    covariances = model.covariances_
    n_components, n_features = model.means_.shape
    if model.covariance_type == "full":
        return covariances
    if model.covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def _marginal_log_prob(x, weights, means, covariances):
    """``log pi_k + log N(x_o | mu_k,o, Sigma_k,oo)`` for one row (scipy)."""
    obs = ~np.isnan(x)
    out = np.log(weights).copy()
    if obs.any():
        for k in range(len(weights)):
            out[k] += multivariate_normal(
                means[k, obs], covariances[k][np.ix_(obs, obs)]
            ).logpdf(x[obs])
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_is_the_marginal_of_the_observed_entries(covariance_type):
    X, X_missing = _data()
    model = _fit(X_missing, covariance_type)
    covariances = _full_covariances(model)
    rows = X_missing[:40]
    expected = [
        logsumexp(_marginal_log_prob(x, model.weights_, model.means_, covariances))
        for x in rows
    ]
    assert np.isnan(rows).any(axis=1).sum() > 10
    assert_allclose(model.score_samples(rows), expected, rtol=0, atol=1e-9)
    # Posteriors are Bayes' rule on the marginals; predict is their argmax.
    log_prob = np.array(
        [_marginal_log_prob(x, model.weights_, model.means_, covariances) for x in rows]
    )
    posterior = np.exp(log_prob - logsumexp(log_prob, axis=1, keepdims=True))
    assert_allclose(model.predict_proba(rows), posterior, rtol=0, atol=1e-10)
    assert_array_equal(model.predict(rows), posterior.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("missing_feature", [0, 1])
def test_marginal_density_integrates_to_one(covariance_type, missing_feature):
    X, X_missing = _data(n_features=2)
    model = _fit(X_missing, covariance_type)
    observed = 1 - missing_feature

    def density(value):
        row = np.full((1, 2), np.nan)
        row[0, observed] = value
        return float(np.exp(model.score_samples(row)[0]))

    centre = np.nanmean(X_missing[:, observed])
    spread = np.nanstd(X_missing[:, observed])
    total, error = integrate.quad(
        density, centre - 15 * spread, centre + 15 * spread, limit=400
    )
    assert error < 1e-8
    assert total == pytest.approx(1.0, abs=1e-6)


def test_a_row_with_nothing_observed_has_density_one_and_the_prior_posterior():
    X, X_missing = _data()
    model = _fit(X_missing, "diag")
    row = np.full((1, X.shape[1]), np.nan)
    assert model.score_samples(row)[0] == pytest.approx(0.0, abs=1e-12)
    assert_allclose(model.predict_proba(row)[0], model.weights_, atol=1e-12)


def _brute_force_statistics(X, weights, means, covariances, covariance_type):
    """EM statistics of incomplete data from per-row conditional Gaussians."""
    n_components, n_features = means.shape
    shift = means.mean(axis=0)
    nk = np.zeros(n_components)
    U = np.zeros((n_components, n_features))
    S = np.zeros((n_components, n_features, n_features))
    log_likelihood = 0.0
    for x in X:
        obs, miss = ~np.isnan(x), np.isnan(x)
        log_prob = _marginal_log_prob(x, weights, means, covariances)
        log_norm = logsumexp(log_prob)
        log_likelihood += log_norm
        resp = np.exp(log_prob - log_norm)
        for k in range(n_components):
            cov = covariances[k]
            x_hat = x.copy()
            conditional = np.zeros((n_features, n_features))
            if miss.any():
                gain = cov[np.ix_(miss, obs)] @ np.linalg.inv(cov[np.ix_(obs, obs)])
                x_hat[miss] = means[k, miss] + gain @ (x[obs] - means[k, obs])
                conditional[np.ix_(miss, miss)] = (
                    cov[np.ix_(miss, miss)] - gain @ cov[np.ix_(obs, miss)]
                )
            nk[k] += resp[k]
            U[k] += resp[k] * (x_hat - shift)
            diff = x_hat - means[k]
            S[k] += resp[k] * (np.outer(diff, diff) + conditional)
    if covariance_type == "tied":
        scatter = S.sum(axis=0)
    elif covariance_type == "diag":
        scatter = np.stack([np.diag(s) for s in S])
    elif covariance_type == "spherical":
        scatter = np.trace(S, axis1=1, axis2=2) / n_features
    else:
        scatter = S
    return log_likelihood, nk, scatter, U, shift


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_e_step_statistics_match_per_row_conditionals(covariance_type, chunk_size):
    X, X_missing = _data(n_samples=60, n_features=4, missing=0.3)
    X_missing[5] = np.nan  # a row with nothing observed
    model = _fit(X_missing, covariance_type)
    got = _missing_e_step(
        X_missing,
        *_split_rows(X_missing),
        model.weights_,
        model.means_,
        model.precisions_cholesky_,
        covariance_type,
        reg_covar=0.0,
        chunk_size=chunk_size,
        first_moment=True,
    )
    objective, log_likelihood, nk, scatter, U, shift = got
    expected = _brute_force_statistics(
        X_missing,
        model.weights_,
        model.means_,
        _full_covariances(model),
        covariance_type,
    )
    assert objective == pytest.approx(expected[0], rel=1e-12)
    assert log_likelihood == pytest.approx(expected[0], rel=1e-12)
    assert_allclose(nk, expected[1], rtol=1e-10, atol=1e-12)
    assert_allclose(scatter, expected[2], rtol=1e-9, atol=1e-10)
    assert_allclose(U, expected[3], rtol=1e-9, atol=1e-10)
    assert_allclose(shift, expected[4])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plain_log_likelihood_with_reg_covar(covariance_type):
    # With reg_covar the objective carries the factor exp(-r/2 tr Sigma^-1);
    # the plain log-likelihood must not.
    _, X_missing = _data(n_samples=60, n_features=3, missing=0.3)
    model = _fit(X_missing, covariance_type)
    args = (
        X_missing,
        *_split_rows(X_missing),
        model.weights_,
        model.means_,
        model.precisions_cholesky_,
        covariance_type,
    )
    plain = _missing_e_step(*args, reg_covar=0.0, chunk_size=None)
    penalised = _missing_e_step(*args, reg_covar=1e-2, chunk_size=None)
    assert penalised[1] == pytest.approx(plain[1], rel=1e-12)
    assert penalised[0] < plain[0]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_complete_rows_take_the_complete_data_path_bit_for_bit(covariance_type):
    X, _ = _data(n_samples=80)
    model = _fit(X, covariance_type)
    args = (
        model.weights_,
        model.means_,
        model.precisions_cholesky_,
        covariance_type,
    )
    options = {"reg_covar": 1e-6, "chunk_size": None, "first_moment": True}
    complete = _e_step_statistics(X, *args, **options)
    split = _missing_e_step(X, *_split_rows(X), *args, **options)
    for a, b in zip(complete, split, strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("mean_stiffness", [1.0, np.inf])
def test_em_with_missing_values_never_decreases_the_objective(
    covariance_type, mean_stiffness
):
    _, X_missing = _data(n_samples=400, missing=0.3)
    model = _fit(
        X_missing, covariance_type, mean_stiffness=mean_stiffness, max_iter=30, tol=0
    )
    history = model.lower_bounds_
    assert history.size == 30
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))
    assert np.all(np.isfinite(model.covariances_))


def test_missing_values_fit_is_close_to_the_complete_data_fit():
    # 30 % of the entries missing completely at random: the held-out
    # likelihood (complete test data) stays near the complete-data fit and
    # beats a fit on the complete rows only (which keeps ~24 % of the rows).
    X, X_missing = _data(n_samples=2000, n_features=4, missing=0.3, seed=1)
    X_test, _ = _data(n_samples=2000, n_features=4, seed=2)
    params = {"som": SelfOrganizingMap(4, 4, random_state=0), "random_state": 0}
    complete = SOMGenerativeModel(**params).fit(X).score(X_test)
    missing = SOMGenerativeModel(**params).fit(X_missing).score(X_test)
    rows = ~np.isnan(X_missing).any(axis=1)
    only_complete = SOMGenerativeModel(**params).fit(X_missing[rows]).score(X_test)
    assert missing > complete - 0.15
    assert missing > only_complete + 0.05


def test_impute_uses_the_model_fitted_on_incomplete_data():
    X, X_missing = _data(n_samples=2000, n_features=4, missing=0.3, seed=1)
    model = _fit(X_missing, "full")
    filled = model.impute(X_missing)
    mask = np.isnan(X_missing)
    assert not np.isnan(filled).any()
    assert_array_equal(filled[~mask], X_missing[~mask])
    column_means = np.nanmean(X_missing, axis=0)
    rmse_model = np.sqrt(np.mean((filled[mask] - X[mask]) ** 2))
    rmse_mean = np.sqrt(np.mean((np.where(mask, column_means, X)[mask] - X[mask]) ** 2))
    assert rmse_model < 0.8 * rmse_mean


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("container", [sparse.csr_matrix, sparse.csc_array])
def test_sparse_fit_equals_dense_fit(covariance_type, container):
    rng = np.random.RandomState(0)
    dense = rng.randn(300, 6) * (rng.rand(300, 6) < 0.3)
    kwargs = {"som": SelfOrganizingMap(3, 3, random_state=0), "random_state": 0}
    kwargs["covariance_type"] = covariance_type
    a = SOMGenerativeModel(**kwargs).fit(container(dense))
    b = SOMGenerativeModel(**kwargs).fit(dense)
    assert_allclose(a.means_, b.means_, rtol=1e-10, atol=1e-12)
    assert_allclose(a.covariances_, b.covariances_, rtol=1e-10, atol=1e-12)
    assert_allclose(a.weights_, b.weights_, rtol=1e-10, atol=1e-14)
    assert_allclose(
        a.score_samples(container(dense)), b.score_samples(dense), rtol=1e-10
    )
    assert_array_equal(a.predict(container(dense)), b.predict(dense))
    assert a.score(container(dense)) == pytest.approx(b.score(dense), rel=1e-10)


def test_sparse_float32_input_and_errors():
    rng = np.random.RandomState(0)
    dense = (rng.randn(200, 5) * (rng.rand(200, 5) < 0.4)).astype(np.float32)
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0)
    model.fit(sparse.csr_matrix(dense))
    reference = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(dense)
    assert_allclose(model.means_, reference.means_, rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError, match="predict_proba does not accept sparse"):
        model.predict_proba(sparse.csr_matrix(dense))
    bad = sparse.csr_matrix(dense)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="Sparse input holds NaN"):
        SOMGenerativeModel().fit(bad)
    with pytest.raises(ValueError, match="Sparse input holds NaN"):
        model.score_samples(bad)


def test_sparse_fit_never_densifies_the_data():
    rng = np.random.RandomState(0)
    # 640 MB dense; the chunked kernels hold O(chunk x n_features) at a time.
    n_samples, n_features = 20000, 4000
    X = sparse.random(
        n_samples, n_features, density=0.002, format="csr", random_state=rng
    )
    dense_bytes = n_samples * n_features * 8
    model = SOMGenerativeModel(
        SelfOrganizingMap(4, 4, random_state=0), max_iter=3, random_state=0
    )
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
            scores = model.score_samples(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.all(np.isfinite(scores))
    assert peak < 0.25 * dense_bytes, (peak, dense_bytes)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_sparse_e_step_equals_the_dense_e_step(covariance_type, offset):
    # Sparse products expand about the origin: with values 1e6 away from it
    # and a spread of 1, the rounding bound sends rows and units to the
    # direct recomputation, and the statistics still match the dense ones.
    from somgen._mixture import _scatter_from_labels
    from somgen._mixture_missing import _sparse_e_step, _sparse_label_statistics

    rng = np.random.RandomState(0)
    dense = (offset + rng.randn(120, 5)) * (rng.rand(120, 5) < 0.5)
    dense[:, 0] = offset + rng.randn(120)  # one dense column
    model = SOMGenerativeModel(
        SelfOrganizingMap(2, 2, random_state=0),
        covariance_type=covariance_type,
        random_state=0,
    ).fit(dense)
    args = (model.weights_, model.means_, model.precisions_cholesky_, covariance_type)
    options = {"reg_covar": 1e-6, "first_moment": True, "prior": 0.5}
    expected = _e_step_statistics(dense, *args, chunk_size=None, **options)
    got = _sparse_e_step(sparse.csr_matrix(dense), *args, chunk_size=17, **options)
    for a, b in zip(got, expected, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, offset))
    labels = model.predict(dense)
    for a, b in zip(
        _sparse_label_statistics(sparse.csr_matrix(dense), labels, model.means_),
        _scatter_from_labels(dense, labels, model.means_, "diag"),
        strict=True,
    ):
        assert_allclose(a, b, rtol=1e-9)
    assert_allclose(
        model.score_samples(sparse.csr_matrix(dense)),
        model.score_samples(dense),
        rtol=1e-12,
        atol=1e-9,
    )


def test_sparse_scores_of_far_away_rows_match_the_dense_ones():
    rng = np.random.RandomState(0)
    dense = rng.randn(200, 4) * (rng.rand(200, 4) < 0.5)
    model = SOMGenerativeModel(SelfOrganizingMap(2, 2), random_state=0).fit(dense)
    far = np.array([[1e200, 0.0, 0.0, 0.0], [0.0, -1e150, 0.0, 3.0]])
    got = model.score_samples(sparse.csr_matrix(far))
    assert_array_equal(got, model.score_samples(far))
    assert_array_equal(
        model.predict(sparse.csr_matrix(far)), model.predict_proba(far).argmax(axis=1)
    )


def test_plain_log_likelihood_survives_huge_jitter_differences():
    # Units with huge precisions (tiny variances on many features) have
    # jitters r/2 tr(Sigma^-1) thousands of nats apart; the matrix-vector
    # form underflowed to log(0) = -inf for rows held by the small ones.
    from somgen._mixture import _jitter_log_likelihood

    jitter = np.array([0.0, 2500.0, 3.0])
    resp = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    expected = sum(
        logsumexp(np.log(np.where(r > 0, r, 1.0)) + jitter, b=(r > 0)) for r in resp
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _jitter_log_likelihood(resp, jitter)
    assert got == pytest.approx(expected, rel=1e-14)


def test_bad_missing_value_inputs_give_clear_errors_and_keep_the_model():
    X, X_missing = _data()
    model = _fit(X_missing, "diag")
    before = model.means_.copy()
    never = X_missing.copy()
    never[:, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way
        with pytest.raises(
            ValueError, match=r"no observed value in feature\(s\) \[1\]"
        ):
            model.fit(never)
    assert_array_equal(model.means_, before)
    inf = X_missing.copy()
    inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(inf)
    with pytest.raises(ValueError, match="infinity"):
        model.score_samples(inf)
    # A row with nothing observed is accepted (its marginal density is 1): the
    # map warns, EM leaves it with the prior posterior.
    empty_row = X_missing.copy()
    empty_row[3] = np.nan
    with pytest.warns(UserWarning, match="no observed value"):
        refit = SOMGenerativeModel(
            SelfOrganizingMap(2, 3, random_state=0), random_state=0
        ).fit(empty_row)
    assert np.all(np.diff(refit.lower_bounds_) >= -1e-10)
    assert refit.score_samples(empty_row[3:4])[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_rare_patterns_far_away_rows_get_exact_posteriors(covariance_type):
    # Rows of rare missingness patterns go through the batched per-row path;
    # those whose distances overflow fall back to the pattern kernel, which
    # returns the limit of the posterior.
    from somgen._mixture_missing import _MIN_PATTERN_ROWS

    _, X_missing = _data(n_samples=300, n_features=4, missing=0.3)
    model = _fit(X_missing, covariance_type)
    rows = np.array(
        [
            [1e200, np.nan, 0.0, 1.0],
            [np.nan, -1e180, np.nan, 2.0],
            [0.5, np.nan, 1.0, 1.0],
        ]
    )
    assert rows.shape[0] < _MIN_PATTERN_ROWS
    proba = model.predict_proba(rows)
    assert np.all(np.isfinite(proba))
    assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    scores = model.score_samples(rows)
    assert not np.any(np.isnan(scores))
    covariances = _full_covariances(model)
    expected = logsumexp(
        _marginal_log_prob(rows[2], model.weights_, model.means_, covariances)
    )
    assert scores[2] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_label_statistics_count_missing_residuals_as_zero(covariance_type):
    from somgen._mixture import _centred_scatter, _scatter_from_labels

    _, X_missing = _data(n_samples=50, n_features=3, missing=0.3)
    rng = np.random.RandomState(1)
    means = rng.randn(4, 3)
    labels = rng.randint(4, size=50)
    diff = np.nan_to_num(X_missing - means[labels])
    nk, scatter = _scatter_from_labels(
        X_missing, labels, means, covariance_type, zero_missing=True
    )
    full = np.stack([diff[labels == k].T @ diff[labels == k] for k in range(4)])
    expected = {
        "full": full,
        "tied": full.sum(axis=0),
        "diag": np.diagonal(full, axis1=1, axis2=2),
        "spherical": np.trace(full, axis1=1, axis2=2) / 3,
    }[covariance_type]
    assert_array_equal(nk, np.bincount(labels, minlength=4))
    assert_allclose(scatter, expected, rtol=1e-12)
    centred = np.nan_to_num(X_missing - 0.5)
    layout = "full" if covariance_type in ("full", "tied") else "diag"
    total = _centred_scatter(X_missing, np.full(3, 0.5), layout, zero_missing=True)
    assert_allclose(
        total, centred.T @ centred if layout == "full" else (centred**2).sum(0)
    )
