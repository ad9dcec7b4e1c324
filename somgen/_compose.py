"""Densities that compose with invertible preprocessing.

A density fitted on transformed data ``T(X)`` is a density on the transformed
space. :class:`TransformedDensity` adds the log-Jacobian of ``T`` so that its
``score_samples`` is a density on the original space, and maps samples back with
``inverse_transform``. :func:`sample_pipeline` maps the samples of a fitted
:class:`~sklearn.pipeline.Pipeline` back to the data space.
"""

import copy
import inspect
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, clone
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from somgen.utils._sklearn_compat import (
    HasMethods,
    Interval,
    StrOptions,
    _fit_context,
    validate_params,
)
from somgen.utils._validation import _restore_on_failure

__all__ = ["TransformedDensity", "sample_pipeline"]


# ----------------------------------------------------------------- log-Jacobians
# Each function takes a fitted transformer and returns log|det dT/dx| as a float.
# They read the very attributes that the transformer's ``transform`` uses.
def _log_det_inverse_scale(scale):
    """T(x) = (x - c) / scale; ``scale`` is None when the step does not scale."""
    if scale is None:
        return 0.0
    return float(-np.sum(np.log(np.asarray(scale, dtype=np.float64))))


def _log_det_divide_by_scale(transformer):
    # StandardScaler, RobustScaler, MaxAbsScaler: X / scale_ (scale_ is None
    # without scaling; zero-variance features already have scale_ == 1)
    return _log_det_inverse_scale(transformer.scale_)


def _log_det_min_max_scaler(transformer):
    # T(x) = x * scale_ + min_
    return float(np.sum(np.log(np.asarray(transformer.scale_, dtype=np.float64))))


def _log_det_pca(transformer):
    components = np.asarray(transformer.components_, dtype=np.float64)
    n_components, n_features = components.shape
    if n_components != n_features:
        raise ValueError(
            "TransformedDensity needs an invertible transformer, but the PCA kept "
            f"{n_components} of {n_features} components (fitted on "
            f"n_samples={transformer.n_samples_}); use n_components=None or "
            f"n_components={n_features}, with at least as many samples as features."
        )
    # T(x) = (x - mean_) @ components_.T / s; |det components_| = 1 up to rounding
    log_det = float(np.linalg.slogdet(components)[1])
    if transformer.whiten:
        # the same clipping as PCA.transform
        scale = np.sqrt(np.asarray(transformer.explained_variance_, np.float64))
        scale = np.maximum(scale, np.finfo(scale.dtype).eps)
        log_det -= float(np.sum(np.log(scale)))
    return log_det


def _check_min_max_scaler(transformer):
    if transformer.clip:
        raise ValueError(
            "TransformedDensity needs an invertible transformer, but "
            "MinMaxScaler(clip=True) is not invertible; use clip=False."
        )


# exact types: a subclass may change ``transform``
_LOG_DET_JACOBIAN = {
    StandardScaler: _log_det_divide_by_scale,
    MinMaxScaler: _log_det_min_max_scaler,
    MaxAbsScaler: _log_det_divide_by_scale,
    RobustScaler: _log_det_divide_by_scale,
    PCA: _log_det_pca,
}
_PRE_FIT_CHECKS = {MinMaxScaler: _check_min_max_scaler}
_SUPPORTED = (
    "'passthrough', StandardScaler, MinMaxScaler (clip=False), MaxAbsScaler, "
    "RobustScaler and PCA keeping all components (whiten or not)"
)


def _check_transformer(transformer):
    """Raise unless ``transformer`` is one whose log-Jacobian is known."""
    if isinstance(transformer, str):  # "passthrough", validated by the constraints
        return
    if type(transformer) not in _LOG_DET_JACOBIAN:
        raise TypeError(
            f"TransformedDensity does not know the Jacobian of {transformer!r}. "
            f"Supported transformers (affine and invertible): {_SUPPORTED}."
        )
    check = _PRE_FIT_CHECKS.get(type(transformer))
    if check is not None:
        check(transformer)


# --------------------------------------------------------------------- sampling
def _check_n_samples(n_samples):
    if (
        isinstance(n_samples, bool)
        or not isinstance(n_samples, Integral)
        or n_samples < 1
    ):
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
    return int(n_samples)


