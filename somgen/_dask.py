"""Dask back end of the estimators: the one module that imports Dask.

The estimators call :func:`_is_dask_collection` at the top of their public
methods and hand Dask input to the functions below, before ``validate_data``
(which would materialise it). Dask is imported lazily, only once a Dask
collection has been seen (so ``dask`` is already in ``sys.modules``): the core
install never needs it.

Batch training is a sequence of map-reduces over the row blocks of X, each
calling the same private per-chunk kernels as the in-memory fit on one block:

1. *summary* (validation): per block, conversion to float by ``check_array``
   (inf, non-numeric values), column ranges and sums (``_column_ranges``,
   ``_column_sums``), observed values per feature and empty rows. Every check
   of the in-memory fit runs here, before the first epoch, with its message;
2. *grid size* (only when ``n_rows`` and ``n_cols`` are both ``"auto"``): the
   scatter around the mean of the observed values (:func:`_sized_grid`), whose
   two leading principal variances shape the grid as ``_data_sized_grid``
   does in memory;
3. *frame* (only when the data's magnitude is beyond ``2**+-40``): column sums
   of ``x * scale``, as in memory;
4. *PCA* (``init="pca"``): per-block scatter ``sum c c^T`` of the samples in
   the internal frame (``_initialization._blocks``), summed; the in-memory
   ``_pca_init`` then runs on a (n_features, n_features) matrix with the same
   scatter;
5. one pass per epoch: per-block sufficient statistics (``_batch_statistics``:
   per-unit sums, counts, squared error), summed, smoothed on the client
   (``_smooth_statistics``); the new codebook enters the next graph as one
   key, which the scheduler ships once to each worker that needs it;
6. *finalise*: quantization and topographic errors of the stored codebook.

Reduction order. Per-block results are summed by a fixed tree: groups of
``_FAN_IN`` consecutive blocks, in block order, then groups of those partial
sums, and so on. The tree depends only on the number of blocks, so the result
is bit-identical for any number of workers or threads and for any scheduler.
Within a block the in-memory kernels sum over their own chunk grid. The
in-memory fit sums the same per-chunk terms over its chunk grid of the whole
X; the two partitions of the sums differ (unless X is one block), so the
results agree to rounding (``rtol=1e-10`` is the tested contract), not
bitwise.

``SOMGenerativeModel.fit`` (:func:`_generative_fit`) validates the blocks as
its in-memory fit does, fits the map as above, then runs the passes of the
mixture (:class:`_GenerativePasses`) as map-reduces of the kernels of
``somgen._mixture``: hard-label counts and scatter (``_scatter_from_labels``,
the pooled target finished by ``_pooled_target_from_scatter``), and one
``_e_step_statistics`` per block and EM iteration, whose sums the in-memory
``_pinned_em`` consumes through its ``e_step`` hook (the M-step runs on the
client). The same tree sums them; blocks and parameters enter the kernels in
C order, so a block's sums do not depend on where it runs.

Inference (``transform``, ``predict``, ``score_samples``, ``predict_proba``,
``impute``) is lazy: ``map_blocks`` of the in-memory method on each block of
a snapshot of the fitted estimator. Feature count and names are checked
eagerly on a one-row stand-in of the input; the values are checked by the
in-memory method when the block is computed. ``score`` and the metrics
reduce per-block partial sums.
"""

import copy
import sys
import time
import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from somgen._bmu import (
    _best_matching_units,
    _column_ranges,
    _column_sums,
    _finite_max_abs,
    _Frame,
    _model_search,
    _pow2_scale,
    _search_chunk,
)
from somgen._discrete import _MAX_LEVELS, _MIN_ROWS_PER_LEVEL
from somgen._initialization import (
    _MAP_SIZE_CV_MAX_SAMPLES,
    _blocks,
    _data_sized_units,
    _grid_shape,
    _leading_components,
    _pca_init,
)
from somgen._mixture import (
    _centred_scatter,
    _e_step_statistics,
    _pooled_target_from_scatter,
    _scatter_from_labels,
    _score_samples_chunked,
    _scott_target,
    _symmetrise,
)
from somgen._parallel import _effective_n_threads, _map_chunks, _single_threaded_blas
from somgen._schedules import _decay
from somgen._topology import _are_adjacent, _unit_coordinates
from somgen._training import _add_counts, _batch_statistics, _smooth_statistics
from somgen.utils._validation import _restore_on_failure

_FLOAT_DTYPES = [np.float64, np.float32]
# Partial results summed per task of the reduction tree.
_FAN_IN = 8
_INSTALL_HINT = "pip install 'somgen[dask]'"


# ---------------------------------------------------------------- detection
def _is_dask_collection(X):
    """Whether ``X`` is a Dask collection, without importing Dask.

    A Dask collection can only exist once ``dask`` is imported, so when it is
    not in ``sys.modules`` the answer is False at the cost of a dict lookup.
    """
    dask = sys.modules.get("dask")
    if dask is None:
        return False
    is_collection = getattr(dask, "is_dask_collection", None)
    if is_collection is None:  # dask is being imported
        return False
    try:
        return bool(is_collection(X))
    except Exception:  # an object whose attributes cannot be inspected
        return False


