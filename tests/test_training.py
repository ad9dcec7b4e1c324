"""Batch epoch and online update against naive per-sample, per-unit loops."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import somgen._parallel as bmu_mod
from somgen._bmu import _Frame
from somgen._topology import _unit_coordinates
from somgen._training import _batch_statistics, _online_update, _smooth_statistics

SQRT3_2 = math.sqrt(3.0) / 2.0


# ------------------------------------------------------------ naive references
def _identity_frame(X):
    """The internal frame that leaves data unchanged (no offset, scale 1)."""
    return _Frame(np.zeros(X.shape[1]), 1.0)


def _ref_grid_sq(n_rows, n_cols, topology, periodic):
    """Squared grid distances by loops over units and the nine periodic images."""
    pos = []
    for row in range(n_rows):
        for col in range(n_cols):
            if topology == "rectangular":
                pos.append((float(col), float(row)))
            else:
                pos.append((col + 0.5 * (row % 2), row * SQRT3_2))
    width = float(n_cols)
    height = float(n_rows) if topology == "rectangular" else n_rows * SQRT3_2
    shifts = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)] if periodic else [(0, 0)]
    n_units = len(pos)
    out = np.empty((n_units, n_units))
    for a in range(n_units):
        for b in range(n_units):
            out[a, b] = min(
                (pos[a][0] - pos[b][0] - i * width) ** 2
                + (pos[a][1] - pos[b][1] - j * height) ** 2
                for i, j in shifts
            )
    return out


def _ref_kernel(sq, sigma, kind):
    d = math.sqrt(sq)
    if kind == "gaussian":
        return math.exp(-sq / (2 * sigma**2))
    if kind == "bubble":
        return 1.0 if d <= sigma + 1e-9 else 0.0
    if kind == "mexican_hat":
        return (1 - sq / sigma**2) * math.exp(-sq / (2 * sigma**2))
    return max(0.0, 1 - d / sigma)


def _naive_batch_epoch(X, codebook, grid_sq, sigma, kind):
    """Kohonen's batch map, one sample and one unit at a time."""
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    n_units = codebook.shape[0]
    bmus = []
    sq_error = 0.0
    for i in range(n_samples):
        dists = [
            sum((X[i, f] - codebook[k, f]) ** 2 for f in range(n_features))
            for k in range(n_units)
        ]
        b = int(np.argmin(dists))
        bmus.append(b)
        sq_error += dists[b]
    counts = np.zeros(n_units)
    sums = np.zeros((n_units, n_features))
    for i, b in enumerate(bmus):
        counts[b] += 1
        sums[b] += X[i]
    new = codebook.astype(np.float64).copy()
    for k in range(n_units):
        num = np.zeros(n_features)
        den = 0.0
        for i, b in enumerate(bmus):
            h = _ref_kernel(grid_sq[k, b], sigma, kind)
            num += h * X[i]
            den += h
        if den > 1e-12 * n_samples:
            new[k] = num / den
    return new, sums, counts, sq_error, np.array(bmus)


