"""Displays of fitted self-organizing maps (matplotlib, imported lazily).

Install the ``plot`` extra (``pip install "somgen[plot]"``) to use this module.
"""

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from somgen._generative import SOMGenerativeModel
from somgen._som import SelfOrganizingMap
from somgen.metrics import u_matrix

__all__ = ["HitMapDisplay", "UMatrixDisplay"]

_TOPOLOGIES = ("hexagonal", "rectangular")


def _check_matplotlib(caller):
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib
        raise ImportError(
            f'{caller} needs matplotlib; install it with `pip install "somgen[plot]"`.'
        ) from exc


def _cell_vertices(unit_coords, topology):
    """Vertices of the cell of every unit, in data coordinates.

    Returns an array of shape (n_units, n_sides, 2): unit squares on a
    rectangular lattice, hexagons with a vertex on top and an apothem of 1/2 on a
    hexagonal one, so that adjacent cells (at distance 1) share an edge.
    """
    if topology == "hexagonal":
        angles = np.pi / 2 + np.arange(6) * np.pi / 3
        cell = np.column_stack([np.cos(angles), np.sin(angles)]) / np.sqrt(3.0)
    else:
        cell = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    return unit_coords[:, None, :] + cell[None, :, :]


def _fitted_map(estimator, caller):
    """The fitted SelfOrganizingMap of a map, a frozen map or a generative model."""
    if isinstance(estimator, SOMGenerativeModel):
        check_is_fitted(
            estimator,
            msg=(
                f"{caller} needs a fitted map: this %(name)s instance is not fitted "
                "yet. Call 'fit' first."
            ),
        )
        estimator = estimator.som_
    som = estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator
    if not isinstance(som, SelfOrganizingMap):
        raise TypeError(
            f"{caller} expects a SelfOrganizingMap or SOMGenerativeModel (or a "
            f"FrozenEstimator wrapping a map); got {type(estimator).__name__}."
        )
    check_is_fitted(
        som,
        msg=(
            f"{caller} needs a fitted map: this %(name)s instance is not fitted yet. "
            "Call 'fit' first."
        ),
    )
    return som


class _GridDisplay:
    """Colour every unit of a map by a value, on its own lattice."""

    _label = "value"

    def __init__(self, values, *, unit_coords, topology="rectangular"):
        self.values = values
        self.unit_coords = unit_coords
        self.topology = topology

    def _validate(self):
        if self.topology not in _TOPOLOGIES:
            raise ValueError(
                f"topology must be one of {', '.join(map(repr, _TOPOLOGIES))}; "
                f"got {self.topology!r}."
            )
        coords = np.asarray(self.unit_coords)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(
                f"unit_coords must be of shape (n_units, 2); got shape {coords.shape}."
            )
        coords = check_array(coords, dtype=np.float64, input_name="unit_coords")
        values = np.asarray(self.values, dtype=np.float64).ravel()
        if values.size != coords.shape[0]:
            raise ValueError(
                f"values has {values.size} entries, but unit_coords has "
                f"{coords.shape[0]} units: expected one value per unit."
            )
        return values, coords

    def plot(self, *, ax=None, cmap="viridis", colorbar=True):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created with pyplot when None.

        cmap : str or Colormap, default="viridis"
            Colour map.

        colorbar : bool, default=True
            Whether to add a colour bar.

        Returns
        -------
        self : object
            With ``ax_``, ``figure_`` and ``collection_`` set.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        from matplotlib.collections import PolyCollection

        values, coords = self._validate()
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots()
        # Cells in data coordinates tile the lattice exactly, whatever the size
        # of the axes (a colour bar or a resized figure change it).
        vertices = _cell_vertices(coords, self.topology)
        collection = PolyCollection(
            vertices,
            array=values,
            cmap=cmap,
            edgecolors="face",  # hides the antialiasing seams between cells
            linewidths=0.5,
        )
        ax.add_collection(collection, autolim=False)
        lower, upper = vertices.min(axis=(0, 1)), vertices.max(axis=(0, 1))
        ax.set_xlim(lower[0], upper[0])
        ax.set_ylim(upper[1], lower[1])  # row 0 on top
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        fig = ax.figure
        if colorbar:
            fig.colorbar(collection, ax=ax, label=self._label)
        self.ax_, self.figure_, self.collection_ = ax, fig, collection
        return self

    @classmethod
    def _from(cls, som, values, **kwargs):
        return cls(values, unit_coords=som.unit_coords_, topology=som.topology).plot(
            **kwargs
        )


