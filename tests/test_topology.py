"""Grid coordinates, distances and adjacency against hand-computed cases and a
brute-force minimum-image reference."""

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from somgen._topology import (
    _adjacency,
    _adjacent_pairs,
    _are_adjacent,
    _check_grid,
    _column_offsets,
    _grid_period,
    _grid_sq_distances,
    _interpolation_stencil,
    _pairwise_grid_sq_distances,
    _row_classes,
    _row_offsets,
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


# -------------------------------------------------------------- _adjacent_pairs
ADJACENCY_SHAPES = [
    (1, 1),
    (1, 2),
    (1, 3),
    (1, 6),
    (2, 1),
    (5, 1),
    (2, 2),
    (2, 3),
    (3, 2),
    (3, 3),
    (4, 4),
    (4, 7),
    (7, 4),
    (6, 6),
]


ADJACENCY_CASES = [
    (shape, topology, connectivity, periodic)
    for shape in ADJACENCY_SHAPES
    for topology, connectivity in [
        ("rectangular", None),
        ("rectangular", 8),
        ("rectangular", 4),
        ("hexagonal", None),
        ("hexagonal", 6),
    ]
    for periodic in (False, True)
    if not (periodic and topology == "hexagonal" and shape[0] % 2)
]


@pytest.mark.parametrize("shape, topology, connectivity, periodic", ADJACENCY_CASES)
def test_adjacent_pairs_equal_dense_adjacency(shape, topology, connectivity, periodic):
    # Tiny periodic maps wrap offsets onto the unit itself (1xN, Nx1) or onto
    # the same neighbour twice (2x2, 3x3): the pairs must still be distinct.
    n_rows, n_cols = shape
    adj = _adjacency(n_rows, n_cols, topology, periodic, connectivity=connectivity)
    units, neighbours = _adjacent_pairs(
        n_rows, n_cols, topology, periodic, connectivity=connectivity
    )
    expected_units, expected_neighbours = np.nonzero(adj)
    assert units.dtype == np.int64 and neighbours.dtype == np.int64
    assert_array_equal(units, expected_units)
    assert_array_equal(neighbours, expected_neighbours)


@pytest.mark.parametrize("periodic", [False, True])
def test_adjacent_pairs_counts_on_a_map_too_large_for_dense(periodic):
    # 300 x 400 units: the dense adjacency would hold 1.4e10 entries.
    n_rows, n_cols = 300, 400
    n_units = n_rows * n_cols
    edges_h = n_rows * (n_cols if periodic else n_cols - 1)  # (0, 1) offsets
    edges_v = (n_rows if periodic else n_rows - 1) * n_cols  # (1, 0) offsets
    diagonals = (n_rows if periodic else n_rows - 1) * (
        n_cols if periodic else n_cols - 1
    )
    units, neighbours = _adjacent_pairs(n_rows, n_cols, "rectangular", periodic)
    assert units.size == 2 * (edges_h + edges_v + 2 * diagonals)
    units4, _ = _adjacent_pairs(n_rows, n_cols, "rectangular", periodic, 4)
    assert units4.size == 2 * (edges_h + edges_v)
    # A hexagonal unit has one diagonal neighbour per pair of adjacent rows.
    units6, neighbours6 = _adjacent_pairs(n_rows, n_cols, "hexagonal", periodic)
    assert units6.size == 2 * (edges_h + edges_v + diagonals)
    for u, v in [(units, neighbours), (units6, neighbours6)]:
        assert (np.diff(u) >= 0).all()
        assert (u != v).all()
        # Symmetric: the pair (j, i) is there for every (i, j).
        assert_array_equal(np.sort(u * n_units + v), np.sort(v * n_units + u))
    # Every pair is at grid distance 1 (or sqrt(2) on the rectangular ring).
    coords = _unit_coordinates(n_rows, n_cols, "hexagonal")
    delta = coords[units6] - coords[neighbours6]
    if periodic:
        width, height = _grid_period(n_rows, n_cols, "hexagonal")
        delta -= np.round(delta / [width, height]) * [width, height]
    assert_allclose(np.hypot(delta[:, 0], delta[:, 1]), 1.0, rtol=0, atol=1e-9)


def test_adjacent_pairs_rejects_odd_periodic_hexagonal_grid():
    with pytest.raises(ValueError, match="even number of rows"):
        _adjacent_pairs(3, 4, "hexagonal", True)


@pytest.mark.parametrize(
    "topology, connectivity", [("rectangular", 6), ("hexagonal", 4), ("hexagonal", 8)]
)
def test_adjacent_pairs_rejects_connectivity_of_the_other_lattice(
    topology, connectivity
):
    with pytest.raises(ValueError, match=f"connectivity={connectivity} is not valid"):
        _adjacent_pairs(4, 4, topology, False, connectivity=connectivity)


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, 4, "hexagonal", True), r"even number of rows .*got n_rows=3"),
        ((5, 1, "hexagonal", True), r"got n_rows=5"),
        ((4, 4, "square", False), "Unknown topology 'square'"),
    ],
)
def test_check_grid_rejects(args, match):
    with pytest.raises(ValueError, match=match):
        _check_grid(*args)


