"""Displays of fitted self-organizing maps (matplotlib, imported lazily).

Install the ``plot`` extra (``pip install "somgen[plot]"``) to use this module.
"""

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from somgen._generative import SOMGenerativeModel
from somgen._som import SelfOrganizingMap
from somgen.metrics import u_matrix

__all__ = ["ComponentPlanesDisplay", "HitMapDisplay", "UMatrixDisplay"]

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


def _check_topology_and_coords(topology, unit_coords):
    if topology not in _TOPOLOGIES:
        raise ValueError(
            f"topology must be one of {', '.join(map(repr, _TOPOLOGIES))}; "
            f"got {topology!r}."
        )
    coords = np.asarray(unit_coords)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(
            f"unit_coords must be of shape (n_units, 2); got shape {coords.shape}."
        )
    return check_array(coords, dtype=np.float64, input_name="unit_coords")


def _draw_cells(ax, coords, topology, kwargs, **defaults):
    """Add one cell per unit to ``ax`` as a PolyCollection in data coordinates.

    ``defaults`` are overridden by the user's ``kwargs`` (matplotlib aliases such
    as ``ec`` or ``edgecolors`` are normalized first).
    """
    from matplotlib import cbook
    from matplotlib.collections import PolyCollection

    kwargs = cbook.normalize_kwargs(kwargs, PolyCollection)
    # ``edgecolor="face"`` hides the antialiasing seams between cells.
    options = {"edgecolor": "face", "linewidth": 0.5}
    options.update(cbook.normalize_kwargs(defaults, PolyCollection))
    options.update(kwargs)
    # Cells in data coordinates tile the lattice exactly, whatever the size of
    # the axes (a colour bar or a resized figure change it).
    vertices = _cell_vertices(coords, topology)
    collection = PolyCollection(vertices, **options)
    ax.add_collection(collection, autolim=False)
    lower, upper = vertices.min(axis=(0, 1)), vertices.max(axis=(0, 1))
    ax.set_xlim(lower[0], upper[0])
    ax.set_ylim(upper[1], lower[1])  # row 0 on top
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return collection


def _new_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


class _GridDisplay:
    """Colour every unit of a map by a value, on its own lattice."""

    _label = "value"

    def __init__(self, values, *, unit_coords, topology="rectangular"):
        self.values = values
        self.unit_coords = unit_coords
        self.topology = topology

    def _validate(self):
        coords = _check_topology_and_coords(self.topology, self.unit_coords)
        values = np.asarray(self.values, dtype=np.float64).ravel()
        if values.size != coords.shape[0]:
            raise ValueError(
                f"values has {values.size} entries, but unit_coords has "
                f"{coords.shape[0]} units: expected one value per unit."
            )
        return values, coords

    def plot(self, *, ax=None, cmap="viridis", colorbar=True, **kwargs):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created with pyplot when None.

        cmap : str or Colormap, default="viridis"
            Colour map.

        colorbar : bool, default=True
            Whether to add a colour bar.

        **kwargs : dict
            Passed to :class:`~matplotlib.collections.PolyCollection` (for
            example ``edgecolor``, ``linewidth``, ``norm`` or ``alpha``); they
            override the defaults ``edgecolor="face"`` and ``linewidth=0.5``.

        Returns
        -------
        self : object
            With ``ax_``, ``figure_``, ``collection_`` and, with a colour bar,
            ``colorbar_`` set.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        values, coords = self._validate()
        if ax is None:
            ax = _new_axes()
        collection = _draw_cells(
            ax, coords, self.topology, kwargs, array=values, cmap=cmap
        )
        fig = ax.figure
        self.ax_, self.figure_, self.collection_ = ax, fig, collection
        self.__dict__.pop("colorbar_", None)
        if colorbar:
            self.colorbar_ = fig.colorbar(collection, ax=ax, label=self._label)
        return self

    @classmethod
    def _from(cls, som, values, **kwargs):
        return cls(values, unit_coords=som.unit_coords_, topology=som.topology).plot(
            **kwargs
        )