def _draw(density, n_samples, random_state, name):
    """Samples (an array) from any fitted ``density.sample``.

    ``sample`` returns an array (KernelDensity) or a tuple whose first item is
    the array (GaussianMixture, SOMGenerativeModel). A ``random_state`` is passed
    to ``sample`` when it accepts one, and otherwise set on a shallow copy of the
    density (GaussianMixture reads its own ``random_state``).
    """
    if not hasattr(density, "sample"):
        raise TypeError(
            f"{name} ({type(density).__name__}) has no 'sample' method, so it "
            "cannot be sampled from."
        )
    try:
        accepts_seed = "random_state" in inspect.signature(density.sample).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        accepts_seed = False
    if accepts_seed:
        drawn = density.sample(n_samples, random_state=random_state)
    elif random_state is None:
        drawn = density.sample(n_samples)
    elif "random_state" in density.get_params(deep=False):
        seeded = copy.copy(density)
        seeded.random_state = random_state
        drawn = seeded.sample(n_samples)
    else:
        raise TypeError(
            f"{name} ({type(density).__name__}) cannot be seeded: its 'sample' "
            "takes no random_state and it has no random_state parameter; pass "
            "random_state=None."
        )
    if isinstance(drawn, tuple):
        drawn = drawn[0]
    return np.asarray(drawn)


# ------------------------------------------------------------------- estimator
class TransformedDensity(DensityMixin, BaseEstimator):
    r"""Density on the original space of a density fitted after a transformer.

    ``fit`` fits ``transformer`` on ``X`` and ``density`` on ``T(X)``. Then

    .. math::

        \log p_X(x) = \log p_T(T(x)) + \log |\det J_T(x)|,

    so :meth:`score_samples` is a log-density on the **original** units, which
    can be compared across transformers and with models fitted on raw data.
    ``density.score_samples`` alone is a density on the transformed units.
    :meth:`sample` draws from ``density`` and maps back with
    ``inverse_transform``.

    The log-Jacobian is exact and constant for the supported (affine,
    invertible) transformers: ``'passthrough'`` (identity),
    :class:`~sklearn.preprocessing.StandardScaler`,
    :class:`~sklearn.preprocessing.MinMaxScaler` (``clip=False``),
    :class:`~sklearn.preprocessing.MaxAbsScaler`,
    :class:`~sklearn.preprocessing.RobustScaler` and
    :class:`~sklearn.decomposition.PCA` keeping all components, with or without
    whitening. Any other transformer raises an error at ``fit``.

    Parameters
    ----------
    transformer : estimator instance or 'passthrough'
        Affine invertible transformer (see above), cloned at fit.

    density : estimator instance
        Density estimator with ``fit`` and ``score_samples`` (and ``sample`` to
        use :meth:`sample`), e.g. :class:`~somgen.SOMGenerativeModel`,
        :class:`~sklearn.mixture.GaussianMixture` or
        :class:`~sklearn.neighbors.KernelDensity`. Cloned at fit.

    Attributes
    ----------
    transformer_ : estimator instance or None
        Fitted clone of ``transformer``; None for ``'passthrough'``.

    density_ : estimator instance
        Clone of ``density`` fitted on the transformed data.

    log_det_jacobian_ : float
        ``log|det dT/dx|``, added to ``density_.score_samples``.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sample_pipeline : Samples of a fitted pipeline, in data units.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from sklearn.preprocessing import StandardScaler
    >>> from somgen import TransformedDensity
    >>> X = np.random.RandomState(0).normal([10.0, -3.0], [2.0, 0.5], (200, 2))
    >>> model = TransformedDensity(StandardScaler(), GaussianMixture(random_state=0))
    >>> model = model.fit(X)
    >>> log_det = -np.log(X.std(axis=0)).sum()  # StandardScaler: -sum(log(std))
    >>> bool(np.isclose(model.log_det_jacobian_, log_det))
    True
    >>> scaled = model.transformer_.transform(X)
    >>> in_scaled_units = model.density_.score_samples(scaled)
    >>> bool(np.allclose(model.score_samples(X),
    ...                  in_scaled_units + model.log_det_jacobian_))
    True
    >>> X_new = model.sample(1000, random_state=0)
    >>> X_new.mean(axis=0).round()
    array([10., -3.])
    """

    _parameter_constraints: dict = {
        "transformer": [
            HasMethods(["fit", "transform", "inverse_transform"]),
            StrOptions({"passthrough"}),
        ],
        "density": [HasMethods(["fit", "score_samples"])],
    }

    def __init__(self, transformer, density):
        self.transformer = transformer
        self.density = density

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the transformer on ``X`` and the density on the transformed data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, in original units.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        with _restore_on_failure(self):
            return self._fit(X)

    def _fit(self, X):
        _check_transformer(self.transformer)
        X = validate_data(self, X, dtype=np.float64)
        if isinstance(self.transformer, str):
            transformer, X_t, log_det = None, X, 0.0
        else:
            transformer = clone(self.transformer)
            X_t = transformer.fit_transform(X)
            log_det = _LOG_DET_JACOBIAN[type(transformer)](transformer)
        density = clone(self.density).fit(X_t)
        self.transformer_ = transformer
        self.density_ = density
        self.log_det_jacobian_ = log_det
        return self

    def _transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.transformer_ is None:
            return X
        return self.transformer_.transform(X)

    def score_samples(self, X):
        """Log-density at each sample, in the original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate, in original units.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``density_.score_samples(T(X)) + log_det_jacobian_``.
        """
        Z = self._transform(X)
        log_density = self.density_.score_samples(Z)
        return np.asarray(log_density, dtype=np.float64) + self.log_det_jacobian_

    def score(self, X, y=None):
        """Mean log-likelihood of ``X``, in the original units.

        Always the mean of :meth:`score_samples`, whatever the convention of
        ``density.score`` (:class:`~sklearn.neighbors.KernelDensity` returns the
        sum).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to evaluate.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        log_likelihood : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw samples in the original units.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.

        random_state : int, RandomState instance or None, default=None
            Seed for this call, passed to ``density_.sample`` (or set on a copy
            of ``density_`` when its ``sample`` takes none, as for
            :class:`~sklearn.mixture.GaussianMixture`). ``None`` keeps the
            density's own behaviour.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            Samples ``T^{-1}(z)`` with ``z`` drawn from ``density_``. Only the
            array is returned, even when ``density_.sample`` also returns
            component labels.
        """
        check_is_fitted(self)
        n_samples = _check_n_samples(n_samples)
        Z = _draw(self.density_, n_samples, random_state, "density")
        if self.transformer_ is None:
            return Z
        return np.asarray(self.transformer_.inverse_transform(Z))


