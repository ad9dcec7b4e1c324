"""Decay schedules: endpoints, shape of each curve, clipping and edge cases."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from somgen._schedules import DECAYS, _decay

PAIRS = [(5.0, 0.5), (1.0, 0.01), (0.5, 0.5), (0.2, 3.0)]


@pytest.mark.parametrize("kind", DECAYS)
@pytest.mark.parametrize("start, end", PAIRS)
@pytest.mark.parametrize("n_steps", [2, 3, 10, 101])
def test_decay_endpoints(kind, start, end, n_steps):
    assert _decay(start, end, 0, n_steps, kind) == pytest.approx(start, rel=1e-14)
    assert _decay(start, end, n_steps - 1, n_steps, kind) == pytest.approx(
        end, rel=1e-14
    )
    values = _decay(start, end, np.arange(n_steps), n_steps, kind)
    assert values.shape == (n_steps,)
    assert values[0] == pytest.approx(start, rel=1e-14)
    assert values[-1] == pytest.approx(end, rel=1e-14)


@pytest.mark.parametrize("kind", DECAYS)
@pytest.mark.parametrize("start, end", [(5.0, 0.5), (1.0, 0.01), (2.0, 1.999)])
def test_decay_strictly_decreasing_when_start_above_end(kind, start, end):
    values = _decay(start, end, np.arange(50), 50, kind)
    assert (np.diff(values) < 0).all()
    assert (values <= start).all()
    assert (values >= end - 1e-15).all()


@pytest.mark.parametrize("kind", DECAYS)
def test_decay_increasing_when_start_below_end(kind):
    values = _decay(0.2, 3.0, np.arange(20), 20, kind)
    assert (np.diff(values) > 0).all()


@pytest.mark.parametrize("kind", DECAYS)
def test_decay_clipped_beyond_horizon(kind):
    start, end, n_steps = 4.0, 0.25, 7
    last = _decay(start, end, n_steps - 1, n_steps, kind)
    for step in [n_steps, n_steps + 1, 10 * n_steps, 10**9]:
        assert _decay(start, end, step, n_steps, kind) == last
    steps = np.array([0, 3, 6, 7, 100])
    values = _decay(start, end, steps, n_steps, kind)
    assert values[2] == values[3] == values[4] == last
    assert values[0] == pytest.approx(start)


@pytest.mark.parametrize("kind", DECAYS)
@pytest.mark.parametrize("n_steps", [0, 1])
def test_decay_single_step_horizon_returns_end(kind, n_steps):
    assert _decay(5.0, 0.5, 0, n_steps, kind) == 0.5
    assert _decay(5.0, 0.5, 3, n_steps, kind) == 0.5
    values = _decay(5.0, 0.5, np.arange(4), n_steps, kind)
    assert values.shape == (4,)
    assert (values == 0.5).all()


@pytest.mark.parametrize("kind", DECAYS)
def test_decay_scalar_step_gives_scalar(kind):
    value = _decay(3.0, 1.0, 2, 5, kind)
    assert np.ndim(value) == 0
    assert isinstance(float(value), float)


def test_decay_linear_closed_form():
    start, end, n_steps = 3.0, 0.5, 11
    t = np.arange(n_steps)
    values = _decay(start, end, t, n_steps, "linear")
    expected = [start + (end - start) * k / 10 for k in range(n_steps)]
    assert_allclose(values, expected, rtol=1e-14)
    assert_allclose(np.diff(values), -0.25, rtol=1e-12)


@pytest.mark.parametrize("start, end", [(5.0, 0.5), (0.1, 0.001), (0.2, 3.0)])
def test_decay_exponential_is_geometric(start, end):
    n_steps = 13
    values = _decay(start, end, np.arange(n_steps), n_steps, "exponential")
    ratio = (end / start) ** (1.0 / (n_steps - 1))
    assert_allclose(values[1:] / values[:-1], ratio, rtol=1e-12)
    expected = [start * ratio**k for k in range(n_steps)]
    assert_allclose(values, expected, rtol=1e-12)


@pytest.mark.parametrize("start, end", [(5.0, 0.5), (1.0, 0.01), (0.2, 3.0)])
def test_decay_inverse_closed_form(start, end):
    n_steps = 9
    values = _decay(start, end, np.arange(n_steps), n_steps, "inverse")
    # start / (1 + a t) with start / (1 + a (n - 1)) = end.
    a = (start - end) / (end * (n_steps - 1))
    expected = [start / (1.0 + a * k) for k in range(n_steps)]
    assert_allclose(values, expected, rtol=1e-13)
    # 1 / value is affine in t.
    assert_allclose(np.diff(1.0 / values), a / start, rtol=1e-10)


def test_decay_hand_computed_midpoints():
    # Horizon of 3 steps: the middle step is p = 1/2.
    assert _decay(4.0, 1.0, 1, 3, "linear") == pytest.approx(2.5)
    assert _decay(4.0, 1.0, 1, 3, "exponential") == pytest.approx(2.0)
    # a = (4 - 1) / 2 = 1.5, 4 / (1 + 1.5) = 1.6
    assert _decay(4.0, 1.0, 1, 3, "inverse") == pytest.approx(1.6)
    assert _decay(4.0, 1.0, 1, 3, "inverse") == pytest.approx(
        4.0 / (1.0 + 1.5), rel=1e-15
    )
    assert math.isclose(_decay(4.0, 1.0, 2.0, 5, "exponential"), 2.0)


@pytest.mark.parametrize("kind", ["Linear", "cosine", ""])
@pytest.mark.parametrize("n_steps", [10, 1])
def test_decay_unknown_kind_raises(kind, n_steps):
    # Also on a one-step horizon, where every kind returns ``end``.
    with pytest.raises(ValueError, match="Unknown decay"):
        _decay(1.0, 0.1, 0, n_steps, kind)
