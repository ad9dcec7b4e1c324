"""A density estimator and sampler built on a self-organizing map."""

import warnings
from functools import partial
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn import get_config
from sklearn.base import BaseEstimator, DensityMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold
from sklearn.neighbors import KernelDensity
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from somgen import _dask
from somgen._discrete import _dequantize, _resolve_discrete, _round_to_levels
from somgen._initialization import (
    _MAP_SIZE_CV_MAX_SAMPLES,
    _MAP_SIZE_CV_ROWS,
    _MAP_SIZE_CV_SPLITS,
    _MAP_SIZE_FRACTIONS,
    _data_sized_grid,
    _data_sized_units,
    _grid_shape,
    _principal_variances,
)
from somgen._latent import (
    LATENT_BANDWIDTHS,
    LATENT_CV_SPLITS,
    _dequantized_coords,
    _latent_weights,
)
from somgen._mixture import (
    _absolute_stiffness,
    _compute_precision_cholesky,
    _conditional_impute,
    _conditional_sample,
    _covariances_from_scatter,
    _dirichlet_weights,
    _e_step_statistics,
    _estimate_covariances,
    _n_parameters,
    _pinned_em,
    _pooled_target,
    _predict,
    _predict_proba,
    _sample,
    _score_samples_chunked,
)
from somgen._mixture_missing import (
    _has_missing,
    _initial_covariances,
    _missing_e_step,
    _predict_proba_missing,
    _Rows,
    _score_samples_missing,
    _sparse_e_step,
    _sparse_predict,
    _sparse_score_samples,
    _split_rows,
)
from somgen._som import SelfOrganizingMap
from somgen._topology import _grid_laplacian
from somgen.metrics import topographic_error
from somgen.utils._sklearn_compat import HasMethods, Interval, StrOptions, _fit_context
from somgen.utils._validation import _restore_on_failure


