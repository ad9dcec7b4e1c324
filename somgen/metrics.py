"""Quality measures of self-organizing maps.

All functions take plain arrays: the data ``X`` and a row-major ``codebook`` of
shape (n_rows * n_cols, n_features), plus the grid description where the measure
depends on it. Passes over ``X`` are chunked and never copy it, so memory is
O(chunk x n_units), never O(n_samples x n_units); the grid measures are O(n_units).

``X`` may be a CSR or CSC matrix (searched by sparse-dense products, never
densified) or a dense array with missing values (NaN). The distance of a sample
with ``n_obs`` of its ``n_features`` features observed is computed over those
features and rescaled to a complete sample's scale:
``sqrt(n_features / n_obs * sum_{j observed} (x_j - w_j)^2)``. A sample with no
observed value, or NaN stored in a sparse matrix, is an error.

Adjacency, used by :func:`topographic_error` and :func:`u_matrix`: on a
rectangular grid a unit has 8 neighbours (``connectivity=8``, the default, the
surrounding ring) or 4 (``connectivity=4``, edge-sharing); on a hexagonal grid it
has 6. On a periodic (toroidal) grid neighbours wrap around the edges.
"""

from numbers import Integral

import numpy as np
from sklearn.utils.validation import check_array

from somgen import _dask
from somgen._bmu import _best_matching_units
from somgen._topology import _adjacent_pairs, _are_adjacent, _check_grid
from somgen.utils._sklearn_compat import (
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from somgen.utils._validation import _check_missing_values

__all__ = ["hit_counts", "quantization_error", "topographic_error", "u_matrix"]

# Adjacent pairs whose prototype differences are formed at a time in u_matrix.
_PAIR_BLOCK_ELEMENTS = 1 << 20

_GRID_CONSTRAINTS = {
    "n_rows": [Interval(Integral, 1, None, closed="left")],
    "n_cols": [Interval(Integral, 1, None, closed="left")],
    "topology": [StrOptions({"rectangular", "hexagonal"})],
    "periodic": ["boolean"],
}


def _check_codebook(codebook, n_rows=None, n_cols=None):
    codebook = check_array(
        codebook, dtype=[np.float64, np.float32], input_name="codebook"
    )
    if n_rows is not None and codebook.shape[0] != n_rows * n_cols:
        raise ValueError(
            f"codebook has {codebook.shape[0]} prototypes, but a {n_rows}x{n_cols} "
            f"grid has {n_rows * n_cols} units."
        )
    return codebook


def _check_data(X, codebook):
    X = check_array(
        X,
        dtype=[np.float64, np.float32],
        accept_sparse="csr",
        ensure_all_finite="allow-nan",
        input_name="X",
    )
    if X.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the codebook has "
            f"{codebook.shape[1]} features."
        )
    _check_missing_values(X, empty_rows="raise")
    return X


def _check_grid_params(n_rows, n_cols, topology, periodic, connectivity):
    """The checks of ``SelfOrganizingMap`` on the grid, and the connectivity."""
    _check_grid(n_rows, n_cols, topology, periodic)
    allowed = (6,) if topology == "hexagonal" else (4, 8)
    if connectivity is not None and connectivity not in allowed:
        raise ValueError(
            f"connectivity={connectivity!r} is not valid for a {topology} grid; "
            f"use None or one of {allowed}."
        )


@validate_params(
    {"X": ["array-like", "sparse matrix"], "codebook": ["array-like"]},
    prefer_skip_nested_validation=True,
)
def quantization_error(X, codebook):
    """Mean Euclidean distance between samples and their closest prototype.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data; NaN marks a missing value (dense input only).

    codebook : array-like of shape (n_units, n_features)
        Prototypes.

    Returns
    -------
    error : float
        ``mean_i min_k ||x_i - w_k||``.

    Examples
    --------
    >>> import numpy as np
    >>> from somgen.metrics import quantization_error
    >>> quantization_error([[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 4.0]])
    1.5
    """
    if _dask._is_dask_collection(X):
        return _dask._quantization_error(X, codebook)
    codebook = _check_codebook(codebook)
    X = _check_data(X, codebook)
    _, _, distances = _best_matching_units(X, codebook, distances=True)
    return float(np.mean(distances))


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "codebook": ["array-like"],
        **_GRID_CONSTRAINTS,
        "connectivity": [Options(Integral, {4, 6, 8}), None],
    },
    prefer_skip_nested_validation=True,
)
def topographic_error(
    X,
    codebook,
    *,
    n_rows,
    n_cols,
    topology="rectangular",
    periodic=False,
    connectivity=None,
):
    """Fraction of samples whose two closest prototypes are not grid neighbours.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data; NaN marks a missing value (dense input only).

    codebook : array-like of shape (n_rows * n_cols, n_features)
        Prototypes, row-major (unit ``k = row * n_cols + col``).

    n_rows, n_cols : int
        Grid shape.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Grid lattice.

    periodic : bool, default=False
        Whether the grid wraps around (torus). A periodic hexagonal grid needs an
        even number of rows, as in :class:`~somgen.SelfOrganizingMap`.

    connectivity : {4, 6, 8} or None, default=None
        Neighbours counted as adjacent: 8 (default) or 4 on a rectangular grid,
        6 on a hexagonal grid.

    Returns
    -------
    error : float
        In ``[0, 1]``; 0 on a one-unit map.

    Examples
    --------
    >>> from somgen.metrics import topographic_error
    >>> codebook = [[0.0], [1.0], [2.0]]   # a 1x3 map, ordered
    >>> topographic_error([[0.2], [1.6]], codebook, n_rows=1, n_cols=3)
    0.0
    >>> topographic_error([[0.2]], [[0.0], [2.0], [1.0]], n_rows=1, n_cols=3)
    1.0
    """
    if _dask._is_dask_collection(X):
        grid = dict(n_rows=n_rows, n_cols=n_cols, topology=topology, periodic=periodic)
        return _dask._topographic_error(X, codebook, grid, connectivity)
    _check_grid_params(n_rows, n_cols, topology, periodic, connectivity)
    codebook = _check_codebook(codebook, n_rows, n_cols)
    X = _check_data(X, codebook)
    if codebook.shape[0] == 1:
        return 0.0
    best, second = _best_matching_units(X, codebook, second=True)
    adjacent = _are_adjacent(
        best,
        second,
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
        connectivity=connectivity,
    )
    return float(np.mean(~adjacent))


