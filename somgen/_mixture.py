r"""Gaussian mixtures with pinned means: densities, EM, sampling and imputation.

The generative model of a self-organizing map is the mixture

.. math:: p(x) = \sum_k \pi_k \, \mathcal{N}(x \mid \mu_k, \Sigma_k)

whose means :math:`\mu_k` are the map's prototypes and never move. This module
holds its numerical kernels as pure functions on float64 arrays; the estimator
orchestrates them.

Shapes follow :class:`sklearn.mixture.GaussianMixture` (``K`` components, ``d``
features):

=================  ==============  ==============================================
covariance_type    covariances     precisions_cholesky
=================  ==============  ==============================================
``'full'``         (K, d, d)       (K, d, d); ``P_k @ P_k.T`` is the precision
``'tied'``         (d, d)          (d, d); the same, shared by all components
``'diag'``         (K, d)          (K, d); ``1 / sqrt(covariances)``
``'spherical'``    (K,)            (K,); ``1 / sqrt(covariances)``
=================  ==============  ==============================================

For ``'full'`` and ``'tied'``, ``P`` is the transposed inverse of the lower
Cholesky factor of the covariance, hence upper triangular.

Penalised objective of the pinned-means EM
------------------------------------------
With ``s`` the shrinkage, ``alpha`` the weight concentration, ``r`` the
``reg_covar`` and :math:`\Sigma_0` a target fixed for the whole run (by default
the pooled within-component covariance), :func:`_pinned_em` maximises

.. math::

    L = \frac{1}{n} \Big[ \sum_i \log \sum_k \pi_k \,
        \mathcal{N}(x_i \mid \mu_k, \Sigma_k) \,
        e^{-\frac{r}{2} \operatorname{tr} \Sigma_k^{-1}}
        + \alpha \sum_k \log \pi_k
        - \frac{s}{2} \sum_k \big( \operatorname{tr}(\Sigma_k^{-1}
        (\Sigma_0 + r I)) + \log\det \Sigma_k \big) \Big].

The last two terms are a Dirichlet prior on the weights and an inverse-Wishart
type prior on the covariances. The factor
:math:`e^{-\frac{r}{2} \operatorname{tr} \Sigma_k^{-1}}` accounts for
``reg_covar`` exactly: :math:`\log \mathcal{N}(x \mid \mu, \Sigma) - \frac{r}{2}
\operatorname{tr} \Sigma^{-1}` is the expected log-density of
:math:`x + \varepsilon` with :math:`\varepsilon \sim \mathcal{N}(0, r I)`. With
it, and with :math:`r I` added to the target, the usual updates

.. math::

    \Sigma_k = \frac{S_k + s \Sigma_0}{N_k + s} + r I, \qquad
    \pi_k = \frac{N_k + \alpha}{n + K \alpha}

are the exact maximisers of the M-step, so :math:`L` never decreases, whatever
``reg_covar``. The E-step responsibilities carry the same factor, which differs
from one by about ``r / variance`` and is therefore negligible for the usual
small ``reg_covar``. ``'diag'`` and ``'spherical'`` restrict the prior to their
parameters; ``'tied'`` has a single covariance and a single prior term.
"""

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# Largest number of float64 values held by the per-chunk temporaries of a kernel
# when the caller does not choose a chunk size (32 MiB).
_CHUNK_FLOATS = 2**22


def _check_covariance_type(covariance_type):
    if covariance_type not in _COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {_COVARIANCE_TYPES}, "
            f"got {covariance_type!r}."
        )


def _chunks(n_samples, row_floats, chunk_size=None):
    """Yield slices of at most ``chunk_size`` rows covering ``range(n_samples)``.

    Without ``chunk_size``, a chunk holds about ``_CHUNK_FLOATS / row_floats`` rows,
    ``row_floats`` being the size of the kernel's temporaries per row.
    """
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_FLOATS // max(1, int(row_floats)))
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}.")
    for start in range(0, n_samples, chunk_size):
        yield slice(start, min(start + chunk_size, n_samples))


def _log_weights(weights):
    """``log(weights)`` where zero weights give ``-inf`` without a warning."""
    with np.errstate(divide="ignore"):
        return np.log(weights)


# ---------------------------------------------------------------------------
# Precisions and log-densities
# ---------------------------------------------------------------------------


def _not_pd_error(components, covariance_type):
    which = (
        "The tied covariance"
        if covariance_type == "tied"
        else f"The covariance of component(s) {np.asarray(components)[:10].tolist()}"
    )
    return ValueError(
        f"{which} is not positive definite (or not finite). This happens when "
        "components hold too few or collapsed samples, or when features are "
        "constant or collinear. Increase reg_covar (or the shrinkage), or scale "
        "the input data."
    )