class SOMGenerativeModel(DensityMixin, BaseEstimator):
    """Gaussian-mixture density and sampler whose components are a map's units.

    The model is the mixture

    .. math:: p(x) = \\sum_k \\pi_k \\, \\mathcal{N}(x \\mid \\mu_k, \\Sigma_k)

    with one component per unit of a fitted :class:`SelfOrganizingMap`. The
    means :math:`\\mu_k` start at the map's prototypes :math:`w_k` and are
    refined by EM under a grid prior that ties them to the map (see
    ``mean_stiffness``), so component ``k`` stays unit ``k``: densities,
    samples and responsibilities can be read on the map. The weights are
    smoothed hit frequencies
    ``pi_k = (hits_k + alpha) / (n + K alpha)`` (or come from a density over the
    map coordinates, see ``latent_density``). The covariances are the residuals
    of the samples around their best-matching prototype, shrunk toward the pooled
    residual covariance by ``covariance_shrinkage`` pseudo-samples (the
    maximum a posteriori estimate under a conjugate prior), then optionally
    refined by EM (ECM), which never decreases the penalised likelihood.

    The result is an exact, normalised density on the data space: it can be
    scored on held-out data (``score`` is the mean log-likelihood, as in
    :class:`~sklearn.mixture.GaussianMixture`), compared across models, tuned by
    :class:`~sklearn.model_selection.GridSearchCV` and sampled from.

    Parameters
    ----------
    som : SelfOrganizingMap or FrozenEstimator, default=None
        The map. It is cloned and fitted in :meth:`fit`; its parameters can be
        tuned as ``som__<name>``. ``None`` uses a map sized from the data,
        other parameters at their defaults and a ``random_state`` drawn from
        this model's ``random_state``: the data-sized map has ``K`` = about
        ``2 sqrt(n_samples)`` units (at most ``n_samples / 10``), with sides
        in the ratio ``sqrt(lambda_1 / lambda_2)`` of the two leading
        principal axes (the SOM Toolbox's shape rule; ``K`` was chosen by
        held-out likelihood on eight data sets); up to 10,000 samples, the
        number of units is then chosen among ``K``, ``K / 3``, ``K / 9`` and
        1 by the held-out log-likelihood of this model on 3 to 10 folds of
        the training data (``map_size_cv_results_``), so that data a single
        Gaussian describes get one (the selection costs about ten fits; a
        Dask array that small is brought into memory for it). Above 10,000
        samples the data-sized map is used as is. Setting ``som__<name>``
        parameters (for example in
        :class:`~sklearn.model_selection.GridSearchCV`) while ``som`` is
        None first replaces it with ``SelfOrganizingMap()``, whose sizes,
        unless among the parameters set, are ``"auto"``: the data-sized
        rule (capped at 2500 units), without the selection. To reuse an
        already fitted map without refitting it, wrap it in
        :class:`sklearn.frozen.FrozenEstimator`.

    covariance_type : {"spherical", "diag", "tied", "full"}, default="diag"
        Covariance structure, with the same shapes as in
        :class:`~sklearn.mixture.GaussianMixture`: one variance per unit, one
        diagonal per unit, one shared full matrix, or one full matrix per unit.

    covariance_shrinkage : "auto" or float, default="auto"
        Pseudo-count ``s`` pulling every unit's covariance toward the pooled one:
        ``Sigma_k = (S_k + s Sigma_pooled) / (N_k + s)``. Units with few hits get
        (nearly) the pooled covariance, so no unit collapses. ``"auto"`` is 1 for
        ``"diag"`` and ``"spherical"`` and ``n_features / 2`` for ``"full"``.
        Irrelevant for ``"tied"``. Must be positive.

    weight_concentration : float, default=1.0
        Dirichlet pseudo-count ``alpha`` added to every unit's hits, so that units
        without hits keep a small positive weight. Must be non-negative.

    latent_density : "auto", estimator or None, default=None
        Density over the map coordinates that sets the weights. An unfitted
        estimator with ``fit`` and ``score_samples``, such as
        :class:`~sklearn.neighbors.KernelDensity` or
        :class:`~sklearn.mixture.GaussianMixture`, is fitted on the map
        coordinates of the training samples (dequantized by uniform noise over a
        cell), and its values at the units set the weights:
        ``pi_k`` proportional to ``p_latent(unit_coords_k)``; EM then refines
        the covariances only. A fixed bandwidth can lower the held-out
        likelihood (see the compose guide). ``"auto"`` chooses between no
        latent density and a Gaussian KernelDensity with bandwidth 0.5, 0.7,
        1.0, 1.4, 2.0 or 2.8 (grid units) by 5-fold cross-validated held-out
        log-likelihood of the whole model (weights, covariances and EM refitted
        on each training fold; the map fitted once). A bandwidth is chosen only
        if it beats no latent density on every fold and its mean gain exceeds
        the standard error of its per-fold gains; the search is in
        ``latent_cv_results_``. ``None`` uses the
        smoothed hit frequencies, refined by EM. In every case the model
        remains an exact normalised mixture on the data space.

    mean_stiffness : float in [0, inf], default=1.0
        Strength of the grid prior on the means during EM. The prior is the
        Gaussian Markov random field
        ``(lambda / 2) * sum over adjacent units (j, k) of
        ||(mu_j - a_j) - (mu_k - a_k)||^2`` on the means' deviations from
        anchors ``a = c + b (w - c)``: the prototypes ``w``, expanded or
        contracted about their centroid ``c`` by a factor ``b`` fitted along
        (the map's neighbourhood smoothing contracts it; anchors that kept
        the contraction would keep the samples' spread below the data's).
        Neighbours are the 4 nearest units on rectangular grids, 6 on
        hexagonal ones, and ``lambda = mean_stiffness * (n_samples / n_units) / v``
        and ``v`` the mean pooled within-unit variance, so that one value
        suits data of any size and scale. ``inf`` pins the means to the
        prototypes (the map's own model), ``0`` frees them (a mixture fitted
        by EM from the map, which may lose its order). The means can shift
        together at no cost, but neighbours cannot move apart: the refined
        means keep the map's order (``topographic_error_`` reports it).
        The default was chosen by held-out likelihood on eight data sets
        (between ``inf``, 10, 1 and 0.1).

    refine : {"em"} or None, default="em"
        ``"em"`` refines weights, means (see ``mean_stiffness``) and
        covariances by EM; ``None`` keeps the one-shot estimates from the hard
        best-matching-unit assignments, with the means at the prototypes.

    max_iter : int, default=100
        Maximum number of EM iterations.

    tol : float, default=1e-3
        EM stops when the per-sample penalised log-likelihood improves by less
        than ``tol``.

    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of every covariance.

    discrete_features : "auto", array-like of int or bool, or None, \
            default="auto"
        Columns that take a few distinct values (binary flags, counts, ratings).
        They have no density: a mixture fitted on them as they are puts
        components of vanishing variance on the values, and its likelihood then
        rewards those spikes. These columns are instead *dequantized* for the
        fit: each value is spread uniformly over its cell (the interval between
        the midpoints to the neighbouring values), so the model is a density of
        the dequantized data, whose value at ``v`` times the cell width
        approximates the probability of ``v``; :meth:`sample` and
        :meth:`sample_conditional` round those columns back to the data's
        values (:meth:`impute` returns the conditional mean, not rounded).
        ``"auto"`` takes the columns whose observed training values take 2 to
        10 distinct values, with at least 5 rows per value; column indices or
        a boolean mask name them; None treats every column as continuous.
        Dense input only (sparse input is taken as continuous with ``"auto"``;
        a Dask fit raises if discrete columns are found).

    random_state : int, RandomState instance or None, default=None
        Seeds the dequantization noise of the discrete features and of
        ``latent_density``, the folds of
        ``latent_density="auto"`` and the draws of
        :meth:`sample` (unless ``sample`` gets its own ``random_state``). With
        ``som=None`` it also seeds the default map, but that map (batch training
        from a PCA initialisation) draws random numbers only for the randomized
        PCA of data with very many features: otherwise it is the same for every
        seed. A ``som`` passed in keeps its own ``random_state``. Weights,
        covariances and EM are deterministic given the map.

    Attributes
    ----------
    som_ : SelfOrganizingMap
        The fitted map.

    map_size_cv_results_ : dict or None
        With ``som=None`` and a selection of the map size (see ``som``):
        ``"n_units"`` (the candidates, largest first), ``"shape"`` (their
        grids), ``"mean_test_score"`` (mean held-out log-likelihood per
        sample) and ``"split_test_scores"`` of shape (n_candidates,
        n_splits). The best mean wins, the larger map on a tie. None
        otherwise.

    weights_ : ndarray of shape (n_units,)
        Mixture weights, summing to 1.

    means_ : ndarray of shape (n_units, n_features)
        Component means, in float64: the map's prototypes refined by EM under
        the grid prior (the prototypes themselves with ``mean_stiffness=inf``
        or ``refine=None``).

    topographic_error_ : float
        Topographic error of the training data measured with ``means_`` as
        the codebook on the map's grid: the fraction of samples whose two
        nearest means belong to units that are not grid neighbours. It
        equals the map's own error when the means are pinned.

    covariances_ : ndarray
        Covariances; shape (n_units,) for "spherical", (n_units, n_features)
        for "diag", (n_features, n_features) for "tied" and
        (n_units, n_features, n_features) for "full".

    precisions_cholesky_ : ndarray
        Cholesky factors of the precision matrices, as in
        :class:`~sklearn.mixture.GaussianMixture`, same shapes as
        ``covariances_``.

    converged_ : bool
        Whether EM converged (always True when ``refine=None``).

    n_iter_ : int
        EM iterations run (0 when ``refine=None``).

    latent_density_ : estimator or None
        The fitted ``latent_density``, or the KernelDensity chosen by
        ``latent_density="auto"`` (None without one, or when ``"auto"`` chose
        none).

    latent_cv_results_ : dict or None
        With ``latent_density="auto"``: ``"bandwidth"`` (the candidates, None
        first for no latent density), ``"mean_test_score"`` (their mean held-out
        log-likelihood per sample, all 0 when there were fewer than 4 samples
        and no cross-validation), ``"split_test_scores"`` of shape
        (n_candidates, n_splits) and ``"eligible"`` (whether the candidate beats
        no latent density on every fold, by a mean gain above its standard
        error; always True for None). The chosen candidate is the eligible
        one with the best mean score. None otherwise.

    lower_bound_ : float
        Per-sample penalised log-likelihood of the training data at the end of
        EM; the plain mean log-likelihood when ``refine=None``.

    lower_bounds_ : ndarray of shape (`n_iter_`,)
        The per-sample penalised objective after each EM iteration (never
        decreasing; empty when ``refine=None``). A
        :class:`~sklearn.exceptions.ConvergenceWarning` is raised when EM stops
        at ``max_iter`` before converging.

    discrete_features_ : ndarray of int
        Indices of the columns treated as discrete (dequantized).

    discrete_levels_ : list of ndarray
        The distinct training values of each of those columns, sorted.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    SelfOrganizingMap : The map this model is built on.
    sklearn.mixture.GaussianMixture : Mixture with free means.
    sklearn.neighbors.KernelDensity : Non-parametric density.

    Notes
    -----
    ``Pipeline(SelfOrganizingMap(), GaussianMixture())`` is *not* a density on
    the data: the map's ``transform`` sends the data to a discrete set of grid
    positions, so the mixture there scores map coordinates, ignores the
    distance between a sample and its prototype, and its log-likelihoods are not
    comparable with densities on ``X``. To put a mixture or a kernel density
    over the map, pass it as ``latent_density``, or ``latent_density="auto"``
    to let cross-validation choose a kernel density (or none).

    :meth:`score` is the *mean* log-likelihood per sample (the convention of
    :class:`~sklearn.mixture.GaussianMixture`), whereas
    :meth:`sklearn.neighbors.KernelDensity.score` returns the *sum*.

    Log-densities are exact for every covariance type: the fast expanded
    (matrix-product) form carries a rounding-error bound per sample, and the
    rare samples where it could matter (far from the means relative to their
    spread) are recomputed directly. Posteriors sum to 1 for any finite input.
    Every pass over the data (E-step, :meth:`score_samples`, :meth:`predict`,
    :meth:`predict_proba`) runs by chunks, on all usable cores capped by the BLAS
    thread limit in effect (like ``SelfOrganizingMap(n_jobs=None)``), with BLAS
    on one thread inside each chunk: memory is O(chunk x n_units) (beyond the
    output of :meth:`predict_proba`) and results are bit-identical for any
    thread count.

    Missing values and sparse input: with NaN in the training data, ``fit``
    runs EM with missing data, the E-step taking each sample's marginal
    density on its observed entries and the M-step the expected
    complete-data statistics (conditional means and covariances of the
    missing entries); the objective stays monotone, rows without NaN use the
    complete-data code (bit-identical fits on data without NaN), and
    :meth:`score_samples`, :meth:`predict`, :meth:`predict_proba`,
    :meth:`impute` and :meth:`sample_conditional` use the marginal of the
    observed entries. ``'diag'`` and ``'spherical'`` handle every missingness
    pattern in one matrix product per chunk; ``'full'`` and ``'tied'`` work
    pattern by pattern. CSR and CSC input is never densified whole and gives
    the dense fit to rounding: ``'diag'`` and ``'spherical'`` use sparse-dense
    products (O(nnz x n_units) per pass), ``'full'`` and ``'tied'`` densified
    chunks of rows; :meth:`predict_proba` refuses it (dense output; pass
    dense chunks).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap, SOMGenerativeModel
    >>> X, _ = load_iris(return_X_y=True)
    >>> model = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0).fit(X)
    >>> model.weights_.shape, model.covariances_.shape
    ((16,), (16, 4))
    >>> round(model.score(X), 2)  # mean log-likelihood per sample
    -1.14
    >>> X_new, units = model.sample(3, random_state=0)
    >>> X_new.shape, units.shape
    ((3, 4), (3,))
    >>> model.impute([[5.1, np.nan, 1.4, 0.2]]).round(1)
    array([[5.1, 3.4, 1.4, 0.2]])
    """

    _parameter_constraints: dict = {
        "som": [HasMethods(["fit", "predict"]), None],
        "covariance_type": [StrOptions({"spherical", "diag", "tied", "full"})],
        "covariance_shrinkage": [
            StrOptions({"auto"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "weight_concentration": [Interval(Real, 0, None, closed="left")],
        "latent_density": [
            StrOptions({"auto"}),
            HasMethods(["fit", "score_samples"]),
            None,
        ],
        "mean_stiffness": [Interval(Real, 0, None, closed="both")],
        "refine": [StrOptions({"em"}), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "discrete_features": [StrOptions({"auto"}), "array-like", None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        som=None,
        *,
        covariance_type="diag",
        covariance_shrinkage="auto",
        weight_concentration=1.0,
        latent_density=None,
        mean_stiffness=1.0,
        refine="em",
        max_iter=100,
        tol=1e-3,
        reg_covar=1e-6,
        discrete_features="auto",
        random_state=None,
    ):
        self.som = som
        self.covariance_type = covariance_type
        self.covariance_shrinkage = covariance_shrinkage
        self.weight_concentration = weight_concentration
        self.latent_density = latent_density
        self.mean_stiffness = mean_stiffness
        self.refine = refine
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.discrete_features = discrete_features
        self.random_state = random_state

    def set_params(self, **params):
        """Set the parameters of this estimator.

        As :meth:`sklearn.base.BaseEstimator.set_params`; in addition,
        ``som__<name>`` parameters given while ``som`` is None first replace
        it with ``SelfOrganizingMap()``, so that
        :class:`~sklearn.model_selection.GridSearchCV` can tune the default
        map.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        nested = any(key.startswith("som__") for key in params)
        if nested and params.get("som", self.som) is None:
            params = {**params, "som": SelfOrganizingMap()}
        return super().set_params(**params)

    # ------------------------------------------------------------------ fitting
    def _shrinkage(self, n_features):
        if self.covariance_shrinkage != "auto":
            return float(self.covariance_shrinkage)
        if self.covariance_type == "full":
            return n_features / 2.0
        return 1.0

    def _fit_map(self, X, random_state, sized_grid=None):
        """The fitted clone of ``som``; for ``som=None`` a map of the size
        chosen by :meth:`_select_map_size` (in memory), or of ``sized_grid(X)``
        units when given (Dask data: the data-sized grid, no selection)."""
        self.map_size_cv_results_ = None
        if self.som is None:
            seed = random_state.randint(np.iinfo(np.int32).max)
            if sized_grid is not None:
                shape = sized_grid(X)
            else:
                shape, self.map_size_cv_results_ = self._select_map_size(X, seed)
            som = SelfOrganizingMap(*shape, random_state=seed)
        else:
            som = clone(self.som)
        som.fit(X, None)  # a no-op for a FrozenEstimator
        n_features = getattr(som, "n_features_in_", None)
        if n_features != X.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the map was fitted on "
                f"{n_features} features."
            )
        for attribute in ("codebook_", "unit_coords_"):
            if not hasattr(som, attribute):
                raise TypeError(
                    "som must be a SelfOrganizingMap (or a FrozenEstimator wrapping "
                    f"one) exposing {attribute!r} once fitted; got "
                    f"{type(som).__name__}."
                )
        return som

    def _select_map_size(self, X, seed):
        """Grid shape for ``som=None`` and the cross-validation results.

        The candidates are the data-sized map of ``K`` units
        (:func:`~somgen._initialization._data_sized_grid`), ``K / 3`` and
        ``K / 9`` units (rounded, same shape rule; a grid reached twice is
        tried once) and a single unit; each is
        scored by the mean held-out log-likelihood of this model (``som``
        replaced by the candidate map, seeded with ``seed``) over shuffled
        folds of ``X`` (3, or up to 10 below 667 samples), and the best one is
        kept (the larger map on a tie). No selection (the data-sized map, None
        for the results) with one candidate or above
        ``_MAP_SIZE_CV_MAX_SAMPLES`` samples.
        """
        n_samples = X.shape[0]
        n_units = _data_sized_units(n_samples)
        if n_units == 1 or n_samples > _MAP_SIZE_CV_MAX_SAMPLES:
            return _data_sized_grid(X), None
        variances = _principal_variances(X)  # one pass, for every candidate
        # Distinct grids, largest first (two unit counts can round to one grid).
        shapes = sorted(
            dict.fromkeys(
                _grid_shape(max(1, round(n_units * f)), variances)
                for f in (*_MAP_SIZE_FRACTIONS, 0.0)
            ),
            key=lambda shape: -shape[0] * shape[1],
        )
        # The folds' own noise (dequantization, latent density) from a stream
        # of their own: the fit's random_state is not advanced.
        fold_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max)
        low, high = _MAP_SIZE_CV_SPLITS
        n_splits = int(np.clip(_MAP_SIZE_CV_ROWS // n_samples, low, high))
        folds = list(KFold(n_splits, shuffle=True, random_state=fold_seed).split(X))
        scores = np.zeros((len(shapes), len(folds)))
        for c, shape in enumerate(shapes):
            candidate = clone(self).set_params(
                som=SelfOrganizingMap(*shape, random_state=seed),
                discrete_features=None,  # X is already dequantized
                random_state=fold_seed,
            )
            for f, (train, test) in enumerate(folds):
                with warnings.catch_warnings():
                    # Convergence and size warnings belong to the final fit.
                    warnings.simplefilter("ignore")
                    model = clone(candidate).fit(X[train])
                scores[c, f] = model.score(X[test])
        mean_scores = scores.mean(axis=1)
        best = int(np.argmax(mean_scores))  # the first (larger) map on a tie
        cv_results = {
            "n_units": np.array([rows * cols for rows, cols in shapes]),
            "shape": shapes,
            "mean_test_score": mean_scores,
            "split_test_scores": scores,
        }
        return shapes[best], cv_results

    def _latent_weights(self, som, units, random_state):
        """Weights from a density fitted on dequantized map coordinates."""
        points = _dequantized_coords(
            som.unit_coords_, units, som.topology, random_state
        )
        return _latent_weights(self.latent_density, som.unit_coords_, points)

    def _fit_mixture(self, X, units, means, weights, shrinkage, laplacian, passes=None):
        """Covariances (and weights unless given) for the map's means, then EM.

        ``weights=None`` starts from the smoothed hit frequencies and lets EM
        refine them; given weights stay fixed. With ``refine="em"`` the means
        move under the anchored grid prior of strength ``mean_stiffness``
        (pinned for ``inf``). ``passes`` (see ``somgen._dask``) replaces the
        passes over an in-memory ``X`` by reductions over blocks: its
        ``label_statistics(means)`` returns the hard-label counts, scatter and
        pooled target, its ``e_step`` the E-step statistics. Returns a dict
        with the attributes of the fitted mixture.
        """
        update_weights = weights is None
        if passes is None and (sparse.issparse(X) or _has_missing(X)):
            # Sparse data or NaN: chunked hard-label statistics over the
            # observed entries, then EM on the expected complete-data
            # statistics (complete rows and sparse chunks use the same kernels
            # as dense data).
            if update_weights:
                hits = np.bincount(units, minlength=means.shape[0])
            covariances, covariance_prior = _initial_covariances(
                X,
                units,
                means,
                self.covariance_type,
                shrinkage=shrinkage,
                reg_covar=self.reg_covar,
            )
            if sparse.issparse(X) and self.covariance_type in ("diag", "spherical"):
                e_step = partial(_sparse_e_step, X)
            elif sparse.issparse(X):
                e_step = partial(_e_step_statistics, _Rows(X))
            else:
                e_step = partial(_missing_e_step, X, *_split_rows(X))
        elif passes is None:
            if update_weights:
                hits = np.bincount(units, minlength=means.shape[0])
            covariance_prior = _pooled_target(X, units, means, self.covariance_type)
            covariances = _estimate_covariances(
                X,
                units,
                means,
                self.covariance_type,
                shrinkage=shrinkage,
                reg_covar=self.reg_covar,
                covariance_prior=covariance_prior,
            )
            e_step = None
        else:
            hits, scatter, covariance_prior = passes.label_statistics(means)
            covariances = _covariances_from_scatter(
                hits,
                scatter,
                covariance_prior,
                self.covariance_type,
                shrinkage=shrinkage,
                reg_covar=self.reg_covar,
            )
            e_step = passes.e_step
        if update_weights:
            weights = _dirichlet_weights(hits, self.weight_concentration)
        if self.refine == "em":
            stiffness = _absolute_stiffness(
                self.mean_stiffness,
                X.shape[0],
                covariance_prior,
                means.shape[0],
                reg_covar=self.reg_covar,
            )
            result = _pinned_em(
                X,
                means,
                weights,
                covariances,
                self.covariance_type,
                shrinkage=shrinkage,
                weight_concentration=self.weight_concentration,
                reg_covar=self.reg_covar,
                max_iter=self.max_iter,
                tol=self.tol,
                update_weights=update_weights,
                covariance_prior=covariance_prior,
                mean_stiffness=stiffness,
                laplacian=laplacian,
                e_step=e_step,
            )
            return {
                "weights": result["weights"],
                "means": result["means"],
                "covariances": result["covariances"],
                "precisions_cholesky": result["precisions_cholesky"],
                "converged": bool(result["converged"]),
                "n_iter": int(result["n_iter"]),
                "lower_bound": float(result["lower_bound"]),
                "lower_bounds": result["history"][1:],
            }
        precisions_cholesky = _compute_precision_cholesky(
            covariances, self.covariance_type
        )
        return {
            "weights": weights,
            "means": means,
            "covariances": covariances,
            "precisions_cholesky": precisions_cholesky,
            "converged": True,
            "n_iter": 0,
            "lower_bound": None,
            "lower_bounds": np.zeros(0),
        }

    def _select_latent(self, X, units, som, means, shrinkage, laplacian, random_state):
        """``latent_density="auto"``: the candidate with the best CV likelihood.

        The candidates are no latent density (the hit frequencies refined by
        EM) and Gaussian KernelDensity on the map coordinates with the
        bandwidths ``LATENT_BANDWIDTHS``. Each is scored by the held-out mean
        log-likelihood of the whole mixture (weights, covariances and EM fitted
        on the training folds) on ``LATENT_CV_SPLITS`` shuffled folds, with
        the map fitted once on all of ``X``. Ties go to the first candidate,
        no latent density, and a kernel density must beat it on every fold and
        by more than the standard error of the paired per-fold gains. Returns
        the weights (None for no latent density),
        the fitted latent density (or None) and the cross-validation results.
        """
        n_samples = X.shape[0]
        points = _dequantized_coords(
            som.unit_coords_, units, som.topology, random_state
        )
        bandwidths = [None, *LATENT_BANDWIDTHS]
        n_splits = min(LATENT_CV_SPLITS, n_samples // 2)
        n_splits = n_splits if n_splits >= 2 else 0  # too few samples: no CV
        scores = np.zeros((len(bandwidths), n_splits))
        if n_splits >= 2:
            folds = KFold(
                n_splits,
                shuffle=True,
                random_state=random_state.randint(np.iinfo(np.int32).max),
            )
            for f, (train, test) in enumerate(folds.split(X)):
                for c, bandwidth in enumerate(bandwidths):
                    weights = None
                    if bandwidth is not None:
                        weights, _ = _latent_weights(
                            KernelDensity(bandwidth=bandwidth),
                            som.unit_coords_,
                            points[train],
                        )
                    fitted = self._fit_mixture(
                        X[train], units[train], means, weights, shrinkage, laplacian
                    )
                    scores[c, f] = np.mean(
                        _log_density(
                            X[test],
                            fitted["weights"],
                            fitted["means"],
                            fitted["precisions_cholesky"],
                            self.covariance_type,
                        )
                    )
        # Without CV every candidate scores 0 and no latent density is kept.
        mean_scores = scores.mean(axis=1) if n_splits else np.zeros(len(bandwidths))
        # A kernel density replaces the plain model only if it gains on every
        # fold and its mean gain exceeds the standard error of the paired
        # per-fold gains (one-standard-error rule): otherwise the gain is within
        # the noise of the folds, and on held-out data it tends to be a loss.
        gains = scores - scores[:1]
        if n_splits:
            stderr = gains.std(axis=1, ddof=1) / np.sqrt(n_splits)
            eligible = (gains.mean(axis=1) > stderr) & np.all(gains > 0, axis=1)
        else:
            eligible = np.zeros(len(bandwidths), dtype=bool)
        eligible[0] = True
        best = int(np.argmax(np.where(eligible, mean_scores, -np.inf)))
        cv_results = {
            "bandwidth": bandwidths,
            "mean_test_score": mean_scores,
            "split_test_scores": scores,
            "eligible": eligible,
        }
        if bandwidths[best] is None:
            return None, None, cv_results
        weights, latent = _latent_weights(
            KernelDensity(bandwidth=bandwidths[best]), som.unit_coords_, points
        )
        return weights, latent, cv_results

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the map (unless frozen), then weights and covariances.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. NaN marks a missing value (dense input): EM then
            uses each sample's observed entries (see Notes). A CSR or CSC
            matrix is read by chunks of rows, never densified whole. A dask
            array (or dask DataFrame, without NaN) is fitted by map-reduces
            over its blocks, equal to the in-memory fit within ``1e-10``
            relative; ``latent_density="auto"`` is in-memory only (see the user
            guide's "Scaling out with Dask").

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if _dask._is_dask_collection(X):
            return _dask._generative_fit(self, X)
        with _restore_on_failure(self):
            return self._fit(X)

    def _fit(self, X):
        X = _check_no_sparse_nan(
            validate_data(
                self,
                X,
                dtype=np.float64,
                accept_sparse=("csr", "csc"),
                ensure_all_finite="allow-nan",
            )
        )
        random_state = check_random_state(self.random_state)
        discrete = (np.zeros(0, dtype=np.intp), [])
        if sparse.issparse(X):
            if not (
                self.discrete_features is None
                or isinstance(self.discrete_features, str)
            ):
                raise ValueError(
                    "discrete_features needs dense input: the dequantization "
                    "noise would fill the sparse matrix. Pass "
                    "discrete_features=None or 'auto' (sparse input is then "
                    "taken as continuous), or dense data."
                )
        else:
            _check_observed_features(X, getattr(self, "feature_names_in_", None))
            discrete = _resolve_discrete(X, self.discrete_features)
            if discrete[0].size:
                noise = np.random.RandomState(
                    random_state.randint(np.iinfo(np.int32).max)
                )
                X = _dequantize(X, *discrete, noise)
        som = self._fit_map(X, random_state)
        units = np.asarray(som.predict(X))
        return self._fit_from_map(X, som, units, random_state, discrete=discrete)

    def _fit_from_map(self, X, som, units, random_state, passes=None, discrete=None):
        """Everything after the map: weights, covariances, EM, attributes.

        ``X`` is the validated data, ``units`` the map's best-matching units
        of its samples; with ``passes`` (Dask data, see ``somgen._dask``) the
        passes over the data are reductions over blocks, ``X`` is a dask array
        and ``units`` is used only by a ``latent_density`` estimator.
        """
        means = np.asarray(som.codebook_, dtype=np.float64)
        shrinkage = self._shrinkage(X.shape[1])
        grid = _map_grid(som)
        laplacian = _grid_laplacian(**grid)
        n_units = means.shape[0]
        if X.shape[0] < 2 * n_units:
            warnings.warn(
                f"The map has {n_units} units for {X.shape[0]} samples (fewer "
                "than 2 samples per unit): most covariances rest on the "
                "shrinkage target and the model tends to copy training samples. "
                "Use a smaller map, or som=None to size it from the data.",
                UserWarning,
                stacklevel=4,
            )

        weights = None
        self.latent_density_ = None
        self.latent_cv_results_ = None
        if isinstance(self.latent_density, str):  # "auto"
            weights, self.latent_density_, self.latent_cv_results_ = (
                self._select_latent(
                    X, units, som, means, shrinkage, laplacian, random_state
                )
            )
        elif self.latent_density is not None:
            weights, self.latent_density_ = self._latent_weights(
                som, units, random_state
            )
        fitted = self._fit_mixture(
            X, units, means, weights, shrinkage, laplacian, passes=passes
        )
        weights = fitted["weights"]
        means = fitted["means"]
        covariances = fitted["covariances"]
        precisions_cholesky = fitted["precisions_cholesky"]
        self.converged_ = fitted["converged"]
        self.n_iter_ = fitted["n_iter"]
        self.lower_bounds_ = np.asarray(fitted["lower_bounds"], dtype=np.float64)
        if not self.converged_:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations "
                f"(tol={self.tol}): the last change of the objective was "
                f"{np.diff(self.lower_bounds_[-2:]).sum():.3g} per sample. "
                "Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if fitted["lower_bound"] is None and passes is not None:  # refine=None
            self.lower_bound_ = passes.mean_log_density(
                weights, means, precisions_cholesky
            )
        elif fitted["lower_bound"] is None:
            self.lower_bound_ = float(
                np.mean(
                    _log_density(
                        X, weights, means, precisions_cholesky, self.covariance_type
                    )
                )
            )
        else:
            self.lower_bound_ = fitted["lower_bound"]

        # C-contiguous arrays: a pickle round trip restores them in C order, and
        # the same memory layout keeps BLAS results bit-identical after reload.
        self.som_ = som
        self.weights_ = np.ascontiguousarray(weights)
        self.means_ = np.ascontiguousarray(means)
        self.covariances_ = np.ascontiguousarray(covariances)
        self.precisions_cholesky_ = np.ascontiguousarray(precisions_cholesky)
        self.topographic_error_ = _topographic_error(X, means, grid)
        if discrete is None:
            discrete = (np.zeros(0, dtype=np.intp), [])
        self.discrete_features_, self.discrete_levels_ = discrete
        return self

    # ---------------------------------------------------------------- inference
    def _check_X(self, X, **kwargs):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False, **kwargs)

    def _check_inference_X(self, X):
        """Validated dense (NaN allowed) or sparse CSR data for inference."""
        return _check_no_sparse_nan(
            self._check_X(
                X, accept_sparse=("csr", "csc"), ensure_all_finite="allow-nan"
            )
        )

    def score_samples(self, X):
        """Log-density of the model at each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Points to evaluate. For a row holding NaN, the log-density of its
            observed entries under the model's marginal on them (0 for a row
            with nothing observed).

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            ``log p(x)``, float64, computed with log-sum-exp by chunks and exact
            to about 1e-7 nats (distances whose matrix-product form could lose
            accuracy are recomputed directly); ``-inf`` where the density
            underflows, never NaN.
        """
        if _dask._is_dask_collection(X):
            return _dask._score_samples(self, X)
        X = self._check_inference_X(X)
        return _log_density(
            X,
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self.covariance_type,
        )

    def score(self, X, y=None):
        """Mean log-likelihood of ``X`` under the model.

        This is the mean, as in :class:`~sklearn.mixture.GaussianMixture`, not
        the sum returned by :meth:`sklearn.neighbors.KernelDensity.score`.

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
        if _dask._is_dask_collection(X):
            return _dask._generative_score(self, X)
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Posterior probability of each unit given each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data; NaN marks a missing value, and the posterior is then the one
            of the marginal density of the observed entries. Dense input only.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_units)
            ``p(k | x)``; rows sum to 1 for any finite input. A sample so far
            away that every density underflows gets the limit of the posterior
            along its direction. Beyond this array, memory is
            ``O(chunk_size * n_units)``.
        """
        if _dask._is_dask_collection(X):
            return _dask._predict_proba(self, X)
        if sparse.issparse(X):
            # scikit-learn's common checks expect a predict_proba that takes
            # sparse input to be a classifier's (two or four columns).
            raise TypeError(
                "predict_proba does not accept sparse input (its output is a "
                "dense (n_samples, n_units) array): pass dense rows, e.g. "
                "X[rows].toarray() by chunks; predict, score_samples and score "
                "accept sparse input."
            )
        X = self._check_inference_X(X)
        if _has_missing(X):
            return _predict_proba_missing(
                X,
                self.weights_,
                self.means_,
                self.precisions_cholesky_,
                self.covariance_type,
            )
        return _predict_proba(
            X,
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self.covariance_type,
        )

    def predict(self, X):
        """Most probable unit of each sample under the mixture.

        This can differ from the map's best-matching unit, which ignores the
        weights and covariances. Computed by chunks: no (n_samples, n_units)
        matrix is formed.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data; NaN marks a missing value (dense input), the unit is then
            the most probable given the observed entries.

        Returns
        -------
        units : ndarray of shape (n_samples,)
            Row-major unit index.
        """
        if _dask._is_dask_collection(X):
            return _dask._generative_predict(self, X)
        X = self._check_inference_X(X)
        if sparse.issparse(X) and self.covariance_type in ("diag", "spherical"):
            return _sparse_predict(
                X,
                self.weights_,
                self.means_,
                self.precisions_cholesky_,
                self.covariance_type,
            )
        if sparse.issparse(X):
            X = _Rows(X)
        elif _has_missing(X):
            return _predict_proba_missing(
                X,
                self.weights_,
                self.means_,
                self.precisions_cholesky_,
                self.covariance_type,
            ).argmax(axis=1)
        return _predict(
            X,
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self.covariance_type,
        )

    def sample(self, n_samples=1, *, units=None, random_state=None):
        """Draw samples from the fitted density.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.

        units : array-like of int or bool, default=None
            Restrict sampling to these units (a region of the map): unit
            indices, or a boolean mask of shape (n_units,) with True for the
            allowed units. Their weights are renormalised. All units by default.
            A mask and the equivalent indices give identical draws.

        random_state : int, RandomState instance or None, default=None
            Seed for this call; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Samples, in random order. A pandas DataFrame when the output is
            configured so (see :meth:`set_output`), with columns
            ``feature_names_in_`` (``x0``, ``x1``, ... without them).

        unit_indices : ndarray of shape (n_samples,)
            Unit (component) each sample was drawn from.
        """
        check_is_fitted(self)
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, Integral)
            or n_samples < 1
        ):
            raise ValueError(
                f"n_samples must be a positive integer; got {n_samples!r}."
            )
        rng = check_random_state(
            self.random_state if random_state is None else random_state
        )
        X_sampled, unit_indices = _sample(
            rng,
            int(n_samples),
            self.weights_,
            self.means_,
            self.covariances_,
            self.covariance_type,
            units=units,
        )
        self._round_discrete(X_sampled)
        return self._wrap_output(X_sampled), unit_indices

    def impute(self, X):
        """Fill missing entries (NaN) with their conditional mean.

        For each row, the missing entries are replaced by
        ``E[x_missing | x_observed]`` under the mixture. Rows without NaN are
        returned unchanged; fully missing rows get the mixture mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN for missing values. Infinite values are rejected.

        Returns
        -------
        X_imputed : ndarray or DataFrame of shape (n_samples, n_features)
            Completed data, float64. A pandas DataFrame when the output is
            configured so (see :meth:`set_output`), with columns
            ``feature_names_in_`` (``x0``, ``x1``, ... without them) and the
            index of ``X`` when ``X`` is a DataFrame.

        See Also
        --------
        sample_conditional : Draws from the conditional law (multiple
            imputation) instead of its mean.
        """
        if _dask._is_dask_collection(X):
            return _dask._impute(self, X)
        index = getattr(X, "index", None)
        X = self._check_X(X, ensure_all_finite="allow-nan")
        X_imputed = _conditional_impute(
            X,
            self.weights_,
            self.means_,
            self.covariances_,
            self.covariance_type,
            precisions_cholesky=self.precisions_cholesky_,
        )
        return self._wrap_output(X_imputed, index=index)

    def sample_conditional(self, X, n_draws=1, *, random_state=None):
        """Draw the missing entries (NaN) from their conditional law.

        This is multiple imputation: for each row with observed entries ``o``
        and missing entries ``m``, each draw picks a unit ``k`` with probability
        ``p(k | x_o)``, the posterior under the mixture's marginal on the
        observed features, then draws

        .. math::

            x_m \\sim \\mathcal{N}\\big(\\mu_{k,m} + \\Sigma_{k,mo}
            \\Sigma_{k,oo}^{-1} (x_o - \\mu_{k,o}),\\;
            \\Sigma_{k,mm} - \\Sigma_{k,mo} \\Sigma_{k,oo}^{-1}
            \\Sigma_{k,om}\\big),

        the exact conditional of the mixture, for every ``covariance_type``
        (with ``"diag"`` and ``"spherical"`` the missing features are
        independent given the unit). The mean of the draws is the conditional
        mean returned by :meth:`impute`. Rows are grouped by missingness
        pattern and computed by chunks, on several threads, with the same
        exact posteriors as :meth:`impute`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with NaN for missing values. Infinite values are rejected.

        n_draws : int, default=1
            Number of draws per row.

        random_state : int, RandomState instance or None, default=None
            Seed for this call; ``None`` uses the estimator's ``random_state``.
            An int gives the same draws on every call, whatever the number of
            threads.

        Returns
        -------
        X_drawn : ndarray of shape (n_draws, n_samples, n_features)
            ``X_drawn[j]`` is one completed copy of ``X``: observed entries are
            copied unchanged, missing ones drawn, independently across draws
            and rows. The array is 3-D even when ``n_draws=1``, and always a
            NumPy array (each ``X_drawn[j]`` can be wrapped in a DataFrame with
            the columns of ``X``). Complete rows are repeated as they are;
            fully missing rows are draws from the whole mixture.

        See Also
        --------
        impute : The conditional mean.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_iris
        >>> from somgen import SelfOrganizingMap, SOMGenerativeModel
        >>> X, _ = load_iris(return_X_y=True)
        >>> model = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0)
        >>> model = model.fit(X)
        >>> row = [[5.1, np.nan, 1.4, 0.2]]
        >>> draws = model.sample_conditional(row, n_draws=2000, random_state=0)
        >>> draws.shape
        (2000, 1, 4)
        >>> bool(np.abs(draws.mean(axis=0) - model.impute(row)).max() < 0.05)
        True
        """
        X = self._check_X(X, ensure_all_finite="allow-nan")
        if (
            isinstance(n_draws, bool)
            or not isinstance(n_draws, Integral)
            or n_draws < 1
        ):
            raise ValueError(f"n_draws must be a positive integer; got {n_draws!r}.")
        rng = check_random_state(
            self.random_state if random_state is None else random_state
        )
        draws = _conditional_sample(
            rng,
            X,
            int(n_draws),
            self.weights_,
            self.means_,
            self.covariances_,
            self.covariance_type,
            precisions_cholesky=self.precisions_cholesky_,
        )
        # Round the drawn entries of discrete columns (observed ones stay).
        missing = np.isnan(X)
        for draw in draws:
            rounded = self._round_discrete(draw.copy())
            draw[missing] = rounded[missing]
        return draws

    def _round_discrete(self, X):
        """Round, in place, the discrete columns of ``X`` to their values."""
        indices = getattr(self, "discrete_features_", ())
        if len(indices):
            _round_to_levels(X, indices, self.discrete_levels_)
        return X

    # ------------------------------------------------------------ output format
    def set_output(self, *, transform=None):
        """Set the container returned by :meth:`sample` and :meth:`impute`.

        The model is not a transformer, so scikit-learn's automatic wrapping of
        ``transform`` does not apply; this method follows the same API and
        stores its choice where :func:`sklearn.base.clone` copies it. Without
        a call (or with ``transform=None``), the global setting
        ``sklearn.set_config(transform_output=...)`` decides.

        Parameters
        ----------
        transform : {"default", "pandas"} or None, default=None
            ``"default"``: NumPy arrays; ``"pandas"``: a DataFrame whose
            columns are ``feature_names_in_`` (``x0``, ``x1``, ... when the
            model was fitted without feature names) and whose index is that of
            the input of :meth:`impute` when it is a DataFrame. ``None`` leaves
            the configuration unchanged. The unit indices of :meth:`sample` and
            the draws of :meth:`sample_conditional` stay NumPy arrays.

        Returns
        -------
        self : SOMGenerativeModel
            This estimator.
        """
        if transform is None:
            return self
        if transform not in ("default", "pandas"):
            raise ValueError(
                "set_output(transform=...) must be 'default', 'pandas' or None; "
                f"got {transform!r}."
            )
        self._sklearn_output_config = {"transform": transform}
        return self

    def _wrap_output(self, X, index=None):
        """``X`` as a DataFrame when the output is configured so."""
        config = getattr(self, "_sklearn_output_config", {}).get("transform")
        if config is None:
            config = get_config()["transform_output"]
        if config != "pandas":
            # "default", or a global container this model does not produce
            # (e.g. polars): plain arrays, as before any configuration.
            return X
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is optional
            raise ImportError(
                "pandas output requires pandas: pip install pandas."
            ) from exc
        columns = getattr(self, "feature_names_in_", None)
        if columns is None:
            columns = [f"x{i}" for i in range(self.n_features_in_)]
        return pd.DataFrame(X, columns=list(columns), index=index)

    def _n_parameters(self):
        return _n_parameters(
            self.means_.shape[0],
            self.means_.shape[1],
            self.covariance_type,
            means_free=True,
        )

    def bic(self, X):
        """Bayesian information criterion of the model on ``X`` (lower is better).

        The prototypes count as free parameters: the map fitted them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        bic : float
            ``-2 log L + p log n``, lower is better.
        """
        log_density = self.score_samples(X)
        n_samples = log_density.shape[0]
        return -2.0 * log_density.sum() + self._n_parameters() * np.log(n_samples)

    def aic(self, X):
        """Akaike information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        aic : float
            ``-2 log L + 2 p``, lower is better.
        """
        return -2.0 * self.score_samples(X).sum() + 2.0 * self._n_parameters()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags


def _map_grid(som):
    """Grid of a fitted map (or of the map inside a FrozenEstimator)."""
    grid = getattr(som, "_fitted_grid", None)
    if grid is not None:
        return dict(grid)
    # A duck-typed map: resolved sizes (``n_rows_``) when it has them.
    return dict(
        n_rows=getattr(som, "n_rows_", getattr(som, "n_rows", None)),
        n_cols=getattr(som, "n_cols_", getattr(som, "n_cols", None)),
        topology=som.topology,
        periodic=som.periodic,
    )


def _check_no_sparse_nan(X):
    """Reject NaN stored in a sparse matrix (missing values need dense input);
    convert CSC to CSR, whose row slices the chunked kernels read."""
    if sparse.issparse(X):
        if np.isnan(X.data).any():
            raise ValueError(
                "Sparse input holds NaN: missing values are supported in dense "
                "input only (a sparse zero is a value, not a missing one)."
            )
        return X.tocsr()
    return X


def _log_density(X, weights, means, precisions_cholesky, covariance_type):
    """Log-density of each row: the marginal of its observed entries when it
    holds NaN; a sparse ``X`` is read by densified chunks of rows."""
    if sparse.issparse(X) and covariance_type in ("diag", "spherical"):
        return _sparse_score_samples(
            X, weights, means, precisions_cholesky, covariance_type
        )
    if sparse.issparse(X):
        X = _Rows(X)
    elif _has_missing(X):
        return _score_samples_missing(
            X, weights, means, precisions_cholesky, covariance_type
        )
    return _score_samples_chunked(
        X, weights, means, precisions_cholesky, covariance_type
    )


def _topographic_error(X, means, grid):
    """Topographic error of the means over the rows with an observed value."""
    if not sparse.issparse(X) and _has_missing(X):
        X = X[~np.isnan(X).all(axis=1)]
        if X.shape[0] == 0:
            return float("nan")
    return float(topographic_error(X, means, **grid))


def _check_observed_features(X, feature_names=None):
    """Raise if a feature of dense training data holds only NaN (before the
    map is sized from the data's means, which would be undefined)."""
    if X.size == 0 or not np.isnan(np.min(X)):
        return
    never = np.flatnonzero(np.all(np.isnan(X), axis=0))[:10].tolist()
    if never:
        if feature_names is not None:
            never = [f"{j} ({feature_names[j]!r})" for j in never]
        raise ValueError(
            f"Input X has no observed value in feature(s) {never} "
            "(only NaN): a feature never observed cannot be learned. Drop it "
            "or provide at least one value."
        )
