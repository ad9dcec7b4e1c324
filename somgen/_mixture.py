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

Exactness and cost
------------------
Every pass over the data goes by chunks of rows (memory ``O(chunk * K)``),
shared by threads with BLAS on one thread, and its matrix products expand the
Mahalanobis distances around the mean of the means. Each chunk carries a
rounding-error bound of its expanded distances and scatters; where the bound is
not small, the entries that matter are recomputed directly from ``x - mu_k``.
Log-densities are thereby exact to about 1e-7 nats beyond the relative rounding
of the distances themselves, posteriors sum to one for any finite input, and
samples so far away that every density underflows get the limit of the
posterior (see :func:`_outlier_log_prob`).

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

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from scipy import linalg

from somgen._parallel import _effective_n_threads, _single_threaded_blas

_COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# Largest number of float64 values held by the per-chunk temporaries of a kernel
# when the caller does not choose a chunk size (16 MiB: below glibc's 32 MiB mmap
# threshold, so that the allocator reuses the block from one chunk to the next).
_CHUNK_FLOATS = 2**21

# Calls whose temporaries hold fewer values run in the calling thread as they are.
_SMALL_CALL_FLOATS = 2**16

# Values held by the (rows, n_components * rank) products of full covariances:
# 1 MiB, so that they are still in cache when squared and summed.
_SUB_CHUNK_FLOATS = 2**17

# Relative accuracy required of a scatter expanded into matrix products before
# it is recomputed directly. The M-step maximises the objective, so a relative
# error rho in a covariance costs O(rho^2) in the objective; 1e-8 keeps the
# covariances, hence the log-densities, exact to far below statistical noise.
_SCATTER_RTOL = 1e-8

# Relative residual at which the conjugate-gradient update of the means stops,
# and its iteration cap (each step never lowers the objective; see
# _update_means).
_MEAN_RTOL = 1e-10
_MEAN_MAX_ITER = 500


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


def _map_row_chunks(func, n_samples, row_floats, chunk_size=None, fold=None):
    """``[func(rows) for rows in _chunks(...)]``, computed by a pool of threads.

    As in :mod:`somgen._parallel`, BLAS runs on one thread inside the chunks
    (multi-threaded BLAS on chunk-sized products gains little and collapses on
    a loaded machine) and the chunks are shared by threads, since matrix
    products and large ufuncs release the GIL. Results come back in chunk order
    and each chunk is computed the same way whatever the thread count, so sums
    reduced from them do not depend on it.

    With ``fold``, returns ``fold(... fold(fold(None, r_0), r_1) ..., r_last)``
    instead of the list, folding each result in chunk order as soon as it
    arrives: per-chunk results (a scatter of ``K x d`` values, say) are then
    not all held at once.
    """
    slices = list(_chunks(n_samples, row_floats, chunk_size))

    def collect(results):
        if fold is None:
            return list(results)
        accumulated = None
        for result in results:
            accumulated = fold(accumulated, result)
        return accumulated

    if n_samples * row_floats <= _SMALL_CALL_FLOATS:
        # Too small for BLAS threads to matter: skip the pool and the pin,
        # whose fixed cost (a fraction of a millisecond) would dominate.
        return collect(func(rows) for rows in slices)
    n_threads = min(_effective_n_threads(None), len(slices))
    with _single_threaded_blas():
        if n_threads <= 1:
            return collect(func(rows) for rows in slices)
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            return collect(pool.map(func, slices))


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


# ---------------------------------------------------------------------------
# Exact log-densities by chunks of matrix products
# ---------------------------------------------------------------------------
#
# The Mahalanobis distances are expanded into matrix products (one GEMM per
# chunk) around the mean of the means. An expanded sum cancels when samples and
# means lie far from that centre compared with the spread of the components, so
# each chunk also gets a cheap bound of the rounding error of its expanded
# distances: Higham's bound for sums of products (Accuracy and Stability of
# Numerical Algorithms, 2nd ed., section 3.1), with Cauchy-Schwarz on the cross
# terms. Where the bound exceeds _LOG_PROB_TOL, the distances to the components
# that can matter are recomputed directly from ``x - mu_k``; rows so far away
# that the distances overflow get the limit of the posterior instead.

# Largest error tolerated on a log-density computed in expanded form, in nats.
_LOG_PROB_TOL = 1e-7

# A component whose weighted log-density lies this many nats below the best one
# of a row weighs less than exp(-50) < 2e-22 relative to it: negligible in the
# log-likelihood and in the posterior of the row.
_NEGLIGIBLE_NATS = 50.0


def _rounding_factor(n_terms):
    """Bound on the relative rounding error of a sum of ``n_terms`` products.

    A generous form of Higham's ``gamma_n = n u / (1 - n u)`` (``u = eps / 2``):
    ``(n_terms + 8) * eps`` also covers the few roundings made when the operands
    are centred, squared or scaled.
    """
    return (n_terms + 8) * np.finfo(np.float64).eps


def _abs_norm_bound(matrices):
    """Upper bound of the spectral norm of ``|A|``, for each matrix of a stack.

    ``sqrt(||A||_1 ||A||_inf)`` bounds ``|| |x| @ |A| ||_2 / ||x||_2``, hence the
    rounding error of ``x @ A`` relative to that of the sums of its products.
    """
    absolute = np.abs(matrices)
    max_col = absolute.sum(axis=-2).max(axis=-1)
    max_row = absolute.sum(axis=-1).max(axis=-1)
    return np.sqrt(max_col * max_row)


def _gaussian_terms(
    means,
    precisions_cholesky,
    covariance_type,
    *,
    log_weights=None,
    log_det=None,
    deflation=None,
):
    """Constants of the chunked log-density kernel, computed once per model.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)

    precisions_cholesky : ndarray
        As returned by :func:`_compute_precision_cholesky`. For ``'full'`` and
        ``'tied'``, any factor ``F`` with ``F @ F.T`` the precision matrix is
        accepted, rectangular ones of shape ([n_components,] n_features, rank)
        included (then ``log_det`` must be given).

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    log_weights : ndarray of shape (n_components,), default=None
        Added to every log-density (``-inf`` marks a component that is never
        used). None gives the log-densities of the components themselves.

    log_det : ndarray of shape (n_components,) or float, default=None
        ``-log det(Sigma_k) / 2``; by default, from the diagonal of the
        triangular factors.

    deflation : ndarray of shape (n_components, rank, n_deflated), default=None
        ``'full'`` only: orthonormal columns ``Q_k``; the distances become
        ``|(I - Q_k Q_k^T) F_k^T (x - mu_k)|^2``, whose precision ``F_k (I -
        Q_k Q_k^T) F_k^T`` is a Schur complement (see :func:`_pattern_terms`).

    Returns
    -------
    terms : dict
        Arrays used by :func:`_log_prob_chunk`: ``gemm`` is the right operand of
        the chunk's matrix product, ``bias`` the constant of each component.
    """
    means = np.asarray(means, dtype=np.float64)
    factors = np.asarray(precisions_cholesky, dtype=np.float64)
    n_components, n_features = means.shape
    if log_det is None:
        log_det = _log_det_precision_cholesky(factors, covariance_type, n_features)
    bias = np.broadcast_to(
        log_det - 0.5 * n_features * np.log(2.0 * np.pi), (n_components,)
    ).astype(np.float64)
    if log_weights is not None:
        bias = bias + log_weights
    live = np.isfinite(bias)
    live_bias = np.where(live, bias, 0.0)
    shift = means.mean(axis=0)
    centred = means - shift
    terms = {
        "covariance_type": covariance_type,
        "means": means,
        "factors": factors,
        "shift": shift,
        "bias": bias,
        "live": live,
        "dead": np.flatnonzero(~live),
    }
    # For each layout, the log-density is the product of a per-sample "design"
    # row (built in _expanded_log_prob) with the columns of ``gemm``.
    if covariance_type == "diag":
        precisions = factors**2
        weighted = centred * precisions
        sq_norm = np.einsum("kj,kj->k", centred, weighted)
        gemm = np.vstack([-0.5 * precisions.T, weighted.T, live_bias - 0.5 * sq_norm])
        terms.update(
            precision_max=precisions.max(axis=0),
            mean_radius=np.sqrt(sq_norm.max()),
            gamma=_rounding_factor(2 * n_features + 1),
        )
    elif covariance_type == "spherical":
        precisions = factors**2
        sq_norm = np.einsum("kj,kj->k", centred, centred)
        gemm = np.vstack(
            [
                (centred * precisions[:, np.newaxis]).T,
                -0.5 * precisions,
                live_bias - 0.5 * precisions * sq_norm,
            ]
        )
        terms.update(
            root_precision_max=np.sqrt(precisions.max()),
            mean_radius=np.sqrt((precisions * sq_norm).max()),
            gamma=_rounding_factor(n_features + 2),
        )
    elif covariance_type == "tied":
        projected = centred @ factors
        sq_norm = np.einsum("kj,kj->k", projected, projected)
        gemm = np.vstack(
            [projected.T, np.full(n_components, -0.5), live_bias - 0.5 * sq_norm]
        )
        terms.update(
            norm_bound=_abs_norm_bound(factors),
            mean_radius=np.sqrt(np.einsum("kj,kj->k", centred, centred).max()),
            gamma=_rounding_factor(n_features + factors.shape[1] + 2),
        )
    else:
        rank = factors.shape[2]
        gemm = np.ascontiguousarray(factors.transpose(1, 0, 2)).reshape(
            n_features, n_components * rank
        )
        norm_bound = _abs_norm_bound(factors)
        terms.update(
            projected_means=np.einsum("kj,kjl->kl", centred, factors).ravel(),
            norm_bound=norm_bound,
            mean_bound=norm_bound * np.sqrt(np.einsum("kj,kj->k", centred, centred)),
            live_bias=live_bias,
            rank=rank,
            deflation=deflation,
            gamma=_rounding_factor(n_features + 1),
        )
    terms["gemm"] = np.ascontiguousarray(gemm)
    if covariance_type != "full":
        # The bias is summed with the other products of the GEMM.
        terms["bias_bound"] = 2.0 * np.abs(gemm[-1]).max()
    return terms


def _deflate(y, deflation):
    """``y_ik <- (I - Q_k Q_k^T) y_ik`` in place, ``y`` of shape (n, K, rank)."""
    coefficients = np.einsum("ikr,krm->ikm", y, deflation)
    y -= np.einsum("ikm,krm->ikr", coefficients, deflation)


