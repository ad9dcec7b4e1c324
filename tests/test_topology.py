"""Grid coordinates, distances and adjacency against hand-computed cases and a
brute-force minimum-image reference."""

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from somgen._topology import (
    _adjacency,
    _are_adjacent,
    _grid_sq_distances,
    _pairwise_grid_sq_distances,
    _unit_coordinates,
)

SQRT3_2 = math.sqrt(3.0) / 2.0


def _unit(row, col, n_cols):
    return row * n_cols + col


def _ref_coordinates(n_rows, n_cols, topology):
    """Unit positions by an explicit loop over rows and columns."""
    out = []
    for row in range(n_rows):
        for col in range(n_cols):
            if topology == "rectangular":
                out.append((float(col), float(row)))
            else:
                out.append((col + 0.5 * (row % 2), row * SQRT3_2))
    return np.array(out)


def _ref_sq_distance(a, b, n_rows, n_cols, topology, periodic):
    """Squared distance between two points: plain, or the minimum over the nine
    periodic images of ``b``, by an explicit loop."""
    if not periodic:
        return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    width = float(n_cols)
    height = float(n_rows) if topology == "rectangular" else n_rows * SQRT3_2
    best = math.inf
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):
            dx = a[0] - (b[0] + i * width)
            dy = a[1] - (b[1] + j * height)
            best = min(best, dx * dx + dy * dy)
    return best


def _hex_neighbours(row, col, n_rows, n_cols, periodic):
    """The six neighbours of a unit of an odd-rows-shifted hexagonal grid, from the
    textbook offset table."""
    if row % 2 == 0:
        offsets = [(0, -1), (0, 1), (-1, -1), (-1, 0), (1, -1), (1, 0)]
    else:
        offsets = [(0, -1), (0, 1), (-1, 0), (-1, 1), (1, 0), (1, 1)]
    out = set()
    for dr, dc in offsets:
        r, c = row + dr, col + dc
        if periodic:
            r, c = r % n_rows, c % n_cols
        elif not (0 <= r < n_rows and 0 <= c < n_cols):
            continue
        out.add(_unit(r, c, n_cols))
    return out


def _rect_neighbours(row, col, n_rows, n_cols, periodic, connectivity):
    if connectivity == 8:
        offsets = [d for d in itertools.product((-1, 0, 1), repeat=2) if d != (0, 0)]
    else:
        offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    out = set()
    for dr, dc in offsets:
        r, c = row + dr, col + dc
        if periodic:
            r, c = r % n_rows, c % n_cols
        elif not (0 <= r < n_rows and 0 <= c < n_cols):
            continue
        out.add(_unit(r, c, n_cols))
    out.discard(_unit(row, col, n_cols))
    return out


# ---------------------------------------------------------------- coordinates
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (3, 4), (4, 3)])
def test_unit_coordinates_match_row_major_formula(topology, shape):
    coords = _unit_coordinates(*shape, topology)
    assert coords.shape == (shape[0] * shape[1], 2)
    assert coords.dtype == np.float64
    assert_allclose(coords, _ref_coordinates(*shape, topology), rtol=0, atol=1e-12)


# ------------------------------------------------------- hand-computed distances
@pytest.mark.parametrize(
    "target, expected_sq",
    [
        ((1, 0), 0.0),
        ((0, 0), 1.0),
        ((0, 1), 1.0),
        ((1, 1), 1.0),
        ((2, 0), 1.0),
        ((2, 1), 1.0),
        ((0, 2), 3.0),
        ((3, 0), 3.0),
        ((1, 2), 4.0),
        ((3, 1), 4.0),
        ((1, 3), 9.0),
        ((3, 3), 3.0**2 + 3.0),  # dx = 3, dy = sqrt(3)
    ],
)
def test_grid_sq_distances_hexagonal_hand_computed(target, expected_sq):
    # Unit (row 1, col 0) of a planar 4x4 hex grid sits at (0.5, sqrt(3)/2).
    sq = _grid_sq_distances(4, 4, "hexagonal", False)
    assert sq[_unit(1, 0, 4), _unit(*target, 4)] == pytest.approx(expected_sq, abs=1e-9)


@pytest.mark.parametrize(
    "a, b, expected_sq",
    [
        ((0, 0), (0, 4), 1.0),
        ((0, 0), (4, 0), 1.0),
        ((0, 0), (4, 4), 2.0),
        ((0, 0), (2, 2), 8.0),
        ((0, 0), (0, 2), 4.0),
        ((0, 0), (0, 3), 4.0),
        ((1, 1), (4, 3), 4.0 + 4.0),  # rows 1-4 wrap to 2, cols 1-3 are 2 apart
        ((2, 2), (2, 2), 0.0),
    ],
)
def test_grid_sq_distances_rectangular_torus_hand_computed(a, b, expected_sq):
    sq = _grid_sq_distances(5, 5, "rectangular", True)
    assert sq[_unit(*a, 5), _unit(*b, 5)] == pytest.approx(expected_sq, abs=1e-9)
    planar = _grid_sq_distances(5, 5, "rectangular", False)
    ra, ca = a
    rb, cb = b
    assert planar[_unit(*a, 5), _unit(*b, 5)] == (ra - rb) ** 2 + (ca - cb) ** 2