def _cholesky_factors(stack, covariance_type, components=None):
    """Lower Cholesky factors of a (K, d, d) stack of covariances.

    Raises a ValueError naming every component that is not positive definite;
    ``components`` gives the indices to report for the rows of ``stack``.
    """
    if np.all(np.isfinite(stack)):
        try:
            return np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            pass
    # Factorise one by one to name the culprits.
    bad = []
    for k, cov in enumerate(stack):
        try:
            linalg.cholesky(cov, lower=True)
        except (linalg.LinAlgError, ValueError):
            bad.append(k)
    if components is not None:
        bad = np.asarray(components)[bad].tolist()
    raise _not_pd_error(bad, covariance_type)


def _compute_precision_cholesky(covariances, covariance_type):
    """Cholesky factors of the precision matrices.

    Parameters
    ----------
    covariances : ndarray
        Covariances in the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    precisions_cholesky : ndarray of the same shape as ``covariances``
        For ``'full'`` and ``'tied'``, the upper triangular ``inv(L).T`` with
        ``L`` the lower Cholesky factor of each covariance, so that
        ``P @ P.T`` is the precision matrix; for ``'diag'`` and ``'spherical'``,
        ``1 / sqrt(covariances)``. This is the convention of
        ``GaussianMixture.precisions_cholesky_``.

    Raises
    ------
    ValueError
        If a covariance is not positive definite or not finite.
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        bad = ~np.isfinite(covariances) | (covariances <= 0.0)
        if bad.any():
            components = np.flatnonzero(bad.reshape(covariances.shape[0], -1).any(1))
            raise _not_pd_error(components, covariance_type)
        return 1.0 / np.sqrt(covariances)

    stack = covariances[np.newaxis] if covariance_type == "tied" else covariances
    factors = _cholesky_factors(stack, covariance_type)
    # Batched inverse of the triangular factors; np.tril removes the rounding
    # noise LU pivoting may leave above the diagonal.
    precisions_chol = np.tril(np.linalg.inv(factors)).transpose(0, 2, 1)
    return precisions_chol[0] if covariance_type == "tied" else precisions_chol


def _log_det_precision_cholesky(precisions_cholesky, covariance_type, n_features):
    """``log det P`` for each component, i.e. ``-log det(Sigma_k) / 2``.

    Returns an ndarray of shape (n_components,), or a float for ``'tied'``.
    """
    if covariance_type == "full":
        diagonals = np.diagonal(precisions_cholesky, axis1=1, axis2=2)
        return np.log(diagonals).sum(axis=1)
    if covariance_type == "tied":
        return float(np.log(np.diag(precisions_cholesky)).sum())
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=1)
    return n_features * np.log(precisions_cholesky)


def _precision_trace(precisions_cholesky, covariance_type, n_features):
    """``tr(Sigma_k^{-1})`` for each component (a float for ``'tied'``)."""
    squares = precisions_cholesky**2
    if covariance_type == "full":
        return squares.sum(axis=(1, 2))
    if covariance_type == "tied":
        return float(squares.sum())
    if covariance_type == "diag":
        return squares.sum(axis=1)
    return n_features * squares


def _estimate_log_gaussian_prob(
    X, means, precisions_cholesky, covariance_type, *, chunk_size=None
):
    """Log-density of every sample under every Gaussian component.

    The Mahalanobis distances are obtained from matrix products (one GEMM per
    chunk of samples) on data shifted by the mean of the means, which removes a
    common offset before the products are expanded.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)

    precisions_cholesky : ndarray
        As returned by :func:`_compute_precision_cholesky`.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    chunk_size : int, default=None
        Rows per chunk; by default, chunks hold about ``_CHUNK_FLOATS`` values.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        ``log N(x_i | mu_k, Sigma_k)``.
    """
    _check_covariance_type(covariance_type)
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_det = _log_det_precision_cholesky(
        precisions_cholesky, covariance_type, n_features
    )
    constant = log_det - 0.5 * n_features * np.log(2.0 * np.pi)

    shift = means.mean(axis=0)
    centred_means = means - shift
    if covariance_type == "full":
        # One GEMM against all K factors side by side: (d, K * d).
        stacked = np.ascontiguousarray(precisions_cholesky.transpose(1, 0, 2)).reshape(
            n_features, n_components * n_features
        )
        projected_means = np.einsum(
            "kj,kjl->kl", centred_means, precisions_cholesky
        ).ravel()
        row_floats = 2 * n_components * n_features
    elif covariance_type == "tied":
        projected_means = centred_means @ precisions_cholesky
        sq_norm_means = np.einsum("kj,kj->k", projected_means, projected_means)
        row_floats = 2 * n_components + n_features
    elif covariance_type == "diag":
        precisions = precisions_cholesky**2
        weighted_means = centred_means * precisions
        sq_norm_means = np.einsum("kj,kj->k", centred_means, weighted_means)
        row_floats = 3 * n_components + n_features
    else:
        precisions = precisions_cholesky**2
        sq_norm_means = np.einsum("kj,kj->k", centred_means, centred_means)
        row_floats = 2 * n_components + n_features

    log_prob = np.empty((n_samples, n_components))
    for rows in _chunks(n_samples, row_floats, chunk_size):
        Xc = X[rows] - shift
        if covariance_type == "full":
            y = Xc @ stacked
            y -= projected_means
            y *= y
            maha = y.reshape(-1, n_components, n_features).sum(axis=2)
        elif covariance_type == "tied":
            y = Xc @ precisions_cholesky
            maha = -2.0 * (y @ projected_means.T)
            maha += np.einsum("ij,ij->i", y, y)[:, np.newaxis]
            maha += sq_norm_means
        elif covariance_type == "diag":
            maha = (Xc * Xc) @ precisions.T
            maha -= 2.0 * (Xc @ weighted_means.T)
            maha += sq_norm_means
        else:
            maha = -2.0 * (Xc @ centred_means.T)
            maha += np.einsum("ij,ij->i", Xc, Xc)[:, np.newaxis]
            maha += sq_norm_means
            maha *= precisions
        # The expanded forms can dip below zero by rounding.
        np.maximum(maha, 0.0, out=maha)
        log_prob[rows] = constant - 0.5 * maha
    return log_prob


def _estimate_weighted_log_prob(
    X, weights, means, precisions_cholesky, covariance_type, *, chunk_size=None
):
    """``log pi_k + log N(x_i | mu_k, Sigma_k)``, shape (n_samples, n_components)."""
    log_prob = _estimate_log_gaussian_prob(
        X, means, precisions_cholesky, covariance_type, chunk_size=chunk_size
    )
    log_prob += _log_weights(weights)
    return log_prob


def _estimate_log_resp(
    X, weights, means, precisions_cholesky, covariance_type, *, reg_covar=0.0
):
    """E-step: log-responsibilities and mean log-likelihood.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    weights : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    precisions_cholesky : ndarray

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    reg_covar : float, default=0.0
        When positive, each component is down-weighted by
        ``exp(-reg_covar / 2 * tr(Sigma_k^{-1}))``, the factor of the penalised
        objective of :func:`_pinned_em`. Zero gives the plain posterior.

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        Log of the posterior probabilities ``p(k | x_i)``.

    mean_log_prob_norm : float
        Mean over samples of the log of the normaliser, i.e. the mean
        log-likelihood when ``reg_covar=0``.
    """
    weighted = _estimate_weighted_log_prob(
        X, weights, means, precisions_cholesky, covariance_type
    )
    if reg_covar > 0.0:
        weighted -= (
            0.5
            * reg_covar
            * _precision_trace(precisions_cholesky, covariance_type, X.shape[1])
        )
    log_norm = logsumexp(weighted, axis=1)
    weighted -= log_norm[:, np.newaxis]
    return weighted, float(np.mean(log_norm))


def _score_samples_chunked(
    X, weights, means, precisions_cholesky, covariance_type, chunk_size=None
):
    """Log-density of the mixture at each sample, computed chunk by chunk.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    weights : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    precisions_cholesky : ndarray

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    chunk_size : int, default=None
        Rows per chunk, so that memory is ``O(chunk_size * n_components)``.

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
        ``log sum_k pi_k N(x_i | mu_k, Sigma_k)``.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_density = np.empty(n_samples)
    row_floats = 2 * n_components * n_features
    for rows in _chunks(n_samples, row_floats, chunk_size):
        weighted = _estimate_weighted_log_prob(
            X[rows], weights, means, precisions_cholesky, covariance_type
        )
        log_density[rows] = logsumexp(weighted, axis=1)
    return log_density