def _row_floats(terms):
    """Floats held per sample by the temporaries of :func:`_log_prob_chunk`."""
    n_components, n_features = terms["means"].shape
    if terms["covariance_type"] == "full":
        # Log-densities, error bounds and a mask; the (rows, K * rank) product
        # is computed by sub-chunks.
        return 4 * n_components + 2 * n_features
    # Log-densities and one temporary as large, the centred samples and the
    # design rows.
    return 2 * n_components + n_features + terms["gemm"].shape[0]


def _expanded_log_prob(X, terms, out=None):
    """Log-densities of a chunk in expanded form, with a bound of their error.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        Weighted log-densities; ``-inf`` for the dead components.

    error : ndarray of shape (n_samples,) or (n_samples, n_components)
        Bound of the rounding error of the Mahalanobis distances (twice the
        bound in nats), per sample or per entry.

    design : ndarray or None
        Left operand of the GEMM (``[x^2, x, 1]`` for ``'diag'``, ``[x, |x|^2,
        1]`` for ``'spherical'``, centred), reused by the E-step.
    """
    covariance_type = terms["covariance_type"]
    gamma = terms["gamma"]
    X_centred = X - terms["shift"]
    n_samples, n_features = X_centred.shape
    design = None
    if covariance_type == "diag":
        design = np.empty((n_samples, 2 * n_features + 1))
        np.square(X_centred, out=design[:, :n_features])
        design[:, n_features:-1] = X_centred
        design[:, -1] = 1.0
        log_prob = np.matmul(design, terms["gemm"], out=out)
        radius = np.sqrt(design[:, :n_features] @ terms["precision_max"])
        error = gamma * ((radius + terms["mean_radius"]) ** 2 + terms["bias_bound"])
    elif covariance_type == "spherical":
        design = np.empty((n_samples, n_features + 2))
        design[:, :n_features] = X_centred
        np.einsum("ij,ij->i", X_centred, X_centred, out=design[:, n_features])
        design[:, -1] = 1.0
        log_prob = np.matmul(design, terms["gemm"], out=out)
        radius = terms["root_precision_max"] * np.sqrt(design[:, n_features])
        error = gamma * ((radius + terms["mean_radius"]) ** 2 + terms["bias_bound"])
    elif covariance_type == "tied":
        projected = X_centred @ terms["factors"]
        rank = projected.shape[1]
        design = np.empty((n_samples, rank + 2))
        design[:, :rank] = projected
        np.einsum("ij,ij->i", projected, projected, out=design[:, rank])
        design[:, -1] = 1.0
        log_prob = np.matmul(design, terms["gemm"], out=out)
        # Expansion, projection of the samples and of the means: 3 gamma R^2.
        radius = terms["norm_bound"] * (
            np.sqrt(np.einsum("ij,ij->i", X_centred, X_centred)) + terms["mean_radius"]
        )
        error = gamma * (4.0 * radius**2 + terms["bias_bound"])
        design = None  # the E-step works on the centred samples instead
    else:
        n_components = terms["means"].shape[0]
        rank = terms["rank"]
        log_prob = np.empty((n_samples, n_components)) if out is None else out
        error = np.empty((n_samples, n_components))
        norms = np.sqrt(np.einsum("ij,ij->i", X_centred, X_centred))
        # Sub-chunks of about 1 MiB stay in cache from the product to the sums.
        step = max(1, _SUB_CHUNK_FLOATS // (n_components * rank))
        for start in range(0, n_samples, step):
            rows = slice(start, start + step)
            y = X_centred[rows] @ terms["gemm"]
            y -= terms["projected_means"]
            if terms["deflation"] is not None:
                _deflate(y.reshape(-1, n_components, rank), terms["deflation"])
            np.square(y, out=y)
            # Row sums of the squares as a matrix-vector product (BLAS).
            maha = (y.reshape(-1, rank) @ np.ones(rank)).reshape(-1, n_components)
            # Absolute error of the projected differences, then of their norms.
            delta = gamma * (
                norms[rows, np.newaxis] * terms["norm_bound"] + terms["mean_bound"]
            )
            error[rows] = delta * (2.0 * np.sqrt(maha) + 3.0 * delta)
            np.multiply(maha, -0.5, out=log_prob[rows])
            log_prob[rows] += terms["live_bias"]
        error[:, terms["dead"]] = 0.0
    log_prob[:, terms["dead"]] = -np.inf
    return log_prob, error, design


def _log_prob_chunk(X, terms, *, window, out=None):
    """Weighted log-densities of one chunk, exact wherever they matter.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    terms : dict
        From :func:`_gaussian_terms`.

    window : float
        Entries more than ``window`` nats below the best of their row may be
        left inexact (they are set to ``-inf`` when recomputing a row); ``inf``
        makes every entry exact.

    out : ndarray of shape (n_samples, n_components), default=None
        Where to write the log-densities.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        ``log pi_k + log N(x_i | mu_k, Sigma_k)`` minus ``offset``.

    offset : ndarray of shape (n_samples,) or None
        None, or a per-sample constant to add to ``log_prob``: ``-inf`` for the
        samples so far from every component that all their log-densities are
        ``-inf``, whose ``log_prob`` then holds the limit of the posterior
        log-odds, and 0 elsewhere.

    design : ndarray or None
        See :func:`_expanded_log_prob`.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        log_prob, error, design = _expanded_log_prob(X, terms, out=out)
        tol = 2.0 * _LOG_PROB_TOL
        if error.ndim == 1:
            suspect = np.flatnonzero(~(error <= tol))
        else:
            suspect = np.flatnonzero(~np.all(error <= tol, axis=1))
        offset = None
        if suspect.size:
            offset = _refine_log_prob(X, log_prob, error, suspect, terms, window)
    return log_prob, offset, design


def _refine_log_prob(X, log_prob, error, rows, terms, window):
    """Recompute in place the entries of ``rows`` that may be inexact.

    Returns the ``offset`` of :func:`_log_prob_chunk`, or None.
    """
    live = terms["live"]
    approx = log_prob[rows]
    half = 0.5 * (error[rows] if error.ndim == 2 else error[rows, np.newaxis])
    half = np.broadcast_to(half, approx.shape)
    finite = np.all(np.isfinite(half[:, live]), axis=1) & np.all(
        np.isfinite(approx[:, live]), axis=1
    )
    offset = None
    if not finite.all():
        # Overflow in the expanded form: these rows are recomputed whole.
        far = rows[~finite]
        relative, far_offset = _outlier_log_prob(X[far], terms)
        log_prob[far] = relative
        if np.any(far_offset != 0.0):
            offset = np.zeros(log_prob.shape[0])
            offset[far] = far_offset
        rows, approx, half = rows[finite], approx[finite], half[finite]
    if rows.size == 0:
        return offset

    need = half > _LOG_PROB_TOL
    if np.isfinite(window):
        # Upper bounds within ``window`` of the best lower bound can matter.
        lower = np.max(approx - half, axis=1)
        matter = approx + half >= (lower - window)[:, np.newaxis]
        need &= matter
        negligible = ~matter
        negligible[:, ~live] = False
        log_prob[rows] = np.where(negligible, -np.inf, approx)
    need[:, ~live] = False
    row_index, components = np.nonzero(need)
    if row_index.size:
        row_index = rows[row_index]
        maha = _direct_mahalanobis(X, row_index, components, terms)
        log_prob[row_index, components] = terms["bias"][components] - 0.5 * maha
    return offset


def _direct_mahalanobis(X, rows, components, terms):
    """Mahalanobis distances of the pairs ``(X[rows[i]], components[i])``.

    Computed from the differences ``x - mu_k``, without expansion, by batches
    of pairs.
    """
    covariance_type = terms["covariance_type"]
    means, factors = terms["means"], terms["factors"]
    n_features = means.shape[1]
    maha = np.empty(rows.size)
    if covariance_type == "full":
        order = np.argsort(components, kind="stable")
        sorted_components = components[order]
        starts = np.flatnonzero(np.diff(sorted_components, prepend=-1))
        ends = np.append(starts[1:], order.size)
        for start, end in zip(starts, ends, strict=True):
            k = sorted_components[start]
            pairs = order[start:end]
            y = (X[rows[pairs]] - means[k]) @ factors[k]
            if terms.get("deflation") is not None:
                _deflate(y[:, np.newaxis], terms["deflation"][k : k + 1])
            maha[pairs] = np.einsum("ij,ij->i", y, y)
        return maha
    step = max(1, _CHUNK_FLOATS // (4 * n_features))
    for start in range(0, rows.size, step):
        batch = slice(start, start + step)
        k = components[batch]
        diff = X[rows[batch]] - means[k]
        if covariance_type == "diag":
            diff *= factors[k]
        elif covariance_type == "tied":
            diff = diff @ factors
        maha[batch] = np.einsum("ij,ij->i", diff, diff)
        if covariance_type == "spherical":
            maha[batch] *= factors[k] ** 2
    return maha


def _outlier_log_prob(X, terms):
    """Log-densities of samples whose expanded distances overflow.

    Each row is scaled by a power of two ``s = 2^-e`` (exactly) to the order of
    one, and the distances ``maha_k = |P_k^T (s x - s mu_k)|^2 / s^2`` are
    computed directly. Where every one of them overflows, the posterior is the
    limit of the exact one as the terms of ``maha_k = |y_k|^2 / s^2 - 2 y_k .
    m_k / s + |m_k|^2`` (``y_k = P_k^T s x``, ``m_k = P_k^T mu_k``) separate: the
    components with the smallest ``|y_k|^2`` win, among them those with the
    largest ``y_k . m_k``, and exact ties are shared by weight and normaliser.

    Returns ``(log_prob, offset)`` as :func:`_log_prob_chunk` does.
    """
    covariance_type = terms["covariance_type"]
    means, factors = terms["means"], terms["factors"]
    bias, live = terms["bias"], terms["live"]
    n_samples, n_features = X.shape
    n_components = means.shape[0]

    def project(diff):
        # P_k^T d for every (row, component) pair of a (rows, K, d) stack.
        if covariance_type == "diag":
            return diff * factors
        if covariance_type == "spherical":
            return diff * factors[:, np.newaxis]
        if covariance_type == "tied":
            return diff @ factors
        y = np.einsum("ikj,kjl->ikl", diff, factors)
        if terms.get("deflation") is not None:
            _deflate(y, terms["deflation"])
        return y

    log_prob = np.empty((n_samples, n_components))
    offset = np.zeros(n_samples)
    step = max(1, _CHUNK_FLOATS // (4 * n_components * n_features))
    for start in range(0, n_samples, step):
        rows = slice(start, start + step)
        _, exponent = np.frexp(np.max(np.abs(X[rows]), axis=1))
        exponent = np.maximum(exponent, 0)[:, np.newaxis]
        scaled = np.ldexp(X[rows], -exponent)
        diff = scaled[:, np.newaxis, :] - np.ldexp(means, -exponent[:, :, np.newaxis])
        y = project(diff)
        maha = np.ldexp(np.einsum("ikl,ikl->ik", y, y), 2 * exponent)
        block = bias - 0.5 * maha
        gone = ~np.any(block[:, live] > -np.inf, axis=1)
        if gone.any():
            y = project(np.broadcast_to(scaled[gone, np.newaxis, :], diff[gone].shape))
            projected_means = project(means[np.newaxis])[0]
            A = np.einsum("ikl,ikl->ik", y, y)
            B = np.einsum("ikl,kl->ik", y, projected_means)
            C = np.einsum("kl,kl->k", projected_means, projected_means)
            A[:, ~live] = np.inf
            tie = A == A.min(axis=1, keepdims=True)
            B_best = np.where(tie, B, -np.inf).max(axis=1, keepdims=True)
            block[gone] = np.where(
                tie, bias - 0.5 * C + np.ldexp(B - B_best, exponent[gone]), -np.inf
            )
            offset[start + np.flatnonzero(gone)] = -np.inf
        log_prob[rows] = block
    return log_prob, offset


def _map_log_prob(X, terms, func, *, window, chunk_size=None, out=None, fold=None):
    """Apply ``func(rows, log_prob, offset, design)`` to every chunk of ``X``.

    The arguments after ``rows`` are those returned by :func:`_log_prob_chunk`;
    ``out`` (n_samples, n_components) receives the log-densities, chunk by
    chunk, if given. Returns the results of ``func`` in chunk order, or their
    ``fold`` (see :func:`_map_row_chunks`).
    """

    def task(rows):
        chunk_out = None if out is None else out[rows]
        chunk = _log_prob_chunk(X[rows], terms, window=window, out=chunk_out)
        return func(rows, *chunk)

    return _map_row_chunks(task, X.shape[0], _row_floats(terms), chunk_size, fold)


# Rows whose largest log-density lies within this many nats of zero are
# exponentiated as they are, which saves a pass; the others are shifted by their
# maximum first.
_EXP_SAFE_NATS = 40.0

# exp() of an argument below about -708 has a subnormal or zero result and takes
# libm's slow path (6 to 40 times slower than the normal range). Arguments are
# floored at -700 instead and exp(-700) is subtracted: the floored entries give
# exactly 0, as exp() of them would (to within 1e-304), and the others move by at
# most 1e-304, below 1e-286 of the row's largest term.
_EXP_FLOOR = -700.0
_EXP_FLOOR_VALUE = float(np.exp(_EXP_FLOOR))


def _exp_rows(log_prob):
    """``exp(L - c)`` in place with a per-row shift ``c``; returns ``c``.

    ``c`` is 0 for the rows whose maximum is within ``_EXP_SAFE_NATS`` of zero,
    their maximum for the others. Entries more than 660 nats below their row's
    maximum become exactly 0 (see ``_EXP_FLOOR``).
    """
    shift = log_prob.max(axis=1)
    shift[np.abs(shift) <= _EXP_SAFE_NATS] = 0.0
    if np.any(shift):
        log_prob -= shift[:, np.newaxis]
    np.maximum(log_prob, _EXP_FLOOR, out=log_prob)
    np.exp(log_prob, out=log_prob)
    log_prob -= _EXP_FLOOR_VALUE
    return shift


def _normalise_rows(log_prob, offset=None):
    """Turn weighted log-densities into posteriors, in place.

    Each row becomes ``exp(L - c) / sum(exp(L - c))`` (see :func:`_exp_rows`),
    which sums to one whatever the magnitude of ``L``. Returns the
    log-normaliser of each row, ``log sum_k exp(L_k)`` (plus ``offset``).
    """
    shift = _exp_rows(log_prob)
    total = log_prob.sum(axis=1)
    log_prob *= (1.0 / total)[:, np.newaxis]
    log_norm = np.log(total)
    log_norm += shift
    if offset is not None:
        log_norm += offset
    return log_norm


def _logsumexp_rows(log_prob, offset=None):
    """``log sum_k exp(L_k)`` of each row (plus ``offset``); overwrites ``L``."""
    shift = _exp_rows(log_prob)
    log_norm = np.log(log_prob.sum(axis=1))
    log_norm += shift
    if offset is not None:
        log_norm += offset
    return log_norm


def _estimate_log_gaussian_prob(
    X, means, precisions_cholesky, covariance_type, *, chunk_size=None
):
    """Log-density of every sample under every Gaussian component.

    The Mahalanobis distances come from matrix products (one GEMM per chunk of
    samples) on data centred on the mean of the means; entries whose rounding
    error bound exceeds ``_LOG_PROB_TOL`` are recomputed directly, so every entry
    is exact to about 1e-7 nats beyond the relative rounding of the distance
    itself.

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
        ``log N(x_i | mu_k, Sigma_k)``; ``-inf`` where it underflows.
    """
    _check_covariance_type(covariance_type)
    terms = _gaussian_terms(means, precisions_cholesky, covariance_type)
    return _fill_log_prob(X, terms, chunk_size)


def _fill_log_prob(X, terms, chunk_size):
    out = np.empty((X.shape[0], terms["means"].shape[0]))

    def add_offset(rows, log_prob, offset, design):
        if offset is not None:
            log_prob += offset[:, np.newaxis]

    _map_log_prob(X, terms, add_offset, window=np.inf, chunk_size=chunk_size, out=out)
    return out


def _mixture_terms(
    weights, means, precisions_cholesky, covariance_type, *, reg_covar=0.0
):
    """:func:`_gaussian_terms` of the mixture, with the factor of ``reg_covar``."""
    _check_covariance_type(covariance_type)
    log_weights = _log_weights(weights)
    if reg_covar > 0.0:
        n_features = np.shape(means)[1]
        log_weights = log_weights - 0.5 * reg_covar * _precision_trace(
            precisions_cholesky, covariance_type, n_features
        )
    return _gaussian_terms(
        means, precisions_cholesky, covariance_type, log_weights=log_weights
    )


def _estimate_log_resp(
    X,
    weights,
    means,
    precisions_cholesky,
    covariance_type,
    *,
    reg_covar=0.0,
    chunk_size=None,
):
    """Log-responsibilities and mean log-likelihood.

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

    chunk_size : int, default=None
        Rows per chunk.

    Returns
    -------
    log_resp : ndarray of shape (n_samples, n_components)
        Log of the posterior probabilities ``p(k | x_i)``, normalised as
        ``L - max - log sum exp(L - max)`` so that their exponentials sum to one.

    mean_log_prob_norm : float
        Mean over samples of the log of the normaliser, i.e. the mean
        log-likelihood when ``reg_covar=0``.
    """
    terms = _mixture_terms(
        weights, means, precisions_cholesky, covariance_type, reg_covar=reg_covar
    )
    log_resp = np.empty((X.shape[0], means.shape[0]))

    def normalise(rows, log_prob, offset, design):
        log_norm = log_prob.max(axis=1)
        log_prob -= log_norm[:, np.newaxis]
        log_sum = np.log(np.exp(log_prob).sum(axis=1))
        log_prob -= log_sum[:, np.newaxis]
        log_norm += log_sum
        if offset is not None:
            log_norm += offset
        return log_norm.sum()

    totals = _map_log_prob(
        X,
        terms,
        normalise,
        window=_NEGLIGIBLE_NATS,
        chunk_size=chunk_size,
        out=log_resp,
    )
    return log_resp, float(sum(totals) / max(X.shape[0], 1))


def _predict_proba(
    X, weights, means, precisions_cholesky, covariance_type, *, chunk_size=None
):
    """Posterior probabilities, computed in place chunk by chunk.

    Apart from the returned (n_samples, n_components) array, memory is
    ``O(chunk_size * n_components)``. Rows sum to one for any finite input; a
    sample so far away that every log-density is ``-inf`` gets the limit of the
    posterior along its direction.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_components)
    """
    terms = _mixture_terms(weights, means, precisions_cholesky, covariance_type)
    proba = np.empty((X.shape[0], means.shape[0]))

    def normalise(rows, log_prob, offset, design):
        _normalise_rows(log_prob)

    _map_log_prob(
        X, terms, normalise, window=_NEGLIGIBLE_NATS, chunk_size=chunk_size, out=proba
    )
    return proba


def _predict(
    X, weights, means, precisions_cholesky, covariance_type, *, chunk_size=None
):
    """Most probable component of each sample; memory ``O(chunk_size * K)``.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
    """
    terms = _mixture_terms(weights, means, precisions_cholesky, covariance_type)
    labels = np.empty(X.shape[0], dtype=np.intp)

    def argmax(rows, log_prob, offset, design):
        labels[rows] = log_prob.argmax(axis=1)

    _map_log_prob(X, terms, argmax, window=_NEGLIGIBLE_NATS, chunk_size=chunk_size)
    return labels


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
        ``log sum_k pi_k N(x_i | mu_k, Sigma_k)``, exact to about 1e-7 nats
        beyond the relative rounding of the distances; ``-inf`` where it
        underflows, never NaN for finite input.
    """
    terms = _mixture_terms(weights, means, precisions_cholesky, covariance_type)
    log_density = np.empty(X.shape[0])

    def logsumexp(rows, log_prob, offset, design):
        log_density[rows] = _logsumexp_rows(log_prob, offset)

    _map_log_prob(X, terms, logsumexp, window=_NEGLIGIBLE_NATS, chunk_size=chunk_size)
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


