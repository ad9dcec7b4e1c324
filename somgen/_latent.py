"""Densities over the map coordinates of a self-organizing map.

A density fitted on the map coordinates (the output of
:meth:`SelfOrganizingMap.transform`) is a density on the plane of the grid. It
sets the weights of :class:`SOMGenerativeModel` (``latent_density``), and in a
``Pipeline(SelfOrganizingMap, KernelDensity)`` it is what gets sampled. This
module holds what both need: the weights that such a density gives the units,
the bandwidths searched by ``latent_density="auto"``, and :func:`sample_latent`,
which samples a latent density truncated to the grid instead of letting
``inverse_transform`` clamp the points that fall off it.
"""

from numbers import Integral

import numpy as np
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from somgen._topology import _HEX_DY
from somgen.utils._sklearn_compat import HasMethods, Interval, validate_params

__all__ = ["sample_latent"]

# Bandwidths of the Gaussian KernelDensity candidates of latent_density="auto",
# in grid units (the distance between neighbouring units is 1): from about the
# half-width of a cell (weights close to the hit frequencies) to a few cells.
LATENT_BANDWIDTHS = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
# Folds of the cross-validation that selects among them and "no latent density".
LATENT_CV_SPLITS = 5
# Rejection sampling to the grid gives up below this acceptance rate.
MIN_ACCEPTANCE = 1e-3


def _cell(topology):
    """Extent (width, height) of the cell around a unit."""
    return np.array([1.0, 1.0 if topology == "rectangular" else _HEX_DY])


def _dequantized_coords(unit_coords, units, topology, random_state):
    """Map coordinates of the units, spread by uniform noise over a cell."""
    coords = np.asarray(unit_coords, dtype=np.float64)
    jitter = (random_state.uniform(size=(len(units), 2)) - 0.5) * _cell(topology)
    return coords[units] + jitter


def _latent_weights(latent_density, unit_coords, points):
    """Unit weights proportional to a density fitted on ``points``.

    Returns the weights (summing to 1) and the fitted clone of the density.
    """
    latent = clone(latent_density).fit(points)
    log_density = np.asarray(
        latent.score_samples(np.asarray(unit_coords, dtype=np.float64)),
        dtype=np.float64,
    )
    log_density = np.where(np.isnan(log_density), -np.inf, log_density)
    if not np.any(np.isfinite(log_density)):
        raise ValueError("latent_density gives zero density at every unit of the map.")
    return np.exp(log_density - logsumexp(log_density)), latent


def _grid_box(som):
    """Bounding box ``(low, high)`` of a planar map's units; None if periodic.

    Outside this box :meth:`SelfOrganizingMap.inverse_transform` clamps the
    coordinates to the border, so the box is the part of the plane that the map
    decodes without distortion. It is read from the fitted grid, not from
    parameters changed since. An axis along which the grid has a single unit
    is unbounded: ``inverse_transform`` ignores that coordinate.
    """
    check_is_fitted(som)
    grid = getattr(som, "_fitted_grid", None)
    periodic = grid["periodic"] if grid is not None else som.periodic
    if periodic:
        return None
    coords = np.asarray(som.unit_coords_, dtype=np.float64)
    low, high = coords.min(axis=0), coords.max(axis=0)
    # One row (or column): the map ignores that coordinate, nothing to clamp.
    flat = low == high
    return np.where(flat, -np.inf, low), np.where(flat, np.inf, high)


def _is_planar_map(step):
    """Whether ``step`` is a fitted map whose inverse_transform clamps."""
    return (
        hasattr(step, "unit_coords_")
        and hasattr(step, "inverse_transform")
        and _grid_box(step) is not None
    )


