"""The self-organizing map estimator."""

import time
import warnings
from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from somgen import _dask
from somgen._bmu import (
    _best_matching_units,
    _column_ranges,
    _direct_bmus,
    _Frame,
    _frame_from_data,
    _internal_search,
    _model_search,
    _search_chunk,
    _to_frame,
)
from somgen._initialization import (
    _data_sized_grid,
    _data_sized_units,
    _pca_init,
    _random_init,
    _sample_init,
)
from somgen._neighborhood import NEIGHBORHOODS, _neighborhood_weights
from somgen._parallel import (
    _chunk_slices,
    _effective_n_threads,
    _map_chunks,
    _release_scratch,
    _single_threaded_blas,
)
from somgen._schedules import DECAYS, _decay
from somgen._topology import (
    _are_adjacent,
    _check_grid,
    _interpolation_stencil,
    _pairwise_grid_sq_distances,
    _unit_coordinates,
)
from somgen._training import (
    _batch_statistics,
    _online_update,
    _smooth_statistics,
    _sparse_online_update,
)
from somgen.utils._sklearn_compat import Interval, StrOptions, _fit_context
from somgen.utils._validation import _check_missing_values, _restore_on_failure

_FLOAT_DTYPES = [np.float64, np.float32]
# Online mini-batches up to this many (sample, unit, feature) differences find
# their BMUs by direct float64 distances: cheaper than the GEMM path's
# bookkeeping at that size, and exact.
_DIRECT_SEARCH_ELEMENTS = 1 << 17
# Largest map that n_rows="auto" / n_cols="auto" give (50 x 50). Beyond about
# 1.5 million samples, 2 sqrt(n) units would make the cost of an epoch grow as
# n^1.5 and the (n_units, n_units) neighbourhood matrices exceed 50 MB; users
# who want larger maps give the sizes.
_MAX_AUTO_UNITS = 2500