def _scatter_from_labels(X, labels, means, covariance_type, *, zero_missing=False):
    """Sufficient statistics for hard assignments, without an (n, K) matrix.

    By the module's row chunks (memory ``O(chunk * n_features)``, no copy of
    ``X``); within a chunk the residuals are sorted by label and summed per
    component. With ``zero_missing``, the residuals of missing entries (NaN)
    count as 0.
    """
    n_components, n_features = means.shape
    _check_labels(labels, n_components)
    nk = np.bincount(labels, minlength=n_components).astype(np.float64)
    layout = "diag" if covariance_type == "spherical" else covariance_type
    scatter = _covariance_zeros(n_components, n_features, layout)
    for rows in _chunks(X.shape[0], 2 * n_features):
        chunk_labels = labels[rows]
        diff = X[rows] - means[chunk_labels]
        if zero_missing:
            diff[np.isnan(diff)] = 0.0
        if layout == "tied":
            scatter += diff.T @ diff
            continue
        order = np.argsort(chunk_labels, kind="stable")
        diff = diff[order]
        sorted_labels = chunk_labels[order]
        starts = np.flatnonzero(np.diff(sorted_labels, prepend=-1))
        if starts.size == 0:
            continue
        components = sorted_labels[starts]
        if layout == "full":
            ends = np.append(starts[1:], sorted_labels.size)
            for k, start, end in zip(components, starts, ends, strict=True):
                block = diff[start:end]
                scatter[k] += block.T @ block
        else:
            # Groups have strictly increasing starts: reduceat sums each one.
            scatter[components] += np.add.reduceat(diff * diff, starts, axis=0)
    if covariance_type == "spherical":
        scatter = scatter.mean(axis=1)
    return nk, scatter