class UMatrixDisplay(_GridDisplay):
    """U-matrix of a fitted map.

    The value of each unit is the mean distance of its prototype to those of its
    neighbours on the grid (see :func:`somgen.metrics.u_matrix`): ridges of
    large values separate clusters.

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

    colorbar_ : matplotlib Colorbar
        Colour bar, only when drawn.

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
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Plot the U-matrix of a fitted map.

        Parameters
        ----------
        estimator : SelfOrganizingMap or SOMGenerativeModel
            Fitted map, a :class:`~sklearn.frozen.FrozenEstimator` wrapping one,
            or a fitted generative model, whose map ``som_`` is drawn.

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created with pyplot when None.

        **kwargs : dict
            Passed to :meth:`plot` (``cmap``, ``colorbar``, and keyword
            arguments of :class:`~matplotlib.collections.PolyCollection`).

        Returns
        -------
        display : UMatrixDisplay

        Raises
        ------
        TypeError
            If ``estimator`` is not a map nor a generative model.

        sklearn.exceptions.NotFittedError
            If ``estimator`` is not fitted.
        """
        som = _fitted_map(estimator, f"{cls.__name__}.from_estimator")
        values = u_matrix(
            som.codebook_,
            n_rows=som.n_rows_,
            n_cols=som.n_cols_,
            topology=som.topology,
            periodic=som.periodic,
        )
        return cls._from(som, values, ax=ax, **kwargs)


def _class_counts(units, y, n_units):
    """Classes of ``y`` and the count of each class in each unit.

    Returns ``classes`` of shape (n_classes,) and ``counts`` of shape
    (n_units, n_classes).
    """
    classes, y_index = np.unique(y, return_inverse=True)
    n_classes = classes.size
    counts = np.bincount(
        units * n_classes + y_index.ravel(), minlength=n_units * n_classes
    )
    return classes, counts.reshape(n_units, n_classes)


def _majority_and_purity(class_counts):
    """Majority class (-1 without hits) and its share (NaN without hits)."""
    hits = class_counts.sum(axis=1)
    empty = hits == 0
    majority = np.where(empty, -1, class_counts.argmax(axis=1))
    purity = class_counts.max(axis=1) / np.where(empty, 1, hits)
    purity[empty] = np.nan
    return majority, purity


def _class_colormap(cmap, n_classes, empty_color):
    """A ListedColormap of one colour per class; masked units get ``empty_color``."""
    import matplotlib
    from matplotlib.colors import Colormap, ListedColormap

    if cmap is None:
        cmap = "tab10" if n_classes <= 10 else "tab20"
    if not isinstance(cmap, Colormap):
        cmap = matplotlib.colormaps[cmap]
    if isinstance(cmap, ListedColormap) and cmap.N >= n_classes:
        colors = cmap(np.arange(n_classes))
    else:
        colors = cmap(np.linspace(0.0, 1.0, n_classes))
    return ListedColormap(colors).with_extremes(bad=empty_color)


_PURITY_OPTIONS = ("alpha", "text")