def _dask_modules():
    """``(dask, dask.array)``, or an ImportError naming the extra."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:
        raise ImportError(
            "A Dask collection was passed, but dask.array cannot be imported "
            f"({exc}). Install the optional dependencies: {_INSTALL_HINT}."
        ) from exc
    return dask, da


class _DaskInput:
    """A Dask collection read as a 2-D dask array with one column block.

    Attributes
    ----------
    array : dask.array.Array of shape (n_samples, n_features)
        Row blocks of all features (columns are rechunked to one block).
    proxy : ndarray or DataFrame of shape (1, n_features)
        A one-row stand-in with the input's feature names and a numeric dtype:
        ``validate_data`` on it checks the feature count and names, with the
        in-memory messages, without computing anything.
    numeric : bool
        Whether every column has a numeric (bool, int, float) dtype.
    dtype : numpy.dtype
        The float dtype the data are validated to (float32 stays float32,
        anything else becomes float64, as ``check_array`` does).
    """

    def __init__(self, X):
        _, da = _dask_modules()
        self.source = X
        self.is_frame = False
        if isinstance(X, da.Array):
            array = X
        elif type(X).__module__.startswith("dask.dataframe") and hasattr(
            X, "to_dask_array"
        ):  # a dask DataFrame or Series (Delayed has every attribute)
            # Row counts per partition stay unknown (nan): the first pass
            # over the data counts them, so no extra pass is spent here.
            array = X.to_dask_array()
            self.is_frame = getattr(X, "ndim", None) == 2
        else:
            raise TypeError(
                f"{type(X).__name__} is a Dask collection somgen cannot read: "
                "pass a dask.array.Array or a dask DataFrame of numeric columns."
            )
        if array.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {array.ndim}D dask array instead. "
                "Reshape your data either using array.reshape(-1, 1) if your "
                "data has a single feature or array.reshape(1, -1) if it "
                "contains a single sample."
            )
        if len(array.chunks[1]) > 1:
            array = array.rechunk({1: -1})
        self.array = array
        n_features = array.shape[1]
        if self.is_frame:
            import pandas as pd

            meta = X._meta  # empty pandas DataFrame: names and dtypes
            self.numeric = all(pd.api.types.is_numeric_dtype(t) for t in meta.dtypes)
            self.proxy = pd.DataFrame(np.zeros((1, n_features)), columns=meta.columns)
        else:
            self.numeric = array.dtype.kind in "biuf"
            proxy_dtype = array.dtype if self.numeric else np.float64
            self.proxy = np.zeros((1, n_features), dtype=proxy_dtype)
        self.dtype = np.dtype(np.float32 if array.dtype == np.float32 else np.float64)

    @property
    def n_features(self):
        return self.array.shape[1]

    def blocks(self):
        """The row blocks as a list of Delayed objects, in order."""
        return list(self.array.to_delayed().ravel())

    def first_block(self):
        """The first block, computed (a DataFrame partition for a DataFrame)."""
        if self.is_frame:
            return self.source.partitions[0].compute()
        return self.array.blocks[0].compute()


def _check_non_numeric(estimator, data, reset, **kwargs):
    """Validate the first block in memory when the dtype is not numeric.

    ``validate_data`` on real values gives the in-memory message (a string
    that cannot be converted to float, say); values that do convert (numbers
    stored as objects) are converted block by block later.
    """
    if data.numeric:
        return
    first = data.first_block()
    if first.shape[0]:
        validate_data(estimator, first, reset=reset, **kwargs)


# ------------------------------------------------------------- block kernels
def _as_float(block, dtype):
    """A block of validated data in the fit's float dtype (no copy if it is)."""
    return np.asarray(block, dtype=dtype)


def _validated(block, allow_nan=True):
    """A block validated as ``check_array`` validates in-memory data."""
    return check_array(
        block,
        dtype=_FLOAT_DTYPES,
        ensure_all_finite="allow-nan" if allow_nan else True,
        ensure_min_samples=0,
        input_name="X",
    )


def _summary_of(X):
    """Column statistics of one validated block.

    Returns ``(n, low, high, total, counts, n_empty, empty)``: the number of
    rows, the per-feature range and sum (NaN ignored), the per-feature counts
    of observed values (None without NaN) and the number and first ten local
    indices of the rows with no observed value.
    """
    low, high = _column_ranges(X)
    total, counts = _column_sums(X, 1.0)
    n_empty, empty = 0, []
    if counts is not None:
        rows = np.flatnonzero(np.isnan(X).all(axis=1))
        n_empty, empty = int(rows.size), rows[:10].tolist()
    return X.shape[0], low, high, total, counts, n_empty, empty


def _block_summary(block):
    """Validation and column statistics of one block (pass 1)."""
    return _summary_of(_validated(block))


def _block_column_sums(block, dtype, scale):
    return _column_sums(_as_float(block, dtype), scale)[0]


def _block_scatter(block, dtype, frame):
    """``sum_i c_i c_i^T`` of the block's samples in the internal frame, with
    missing values at the mean (0), as the in-memory PCA accumulates it."""
    X = _as_float(block, dtype)
    scatter = np.zeros((X.shape[1], X.shape[1]))
    with _single_threaded_blas():
        for rows in _blocks(X, frame):
            scatter += rows.T @ rows
    return scatter


def _block_statistics(block, dtype, frame, codebook):
    """Per-unit sums, counts and squared error of one block (a batch epoch)."""
    return _batch_statistics(_as_float(block, dtype), frame, codebook, n_jobs=1)


def _block_quality(block, dtype, codebook, frame, grid, second):
    """Sum of the distances to the best unit (internal units) and, with
    ``second``, the number of samples whose two best units are not adjacent,
    against the stored (data-dtype) ``codebook`` as ``predict`` sees it."""
    X = _as_float(block, dtype)
    if X.shape[0] == 0:
        return 0.0, 0
    search = _model_search(codebook, frame, X.dtype)
    one_unit = codebook.shape[0] == 1

    def work(chunk):
        best, second_best, dist = _search_chunk(
            chunk, search, frame, second=second, distances=True
        )
        if not second or one_unit:
            return float(dist.sum()), 0
        folded = ~_are_adjacent(best, second_best, **grid)
        return float(dist.sum()), int(np.count_nonzero(folded))

    return _map_chunks(
        work, X, search.n_units, 1, reduce=lambda a, b: (a[0] + b[0], a[1] + b[1])
    )