def _soft_scatter(
    X,
    resp,
    means,
    covariance_type,
    *,
    shift,
    design=None,
    reg_covar=0.0,
    prior=0.0,
    first_moment=False,
):
    """Soft counts and scatter of one chunk of samples around fixed means.

    ``'diag'``, ``'spherical'`` and ``'tied'`` expand ``(x - mu_k)^2`` around
    ``shift`` so that the sums are matrix products (``resp.T @ [x^2, x, 1]``);
    a component whose expanded scatter has a rounding-error bound above
    ``_SCATTER_RTOL`` times the accuracy it needs is recomputed directly on
    the rows it weighs. ``'full'`` uses one product per component on its
    residuals.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    resp : ndarray of shape (n_samples, n_components)

    means : ndarray of shape (n_components, n_features)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    shift : ndarray of shape (n_features,)
        Centre of the expansion, the mean of the means.

    design : ndarray, default=None
        The ``design`` of :func:`_expanded_log_prob` for these rows and this
        shift (``'diag'`` and ``'spherical'``), to avoid building it again.

    reg_covar, prior : float or ndarray, default=0.0
        The scatter becomes ``Sigma_k = (S_k + s Sigma_0) / (N_k + s) + reg_covar``,
        so each entry needs accuracy only relative to ``S_k + N_k * reg_covar +
        prior``, where ``prior`` is this chunk's share of ``s (Sigma_0 +
        reg_covar)`` (a float, or one value per feature).

    first_moment : bool, default=False
        Also return ``U = resp.T @ (X - shift)`` of shape (n_components,
        n_features), the first moments the mean update needs.

    Returns
    -------
    nk, scatter
        As :func:`_scatter_statistics`, for the chunk (and ``U`` when
        ``first_moment``).
    """
    nk, scatter, U = _soft_scatter_moments(
        X,
        resp,
        means,
        covariance_type,
        shift=shift,
        design=design,
        reg_covar=reg_covar,
        prior=prior,
    )
    if first_moment:
        if U is None:
            U = resp.T @ (X - shift)
        return nk, scatter, U
    return nk, scatter


def _soft_scatter_moments(
    X, resp, means, covariance_type, *, shift, design, reg_covar, prior
):
    """:func:`_soft_scatter`, with ``U`` when its products already hold it."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    centred = means - shift
    gamma = _rounding_factor(n_samples + n_components)
    if covariance_type == "full":
        nk = resp.sum(axis=0)
        scatter = np.zeros((n_components, n_features, n_features))
        for k in np.flatnonzero(nk):
            # Only the rows the component weighs (all of them for soft
            # responsibilities, few of them for far components).
            active = np.flatnonzero(resp[:, k])
            if active.size == n_samples:
                diff, r = X - means[k], resp[:, k]
            else:
                diff, r = X[active] - means[k], resp[active, k]
            scatter[k] = (diff.T * r) @ diff
        return nk, scatter, None

    if covariance_type == "tied":
        X_centred = X - shift
        nk = resp.sum(axis=0)
        U = resp.T @ X_centred
        gram = (X_centred.T * resp.sum(axis=1)) @ X_centred
        cross = centred.T @ U
        scatter = gram - cross - cross.T + (centred.T * nk) @ centred
        radius = np.sqrt(np.diag(gram)) + np.sqrt(nk @ centred**2)
        bound = gamma * radius**2
        with np.errstate(over="ignore"):  # inf only makes the check pass
            limit = _SCATTER_RTOL * (np.diag(scatter) + n_samples * reg_covar + prior)
        if np.all(bound <= limit):
            return nk, scatter, U
        scatter = np.zeros((n_features, n_features))
        for k in np.flatnonzero(nk):
            active = np.flatnonzero(resp[:, k])
            diff = X[active] - means[k]
            scatter += (diff.T * resp[active, k]) @ diff
        return nk, scatter, U

    if design is None:
        X_centred = X - shift
        if covariance_type == "diag":
            design = np.hstack([X_centred**2, X_centred, np.ones((n_samples, 1))])
        else:
            sq_norm = np.einsum("ij,ij->i", X_centred, X_centred)
            design = np.column_stack([X_centred, sq_norm, np.ones(n_samples)])
    sums = resp.T @ design
    nk = sums[:, -1]
    if covariance_type == "diag":
        Q, U = sums[:, :n_features], sums[:, n_features:-1]
        scatter = Q - centred * (2.0 * U - nk[:, np.newaxis] * centred)
        radius = np.sqrt(Q) + np.sqrt(nk)[:, np.newaxis] * np.abs(centred)
        with np.errstate(over="ignore"):
            limit = _SCATTER_RTOL * (scatter + nk[:, np.newaxis] * reg_covar + prior)
        bad = np.flatnonzero(np.any(~(gamma * radius**2 <= limit), axis=1))
    else:
        U, Q = sums[:, :n_features], sums[:, n_features]
        cross = np.einsum("kj,kj->k", centred, 2.0 * U - nk[:, np.newaxis] * centred)
        scatter = Q - cross
        radius = np.sqrt(Q) + np.sqrt(nk * np.einsum("kj,kj->k", centred, centred))
        with np.errstate(over="ignore"):
            limit = _SCATTER_RTOL * (scatter + n_features * (nk * reg_covar + prior))
        bad = np.flatnonzero(~(gamma * radius**2 <= limit))
    for k in bad:
        active = np.flatnonzero(resp[:, k])
        sq_diff = (X[active] - means[k]) ** 2
        if covariance_type == "diag":
            scatter[k] = resp[active, k] @ sq_diff
        else:
            scatter[k] = resp[active, k] @ sq_diff.sum(axis=1)
    if covariance_type == "spherical":
        scatter /= n_features
    return nk, scatter, U


def _scatter_statistics(
    X, resp, means, covariance_type, *, chunk_size=None, reg_covar=0.0, prior=0.0
):
    """Soft counts and scatter of the samples around the fixed means.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    resp : ndarray of shape (n_samples, n_components) or (n_samples,)
        Responsibilities, or integer labels of hard assignments.

    means : ndarray of shape (n_components, n_features)

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    chunk_size : int, default=None

    reg_covar, prior : float or ndarray, default=0.0
        Scale of the accuracy needed, see :func:`_soft_scatter`; ``prior`` is
        ``s (Sigma_0 + reg_covar)`` for the whole data (its diagonal for
        ``'tied'``).

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
    shift = means.mean(axis=0)
    nk = np.zeros(n_components)
    scatter = 0.0
    scatter = _covariance_zeros(n_components, n_features, covariance_type)

    def statistics(rows):
        return _soft_scatter(
            X[rows],
            resp[rows],
            means,
            covariance_type,
            shift=shift,
            reg_covar=reg_covar,
            prior=prior * ((rows.stop - rows.start) / n_samples),
        )

    row_floats = n_components + 3 * n_features + 1
    for nk_chunk, scatter_chunk in _map_row_chunks(
        statistics, n_samples, row_floats, chunk_size
    ):
        nk += nk_chunk
        scatter += scatter_chunk
    return nk, _symmetrise(scatter, covariance_type)


def _covariance_zeros(n_components, n_features, covariance_type):
    shape = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    return np.zeros(shape)


def _symmetrise(scatter, covariance_type):
    if covariance_type == "full":
        return 0.5 * (scatter + scatter.transpose(0, 2, 1))
    if covariance_type == "tied":
        return 0.5 * (scatter + scatter.T)
    return scatter


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
            covariances = scatter / denom + (shrinkage / denom) * prior
    else:
        denom = nk + shrinkage
        empty = denom < tiny
        safe = np.where(empty, 1.0, denom)[(...,) + (np.newaxis,) * (scatter.ndim - 1)]
        # S / (N + s) + s / (N + s) * Sigma_0: no overflow for a huge s.
        covariances = scatter / safe + (shrinkage / safe) * prior
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
    if covariance_prior is not None:
        covariance_prior = _check_covariance_prior(
            covariance_prior, covariance_type, X.shape[1]
        )
    nk, scatter = _scatter_statistics(
        X,
        resp,
        means,
        covariance_type,
        chunk_size=chunk_size,
        reg_covar=reg_covar,
        prior=_prior_scale(covariance_prior, covariance_type, shrinkage, reg_covar),
    )
    if covariance_prior is None:
        covariance_prior = _pooled_covariance(nk, scatter, covariance_type)
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


def _pooled_target(X, labels, means, covariance_type):
    """Shrinkage target: pooled residual covariance with a degrees-of-freedom fix.

    The scatter of the samples around their unit's mean, summed over units,
    is divided by ``n - K_occupied`` (each occupied unit spends one sample on
    its mean) rather than by ``n``: a unit holding a single sample adds no
    scatter and so cannot drag the target to zero, as it did when the map had
    about as many units as samples. When no degree of freedom is left
    (``n <= K_occupied``), the target is the data's covariance times the
    square of Scott's factor ``n^(-1 / (d + 4))``, the variance a Gaussian
    kernel density would give each sample. Layout as
    :func:`_pooled_covariance`.

    The computation is split for data held in blocks (see ``somgen._dask``):
    :func:`_scatter_from_labels` and :func:`_centred_scatter` give per-block
    statistics whose sums :func:`_pooled_target_from_scatter` and
    :func:`_scott_target` finish.
    """
    n_samples = X.shape[0]
    nk, scatter = _scatter_from_labels(X, labels, means, covariance_type)
    target = _pooled_target_from_scatter(nk, scatter, n_samples, covariance_type)
    if target is not None:
        return target
    total = _centred_scatter(X, X.mean(axis=0), covariance_type)
    return _scott_target(total, n_samples, covariance_type)


