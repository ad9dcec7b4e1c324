r"""Mixtures on incomplete and sparse data: marginal densities and EM statistics.

A sample with observed features :math:`o` (NaN marks the others) has the
marginal density

.. math:: p(x_o) = \sum_k \pi_k \, \mathcal{N}(x_o \mid \mu_{k,o}, \Sigma_{k,oo}),

a normalised density over its observed coordinates (``1`` when nothing is
observed). EM with missing data (Ghahramani and Jordan, 1994; Little and
Rubin, *Statistical Analysis with Missing Data*, ch. 11) takes its E-step
posteriors from these marginals and feeds the M-step of
:func:`somgen._mixture._pinned_em` the expected complete-data statistics:
given component :math:`k`, the missing block has the conditional mean
:math:`\hat x_{ik,m} = \mu_{k,m} + \Sigma_{k,mo} \Sigma_{k,oo}^{-1} (x_{i,o} -
\mu_{k,o})` and the conditional covariance :math:`C_{k} = \Sigma_{k,mm} -
\Sigma_{k,mo} \Sigma_{k,oo}^{-1} \Sigma_{k,om} = (\Lambda_{k,mm})^{-1}`, so that

.. math::

    N_k = \sum_i r_{ik}, \quad U_k = \sum_i r_{ik} (\hat x_{ik} - c), \quad
    S_k = \sum_i r_{ik} \big[ (\hat x_{ik} - \mu_k)(\hat x_{ik} - \mu_k)^T
    + C_{k} \big].

With these, each M-step still maximises its part of the expected penalised
objective, so the observed-data objective never decreases; rows without NaN
contribute exactly what they contribute to the complete-data EM, by the same
code, so data without NaN give bit-identical fits.

For ``'diag'`` and ``'spherical'`` the features are independent given the
component: the marginal is a masked sum, computed for any mix of missingness
patterns at once by one matrix product per chunk,
``[x_c^2, x_c, M, 1] @ [-P/2; P mu_c; log-terms; log pi]`` (NaN set to 0 in
the centred ``x_c``, ``M`` the observation mask), with a rounding-error bound
and a direct recomputation of the rows where it is not small, as in the
complete case. ``'full'`` and ``'tied'`` handle a missingness pattern shared
by at least ``_MIN_PATTERN_ROWS`` rows once, through the precision factors'
Schur complements (:func:`somgen._mixture._observed_marginal`), and the rows
of rarer patterns one by one in batched linear algebra (:func:`_row_blocks`):
a ``d x d`` inverse per row and unit.

Sparse matrices are read by chunks of rows densified one at a time
(:class:`_Rows`), so memory stays ``O(chunk * (n_features + n_components))``.
"""

import numpy as np
from scipy import sparse

from somgen._mixture import (
    _CHUNK_FLOATS,
    _LOG_PROB_TOL,
    _NEGLIGIBLE_NATS,
    _SCATTER_RTOL,
    _SUB_CHUNK_FLOATS,
    _chunks,
    _e_step_statistics,
    _gaussian_terms,
    _jitter_log_likelihood,
    _log_det_precision_cholesky,
    _log_prob_chunk,
    _log_weights,
    _logsumexp_rows,
    _missingness_patterns,
    _normalise_rows,
    _observed_marginal,
    _precision_matrices,
    _precision_trace,
    _rounding_factor,
    _statistics_fold,
    _symmetrise,
)
from somgen._parallel import _single_threaded_blas

_LOG_2PI = float(np.log(2.0 * np.pi))

# 'full'/'tied' rows whose missingness pattern is shared by fewer rows go
# through the batched per-row path (:func:`_row_blocks`); a pattern shared by
# more rows is cheaper once per pattern.
_MIN_PATTERN_ROWS = 8


class _Rows:
    """Dense float64 chunks of some rows of a dense or sparse matrix.

    ``rows[a:b]`` is ``X[index[a:b]]`` (``X[a:b]`` when ``index`` is None) as
    a dense array: the chunked kernels of :mod:`somgen._mixture`, which only
    read ``X.shape`` and ``X[slice]``, thereby run on the complete rows of
    incomplete data, or on a sparse matrix, without a copy of all of ``X``.
    """

    def __init__(self, X, index=None):
        self.X = X
        self.index = index
        n_samples = X.shape[0] if index is None else index.size
        self.shape = (n_samples, X.shape[1])

    def __getitem__(self, rows):
        if self.index is not None:
            rows = self.index[rows]
        block = self.X[rows]
        if sparse.issparse(block):
            block = block.toarray()
        return np.asarray(block, dtype=np.float64)


def _split_rows(X):
    """``(complete, incomplete)`` row indices of a dense ``X`` with NaN."""
    incomplete = np.isnan(X).any(axis=1)
    return np.flatnonzero(~incomplete), np.flatnonzero(incomplete)


def _has_missing(X):
    """Whether ``X`` is a dense array holding NaN (validated sparse input never
    does)."""
    if not isinstance(X, np.ndarray) or X.size == 0:
        return False
    return bool(np.isnan(np.min(X)))


# ---------------------------------------------------------------------------
# Marginal log-densities
# ---------------------------------------------------------------------------


