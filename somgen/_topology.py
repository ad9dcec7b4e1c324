"""Unit coordinates, grid distances and adjacency of rectangular and hexagonal maps.

Units are numbered row-major: unit ``k`` sits at row ``k // n_cols`` and column
``k % n_cols``. Coordinates are Cartesian positions in the plane, ``(x, y)``:

* rectangular: ``(col, row)``;
* hexagonal (odd rows shifted right by half a unit): ``(col + (row % 2) / 2,
  row * sqrt(3) / 2)``, so that the six neighbours of every unit lie at distance 1.

A periodic (toroidal) map wraps around both axes; its grid distance is the shortest
Euclidean distance over the periodic images. A periodic hexagonal map needs an even
number of rows so that the row shift matches across the seam.
"""

import numpy as np

_HEX_DY = np.sqrt(3.0) / 2.0


def _unit_coordinates(n_rows, n_cols, topology):
    """Cartesian coordinates ``(x, y)`` of the units, shape (n_rows * n_cols, 2)."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    if topology == "rectangular":
        return np.column_stack([cols, rows]).astype(np.float64)
    return np.column_stack([cols + 0.5 * (rows % 2), rows * _HEX_DY])


def _grid_period(n_rows, n_cols, topology):
    """Lengths of the two periods ``(width, height)`` of a toroidal map."""
    if topology == "rectangular":
        return float(n_cols), float(n_rows)
    return float(n_cols), n_rows * _HEX_DY


def _wrap_deltas(delta, period):
    """Fold coordinate differences into ``[-period / 2, period / 2]``."""
    return delta - period * np.round(delta / period)


def _pairwise_grid_sq_distances(
    coords_a, coords_b, *, n_rows, n_cols, topology, periodic
):
    """Squared grid distances between two sets of unit coordinates.

    Parameters
    ----------
    coords_a : ndarray of shape (n_a, 2)
    coords_b : ndarray of shape (n_b, 2)

    Returns
    -------
    sq_dist : ndarray of shape (n_a, n_b)
    """
    dx = coords_a[:, None, 0] - coords_b[None, :, 0]
    dy = coords_a[:, None, 1] - coords_b[None, :, 1]
    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        dx = _wrap_deltas(dx, width)
        dy = _wrap_deltas(dy, height)
    sq = dx * dx + dy * dy
    # Lattice distances are integers or sums of quarters and threes-quarters;
    # remove the rounding noise of sqrt(3) so kernels with hard cut-offs (bubble)
    # see exact values.
    return np.round(sq, 9)


def _grid_sq_distances(n_rows, n_cols, topology, periodic):
    """Full (n_units, n_units) matrix of squared grid distances."""
    coords = _unit_coordinates(n_rows, n_cols, topology)
    return _pairwise_grid_sq_distances(
        coords,
        coords,
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
    )


def _adjacency(n_rows, n_cols, topology, periodic, connectivity=None):
    """Boolean (n_units, n_units) adjacency matrix of the map.

    Rectangular maps use the 8 surrounding units (``connectivity=8``, the
    default, Chebyshev distance 1) or the 4 edge-sharing units
    (``connectivity=4``); hexagonal maps use their 6 neighbours. On a periodic map
    neighbours wrap around the edges. A unit is never its own neighbour.
    """
    sq = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    limit = 2.0 if topology == "rectangular" and connectivity in (None, 8) else 1.0
    return (sq > 0) & (sq <= limit + 1e-9)


def _are_adjacent(
    units_a, units_b, *, n_rows, n_cols, topology, periodic, connectivity=None
):
    """Element-wise adjacency of two arrays of unit indices (no n_units^2 matrix).

    ``connectivity`` is 4 or 8 for rectangular maps (default 8) and 6 for
    hexagonal maps. A unit is not adjacent to itself.
    """
    coords = _unit_coordinates(n_rows, n_cols, topology)
    a = coords[np.asarray(units_a)]
    b = coords[np.asarray(units_b)]
    delta = a - b
    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        delta[:, 0] = _wrap_deltas(delta[:, 0], width)
        delta[:, 1] = _wrap_deltas(delta[:, 1], height)
    sq = np.round(np.einsum("ij,ij->i", delta, delta), 9)
    limit = 2.0 if topology == "rectangular" and connectivity in (None, 8) else 1.0
    return (sq > 0) & (sq <= limit + 1e-9)