def _pooled_target_from_scatter(nk, scatter, n_samples, covariance_type):
    """:func:`_pooled_target` from the hard-label statistics of all samples.

    ``nk`` and ``scatter`` are those of :func:`_scatter_from_labels` (or their
    sums over blocks of samples). Returns None when no degree of freedom is
    left (``n_samples <= K_occupied``): the target is then
    :func:`_scott_target`.
    """
    dof = n_samples - np.count_nonzero(nk)
    if dof < 1:
        return None
    if covariance_type == "tied":
        return scatter / dof
    pooled = scatter.sum(axis=0) / dof
    return float(pooled) if covariance_type == "spherical" else pooled


def _centred_scatter(X, centre, covariance_type, *, zero_missing=False):
    """``sum_i (x_i - centre)(x_i - centre)^T`` (its diagonal for ``'diag'`` and
    ``'spherical'``), by the module's row chunks; additive over blocks of
    samples. With ``zero_missing``, missing entries (NaN) count as 0."""
    n_samples, n_features = X.shape
    full = covariance_type in ("full", "tied")
    total = np.zeros((n_features, n_features) if full else n_features)
    for rows in _chunks(n_samples, n_features):
        block = X[rows] - centre
        if zero_missing:
            block[np.isnan(block)] = 0.0
        total += block.T @ block if full else np.einsum("ij,ij->j", block, block)
    return total


def _scott_target(total, n_samples, covariance_type):
    """The fallback of :func:`_pooled_target`: the data's covariance times the
    square of Scott's factor, from the :func:`_centred_scatter` ``total``
    around the data's mean."""
    n_features = total.shape[0]
    factor = float(n_samples) ** (-2.0 / (n_features + 4)) / n_samples
    if covariance_type == "spherical":
        return float(factor * total.mean())
    return factor * total


def _absolute_stiffness(
    stiffness, n_samples, covariance_prior, n_components, reg_covar=0.0
):
    """The anchored prior's ``lambda`` from the dimensionless ``mean_stiffness``.

    ``lambda = stiffness * (n / K) / v`` with ``v`` the mean variance of the
    pooled target plus ``reg_covar`` (the floor of every component's
    variance): the prior's pull between neighbours then compares with the
    data's pull on a unit holding ``n / K`` samples (precision ``(n / K) /
    v``), so one value suits data of any size and scale. With ``reg_covar``,
    a target of zero (samples equal to their prototypes, e.g. a column with
    few values) cannot make ``lambda`` outweigh the data's pull by orders of
    magnitude, which left the common shift of the means to rounding noise.
    ``inf`` and ``0`` stay.
    """
    if not 0.0 < stiffness < np.inf:
        return float(stiffness)
    prior = np.asarray(covariance_prior, dtype=np.float64)
    variance = float(np.mean(np.diag(prior) if prior.ndim == 2 else prior))
    variance += reg_covar
    tiny = np.finfo(np.float64).tiny
    with np.errstate(over="ignore"):
        return float(stiffness * (n_samples / n_components) / max(variance, tiny))


def _dirichlet_weights(counts, weight_concentration):
    """Smoothed weights ``(N_k + alpha) / (sum_k N_k + K alpha)``.

    Counts and ``alpha`` are divided by ``max(1, alpha)`` first, so that any
    finite ``alpha`` works (a huge one gives uniform weights).
    """
    scale = max(1.0, weight_concentration)
    counts = np.asarray(counts, dtype=np.float64)
    weights = counts / scale + weight_concentration / scale
    return weights / weights.sum()


