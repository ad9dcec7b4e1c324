"""Decay schedules for the neighbourhood width and the learning rate.

A schedule goes from ``start`` at step 0 to ``end`` at step ``n_steps - 1``:

* ``linear``: ``start + (end - start) * p`` with ``p = t / (n_steps - 1)``;
* ``exponential``: ``start * (end / start) ** p`` (geometric interpolation);
* ``inverse``: ``start / (1 + a t)`` with ``a`` chosen so that the last step gives
  ``end`` (the classic ``1/t`` decay, stretched to the horizon).

With a single step the schedule returns ``end``. Steps beyond the horizon keep the
end value, which is what ``partial_fit`` relies on.
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
    if kind == "linear":
        return (start + (end - start) * p)[()]
    if kind == "exponential":
        return (start * (end / start) ** p)[()]
    # inverse
    a = (start / end - 1.0) / last
    return (start / (1.0 + a * t))[()]