@pytest.mark.parametrize(
    "args",
    [
        (3, 4, "hexagonal", False),
        (4, 3, "hexagonal", True),
        (3, 3, "rectangular", True),
    ],
)
def test_check_grid_accepts(args):
    assert _check_grid(*args) is None


# -------------------------------------------------- 1-D offset tables (_smooth)
@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", GRID_CASES)
def test_row_and_column_offsets_rebuild_grid_distances(
    n_rows, n_cols, topology, periodic
):
    # For every pair of units, dy^2 from the row table plus dx^2 from the column
    # table is the dense squared grid distance, exactly.
    step = 1 if topology == "rectangular" else 2
    sq = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    classes = dict(_row_classes(n_rows, topology))
    assert sum(classes.values()) == n_rows
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    parity, index = rows % step, rows // step
    rebuilt = np.empty_like(sq)
    for p in classes:
        for q in classes:
            row_off, row_sq = _row_offsets(n_rows, topology, periodic, p, q)
            col_off, col_sq = _column_offsets(n_cols, (p - q) / 2, periodic)
            row_at = dict(zip(row_off.tolist(), row_sq, strict=True))
            col_at = dict(zip(col_off.tolist(), col_sq, strict=True))
            for k in np.flatnonzero(parity == p):
                for j in np.flatnonzero(parity == q):
                    e = index[k] - index[j]
                    c = cols[k] - cols[j]
                    if periodic:
                        e, c = e % classes[p], c % n_cols
                    rebuilt[k, j] = row_at[e] + col_at[c]
    assert_array_equal(rebuilt, sq)


# ----------------------------------------------------------- interpolation
STENCIL_CASES = [
    (n_rows, n_cols, topology, periodic)
    for n_rows, n_cols in [(1, 1), (1, 5), (5, 1), (2, 2), (3, 4), (4, 3), (6, 5)]
    for topology in ("rectangular", "hexagonal")
    for periodic in (False, True)
    if not (periodic and topology == "hexagonal" and n_rows % 2)
]
PLANAR_STENCIL_CASES = [case for case in STENCIL_CASES if not case[3]]
PERIODIC_STENCIL_CASES = [case for case in STENCIL_CASES if case[3]]
# Grids on which a stencil's units have well-defined nearest images (a torus
# at least 3 units across) and planar ones whose interior strip is non-empty.
AFFINE_STENCIL_CASES = [
    (n_rows, n_cols, topology, periodic)
    for n_rows, n_cols, topology, periodic in STENCIL_CASES
    if (min(n_rows, n_cols) >= 3 if periodic else n_cols >= 2)
]


def _stencil(points, n_rows, n_cols, topology, periodic):
    return _interpolation_stencil(
        np.asarray(points, dtype=np.float64),
        n_rows=n_rows,
        n_cols=n_cols,
        topology=topology,
        periodic=periodic,
    )


def _interpolate(points, codebook, *grid):
    units, weights = _stencil(points, *grid)
    return np.einsum("nv,nvf->nf", weights, codebook[units])


def _random_points(n_rows, n_cols, topology, seed):
    rng = np.random.RandomState(seed)
    height = n_rows if topology == "rectangular" else n_rows * SQRT3_2
    points = rng.uniform(-3.0, 3.0, size=(200, 2)) * [n_cols, height]
    far = [
        [1e19, 1e19],
        [-1e19, 3.0],
        [1e300, -1e300],
        [-1e300, 1e300],
        [2.5, 1e308],
        [-np.finfo(np.float64).max, 0.5],
    ]
    return np.vstack([points, far])


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", STENCIL_CASES)
def test_interpolation_stencil_weights_are_a_partition_of_unity(
    n_rows, n_cols, topology, periodic
):
    grid = (n_rows, n_cols, topology, periodic)
    points = _random_points(n_rows, n_cols, topology, seed=n_rows * 10 + n_cols)
    units, weights = _stencil(points, *grid)
    n_vertices = 4 if topology == "rectangular" else 3
    assert units.shape == weights.shape == (points.shape[0], n_vertices)
    assert units.dtype == np.int64
    assert ((units >= 0) & (units < n_rows * n_cols)).all()
    assert (weights >= 0).all()
    assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", STENCIL_CASES)