def _model(weights, means, precisions_cholesky, covariance_type, *, reg_covar=0.0):
    """What every block of incomplete rows shares.

    ``log_weights`` carry the factor ``exp(-reg_covar / 2 tr(Sigma_k^{-1}))``
    of the penalised objective when ``reg_covar > 0`` (see
    :func:`somgen._mixture._e_step_statistics`).
    """
    means = np.asarray(means, dtype=np.float64)
    n_components, n_features = means.shape
    # The per-component factor r / 2 tr(Sigma_k^{-1}) of the objective.
    jitter = np.zeros(n_components)
    if reg_covar > 0.0:
        jitter = (
            0.5
            * reg_covar
            * np.broadcast_to(
                _precision_trace(precisions_cholesky, covariance_type, n_features),
                (n_components,),
            )
        )
    log_weights = _log_weights(np.asarray(weights, dtype=np.float64)) - jitter
    model = {
        "covariance_type": covariance_type,
        "means": means,
        "precisions_cholesky": precisions_cholesky,
        "log_weights": log_weights,
        "jitter": jitter,
        "shift": means.mean(axis=0),
    }
    if covariance_type in ("diag", "spherical"):
        model["masked"] = _masked_terms(
            means, precisions_cholesky, covariance_type, log_weights
        )
    else:
        log_det = _log_det_precision_cholesky(
            precisions_cholesky, covariance_type, n_features
        )
        model["log_det"] = log_det
        model["precisions"] = _precision_matrices(precisions_cholesky, covariance_type)
        model["covariances"] = np.linalg.inv(model["precisions"])
        if covariance_type == "full":
            model["full_terms"] = (
                _gaussian_terms(means, precisions_cholesky, "full"),
                model["precisions"],
            )
    return model


def _masked_terms(means, precisions_cholesky, covariance_type, log_weights):
    """Right operand and error-bound constants of the masked product.

    For a centred sample ``x_c`` with NaN set to 0 and observation mask ``M``,
    ``log pi_k + log N(x_o | mu_k,o, Sigma_k,oo)`` is the product of the
    design row ``[x_c^2, x_c, M, 1]`` with the column ``[-p_k / 2; p_k
    mu_c,k; log-terms_k; log pi_k]``, where ``p`` are the precisions and the
    per-feature log-terms ``(log p_kj - log 2 pi - p_kj mu_c,kj^2) / 2``.
    """
    n_components, n_features = means.shape
    precisions = np.asarray(precisions_cholesky, dtype=np.float64) ** 2
    if covariance_type == "spherical":
        precisions = np.repeat(precisions[:, np.newaxis], n_features, axis=1)
    shift = means.mean(axis=0)
    centred = means - shift
    weighted = centred * precisions
    log_terms = 0.5 * (np.log(precisions) - _LOG_2PI)
    live = np.isfinite(log_weights)
    live_bias = np.where(live, log_weights, 0.0)
    gemm = np.vstack(
        [-0.5 * precisions.T, weighted.T, (log_terms - 0.5 * centred * weighted).T]
    )
    gemm = np.vstack([gemm, live_bias])
    return {
        "precisions": precisions,
        "centred": centred,
        "shift": shift,
        "live": live,
        "dead": np.flatnonzero(~live),
        "gemm": np.ascontiguousarray(gemm),
        "precision_max": precisions.max(axis=0),
        "mean_radius": float(np.sqrt(np.einsum("kj,kj->k", centred, weighted).max())),
        # The products that are not part of the Mahalanobis expansion.
        "bias_bound": float(
            np.abs(log_terms).sum(axis=1).max() + np.abs(live_bias).max()
        ),
        "gamma": _rounding_factor(3 * n_features + 1),
    }


def _masked_log_prob(X, model):
    """Weighted marginal log-densities of a chunk for ``'diag'``/``'spherical'``.

    Returns ``(log_prob, offset, design)`` as
    :func:`somgen._mixture._log_prob_chunk` does; ``design`` is ``[x_c^2, x_c,
    M, 1]``, reused by the E-step. Rows whose rounding-error bound exceeds
    ``_LOG_PROB_TOL`` nats are recomputed on their observed features by the
    complete-data kernel (exact, outliers included), one pattern at a time.
    """
    terms = model["masked"]
    n_samples, n_features = X.shape
    observed = ~np.isnan(X)
    design = np.empty((n_samples, 3 * n_features + 1))
    centred = design[:, n_features : 2 * n_features]
    np.subtract(X, terms["shift"], out=centred)
    centred[~observed] = 0.0
    np.square(centred, out=design[:, :n_features])
    design[:, 2 * n_features : 3 * n_features] = observed
    design[:, -1] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        log_prob = design @ terms["gemm"]
        radius = np.sqrt(design[:, :n_features] @ terms["precision_max"])
        error = terms["gamma"] * (
            0.5 * (radius + terms["mean_radius"]) ** 2 + terms["bias_bound"]
        )
    log_prob[:, terms["dead"]] = -np.inf
    suspect = np.flatnonzero(~(error <= _LOG_PROB_TOL))
    offset = None
    if suspect.size:
        offset = np.zeros(n_samples)
        for rows, obs, _ in _missingness_patterns(~observed, suspect):
            log_prob[rows], row_offset = _observed_log_prob(X[rows], obs, model)
            offset[rows] = row_offset
    return log_prob, offset, design


def _observed_log_prob(X, obs, model):
    """Exact weighted log-densities of rows observed on ``obs`` (diag/spherical)."""
    log_weights = model["log_weights"]
    if obs.size == 0:
        return np.broadcast_to(log_weights, (X.shape[0], log_weights.size)), 0.0
    factors = np.asarray(model["precisions_cholesky"], dtype=np.float64)
    if model["covariance_type"] == "diag":
        factors = factors[:, obs]
        log_det = np.log(factors).sum(axis=1)
    else:
        log_det = obs.size * np.log(factors)
    terms = _gaussian_terms(
        model["means"][:, obs],
        factors,
        model["covariance_type"],
        log_weights=log_weights,
        log_det=log_det,
    )
    log_prob, offset, _ = _log_prob_chunk(X[:, obs], terms, window=np.inf)
    return log_prob, 0.0 if offset is None else offset