@validate_params(
    {
        "density": [HasMethods(["sample"])],
        "som": [HasMethods(["inverse_transform"])],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "max_rounds": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def sample_latent(density, som, n_samples=1, *, random_state=None, max_rounds=20):
    """Draw map coordinates from a density truncated to the map's grid.

    A density fitted on map coordinates (a
    :class:`~sklearn.neighbors.KernelDensity` or
    :class:`~sklearn.mixture.GaussianMixture` after
    :meth:`SelfOrganizingMap.transform`) puts mass off the grid, where
    :meth:`SelfOrganizingMap.inverse_transform` clamps the points to the border
    prototypes. This function draws from the density restricted to the bounding
    box of the units (its law conditioned on landing on the grid) by rejection:
    it draws, keeps the points on the grid and draws again for the rest, with
    batches sized by the acceptance rate seen so far. Periodic maps have no
    border: their draws are returned as they are (``inverse_transform`` wraps).

    Parameters
    ----------
    density : estimator
        Fitted density over map coordinates with a ``sample`` method
        (KernelDensity, GaussianMixture, or anything returning an array or a
        tuple whose first item is the array).

    som : SelfOrganizingMap
        The fitted map (or a FrozenEstimator wrapping one) whose coordinates
        ``density`` models.

    n_samples : int, default=1
        Number of samples.

    random_state : int, RandomState instance or None, default=None
        Seed of the draws (``None``: NumPy's global random state), passed to
        ``density.sample`` when it takes one and otherwise set on a shallow
        copy of ``density``. An int gives the same samples on every call.

    max_rounds : int, default=20
        Maximum number of rejection rounds.

    Returns
    -------
    coords : ndarray of shape (n_samples, 2)
        Map coordinates, all inside the bounding box of the units on a planar
        map (unbounded along an axis with a single unit, which the map
        ignores).

    Raises
    ------
    ValueError
        If the acceptance rate falls below 0.001 (the density lives off the
        grid), or if ``max_rounds`` rounds do not give ``n_samples`` points.

    See Also
    --------
    sample_pipeline : Uses this function when a map precedes the last step.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.neighbors import KernelDensity
    >>> from somgen import SelfOrganizingMap
    >>> from somgen import sample_latent
    >>> X, _ = make_moons(300, noise=0.1, random_state=0)
    >>> som = SelfOrganizingMap(5, 5).fit(X)
    >>> kde = KernelDensity(bandwidth=0.5).fit(som.transform(X))
    >>> coords = sample_latent(kde, som, 1000, random_state=0)
    >>> bool(coords.min() >= 0 and coords.max() <= 4)
    True
    """
    # _compose imports this module: import its helper here, not at the top.
    from somgen._compose import _draw

    rng = check_random_state(random_state)
    box = _grid_box(som)
    if box is None:
        return _draw(density, n_samples, rng, "density")
    low, high = box
    kept, n_kept, n_drawn = [], 0, 0
    for _ in range(max_rounds):
        needed = n_samples - n_kept
        rate = n_kept / n_drawn if n_drawn else 1.0
        batch = int(np.ceil(1.2 * needed / max(rate, MIN_ACCEPTANCE))) + 16
        drawn = _draw(density, batch, rng, "density")
        if drawn.ndim != 2 or drawn.shape[1] != 2:
            raise ValueError(
                "density must sample map coordinates of shape (n_samples, 2); got "
                f"shape {drawn.shape}."
            )
        inside = np.all((drawn >= low) & (drawn <= high), axis=1)
        kept.append(drawn[inside][:needed])
        n_kept += kept[-1].shape[0]
        n_drawn += batch
        if n_kept == n_samples:
            return np.concatenate(kept, axis=0).astype(np.float64, copy=False)
        if n_drawn >= 1000 and n_kept / n_drawn < MIN_ACCEPTANCE:
            break
    raise ValueError(
        f"Only {n_kept} of {n_drawn} latent samples ({n_kept / n_drawn:.2%}) "
        f"landed on the grid [{low[0]:g}, {high[0]:g}] x [{low[1]:g}, {high[1]:g}] "
        "of the map: the density lives off the grid (fitted on other "
        "coordinates?) or max_rounds is too small."
    )
