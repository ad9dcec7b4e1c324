"""Neighbourhood kernels evaluated on squared grid distances.

Every kernel maps a squared grid distance ``d2`` and a width ``sigma > 0`` to a
weight; the best-matching unit itself (``d2 = 0``) always gets weight 1:

* ``gaussian``: ``exp(-d2 / (2 sigma^2))``;
* ``bubble``: ``1`` where ``d <= sigma``, else ``0``;
* ``mexican_hat``: ``(1 - d2 / sigma^2) exp(-d2 / (2 sigma^2))`` (negative
  beyond ``sigma``: units there are pushed away);
* ``triangle``: ``max(0, 1 - d / sigma)``.

The kernels depend on grid distance only, so they are correct on hexagonal and
toroidal maps as long as the distances are (see ``_topology``).
"""

import numpy as np

NEIGHBORHOODS = ("gaussian", "bubble", "mexican_hat", "triangle")


def _neighborhood_weights(sq_dist, sigma, kind):
    """Kernel weights for squared grid distances.

    Parameters
    ----------
    sq_dist : ndarray
        Squared grid distances, any shape.
    sigma : float
        Kernel width, strictly positive.
    kind : {"gaussian", "bubble", "mexican_hat", "triangle"}

    Returns
    -------
    weights : ndarray of the same shape as ``sq_dist``, float64
    """
    sq_dist = np.asarray(sq_dist, dtype=np.float64)
    s2 = float(sigma) ** 2
    if kind == "gaussian":
        return np.exp(-sq_dist / (2.0 * s2))
    if kind == "bubble":
        return (sq_dist <= s2 * (1.0 + 1e-12)).astype(np.float64)
    if kind == "mexican_hat":
        ratio = sq_dist / s2
        return (1.0 - ratio) * np.exp(-0.5 * ratio)
    if kind == "triangle":
        return np.maximum(0.0, 1.0 - np.sqrt(sq_dist) / sigma)
    raise ValueError(f"Unknown neighborhood {kind!r}; expected one of {NEIGHBORHOODS}.")
