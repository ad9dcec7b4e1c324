"""somgen.metrics on hand-built maps and against brute force."""

import tracemalloc

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

from somgen._topology import _adjacency, _grid_sq_distances
from somgen.metrics import hit_counts, quantization_error, topographic_error, u_matrix
from somgen.utils._sklearn_compat import InvalidParameterError


def test_quantization_error_matches_brute_force():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(500, 5)) * [1, 10, 0.1, 3, -2]
    W = rng.normal(size=(12, 5))
    expected = cdist(X, W).min(axis=1).mean()
    assert quantization_error(X, W) == pytest.approx(expected, rel=1e-12)
    assert quantization_error(X.astype(np.float32), W) == pytest.approx(
        expected, rel=1e-5
    )


def test_topographic_error_hand_built_line():
    # 1x4 map whose prototypes are out of order: 0, 3, 1, 2 on the real line.
    W = np.array([[0.0], [3.0], [1.0], [2.0]])
    kw = dict(n_rows=1, n_cols=4)
    # x=0.4: best unit 0 (0.0), second unit 2 (1.0): not adjacent -> error.
    # x=2.6: best unit 1 (3.0), second unit 3 (2.0): not adjacent -> error.
    # x=1.4: best unit 2 (1.0), second unit 3 (2.0): adjacent.
    assert topographic_error([[0.4], [2.6], [1.4]], W, **kw) == pytest.approx(2 / 3)
    # Periodic: units 0 and 3 become neighbours, but 0-2 and 1-3 are still apart.
    assert topographic_error([[0.4]], W, periodic=True, **kw) == 1.0
    W_wrap = np.array([[0.0], [1.0], [2.0], [-1.0]])
    # x=-0.4: best 0, second 3: adjacent only on the torus.
    assert topographic_error([[-0.4]], W_wrap, **kw) == 1.0
    assert topographic_error([[-0.4]], W_wrap, periodic=True, **kw) == 0.0


def test_topographic_error_connectivity_and_hexagonal():
    # 2x2 rectangular map: units 0 and 3 are diagonal neighbours.
    W = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.1, 0.1]])
    x = [[0.04, 0.04]]  # best 0, second 3 (diagonal)
    assert topographic_error(x, W, n_rows=2, n_cols=2) == 0.0
    assert topographic_error(x, W, n_rows=2, n_cols=2, connectivity=4) == 1.0
    # On a 2x2 hexagonal grid, (0,0)-(1,1) are 1.118 apart: not neighbours, but
    # (0,1)-(1,0) are at distance 1.
    assert topographic_error(x, W, n_rows=2, n_cols=2, topology="hexagonal") == 1.0
    W_hex = np.array([[10.0, 0.0], [0.0, 0.0], [0.1, 0.1], [10.0, 10.0]])
    assert topographic_error(x, W_hex, n_rows=2, n_cols=2, topology="hexagonal") == 0


def test_topographic_error_one_unit_map_is_zero():
    assert topographic_error([[1.0, 2.0]], [[0.0, 0.0]], n_rows=1, n_cols=1) == 0.0


def test_u_matrix_hand_built():
    # 2x3 rectangular map of scalars:
    # row 0: 0 1 3
    # row 1: 0 1 7
    W = np.array([[0.0], [1.0], [3.0], [0.0], [1.0], [7.0]])
    u4 = u_matrix(W, n_rows=2, n_cols=3, connectivity=4)
    expected4 = np.array(
        [
            [(1 + 0) / 2, (1 + 2 + 0) / 3, (2 + 4) / 2],
            [(0 + 1) / 2, (0 + 1 + 6) / 3, (4 + 6) / 2],
        ]
    )
    np.testing.assert_allclose(u4, expected4)
    u8 = u_matrix(W, n_rows=2, n_cols=3)
    # unit (0,0): neighbours (0,1)=1, (1,0)=0, (1,1)=1
    assert u8[0, 0] == pytest.approx(2 / 3)
    # unit (1,1): neighbours (0,0)=1, (0,1)=0, (0,2)=2, (1,0)=1, (1,2)=6
    assert u8[1, 1] == pytest.approx(10 / 5)