@pytest.mark.parametrize(
    "a, b, expected_sq",
    [
        # Row 3 (odd) lies just below row 0 across the seam.
        ((0, 0), (3, 0), 1.0),
        ((0, 0), (3, 3), 1.0),
        ((0, 0), (0, 3), 1.0),
        ((0, 0), (2, 0), 3.0),
        ((0, 0), (0, 2), 4.0),
        ((1, 3), (1, 0), 1.0),
        ((1, 3), (0, 0), 1.0),
        ((1, 3), (2, 0), 1.0),
    ],
)
def test_grid_sq_distances_hexagonal_torus_hand_computed(a, b, expected_sq):
    sq = _grid_sq_distances(4, 4, "hexagonal", True)
    assert sq[_unit(*a, 4), _unit(*b, 4)] == pytest.approx(expected_sq, abs=1e-9)


# ---------------------------------------------------------- neighbour counts
@pytest.mark.parametrize("shape", [(3, 3), (4, 5), (5, 4), (6, 6)])
def test_adjacency_hexagonal_interior_units_have_six_neighbours(shape):
    n_rows, n_cols = shape
    sq = _grid_sq_distances(n_rows, n_cols, "hexagonal", False)
    adj = _adjacency(n_rows, n_cols, "hexagonal", False)
    for row in range(1, n_rows - 1):
        for col in range(1, n_cols - 1):
            k = _unit(row, col, n_cols)
            at_one = set(np.flatnonzero(sq[k] == 1.0))
            assert len(at_one) == 6
            assert at_one == _hex_neighbours(row, col, n_rows, n_cols, False)
            assert set(np.flatnonzero(adj[k])) == at_one


@pytest.mark.parametrize("shape", [(2, 2), (3, 4), (5, 3)])
def test_adjacency_rectangular_planar_corners(shape):
    n_rows, n_cols = shape
    adj8 = _adjacency(n_rows, n_cols, "rectangular", False)
    adj8_explicit = _adjacency(n_rows, n_cols, "rectangular", False, connectivity=8)
    adj4 = _adjacency(n_rows, n_cols, "rectangular", False, connectivity=4)
    assert_array_equal(adj8, adj8_explicit)
    corners = [(0, 0), (0, n_cols - 1), (n_rows - 1, 0), (n_rows - 1, n_cols - 1)]
    for row, col in corners:
        k = _unit(row, col, n_cols)
        assert adj8[k].sum() == 3
        assert adj4[k].sum() == 2


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("shape", [(4, 3), (4, 4), (6, 5)])
def test_adjacency_matches_offset_table(topology, periodic, shape):
    n_rows, n_cols = shape
    connectivities = [8, 4] if topology == "rectangular" else [None]
    for conn in connectivities:
        adj = _adjacency(n_rows, n_cols, topology, periodic, connectivity=conn)
        assert not adj.diagonal().any()
        for row in range(n_rows):
            for col in range(n_cols):
                if topology == "rectangular":
                    ref = _rect_neighbours(row, col, n_rows, n_cols, periodic, conn)
                else:
                    ref = _hex_neighbours(row, col, n_rows, n_cols, periodic)
                got = set(np.flatnonzero(adj[_unit(row, col, n_cols)]))
                assert got == ref, (row, col, conn)


@pytest.mark.parametrize("shape", [(3, 3), (3, 5), (4, 6), (5, 3), (7, 7)])
def test_adjacency_rectangular_torus_every_unit_has_8_or_4(shape):
    adj8 = _adjacency(*shape, "rectangular", True, connectivity=8)
    adj4 = _adjacency(*shape, "rectangular", True, connectivity=4)
    assert_array_equal(adj8.sum(axis=1), 8)
    assert_array_equal(adj4.sum(axis=1), 4)
    assert_array_equal(adj8, adj8.T)
    assert_array_equal(adj4, adj4.T)


@pytest.mark.parametrize("shape", [(4, 3), (4, 4), (6, 5), (8, 7)])
def test_adjacency_hexagonal_torus_every_unit_has_six(shape):
    sq = _grid_sq_distances(*shape, "hexagonal", True)
    adj = _adjacency(*shape, "hexagonal", True)
    assert_array_equal(adj.sum(axis=1), 6)
    # The six neighbours sit at distance exactly 1 after the rounding clean-up.
    assert_array_equal((sq == 1.0).sum(axis=1), 6)
    assert_array_equal(adj, sq == 1.0)