def _resolve_grid_shape(n_rows, n_cols, n_samples, topology, periodic, sized_grid):
    """``(n_rows, n_cols)`` of a map whose sizes may be ``"auto"``.

    Parameters
    ----------
    n_rows, n_cols : int or "auto"
        The map's parameters.
    n_samples : int
        Number of training samples (of the first batch for ``partial_fit``).
    topology : {"rectangular", "hexagonal"}
    periodic : bool
    sized_grid : callable
        Called without arguments when both sizes are ``"auto"``; returns the
        data-sized grid ``(n_rows, n_cols)`` (``_data_sized_grid`` of the data).

    Returns
    -------
    n_rows, n_cols : int
        Both ``"auto"``: ``sized_grid()``, both sides scaled down by the same
        factor when it has more than ``_MAX_AUTO_UNITS`` units. One side given:
        the other is ``round(units / given)`` (at least 1) with ``units =
        min(_data_sized_units(n_samples), _MAX_AUTO_UNITS)``, and no more than
        ``_MAX_AUTO_UNITS // given``. A periodic hexagonal map needs an even
        number of rows: an ``"auto"`` odd row count is rounded up to the next
        even number (down when up would pass the cap; at least 2), and an
        ``"auto"`` column count is then recomputed as ``round(units / n_rows)``.
        Explicit sizes are returned unchanged (``_check_grid`` rejects an
        explicit odd ``n_rows`` on a periodic hexagonal map).
    """
    # Validated parameters: a string is "auto".
    auto_rows, auto_cols = isinstance(n_rows, str), isinstance(n_cols, str)
    even_rows = auto_rows and periodic and topology == "hexagonal"
    cap = _MAX_AUTO_UNITS
    if auto_rows and auto_cols:
        n_rows, n_cols = (int(side) for side in sized_grid())
        if n_rows * n_cols > cap:
            shrink = np.sqrt(cap / (n_rows * n_cols))
            n_rows = max(1, round(n_rows * shrink))
            n_cols = max(1, round(n_cols * shrink))
            if n_rows * n_cols > cap:  # rounding up, or a side clipped at 1
                if n_rows >= n_cols:
                    n_rows = max(1, cap // n_cols)
                else:
                    n_cols = max(1, cap // n_rows)
        if even_rows and n_rows % 2:
            n_units = n_rows * n_cols
            n_rows = _even_rows(n_rows, cap)
            n_cols = max(1, min(round(n_units / n_rows), cap // n_rows))
        return n_rows, n_cols
    n_units = min(_data_sized_units(n_samples), cap)
    if auto_rows:
        n_rows = max(1, min(round(n_units / n_cols), cap // n_cols))
        if even_rows:
            n_rows = _even_rows(n_rows, max(cap // n_cols, 2))
    elif auto_cols:
        n_cols = max(1, min(round(n_units / n_rows), cap // n_rows))
    return int(n_rows), int(n_cols)


def _even_rows(n_rows, max_rows):
    """The even row count nearest ``n_rows`` (an odd count goes up, unless that
    passes ``max_rows``), at least 2."""
    up = n_rows + n_rows % 2
    if up > max_rows:
        up -= 2
    return max(2, up)


class SelfOrganizingMap(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Self-organizing map (Kohonen map).

    A grid of ``n_rows x n_cols`` units, each holding a prototype vector in data
    space, is fitted so that nearby units have similar prototypes. The map then
    acts as a transformer: :meth:`transform` sends every sample to the 2-D grid
    position of its best-matching unit (BMU), :meth:`inverse_transform` decodes
    grid positions back to data space, and :meth:`predict` returns BMU indices.

    The default batch algorithm assigns all samples to their BMU and replaces
    every prototype by the neighbourhood-weighted mean of the data, once per
    epoch, while the neighbourhood width shrinks from ``sigma_start`` to
    ``sigma_end``. The online algorithm applies Kohonen's incremental rule to
    shuffled mini-batches (``batch_size=1`` is the classic per-sample rule).

    Parameters
    ----------
    n_rows : int or "auto", default="auto"
        Number of rows of the grid. ``"auto"`` sizes the grid from the
        training data when :meth:`fit` runs (resolved into ``n_rows_``):

        - both sizes ``"auto"``: ``units = max(1, min(round(2 sqrt(n_samples)),
          n_samples // 10))`` (a 1 x 1 map below 20 samples), laid out with the
          sides in the ratio ``r = sqrt(lambda_1 / lambda_2)`` of the two
          leading principal variances of the data (clipped to ``[1, units]``),
          the longer side being the columns: ``n_rows_ = round(sqrt(units /
          r))`` and ``n_cols_ = round(units / n_rows_)``, both at least 1 (the
          SOM Toolbox's shape rule, with fewer units). Missing values are left
          out of the mean, and sparse data are not densified;
        - one size given: the other is ``round(units / given)``, at least 1,
          with ``units`` the number above;
        - ``"auto"`` gives at most 2500 units (50 x 50, reached near 1.5
          million samples): with both sizes ``"auto"``, a larger grid is scaled
          down on both sides by the same factor, keeping its ratio; with one
          size given, ``units`` is at most 2500 and the other side at most
          ``2500 // given``. Give the sizes for a larger map;
        - on a periodic hexagonal grid, which needs an even number of rows, an
          ``"auto"`` odd number of rows is rounded up to the next even number
          (down if up would pass the cap; at least 2), and an ``"auto"``
          ``n_cols`` is then recomputed as ``round(units / n_rows_)`` for the
          same number of units. An explicit odd ``n_rows`` there is an error.

        Every :meth:`fit` resolves ``"auto"`` again, from its data.
        :meth:`partial_fit` resolves it from the first batch only and keeps
        that grid for the later batches, so a small first batch gives a small
        map: streaming users should give explicit sizes.

    n_cols : int or "auto", default="auto"
        Number of columns of the grid; ``"auto"`` as for ``n_rows`` (resolved
        into ``n_cols_``).

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Lattice of the units. On a hexagonal grid odd rows are shifted right by
        half a unit and every interior unit has six neighbours at distance 1.

    periodic : bool, default=False
        Wrap the grid around both axes (a torus). A periodic hexagonal grid
        needs an even ``n_rows``.

    neighborhood : {"gaussian", "bubble", "mexican_hat", "triangle"}, \
            default="gaussian"
        Neighbourhood kernel ``h(d)`` of the grid distance ``d`` to the BMU:
        ``exp(-d^2 / 2 sigma^2)``, ``1[d <= sigma]``,
        ``(1 - d^2 / sigma^2) exp(-d^2 / 2 sigma^2)`` or ``max(0, 1 - d / sigma)``.

    sigma_start : float, default=None
        Initial neighbourhood width, in grid units. ``None`` uses half the
        longer side of the grid (``max(n_rows_, n_cols_) / 2``, never less than
        ``sigma_end``).

    sigma_end : float, default=0.5
        Final neighbourhood width. Smaller values lower the quantization error
        at the cost of a less smooth (more folded) map; at 0.5 a Gaussian
        neighbourhood still gives direct neighbours a weight of 0.14.

    learning_rate_start : float, default=0.5
        Initial learning rate of the online algorithm and of :meth:`partial_fit`,
        in ``(0, 1]``. Unused by ``fit`` with the batch algorithm.

    learning_rate_end : float, default=0.01
        Final learning rate, in ``(0, 1]``.

    decay : {"linear", "exponential", "inverse"}, default="exponential"
        How ``sigma`` and the learning rate go from their start to their end
        value over training. Exponential (geometric) decay spends more epochs
        at small widths, where the map fine-tunes.

    n_epochs : int, default=10
        Passes over the data in :meth:`fit`. It is also the horizon of the
        schedules in :meth:`partial_fit`: call ``t`` (counting from 0) uses the
        schedule values of epoch ``min(t, n_epochs - 1)``.

    algorithm : {"batch", "online"}, default="batch"
        Training rule of :meth:`fit`.

    batch_size : int, default=1
        Mini-batch size of the online algorithm; 1 is Kohonen's per-sample
        rule. Unused by the batch algorithm.

    init : {"pca", "random", "sample"} or array-like of shape \
            (n_rows * n_cols, n_features), default="pca"
        Initial codebook. ``"pca"`` lays the grid on the plane of the two
        leading principal components, one standard deviation either side of the
        mean, its longer side along the first component; ``"random"`` draws
        prototypes uniformly in the bounding box of the data; ``"sample"`` copies
        random samples. An array gives the prototypes row-major (unit
        ``k = row * n_cols + col``); give explicit sizes with it, as ``"auto"``
        sizes need not match its number of rows.

    n_jobs : int, default=None
        Number of threads (not processes) that process chunks of samples in
        :meth:`fit`, :meth:`partial_fit`, :meth:`predict`, :meth:`transform`,
        :meth:`fit_predict` and :meth:`score`; :meth:`inverse_transform` runs on
        the calling thread. ``None`` uses all usable cores, capped by the BLAS
        thread limit in effect (as set by
        :func:`threadpoolctl.threadpool_limits`, ``OMP_NUM_THREADS`` or joblib's
        workers, so ``GridSearchCV(n_jobs=...)`` does not oversubscribe), or
        ``k`` inside an enclosing ``joblib.parallel_config(n_jobs=k)``.
        Negative values follow joblib: ``-1`` uses all cores, ``-2`` all but
        one, and so on; 0 is invalid. Samples are split in a fixed grid of
        chunks whose statistics are summed in chunk order and BLAS runs on one
        thread inside each chunk, so results are bit-identical for every value
        of ``n_jobs``. While a call runs, BLAS is limited to one thread for the
        whole process (the limit in effect before is restored when the last
        concurrent call returns).

    random_state : int, RandomState instance or None, default=None
        Seeds the initialisations (the randomized principal components of
        ``"pca"`` on data with many features, the draws of ``"random"`` and
        ``"sample"``) and the sample order of the online algorithm.
        :meth:`fit` starts a new generator from it on every call;
        :meth:`partial_fit` uses one generator across calls (the one
        :meth:`fit` left, or a new one at the first call), so successive calls
        shuffle differently and a sequence of calls is reproducible. Pass an
        int for reproducible results.

    verbose : int, default=0
        When positive, :meth:`fit` prints one line to standard output after
        every epoch: the epoch number, the neighbourhood width ``sigma``, the
        root-mean-square distance of the training samples to their
        best-matching prototypes (in the data's units; with the batch algorithm
        against the prototypes the epoch started from, with the online one
        against those it ended with) and the elapsed time since ``fit``
        started. Larger values print the same; :meth:`partial_fit` and the
        other methods never print.

    Attributes
    ----------
    n_rows_ : int
        Number of rows of the fitted grid: ``n_rows``, or its resolved value
        when ``n_rows="auto"``.

    n_cols_ : int
        Number of columns of the fitted grid: ``n_cols``, or its resolved
        value when ``n_cols="auto"``.

    codebook_ : ndarray of shape (n_units, n_features)
        Prototype of every unit (``n_units = n_rows_ * n_cols_``), row-major,
        in the dtype of the training data (float32 stays float32).

    unit_coords_ : ndarray of shape (n_units, 2)
        Cartesian position ``(x, y)`` of every unit on the grid: ``(col, row)``
        on a rectangular grid, ``(col + (row % 2) / 2, row * sqrt(3) / 2)`` on a
        hexagonal one.

    n_iter_ : int
        Epochs run by :meth:`fit`, plus one per :meth:`partial_fit` call.

    quantization_error_ : float
        Mean Euclidean distance between the training samples (of the last
        ``fit`` or ``partial_fit`` call) and their BMU prototypes.

    topographic_error_ : float
        Fraction of those samples whose best and second-best units are not
        adjacent (8 neighbours on rectangular grids, 6 on hexagonal ones; see
        :func:`somgen.metrics.topographic_error`).

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X` has
        feature names that are all strings.

    See Also
    --------
    SOMGenerativeModel : Density estimator and sampler built on a fitted map.
    sklearn.cluster.KMeans : Vector quantization without a topology.

    Notes
    -----
    Each batch epoch costs one matrix product per chunk of samples, with
    ``||w||^2`` folded into the ranking scores, computed in the data's dtype.
    The best-matching unit is nevertheless exact: every score carries a
    rigorous rounding-error bound, and the rare samples whose runner-up lies
    within that bound are re-ranked by direct float64 distances, so float32 and
    float64 data pick the unit a brute-force float64 search picks (up to exact
    ties, which go to the lowest index). Data are mapped to an internal frame
    (centred on the training mean, scaled by a power of two when their
    magnitude is beyond ``2**+-40``), so any finite data trains without
    overflow or underflow. Memory is the input plus O(chunk x n_units): X is
    centred chunk by chunk, never copied whole.

    Missing values: dense data may hold NaN. The squared distance of a sample
    to a prototype is taken over its observed features and rescaled by
    ``n_features / n_observed``, so samples with different numbers of missing
    values are on one scale (the factor does not change the BMU). It is still
    computed by matrix products (``[X0, M] @ [-2 W^T; (W**2)^T]`` with NaN set
    to 0 in ``X0`` and the observation mask ``M``) and exact like the complete
    case; rows without NaN take the complete-data path unchanged, so data
    without NaN give bit-identical results. A batch epoch divides each feature
    by the neighbourhood-weighted count of its observed values (a unit keeps
    its value in a feature without observed weight), the online rule moves
    only observed coordinates, and the PCA initialisation uses mean-imputed
    data. Every feature of the training data needs an observed value; a
    sample with none is imputed by the training mean (its BMU is the unit
    closest to the mean) and moves no prototype, with a warning.

    Sparse input: CSR and CSC matrices (CSC is converted to CSR once) are never
    densified nor centred: the BMU search uses sparse-dense products with the
    centring folded into a per-unit constant, and the per-unit sums are sparse
    products with the one-hot BMU matrix. BMUs are the same as for the dense
    data. NaN stored in a sparse matrix is an error.

    Dask arrays (and dask DataFrames of numeric columns, with the extra
    ``somgen[dask]``): :meth:`fit` and :meth:`partial_fit` with
    ``algorithm="batch"`` run each epoch as one map-reduce over the blocks,
    equal to the in-memory fit within 1e-10 relative and identical for any
    number of workers; :meth:`transform` and :meth:`predict` return lazy dask
    arrays; :meth:`score` reduces over the blocks. The online algorithm needs
    data in memory. See the "scale out" page of the user guide.

    The Mexican-hat kernel is negative beyond ``sigma``: it pushes units away
    from the data, with a force that grows with their distance. To keep training
    stable, prototypes are clipped to the bounding box of the training data after
    every update with this kernel, and in a batch epoch a unit whose
    neighbourhood-weighted count is not positive keeps its prototype.

    References
    ----------
    T. Kohonen, "Self-Organizing Maps", 3rd ed., Springer, 2001 (batch map,
    Section 3.14).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap
    >>> X, _ = load_iris(return_X_y=True)
    >>> som = SelfOrganizingMap(n_rows=6, n_cols=8, random_state=0).fit(X)
    >>> som.codebook_.shape
    (48, 4)
    >>> som.transform(X[:2])
    array([[0., 5.],
           [1., 3.]])
    >>> som.predict(X[:2])  # unit = row * n_cols + col
    array([40, 25])
    >>> round(som.quantization_error_, 2), round(som.topographic_error_, 2)
    (0.27, 0.04)
    >>> som.inverse_transform([[0.0, 5.0]]).round(2)  # the prototype of unit 40
    array([[4.97, 3.54, 1.34, 0.22]])
    >>> auto = SelfOrganizingMap(random_state=0).fit(X)  # sized from the data
    >>> auto.n_rows_, auto.n_cols_, auto.get_params()["n_rows"]
    (2, 8, 'auto')
    """

    _parameter_constraints: dict = {
        "n_rows": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "n_cols": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "topology": [StrOptions({"rectangular", "hexagonal"})],
        "periodic": ["boolean"],
        "neighborhood": [StrOptions(set(NEIGHBORHOODS))],
        "sigma_start": [Interval(Real, 0, None, closed="neither"), None],
        "sigma_end": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_start": [Interval(Real, 0, 1, closed="right")],
        "learning_rate_end": [Interval(Real, 0, 1, closed="right")],
        "decay": [StrOptions(set(DECAYS))],
        "n_epochs": [Interval(Integral, 1, None, closed="left")],
        "algorithm": [StrOptions({"batch", "online"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"pca", "random", "sample"}), "array-like"],
        "n_jobs": [
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_rows="auto",
        n_cols="auto",
        *,
        topology="rectangular",
        periodic=False,
        neighborhood="gaussian",
        sigma_start=None,
        sigma_end=0.5,
        learning_rate_start=0.5,
        learning_rate_end=0.01,
        decay="exponential",
        n_epochs=10,
        algorithm="batch",
        batch_size=1,
        init="pca",
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.topology = topology
        self.periodic = periodic
        self.neighborhood = neighborhood
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end
        self.learning_rate_start = learning_rate_start
        self.learning_rate_end = learning_rate_end
        self.decay = decay
        self.n_epochs = n_epochs
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.init = init
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    @property
    def _grid(self):
        """Grid of the map being trained: the resolved sizes (set by
        ``_start``) with the current topology."""
        return dict(
            n_rows=self.n_rows_,
            n_cols=self.n_cols_,
            topology=self.topology,
            periodic=self.periodic,
        )

    def _resolved_shape(self, X):
        """``(n_rows, n_cols)`` of a new map on training data ``X`` (validated):
        the parameters, with ``"auto"`` resolved (see ``_resolve_grid_shape``)."""
        return _resolve_grid_shape(
            self.n_rows,
            self.n_cols,
            X.shape[0],
            self.topology,
            self.periodic,
            lambda: _data_sized_grid(X),
        )

    @property
    def _n_features_out(self):
        """Number of transformed output features (the two map coordinates)."""
        return 2

    @property
    def cluster_centers_(self):
        """Alias of ``codebook_`` for code written against k-means."""
        return self.codebook_

    def _check_params_vs_input(self, n_features, n_rows, n_cols):
        """Checks that involve several parameters or the data, for a grid of
        ``n_rows x n_cols`` units (the resolved sizes); returns the resolved
        sigma range."""
        _check_grid(n_rows, n_cols, self.topology, self.periodic)
        sigma_end = float(self.sigma_end)
        if self.sigma_start is None:
            sigma_start = max(max(n_rows, n_cols) / 2.0, sigma_end)
        else:
            sigma_start = float(self.sigma_start)
        if sigma_start < sigma_end:
            raise ValueError(
                f"sigma_start={sigma_start} must be greater than or equal to "
                f"sigma_end={sigma_end}: the neighbourhood shrinks during training."
            )
        if self.learning_rate_start < self.learning_rate_end:
            raise ValueError(
                f"learning_rate_start={self.learning_rate_start} must be greater "
                f"than or equal to learning_rate_end={self.learning_rate_end}."
            )
        if not isinstance(self.init, str):
            n_units = n_rows * n_cols
            init = check_array(self.init, dtype=np.float64, input_name="init")
            if init.shape != (n_units, n_features):
                auto = [
                    name
                    for name in ("n_rows", "n_cols")
                    if isinstance(getattr(self, name), str)
                ]
                hint = (
                    f" ({' and '.join(auto)}='auto' resolved from the data; give "
                    "explicit sizes with an array init)"
                    if auto
                    else ""
                )
                raise ValueError(
                    f"init has shape {init.shape}, but the map needs one prototype "
                    f"per unit: ({n_units}, {n_features}) for a {n_rows}x"
                    f"{n_cols} map on {n_features} features{hint}."
                )
        return sigma_start, sigma_end

    @property
    def _frame(self):
        return _Frame(self._offset, self._scale)

    def _internal_codebook(self):
        """``codebook_`` in the internal frame, float64."""
        return self.codebook_.astype(np.float64) * self._scale - self._offset

    def _check_grid_unchanged(self):
        """A fitted map cannot change its grid: ``partial_fit`` would train a
        codebook laid out for another grid. A size set to ``"auto"`` keeps the
        fitted one (``"auto"`` is resolved by the first batch only)."""
        fitted = getattr(self, "_fitted_grid", None)
        if fitted is None:
            return
        requested = dict(
            n_rows=fitted["n_rows"] if isinstance(self.n_rows, str) else self.n_rows,
            n_cols=fitted["n_cols"] if isinstance(self.n_cols, str) else self.n_cols,
            topology=self.topology,
            periodic=self.periodic,
        )
        if fitted != requested:
            changed = ", ".join(
                f"{key}={fitted[key]!r} -> {requested[key]!r}"
                for key in fitted
                if fitted[key] != requested[key]
            )
            raise ValueError(
                f"The grid of this fitted map changed ({changed}) since it was "
                "fitted; partial_fit cannot continue on another grid. Call fit "
                "to train a new map, or restore the parameters."
            )

    def _initial_codebook(self, X, coords, random_state):
        n_units = coords.shape[0]
        frame = self._frame
        if not isinstance(self.init, str):
            init = check_array(self.init, dtype=np.float64)
            return _to_frame(init, frame, np.empty(init.shape))
        if self.init == "pca":
            return _pca_init(X, coords, random_state, frame=frame)
        if self.init == "random":
            return _random_init(X, n_units, random_state, box=self._box)
        return _sample_init(X, n_units, random_state, frame=frame)

    def _neighborhood_of(self, units, sigma):
        """Neighbourhood weights of ``units`` against all units, (len, n_units)."""
        coords = self.unit_coords_
        sq = _pairwise_grid_sq_distances(coords[units], coords, **self._grid)
        return _neighborhood_weights(sq, sigma, self.neighborhood)

    def _log(self, epoch, n_epochs, sigma, sq_error, n_samples, tic):
        if self.verbose:
            rms = np.sqrt(max(sq_error, 0.0) / n_samples) / self._scale
            print(
                f"[SelfOrganizingMap] epoch {epoch + 1}/{n_epochs}  "
                f"sigma={sigma:.3f}  rms_qe={rms:.5g}  "
                f"elapsed={time.perf_counter() - tic:.2f}s"
            )

    # ----------------------------------------------------------------- training
    def _batch_epoch(self, X, codebook, sigma):
        sums, counts, sq_error = _batch_statistics(
            X, self._frame, codebook, self._n_threads
        )
        new = _smooth_statistics(
            sums, counts, codebook, self._grid, sigma, self.neighborhood
        )
        return self._bound(new), sq_error

    def _update_box(self, low, high, reset):
        """Track the bounding box of the training data seen so far (in the
        internal frame)."""
        if not reset:
            low = np.minimum(low, self._box[0])
            high = np.maximum(high, self._box[1])
        self._box = np.vstack([low, high]).astype(np.float64)

    def _bound(self, codebook):
        """Clip prototypes to the data's bounding box (Mexican hat only).

        The negative lobe of the Mexican hat pushes units away from data with a
        force that grows with their distance, which diverges geometrically;
        the other kernels only ever form convex combinations and need no bound.
        """
        if self.neighborhood == "mexican_hat":
            np.clip(codebook, self._box[0], self._box[1], out=codebook)
        return codebook

    def _check_X(self, X, *, reset, training=False):
        """``validate_data`` accepting NaN (missing values) in dense input and
        CSR / CSC matrices (CSC is converted to CSR), then the checks on
        missing values: in training data every feature needs an observed
        value; samples with none are imputed by the mean, with a warning."""
        X = validate_data(
            self,
            X,
            dtype=_FLOAT_DTYPES,
            accept_sparse="csr",
            ensure_all_finite="allow-nan",
            reset=reset,
        )
        _check_missing_values(
            X,
            require_features=training and reset,
            empty_rows="warn",
            feature_names=getattr(self, "feature_names_in_", None),
        )
        return X

    def _online_pass(self, X, codebook, random_state, sigmas, rates):
        """One shuffled pass of mini-batch updates over ``X`` (in place on the
        float64 internal ``codebook``); batch ``b`` uses ``sigmas[b]`` and
        ``rates[b]``."""
        batch = min(self.batch_size, X.shape[0])
        order = random_state.permutation(X.shape[0])
        direct = batch * codebook.size <= _DIRECT_SEARCH_ELEMENTS
        try:
            self._online_batches(X, codebook, order, batch, direct, sigmas, rates)
        finally:
            _release_scratch()

    def _online_batches(self, X, codebook, order, batch, direct, sigmas, rates):
        """Mini-batch updates over ``X[order]`` (see :meth:`_online_pass`)."""
        frame = self._frame
        for b, start in enumerate(range(0, X.shape[0], batch)):
            X_batch = X[order[start : start + batch]]
            if sparse.issparse(X_batch):
                # Never densified: sparse-dense search and update.
                search = _internal_search(codebook, frame, X.dtype)
                bmu = _search_chunk(X_batch, search, frame)[0]
                h = self._neighborhood_of(bmu, sigmas[b])
                _sparse_online_update(codebook, X_batch, frame, bmu, h, rates[b])
                self._bound(codebook)
                continue
            X_internal = np.multiply(X_batch, frame.scale, dtype=np.float64)
            X_internal -= frame.offset
            if direct:
                bmu = _direct_bmus(X_internal, codebook)
            else:
                search = _internal_search(codebook, frame, X.dtype)
                bmu = _search_chunk(X_batch, search, frame)[0]
            h = self._neighborhood_of(bmu, sigmas[b])
            self._bound(_online_update(codebook, X_internal, bmu, h, rates[b]))

    def _finalise(self, X, codebook):
        """Store the codebook in the data's dtype and the quality measures.

        One fused pass finds the exact best and second-best units and the
        distance to the best, against the stored ``codebook_`` (exactly what
        ``predict`` and ``score`` use), and reduces them chunk by chunk to the
        QE and TE sums: no per-sample array outlives its chunk.
        """
        self.codebook_ = ((codebook + self._offset) / self._scale).astype(X.dtype)
        self._fitted_grid = self._grid
        frame = self._frame
        search = _model_search(self.codebook_, frame, X.dtype)
        grid = self._grid
        one_unit = self.n_rows_ * self.n_cols_ == 1

        def work(chunk):
            best, second, dist = _search_chunk(
                chunk, search, frame, second=True, distances=True
            )
            if one_unit:  # nothing to fold on a one-unit map
                return float(dist.sum()), 0
            folded = ~_are_adjacent(best, second, **grid)
            return float(dist.sum()), int(np.count_nonzero(folded))

        total, folded = _map_chunks(
            work,
            X,
            search.n_units,
            self._n_threads,
            reduce=lambda acc, part: (acc[0] + part[0], acc[1] + part[1]),
        )
        n = X.shape[0]
        self.quantization_error_ = total / n / frame.scale
        self.topographic_error_ = folded / n

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the map to data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 data are kept in float32. NaN marks a
            missing value (dense input only).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        if _dask._is_dask_collection(X):
            return _dask._fit(self, X)
        with _restore_on_failure(self):
            # Resolved before BLAS is pinned: the default reads its limit.
            self._n_threads = _effective_n_threads(self.n_jobs)
            with _single_threaded_blas():
                return self._fit(X)

    def _start(self, X, random_state, shape):
        """Grid of ``shape = (n_rows, n_cols)`` (the resolved sizes), internal
        frame, data box and initial codebook of a new map."""
        self.n_rows_, self.n_cols_ = shape
        self.unit_coords_ = _unit_coordinates(*shape, self.topology)
        frame, low, high = _frame_from_data(X)
        self._offset, self._scale = frame.offset, frame.scale
        self._update_box(low, high, reset=True)
        return self._initial_codebook(X, self.unit_coords_, random_state)

    def _fit(self, X):
        X = self._check_X(X, reset=True, training=True)
        shape = self._resolved_shape(X)
        sigma_start, sigma_end = self._check_params_vs_input(X.shape[1], *shape)
        random_state = check_random_state(self.random_state)
        tic = time.perf_counter()
        n_units = shape[0] * shape[1]
        if n_units > X.shape[0]:
            warnings.warn(
                f"The map has more units ({n_units}) than training samples "
                f"({X.shape[0]}): many units will hold no data and the map will "
                "interpolate between few samples. Use a smaller grid "
                "(n_rows, n_cols).",
                UserWarning,
                stacklevel=4,
            )
        codebook = self._start(X, random_state, shape)

        if self.algorithm == "batch":
            for epoch in range(self.n_epochs):
                sigma = _decay(sigma_start, sigma_end, epoch, self.n_epochs, self.decay)
                codebook, sq_error = self._batch_epoch(X, codebook, sigma)
                self._log(epoch, self.n_epochs, sigma, sq_error, X.shape[0], tic)
        else:
            # The schedules advance once per mini-batch over the whole run.
            n_batches = -(-X.shape[0] // min(self.batch_size, X.shape[0]))
            n_steps = self.n_epochs * n_batches
            steps = np.arange(n_steps)
            sigmas = _decay(sigma_start, sigma_end, steps, n_steps, self.decay)
            rates = _decay(
                self.learning_rate_start,
                self.learning_rate_end,
                steps,
                n_steps,
                self.decay,
            )
            for epoch in range(self.n_epochs):
                run = slice(epoch * n_batches, (epoch + 1) * n_batches)
                self._online_pass(X, codebook, random_state, sigmas[run], rates[run])
                if self.verbose:
                    self._log(
                        epoch,
                        self.n_epochs,
                        sigmas[run][-1],
                        self._sq_error(X, codebook),
                        X.shape[0],
                        tic,
                    )

        self._finalise(X, codebook)
        self.n_iter_ = self.n_epochs
        # partial_fit after fit continues this generator instead of reseeding.
        self._random_state = random_state
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Update the map with one batch of data (one step of the schedule).

        The first call initialises the map on its batch (which also fixes the
        float64 centring offset). Call ``t`` (counting from 0, after a
        :meth:`fit` counting from ``n_epochs``) uses the neighbourhood width and
        learning rate of epoch ``min(t, n_epochs - 1)`` of the schedule, so the
        map anneals over the first ``n_epochs`` calls and then keeps adapting at
        ``sigma_end`` and ``learning_rate_end``.

        ``n_rows="auto"`` and ``n_cols="auto"`` are resolved from the first
        batch alone (into ``n_rows_`` and ``n_cols_``), and later calls keep
        that grid: a small first batch gives a small map, so give explicit
        sizes when streaming.

        With ``algorithm="online"`` the call makes one shuffled pass of mini-batch
        updates over ``X``. With ``algorithm="batch"`` it computes the batch-map
        target of ``X`` and moves every prototype towards it by the learning
        rate, ``w <- w + eta (target - w)``: with ``eta = 1`` this is an exact
        batch epoch on ``X``, smaller values keep a memory of earlier batches.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            A batch of training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Updated estimator.
        """
        if _dask._is_dask_collection(X):
            return _dask._partial_fit(self, X)
        with _restore_on_failure(self):
            # Resolved before BLAS is pinned: the default reads its limit.
            self._n_threads = _effective_n_threads(self.n_jobs)
            with _single_threaded_blas():
                return self._partial_fit(X)

    def _partial_fit(self, X):
        first = not hasattr(self, "codebook_")
        if not first:
            self._check_grid_unchanged()
        X = self._check_X(X, reset=first, training=True)
        shape = self._resolved_shape(X) if first else (self.n_rows_, self.n_cols_)
        sigma_start, sigma_end = self._check_params_vs_input(X.shape[1], *shape)
        if first or not hasattr(self, "_random_state"):
            # One generator across calls, as MiniBatchKMeans does: reseeding it
            # on every call would shuffle every batch in the same order.
            self._random_state = check_random_state(self.random_state)
        random_state = self._random_state
        if first:
            self.n_iter_ = 0
            codebook = self._start(X, random_state, shape)
        else:
            low, high = _column_ranges(X)
            frame = self._frame
            self._update_box(
                low * frame.scale - frame.offset,
                high * frame.scale - frame.offset,
                reset=False,
            )
            codebook = self._internal_codebook()
        step = self.n_iter_
        sigma = _decay(sigma_start, sigma_end, step, self.n_epochs, self.decay)
        lr = _decay(
            self.learning_rate_start,
            self.learning_rate_end,
            step,
            self.n_epochs,
            self.decay,
        )
        if self.algorithm == "batch":
            target, _ = self._batch_epoch(X, codebook, sigma)
            codebook += lr * (target - codebook)
        else:
            # Width and rate stay constant within one call.
            n_batches = -(-X.shape[0] // min(self.batch_size, X.shape[0]))
            self._online_pass(
                X,
                codebook,
                random_state,
                np.full(n_batches, sigma),
                np.full(n_batches, lr),
            )
        self._finalise(X, codebook)
        self.n_iter_ = step + 1
        return self

    # ---------------------------------------------------------------- inference
    def _sq_error(self, X, codebook):
        """Sum of squared distances to the BMUs in the internal frame (for
        progress reports of the online algorithm)."""
        return _batch_statistics(X, self._frame, codebook, self._n_threads)[2]

    def _bmus(self, X):
        """Validated exact BMU search on new data: returns (X, best)."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        best, _ = _best_matching_units(
            X, self.codebook_, n_jobs=self.n_jobs, frame=self._frame
        )
        return X, best

    def _impute(self, X):
        """Fill the missing values (NaN) of dense ``X`` from the prototype of
        each sample's best-matching unit (found on its observed features).

        Private: used by the benchmarks. Returns a new array; observed values
        are kept as they are.
        """
        X, best = self._bmus(X)
        if sparse.issparse(X):
            return X.copy()
        out = np.array(X, copy=True)
        for rows in _chunk_slices(X.shape[0], 1, X.shape[1]):
            block = out[rows]
            missing = np.isnan(block)
            if missing.any():
                block[missing] = self.codebook_[best[rows]][missing]
        return out

    def predict(self, X):
        """Index of the best-matching unit of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data.

        Returns
        -------
        units : ndarray of shape (n_samples,)
            Row-major unit index ``row * n_cols + col``.
        """
        if _dask._is_dask_collection(X):
            return _dask._predict(self, X)
        return self._bmus(X)[1]

    def fit_predict(self, X, y=None):
        """Fit the map and return the best-matching unit of every sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        units : ndarray of shape (n_samples,)
            Row-major unit index of each sample's best-matching unit.
        """
        return self.fit(X).predict(X)

    def transform(self, X):
        """Map coordinates of each sample's best-matching unit.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data.

        Returns
        -------
        X_map : ndarray of shape (n_samples, 2)
            Position ``(x, y)`` of the BMU on the grid (see ``unit_coords_``), in
            the dtype of ``X``.
        """
        if _dask._is_dask_collection(X):
            return _dask._transform(self, X)
        X, best = self._bmus(X)
        return self.unit_coords_[best].astype(X.dtype)

    def inverse_transform(self, X):
        """Decode map coordinates into data space.

        Positions between units interpolate the prototypes: bilinearly on a
        rectangular grid, barycentrically over the triangles of a hexagonal grid.
        On a unit's own position the result is exactly its prototype. Positions
        outside a planar map are clamped to its border; periodic maps wrap.

        Parameters
        ----------
        X : array-like of shape (n_samples, 2)
            Map coordinates ``(x, y)``, as returned by :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            Interpolated prototypes, in the dtype of ``codebook_``.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=_FLOAT_DTYPES, input_name="X")
        if X.shape[1] != 2:
            raise ValueError(
                "inverse_transform expects map coordinates of shape (n_samples, 2); "
                f"got {X.shape[1]} column(s)."
            )
        units, weights = _interpolation_stencil(
            np.asarray(X, dtype=np.float64), **self._fitted_grid
        )
        codebook = self.codebook_.astype(np.float64)
        out = np.einsum("nv,nvf->nf", weights, codebook[units])
        return out.astype(self.codebook_.dtype)

    def score(self, X, y=None):
        """Negative mean quantization error of ``X`` (higher is better).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Minus the mean Euclidean distance between each sample and its
            best-matching prototype.
        """
        if _dask._is_dask_collection(X):
            return _dask._score(self, X)
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        frame = self._frame
        search = _model_search(self.codebook_, frame, X.dtype)

        def work(chunk):
            return float(_search_chunk(chunk, search, frame, distances=True)[2].sum())

        # Summed chunk by chunk: no per-sample array outlives its chunk.
        total = _map_chunks(
            work,
            X,
            search.n_units,
            _effective_n_threads(self.n_jobs),
            reduce=lambda acc, part: acc + part,
        )
        return -total / X.shape[0] / frame.scale

    def get_feature_names_out(self, input_features=None):
        """Get output feature names for transformation.

        The two outputs of :meth:`transform` are the map coordinates ``(x, y)``,
        named after the class: ``["selforganizingmap0", "selforganizingmap1"]``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only used to validate feature names with the names seen in
            :meth:`fit`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            Transformed feature names.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the map is not fitted.
        """
        check_is_fitted(self)
        return super().get_feature_names_out(input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        return tags