def _log_prior_terms(
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

    Returns its summands: ``alpha * log pi_k`` for each weight (none when
    ``weights`` is None or ``alpha`` is 0), and ``-s / 2 * [tr(Sigma_k^{-1}
    (Sigma_0 + r I)) + log det Sigma_k]`` for each covariance (none when ``s``
    is 0).
    """
    weight_terms = np.zeros(0)
    covariance_terms = np.zeros(0)
    if weights is not None and weight_concentration > 0.0:
        weight_terms = weight_concentration * _log_weights(weights)
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
            trace = n_features * (target * P**2)
        log_det_cov = -2.0 * _log_det_precision_cholesky(P, covariance_type, n_features)
        covariance_terms = -0.5 * shrinkage * np.atleast_1d(trace + log_det_cov)
    return weight_terms, covariance_terms


def _change(new_terms, old_terms):
    """``sum(new - old)``, exact zero where a summand did not change.

    With a huge ``alpha`` or ``s``, the parameters they pin (uniform weights,
    covariances at the prior) do not move, and their huge terms then cancel
    exactly instead of leaving rounding noise.
    """
    return sum(
        float(np.sum(np.where(new == old, 0.0, new - old)))
        for new, old in zip(new_terms, old_terms, strict=True)
    )


def _statistics_fold(n_components, n_features, covariance_type):
    """A ``fold`` (see :func:`_map_row_chunks`) summing E-step statistics
    ``(objective, log_likelihood, nk, scatter[, U])`` chunk by chunk, in
    order; ``fold(None, ())`` gives the zeros."""

    def fold(totals, chunk):
        if totals is None:
            totals = [
                0.0,
                0.0,
                np.zeros(n_components),
                _covariance_zeros(n_components, n_features, covariance_type),
                np.zeros((n_components, n_features)),
            ]
        for t, value in enumerate(chunk):
            totals[t] += value
        return totals

    return fold


def _jitter_log_likelihood(resp, jitter):
    """``sum_i log sum_k resp_ik exp(jitter_k)``: what turns the penalised
    log-normalisers of the E-step back into the plain log-likelihood.

    One matrix-vector product; rows where it underflows (the components that
    hold a row's responsibility have ``jitter`` far below the largest, e.g.
    units with huge precisions) are recomputed by a log-sum-exp.
    """
    jitter_max = jitter.max()
    sums = resp @ np.exp(jitter - jitter_max)
    with np.errstate(divide="ignore"):
        logs = np.log(sums)
    bad = np.flatnonzero(~np.isfinite(logs))
    if bad.size:
        with np.errstate(divide="ignore"):
            terms = np.log(resp[bad]) + (jitter - jitter_max)
        top = terms.max(axis=1, keepdims=True)
        logs[bad] = top[:, 0] + np.log(np.exp(terms - top).sum(axis=1))
    return jitter_max * resp.shape[0] + logs.sum()


def _e_step_statistics(
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
    """One pass of E-step over chunks, accumulating the M-step statistics.

    Returns the summed log-normaliser of the penalised objective, the summed
    plain log-likelihood, ``nk`` and the scatter of :func:`_scatter_statistics`
    (``prior`` sets the accuracy it needs, see :func:`_soft_scatter`), then,
    with ``first_moment``, ``U = sum_i r_ik (x_i - shift)`` and the ``shift``
    (the mean of the means). The (n_samples, n_components) responsibilities
    are never formed at once.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    # Per-component log-factor r / 2 * tr(Sigma_k^{-1}) of the objective.
    trace = _precision_trace(precisions_cholesky, covariance_type, n_features)
    jitter = np.broadcast_to(0.5 * reg_covar * trace, (n_components,))
    terms = _gaussian_terms(
        means,
        precisions_cholesky,
        covariance_type,
        log_weights=_log_weights(weights) - jitter,
    )

    def statistics(rows, resp, offset, design):
        log_norm = _normalise_rows(resp, offset)
        objective = log_norm.sum()
        log_likelihood = objective
        if reg_covar > 0.0:
            # log sum_k pi_k N_k = log_norm + log sum_k resp_k exp(jitter_k).
            log_likelihood += _jitter_log_likelihood(resp, jitter)
        moments = _soft_scatter(
            X[rows],
            resp,
            means,
            covariance_type,
            shift=terms["shift"],
            design=design,
            reg_covar=reg_covar,
            prior=prior * (resp.shape[0] / n_samples),
            first_moment=first_moment,
        )
        return objective, log_likelihood, *moments

    # Reduced in chunk order as the chunks arrive: the same sums whatever the
    # number of threads, and one chunk's statistics held at a time.
    fold = _statistics_fold(n_components, n_features, covariance_type)
    totals = _map_log_prob(
        X,
        terms,
        statistics,
        window=_NEGLIGIBLE_NATS,
        chunk_size=chunk_size,
        fold=fold,
    )
    objective, log_likelihood, nk, scatter, U = totals or fold(None, ())
    statistics = (objective, log_likelihood, nk, _symmetrise(scatter, covariance_type))
    if first_moment:
        return (*statistics, U, terms["shift"])
    return statistics


def _mean_covariance(weights, covariances, covariance_type):
    """``sum_k pi_k Sigma_k`` in the layout of :func:`_pooled_covariance`."""
    if covariance_type == "tied":
        return covariances
    if covariance_type == "full":
        return np.einsum("k,kij->ij", weights, covariances)
    return weights @ covariances


def _prior_scale(covariance_prior, covariance_type, shrinkage, reg_covar):
    """``s (Sigma_0 + reg_covar)`` per feature: the accuracy scale of the scatter."""
    if covariance_prior is None or shrinkage == 0.0:
        return 0.0
    prior = np.asarray(covariance_prior, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        prior = np.diag(prior)
    with np.errstate(over="ignore"):  # inf only makes the check pass
        return shrinkage * (prior + reg_covar)


def _precision_matrices(precisions_cholesky, covariance_type):
    """Precisions from their Cholesky factors, in the layout of the covariances."""
    P = precisions_cholesky
    if covariance_type == "full":
        return P @ P.transpose(0, 2, 1)
    if covariance_type == "tied":
        return P @ P.T
    return P**2


def _apply_precisions(precisions, covariance_type, M):
    """``P_k m_k`` for every row ``m_k`` of ``M`` (shape (K, d))."""
    if covariance_type == "full":
        return np.einsum("kij,kj->ki", precisions, M)
    if covariance_type == "tied":
        return M @ precisions
    if covariance_type == "diag":
        return precisions * M
    return precisions[:, np.newaxis] * M


def _mean_penalty(means, anchors, laplacian):
    """``tr((mu - W)^T L (mu - W)) / 2``, the roughness of the means' deviation."""
    deviation = means - anchors
    return 0.5 * float(np.sum(deviation * (laplacian @ deviation)))


def _update_means(
    nk, U, shift, means, precisions, covariance_type, *, stiffness, anchors, laplacian
):
    """M-step of the means under the anchored grid prior.

    Maximises ``sum_k sum_i r_ik log N(x_i | mu_k, Sigma_k) - stiffness / 2 *
    tr((mu - W)^T L (mu - W))`` over the means with the covariances fixed,
    i.e. solves ``N_k P_k mu_k + stiffness [L (mu - W)]_k = P_k S_k`` (with
    ``S_k = U_k + N_k shift``). ``stiffness=0`` gives the weighted means
    ``S_k / N_k`` (components without responsibility keep their mean);
    otherwise preconditioned conjugate gradients started at the current means
    solve the coupled system. Every conjugate-gradient step lowers the
    quadratic it minimises, so the update never decreases the objective, even
    if it stops before full convergence. Returns the new means.
    """
    current = means - shift
    if stiffness == 0.0:
        new = current.copy()
        occupied = nk > 0.0
        new[occupied] = U[occupied] / nk[occupied, np.newaxis]
        return new + shift

    def apply(M):
        return nk[:, np.newaxis] * _apply_precisions(
            precisions, covariance_type, M
        ) + stiffness * (laplacian @ M)

    if covariance_type == "full":
        diagonal = np.diagonal(precisions, axis1=1, axis2=2)
    elif covariance_type == "tied":
        diagonal = np.diag(precisions)[np.newaxis, :]
    elif covariance_type == "diag":
        diagonal = precisions
    else:
        diagonal = precisions[:, np.newaxis]
    diagonal = (
        nk[:, np.newaxis] * diagonal + stiffness * laplacian.diagonal()[:, np.newaxis]
    )
    inverse = np.where(diagonal > 0.0, 1.0 / np.where(diagonal > 0, diagonal, 1), 0.0)
    data_rhs = _apply_precisions(precisions, covariance_type, U)
    rhs = data_rhs + stiffness * (laplacian @ (anchors - shift))
    solution = current.copy()
    residual = rhs - apply(solution)
    # Relative to the data's side of the system: the prior's side grows with
    # the stiffness, while the means' common shift is set by the data alone.
    target = _MEAN_RTOL * np.linalg.norm(data_rhs)
    z = inverse * residual
    direction = z.copy()
    rz = float(np.vdot(residual, z))
    for _ in range(_MEAN_MAX_ITER):
        if not np.linalg.norm(residual) > target:
            break
        product = apply(direction)
        curvature = float(np.vdot(direction, product))
        if not curvature > 0.0:
            break
        step = rz / curvature
        solution += step * direction
        residual -= step * product
        z = inverse * residual
        rz, rz_old = float(np.vdot(residual, z)), rz
        direction = z + (rz / rz_old) * direction
    return solution + shift


def _scaled_anchors(prototypes, means, laplacian):
    """Anchors ``c + b (W - c)`` with the scale ``b`` that suits ``means`` best.

    ``c`` is the centroid of the prototypes ``W`` and ``b`` minimises the prior's
    roughness ``tr((mu - c - b (W - c))^T L (mu - c - b (W - c)))``, i.e.
    ``b = tr((W - c)^T L mu) / tr((W - c)^T L (W - c))`` (1 when the prototypes
    are all equal). The prior thus penalises the means' departures from a
    uniformly expanded or contracted map, not the expansion itself: the
    neighbourhood smoothing of the map contracts its prototypes, and anchors
    that keep this contraction would keep the mixture's spread below the
    data's. A conditional maximisation step of ECM: it never lowers the
    objective.
    """
    centre = prototypes.mean(axis=0)
    centred = prototypes - centre
    rough = laplacian @ centred
    denominator = float(np.sum(rough * centred))
    if not denominator > 0.0:
        return prototypes
    return centre + (float(np.sum(rough * means)) / denominator) * centred


def _moved_scatter(nk, scatter, first, delta, covariance_type):
    """Scatter around ``mu + delta`` from the scatter around ``mu``.

    ``first`` is ``sum_i r_ik (x_i - mu_k)``: ``S'_k = S_k - delta_k b_k^T -
    b_k delta_k^T + N_k delta_k delta_k^T`` (clipped at zero on the diagonal,
    where rounding could leave a tiny negative value).
    """
    if covariance_type in ("full", "tied"):
        cross = np.einsum("ki,kj->kij", delta, first)
        moved = np.einsum("k,ki,kj->kij", nk, delta, delta) - cross
        moved -= cross.transpose(0, 2, 1)
        if covariance_type == "tied":
            moved = moved.sum(axis=0)
        scatter = scatter + moved
        diagonal = np.einsum("...ii->...i", scatter)
        np.maximum(diagonal, 0.0, out=diagonal)
        return scatter
    moved = nk[:, np.newaxis] * delta**2 - 2.0 * delta * first
    if covariance_type == "spherical":
        moved = moved.mean(axis=1)
    return np.maximum(scatter + moved, 0.0)


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
    mean_stiffness=np.inf,
    laplacian=None,
    e_step=None,
):
    """EM for a Gaussian mixture whose means are pinned or tied to a grid.

    Maximises the penalised objective described in the module docstring. The
    E-step posteriors carry the factor ``exp(-reg_covar / 2 * tr(Sigma_k^{-1}))``;
    the M-step sets ``pi_k = (N_k + alpha) / (n + K alpha)`` (unless
    ``update_weights=False``) and ``Sigma_k = (S_k + s Sigma_0) / (N_k + s) +
    reg_covar I``, its exact maximiser, so the objective never decreases.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data. With ``e_step``, only ``X.shape`` is read (a dask array
        with known chunks, say).

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

    mean_stiffness : float, default=np.inf
        Strength ``lambda`` of the anchored grid prior on the means. ``inf``
        pins them to ``means``; otherwise they move, and the objective gains
        the term ``-lambda / (2 n) tr((mu - A)^T L (mu - A))`` with ``L`` the
        ``laplacian`` and anchors ``A = c + b (W - c)``: the initial ``means``
        ``W`` about their centroid ``c``, scaled by a free factor ``b`` (see
        :func:`_scaled_anchors`). ECM: each iteration updates the weights,
        then ``b``, then the means with the covariances fixed
        (:func:`_update_means`), then the covariances around the new means;
        each step maximises the objective over its parameters, so the
        objective never decreases. ``0`` gives an ordinary (penalised on the
        weights and covariances) mixture started at ``W``.

    laplacian : sparse matrix of shape (n_components, n_components), default=None
        Graph Laplacian of the grid; required when ``mean_stiffness`` is finite
        and positive.

    e_step : callable, default=None
        Computes the E-step statistics:
        ``e_step(weights, means, precisions_cholesky, covariance_type,
        **options)`` returns what :func:`_e_step_statistics` returns for ``X``
        with these arguments. By default :func:`_e_step_statistics` on ``X``;
        another callable can sum the statistics of blocks of samples held
        elsewhere (``somgen._dask``), the M-step running on their sums.

    Returns
    -------
    result : dict
        ``weights`` (n_components,), ``means``, ``covariances``,
        ``precisions_cholesky``,
        ``converged`` (bool), ``n_iter`` (number of M-steps), ``lower_bound``
        (per-sample objective of the returned parameters), ``history``
        (ndarray of the objective before the first and after every M-step,
        ``history[-1] == lower_bound``), ``log_likelihood`` (mean plain
        log-likelihood of the returned parameters) and ``covariance_prior``
        (the ``Sigma_0`` used).
    """
    _check_covariance_type(covariance_type)
    n_samples, n_features = X.shape
    if e_step is None:
        e_step = partial(_e_step_statistics, X)
    anchors = np.asarray(means, dtype=np.float64)
    prototypes = means = anchors
    moving = bool(mean_stiffness < np.inf)
    if moving and mean_stiffness > 0.0 and laplacian is None:
        raise ValueError("A finite positive mean_stiffness needs the grid laplacian.")
    weights = np.array(weights_init, dtype=np.float64)
    covariances = np.array(covariances_init, dtype=np.float64)
    precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
    e_step_options = {
        "reg_covar": reg_covar,
        "chunk_size": chunk_size,
        "first_moment": moving,
    }
    if covariance_prior is not None:
        covariance_prior = _check_covariance_prior(
            covariance_prior, covariance_type, n_features
        )
        scale = covariance_prior
    else:
        # Sigma_0 comes from the first E-step; until then, the mean initial
        # covariance sets the accuracy its scatter needs (see _soft_scatter).
        scale = _mean_covariance(weights, covariances, covariance_type)
    e_step_options["prior"] = _prior_scale(scale, covariance_type, shrinkage, reg_covar)

    objective, log_likelihood, nk, scatter, *moments = e_step(
        weights, means, precisions_chol, covariance_type, **e_step_options
    )
    if covariance_prior is None:
        covariance_prior = _pooled_covariance(nk, scatter, covariance_type)
        e_step_options["prior"] = _prior_scale(
            covariance_prior, covariance_type, shrinkage, reg_covar
        )
    # The log prior is accumulated per sample (pseudo-counts divided by n
    # first), so that a huge alpha or s cannot overflow it on the way.
    prior_options = {
        "n_features": n_features,
        "shrinkage": shrinkage / n_samples,
        "weight_concentration": weight_concentration / n_samples,
        "reg_covar": reg_covar,
    }

    penalty_scale = (
        mean_stiffness / n_samples if moving and mean_stiffness > 0.0 else 0.0
    )

    def prior_terms(weights, precisions_chol, means):
        terms = _log_prior_terms(
            weights if update_weights else None,
            precisions_chol,
            covariance_prior,
            covariance_type,
            **prior_options,
        )
        if penalty_scale == 0.0:
            return terms
        penalty = -penalty_scale * _mean_penalty(means, anchors, laplacian)
        return (*terms, np.array([penalty]))

    def penalised(objective, log_prior_terms):
        log_prior = sum(float(terms.sum()) for terms in log_prior_terms)
        return objective / n_samples + log_prior

    log_prior_terms = prior_terms(weights, precisions_chol, means)
    lower_bound = penalised(objective, log_prior_terms)
    history = [lower_bound]
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if update_weights:
            weights = _dirichlet_weights(nk, weight_concentration)
        if moving:
            U, shift = moments
            if mean_stiffness > 0.0:
                anchors = _scaled_anchors(prototypes, means, laplacian)
            new_means = _update_means(
                nk,
                U,
                shift,
                means,
                _precision_matrices(precisions_chol, covariance_type),
                covariance_type,
                stiffness=mean_stiffness,
                anchors=anchors,
                laplacian=laplacian,
            )
            first = U - nk[:, np.newaxis] * (means - shift)
            scatter = _moved_scatter(
                nk, scatter, first, new_means - means, covariance_type
            )
            means = new_means
        covariances = _covariances_from_scatter(
            nk,
            scatter,
            covariance_prior,
            covariance_type,
            shrinkage=shrinkage,
            reg_covar=reg_covar,
        )
        precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
        new_objective, log_likelihood, nk, scatter, *moments = e_step(
            weights, means, precisions_chol, covariance_type, **e_step_options
        )
        new_prior_terms = prior_terms(weights, precisions_chol, means)
        change = _change(
            (np.float64(new_objective / n_samples), *new_prior_terms),
            (np.float64(objective / n_samples), *log_prior_terms),
        )
        objective, log_prior_terms = new_objective, new_prior_terms
        lower_bound = penalised(objective, log_prior_terms)
        history.append(lower_bound)
        if change < tol:
            converged = True
            break

    return {
        "weights": weights,
        "means": means,
        "anchors": anchors,
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
    """Validate unit indices or a boolean mask; return the sorted unique indices."""
    units = np.asarray(units)
    if units.dtype == bool:
        if units.shape != (n_components,):
            raise ValueError(
                f"A boolean units mask must have shape ({n_components},), one "
                f"entry per unit of the map; got shape {units.shape}. Pass "
                "integer unit indices or a mask over all the units."
            )
        if not units.any():
            raise ValueError("The units mask selects no unit (it has no True entry).")
        return np.flatnonzero(units)
    if units.ndim == 0:
        units = units.reshape(1)
    if units.ndim != 1 or units.size == 0:
        raise ValueError(
            "units must be a non-empty 1-D sequence of unit indices, got an "
            f"array of shape {units.shape}."
        )
    if not np.issubdtype(units.dtype, np.integer):
        raise ValueError(
            "units must be integer unit indices or a boolean mask of length "
            f"{n_components}, got dtype {units.dtype}."
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

    units : array-like of int or bool, default=None
        Components to draw from (indices, or a boolean mask of length
        ``n_components``); their weights are renormalised. All by default.

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


def _tied_marginal(precisions_cholesky, log_det, observed, missing):
    """Factor of the observed block of a tied Gaussian, and its gain.

    With ``Lambda = P P^T`` the precision and ``P[missing].T = Q R`` a thin QR
    decomposition, ``Lambda_mm = R^T R`` and the precision of the observed
    block is the Schur complement ``Lambda_oo - Lambda_om Lambda_mm^{-1}
    Lambda_mo = F F^T`` with ``F = P[observed] (I - Q Q^T)``, while ``log det
    Sigma_oo = log det Sigma + log det Lambda_mm``. The conditional mean of the
    missing block is ``mu_m + G (x_o - mu_o)`` with the gain ``G =
    -Lambda_mm^{-1} Lambda_mo = -R^{-1} (P[observed] Q)^T``.

    Returns
    -------
    factor : ndarray of shape (n_observed, n_features)

    log_det : float
        ``-log det(Sigma_oo) / 2``.

    gain : ndarray of shape (n_missing, n_observed)
    """
    P = precisions_cholesky
    Q, R = np.linalg.qr(P[missing].T)
    P_obs_Q = P[observed] @ Q
    factor = P[observed] - P_obs_Q @ Q.T
    log_det_obs = log_det - np.log(np.abs(np.diag(R))).sum()
    gain = -np.linalg.solve(R, P_obs_Q.T)
    return factor, float(log_det_obs), gain


def _pattern_terms(terms, precisions, log_det, log_weights, observed, missing):
    """Kernel terms of the observed block of full Gaussians, and the gains.

    As in :func:`_tied_marginal`, with ``P_k[missing].T = Q_k R_k``, the
    observed block has precision ``F_k F_k^T``, ``F_k = P_k[observed] (I - Q_k
    Q_k^T)``. On samples and means whose missing entries are set to zero,
    ``F_k^T (x_o - mu_k,o) = (I - Q_k Q_k^T) P_k^T (x - mu_k)``: the GEMM operand
    of the whole model (``terms``, built once) serves every pattern, followed by
    a deflation, and a pattern costs ``O(K d m^2)`` beyond a few gathers.

    Parameters
    ----------
    terms : dict
        :func:`_gaussian_terms` of the full model, without weights.

    precisions : ndarray of shape (n_components, n_features, n_features)
        ``P_k P_k^T``.

    log_det : ndarray of shape (n_components,)
        ``-log det(Sigma_k) / 2``.

    log_weights : ndarray of shape (n_components,)

    observed, missing : ndarray of int

    Returns
    -------
    pattern_terms : dict
        For samples with zeros in place of the missing entries.

    gains : ndarray of shape (n_components, n_missing, n_observed)
        ``-Lambda_mm^{-1} Lambda_mo``.
    """
    P = terms["factors"]
    n_components, _, rank = P.shape
    Q, R = np.linalg.qr(P[:, missing, :].transpose(0, 2, 1))
    log_det_obs = log_det - np.log(np.abs(np.diagonal(R, axis1=1, axis2=2))).sum(1)
    rows_missing = precisions[:, missing]
    gains = -np.linalg.solve(rows_missing[:, :, missing], rows_missing[:, :, observed])

    bias = log_det_obs - 0.5 * observed.size * np.log(2.0 * np.pi) + log_weights
    live = np.isfinite(bias)
    means = terms["means"].copy()
    means[:, missing] = 0.0
    shift = terms["shift"].copy()
    shift[missing] = 0.0
    centred = means - shift
    # Drop the missing coordinates of the centred means from their projections.
    centred_missing = terms["means"][:, missing] - terms["shift"][missing]
    projected_means = terms["projected_means"].reshape(n_components, rank)
    projected_means = projected_means - np.einsum(
        "km,kml->kl", centred_missing, P[:, missing, :]
    )
    pattern = dict(terms)
    pattern.update(
        means=means,
        shift=shift,
        bias=bias,
        live=live,
        dead=np.flatnonzero(~live),
        live_bias=np.where(live, bias, 0.0),
        projected_means=projected_means.ravel(),
        mean_bound=terms["norm_bound"] * np.linalg.norm(centred, axis=1),
        deflation=Q,
        # The deflation adds 2 |missing| roundings to each projected entry.
        gamma=_rounding_factor(terms["means"].shape[1] + 2 * missing.size + 1),
    )
    return pattern, gains


def _marginal_terms(weights, means, covariances, covariance_type, precisions_cholesky):
    """What every missingness pattern shares: ``(precisions_cholesky,
    log_weights, log_det, full_terms)``.

    ``precisions_cholesky`` is computed from ``covariances`` when None;
    ``full_terms`` (the whole model's kernel terms and precision matrices) is
    only needed, and only computed, for ``'full'``.
    """
    if precisions_cholesky is None:
        precisions_cholesky = _compute_precision_cholesky(covariances, covariance_type)
    log_det = _log_det_precision_cholesky(
        precisions_cholesky, covariance_type, means.shape[1]
    )
    full_terms = None
    if covariance_type == "full":
        full_terms = (
            _gaussian_terms(means, precisions_cholesky, "full"),
            precisions_cholesky @ precisions_cholesky.transpose(0, 2, 1),
        )
    return precisions_cholesky, _log_weights(weights), log_det, full_terms


def _missingness_patterns(missing, incomplete):
    """Yield ``(rows, observed, missing_features)`` per distinct pattern of NaNs
    among the ``incomplete`` rows, patterns in sorted order, rows ascending."""
    patterns, inverse = np.unique(missing[incomplete], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(patterns) + 1))
    for p, pattern in enumerate(patterns):
        rows = incomplete[order[bounds[p] : bounds[p + 1]]]
        yield rows, np.flatnonzero(~pattern), np.flatnonzero(pattern)


def _conditional_impute(
    X,
    weights,
    means,
    covariances,
    covariance_type,
    *,
    precisions_cholesky=None,
    chunk_size=None,
):
    """Replace NaNs by their conditional mean given the observed entries.

    For a row with observed entries ``o`` and missing entries ``m``, the value is
    ``sum_k p(k | x_o) (mu_k,m + Sigma_k,mo Sigma_k,oo^{-1} (x_o - mu_k,o))``
    with ``p(k | x_o)`` from the marginal densities on ``o``. Rows are grouped
    by missingness pattern. For ``'full'`` and ``'tied'``, the marginals and the
    gains come from the precision factors (see :func:`_pattern_terms`), so a
    pattern costs ``O(n_components * n_features * n_missing^2)`` beyond gathers,
    and each row one matrix-vector product per component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data with NaN marking missing entries.

    weights : ndarray of shape (n_components,)

    means : ndarray of shape (n_components, n_features)

    covariances : ndarray
        In the layout of ``covariance_type``.

    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    precisions_cholesky : ndarray, default=None
        Cholesky factors of the precisions of ``covariances``, computed if None.

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
    precisions_cholesky, log_weights, log_det, full_terms = _marginal_terms(
        weights, means, covariances, covariance_type, precisions_cholesky
    )
    # One BLAS pin for all the patterns (the chunk maps nest inside it).
    with _single_threaded_blas():
        for rows, obs, miss in _missingness_patterns(missing, incomplete):
            if obs.size == 0:
                X[np.ix_(rows, miss)] = weights @ means
                continue
            _impute_pattern(
                X,
                rows,
                obs,
                miss,
                log_weights=log_weights,
                means=means,
                precisions_cholesky=precisions_cholesky,
                log_det=log_det,
                covariance_type=covariance_type,
                chunk_size=chunk_size,
                full_terms=full_terms,
            )
    return X


def _observed_marginal(
    X,
    rows,
    obs,
    miss,
    *,
    log_weights,
    means,
    precisions_cholesky,
    log_det,
    covariance_type,
    full_terms,
):
    """Kernel terms of the marginal mixture on the observed features ``obs``.

    Returns ``(terms, X_known, gain)``: the terms of :func:`_gaussian_terms` for
    the rows' observed entries, the matching operand (for ``'full'`` the rows
    with zeros in place of the missing entries, otherwise their observed
    columns), and the regression gains ``Sigma_mo Sigma_oo^{-1}`` (per
    component for ``'full'``, shared for ``'tied'``, None otherwise).
    """
    gain = None
    if covariance_type == "full":
        terms, gain = _pattern_terms(*full_terms, log_det, log_weights, obs, miss)
        X_known = np.zeros((rows.size, X.shape[1]))
        X_known[:, obs] = X[np.ix_(rows, obs)]
        return terms, X_known, gain
    if covariance_type == "tied":
        factors, log_det_obs, gain = _tied_marginal(
            precisions_cholesky, log_det, obs, miss
        )
    elif covariance_type == "diag":
        factors = precisions_cholesky[:, obs]
        log_det_obs = np.log(factors).sum(axis=1)
    else:
        factors = precisions_cholesky
        log_det_obs = obs.size * np.log(factors)
    terms = _gaussian_terms(
        means[:, obs],
        factors,
        covariance_type,
        log_weights=log_weights,
        log_det=log_det_obs,
    )
    return terms, X[np.ix_(rows, obs)], gain


def _impute_pattern(
    X,
    rows,
    obs,
    miss,
    *,
    log_weights,
    means,
    precisions_cholesky,
    log_det,
    covariance_type,
    chunk_size,
    full_terms,
):
    """Fill, in place, the entries ``miss`` of the rows ``rows`` of ``X``."""
    n_components = means.shape[0]
    terms, X_known, gain = _observed_marginal(
        X,
        rows,
        obs,
        miss,
        log_weights=log_weights,
        means=means,
        precisions_cholesky=precisions_cholesky,
        log_det=log_det,
        covariance_type=covariance_type,
        full_terms=full_terms,
    )
    if covariance_type == "full":
        gains = gain
        shift = terms["shift"][obs]
        # mu_k,m + G_k (x_o - mu_k,o) = offsets_k + G_k (x_o - shift).
        stacked_gains = np.ascontiguousarray(gains.transpose(2, 0, 1)).reshape(
            obs.size, n_components * miss.size
        )
        offsets = means[:, miss] - np.einsum("kmo,ko->km", gains, means[:, obs] - shift)

    def fill(sub, resp, offset, design):
        _normalise_rows(resp, offset)
        x_obs = X[np.ix_(rows[sub], obs)]
        if covariance_type == "full":
            projected = ((x_obs - shift) @ stacked_gains).reshape(
                -1, n_components, miss.size
            )
            filled = resp @ offsets + np.einsum("ik,ikm->im", resp, projected)
        elif covariance_type == "tied":
            # The conditional mean is affine in x_o with a shared gain.
            filled = resp @ means[:, miss] + (x_obs - resp @ means[:, obs]) @ gain.T
        else:
            filled = resp @ means[:, miss]
        X[np.ix_(rows[sub], miss)] = filled

    if chunk_size is None:
        row_floats = _row_floats(terms) + n_components * miss.size
        chunk_size = max(1, _CHUNK_FLOATS // row_floats)
    _map_log_prob(X_known, terms, fill, window=_NEGLIGIBLE_NATS, chunk_size=chunk_size)


def _conditional_factors(precisions_cholesky, covariance_type, obs, miss):
    """Gains and square roots of the conditional covariances of ``miss``.

    With ``P_k[miss].T = Q_k R_k`` (thin QR), ``Lambda_k,mm = R_k^T R_k``, so the
    conditional covariance ``Sigma_k,mm - Sigma_k,mo Sigma_k,oo^{-1} Sigma_k,om
    = Lambda_k,mm^{-1}`` (a Schur complement) equals ``A_k A_k^T`` with ``A_k =
    R_k^{-1}``, and the gain ``Sigma_k,mo Sigma_k,oo^{-1} = -Lambda_k,mm^{-1}
    Lambda_k,mo`` is ``-R_k^{-1} (P_k[obs] Q_k)^T`` (see :func:`_tied_marginal`).

    Returns
    -------
    gains : ndarray of shape ([n_components,] n_missing, n_observed) or None
        None for ``'diag'`` and ``'spherical'``, whose gains are zero.

    roots : ndarray
        ``A_k`` of shape ([n_components,] n_missing, n_missing) for ``'full'``
        (``'tied'``); standard deviations of shape (n_components, n_missing)
        for ``'diag'`` and (n_components,) for ``'spherical'``.
    """
    if covariance_type == "diag":
        return None, 1.0 / precisions_cholesky[:, miss]
    if covariance_type == "spherical":
        return None, 1.0 / precisions_cholesky
    P = precisions_cholesky
    if covariance_type == "tied":
        P = P[np.newaxis]
    Q, R = np.linalg.qr(P[:, miss, :].transpose(0, 2, 1))
    roots = np.triu(np.linalg.inv(R))
    gains = -np.linalg.solve(R, (P[:, obs, :] @ Q).transpose(0, 2, 1))
    if covariance_type == "tied":
        return gains[0], roots[0]
    return gains, roots


def _choose_components(resp, uniforms):
    """Component drawn with probabilities ``resp`` for each uniform in (0, 1].

    ``resp`` has shape (n_samples, n_components) and ``uniforms`` shape
    (n_draws, n_samples); returns the (n_draws, n_samples) indices by inversion
    of the cumulative sums. A component with zero probability is never drawn:
    the target ``u * total`` is positive and at most the total.
    """
    cumulative = np.cumsum(resp, axis=1)
    targets = uniforms * cumulative[:, -1]
    return (cumulative < targets[..., np.newaxis]).sum(axis=-1)


def _conditional_sample(
    rng,
    X,
    n_draws,
    weights,
    means,
    covariances,
    covariance_type,
    *,
    precisions_cholesky=None,
    chunk_size=None,
):
    """Draw the NaNs of ``X`` from their conditional law given the observed entries.

    For a row with observed entries ``o`` and missing entries ``m``, each draw
    picks a component ``k`` with probability ``p(k | x_o)`` (the posterior under
    the marginal on ``o``, computed by the exact kernels of
    :func:`_conditional_impute`), then ``x_m ~ N(mu_k,m + Sigma_k,mo
    Sigma_k,oo^{-1} (x_o - mu_k,o), Sigma_k,mm - Sigma_k,mo Sigma_k,oo^{-1}
    Sigma_k,om)``. Rows are grouped by missingness pattern and processed by
    chunks of rows. The random numbers of a pattern are drawn before its chunks
    are computed, so the draws depend on ``rng`` only, not on the thread count.

    Parameters
    ----------
    rng : numpy.random.RandomState

    X : ndarray of shape (n_samples, n_features)
        Data with NaN marking missing entries.

    n_draws : int
        Number of draws, at least 1.

    weights, means, covariances, covariance_type, precisions_cholesky
        As in :func:`_conditional_impute`.

    chunk_size : int, default=None
        Rows per chunk within a pattern.

    Returns
    -------
    X_drawn : ndarray of shape (n_draws, n_samples, n_features)
        ``X_drawn[j]`` is ``X`` with its NaNs replaced by the ``j``-th draw;
        observed entries are copied unchanged. Fully missing rows are draws
        from the whole mixture.
    """
    _check_covariance_type(covariance_type)
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}.")
    X = np.asarray(X, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    out = np.empty((n_draws,) + X.shape)
    out[...] = X
    missing = np.isnan(X)
    incomplete = np.flatnonzero(missing.any(axis=1))
    if incomplete.size == 0:
        return out
    precisions_cholesky, log_weights, log_det, full_terms = _marginal_terms(
        weights, means, covariances, covariance_type, precisions_cholesky
    )
    with _single_threaded_blas():
        for rows, obs, miss in _missingness_patterns(missing, incomplete):
            # All random numbers of the pattern, in a fixed order.
            uniforms = 1.0 - rng.random_sample((n_draws, rows.size))
            noise = rng.standard_normal((n_draws, rows.size, miss.size))
            _sample_pattern(
                out,
                X,
                rows,
                obs,
                miss,
                uniforms,
                noise,
                weights=weights,
                log_weights=log_weights,
                means=means,
                precisions_cholesky=precisions_cholesky,
                log_det=log_det,
                covariance_type=covariance_type,
                chunk_size=chunk_size,
                full_terms=full_terms,
            )
    return out


def _sample_pattern(
    out,
    X,
    rows,
    obs,
    miss,
    uniforms,
    noise,
    *,
    weights,
    log_weights,
    means,
    precisions_cholesky,
    log_det,
    covariance_type,
    chunk_size,
    full_terms,
):
    """Fill, in place, the entries ``miss`` of the rows ``rows`` of every draw."""
    n_components = means.shape[0]
    gains, roots = _conditional_factors(precisions_cholesky, covariance_type, obs, miss)
    if covariance_type == "full":
        # mu_k,m + G_k (x_o - mu_k,o) = offsets_k + G_k (x_o - shift).
        shift = means[:, obs].mean(axis=0)
        stacked_gains = np.ascontiguousarray(gains.transpose(2, 0, 1)).reshape(
            obs.size, n_components * miss.size
        )
        offsets = means[:, miss] - np.einsum("kmo,ko->km", gains, means[:, obs] - shift)

    def draw(sub, resp):
        """Draws for the rows ``rows[sub]``, given their posteriors ``resp``."""
        components = _choose_components(resp, uniforms[:, sub])
        z = noise[:, sub]
        x_obs = X[np.ix_(rows[sub], obs)]
        if covariance_type == "full":
            projected = ((x_obs - shift) @ stacked_gains).reshape(
                -1, n_components, miss.size
            )
            index = np.arange(projected.shape[0])
            centre = offsets[components] + projected[index, components]
            z = np.einsum("drmj,drj->drm", roots[components], z)
        elif covariance_type == "tied":
            centre = means[:, miss][components] + np.einsum(
                "dro,mo->drm", x_obs - means[:, obs][components], gains
            )
            z = z @ roots.T
        elif covariance_type == "diag":
            centre = means[:, miss][components]
            z = z * roots[components]
        else:
            centre = means[:, miss][components]
            z = z * roots[components][..., np.newaxis]
        out[:, rows[sub, np.newaxis], miss] = centre + z

    n_draws = uniforms.shape[0]
    if obs.size == 0:
        # The posterior given nothing is the prior.
        for sub in _chunks(rows.size, n_draws * (n_components + miss.size**2)):
            draw(sub, np.broadcast_to(weights, (sub.stop - sub.start, n_components)))
        return

    terms, X_known, _ = _observed_marginal(
        X,
        rows,
        obs,
        miss,
        log_weights=log_weights,
        means=means,
        precisions_cholesky=precisions_cholesky,
        log_det=log_det,
        covariance_type=covariance_type,
        full_terms=full_terms,
    )

    def fill(sub, resp, offset, design):
        _normalise_rows(resp, offset)
        draw(sub, resp)

    if chunk_size is None:
        # Beyond the kernel's temporaries: the component comparisons (bytes),
        # the gathered means, noise and factors of every draw.
        per_draw = n_components // 8 + 2 + 4 * miss.size
        if covariance_type == "full":
            per_draw += miss.size**2
        row_floats = _row_floats(terms) + n_components * miss.size
        chunk_size = max(1, _CHUNK_FLOATS // (row_floats + n_draws * per_draw))
    _map_log_prob(X_known, terms, fill, window=_NEGLIGIBLE_NATS, chunk_size=chunk_size)


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