def test_interpolation_stencil_exact_at_unit_positions(
    n_rows, n_cols, topology, periodic
):
    grid = (n_rows, n_cols, topology, periodic)
    codebook = np.random.RandomState(0).normal(size=(n_rows * n_cols, 3))
    coords = _unit_coordinates(n_rows, n_cols, topology)
    assert_array_equal(_interpolate(coords, codebook, *grid), codebook)


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", AFFINE_STENCIL_CASES)
def test_interpolation_stencil_reproduces_positions(n_rows, n_cols, topology, periodic):
    # Bilinear and barycentric interpolation are exact on affine functions:
    # interpolating the unit positions gives back the point (on a torus, the
    # positions of the stencil's units are taken at their nearest image).
    grid = (n_rows, n_cols, topology, periodic)
    rng = np.random.RandomState(1)
    coords = _unit_coordinates(n_rows, n_cols, topology)
    if periodic:
        width, height = _grid_period(n_rows, n_cols, topology)
        points = rng.uniform(-2.0, 2.0, size=(300, 2)) * [width, height]
    elif topology == "rectangular":
        points = rng.uniform(0.0, 1.0, size=(300, 2)) * [n_cols - 1, n_rows - 1]
    else:  # the strip covered by triangles of units only
        x = rng.uniform(0.5, n_cols - 1.0, size=300)
        y = rng.uniform(0.0, (n_rows - 1) * SQRT3_2, size=300)
        points = np.column_stack([x, y])
    units, weights = _stencil(points, *grid)
    delta = coords[units] - points[:, None, :]
    if periodic:
        delta -= np.round(delta / [width, height]) * [width, height]
    assert_allclose(np.einsum("nv,nvd->nd", weights, delta), 0.0, atol=1e-9)


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", PERIODIC_STENCIL_CASES)
def test_interpolation_stencil_periodic_wrap_equals_in_range_position(
    n_rows, n_cols, topology, periodic
):
    grid = (n_rows, n_cols, topology, periodic)
    width, height = _grid_period(n_rows, n_cols, topology)
    codebook = np.random.RandomState(2).normal(size=(n_rows * n_cols, 2))
    points = np.random.RandomState(3).uniform(size=(50, 2)) * [width, height]
    inside = _interpolate(points, codebook, *grid)
    for k, j in [(1, 0), (0, -1), (-3, 2), (1000, -1000), (10**6, 10**6)]:
        shifted = points + [k * width, j * height]
        assert_allclose(
            _interpolate(shifted, codebook, *grid), inside, rtol=0, atol=1e-6
        )
    # Exact multiples of the width beyond the int64 range: reduced before any
    # conversion to integers.
    on_seam = np.column_stack([np.zeros(50), points[:, 1]])
    expected = _interpolate(on_seam, codebook, *grid)
    for k in (2.0**62, 2.0**100, 2.0**1000):
        shifted = on_seam + [k * width, 0.0]
        assert_array_equal(_interpolate(shifted, codebook, *grid), expected)


@pytest.mark.parametrize("n_rows, n_cols, topology, periodic", PLANAR_STENCIL_CASES)
def test_interpolation_stencil_far_points_clamp_to_border(
    n_rows, n_cols, topology, periodic
):
    grid = (n_rows, n_cols, topology, periodic)
    codebook = np.random.RandomState(4).normal(size=(n_rows * n_cols, 2))
    corner = {
        (-1, -1): 0,
        (1, -1): n_cols - 1,
        (-1, 1): (n_rows - 1) * n_cols,
        (1, 1): n_rows * n_cols - 1,
    }
    coords = _unit_coordinates(n_rows, n_cols, topology)
    x_max, y_max = coords.max(axis=0)
    for huge in (1e6, 1e19, 1e300, np.finfo(np.float64).max):
        for (sx, sy), unit in corner.items():
            got = _interpolate([[sx * huge, sy * huge]], codebook, *grid)
            assert_array_equal(got[0], codebook[unit])
        # Far off one side: the value at the nearest point of the border.
        y_mid = 0.37 * y_max
        assert_array_equal(
            _interpolate([[huge, y_mid]], codebook, *grid),
            _interpolate([[x_max, y_mid]], codebook, *grid),
        )
        assert_array_equal(
            _interpolate([[0.3, -huge]], codebook, *grid),
            _interpolate([[0.3, 0.0]], codebook, *grid),
        )


def test_interpolation_stencil_hexagonal_overflow_regression():
    # int64 overflow made [[1e19, 1e19]] on a hexagonal map interpolate unit 0.
    for n_rows in (3, 4):
        units, weights = _stencil([[1e19, 1e19]], n_rows, 5, "hexagonal", False)
        assert_array_equal(np.unique(units[weights > 0]), [n_rows * 5 - 1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_interpolation_stencil_rejects_non_finite(bad, topology):
    with pytest.raises(ValueError, match="finite"):
        _stencil([[0.5, 0.5], [bad, 0.0]], 4, 4, topology, True)