def test_u_matrix_hexagonal_and_periodic():
    # 2x2 hex: (0,0) touches (0,1) and (1,0); (0,1) touches (0,0),(1,0),(1,1).
    W = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 2.0]])
    u = u_matrix(W, n_rows=2, n_cols=2, topology="hexagonal")
    assert u[0, 0] == pytest.approx((5.0 + 1.0) / 2)
    assert u[0, 1] == pytest.approx((5.0 + np.hypot(3, 3) + np.hypot(3, 2)) / 3)
    # 1x3 torus: every unit touches the two others.
    line = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(
        u_matrix(line, n_rows=1, n_cols=3, periodic=True), [[2.0, 1.5, 2.5]]
    )
    np.testing.assert_allclose(u_matrix([[5.0]], n_rows=1, n_cols=1), [[0.0]])


def test_hit_counts_sum_and_brute_force():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(300, 3))
    W = rng.normal(size=(6, 3))
    hits = hit_counts(X, W, n_rows=2, n_cols=3)
    assert hits.shape == (2, 3)
    assert hits.sum() == 300
    expected = np.bincount(cdist(X, W).argmin(1), minlength=6).reshape(2, 3)
    np.testing.assert_array_equal(hits, expected)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: quantization_error([[1.0, 2.0]], [[1.0]]),
            ValueError,
            "X has 2 features, but the codebook has 1 features",
        ),
        (lambda: quantization_error([[np.nan]], [[1.0]]), ValueError, "NaN"),
        (
            lambda: topographic_error([[1.0]], [[1.0], [2.0]], n_rows=2, n_cols=2),
            ValueError,
            r"codebook has 2 prototypes, but a 2x2 grid has 4 units",
        ),
        (
            lambda: topographic_error(
                [[1.0]],
                [[1.0]] * 4,
                n_rows=2,
                n_cols=2,
                topology="hexagonal",
                connectivity=8,
            ),
            ValueError,
            "connectivity=8 is not valid for a hexagonal grid",
        ),
        (
            lambda: u_matrix([[1.0]] * 4, n_rows=2, n_cols=2, connectivity=6),
            ValueError,
            "connectivity=6 is not valid for a rectangular grid",
        ),
        (
            lambda: u_matrix([[1.0]] * 4, n_rows=2, n_cols=2, connectivity=5),
            InvalidParameterError,
            "'connectivity' parameter",
        ),
        (
            lambda: hit_counts([[1.0]], [[1.0]], n_rows=0, n_cols=1),
            InvalidParameterError,
            "'n_rows' parameter",
        ),
        (
            lambda: u_matrix([[1.0]] * 4, n_rows=2, n_cols=2, topology="square"),
            InvalidParameterError,
            "'topology' parameter",
        ),
    ],
)
def test_metrics_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------- u_matrix, O(n_units)
def _u_matrix_dense_reference(codebook, n_rows, n_cols, topology, periodic, conn):
    """The former O(n_units^2) u_matrix: adjacency from the dense matrix of grid
    distances, distances summed per unit in increasing neighbour order."""
    sq = _grid_sq_distances(n_rows, n_cols, topology, periodic)
    limit = 2.0 if topology == "rectangular" and conn in (None, 8) else 1.0
    unit, neighbour = np.nonzero((sq > 0) & (sq <= limit + 1e-9))
    dist = np.linalg.norm(codebook[unit] - codebook[neighbour], axis=1)
    n_units = n_rows * n_cols
    total = np.bincount(unit, weights=dist, minlength=n_units)
    n_adj = np.bincount(unit, minlength=n_units)
    umat = np.divide(total, n_adj, out=np.zeros(n_units), where=n_adj > 0)
    return umat.reshape(n_rows, n_cols)


U_MATRIX_CASES = [
    (shape, topology, connectivity, periodic)
    for shape in [(1, 1), (1, 2), (1, 5), (4, 1), (2, 2), (3, 3), (2, 5), (8, 7)]
    for topology, connectivity in [
        ("rectangular", None),
        ("rectangular", 4),
        ("rectangular", 8),
        ("hexagonal", None),
        ("hexagonal", 6),
    ]
    for periodic in (False, True)
    if not (periodic and topology == "hexagonal" and shape[0] % 2)
]


@pytest.mark.parametrize("shape, topology, connectivity, periodic", U_MATRIX_CASES)
def test_u_matrix_identical_to_dense_formula(shape, topology, connectivity, periodic):
    n_rows, n_cols = shape
    rng = np.random.RandomState(n_rows * 17 + n_cols)
    for codebook in (
        rng.normal(size=(n_rows * n_cols, 4)) * [1.0, 1e3, 1e-3, 7.0],
        rng.normal(size=(n_rows * n_cols, 3)).astype(np.float32),
    ):
        got = u_matrix(
            codebook,
            n_rows=n_rows,
            n_cols=n_cols,
            topology=topology,
            periodic=periodic,
            connectivity=connectivity,
        )
        expected = _u_matrix_dense_reference(
            codebook.astype(np.float64), *shape, topology, periodic, connectivity
        )
        assert got.shape == (n_rows, n_cols)
        np.testing.assert_array_equal(got, expected)