class HitMapDisplay(_GridDisplay):
    """Number of samples won by each unit of a fitted map, optionally by class.

    Without labels, each unit is coloured by its hit count. With per-unit class
    counts (``HitMapDisplay.from_estimator(som, X, y)``), each unit is coloured
    by its majority class, its purity (the share of the majority class among
    its hits) is shown as the cell's opacity or as text, and units without hits
    are drawn in ``empty_color``.

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

    class_counts : array-like of shape (n_units, n_classes), default=None
        Number of samples of each class won by each unit; its rows must sum to
        ``values``. None draws the hit counts.

    display_labels : array-like of shape (n_classes,), default=None
        Class names shown on the colour bar; ``0, 1, ...`` when None.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes drawn on.

    figure_ : matplotlib Figure
        Figure holding ``ax_``.

    collection_ : matplotlib PolyCollection
        One cell per unit, coloured by its hit count (without labels) or by the
        index of its majority class (masked for units without hits).

    colorbar_ : matplotlib Colorbar
        Colour bar, only when drawn; with labels its ticks are the class names.

    hits_ : ndarray of shape (n_units,)
        Hit count of each unit.

    majority_class_ : ndarray of shape (n_units,)
        With labels only: index in ``display_labels`` of the most frequent
        class of each unit (the first one on ties), -1 for units without hits.

    purity_ : ndarray of shape (n_units,)
        With labels only: share of the majority class among the hits of each
        unit, NaN for units without hits.

    text_ : ndarray of shape (n_units,) of matplotlib Text or None
        With labels and ``purity="text"`` only: the purity annotation of each
        unit, None for units without hits.

    See Also
    --------
    UMatrixDisplay : Distances between neighbouring prototypes.
    ComponentPlanesDisplay : One map per feature.
    somgen.metrics.hit_counts : Hit counts without plotting.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap, SOMGenerativeModel
    >>> from somgen.plotting import HitMapDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SOMGenerativeModel(SelfOrganizingMap(4, 4), random_state=0).fit(X)
    >>> disp = HitMapDisplay.from_estimator(model, X, ax=Figure().add_subplot())
    >>> int(disp.values.sum())
    150
    >>> disp = HitMapDisplay.from_estimator(
    ...     model, X, y, display_labels=["setosa", "versicolor", "virginica"],
    ...     ax=Figure().add_subplot(),
    ... )
    >>> disp.majority_class_.shape, disp.purity_.shape
    ((16,), (16,))
    """

    _label = "hits"

    def __init__(
        self,
        values,
        *,
        unit_coords,
        topology="rectangular",
        class_counts=None,
        display_labels=None,
    ):
        super().__init__(values, unit_coords=unit_coords, topology=topology)
        self.class_counts = class_counts
        self.display_labels = display_labels

    def _validate_classes(self, values):
        counts = check_array(
            self.class_counts, dtype=np.float64, input_name="class_counts"
        )
        if counts.shape[0] != values.size:
            raise ValueError(
                f"class_counts has {counts.shape[0]} rows, but there are "
                f"{values.size} units: expected one row per unit."
            )
        if np.any(counts < 0) or not np.array_equal(counts.sum(axis=1), values):
            raise ValueError(
                "class_counts must be non-negative and its rows must sum to the "
                "hit counts in values."
            )
        n_classes = counts.shape[1]
        labels = (
            np.arange(n_classes)
            if self.display_labels is None
            else np.asarray(self.display_labels)
        )
        if labels.shape != (n_classes,):
            raise ValueError(
                f"display_labels has {labels.size} entries, but class_counts has "
                f"{n_classes} classes."
            )
        return counts, labels

    def plot(
        self,
        *,
        ax=None,
        cmap=None,
        colorbar=True,
        purity="alpha",
        empty_color="lightgrey",
        text_kw=None,
        **kwargs,
    ):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created with pyplot when None.

        cmap : str or Colormap, default=None
            Colour map: "viridis" for hit counts; for classes, a qualitative map
            ("tab10", or "tab20" beyond ten classes) whose first colours are the
            classes' (a continuous map is sampled evenly).

        colorbar : bool, default=True
            Whether to add a colour bar (with class names as ticks with labels).

        purity : {"alpha", "text"} or None, default="alpha"
            With labels only: show the purity of each unit as the opacity of its
            cell (``alpha = purity``), as a percentage written in it, or not.

        empty_color : color, default="lightgrey"
            With labels only: colour of the units without hits.

        text_kw : dict, default=None
            With ``purity="text"``: keyword arguments of
            :meth:`matplotlib.axes.Axes.text`, overriding the defaults.

        **kwargs : dict
            Passed to :class:`~matplotlib.collections.PolyCollection` (for
            example ``edgecolor``, ``linewidth`` or ``alpha``); they override the
            defaults ``edgecolor="face"`` and ``linewidth=0.5``.

        Returns
        -------
        self : HitMapDisplay
            With ``ax_``, ``figure_``, ``collection_``, ``hits_`` and, with
            labels, ``majority_class_`` and ``purity_`` set.
        """
        if self.class_counts is None:
            for name in ("majority_class_", "purity_", "text_"):
                self.__dict__.pop(name, None)
            super().plot(
                ax=ax,
                cmap="viridis" if cmap is None else cmap,
                colorbar=colorbar,
                **kwargs,
            )
            self.hits_ = self.collection_.get_array().data.astype(np.intp)
            return self
        return self._plot_classes(
            ax=ax,
            cmap=cmap,
            colorbar=colorbar,
            purity=purity,
            empty_color=empty_color,
            text_kw=text_kw,
            kwargs=kwargs,
        )

    def _plot_classes(
        self, *, ax, cmap, colorbar, purity, empty_color, text_kw, kwargs
    ):
        _check_matplotlib(f"{type(self).__name__}.plot")
        from matplotlib.colors import BoundaryNorm

        if purity is not None and purity not in _PURITY_OPTIONS:
            raise ValueError(
                f"purity must be one of {', '.join(map(repr, _PURITY_OPTIONS))} "
                f"or None; got {purity!r}."
            )
        values, coords = self._validate()
        counts, labels = self._validate_classes(values)
        n_classes = labels.size
        majority, unit_purity = _majority_and_purity(counts)
        empty = majority < 0
        if ax is None:
            ax = _new_axes()
        defaults = {
            "array": np.ma.masked_array(majority, mask=empty),
            "cmap": _class_colormap(cmap, n_classes, empty_color),
            "norm": BoundaryNorm(np.arange(n_classes + 1) - 0.5, n_classes),
        }
        if purity == "alpha":
            defaults["alpha"] = np.where(empty, 1.0, unit_purity)
        collection = _draw_cells(ax, coords, self.topology, kwargs, **defaults)
        fig = ax.figure
        self.ax_, self.figure_, self.collection_ = ax, fig, collection
        self.hits_ = values.astype(np.intp)
        self.majority_class_, self.purity_ = majority, unit_purity
        self.__dict__.pop("text_", None)
        if purity == "text":
            options = {"ha": "center", "va": "center", "fontsize": "x-small"}
            options.update(text_kw or {})
            self.text_ = np.empty(values.size, dtype=object)
            for unit in np.flatnonzero(~empty):
                self.text_[unit] = ax.text(
                    *coords[unit], f"{unit_purity[unit]:.0%}", **options
                )
        self.__dict__.pop("colorbar_", None)
        if colorbar:
            self.colorbar_ = fig.colorbar(
                collection, ax=ax, label="majority class", ticks=np.arange(n_classes)
            )
            self.colorbar_.set_ticklabels([str(label) for label in labels])
        return self

    @classmethod
    def from_estimator(
        cls, estimator, X, y=None, *, ax=None, display_labels=None, **kwargs
    ):
        """Plot the hit counts of ``X`` on a fitted map, optionally by class.

        A sample is a hit for its best-matching unit; for a generative model the
        units are those of its map ``som_`` (not its ``predict``, which returns
        the most probable mixture component).

        Parameters
        ----------
        estimator : SelfOrganizingMap or SOMGenerativeModel
            Fitted map, a :class:`~sklearn.frozen.FrozenEstimator` wrapping one,
            or a fitted generative model, whose map ``som_`` is used.

        X : array-like of shape (n_samples, n_features)
            Data.

        y : array-like of shape (n_samples,), default=None
            Class labels. When given, each unit is coloured by its majority
            class and its purity is shown (see :meth:`plot`).

        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created with pyplot when None.

        display_labels : array-like of shape (n_classes,), default=None
            Names of the sorted unique classes of ``y``; the classes themselves
            when None.

        **kwargs : dict
            Passed to :meth:`plot` (``cmap``, ``colorbar``, ``purity``, ...,
            and keyword arguments of :class:`~matplotlib.collections.PolyCollection`).

        Returns
        -------
        display : HitMapDisplay

        Raises
        ------
        TypeError
            If ``estimator`` is not a map nor a generative model.

        sklearn.exceptions.NotFittedError
            If ``estimator`` is not fitted.
        """
        som = _fitted_map(estimator, f"{cls.__name__}.from_estimator")
        n_units = som.n_rows_ * som.n_cols_
        class_counts = None
        if y is not None:
            y = column_or_1d(y)
            check_consistent_length(X, y)
        units = som.predict(X)
        values = np.bincount(units, minlength=n_units)
        if y is not None:
            classes, class_counts = _class_counts(units, y, n_units)
            if display_labels is None:
                display_labels = classes
        return cls(
            values,
            unit_coords=som.unit_coords_,
            topology=som.topology,
            class_counts=class_counts,
            display_labels=display_labels,
        ).plot(ax=ax, **kwargs)


def _select_features(feature_names, features):
    """Column indices of ``features`` (indices or names) among ``feature_names``."""
    n_features = len(feature_names)
    if features is None:
        return np.arange(n_features)
    if isinstance(features, (str, int, np.integer)):
        features = [features]
    lookup = {str(name): i for i, name in enumerate(feature_names)}
    indices = []
    for feature in features:
        if isinstance(feature, (int, np.integer)) and not isinstance(feature, bool):
            if not -n_features <= feature < n_features:
                raise ValueError(
                    f"feature index {feature} is out of range for a map of "
                    f"{n_features} features."
                )
            indices.append(int(feature) % n_features)
        elif isinstance(feature, str) and feature in lookup:
            indices.append(lookup[feature])
        else:
            raise ValueError(
                f"features must be feature indices or names among "
                f"{list(lookup)}; got {feature!r}."
            )
    if not indices:
        raise ValueError("features must select at least one feature.")
    return np.asarray(indices)


class ComponentPlanesDisplay:
    """Component planes of a fitted map: one small map per feature.

    The plane of a feature colours every unit by that feature of its prototype
    (a column of ``codebook_``), on the map's own lattice, so that planes of
    correlated features look alike.

    Use :meth:`from_estimator` to build and draw it from a fitted map; the
    parameters are validated by :meth:`plot`.

    Parameters
    ----------
    codebook : array-like of shape (n_units, n_planes)
        Prototype values, one column per drawn feature, units in row-major order.

    unit_coords : array-like of shape (n_units, 2)
        Positions of the units, as ``SelfOrganizingMap.unit_coords_``.

    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Shape of the drawn cells.

    feature_names : array-like of str of shape (n_planes,), default=None
        Titles of the planes; ``x0, x1, ...`` when None.

    Attributes
    ----------
    axes_ : ndarray of shape (n_planes,) of matplotlib Axes
        One Axes per plane.

    figure_ : matplotlib Figure
        Figure holding ``axes_``.

    collections_ : ndarray of shape (n_planes,) of matplotlib PolyCollection
        One collection per plane, one cell per unit.

    colorbars_ : list of matplotlib Colorbar
        One colour bar per plane, or a single one for all the planes with
        ``shared_colorbar=True``; empty with ``colorbar=False``.

    colorbar_ : matplotlib Colorbar
        The shared colour bar, only with ``shared_colorbar=True`` and
        ``colorbar=True``.

    bounding_ax_ : matplotlib Axes or None
        The Axes given as ``ax`` and split into the planes (turned off), or None.

    See Also
    --------
    UMatrixDisplay : Distances between neighbouring prototypes.
    HitMapDisplay : Number of samples won by each unit.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from somgen import SelfOrganizingMap
    >>> from somgen.plotting import ComponentPlanesDisplay
    >>> X, _ = load_iris(return_X_y=True, as_frame=True)
    >>> som = SelfOrganizingMap(5, 5, topology="hexagonal", random_state=0).fit(X)
    >>> disp = ComponentPlanesDisplay.from_estimator(
    ...     som, features=["petal length (cm)", "petal width (cm)"],
    ...     ax=Figure().add_subplot(), shared_colorbar=True,
    ... )
    >>> [ax.get_title() for ax in disp.axes_]
    ['petal length (cm)', 'petal width (cm)']
    """

    def __init__(
        self, codebook, *, unit_coords, topology="rectangular", feature_names=None
    ):
        self.codebook = codebook
        self.unit_coords = unit_coords
        self.topology = topology
        self.feature_names = feature_names

    def _validate(self):
        coords = _check_topology_and_coords(self.topology, self.unit_coords)
        codebook = check_array(self.codebook, dtype=np.float64, input_name="codebook")
        if codebook.shape[0] != coords.shape[0]:
            raise ValueError(
                f"codebook has {codebook.shape[0]} rows, but unit_coords has "
                f"{coords.shape[0]} units: expected one row per unit."
            )
        n_planes = codebook.shape[1]
        if self.feature_names is None:
            names = [f"x{i}" for i in range(n_planes)]
        else:
            names = [str(name) for name in self.feature_names]
            if len(names) != n_planes:
                raise ValueError(
                    f"feature_names has {len(names)} entries, but codebook has "
                    f"{n_planes} columns."
                )
        return codebook, coords, names

    def _make_axes(self, ax, n_planes, n_cols):
        """The figure, one Axes per plane, and the bounding Axes (or None)."""
        from matplotlib.axes import Axes

        if n_cols is None:
            n_cols = int(np.ceil(np.sqrt(n_planes)))
        n_cols = min(int(n_cols), n_planes)
        if n_cols < 1:
            raise ValueError(f"n_cols must be a positive integer; got {n_cols}.")
        n_rows = -(-n_planes // n_cols)
        if ax is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(layout="constrained")
            grid = fig.add_gridspec(n_rows, n_cols)
            bounding = None
        elif isinstance(ax, Axes):
            spec = ax.get_subplotspec()
            if spec is None:
                raise ValueError(
                    "ax must be a subplot (created with add_subplot or subplots) "
                    "to be split into planes; pass one Axes per plane otherwise."
                )
            fig, grid, bounding = ax.figure, spec.subgridspec(n_rows, n_cols), ax
            ax.set_axis_off()
        else:
            axes = np.asarray(ax, dtype=object).ravel()
            if axes.size != n_planes or not all(isinstance(a, Axes) for a in axes):
                raise ValueError(
                    f"ax must be None, one Axes, or {n_planes} Axes (one per "
                    f"plane); got {axes.size} object(s)."
                )
            return axes[0].figure, axes, None
        axes = np.empty(n_planes, dtype=object)
        for i in range(n_planes):
            axes[i] = fig.add_subplot(grid[i // n_cols, i % n_cols])
        return fig, axes, bounding

    def plot(
        self,
        *,
        ax=None,
        cmap="viridis",
        colorbar=True,
        shared_colorbar=False,
        n_cols=None,
        **kwargs,
    ):
        """Draw the display.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            Where to draw: None creates a new figure with pyplot; one Axes (a
            subplot) is turned off and its area split into a grid of planes;
            an array-like of ``n_planes`` Axes gets one plane each.

        cmap : str or Colormap, default="viridis"
            Colour map.

        colorbar : bool, default=True
            Whether to add colour bars.

        shared_colorbar : bool, default=False
            Whether all planes share one colour scale (the range of all the
            drawn values) and a single colour bar; otherwise each plane has its
            own scale and colour bar.

        n_cols : int, default=None
            Number of columns of the grid of planes when it is created;
            ``ceil(sqrt(n_planes))`` when None.

        **kwargs : dict
            Passed to every :class:`~matplotlib.collections.PolyCollection` (for
            example ``edgecolor``, ``linewidth`` or ``norm``); they override the
            defaults ``edgecolor="face"`` and ``linewidth=0.5``.

        Returns
        -------
        self : ComponentPlanesDisplay
            With ``axes_``, ``figure_``, ``collections_`` and ``colorbars_`` set.
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        from matplotlib.colors import Normalize

        codebook, coords, names = self._validate()
        n_planes = codebook.shape[1]
        fig, axes, bounding = self._make_axes(ax, n_planes, n_cols)
        defaults = {"cmap": cmap}
        if shared_colorbar:
            defaults["norm"] = Normalize(codebook.min(), codebook.max())
        collections = np.empty(n_planes, dtype=object)
        for i, plane_ax in enumerate(axes):
            collections[i] = _draw_cells(
                plane_ax,
                coords,
                self.topology,
                kwargs,
                array=codebook[:, i],
                **defaults,
            )
            plane_ax.set_title(names[i], fontsize="small")
        self.axes_, self.figure_, self.collections_ = axes, fig, collections
        self.bounding_ax_ = bounding
        self.colorbars_ = []
        self.__dict__.pop("colorbar_", None)
        if colorbar and shared_colorbar:
            self.colorbar_ = fig.colorbar(collections[0], ax=list(axes))
            self.colorbars_.append(self.colorbar_)
        elif colorbar:
            self.colorbars_ = [
                fig.colorbar(collection, ax=plane_ax)
                for collection, plane_ax in zip(collections, axes, strict=True)
            ]
        return self

    @classmethod
    def from_estimator(cls, estimator, *, features=None, ax=None, **kwargs):
        """Plot the component planes of a fitted map.

        Parameters
        ----------
        estimator : SelfOrganizingMap or SOMGenerativeModel
            Fitted map, a :class:`~sklearn.frozen.FrozenEstimator` wrapping one,
            or a fitted generative model, whose map ``som_`` is drawn.

        features : int, str or list of int or str, default=None
            Features to draw, by index or by name; all of them when None.
            Names are ``feature_names_in_`` when the map was fitted on a
            DataFrame, ``x0, x1, ...`` otherwise.

        ax : matplotlib Axes or array-like of Axes, default=None
            See :meth:`plot`.

        **kwargs : dict
            Passed to :meth:`plot` (``cmap``, ``colorbar``, ``shared_colorbar``,
            ``n_cols``, and keyword arguments of
            :class:`~matplotlib.collections.PolyCollection`).

        Returns
        -------
        display : ComponentPlanesDisplay

        Raises
        ------
        TypeError
            If ``estimator`` is not a map nor a generative model.

        sklearn.exceptions.NotFittedError
            If ``estimator`` is not fitted.

        ValueError
            If ``features`` names an unknown feature or an index out of range.
        """
        som = _fitted_map(estimator, f"{cls.__name__}.from_estimator")
        n_features = som.codebook_.shape[1]
        names = getattr(som, "feature_names_in_", None)
        if names is None:
            names = [f"x{i}" for i in range(n_features)]
        columns = _select_features(list(names), features)
        return cls(
            som.codebook_[:, columns],
            unit_coords=som.unit_coords_,
            topology=som.topology,
            feature_names=[str(names[i]) for i in columns],
        ).plot(ax=ax, **kwargs)