@validate_params(
    {
        "codebook": ["array-like"],
        **_GRID_CONSTRAINTS,
        "connectivity": [Options(Integral, {4, 6, 8}), None],
    },
    prefer_skip_nested_validation=True,
)
def u_matrix(
    codebook,
    *,
    n_rows,
    n_cols,
    topology="rectangular",
    periodic=False,
    connectivity=None,
):
    """Unified distance matrix: mean distance from each unit to its neighbours.

    High values mark cluster borders, low values cluster interiors.

    Parameters
    ----------
    codebook : array-like of shape (n_rows * n_cols, n_features)
        Prototypes, row-major.

    n_rows, n_cols : int
        Grid shape.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Grid lattice.

    periodic : bool, default=False
        Whether the grid wraps around (torus). A periodic hexagonal grid needs an
        even number of rows, as in :class:`~somgen.SelfOrganizingMap`.

    connectivity : {4, 6, 8} or None, default=None
        Neighbours averaged over: 8 (default) or 4 on a rectangular grid, 6 on a
        hexagonal grid.

    Returns
    -------
    umat : ndarray of shape (n_rows, n_cols)
        Mean Euclidean distance between each prototype and those of its adjacent
        units (0 for a unit without neighbours, as on a one-unit map).

    Examples
    --------
    >>> from somgen.metrics import u_matrix
    >>> u_matrix([[0.0], [1.0], [3.0]], n_rows=1, n_cols=3)
    array([[1. , 1.5, 2. ]])
    """
    _check_grid_params(n_rows, n_cols, topology, periodic, connectivity)
    codebook = _check_codebook(codebook, n_rows, n_cols).astype(np.float64)
    n_units = codebook.shape[0]
    units, neighbours = _adjacent_pairs(
        n_rows, n_cols, topology, periodic, connectivity=connectivity
    )
    # Exact differences over the (at most 8 n_units) adjacent pairs, by blocks.
    dist = np.empty(units.shape[0])
    block = max(1, _PAIR_BLOCK_ELEMENTS // codebook.shape[1])
    for start in range(0, units.shape[0], block):
        pairs = slice(start, start + block)
        diff = codebook[units[pairs]] - codebook[neighbours[pairs]]
        dist[pairs] = np.linalg.norm(diff, axis=1)
    total = np.bincount(units, weights=dist, minlength=n_units)
    n_adj = np.bincount(units, minlength=n_units)
    umat = np.divide(total, n_adj, out=np.zeros(n_units), where=n_adj > 0)
    return umat.reshape(n_rows, n_cols)


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "codebook": ["array-like"],
        "n_rows": [Interval(Integral, 1, None, closed="left")],
        "n_cols": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def hit_counts(X, codebook, *, n_rows, n_cols):
    """Number of samples whose best-matching unit is each unit.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data; NaN marks a missing value (dense input only).

    codebook : array-like of shape (n_rows * n_cols, n_features)
        Prototypes, row-major.

    n_rows, n_cols : int
        Grid shape.

    Returns
    -------
    hits : ndarray of shape (n_rows, n_cols), int64
        Sums to ``n_samples``.

    Examples
    --------
    >>> from somgen.metrics import hit_counts
    >>> hit_counts([[0.1], [0.2], [2.9]], [[0.0], [1.0], [3.0]], n_rows=1, n_cols=3)
    array([[2, 0, 1]])
    """
    if _dask._is_dask_collection(X):
        return _dask._hit_counts(X, codebook, n_rows, n_cols)
    codebook = _check_codebook(codebook, n_rows, n_cols)
    X = _check_data(X, codebook)
    best, _ = _best_matching_units(X, codebook)
    return np.bincount(best, minlength=n_rows * n_cols).reshape(n_rows, n_cols)