# ---------------------------------------------------------------------------
# Covariances around fixed means
# ---------------------------------------------------------------------------


def _check_labels(labels, n_components):
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Hard assignments must be integer labels, got dtype {labels.dtype}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_components):
        raise ValueError(
            f"Hard assignments must lie in [0, {n_components - 1}], got labels in "
            f"[{labels.min()}, {labels.max()}]."
        )


def _scatter_from_labels(X, labels, means, covariance_type):
    """Sufficient statistics for hard assignments, without an (n, K) matrix."""
    n_components, n_features = means.shape
    _check_labels(labels, n_components)
    counts = np.bincount(labels, minlength=n_components)
    nk = counts.astype(np.float64)
    diff = X - means[labels]
    if covariance_type == "tied":
        return nk, diff.T @ diff

    order = np.argsort(labels, kind="stable")
    diff = diff[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    occupied = np.flatnonzero(counts)
    if covariance_type == "full":
        scatter = np.zeros((n_components, n_features, n_features))
        for k in occupied:
            block = diff[starts[k] : starts[k] + counts[k]]
            scatter[k] = block.T @ block
        return nk, scatter

    scatter = np.zeros((n_components, n_features))
    if occupied.size:
        # Occupied groups have strictly increasing starts: reduceat sums each one.
        scatter[occupied] = np.add.reduceat(diff * diff, starts[occupied], axis=0)
    if covariance_type == "spherical":
        scatter = scatter.mean(axis=1)
    return nk, scatter


def _scatter_statistics(X, resp, means, covariance_type, *, chunk_size=None):
    """Soft counts and scatter of the samples around the fixed means.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    resp : ndarray of shape (n_samples, n_components) or (n_samples,)
        Responsibilities, or integer labels of hard assignments.

    means : ndarray of shape (n_components, n_features)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    chunk_size : int, default=None

    Returns
    -------
    nk : ndarray of shape (n_components,)
        ``N_k = sum_i r_ik``.

    scatter : ndarray
        With ``S_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T``: ``S_k`` of shape
        (n_components, n_features, n_features) for ``'full'``; ``sum_k S_k`` of
        shape (n_features, n_features) for ``'tied'``; ``diag(S_k)`` of shape
        (n_components, n_features) for ``'diag'``; ``tr(S_k) / n_features`` of
        shape (n_components,) for ``'spherical'``.
    """
    _check_covariance_type(covariance_type)
    resp = np.asarray(resp)
    if resp.ndim == 1:
        return _scatter_from_labels(X, resp, means, covariance_type)

    n_samples, n_features = X.shape
    n_components = means.shape[0]
    nk = resp.sum(axis=0)
    if covariance_type == "full":
        scatter = np.zeros((n_components, n_features, n_features))
    elif covariance_type == "tied":
        scatter = np.zeros((n_features, n_features))
    else:
        scatter = np.zeros((n_components, n_features))

    correlated = covariance_type in ("full", "tied")
    row_floats = 2 * n_features if correlated else n_components * n_features
    for rows in _chunks(n_samples, row_floats, chunk_size):
        X_chunk = X[rows]
        resp_t = resp[rows].T
        if correlated:
            # One exact GEMM per component on its residuals, restricted to the
            # rows it actually weighs (all of them for soft responsibilities,
            # few of them for one-hot ones).
            for k in range(n_components):
                active = np.flatnonzero(resp_t[k])
                if active.size == 0:
                    continue
                if active.size == resp_t.shape[1]:
                    diff, r = X_chunk - means[k], resp_t[k]
                else:
                    diff, r = X_chunk[active] - means[k], resp_t[k, active]
                contribution = (diff.T * r) @ diff
                if covariance_type == "full":
                    scatter[k] += contribution
                else:
                    scatter += contribution
        else:
            # (K, chunk, d) squared residuals of the chunk around every mean.
            sq_diff = X_chunk[np.newaxis] - means[:, np.newaxis]
            np.square(sq_diff, out=sq_diff)
            scatter += np.einsum("ki,kij->kj", resp_t, sq_diff)

    if covariance_type == "full":
        scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
    elif covariance_type == "tied":
        scatter = 0.5 * (scatter + scatter.T)
    elif covariance_type == "spherical":
        scatter = scatter.mean(axis=1)
    return nk, scatter


def _pooled_covariance(nk, scatter, covariance_type):
    """Pooled within-component covariance ``sum_k S_k / sum_k N_k``.

    Returns an ndarray of shape (n_features, n_features) for ``'full'`` and
    ``'tied'``, (n_features,) for ``'diag'``, and a float for ``'spherical'``.
    """
    total = nk.sum()
    if not total > 0.0:
        raise ValueError("Cannot pool covariances: the responsibilities sum to 0.")
    if covariance_type == "tied":
        return scatter / total
    pooled = scatter.sum(axis=0) / total
    return float(pooled) if covariance_type == "spherical" else pooled


def _add_to_diagonal(covariances, value, covariance_type):
    """Add ``value`` to the diagonal of every covariance (a new array)."""
    covariances = np.array(covariances, dtype=np.float64)
    if covariance_type == "full":
        index = np.arange(covariances.shape[-1])
        covariances[:, index, index] += value
    elif covariance_type == "tied":
        covariances.flat[:: covariances.shape[0] + 1] += value
    else:
        covariances += value
    return covariances


def _covariances_from_scatter(
    nk, scatter, covariance_prior, covariance_type, *, shrinkage, reg_covar
):
    """MAP covariances ``(S_k + s Sigma_0) / (N_k + s) + reg_covar I``.

    A component whose ``N_k + s`` vanishes (an empty unit without shrinkage)
    gets ``Sigma_0 + reg_covar I``. For ``'tied'`` the single covariance uses
    ``sum_k N_k``; with ``Sigma_0`` the pooled covariance of the same statistics
    it is the pooled covariance whatever the shrinkage.
    """
    prior = np.asarray(covariance_prior, dtype=np.float64)
    tiny = 10.0 * np.finfo(np.float64).eps
    if covariance_type == "tied":
        denom = nk.sum() + shrinkage
        if denom < tiny:
            covariances = prior.copy()
        else:
            covariances = (scatter + shrinkage * prior) / denom
    else:
        denom = nk + shrinkage
        empty = denom < tiny
        safe = np.where(empty, 1.0, denom)
        extra_dims = (np.newaxis,) * (scatter.ndim - 1)
        covariances = (scatter + shrinkage * prior) / safe[(...,) + extra_dims]
        covariances[empty] = prior
    return _add_to_diagonal(covariances, reg_covar, covariance_type)


def _check_covariance_prior(covariance_prior, covariance_type, n_features):
    prior = np.asarray(covariance_prior, dtype=np.float64)
    expected = {
        "full": (n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_features,),
        "spherical": (),
    }[covariance_type]
    if prior.shape != expected:
        raise ValueError(
            f"covariance_prior for covariance_type={covariance_type!r} must have "
            f"shape {expected}, got {prior.shape}."
        )
    return float(prior) if covariance_type == "spherical" else prior


def _estimate_covariances(
    X,
    resp,
    means,
    covariance_type,
    *,
    shrinkage=0.0,
    reg_covar=1e-6,
    covariance_prior=None,
    chunk_size=None,
):
    """Covariances around fixed means, shrunk toward the pooled covariance.

    ``Sigma_k = (S_k + s Sigma_0) / (N_k + s) + reg_covar I`` with
    ``S_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T``, ``N_k = sum_i r_ik`` and
    ``Sigma_0`` the pooled within-component covariance ``sum_k S_k / n``,
    reduced to the parameters of ``covariance_type``. An empty component gets
    ``Sigma_0 + reg_covar I``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    resp : ndarray of shape (n_samples, n_components) or (n_samples,)
        Responsibilities, or integer labels of hard assignments. Labels are the
        cheaper way to pass hard assignments: no (n_samples, n_components)
        matrix is formed.

    means : ndarray of shape (n_components, n_features)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    shrinkage : float, default=0.0
        Pseudo-count ``s`` of the prior: the weight of ``Sigma_0``, in samples.

    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every covariance.

    covariance_prior : ndarray or float, default=None
        Target ``Sigma_0`` in the layout of the pooled covariance ((d, d) for
        'full' and 'tied', (d,) for 'diag', a float for 'spherical'). By default
        the pooled covariance of ``resp``.

    chunk_size : int, default=None
        Rows per chunk for soft responsibilities.

    Returns
    -------
    covariances : ndarray
        Shape (n_components, n_features, n_features) for 'full',
        (n_features, n_features) for 'tied', (n_components, n_features) for
        'diag' and (n_components,) for 'spherical'.
    """
    nk, scatter = _scatter_statistics(
        X, resp, means, covariance_type, chunk_size=chunk_size
    )
    if covariance_prior is None:
        covariance_prior = _pooled_covariance(nk, scatter, covariance_type)
    else:
        covariance_prior = _check_covariance_prior(
            covariance_prior, covariance_type, X.shape[1]
        )
    return _covariances_from_scatter(
        nk,
        scatter,
        covariance_prior,
        covariance_type,
        shrinkage=shrinkage,
        reg_covar=reg_covar,
    )


# ---------------------------------------------------------------------------
# EM with pinned means
# ---------------------------------------------------------------------------


def _log_prior(
    weights,
    precisions_cholesky,
    covariance_prior,
    covariance_type,
    *,
    n_features,
    shrinkage,
    weight_concentration,
    reg_covar,
):
    """Log prior of the penalised objective, up to an additive constant.

    ``alpha * sum_k log pi_k`` (omitted when ``weights`` is None) plus
    ``-s / 2 * sum_k [tr(Sigma_k^{-1} (Sigma_0 + r I)) + log det Sigma_k]``.
    """
    log_prior = 0.0
    if weights is not None and weight_concentration > 0.0:
        log_prior += weight_concentration * float(np.sum(_log_weights(weights)))
    if shrinkage > 0.0:
        layout = "tied" if covariance_type in ("full", "tied") else "diag"
        target = _add_to_diagonal(covariance_prior, reg_covar, layout)
        P = precisions_cholesky
        if covariance_type == "full":
            trace = np.einsum("kij,il,klj->k", P, target, P, optimize=True)
        elif covariance_type == "tied":
            trace = np.einsum("ij,il,lj->", P, target, P, optimize=True)
        elif covariance_type == "diag":
            trace = (P**2) @ target
        else:
            trace = n_features * target * P**2
        log_det_cov = -2.0 * _log_det_precision_cholesky(P, covariance_type, n_features)
        log_prior -= 0.5 * shrinkage * float(np.sum(trace + log_det_cov))
    return log_prior


def _e_step_statistics(
    X, weights, means, precisions_cholesky, covariance_type, *, reg_covar, chunk_size
):
    """One pass of E-step over chunks, accumulating the M-step statistics.

    Returns the summed log-normaliser of the penalised objective, the summed
    plain log-likelihood, ``nk`` and the scatter of :func:`_scatter_statistics`.
    The (n_samples, n_components) responsibilities are never formed at once.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_weights = _log_weights(weights)
    # Per-component log-factor r / 2 * tr(Sigma_k^{-1}) of the objective.
    trace = _precision_trace(precisions_cholesky, covariance_type, n_features)
    jitter = np.broadcast_to(0.5 * reg_covar * trace, (n_components,))
    jitter_max = jitter.max()
    exp_jitter = np.exp(jitter - jitter_max)

    objective = 0.0
    log_likelihood = 0.0
    nk = np.zeros(n_components)
    scatter = None
    for rows in _chunks(n_samples, 2 * n_components * n_features, chunk_size):
        Xc = X[rows]
        weighted = _estimate_log_gaussian_prob(
            Xc, means, precisions_cholesky, covariance_type
        )
        weighted += log_weights
        weighted -= jitter
        log_norm = logsumexp(weighted, axis=1)
        objective += log_norm.sum()
        weighted -= log_norm[:, np.newaxis]
        resp = np.exp(weighted, out=weighted)
        if reg_covar > 0.0:
            # log sum_k pi_k N_k = log_norm + log sum_k resp_k exp(jitter_k).
            log_likelihood += (
                log_norm.sum()
                + jitter_max * log_norm.size
                + np.log(resp @ exp_jitter).sum()
            )
        nk_chunk, scatter_chunk = _scatter_statistics(Xc, resp, means, covariance_type)
        nk += nk_chunk
        scatter = scatter_chunk if scatter is None else scatter + scatter_chunk
    if reg_covar == 0.0:
        log_likelihood = objective
    return objective, log_likelihood, nk, scatter


def _pinned_em(
    X,
    means,
    weights_init,
    covariances_init,
    covariance_type,
    *,
    shrinkage=0.0,
    weight_concentration=0.0,
    reg_covar=1e-6,
    max_iter=100,
    tol=1e-3,
    update_weights=True,
    covariance_prior=None,
    chunk_size=None,
):
    """EM for a Gaussian mixture whose means stay fixed.

    Maximises the penalised objective described in the module docstring. The
    E-step posteriors carry the factor ``exp(-reg_covar / 2 * tr(Sigma_k^{-1}))``;
    the M-step sets ``pi_k = (N_k + alpha) / (n + K alpha)`` (unless
    ``update_weights=False``) and ``Sigma_k = (S_k + s Sigma_0) / (N_k + s) +
    reg_covar I``, its exact maximiser, so the objective never decreases.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    means : ndarray of shape (n_components, n_features)
        The pinned means; never modified.

    weights_init : ndarray of shape (n_components,)
        Initial mixture weights, non-negative and summing to 1.

    covariances_init : ndarray
        Initial covariances in the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    shrinkage : float, default=0.0
        Pseudo-count ``s`` of the covariance prior.

    weight_concentration : float, default=0.0
        Dirichlet pseudo-count ``alpha`` added to every component's count. Zero
        gives maximum-likelihood weights, which can reach 0.

    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of the covariances.

    max_iter : int, default=100
        Maximum number of M-steps.

    tol : float, default=1e-3
        EM stops when the per-sample objective improves by less than ``tol``.

    update_weights : bool, default=True
        Re-estimate the weights; otherwise keep ``weights_init`` (and drop the
        then constant Dirichlet term from the objective).

    covariance_prior : ndarray or float, default=None
        Fixed target ``Sigma_0`` of the whole run, in the layout returned by
        :func:`_pooled_covariance`. By default, the pooled covariance of the
        responsibilities of the first E-step.

    chunk_size : int, default=None
        Rows per chunk of the E-step.

    Returns
    -------
    result : dict
        ``weights`` (n_components,), ``covariances``, ``precisions_cholesky``,
        ``converged`` (bool), ``n_iter`` (number of M-steps), ``lower_bound``
        (per-sample objective of the returned parameters), ``history``
        (ndarray of the objective before the first and after every M-step,
        ``history[-1] == lower_bound``), ``log_likelihood`` (mean plain
        log-likelihood of the returned parameters) and ``covariance_prior``
        (the ``Sigma_0`` used).
    """
    _check_covariance_type(covariance_type)
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    weights = np.array(weights_init, dtype=np.float64)
    covariances = np.array(covariances_init, dtype=np.float64)
    precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
    e_step_options = {"reg_covar": reg_covar, "chunk_size": chunk_size}

    objective, log_likelihood, nk, scatter = _e_step_statistics(
        X, weights, means, precisions_chol, covariance_type, **e_step_options
    )
    if covariance_prior is None:
        covariance_prior = _pooled_covariance(nk, scatter, covariance_type)
    else:
        covariance_prior = _check_covariance_prior(
            covariance_prior, covariance_type, n_features
        )
    prior_options = {
        "n_features": n_features,
        "shrinkage": shrinkage,
        "weight_concentration": weight_concentration,
        "reg_covar": reg_covar,
    }

    def penalised(objective, weights, precisions_chol):
        log_prior = _log_prior(
            weights if update_weights else None,
            precisions_chol,
            covariance_prior,
            covariance_type,
            **prior_options,
        )
        return (objective + log_prior) / n_samples

    lower_bound = penalised(objective, weights, precisions_chol)
    history = [lower_bound]
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if update_weights:
            weights = (nk + weight_concentration) / (
                nk.sum() + n_components * weight_concentration
            )
        covariances = _covariances_from_scatter(
            nk,
            scatter,
            covariance_prior,
            covariance_type,
            shrinkage=shrinkage,
            reg_covar=reg_covar,
        )
        precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
        objective, log_likelihood, nk, scatter = _e_step_statistics(
            X, weights, means, precisions_chol, covariance_type, **e_step_options
        )
        new_lower_bound = penalised(objective, weights, precisions_chol)
        history.append(new_lower_bound)
        change = new_lower_bound - lower_bound
        lower_bound = new_lower_bound
        if change < tol:
            converged = True
            break

    return {
        "weights": weights,
        "covariances": covariances,
        "precisions_cholesky": precisions_chol,
        "converged": converged,
        "n_iter": n_iter,
        "lower_bound": lower_bound,
        "history": np.asarray(history),
        "log_likelihood": log_likelihood / n_samples,
        "covariance_prior": covariance_prior,
    }


# ---------------------------------------------------------------------------
# Sampling, imputation, model size
# ---------------------------------------------------------------------------


def _check_units(units, n_components):
    """Validate unit indices; return the sorted unique indices."""
    units = np.asarray(units)
    if units.ndim == 0:
        units = units.reshape(1)
    if units.ndim != 1 or units.size == 0:
        raise ValueError(
            "units must be a non-empty 1-D sequence of unit indices, got an "
            f"array of shape {units.shape}."
        )
    if not np.issubdtype(units.dtype, np.integer):
        raise ValueError(
            f"units must be integer unit indices, got dtype {units.dtype}."
        )
    invalid = units[(units < 0) | (units >= n_components)]
    if invalid.size:
        raise ValueError(
            f"units must be indices in [0, {n_components - 1}] (the map has "
            f"{n_components} units); got invalid value(s) "
            f"{np.unique(invalid)[:10].tolist()}."
        )
    return np.unique(units)


def _sample(rng, n_samples, weights, means, covariances, covariance_type, units=None):
    """Draw samples from the mixture, optionally restricted to some units.

    Parameters
    ----------
    rng : numpy.random.RandomState or numpy.random.Generator

    n_samples : int
        Number of samples, at least 1.

    weights : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    covariances : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    units : array-like of int, default=None
        Components to draw from; their weights are renormalised. All by default.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Samples in random order.

    unit_indices : ndarray of shape (n_samples,)
        Component of each sample.
    """
    _check_covariance_type(covariance_type)
    n_components, n_features = means.shape
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}.")
    weights = np.asarray(weights, dtype=np.float64)
    if units is None:
        candidates = np.arange(n_components)
    else:
        candidates = _check_units(units, n_components)
    probabilities = weights[candidates]
    total = probabilities.sum()
    if not total > 0.0:
        raise ValueError("The selected units have zero total weight.")
    counts = rng.multinomial(n_samples, probabilities / total)

    drawn = candidates[counts > 0]
    counts = counts[counts > 0]
    if covariance_type == "full":
        factors = _cholesky_factors(covariances[drawn], "full", components=drawn)
    elif covariance_type == "tied":
        factors = _cholesky_factors(covariances[np.newaxis], "tied")
        factors = np.broadcast_to(factors, (drawn.size,) + factors.shape[1:])
    X = np.empty((n_samples, n_features))
    unit_indices = np.empty(n_samples, dtype=np.intp)
    start = 0
    for i, (unit, count) in enumerate(zip(drawn, counts, strict=True)):
        noise = rng.standard_normal(size=(count, n_features))
        if covariance_type in ("full", "tied"):
            noise = noise @ factors[i].T
        else:
            noise *= np.sqrt(covariances[unit])
        X[start : start + count] = means[unit] + noise
        unit_indices[start : start + count] = unit
        start += count
    order = rng.permutation(n_samples)
    return X[order], unit_indices[order]


def _conditional_impute(
    X, weights, means, covariances, covariance_type, *, chunk_size=None
):
    """Replace NaNs by their conditional mean given the observed entries.

    For a row with observed entries ``o`` and missing entries ``m``, the value is
    ``sum_k p(k | x_o) (mu_k,m + Sigma_k,mo Sigma_k,oo^{-1} (x_o - mu_k,o))``
    with ``p(k | x_o)`` from the marginal densities on ``o``. Rows are grouped
    by missingness pattern and each group is processed with matrix products.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data with NaN marking missing entries.

    weights : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    covariances : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    chunk_size : int, default=None
        Rows per chunk within a pattern.

    Returns
    -------
    X_filled : ndarray of shape (n_samples, n_features)
        A copy of ``X`` with its NaNs replaced; fully missing rows get the
        mixture mean and complete rows are unchanged.
    """
    _check_covariance_type(covariance_type)
    X = np.array(X, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    missing = np.isnan(X)
    incomplete = np.flatnonzero(missing.any(axis=1))
    if incomplete.size == 0:
        return X
    n_components = means.shape[0]
    patterns, inverse = np.unique(missing[incomplete], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for p, pattern in enumerate(patterns):
        rows = incomplete[inverse == p]
        miss = np.flatnonzero(pattern)
        obs = np.flatnonzero(~pattern)
        if obs.size == 0:
            X[np.ix_(rows, miss)] = weights @ means
            continue

        # Marginal covariances on the observed features, and regression gains
        # Sigma_mo Sigma_oo^{-1} = Sigma_mo P P^T for the correlated types.
        gain = None
        if covariance_type == "full":
            marginal = covariances[:, obs][:, :, obs]
            precisions_chol = _compute_precision_cholesky(marginal, "full")
            cross = covariances[:, miss][:, :, obs]
            gain = cross @ precisions_chol @ precisions_chol.transpose(0, 2, 1)
            offsets = means[:, miss] - np.einsum("kmo,ko->km", gain, means[:, obs])
            stacked_gain = np.ascontiguousarray(gain.transpose(2, 0, 1)).reshape(
                obs.size, n_components * miss.size
            )
        elif covariance_type == "tied":
            marginal = covariances[np.ix_(obs, obs)]
            precisions_chol = _compute_precision_cholesky(marginal, "tied")
            cross = covariances[np.ix_(miss, obs)]
            gain = cross @ precisions_chol @ precisions_chol.T
        elif covariance_type == "diag":
            precisions_chol = _compute_precision_cholesky(covariances[:, obs], "diag")
        else:
            precisions_chol = _compute_precision_cholesky(covariances, "spherical")

        row_floats = n_components * (2 * obs.size + miss.size + 2)
        for chunk in _chunks(rows.size, row_floats, chunk_size):
            chunk_rows = rows[chunk]
            x_obs = X[np.ix_(chunk_rows, obs)]
            log_resp, _ = _estimate_log_resp(
                x_obs, weights, means[:, obs], precisions_chol, covariance_type
            )
            resp = np.exp(log_resp)
            if covariance_type == "full":
                projected = (x_obs @ stacked_gain).reshape(-1, n_components, miss.size)
                filled = resp @ offsets + np.einsum("ik,ikm->im", resp, projected)
            elif covariance_type == "tied":
                # The conditional mean is affine in x_o with a shared gain.
                filled = resp @ means[:, miss] + (x_obs - resp @ means[:, obs]) @ gain.T
            else:
                filled = resp @ means[:, miss]
            X[np.ix_(chunk_rows, miss)] = filled
    return X


def _n_parameters(
    n_components, n_features, covariance_type, *, means_free=False, weights_free=True
):
    """Number of free parameters, for BIC and AIC.

    Parameters
    ----------
    n_components : int

    n_features : int

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    means_free : bool, default=False
        Count the ``n_components * n_features`` means. Pinned means that were
        themselves fitted to the data (the prototypes of a map) should be counted.

    weights_free : bool, default=True
        Count the ``n_components - 1`` weights.

    Returns
    -------
    n_parameters : int
    """
    _check_covariance_type(covariance_type)
    per_matrix = n_features * (n_features + 1) // 2
    n_cov = {
        "full": n_components * per_matrix,
        "tied": per_matrix,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    n_params = n_cov
    if weights_free:
        n_params += n_components - 1
    if means_free:
        n_params += n_components * n_features
    return int(n_params)