def _clustered_data(n_units, n_features, n_samples, seed):
    rng = np.random.RandomState(seed)
    codebook = rng.normal(scale=3.0, size=(n_units, n_features))
    X = codebook[rng.randint(n_units, size=n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )
    return X, codebook


@pytest.fixture
def small_blocks(monkeypatch):
    """Several sample chunks and several neighbourhood blocks."""
    monkeypatch.setattr(bmu_mod, "_CHUNK_ELEMENTS", 64)
    monkeypatch.setattr(bmu_mod, "_MIN_CHUNK", 5)


# ------------------------------------------------------------------ batch epoch
@pytest.mark.parametrize("sigma", [0.7, 1.5])
@pytest.mark.parametrize("kind", ["gaussian", "bubble", "mexican_hat", "triangle"])
@pytest.mark.parametrize(
    "n_rows, n_cols, topology, periodic",
    [
        (3, 4, "rectangular", False),
        (3, 4, "rectangular", True),
        (4, 3, "hexagonal", False),
        (4, 3, "hexagonal", True),
    ],
)
def test_batch_epoch_matches_naive_loops(
    n_rows, n_cols, topology, periodic, kind, sigma, small_blocks
):
    n_units = n_rows * n_cols
    # Few samples: some units stay empty, which the small sigmas expose.
    X, codebook = _clustered_data(n_units, 3, 40, seed=n_rows + 10 * periodic)
    assert len(bmu_mod._chunk_slices(40, n_units)) > 3
    grid = dict(n_rows=n_rows, n_cols=n_cols, topology=topology, periodic=periodic)

    sums, counts, sq_error = _batch_statistics(
        X, _identity_frame(X), codebook, n_jobs=1
    )
    new = _smooth_statistics(sums, counts, codebook, grid, sigma, kind)

    grid_sq = _ref_grid_sq(n_rows, n_cols, topology, periodic)
    ref_new, ref_sums, ref_counts, ref_err, _ = _naive_batch_epoch(
        X, codebook, grid_sq, sigma, kind
    )
    assert counts.dtype == np.float64 and sums.dtype == np.float64
    assert_array_equal(counts, ref_counts)
    assert counts.sum() == 40
    assert_allclose(sums, ref_sums, rtol=1e-12, atol=1e-12)
    assert sq_error == pytest.approx(ref_err, rel=1e-10)
    assert new.shape == codebook.shape and new.dtype == np.float64
    assert_allclose(new, ref_new, rtol=1e-10, atol=1e-10)

    # Bit-identical whatever the number of threads.
    sums2, counts2, sq_error2 = _batch_statistics(
        X, _identity_frame(X), codebook, n_jobs=2
    )
    assert_array_equal(sums2, sums)
    assert_array_equal(counts2, counts)
    assert sq_error2 == sq_error
    new2 = _smooth_statistics(sums2, counts2, codebook, grid, sigma, kind)
    assert_array_equal(new2, new)


def test_batch_statistics_invariant_to_block_size(monkeypatch):
    X, codebook = _clustered_data(12, 4, 200, seed=1)
    grid = dict(n_rows=3, n_cols=4, topology="hexagonal", periodic=False)
    sums, counts, err = _batch_statistics(X, _identity_frame(X), codebook)
    new = _smooth_statistics(sums, counts, codebook, grid, 1.2, "gaussian")
    monkeypatch.setattr(bmu_mod, "_CHUNK_ELEMENTS", 32)
    monkeypatch.setattr(bmu_mod, "_MIN_CHUNK", 3)
    sums_c, counts_c, err_c = _batch_statistics(X, _identity_frame(X), codebook)
    new_c = _smooth_statistics(sums_c, counts_c, codebook, grid, 1.2, "gaussian")
    assert_array_equal(counts_c, counts)
    assert_allclose(sums_c, sums, rtol=1e-13, atol=1e-13)
    assert err_c == pytest.approx(err, rel=1e-12)
    assert_allclose(new_c, new, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_statistics_sq_error_is_sum_of_bmu_distances(dtype, small_blocks):
    X, codebook = _clustered_data(9, 5, 150, seed=2)
    X = X.astype(dtype)
    _, _, sq_error = _batch_statistics(X, _identity_frame(X), codebook)
    d = ((X.astype(np.float64)[:, None, :] - codebook[None]) ** 2).sum(axis=2)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert sq_error == pytest.approx(d.min(axis=1).sum(), rel=rtol)


def test_smooth_statistics_empty_unit_keeps_prototype_bubble():
    # 3x3 map: the centre unit's prototype is far from every sample.
    rng = np.random.RandomState(3)
    codebook = 10.0 * _unit_coordinates(3, 3, "rectangular")
    codebook[4] = [1000.0, -1000.0]
    occupied = [0, 1, 2, 3, 5, 6, 7, 8]
    X = np.concatenate([codebook[k] + rng.normal(size=(5, 2)) for k in occupied])
    sums, counts, _ = _batch_statistics(X, _identity_frame(X), codebook)
    assert counts[4] == 0
    assert_array_equal(counts[occupied], 5)
    grid = dict(n_rows=3, n_cols=3, topology="rectangular", periodic=False)
    for kind, sigma in [("bubble", 0.5), ("gaussian", 0.05), ("triangle", 0.9)]:
        new = _smooth_statistics(sums, counts, codebook, grid, sigma, kind)
        assert_array_equal(new[4], codebook[4])
        for j, k in enumerate(occupied):
            assert_allclose(new[k], X[5 * j : 5 * j + 5].mean(axis=0), atol=1e-10)
    # The input codebook is not modified.
    assert_array_equal(codebook[4], [1000.0, -1000.0])


def test_smooth_statistics_mexican_hat_non_positive_mass_keeps_prototype():
    # 1x8 map, prototypes at 0, 10, ..., 70 on the first feature. One sample maps
    # to unit 0, twenty to unit 7. With sigma=2, h(d) is 1, 0.66, 0, -0.41, -0.41,
    # -0.23, -0.09, -0.02 for d = 0..7, so the weighted counts of units 1..5 are
    # negative (unit 1: 0.66 - 20 * 0.09) or zero-plus-negative, and units 0, 6, 7
    # are positive.
    rng = np.random.RandomState(4)
    codebook = np.column_stack([10.0 * np.arange(8), np.zeros(8)])
    X = np.concatenate(
        [
            codebook[0] + 0.1 * rng.normal(size=(1, 2)),
            codebook[7] + 0.1 * rng.normal(size=(20, 2)),
        ]
    )
    sums, counts, _ = _batch_statistics(X, _identity_frame(X), codebook)
    assert counts[0] == 1 and counts[7] == 20
    grid = dict(n_rows=1, n_cols=8, topology="rectangular", periodic=False)
    new = _smooth_statistics(sums, counts, codebook, grid, 2.0, "mexican_hat")
    assert_array_equal(new[1:6], codebook[1:6])
    assert not np.allclose(new[[0, 6, 7]], codebook[[0, 6, 7]])
    ref, *_ = _naive_batch_epoch(
        X, codebook, _ref_grid_sq(1, 8, "rectangular", False), 2.0, "mexican_hat"
    )
    assert_allclose(new, ref, rtol=1e-10, atol=1e-10)


def test_smooth_statistics_no_data_at_all_keeps_codebook():
    codebook = np.arange(8.0).reshape(4, 2)
    grid = dict(n_rows=2, n_cols=2, topology="rectangular", periodic=True)
    new = _smooth_statistics(
        np.zeros((4, 2)), np.zeros(4), codebook, grid, 1.0, "gaussian"
    )
    assert_array_equal(new, codebook)


# --------------------------------------------------------------- online update
def _gaussian_rows(bmus, grid_sq, sigma):
    n_units = len(grid_sq)
    return np.array(
        [
            [_ref_kernel(grid_sq[b, k], sigma, "gaussian") for k in range(n_units)]
            for b in bmus
        ]
    )


def test_online_update_single_sample_is_kohonen_rule():
    rng = np.random.RandomState(5)
    n_rows, n_cols = 4, 3
    grid_sq = _ref_grid_sq(n_rows, n_cols, "hexagonal", True)
    codebook = rng.normal(size=(12, 3))
    ref = codebook.copy()
    X = rng.normal(scale=2.0, size=(25, 3))
    for t, x in enumerate(X):
        eta = 0.5 / (1 + t)
        sigma = 2.0 - 0.05 * t
        b = int(np.argmin(((x - ref) ** 2).sum(axis=1)))
        # Kohonen: w_k += eta * h(k, b) * (x - w_k), unit by unit.
        for k in range(12):
            h = _ref_kernel(grid_sq[b, k], sigma, "gaussian")
            for f in range(3):
                ref[k, f] += eta * h * (x[f] - ref[k, f])
        h_rows = _gaussian_rows([b], grid_sq, sigma)
        out = _online_update(codebook, x[None, :], np.array([b]), h_rows, eta)
        assert out is codebook
    assert_allclose(codebook, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_online_update_mini_batch_formula(dtype):
    rng = np.random.RandomState(6)
    n_units, n_features, batch = 10, 4, 7
    codebook = rng.normal(size=(n_units, n_features))
    old = codebook.copy()
    X_batch = rng.normal(scale=3.0, size=(batch, n_features)).astype(dtype)
    bmu = rng.randint(n_units, size=batch)
    # Signed weights (as a Mexican hat gives) exercise the push-away direction.
    h_rows = rng.uniform(-0.5, 1.0, size=(batch, n_units))
    eta = 0.3
    _online_update(codebook, X_batch, bmu, h_rows, eta)
    X64 = X_batch.astype(np.float64)
    ref = old.copy()
    for k in range(n_units):
        step = np.zeros(n_features)
        for i in range(batch):
            step += h_rows[i, k] * (X64[i] - old[k])
        ref[k] = old[k] + eta / batch * step
    assert codebook.dtype == np.float64
    assert_allclose(codebook, ref, rtol=1e-12, atol=1e-12)


def test_online_update_zero_weights_leave_codebook_unchanged():
    rng = np.random.RandomState(7)
    codebook = rng.normal(size=(6, 2))
    old = codebook.copy()
    X_batch = rng.normal(size=(3, 2))
    _online_update(codebook, X_batch, np.array([0, 1, 2]), np.zeros((3, 6)), 0.9)
    assert_array_equal(codebook, old)
    # Learning rate 1 with a one-hot neighbourhood moves the unit onto the sample.
    _online_update(codebook, X_batch[:1], np.array([2]), np.eye(6)[[2]], 1.0)
    assert_allclose(codebook[2], X_batch[0], rtol=1e-15)
    assert_array_equal(np.delete(codebook, 2, axis=0), np.delete(old, 2, axis=0))