# --------------------------------------------------------- brute-force distances
GRIDS = [
    (1, 7, "rectangular"),
    (7, 1, "rectangular"),
    (2, 2, "rectangular"),
    (3, 4, "rectangular"),
    (5, 5, "rectangular"),
    (6, 3, "rectangular"),
    (1, 6, "hexagonal"),
    (5, 1, "hexagonal"),
    (2, 2, "hexagonal"),
    (2, 5, "hexagonal"),
    (3, 4, "hexagonal"),
    (4, 3, "hexagonal"),
    (6, 6, "hexagonal"),
]
# Periodic hexagonal maps need an even number of rows (the estimator refuses others).
GRID_CASES = [
    (*grid, periodic)
    for grid in GRIDS
    for periodic in (False, True)
    if not (periodic and grid[2] == "hexagonal" and grid[0] % 2)
]


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", GRID_CASES)
def test_pairwise_grid_sq_distances_matches_minimum_image_loop(
    n_rows, n_cols, topology, periodic
):
    rng = np.random.RandomState(n_rows * 31 + n_cols)
    n_units = n_rows * n_cols
    ref_coords = _ref_coordinates(n_rows, n_cols, topology)
    coords = _unit_coordinates(n_rows, n_cols, topology)
    ia = rng.randint(n_units, size=17)
    ib = rng.randint(n_units, size=11)
    got = _pairwise_grid_sq_distances(
        coords[ia],
        coords[ib],
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
    )
    assert got.shape == (17, 11)
    expected = np.array(
        [
            [
                _ref_sq_distance(
                    ref_coords[a], ref_coords[b], n_rows, n_cols, topology, periodic
                )
                for b in ib
            ]
            for a in ia
        ]
    )
    assert_allclose(got, expected, rtol=0, atol=1e-8)
    full = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    assert_allclose(full[np.ix_(ia, ib)], expected, rtol=0, atol=1e-8)


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", GRID_CASES)
def test_grid_sq_distances_symmetric_zero_diagonal(n_rows, n_cols, topology, periodic):
    sq = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    n_units = n_rows * n_cols
    assert sq.shape == (n_units, n_units)
    assert_array_equal(sq, sq.T)
    assert_array_equal(np.diag(sq), 0.0)
    off = sq[~np.eye(n_units, dtype=bool)]
    assert (off > 0).all()


def test_grid_sq_distances_periodic_never_exceeds_planar():
    for topology, shape in [("rectangular", (5, 7)), ("hexagonal", (6, 5))]:
        planar = _grid_sq_distances(*shape, topology, False)
        torus = _grid_sq_distances(*shape, topology, True)
        assert (torus <= planar + 1e-12).all()
        assert (torus < planar - 1e-9).any()


# --------------------------------------------------------------- _are_adjacent
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(
    "n_rows, n_cols, topology, connectivity",
    [
        (1, 6, "rectangular", 8),
        (6, 1, "rectangular", 4),
        (2, 2, "rectangular", 8),
        (2, 2, "rectangular", 4),
        (4, 5, "rectangular", 8),
        (4, 5, "rectangular", 4),
        (4, 5, "rectangular", None),
        (2, 3, "hexagonal", None),
        (4, 5, "hexagonal", None),
        (4, 5, "hexagonal", 6),
    ],
)
def test_are_adjacent_agrees_with_adjacency(
    n_rows, n_cols, topology, connectivity, periodic
):
    adj = _adjacency(n_rows, n_cols, topology, periodic, connectivity=connectivity)
    n_units = n_rows * n_cols
    a, b = np.divmod(np.arange(n_units * n_units), n_units)
    got = _are_adjacent(
        a,
        b,
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
        connectivity=connectivity,
    )
    assert got.dtype == bool
    assert_array_equal(got, adj[a, b])
    assert not got[a == b].any()


def test_are_adjacent_hand_picked_pairs():
    grid = dict(n_rows=5, n_cols=5, topology="rectangular")
    a = np.array([0, 0, 0, 0, 12])
    b = np.array([4, 24, 6, 2, 12])
    assert_array_equal(
        _are_adjacent(a, b, periodic=True, **grid), [True, True, True, False, False]
    )
    assert_array_equal(
        _are_adjacent(a, b, periodic=False, **grid), [False, False, True, False, False]
    )
    assert_array_equal(
        _are_adjacent(a, b, periodic=True, connectivity=4, **grid),
        [True, False, False, False, False],
    )
