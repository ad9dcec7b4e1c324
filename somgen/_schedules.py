"""Decay schedules for the neighbourhood width and the learning rate.

A schedule goes from ``start`` at step 0 to ``end`` at step ``n_steps - 1``:

* ``linear``: ``start + (end - start) * p`` with ``p = t / (n_steps - 1)``;
* ``exponential``: ``start * (end / start) ** p`` (geometric interpolation);
* ``inverse``: ``start / (1 + a t)`` with ``a`` chosen so that the last step gives
  ``end`` (the classic ``1/t`` decay, stretched to the horizon).

With a single step the schedule returns ``end``. Steps beyond the horizon keep the
end value, which is what ``partial_fit`` relies on.

The geometric and inverse forms are evaluated so that no intermediate leaves the
float64 range: the exponential in log space, the inverse as
``1 / (1 / start + (1 / end - 1 / start) p)`` with the reciprocals scaled, so any
positive ``start`` and ``end`` (``1e300``, ``1e-320``) give finite, positive,
monotone values.
"""

import numpy as np

DECAYS = ("linear", "exponential", "inverse")


def _decay(start, end, step, n_steps, kind):
    """Value of a decay schedule at ``step`` (scalar or array of steps).

    Parameters
    ----------
    start, end : float
        Values at the first and last step; both strictly positive for
        ``exponential`` and ``inverse``.
    step : int or ndarray of int
        Zero-based step index; values past ``n_steps - 1`` are clipped.
    n_steps : int
        Length of the horizon (>= 1).
    kind : {"linear", "exponential", "inverse"}

    Returns
    -------
    value : float or ndarray of float
    """
    if kind not in DECAYS:
        raise ValueError(f"Unknown decay {kind!r}; expected one of {DECAYS}.")
    last = max(int(n_steps) - 1, 0)
    if last == 0:
        return np.full(np.shape(step), float(end))[()]
    t = np.minimum(np.asarray(step, dtype=np.float64), last)
    p = t / last
    start, end = float(start), float(end)
    if start == end:
        return np.full(np.shape(step), start)[()]
    if kind == "linear":
        # A convex combination: never leaves [min(start, end), max(start, end)].
        values = start * (1.0 - p) + end * p
    elif kind == "exponential":
        log_start, log_end = np.log(start), np.log(end)
        values = np.exp(log_start + (log_end - log_start) * p)
    else:
        values = _inverse_decay(start, end, t, p, last)
    # Rounding (of exp(log(x)), or of a vanishing end) must not move the ends.
    values = np.where(p == 0.0, start, values)
    return np.where(p == 1.0, end, values)[()]


def _inverse_decay(start, end, t, p, last):
    """``start / (1 + a t)`` with ``a = (start / end - 1) / last``, overflow-free.

    Equal to ``1 / (1 / start + (1 / end - 1 / start) p)``, evaluated on
    reciprocals scaled by a power of two; when even those overflow (the ends
    differ by more than the float64 range), in log space.
    """
    _, exponent = np.frexp(max(start, end))
    scale = float(np.ldexp(1.0, int(exponent)))
    with np.errstate(over="ignore", divide="ignore"):
        inv_start, inv_end = scale / start, scale / end
    if np.isfinite(inv_start) and np.isfinite(inv_end):
        return scale / (inv_start + (inv_end - inv_start) * p)
    log_a = np.log(start) - np.log(end) - np.log(last)
    with np.errstate(divide="ignore"):
        log_den = np.logaddexp(0.0, log_a + np.log(t))
    return np.exp(np.log(start) - log_den)