def _block_metrics(block, codebook, grid, connectivity):
    """Validated metrics of one block against a plain codebook: ``(n,
    distance sum (data units), folded count, hits, n_empty, empty)``."""
    X = _validated(block)
    n, _, _, _, _, n_empty, empty = _summary_of(X)
    n_units = codebook.shape[0]
    if n == 0 or n_empty:
        return n, 0.0, 0, np.zeros(n_units, dtype=np.int64), n_empty, empty
    best, second, dist = _best_matching_units(
        X, codebook, second=grid is not None, n_jobs=1, distances=True
    )
    folded = 0
    if grid is not None and n_units > 1:
        adjacent = _are_adjacent(best, second, connectivity=connectivity, **grid)
        folded = int(np.count_nonzero(~adjacent))
    hits = np.bincount(best, minlength=n_units)
    return n, float(dist.sum()), folded, hits, n_empty, empty


def _add_statistics(*parts):
    """Sum of batch statistics ``(sums, counts, sq_error)`` in argument order
    (inputs untouched: tasks stay pure, so Dask may rerun them)."""
    sums = np.array(parts[0][0], dtype=np.float64, copy=True)
    counts = np.array(parts[0][1], dtype=np.float64, copy=True)
    sq_error = parts[0][2]
    for part in parts[1:]:
        sums += part[0]
        counts = _add_counts(counts, part[1])
        sq_error += part[2]
    return sums, counts, sq_error


def _add_arrays(*parts):
    total = np.array(parts[0], copy=True)
    for part in parts[1:]:
        total += part
    return total


def _add_pairs(*parts):
    # Copies: Dask may retry a task or reuse its inputs, so they stay intact.
    first, second = (
        part.copy() if isinstance(part, np.ndarray) else part for part in parts[0]
    )
    for a, b in parts[1:]:
        first += a
        second += b
    return first, second


def _tree_reduce(parts, combine):
    """One Delayed: ``combine`` over ``parts`` by a fixed tree in block order."""
    import dask

    if not parts:
        raise ValueError("Nothing to reduce.")
    while len(parts) > 1:
        parts = [
            dask.delayed(combine, pure=True)(*parts[i : i + _FAN_IN])
            for i in range(0, len(parts), _FAN_IN)
        ]
    return parts[0]


def _compute(*objects):
    import dask

    return dask.compute(*objects)


# ---------------------------------------------------------------- validation
def _missing_message(n_empty, rows):
    """The prefix of ``_check_missing_values``' message on empty rows."""
    return (
        f"Input X has {n_empty} sample(s) with no observed value (only "
        f"NaN), at row(s) {rows[:10]}" + (" ..." if n_empty > 10 else "")
    )