# ------------------------------------------------ grids the estimator rejects
@pytest.mark.parametrize(
    "call",
    [
        lambda kw: u_matrix([[0.0]] * 12, **kw),
        lambda kw: topographic_error([[0.0]], [[0.0]] * 12, **kw),
        lambda kw: topographic_error([[0.0]], [[0.0]] * 12, connectivity=6, **kw),
    ],
    ids=["u_matrix", "topographic_error", "topographic_error_6"],
)
@pytest.mark.parametrize("n_rows, n_cols", [(3, 4), (1, 12)])
def test_metrics_reject_periodic_hexagonal_grid_with_odd_rows(call, n_rows, n_cols):
    grid = dict(n_rows=n_rows, n_cols=n_cols, topology="hexagonal", periodic=True)
    with pytest.raises(ValueError, match=f"even number of rows.*n_rows={n_rows}"):
        call(grid)
    # The same grid with an even number of rows, or planar, is accepted.
    assert np.isfinite(call(dict(grid, n_rows=n_cols, n_cols=n_rows))).all()
    assert np.isfinite(call(dict(grid, periodic=False))).all()


# ------------------------------------------------------------ X is never copied
def _peak_memory(func, *args):
    tracemalloc.start()
    try:
        func(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "metric",
    [
        lambda X, W: hit_counts(X, W, n_rows=10, n_cols=10),
        lambda X, W: quantization_error(X, W),
        lambda X, W: topographic_error(X, W, n_rows=10, n_cols=10),
        lambda X, W: topographic_error(
            X, W, n_rows=10, n_cols=10, topology="hexagonal", periodic=True
        ),
    ],
    ids=["hit_counts", "quantization_error", "topographic_error", "hexagonal_te"],
)
def test_metrics_do_not_copy_X(metric):
    # Doubling n_samples must not add a copy of the extra rows to the peak
    # memory: chunk temporaries are constant and the per-sample index arrays are
    # small next to 128 float32 features (512 bytes) per sample. One BLAS thread
    # also means one chunk in flight, so the peak does not depend on timing.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(125_000, 128)).astype(np.float32)
    W = rng.normal(size=(100, 128)).astype(np.float32)
    half = X[:62_500]
    with threadpool_limits(limits=1, user_api="blas"):
        metric(X[:1000], W)  # warm caches (thread pools, BLAS buffers)
        growth = _peak_memory(metric, X, W) - _peak_memory(metric, half, W)
    assert growth < 0.25 * half.nbytes, growth / half.nbytes


# -------------------------------------- exact BMUs on float32 data at an offset
def test_metrics_exact_bmus_float32_data_at_offset():
    # Two clusters of unit spread at +-1e3: a float32 ranking of
    # ||w||^2 - 2 x.w rounds at about 0.1, far above the gaps between the
    # closest prototypes. Metrics must agree with brute-force float64 distances.
    rng = np.random.RandomState(0)
    centres = np.repeat([[1e3, 1e3], [-1e3, -1e3]], 2000, axis=0)
    X = (centres + rng.normal(size=(4000, 2))).astype(np.float32)
    W = np.vstack(
        [1e3 + rng.normal(size=(50, 2)), -1e3 + rng.normal(size=(50, 2))]
    ).astype(np.float32)
    W = W[rng.permutation(100)]  # prototypes scattered over the 10x10 grid
    dist = cdist(X.astype(np.float64), W.astype(np.float64))
    order = np.argsort(dist, axis=1)
    best, second = order[:, 0], order[:, 1]
    rows = np.arange(4000)
    # No near-ties: the brute-force answer is unambiguous.
    assert (dist[rows, second] - dist[rows, best]).min() > 1e-9
    assert (dist[rows, order[:, 2]] - dist[rows, second]).min() > 1e-9
    grid = dict(n_rows=10, n_cols=10)
    np.testing.assert_array_equal(
        hit_counts(X, W, **grid), np.bincount(best, minlength=100).reshape(10, 10)
    )
    assert quantization_error(X, W) == pytest.approx(dist[rows, best].mean(), rel=1e-12)
    adjacent = _adjacency(10, 10, "rectangular", False)[best, second]
    assert topographic_error(X, W, **grid) == np.mean(~adjacent)