def _incomplete_blocks(X, rows, model, chunk_size=None):
    """Yield ``(rows, log_prob, offset, block)`` covering the rows ``rows``.

    ``log_prob`` holds the weighted marginal log-densities (plus ``offset``,
    see :func:`somgen._mixture._log_prob_chunk`); ``block`` what the E-step
    statistics need: for ``'diag'``/``'spherical'`` the chunk and its design,
    for ``'full'``/``'tied'`` the pattern, its observed values and the gains.
    """
    covariance_type = model["covariance_type"]
    n_components, n_features = model["means"].shape
    if covariance_type in ("diag", "spherical"):
        row_floats = 2 * n_components + 5 * n_features + 1
        for part in _chunks(rows.size, row_floats, chunk_size):
            chunk_rows = rows[part]
            X_chunk = X[chunk_rows]
            log_prob, offset, design = _masked_log_prob(X_chunk, model)
            yield chunk_rows, log_prob, offset, {"X": X_chunk, "design": design}
        return

    missing = np.isnan(X[rows]) if rows.size else np.zeros((0, n_features), bool)
    rare = []
    for pattern_rows, obs, miss in _missingness_patterns(missing, np.arange(rows.size)):
        if pattern_rows.size < _MIN_PATTERN_ROWS and obs.size:
            rare.append(pattern_rows)
            continue
        pattern_rows = rows[pattern_rows]
        pattern = _pattern(model, obs, miss)
        if obs.size == 0:
            for part in _chunks(pattern_rows.size, n_components, chunk_size):
                block = dict(pattern, X_obs=np.zeros((part.stop - part.start, 0)))
                log_prob = np.tile(model["log_weights"], (block["X_obs"].shape[0], 1))
                yield pattern_rows[part], log_prob, None, block
            continue
        row_floats = 4 * n_components + 3 * n_features
        for part in _chunks(pattern_rows.size, row_floats, chunk_size):
            # The pattern's terms are rebuilt per chunk: O(K d m^2), small
            # next to the chunk's own work.
            yield _pattern_chunk(X, pattern_rows[part], obs, miss, model, pattern)
    if rare:
        yield from _row_blocks(
            X, rows[np.sort(np.concatenate(rare))], model, chunk_size
        )