class _Summary:
    """Pass 1 reduced on the client (per-block results kept in block order)."""

    def __init__(self, parts):
        self.lengths = np.array([p[0] for p in parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.n = int(self.offsets[-1])
        d = parts[0][1].shape[0]
        self.low = np.full(d, np.inf)
        self.high = np.full(d, -np.inf)
        self.total = np.zeros(d)
        observed = np.zeros(d)
        any_missing = False
        self.n_empty, self.empty = 0, []
        for start, (n, low, high, total, counts, n_empty, empty) in zip(
            self.offsets[:-1], parts, strict=True
        ):
            np.fmin(self.low, low, out=self.low)
            np.fmax(self.high, high, out=self.high)
            self.total += total
            if counts is None:
                observed += n
            else:
                any_missing = True
                observed += counts
            self.n_empty += n_empty
            self.empty.extend(int(start) + r for r in empty)
        self.counts = observed if any_missing else None

    def check_missing(self, require_features, empty_rows, feature_names, stacklevel=2):
        """``_check_missing_values`` on the reduced counts (same messages, with
        global row indices)."""
        if self.counts is None:
            return
        if require_features and not self.counts.all():
            never = np.flatnonzero(self.counts == 0)[:10].tolist()
            if feature_names is not None:
                never = [f"{j} ({feature_names[j]!r})" for j in never]
            raise ValueError(
                f"Input X has no observed value in feature(s) {never} "
                f"(only NaN): a feature never observed cannot be learned. Drop it "
                "or provide at least one value."
            )
        if self.n_empty:
            message = _missing_message(self.n_empty, self.empty)
            if empty_rows == "raise":
                raise ValueError(
                    message + ": their distance to a prototype is undefined."
                )
            warnings.warn(
                message + ": they are imputed by the training mean (their best "
                "unit is the unit closest to the mean) and do not move any "
                "prototype.",
                UserWarning,
                stacklevel=stacklevel + 1,
            )


def _summarise(data):
    """Pass 1 over the blocks: validation and column statistics."""
    import dask

    parts = [dask.delayed(_block_summary, pure=True)(b) for b in data.blocks()]
    return _Summary(_compute(*parts))


def _check_not_empty(estimator, data, summary, reset, **kwargs):
    """The in-memory error for data without samples."""
    if summary.n == 0:
        validate_data(
            estimator, np.empty((0, data.n_features), data.dtype), reset=reset, **kwargs
        )


# ------------------------------------------------------------------ training
def _online_error(method):
    return ValueError(
        f"{method} with algorithm='online' is in-memory only: the online rule "
        "updates the map sample by sample, which is sequential. Use "
        "algorithm='batch' (one map-reduce per epoch) to train on a Dask "
        "array, or bring the data into memory first with X.compute()."
    )


def _frame(data, summary):
    """The in-memory ``_frame_from_data``, on the reduced column statistics."""
    import dask

    low, high = summary.low, summary.high
    scale_raw = _pow2_scale(_finite_max_abs(low, high))
    total = summary.total
    if scale_raw != 1.0:
        # Scaling by a power of two commutes with the sums only in the normal
        # range: sum x * scale block by block, as the in-memory fit does.
        parts = [
            dask.delayed(_block_column_sums, pure=True)(block, data.dtype, scale_raw)
            for block in data.blocks()
        ]
        (total,) = _compute(_tree_reduce(parts, _add_arrays))
    if summary.counts is None:
        mean = total / summary.n
    else:
        counts = summary.counts
        mean = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
    low = low * scale_raw - mean
    high = high * scale_raw - mean
    scale_centred = _pow2_scale(_finite_max_abs(low, high))
    frame = _Frame(mean * scale_centred, scale_raw * scale_centred)
    return frame, low * scale_centred, high * scale_centred


def _same_scatter(scatter, n_samples):
    """A (m, n_features) matrix ``Y`` with ``Y^T Y / m == scatter / n_samples``.

    The in-memory ``_pca_init`` takes data and accumulates ``X^T X / n``; fed
    with ``Y`` it computes the same leading components from the reduced
    scatter (``m = max(n_features, 2)`` rows: ``Y = sqrt(m / n) L^T`` for a
    square root ``L L^T`` of the scatter, padded with zero rows).
    """
    d = scatter.shape[0]
    if n_samples < 2:
        return np.zeros((n_samples, d))
    values, vectors = np.linalg.eigh((scatter + scatter.T) / 2.0)
    root = vectors * np.sqrt(np.maximum(values, 0.0))
    m = max(d, 2)
    proxy = np.zeros((m, d))
    proxy[:d] = root.T * np.sqrt(m / n_samples)
    return proxy


class _Rows:
    """Random access to the rows of the blocks (for ``init="sample"``)."""

    def __init__(self, data, summary):
        self.data = data
        self.offsets = summary.offsets
        self.shape = (summary.n, data.n_features)

    def __getitem__(self, idx):
        import dask

        idx = np.asarray(idx)
        block_of = np.searchsorted(self.offsets, idx, side="right") - 1
        blocks = self.data.blocks()
        wanted = np.unique(block_of)
        taken = _compute(
            *[
                dask.delayed(_take, pure=True)(
                    blocks[b], self.data.dtype, idx[block_of == b] - self.offsets[b]
                )
                for b in wanted
            ]
        )
        out = np.empty((idx.size, self.shape[1]), dtype=self.data.dtype)
        for b, rows in zip(wanted, taken, strict=True):
            out[block_of == b] = rows
        return out


def _take(block, dtype, rows):
    return _as_float(block, dtype)[rows]


def _start(som, data, summary, random_state, shape):
    """``SelfOrganizingMap._start`` on Dask data: grid of ``shape`` (the
    resolved sizes), frame, box, initial codebook."""
    import dask

    som.n_rows_, som.n_cols_ = shape
    som.unit_coords_ = _unit_coordinates(*shape, som.topology)
    frame, low, high = _frame(data, summary)
    som._offset, som._scale = frame.offset, frame.scale
    som._update_box(low, high, reset=True)
    if isinstance(som.init, str) and som.init == "pca":
        parts = [
            dask.delayed(_block_scatter, pure=True)(block, data.dtype, frame)
            for block in data.blocks()
        ]
        (scatter,) = _compute(_tree_reduce(parts, _add_arrays))
        proxy = _same_scatter(scatter, summary.n)
        return _pca_init(proxy, som.unit_coords_, random_state)
    # An array init reads no data; "random" only the box and the shape;
    # "sample" the rows it draws.
    return som._initial_codebook(_Rows(data, summary), som.unit_coords_, random_state)


def _epoch_statistics(som, data, codebook):
    """Per-unit sums, counts and squared error of all blocks (one map-reduce)."""
    import dask

    frame = som._frame
    codebook = dask.delayed(np.asarray(codebook), pure=True)
    parts = [
        dask.delayed(_block_statistics, pure=True)(block, data.dtype, frame, codebook)
        for block in data.blocks()
    ]
    (stats,) = _compute(_tree_reduce(parts, _add_statistics))
    return stats


def _epoch(som, data, codebook, sigma):
    """``SelfOrganizingMap._batch_epoch`` over the blocks."""
    sums, counts, sq_error = _epoch_statistics(som, data, codebook)
    new = _smooth_statistics(sums, counts, codebook, som._grid, sigma, som.neighborhood)
    return som._bound(new), sq_error


def _finalise(som, data, summary, codebook):
    """``SelfOrganizingMap._finalise`` over the blocks."""
    import dask

    som.codebook_ = ((codebook + som._offset) / som._scale).astype(data.dtype)
    som._fitted_grid = som._grid
    frame = som._frame
    stored = dask.delayed(som.codebook_, pure=True)
    parts = [
        dask.delayed(_block_quality, pure=True)(
            block, data.dtype, stored, frame, som._grid, True
        )
        for block in data.blocks()
    ]
    (total, folded) = _compute(_tree_reduce(parts, _add_pairs))[0]
    som.quantization_error_ = total / summary.n / frame.scale
    som.topographic_error_ = folded / summary.n


def _validate_training(som, X, reset):
    """Every check of ``SelfOrganizingMap._check_X(training=True)`` and of the
    parameters against the input, before the first epoch.

    The checks that need no pass over the data (feature count and names, the
    parameters of a grid whose sizes are known) come first, so that they fail
    fast on large data; then pass 1 validates the values. ``"auto"`` sizes of
    a new map (``reset``) are resolved after it, as in memory, the data-sized
    grid from one more pass (the scatter around the mean, :func:`_sized_grid`).
    Returns the input, its summary, the grid shape ``(n_rows, n_cols)`` and
    the resolved ``(sigma_start, sigma_end)``.
    """
    data = _DaskInput(X)
    kwargs = dict(dtype=_FLOAT_DTYPES, ensure_all_finite="allow-nan")
    validate_data(som, data.proxy, reset=reset, **kwargs)
    if not reset:
        shape = (som.n_rows_, som.n_cols_)
    elif not isinstance(som.n_rows, str) and not isinstance(som.n_cols, str):
        shape = (int(som.n_rows), int(som.n_cols))
    else:
        shape = None  # "auto": needs the data
    if shape is not None:
        sigmas = som._check_params_vs_input(data.n_features, *shape)
    _check_non_numeric(som, data, reset, **kwargs)
    summary = _summarise(data)
    _check_not_empty(som, data, summary, reset, **kwargs)
    summary.check_missing(
        require_features=reset,
        empty_rows="warn",
        feature_names=getattr(som, "feature_names_in_", None),
        stacklevel=5,  # the user's call of fit or partial_fit
    )
    if shape is None:
        shape = _auto_grid_shape(som, data, summary)
        sigmas = som._check_params_vs_input(data.n_features, *shape)
    return data, summary, shape, sigmas


def _auto_grid_shape(som, data, summary):
    """``SelfOrganizingMap._resolved_shape`` of validated Dask data: the data-sized
    grid of :func:`_sized_grid`, centred on the mean of the observed values as
    the in-memory ``_data_sized_grid`` is."""
    from somgen._som import _resolve_grid_shape

    column_sums = summary.total
    if summary.counts is not None:  # NaN: the mean of the observed values
        column_sums = summary.total / summary.counts * summary.n
    return _resolve_grid_shape(
        som.n_rows,
        som.n_cols,
        summary.n,
        som.topology,
        som.periodic,
        lambda: _sized_grid(data.array, summary.lengths, column_sums),
    )


def _fit(som, X):
    """``SelfOrganizingMap.fit`` on a Dask collection (batch algorithm)."""
    if som.algorithm != "batch":
        raise _online_error("fit")
    with _restore_on_failure(som):
        som._n_threads = _effective_n_threads(som.n_jobs)
        data, summary, shape, (sigma_start, sigma_end) = _validate_training(
            som, X, reset=True
        )
        random_state = check_random_state(som.random_state)
        n_units = shape[0] * shape[1]
        if n_units > summary.n:
            warnings.warn(
                f"The map has more units ({n_units}) than training samples "
                f"({summary.n}): many units will hold no data and the map will "
                "interpolate between few samples. Use a smaller grid "
                "(n_rows, n_cols).",
                UserWarning,
                stacklevel=4,
            )
        tic = time.perf_counter()
        codebook = _start(som, data, summary, random_state, shape)
        for epoch in range(som.n_epochs):
            sigma = _decay(sigma_start, sigma_end, epoch, som.n_epochs, som.decay)
            codebook, sq_error = _epoch(som, data, codebook, sigma)
            som._log(epoch, som.n_epochs, sigma, sq_error, summary.n, tic)
        _finalise(som, data, summary, codebook)
        som.n_iter_ = som.n_epochs
        som._random_state = random_state
    return som


def _partial_fit(som, X):
    """``SelfOrganizingMap.partial_fit`` on a Dask collection.

    With the batch algorithm a call is one batch epoch on X blended by the
    learning rate, so it is one map-reduce like an epoch of :func:`_fit`.
    """
    if som.algorithm != "batch":
        raise _online_error("partial_fit")
    with _restore_on_failure(som):
        som._n_threads = _effective_n_threads(som.n_jobs)
        first = not hasattr(som, "codebook_")
        if not first:
            som._check_grid_unchanged()
        data, summary, shape, (sigma_start, sigma_end) = _validate_training(
            som, X, reset=first
        )
        if first or not hasattr(som, "_random_state"):
            som._random_state = check_random_state(som.random_state)
        if first:
            som.n_iter_ = 0
            codebook = _start(som, data, summary, som._random_state, shape)
        else:
            frame = som._frame
            som._update_box(
                summary.low * frame.scale - frame.offset,
                summary.high * frame.scale - frame.offset,
                reset=False,
            )
            codebook = som._internal_codebook()
        step = som.n_iter_
        sigma = _decay(sigma_start, sigma_end, step, som.n_epochs, som.decay)
        rate = _decay(
            som.learning_rate_start,
            som.learning_rate_end,
            step,
            som.n_epochs,
            som.decay,
        )
        target, _ = _epoch(som, data, codebook, sigma)
        codebook += rate * (target - codebook)
        _finalise(som, data, summary, codebook)
        som.n_iter_ = step + 1
    return som


# ----------------------------------------------------------------- inference
def _block_call(block, estimator, method, names):
    """``estimator.<method>(block)`` as a NumPy array (the block function of
    the lazy methods). The block is named like the training data, whose names
    were checked once on the client, so blocks do not warn one by one. An
    empty block gives an empty output of the right shape and dtype (the
    estimators reject empty input)."""
    if block.shape[0] == 0:
        stand_in = np.zeros((1, block.shape[1]), dtype=block.dtype)
        return _block_call(stand_in, estimator, method, names)[:0]
    if names is not None:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - names come from a DataFrame
            pass
        else:
            block = pd.DataFrame(block, columns=names, copy=False)
    out = getattr(estimator, method)(block)
    return out.to_numpy() if hasattr(out, "to_numpy") else np.asarray(out)


def _lazy(estimator, X, method, *, columns, dtype, check):
    """``map_blocks`` of ``estimator.<method>`` over the row blocks of X.

    ``columns`` is None for a 1-D output, else the number of output columns
    (``"features"`` for n_features); ``dtype`` the output dtype (``"input"``
    for the float dtype of X). ``check`` validates the one-row stand-in of X
    (feature count and names) eagerly. Nothing is computed.
    """
    dask, da = _dask_modules()
    check_is_fitted(estimator)
    data = _DaskInput(X)
    check(data.proxy)
    if dtype == "input":
        dtype = data.dtype
    snapshot = dask.delayed(copy.deepcopy(estimator), pure=True)
    names = getattr(estimator, "feature_names_in_", None)
    names = None if names is None else list(names)
    array = data.array
    if columns is None:
        return da.map_blocks(
            _block_call,
            array,
            snapshot,
            method,
            names,
            drop_axis=1,
            dtype=dtype,
            meta=np.empty((0,), dtype=dtype),
        )
    if columns == "features":
        columns = data.n_features
    return da.map_blocks(
        _block_call,
        array,
        snapshot,
        method,
        names,
        chunks=(array.chunks[0], (columns,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )


def _som_check(som):
    return lambda proxy: som._check_X(proxy, reset=False)


def _transform(som, X):
    """Lazy ``SelfOrganizingMap.transform``: (n_samples, 2), X's float dtype."""
    return _lazy(som, X, "transform", columns=2, dtype="input", check=_som_check(som))


def _predict(som, X):
    """Lazy ``SelfOrganizingMap.predict``: (n_samples,), int64."""
    return _lazy(som, X, "predict", columns=None, dtype=np.int64, check=_som_check(som))


def _score(som, X):
    """``SelfOrganizingMap.score`` by reduction of per-block distance sums."""
    import dask

    check_is_fitted(som)
    data = _DaskInput(X)
    kwargs = dict(dtype=_FLOAT_DTYPES, ensure_all_finite="allow-nan")
    validate_data(som, data.proxy, reset=False, **kwargs)
    summary = _summarise(data)
    _check_not_empty(som, data, summary, False, **kwargs)
    summary.check_missing(
        False, "warn", getattr(som, "feature_names_in_", None), stacklevel=3
    )
    frame = som._frame
    stored = dask.delayed(som.codebook_, pure=True)
    parts = [
        dask.delayed(_block_quality, pure=True)(
            block, data.dtype, stored, frame, som._grid, False
        )
        for block in data.blocks()
    ]
    total, _ = _compute(_tree_reduce(parts, _add_pairs))[0]
    return -total / summary.n / frame.scale


def _generative_check(model, **kwargs):
    return lambda proxy: validate_data(
        model, proxy, dtype=np.float64, reset=False, **kwargs
    )


def _score_samples(model, X):
    """Lazy ``SOMGenerativeModel.score_samples``: (n_samples,), float64."""
    return _lazy(
        model,
        X,
        "score_samples",
        columns=None,
        dtype=np.float64,
        check=_generative_check(model),
    )


def _generative_score(model, X):
    """``SOMGenerativeModel.score``: mean of the lazy log-densities, reduced by
    Dask (a fixed tree over the blocks)."""
    return float(_score_samples(model, X).mean().compute())


def _predict_proba(model, X):
    """Lazy ``SOMGenerativeModel.predict_proba``: (n_samples, n_units)."""
    return _lazy(
        model,
        X,
        "predict_proba",
        columns=model.means_.shape[0],
        dtype=np.float64,
        check=_generative_check(model),
    )


def _generative_predict(model, X):
    """Lazy ``SOMGenerativeModel.predict``: (n_samples,), int64."""
    return _lazy(
        model,
        X,
        "predict",
        columns=None,
        dtype=np.int64,
        check=_generative_check(model),
    )


def _impute(model, X):
    """Lazy ``SOMGenerativeModel.impute``: (n_samples, n_features), float64
    (a dask array whatever ``set_output`` says)."""
    return _lazy(
        model,
        X,
        "impute",
        columns="features",
        dtype=np.float64,
        check=_generative_check(model, ensure_all_finite="allow-nan"),
    )


# ------------------------------------------------------- generative training
def _c_float64(block):
    """A block as a C-ordered float64 array (the layout sets the order of the
    sums, and a block shipped between workers arrives C-ordered)."""
    return np.ascontiguousarray(block, dtype=np.float64)


def _block_validated_sums(block, name):
    """Validation of one block as ``SOMGenerativeModel.fit`` validates X (float64,
    finite; the messages name the estimator), and its row count and column
    sums."""
    X = check_array(
        block,
        dtype=np.float64,
        input_name="X",
        estimator=name,
        ensure_min_samples=0,
        ensure_all_finite="allow-nan",
    )
    if X.size and np.isnan(np.min(X)):
        raise ValueError(
            f"Input X contains NaN: {name} fits dask data without missing "
            "values only. Fit in memory (a NumPy array), where NaN are handled "
            "by EM with missing data, or impute the dask data first."
        )
    # Up to _MAX_LEVELS + 1 distinct values per column: enough to tell the
    # columns that "auto" would dequantize in memory.
    levels = [np.unique(column)[: _MAX_LEVELS + 1] for column in X.T]
    return X.shape[0], X.sum(axis=0), levels


def _block_label_statistics(block, som, means, covariance_type):
    """Hard-label counts and scatter of one block around ``means``, the labels
    being the map's best-matching units (the first pass of the mixture)."""
    X = _c_float64(block)
    units = _block_units(X, som)
    with _single_threaded_blas():
        return _scatter_from_labels(X, units, means, covariance_type)


def _block_units(block, som):
    X = _c_float64(block)
    if X.shape[0] == 0:  # predict rejects an empty block
        return np.zeros(0, dtype=np.int64)
    with _single_threaded_blas():
        return np.asarray(som.predict(X))


def _units(array, som):
    """The map's best-matching units of all samples, gathered on the client."""
    import dask

    snapshot = dask.delayed(copy.deepcopy(som), pure=True)
    parts = [
        dask.delayed(_block_units, pure=True)(block, snapshot)
        for block in array.to_delayed().ravel()
    ]
    return np.concatenate(_compute(*parts))


def _block_centred_scatter(block, centre, covariance_type):
    X = _c_float64(block)
    with _single_threaded_blas():
        return _centred_scatter(X, centre, covariance_type)


def _block_e_step(block, share, parameters, covariance_type, prior, options):
    """``_e_step_statistics`` of one block. ``share`` is the block's fraction of
    the samples: the block's part of ``prior`` (the accuracy scale of the
    scatter, given for the whole data). BLAS runs on one thread, as in every
    block kernel: the same sums in any process, whatever its BLAS settings."""
    weights, means, precisions_cholesky = parameters
    X = _c_float64(block)
    with _single_threaded_blas():
        return _e_step_statistics(
            X,
            weights,
            means,
            precisions_cholesky,
            covariance_type,
            prior=prior * share,
            **options,
        )


def _block_log_density_sum(block, parameters, covariance_type):
    weights, means, precisions_cholesky = parameters
    X = _c_float64(block)
    if X.shape[0] == 0:
        return 0.0
    with _single_threaded_blas():
        log_density = _score_samples_chunked(
            X, weights, means, precisions_cholesky, covariance_type
        )
    return float(np.sum(log_density))


def _add_tuples(*parts):
    """Element-wise sum of tuples of arrays and floats in argument order; items
    past the summed ones (the E-step's ``shift``, the same in every block) are
    taken from the first part. Inputs untouched."""
    first = parts[0]
    n_summed = 5 if len(first) == 6 else len(first)
    total = list(first)
    for part in parts[1:]:
        for i in range(n_summed):
            total[i] = total[i] + part[i]
    return tuple(total)


def _parameters(*arrays):
    """The mixture's parameters as one Delayed, in C order.

    The layout of an array enters the order of the sums that read it (the
    Cholesky factors of ``_compute_precision_cholesky`` are not C-ordered),
    and distributed's serialization makes an array C-ordered when it ships it
    to another worker: C order everywhere gives every block the same sums
    whether it runs on the client, on a worker or after a transfer.
    """
    import dask

    return dask.delayed(tuple(np.ascontiguousarray(a) for a in arrays), pure=True)


class _GenerativePasses:
    """The passes of ``SOMGenerativeModel``'s fit over the blocks of X.

    Each method is one map-reduce: per-block statistics of the in-memory
    kernels of ``somgen._mixture``, summed by the fixed tree of
    :func:`_tree_reduce`, returned to the client, where the in-memory code
    finishes them (``SOMGenerativeModel._fit_mixture`` and ``_pinned_em``).
    """

    def __init__(self, array, lengths, column_sums, som, covariance_type):
        self.blocks = list(array.to_delayed().ravel())
        self.n_samples = int(np.sum(lengths))
        self.shares = [float(n) / self.n_samples for n in lengths]
        self.column_sums = column_sums
        self.som = som
        self.covariance_type = covariance_type

    def _reduce(self, parts, combine=_add_tuples):
        return _compute(_tree_reduce(parts, combine))[0]

    def label_statistics(self, means):
        """Hits (float), scatter around ``means`` by the map's best-matching
        units, and the pooled shrinkage target (``_pooled_target``)."""
        import dask

        som = dask.delayed(copy.deepcopy(self.som), pure=True)
        stored = dask.delayed(np.ascontiguousarray(means), pure=True)
        parts = [
            dask.delayed(_block_label_statistics, pure=True)(
                block, som, stored, self.covariance_type
            )
            for block in self.blocks
        ]
        nk, scatter = self._reduce(parts)
        target = _pooled_target_from_scatter(
            nk, scatter, self.n_samples, self.covariance_type
        )
        if target is None:  # no degree of freedom left: Scott's fallback
            centre = self.column_sums / self.n_samples
            parts = [
                dask.delayed(_block_centred_scatter, pure=True)(
                    block, centre, self.covariance_type
                )
                for block in self.blocks
            ]
            total = self._reduce(parts, _add_arrays)
            target = _scott_target(total, self.n_samples, self.covariance_type)
        return nk, scatter, target

    def e_step(self, weights, means, precisions_cholesky, covariance_type, **options):
        """``_e_step_statistics`` of all samples, as a sum over the blocks."""
        import dask

        prior = options.pop("prior", 0.0)
        parameters = _parameters(weights, means, precisions_cholesky)
        parts = [
            dask.delayed(_block_e_step, pure=True)(
                block, share, parameters, covariance_type, prior, options
            )
            for block, share in zip(self.blocks, self.shares, strict=True)
        ]
        objective, log_likelihood, nk, scatter, *moments = self._reduce(parts)
        # Each block's scatter is symmetrised; so is their sum, up to rounding.
        scatter = _symmetrise(scatter, covariance_type)
        return (objective, log_likelihood, nk, scatter, *moments)

    def mean_log_density(self, weights, means, precisions_cholesky):
        """Mean log-density of the samples (``lower_bound_`` of ``refine=None``)."""
        import dask

        parameters = _parameters(weights, means, precisions_cholesky)
        parts = [
            dask.delayed(_block_log_density_sum, pure=True)(
                block, parameters, self.covariance_type
            )
            for block in self.blocks
        ]
        return float(self._reduce(parts, _add_arrays) / self.n_samples)


def _sized_grid(data, lengths, column_sums):
    """``_data_sized_grid`` of the data: the two leading principal variances
    from the reduced scatter around the mean (the in-memory blocks and frame
    on each Dask block)."""
    import dask

    n_samples = int(np.sum(lengths))
    n_units = _data_sized_units(n_samples)
    if n_units == 1:
        return 1, 1
    frame = _Frame(offset=column_sums / n_samples, scale=1.0)
    parts = [
        dask.delayed(_block_scatter, pure=True)(block, np.float64, frame)
        for block in data.to_delayed().ravel()
    ]
    (scatter,) = _compute(_tree_reduce(parts, _add_arrays))
    proxy = _same_scatter(scatter, n_samples)
    _, variances = _leading_components(proxy, np.random.RandomState(0))
    return _grid_shape(n_units, variances)


def _check_no_discrete(model, parts, n_samples, n_features):
    """Raise if the in-memory fit would dequantize columns (not implemented
    for Dask input), from the blocks' distinct values."""
    discrete = model.discrete_features
    if discrete is None:
        return
    if not isinstance(discrete, str):
        if np.asarray(discrete).size and np.asarray(discrete).dtype != bool:
            found = np.unique(np.asarray(discrete)).tolist()
        else:
            found = np.flatnonzero(np.asarray(discrete, dtype=bool)).tolist()
    else:
        found = []
        for j in range(n_features):
            values = np.unique(np.concatenate([p[2][j] for p in parts]))
            if (
                2 <= values.size <= _MAX_LEVELS
                and n_samples >= _MIN_ROWS_PER_LEVEL * values.size
            ):
                found.append(j)
    if found:
        raise ValueError(
            f"Columns {found} are discrete (few distinct values): the in-memory "
            "fit dequantizes them (discrete_features), which the Dask fit does "
            "not implement. Pass discrete_features=None to treat them as "
            "continuous, or fit in memory."
        )


def _generative_fit(model, X):
    """``SOMGenerativeModel.fit`` on a Dask collection.

    The checks of the in-memory fit run first (feature count and names on a
    one-row stand-in, then one validation pass over the blocks); the map is
    fitted on the blocks (:func:`_fit`); hits, the residual scatter and every
    EM iteration are then map-reduces (:class:`_GenerativePasses`) whose sums
    the in-memory M-step consumes on the client. A ``latent_density``
    estimator is fitted in memory, as in memory, on the units of all samples
    (one integer per sample gathered on the client); ``"auto"``
    (cross-validation on folds of the samples) is in-memory only.
    """
    _, da = _dask_modules()
    if isinstance(model.latent_density, str):  # "auto"
        raise ValueError(
            "latent_density='auto' is in-memory only: its cross-validation "
            "refits the mixture on folds of the samples. Fit on a Dask array "
            "with latent_density=None or a latent density estimator, or "
            "bring the data into memory first with X.compute()."
        )
    with _restore_on_failure(model):
        data = _DaskInput(X)
        kwargs = dict(dtype=np.float64)
        validate_data(model, data.proxy, reset=True, **kwargs)
        _check_non_numeric(model, data, True, **kwargs)
        name = type(model).__name__
        parts = _compute(
            *[
                _dask_delayed(_block_validated_sums)(block, name)
                for block in data.blocks()
            ]
        )
        lengths = [int(p[0]) for p in parts]
        n_samples = int(np.sum(lengths))
        if n_samples == 0:
            validate_data(model, np.empty((0, data.n_features)), reset=True, **kwargs)
        column_sums = np.zeros(data.n_features)
        for p in parts:  # block order
            column_sums = column_sums + p[1]
        _check_no_discrete(model, parts, n_samples, data.n_features)
        # The validated float64 data, with the row counts now known.
        array = data.array
        if array.dtype != np.float64:
            array = array.map_blocks(_as_float, np.float64, dtype=np.float64)
        array = da.Array(
            array.dask,
            array.name,
            chunks=(tuple(lengths), (data.n_features,)),
            dtype=np.float64,
        )
        random_state = check_random_state(model.random_state)
        if model.som is None and n_samples <= _MAP_SIZE_CV_MAX_SAMPLES:
            # Small data: the map size is chosen by cross-validation in
            # memory, as for an in-memory fit (the map of the chosen size is
            # the in-memory one too; the EM passes below stay on the blocks).
            som = model._fit_map(np.asarray(array.compute()), random_state)
        else:
            som = model._fit_map(
                array,
                random_state,
                sized_grid=lambda _: _sized_grid(array, lengths, column_sums),
            )
        units = None  # read only by a latent density
        if model.latent_density is not None:
            # The latent density is fitted in memory on one point per sample,
            # with the in-memory noise stream: only the units travel.
            units = _units(array, som)
        passes = _GenerativePasses(
            array, lengths, column_sums, som, model.covariance_type
        )
        return model._fit_from_map(array, som, units, random_state, passes=passes)


def _dask_delayed(func):
    import dask

    return dask.delayed(func, pure=True)


# ------------------------------------------------------------------- metrics
def _metrics(X, codebook, grid=None, connectivity=None):
    """Reduced ``(n, distance sum, folded, hits)`` of X against a codebook,
    with the checks of ``somgen.metrics._check_data``."""
    import dask

    from somgen.metrics import _check_data

    data = _DaskInput(X)
    _check_data(data.proxy, codebook)  # feature count, same message
    stored = dask.delayed(codebook, pure=True)
    parts = [
        dask.delayed(_block_metrics, pure=True)(block, stored, grid, connectivity)
        for block in data.blocks()
    ]
    parts = _compute(*parts)
    lengths = [p[0] for p in parts]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n = int(offsets[-1])
    if n == 0:
        _check_data(np.empty((0, data.n_features), data.dtype), codebook)
    n_empty = sum(p[4] for p in parts)
    if n_empty:
        rows = [
            int(start) + r
            for start, p in zip(offsets[:-1], parts, strict=True)
            for r in p[5]
        ]
        raise ValueError(
            _missing_message(n_empty, rows)
            + ": their distance to a prototype is undefined."
        )
    # Block results in block order (the lists are small).
    total = 0.0
    folded = 0
    hits = np.zeros(codebook.shape[0], dtype=np.int64)
    for p in parts:
        total += p[1]
        folded += p[2]
        hits += p[3]
    return n, total, folded, hits


def _quantization_error(X, codebook):
    """``somgen.metrics.quantization_error`` on a Dask collection."""
    from somgen.metrics import _check_codebook

    codebook = _check_codebook(codebook)
    n, total, _, _ = _metrics(X, codebook)
    return float(total / n)


def _topographic_error(X, codebook, grid, connectivity):
    """``somgen.metrics.topographic_error`` on a Dask collection."""
    from somgen.metrics import _check_codebook, _check_grid_params

    _check_grid_params(connectivity=connectivity, **grid)
    codebook = _check_codebook(codebook, grid["n_rows"], grid["n_cols"])
    n, _, folded, _ = _metrics(X, codebook, grid, connectivity)
    return 0.0 if codebook.shape[0] == 1 else float(folded / n)


def _hit_counts(X, codebook, n_rows, n_cols):
    """``somgen.metrics.hit_counts`` on a Dask collection."""
    from somgen.metrics import _check_codebook

    codebook = _check_codebook(codebook, n_rows, n_cols)
    _, _, _, hits = _metrics(X, codebook)
    return hits.reshape(n_rows, n_cols)