class UMatrixDisplay(_GridDisplay):
    """U-matrix of a fitted map: mean distance of each prototype to its
    neighbours (see :func:`somgen.metrics.u_matrix`).

    Use :meth:`from_estimator` to build and draw it from a fitted map; the
    parameters are validated by :meth:`plot`.

    Parameters
    ----------
    values : array-like of shape (n_rows, n_cols) or (n_units,)
        U-matrix, one value per unit in row-major order.

    unit_coords : array-like of shape (n_units, 2)
        Positions of the units, as ``SelfOrganizingMap.unit_coords_``.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Shape of the drawn cells.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes drawn on.

    figure_ : matplotlib Figure
        Figure holding ``ax_``.

    collection_ : matplotlib PolyCollection
        One cell per unit, coloured by its value.

    See Also
    --------
    HitMapDisplay : Number of samples won by each unit.
    somgen.metrics.u_matrix : The values drawn.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap
    >>> from somgen.plotting import UMatrixDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> som = SelfOrganizingMap(5, 5, random_state=0).fit(X)
    >>> fig = Figure()
    >>> disp = UMatrixDisplay.from_estimator(som, ax=fig.add_subplot())
    >>> disp.values.shape
    (5, 5)
    >>> len(disp.collection_.get_paths())
    25
    """

    _label = "mean distance to neighbours"

    @classmethod
    def from_estimator(cls, som, **kwargs):
        """Plot the U-matrix of a fitted map.

        Parameters
        ----------
        som : SelfOrganizingMap or SOMGenerativeModel
            Fitted map, a :class:`~sklearn.frozen.FrozenEstimator` wrapping one,
            or a fitted generative model, whose map ``som_`` is drawn.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : UMatrixDisplay

        Raises
        ------
        TypeError
            If ``som`` is not a map nor a generative model.

        sklearn.exceptions.NotFittedError
            If ``som`` is not fitted.
        """
        som = _fitted_map(som, f"{cls.__name__}.from_estimator")
        values = u_matrix(
            som.codebook_,
            n_rows=som.n_rows,
            n_cols=som.n_cols,
            topology=som.topology,
            periodic=som.periodic,
        )
        return cls._from(som, values, **kwargs)


class HitMapDisplay(_GridDisplay):
    """Number of samples won by each unit of a fitted map.

    Use :meth:`from_estimator` to build and draw it from a fitted map; the
    parameters are validated by :meth:`plot`.

    Parameters
    ----------
    values : array-like of shape (n_rows, n_cols) or (n_units,)
        Hit counts, one per unit in row-major order.

    unit_coords : array-like of shape (n_units, 2)
        Positions of the units, as ``SelfOrganizingMap.unit_coords_``.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Shape of the drawn cells.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes drawn on.

    figure_ : matplotlib Figure
        Figure holding ``ax_``.

    collection_ : matplotlib PolyCollection
        One cell per unit, coloured by its hit count.

    See Also
    --------
    UMatrixDisplay : Distances between neighbouring prototypes.
    somgen.metrics.hit_counts : Hit counts without plotting.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap, SOMGenerativeModel
    >>> from somgen.plotting import HitMapDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> model = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0).fit(X)
    >>> disp = HitMapDisplay.from_estimator(model, X, ax=Figure().add_subplot())
    >>> int(disp.values.sum())
    150
    """

    _label = "hits"

    @classmethod
    def from_estimator(cls, som, X, **kwargs):
        """Plot the hit counts of ``X`` on a fitted map.

        A sample is a hit for its best-matching unit; for a generative model the
        units are those of its map ``som_`` (not its ``predict``, which returns
        the most probable mixture component).

        Parameters
        ----------
        som : SelfOrganizingMap or SOMGenerativeModel
            Fitted map, a :class:`~sklearn.frozen.FrozenEstimator` wrapping one,
            or a fitted generative model, whose map ``som_`` is used.

        X : array-like of shape (n_samples, n_features)
            Data.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : HitMapDisplay

        Raises
        ------
        TypeError
            If ``som`` is not a map nor a generative model.

        sklearn.exceptions.NotFittedError
            If ``som`` is not fitted.
        """
        som = _fitted_map(som, f"{cls.__name__}.from_estimator")
        values = np.bincount(som.predict(X), minlength=som.n_rows * som.n_cols)
        return cls._from(som, values, **kwargs)
