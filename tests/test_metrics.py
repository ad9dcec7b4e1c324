"""somgen.metrics on hand-built maps and against brute force."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

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