# --------------------------------------------------------------------- pipeline
@validate_params(
    {
        "pipeline": [Pipeline],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def sample_pipeline(pipeline, n_samples=1, *, random_state=None):
    """Draw samples from a fitted pipeline's last step, in data units.

    The last step's ``sample`` draws in its own (transformed) space; every
    earlier step's ``inverse_transform`` is then applied in reverse order.
    ``None`` and ``'passthrough'`` steps are skipped.

    When the step before the last is a planar :class:`SelfOrganizingMap`, the
    last step models map coordinates: they are drawn from its density truncated
    to the grid (see :func:`~somgen.sample_latent`), not clamped to the
    border prototypes by ``inverse_transform``. Such a pipeline still is not a
    density model of the data (see :ref:`the compose guide <som-latent>`).

    Note that ``pipeline.score_samples`` gives densities in the **transformed**
    units of the last step: they are not densities of the data and change with
    the scaling. For log-densities in data units, use
    :class:`TransformedDensity`, which adds the log-Jacobian of the transformer.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted pipeline whose last step has a ``sample`` method and whose other
        steps have ``inverse_transform``.

    n_samples : int, default=1
        Number of samples.

    random_state : int, RandomState instance or None, default=None
        Seed for this call, passed to the last step's ``sample`` (or set on a
        copy of it when its ``sample`` takes none, as for
        :class:`~sklearn.mixture.GaussianMixture`). ``None`` keeps the last
        step's own behaviour.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Samples in the units of the pipeline's input.

    See Also
    --------
    TransformedDensity : Densities and samples in data units.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.mixture import GaussianMixture
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from somgen import sample_pipeline
    >>> X = np.random.RandomState(0).normal([10.0, -3.0], [2.0, 0.5], (200, 2))
    >>> pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    >>> pipe = pipe.fit(X)
    >>> X_new = sample_pipeline(pipe, 1000, random_state=0)
    >>> X_new.shape
    (1000, 2)
    >>> X_new.mean(axis=0).round()
    array([10., -3.])
    """
    check_is_fitted(pipeline)
    *steps, (last_name, last) = pipeline.steps
    if last is None or isinstance(last, str) or not hasattr(last, "sample"):
        raise TypeError(
            f"The last step {last_name!r} ({type(last).__name__}) of the pipeline "
            "has no 'sample' method."
        )
    for name, step in steps:
        if step is None or isinstance(step, str):
            continue
        if not hasattr(step, "inverse_transform"):
            raise TypeError(
                f"Step {name!r} ({type(step).__name__}) of the pipeline has no "
                "'inverse_transform', so samples cannot be mapped back through it."
            )
    active = [step for _, step in steps if not (step is None or isinstance(step, str))]
    # _latent imports this module: import it here, not at the top.
    from somgen._latent import _is_planar_map, sample_latent

    if active and _is_planar_map(active[-1]):
        # The last step models map coordinates: draw them truncated to the grid,
        # where the map's inverse_transform would clamp them to its border.
        X = sample_latent(last, active[-1], n_samples, random_state=random_state)
    else:
        X = _draw(last, n_samples, random_state, f"The last step {last_name!r}")
    for _, step in reversed(steps):
        if step is None or isinstance(step, str):
            continue
        X = step.inverse_transform(X)
    return np.asarray(X)
