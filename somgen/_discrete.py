r"""Discrete columns of a density model: detection, dequantization, rounding.

A column that takes a few distinct values has no density: a Gaussian mixture
fitted on it can put components of vanishing variance on the values and its
likelihood grows without bound (held-out likelihoods then reward the spikes,
not the model). :class:`~somgen.SOMGenerativeModel` instead models the
*dequantized* column (Uria, Murray and Larochelle, 2013; Theis, van den Oord
and Bethge, 2016): each value ``v`` is spread uniformly over its cell, the
interval between the midpoints to its neighbouring values (the outer cells as
wide as their inner neighbour), and the mixture is fitted to the data with that
uniform noise added. The fitted density is then a density of the dequantized
variable: at a value ``v`` of cell width ``w``, ``p(v) w`` approximates the
probability of ``v``, so ``log P(v) ~ log p(v) + log w`` (the Jacobian of the
cell), and no component can collapse onto a value. Samples are rounded back to
the value of the cell they fall in, so they take the data's values.
"""

import numpy as np

# "auto" detection: a column is discrete when its observed training values take
# between 2 and _MAX_LEVELS distinct values, with at least _MIN_ROWS_PER_LEVEL
# observed rows per distinct value (a few rows of a continuous column are all
# distinct, and few of them look discrete by chance).
_MAX_LEVELS = 10
_MIN_ROWS_PER_LEVEL = 5


def _column_levels(column):
    """Sorted distinct observed values of a column (NaN left out)."""
    return np.unique(column[~np.isnan(column)])


def _resolve_discrete(X, discrete_features):
    """``(indices, levels)`` of the discrete columns of a dense ``X``.

    ``discrete_features`` is ``"auto"``, None, or an array-like of column
    indices or a boolean mask. Explicit columns need at least two distinct
    observed values.
    """
    n_features = X.shape[1]
    if discrete_features is None:
        return np.zeros(0, dtype=np.intp), []
    if isinstance(discrete_features, str):  # "auto"
        indices, levels = [], []
        for j in range(n_features):
            column = X[:, j]
            found = _column_levels(column)
            n_observed = np.count_nonzero(~np.isnan(column))
            if (
                2 <= found.size <= _MAX_LEVELS
                and n_observed >= _MIN_ROWS_PER_LEVEL * found.size
            ):
                indices.append(j)
                levels.append(found)
        return np.asarray(indices, dtype=np.intp), levels
    mask = np.asarray(discrete_features)
    if mask.dtype == bool:
        if mask.shape != (n_features,):
            raise ValueError(
                f"discrete_features as a boolean mask needs {n_features} entries "
                f"(one per feature), got shape {mask.shape}."
            )
        indices = np.flatnonzero(mask)
    else:
        if mask.ndim != 1 or not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(
                "discrete_features must be 'auto', None, a boolean mask or an "
                f"array-like of column indices; got {discrete_features!r}."
            )
        if mask.size and (mask.min() < 0 or mask.max() >= n_features):
            raise ValueError(
                f"discrete_features indices must lie in [0, {n_features - 1}], "
                f"got {mask.tolist()}."
            )
        indices = np.unique(mask).astype(np.intp)
    levels = []
    for j in indices:
        found = _column_levels(X[:, j])
        if found.size < 2:
            raise ValueError(
                f"Discrete feature {j} has {found.size} distinct observed "
                "value(s): dequantization needs at least 2."
            )
        levels.append(found)
    return indices, levels


def _cell_edges(levels):
    """Edges of the cells of sorted ``levels``: midpoints, and outer cells
    as wide as their inner neighbour. Shape (n_levels + 1,)."""
    gaps = np.diff(levels)
    middle = levels[:-1] + 0.5 * gaps
    return np.concatenate(
        ([levels[0] - 0.5 * gaps[0]], middle, [levels[-1] + 0.5 * gaps[-1]])
    )


def _dequantize(X, indices, levels, random_state):
    """A copy of ``X`` whose discrete columns are spread over their cells.

    Each observed value moves uniformly within its cell; NaN stays NaN. The
    other columns are copied unchanged.
    """
    X = np.array(X, dtype=np.float64, copy=True)
    for j, values in zip(indices, levels, strict=True):
        column = X[:, j]
        observed = np.flatnonzero(~np.isnan(column))
        edges = _cell_edges(values)
        cell = np.searchsorted(values, column[observed])
        uniforms = random_state.uniform(size=observed.size)
        column[observed] = edges[cell] + uniforms * (edges[cell + 1] - edges[cell])
    return X


def _round_to_levels(X, indices, levels):
    """Replace, in place, each discrete entry by the value of its cell (values
    beyond the outer cells take the outer values)."""
    for j, values in zip(indices, levels, strict=True):
        column = X[:, j]
        edges = _cell_edges(values)
        observed = ~np.isnan(column)
        cell = np.searchsorted(edges[1:-1], column[observed], side="right")
        column[observed] = values[cell]
    return X
