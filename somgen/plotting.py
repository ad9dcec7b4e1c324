"""Displays of fitted self-organizing maps (matplotlib, imported lazily).

Install the ``plot`` extra (``pip install "somgen[plot]"``) to use this module.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from somgen.metrics import u_matrix

__all__ = ["HitMapDisplay", "UMatrixDisplay"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib
        raise ImportError(
            'Plotting needs matplotlib; install it with `pip install "somgen[plot]"`.'
        ) from exc
    return plt


class _GridDisplay:
    """Colour every unit of a map by a value, on its own lattice."""

    _label = "value"

    def __init__(self, values, *, unit_coords, topology="rectangular"):
        self.values = values
        self.unit_coords = unit_coords
        self.topology = topology

    def plot(self, *, ax=None, cmap="viridis", colorbar=True):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created when None.

        cmap : str or Colormap, default="viridis"
            Colour map.

        colorbar : bool, default=True
            Whether to add a colour bar.

        Returns
        -------
        self : object
            With ``ax_``, ``figure_`` and ``collection_`` set.
        """
        plt = _pyplot()
        from matplotlib.collections import RegularPolyCollection

        if ax is None:
            _, ax = plt.subplots()
        values = np.asarray(self.values, dtype=np.float64).ravel()
        coords = np.asarray(self.unit_coords, dtype=np.float64)
        hexagonal = self.topology == "hexagonal"
        collection = RegularPolyCollection(
            numsides=6 if hexagonal else 4,
            rotation=0.0 if hexagonal else np.pi / 4,
            sizes=(1.0,),
            offsets=coords,
            offset_transform=ax.transData,
            array=values,
            cmap=cmap,
        )
        ax.add_collection(collection)
        # Size the polygons to touch their neighbours, in data units.
        fig = ax.figure
        ax.set_xlim(coords[:, 0].min() - 0.75, coords[:, 0].max() + 0.75)
        ax.set_ylim(coords[:, 1].max() + 0.75, coords[:, 1].min() - 0.75)
        ax.set_aspect("equal")
        fig.canvas.draw()
        pts_per_unit = (
            (
                ax.transData.transform([[1.0, 0.0]])
                - ax.transData.transform([[0.0, 0.0]])
            )[0, 0]
            * 72.0
            / fig.dpi
        )
        side = pts_per_unit / (np.sqrt(3.0) if hexagonal else np.sqrt(2.0)) * 1.02
        collection.set_sizes([side**2 * (3 * np.sqrt(3) / 2 if hexagonal else 2.0)])
        ax.set_xticks([])
        ax.set_yticks([])
        if colorbar:
            fig.colorbar(collection, ax=ax, label=self._label)
        self.ax_, self.figure_, self.collection_ = ax, fig, collection
        return self

    @classmethod
    def _from(cls, som, values, **kwargs):
        check_is_fitted(som)
        return cls(values, unit_coords=som.unit_coords_, topology=som.topology).plot(
            **kwargs
        )


class UMatrixDisplay(_GridDisplay):
    """U-matrix of a fitted map: mean distance of each prototype to its
    neighbours (see :func:`somgen.metrics.u_matrix`).

    Parameters
    ----------
    values : array-like of shape (n_rows, n_cols)
        U-matrix.

    unit_coords : array-like of shape (n_rows * n_cols, 2)
        Positions of the units, as ``SelfOrganizingMap.unit_coords_``.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Shape of the drawn cells.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap
    >>> from somgen.plotting import UMatrixDisplay
    >>> X, _ = load_iris(return_X_y=True)
    >>> som = SelfOrganizingMap(5, 5, random_state=0).fit(X)
    >>> disp = UMatrixDisplay.from_estimator(som)
    >>> disp.values.shape
    (5, 5)
    """

    _label = "mean distance to neighbours"

    @classmethod
    def from_estimator(cls, som, **kwargs):
        """Plot the U-matrix of a fitted :class:`~somgen.SelfOrganizingMap`.

        Parameters
        ----------
        som : SelfOrganizingMap
            Fitted map.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : UMatrixDisplay
        """
        check_is_fitted(som)
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

    Parameters
    ----------
    values : array-like of shape (n_rows, n_cols)
        Hit counts.

    unit_coords : array-like of shape (n_rows * n_cols, 2)
        Positions of the units, as ``SelfOrganizingMap.unit_coords_``.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Shape of the drawn cells.
    """

    _label = "hits"

    @classmethod
    def from_estimator(cls, som, X, **kwargs):
        """Plot the hit counts of ``X`` on a fitted map.

        Parameters
        ----------
        som : SelfOrganizingMap
            Fitted map.

        X : array-like of shape (n_samples, n_features)
            Data.

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : HitMapDisplay
        """
        check_is_fitted(som)
        values = np.bincount(som.predict(X), minlength=som.n_rows * som.n_cols)
        return cls._from(som, values, **kwargs)