def _row_blocks(X, rows, model, chunk_size=None):
    """:func:`_incomplete_blocks` for rows of rare missingness patterns
    (``'full'``/``'tied'``), row by row in batched linear algebra.

    With ``M`` a row's observation mask, the matrix ``S~ = M Sigma M + (I -
    M)`` has the observed block of ``Sigma`` and an identity elsewhere, so its
    Cholesky factor gives ``log det Sigma_oo`` and ``P = S~^{-1} - (I - M)``
    holds ``Sigma_oo^{-1}`` on the observed block and zeros elsewhere: the
    marginal's Mahalanobis distance is ``r^T P r`` for the zero-filled
    residual ``r``, the conditional mean is ``mu + Sigma P r`` and the
    conditional covariance ``Sigma - Sigma P Sigma``. One batch holds
    ``(rows, n_components, d, d)`` values (``(rows, d, d)`` for ``'tied'``),
    at most ``_CHUNK_FLOATS``. Rows whose distances overflow go through the
    pattern path, whose kernel handles outliers.
    """
    covariance_type = model["covariance_type"]
    means = model["means"]
    n_components, n_features = means.shape
    covariances = model["covariances"]
    per_row = (
        n_features * n_features * (n_components if covariance_type == "full" else 1)
    )
    step = chunk_size or max(1, _CHUNK_FLOATS // (3 * per_row + 4 * n_components))
    identity = np.eye(n_features)
    for part in _chunks(rows.size, 1, step):
        chunk_rows = rows[part]
        X_chunk = X[chunk_rows]
        observed = ~np.isnan(X_chunk)
        outer = (observed[:, :, np.newaxis] & observed[:, np.newaxis, :]).astype(float)
        unobserved = np.einsum("bd,de->bde", (~observed).astype(float), identity)
        if covariance_type == "full":
            outer, unobserved = outer[:, np.newaxis], unobserved[:, np.newaxis]
        masked = covariances * outer + unobserved
        factor = np.linalg.cholesky(masked)
        log_det = 2.0 * np.log(np.diagonal(factor, axis1=-2, axis2=-1)).sum(axis=-1)
        P = np.linalg.inv(masked) - unobserved
        resid = np.where(observed[:, np.newaxis, :], X_chunk[:, np.newaxis, :], 0.0)
        resid = resid - np.where(observed[:, np.newaxis, :], means, 0.0)
        if covariance_type == "full":
            projected = np.matmul(P, resid[..., np.newaxis])[..., 0]
        else:
            # (b, d, d) @ (b, d, K): every component of a row at once.
            projected = np.matmul(P, resid.transpose(0, 2, 1)).transpose(0, 2, 1)
            log_det = log_det[:, np.newaxis]
        maha = np.einsum("bkd,bkd->bk", resid, projected)
        n_observed = observed.sum(axis=1)[:, np.newaxis]
        with np.errstate(over="ignore", invalid="ignore"):
            log_prob = model["log_weights"] - 0.5 * (
                maha + log_det + n_observed * _LOG_2PI
            )
        far = ~np.isfinite(log_prob).any(axis=1) | np.isnan(log_prob).any(axis=1)
        if far.any():
            # Outliers: the pattern path (exact kernel with the posterior's
            # limit); the other rows continue here.
            yield from _pattern_blocks(X, chunk_rows[far], model)
            keep = ~far
            chunk_rows, log_prob = chunk_rows[keep], log_prob[keep]
            P, projected = P[keep], projected[keep]
            if chunk_rows.size == 0:
                continue
        yield chunk_rows, log_prob, None, {"P": P, "projected": projected}


def _pattern_blocks(X, rows, model):
    """The per-pattern path of :func:`_incomplete_blocks` for ``rows``, whatever
    the number of rows per pattern."""
    missing = np.isnan(X[rows])
    for pattern_rows, obs, miss in _missingness_patterns(missing, np.arange(rows.size)):
        pattern = _pattern(model, obs, miss)
        yield _pattern_chunk(X, rows[pattern_rows], obs, miss, model, pattern)


def _pattern_chunk(X, rows, obs, miss, model, pattern):
    """``(rows, log_prob, offset, block)`` of rows sharing the pattern
    ``(obs, miss)``, by the complete-data kernel on the observed marginal."""
    terms, X_known, _ = _observed_marginal(
        X,
        rows,
        obs,
        miss,
        log_weights=model["log_weights"],
        means=model["means"],
        precisions_cholesky=model["precisions_cholesky"],
        log_det=model["log_det"],
        covariance_type=model["covariance_type"],
        full_terms=model.get("full_terms"),
    )
    log_prob, offset, _ = _log_prob_chunk(X_known, terms, window=_NEGLIGIBLE_NATS)
    return rows, log_prob, offset, dict(pattern, X_obs=X[rows][:, obs])


def _pattern(model, obs, miss):
    """Gains ``Sigma_mo Sigma_oo^{-1}`` and conditional covariances of ``miss``.

    ``gain`` has shape (n_components, n_missing, n_observed) for ``'full'``
    and (n_missing, n_observed) for ``'tied'``; ``conditional`` is
    ``Lambda_mm^{-1}`` in the same layouts.
    """
    precisions = model["precisions"]
    if model["covariance_type"] == "full":
        block = precisions[:, miss][:, :, miss]
        cross = precisions[:, miss][:, :, obs]
    else:
        block = precisions[np.ix_(miss, miss)]
        cross = precisions[np.ix_(miss, obs)]
    conditional = np.linalg.inv(block) if miss.size else block
    gain = -conditional @ cross
    return {"obs": obs, "miss": miss, "gain": gain, "conditional": conditional}


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


def _map_missing(X, model_args, out, complete_kernel, block_func, chunk_size):
    """Fill ``out`` row by row: the complete rows by ``complete_kernel`` (the
    complete-data kernel, unchanged), the incomplete ones by
    ``block_func(log_prob, offset)`` on their marginal log-densities."""
    complete, incomplete = _split_rows(X)
    if complete.size:
        out[complete] = complete_kernel(
            _Rows(X, complete), *model_args, chunk_size=chunk_size
        )
    model = _model(*model_args)
    # BLAS on one thread: the blocks' products are small, and the sums then
    # do not depend on the thread count.
    with _single_threaded_blas():
        for rows, log_prob, offset, _ in _incomplete_blocks(
            X, incomplete, model, chunk_size
        ):
            out[rows] = block_func(np.array(log_prob), offset)
    return out


def _score_samples_missing(
    X, weights, means, precisions_cholesky, covariance_type, chunk_size=None
):
    """Marginal log-density of the observed entries of each row of ``X``."""
    from somgen._mixture import _score_samples_chunked

    return _map_missing(
        X,
        (weights, means, precisions_cholesky, covariance_type),
        np.empty(X.shape[0]),
        _score_samples_chunked,
        _logsumexp_rows,
        chunk_size,
    )


def _predict_proba_missing(
    X, weights, means, precisions_cholesky, covariance_type, chunk_size=None
):
    """Posteriors ``p(k | x_o)`` from the marginals; complete rows unchanged."""
    from somgen._mixture import _predict_proba

    def posterior(log_prob, offset):
        _normalise_rows(log_prob, offset)
        return log_prob

    return _map_missing(
        X,
        (weights, means, precisions_cholesky, covariance_type),
        np.empty((X.shape[0], np.shape(means)[0])),
        _predict_proba,
        posterior,
        chunk_size,
    )


# ---------------------------------------------------------------------------
# E-step
# ---------------------------------------------------------------------------


def _missing_e_step(
    X,
    complete,
    incomplete,
    weights,
    means,
    precisions_cholesky,
    covariance_type,
    *,
    reg_covar,
    chunk_size,
    prior=0.0,
    first_moment=False,
):
    """:func:`somgen._mixture._e_step_statistics` for data with NaN.

    The complete rows go through the complete-data E-step (the same sums
    in the same order as for data holding only them); the incomplete rows add
    the expected complete-data statistics described in the module docstring.
    Returns the same tuple.
    """
    n_components, n_features = np.shape(means)
    n_samples = complete.size + incomplete.size
    fold = _statistics_fold(n_components, n_features, covariance_type)
    totals = fold(None, ())
    if complete.size:
        statistics = _e_step_statistics(
            _Rows(X, complete),
            weights,
            means,
            precisions_cholesky,
            covariance_type,
            reg_covar=reg_covar,
            chunk_size=chunk_size,
            prior=prior * complete.size / n_samples,
            first_moment=first_moment,
        )
        totals = fold(totals, statistics[:5])  # without the shift
    model = _model(
        weights, means, precisions_cholesky, covariance_type, reg_covar=reg_covar
    )
    with _single_threaded_blas():
        for rows, log_prob, offset, block in _incomplete_blocks(
            X, incomplete, model, chunk_size
        ):
            resp = np.array(log_prob)
            objective = _normalise_rows(resp, offset).sum()
            log_likelihood = objective
            if reg_covar > 0.0:
                log_likelihood += _jitter_log_likelihood(resp, model["jitter"])
            share = prior * rows.size / n_samples
            moments = _incomplete_moments(block, resp, model, reg_covar, share)
            totals = fold(totals, (objective, log_likelihood, *moments))
    objective, log_likelihood, nk, scatter, U = totals
    statistics = (objective, log_likelihood, nk, _symmetrise(scatter, covariance_type))
    if first_moment:
        return (*statistics, U, model["shift"])
    return statistics


def _incomplete_moments(block, resp, model, reg_covar, prior):
    """``(nk, scatter, U)`` of a block of incomplete rows (module docstring)."""
    if "design" in block:
        return _masked_moments(block, resp, model, reg_covar, prior)
    if "P" in block:
        return _row_moments(block, resp, model)
    return _pattern_moments(block, resp, model)


def _row_moments(block, resp, model):
    """Expected statistics of the rows of :func:`_row_blocks`.

    ``x_hat - mu_k = Sigma_k P r`` and the conditional covariance ``Sigma_k -
    Sigma_k P Sigma_k``: the scatter is ``sum_i r_ik y y^T + N_k Sigma_k -
    Sigma_k (sum_i r_ik P_ik) Sigma_k``, ``U`` sums ``r_ik (y + mu_k - c)``.
    The sums over rows are batched matrix products.
    """
    covariance_type = model["covariance_type"]
    means, shift = model["means"], model["shift"]
    covariances = model["covariances"]
    P, projected = block["P"], block["projected"]  # projected = P r
    n_rows, n_components, n_features = projected.shape
    nk = resp.sum(axis=0)
    if covariance_type == "full":
        # y_bk = Sigma_k P_bk r_bk: (K, d, d) @ (K, d, b).
        y = np.matmul(covariances, projected.transpose(1, 2, 0))  # (K, d, b)
        weighted = y * resp.T[:, np.newaxis, :]
        second = np.matmul(weighted, y.transpose(0, 2, 1))  # (K, d, d)
        flat_P = P.reshape(n_rows, n_components, -1).transpose(1, 0, 2)
        weighted_P = np.matmul(resp.T[:, np.newaxis, :], flat_P)[:, 0]
        weighted_P = weighted_P.reshape(n_components, n_features, n_features)
        scatter = (
            second
            + nk[:, np.newaxis, np.newaxis] * covariances
            - np.matmul(np.matmul(covariances, weighted_P), covariances)
        )
    else:
        y = np.matmul(covariances, projected.transpose(1, 2, 0))  # (K, d, b)
        weighted = y * resp.T[:, np.newaxis, :]
        second = np.matmul(weighted, y.transpose(0, 2, 1)).sum(axis=0)
        weighted_P = (resp.sum(axis=1) @ P.reshape(n_rows, -1)).reshape(
            n_features, n_features
        )
        scatter = (
            second + nk.sum() * covariances - covariances @ weighted_P @ covariances
        )
    U = weighted.sum(axis=2) + nk[:, np.newaxis] * (means - shift)
    return nk, scatter, U


def _masked_moments(block, resp, model, reg_covar, prior):
    """Expected statistics of a ``'diag'``/``'spherical'`` chunk.

    ``resp.T @ [x_c^2, x_c, M, 1]`` gives, per component and feature, the
    observed second and first moments, the observed count ``C`` and ``N_k``;
    a missing entry adds the variance ``1 / p_kj`` to the scatter and
    ``mu_c,kj`` to ``U``. A component whose expanded scatter may have lost
    accuracy (the bound of :func:`somgen._mixture._soft_scatter`) is
    recomputed from the differences.
    """
    terms = model["masked"]
    X, design = block["X"], block["design"]
    n_samples, n_features = X.shape
    centred = terms["centred"]
    sums = resp.T @ design
    Q = sums[:, :n_features]
    U0 = sums[:, n_features : 2 * n_features]
    counts = sums[:, 2 * n_features : 3 * n_features]
    nk = sums[:, -1]
    scatter = Q - centred * (2.0 * U0 - counts * centred)
    radius = np.sqrt(Q) + np.sqrt(counts) * np.abs(centred)
    gamma = _rounding_factor(n_samples + centred.shape[0])
    with np.errstate(over="ignore"):
        limit = _SCATTER_RTOL * (scatter + nk[:, np.newaxis] * reg_covar + prior)
    bad = np.flatnonzero(np.any(~(gamma * radius**2 <= limit), axis=1))
    for k in bad:
        active = np.flatnonzero(resp[:, k])
        diff = X[active] - model["means"][k]
        diff[np.isnan(diff)] = 0.0
        scatter[k] = resp[active, k] @ diff**2
    unobserved = nk[:, np.newaxis] - counts
    scatter += unobserved / terms["precisions"]
    U = U0 + centred * unobserved
    if model["covariance_type"] == "spherical":
        scatter = scatter.mean(axis=1)
    return nk, scatter, U


def _pattern_moments(block, resp, model):
    """Expected statistics of the rows of one pattern (``'full'``/``'tied'``).

    With ``d_ik = x_o - mu_k,o`` and ``E_k = [I; G_k]`` (observed rows, then
    missing rows through the gain), ``x_hat_ik - mu_k = E_k d_ik``, so the
    scatter is ``E_k (sum_i r_ik d_ik d_ik^T) E_k^T + N_k C_k``. The sums over
    samples are products of the differences, never expanded.
    """
    covariance_type = model["covariance_type"]
    means, shift = model["means"], model["shift"]
    obs, miss, gain = block["obs"], block["miss"], block["gain"]
    conditional = block["conditional"]
    X_obs = block["X_obs"]
    n_components, n_features = means.shape
    n_obs = obs.size
    nk = resp.sum(axis=0)
    # Sums over samples of r_ik d_ik (first) and r_ik d_ik d_ik^T (second).
    first = np.zeros((n_components, n_obs))
    second = np.zeros((n_components, n_obs, n_obs))
    if n_obs:
        step = max(1, _SUB_CHUNK_FLOATS // (n_components * n_obs))
        for start in range(0, X_obs.shape[0], step):
            part = slice(start, start + step)
            diff = X_obs[part, np.newaxis, :] - means[:, obs]
            weighted = diff * resp[part, :, np.newaxis]
            first += weighted.sum(axis=0)
            second += np.matmul(weighted.transpose(1, 2, 0), diff.transpose(1, 0, 2))
    U = np.empty((n_components, n_features))
    U[:, obs] = first
    offsets = nk[:, np.newaxis] * (means - shift)
    if covariance_type == "full":
        U[:, miss] = np.einsum("kmo,ko->km", gain, first)
        U += offsets
        scatter = np.zeros((n_components, n_features, n_features))
        # E_k S E_k^T by blocks: [S, S G^T; G S, G S G^T + N C].
        gain_second = np.matmul(gain, second)  # (K, m, o)
        scatter[np.ix_(np.arange(n_components), obs, obs)] = second
        scatter[np.ix_(np.arange(n_components), miss, obs)] = gain_second
        scatter[np.ix_(np.arange(n_components), obs, miss)] = gain_second.transpose(
            0, 2, 1
        )
        scatter[np.ix_(np.arange(n_components), miss, miss)] = (
            np.matmul(gain_second, gain.transpose(0, 2, 1))
            + nk[:, np.newaxis, np.newaxis] * conditional
        )
        return nk, scatter, U
    U[:, miss] = first @ gain.T
    U += offsets
    total = second.sum(axis=0)
    gain_total = gain @ total
    scatter = np.zeros((n_features, n_features))
    scatter[np.ix_(obs, obs)] = total
    scatter[np.ix_(miss, obs)] = gain_total
    scatter[np.ix_(obs, miss)] = gain_total.T
    scatter[np.ix_(miss, miss)] = gain_total @ gain.T + nk.sum() * conditional
    return nk, scatter, U


# ---------------------------------------------------------------------------
# Hard-label statistics (initialisation and the shrinkage target)
# ---------------------------------------------------------------------------


def _observed_counts(X):
    """Per feature: the sum of the observed values and their number, by chunks
    (a sparse matrix has every entry observed)."""
    n_samples, n_features = X.shape
    if sparse.issparse(X):
        return np.asarray(X.sum(axis=0)).ravel(), np.full(n_features, float(n_samples))
    sums, counts = np.zeros(n_features), np.zeros(n_features)
    for part in _chunks(n_samples, n_features):
        block = X[part]
        sums += np.nansum(block, axis=0)
        counts += (~np.isnan(block)).sum(axis=0)
    return sums, counts


def _observed_rescaling(scatter, observed, n_samples, layout):
    """Rescale zero-filled scatter to the observed variances.

    Zero residuals in place of the missing entries shrink the scatter of
    feature ``j`` by the fraction observed, ``c_j = observed_j / n``; dividing
    row and column ``j`` by ``sqrt(c_j)`` restores the variances while the
    correlations stay attenuated (toward 0), which keeps a positive definite
    matrix positive definite.
    """
    fraction = np.maximum(observed, 1.0) / max(n_samples, 1)
    if layout in ("full", "tied"):
        scale = 1.0 / np.sqrt(fraction)
        return scatter * np.outer(scale, scale)
    return scatter / fraction


def _initial_covariances(X, labels, means, covariance_type, *, shrinkage, reg_covar):
    """Shrinkage target and initial covariances for data with NaN or sparse.

    The counterpart of :func:`somgen._mixture._pooled_target` and
    :func:`somgen._mixture._estimate_covariances` on hard labels: the same
    degrees-of-freedom corrected pooled target (Scott fallback included),
    computed by chunks, with the variances taken over the observed entries
    (:func:`_observed_rescaling`). EM then refines the covariances with the
    exact expected statistics. Returns ``(covariances, target)``.
    """
    from somgen._mixture import (
        _centred_scatter,
        _covariances_from_scatter,
        _pooled_target_from_scatter,
        _scatter_from_labels,
        _scott_target,
    )

    n_samples = X.shape[0]
    layout = "diag" if covariance_type == "spherical" else covariance_type
    rows = _Rows(X) if sparse.issparse(X) else X
    if sparse.issparse(X) and layout == "diag":
        nk, scatter = _sparse_label_statistics(X, labels, means)
    else:
        nk, scatter = _scatter_from_labels(
            rows, labels, means, layout, zero_missing=True
        )
    sums, observed = _observed_counts(X)
    scatter = _observed_rescaling(scatter, observed, n_samples, layout)
    target = _pooled_target_from_scatter(nk, scatter, n_samples, layout)
    if target is None:
        centre = sums / np.maximum(observed, 1.0)
        total = _centred_scatter(rows, centre, layout, zero_missing=True)
        total = _observed_rescaling(total, observed, n_samples, layout)
        target = _scott_target(total, n_samples, layout)
    if covariance_type == "spherical":
        target = float(np.mean(target))
        scatter = scatter.mean(axis=1)
    covariances = _covariances_from_scatter(
        nk, scatter, target, covariance_type, shrinkage=shrinkage, reg_covar=reg_covar
    )
    return covariances, target


# ---------------------------------------------------------------------------
# Sparse input, 'diag' and 'spherical': sparse-dense products
# ---------------------------------------------------------------------------


def _sparse_terms(weights, means, precisions_cholesky, covariance_type, reg_covar):
    """Operands of the sparse kernel, uncentred (centring would densify X).

    ``log pi_k + log N(x | mu_k, Sigma_k) = (x^2) @ (-p_k / 2) + x @ (p_k mu_k)
    + b_k`` with ``b_k = log pi_k + sum_j (log p_kj - log 2 pi - p_kj mu_kj^2) /
    2``: two sparse-dense products per chunk. ``'spherical'`` is ``'diag'``
    with equal precisions.
    """
    model = _model(
        weights, means, precisions_cholesky, covariance_type, reg_covar=reg_covar
    )
    n_components, n_features = model["means"].shape
    precisions = np.asarray(precisions_cholesky, dtype=np.float64) ** 2
    if covariance_type == "spherical":
        precisions = np.repeat(precisions[:, np.newaxis], n_features, axis=1)
    weighted = precisions * model["means"]
    log_terms = 0.5 * (np.log(precisions) - _LOG_2PI - weighted * model["means"])
    live = np.isfinite(model["log_weights"])
    bias = log_terms.sum(axis=1) + np.where(live, model["log_weights"], 0.0)
    # NumPy's pairwise sums: at most 16 + log2(d) roundings per term.
    bias_error = _rounding_factor(16 + int(np.ceil(np.log2(n_features + 1)))) * (
        np.abs(log_terms).sum(axis=1).max()
    )
    model.update(
        square_operand=np.ascontiguousarray((-0.5 * precisions).T),
        linear_operand=np.ascontiguousarray(weighted.T),
        bias=np.where(live, bias, -np.inf),
        live=live,
        precisions=precisions,
        precision_max=precisions.max(axis=0),
        weighted_max=np.abs(weighted).max(axis=0),
        bias_error=bias_error
        + 2.0 * np.abs(np.where(live, bias, 0.0)).max() * (np.finfo(np.float64).eps),
        dense_terms=_gaussian_terms(
            model["means"],
            precisions_cholesky,
            covariance_type,
            log_weights=model["log_weights"],
        ),
    )
    return model


def _sparse_log_prob(X, model):
    """Weighted log-densities of a CSR chunk, exact as the dense kernel's.

    Each row carries the bound ``gamma (|x|^2 @ p_max / 2 + |x| @ |p mu|_max)
    + bias_error`` of its rounding error. Rows above ``_LOG_PROB_TOL`` get
    the bound of each entry (``p_k`` and ``|p_k mu_k|`` in place of the
    maxima: two more sparse products on those rows only), and only the
    entries within ``_NEGLIGIBLE_NATS`` of the row's best can matter: rows with
    such an entry above the tolerance are densified and recomputed by the
    complete-data kernel (outliers included). Returns ``(log_prob, offset,
    squares)``.
    """
    squares = X.copy()
    np.square(squares.data, out=squares.data)
    log_prob = squares @ model["square_operand"]
    log_prob += X @ model["linear_operand"]
    log_prob += model["bias"]
    row_nnz = np.diff(X.indptr)
    gamma = _rounding_factor(2 * (int(row_nnz.max()) if row_nnz.size else 0) + 2)
    absolute = abs(X)
    with np.errstate(over="ignore", invalid="ignore"):
        error = (
            gamma
            * (
                squares @ (0.5 * model["precision_max"])
                + absolute @ model["weighted_max"]
            )
            + model["bias_error"]
        )
    suspect = np.flatnonzero(~(error <= _LOG_PROB_TOL))
    if suspect.size:
        with np.errstate(over="ignore", invalid="ignore"):
            entry_error = (
                gamma
                * (
                    squares[suspect] @ (-model["square_operand"])
                    + absolute[suspect] @ np.abs(model["linear_operand"])
                )
                + model["bias_error"]
            )
            approx = log_prob[suspect]
            lower = np.max(approx - entry_error, axis=1, keepdims=True)
            matter = approx + entry_error >= lower - _NEGLIGIBLE_NATS
            inexact = np.any(matter & ~(entry_error <= _LOG_PROB_TOL), axis=1)
            finite = np.isfinite(approx).any(axis=1) & np.isfinite(lower[:, 0])
        suspect = suspect[inexact | ~finite]
    offset = None
    if suspect.size:
        dense_log_prob, dense_offset, _ = _log_prob_chunk(
            X[suspect].toarray(), model["dense_terms"], window=np.inf
        )
        log_prob[suspect] = dense_log_prob
        if dense_offset is not None:
            offset = np.zeros(X.shape[0])
            offset[suspect] = dense_offset
    return log_prob, offset, squares


def _sparse_row_floats(model):
    """Floats per row held by a chunk of :func:`_sparse_log_prob` (3 (n, K))."""
    return 3 * model["means"].shape[0]


def _sparse_chunk_rows(model, n_features):
    """Rows per chunk of the sparse E-step.

    Beyond its ``O(nnz * K)`` products, a chunk writes two ``(K, d)`` sums; at
    the default chunk size that would dominate for wide data (``d`` much larger
    than the rows of a chunk). Chunks therefore hold at least ``d / 4`` rows,
    up to 8 times the module's default budget of temporaries.
    """
    row_floats = _sparse_row_floats(model)
    default = max(1, _CHUNK_FLOATS // row_floats)
    ceiling = max(1, 8 * _CHUNK_FLOATS // row_floats)
    return int(min(max(default, -(-n_features // 4)), ceiling))


def _sparse_e_step(
    X,
    weights,
    means,
    precisions_cholesky,
    covariance_type,
    *,
    reg_covar,
    chunk_size,
    prior=0.0,
    first_moment=False,
):
    """:func:`somgen._mixture._e_step_statistics` for a CSR matrix, ``'diag'``
    or ``'spherical'``.

    The scatter comes from ``resp.T @ x^2`` and ``resp.T @ x`` (sparse-dense
    products, ``O(nnz * K)`` per pass plus ``O(K * d)`` per chunk), expanded
    about the origin; a component whose expansion may have lost accuracy
    (the bound of :func:`somgen._mixture._soft_scatter`) is recomputed from
    the densified rows it weighs. Returns the same tuple.
    """
    from somgen._mixture import _map_row_chunks

    model = _sparse_terms(
        weights, means, precisions_cholesky, covariance_type, reg_covar
    )
    n_samples, n_features = X.shape
    n_components = model["means"].shape[0]
    means = model["means"]

    def statistics(rows):
        chunk = X[rows]
        resp, offset, squares = _sparse_log_prob(chunk, model)
        log_norm = _normalise_rows(resp, offset)
        objective = log_norm.sum()
        log_likelihood = objective
        if reg_covar > 0.0:
            log_likelihood += _jitter_log_likelihood(resp, model["jitter"])
        nk = resp.sum(axis=0)
        Q = (squares.T @ resp).T
        S = (chunk.T @ resp).T
        scatter = Q - means * (2.0 * S - nk[:, np.newaxis] * means)
        radius = np.sqrt(Q) + np.sqrt(nk)[:, np.newaxis] * np.abs(means)
        gamma = _rounding_factor(chunk.shape[0] + n_components)
        share = prior * (chunk.shape[0] / n_samples)
        with np.errstate(over="ignore"):
            limit = _SCATTER_RTOL * (scatter + nk[:, np.newaxis] * reg_covar + share)
        for k in np.flatnonzero(np.any(~(gamma * radius**2 <= limit), axis=1)):
            active = np.flatnonzero(resp[:, k])
            diff = chunk[active].toarray() - means[k]
            scatter[k] = resp[active, k] @ diff**2
        if covariance_type == "spherical":
            scatter = scatter.mean(axis=1)
        return objective, log_likelihood, nk, scatter, S - np.outer(nk, model["shift"])

    fold = _statistics_fold(n_components, n_features, covariance_type)
    if chunk_size is None:
        chunk_size = _sparse_chunk_rows(model, n_features)
    totals = _map_row_chunks(
        statistics, n_samples, _sparse_row_floats(model), chunk_size, fold=fold
    )
    totals = totals or fold(None, ())
    objective, log_likelihood, nk, scatter, U = totals
    result = (objective, log_likelihood, nk, scatter)
    if first_moment:
        return (*result, U, model["shift"])
    return result


def _sparse_map(X, weights, means, precisions_cholesky, covariance_type, func):
    """``func(log_prob, offset)`` for every CSR chunk of ``X``; the list of
    results in chunk order."""
    from somgen._mixture import _map_row_chunks

    model = _sparse_terms(weights, means, precisions_cholesky, covariance_type, 0.0)

    def task(rows):
        log_prob, offset, _ = _sparse_log_prob(X[rows], model)
        return func(log_prob, offset)

    return _map_row_chunks(task, X.shape[0], _sparse_row_floats(model))


def _sparse_score_samples(X, weights, means, precisions_cholesky, covariance_type):
    """Log-density of each row of a CSR matrix (``'diag'``/``'spherical'``)."""
    chunks = _sparse_map(
        X, weights, means, precisions_cholesky, covariance_type, _logsumexp_rows
    )
    return np.concatenate(chunks) if chunks else np.zeros(0)


def _sparse_predict(X, weights, means, precisions_cholesky, covariance_type):
    """Most probable component of each row of a CSR matrix."""
    chunks = _sparse_map(
        X,
        weights,
        means,
        precisions_cholesky,
        covariance_type,
        lambda log_prob, offset: log_prob.argmax(axis=1),
    )
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.intp)


def _sparse_label_statistics(X, labels, means):
    """Hard-label counts and ``'diag'`` scatter of a CSR matrix, by sparse
    products with the one-hot labels (``O(nnz)``), the units whose expanded
    scatter may have lost accuracy recomputed from their densified rows."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    one_hot = sparse.csr_matrix(
        (np.ones(n_samples), (np.arange(n_samples), labels)),
        shape=(n_samples, n_components),
    )
    squares = X.copy()
    np.square(squares.data, out=squares.data)
    nk = np.bincount(labels, minlength=n_components).astype(np.float64)
    Q = (one_hot.T @ squares).toarray()
    S = (one_hot.T @ X).toarray()
    scatter = Q - means * (2.0 * S - nk[:, np.newaxis] * means)
    radius = np.sqrt(Q) + np.sqrt(nk)[:, np.newaxis] * np.abs(means)
    gamma = _rounding_factor(int(nk.max()) if nk.size else 1)
    with np.errstate(over="ignore"):
        bad = np.any(~(gamma * radius**2 <= _SCATTER_RTOL * scatter), axis=1)
    for k in np.flatnonzero(bad & (nk > 0)):
        members = np.flatnonzero(labels == k)
        scatter[k] = 0.0
        for part in _chunks(members.size, n_features):
            diff = X[members[part]].toarray() - means[k]
            scatter[k] += (diff**2).sum(axis=0)
    return nk, scatter
