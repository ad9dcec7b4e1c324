"""Plot displays (matplotlib is a test extra)."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator

from somgen import SelfOrganizingMap, SOMGenerativeModel
from somgen._topology import _unit_coordinates
from somgen.metrics import u_matrix

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is a test extra")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.path import Path  # noqa: E402

from somgen.plotting import (  # noqa: E402
    ComponentPlanesDisplay,
    HitMapDisplay,
    UMatrixDisplay,
)

plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(scope="module")
def iris():
    X, _ = load_iris(return_X_y=True)
    return X


@pytest.fixture(scope="module")
def fitted_som(iris):
    return SelfOrganizingMap(3, 4, random_state=0).fit(iris)


def _cell_centres(collection):
    """Centre of the bounding box of every drawn cell, in data coordinates."""
    paths = collection.get_paths()
    return np.array(
        [(p.vertices.min(axis=0) + p.vertices.max(axis=0)) / 2 for p in paths]
    )


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_umatrix_display_colours_every_unit(iris, topology):
    som = SelfOrganizingMap(4, 5, topology=topology, random_state=0).fit(iris)
    disp = UMatrixDisplay.from_estimator(som, ax=Figure().add_subplot(), colorbar=False)
    expected = u_matrix(som.codebook_, n_rows=4, n_cols=5, topology=topology)
    np.testing.assert_allclose(disp.collection_.get_array(), expected.ravel())
    np.testing.assert_allclose(
        _cell_centres(disp.collection_), som.unit_coords_, atol=1e-12
    )


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("colorbar", [False, True])
def test_grid_display_cells_tile_without_overlap(topology, colorbar):
    # Each cell must show its own colour right up to its borders with all its
    # neighbours, with or without a colour bar and after the figure is resized:
    # cells sized in points overlapped once the colour bar shrank the axes.
    n_rows, n_cols = 3, 4
    coords = _unit_coordinates(n_rows, n_cols, topology)
    values = np.arange(n_rows * n_cols, dtype=np.float64)
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    disp = UMatrixDisplay(values, unit_coords=coords, topology=topology).plot(
        ax=fig.add_subplot(), colorbar=colorbar
    )
    n_sides = 6 if topology == "hexagonal" else 4
    angles = 2 * np.pi * np.arange(n_sides) / n_sides
    # 0.4 of the way to each neighbour: inside the cell (apothem 0.5).
    probes = 0.4 * np.column_stack([np.cos(angles), np.sin(angles)])
    expected = disp.collection_.to_rgba(values, bytes=True)[:, :3]
    for size in [(6, 4), (3, 5)]:
        fig.set_size_inches(size)
        fig.canvas.draw()
        image = np.asarray(fig.canvas.buffer_rgba())
        for unit, centre in enumerate(coords):
            xy = disp.ax_.transData.transform(centre + probes)
            rows = (image.shape[0] - xy[:, 1]).astype(int)
            rgb = image[rows, xy[:, 0].astype(int), :3]
            np.testing.assert_allclose(
                rgb, np.broadcast_to(expected[unit], rgb.shape), atol=2
            )


def test_hit_map_display_counts_samples(iris):
    som = SelfOrganizingMap(3, 3, random_state=0).fit(iris)
    _, ax = plt.subplots()
    disp = HitMapDisplay.from_estimator(som, iris, ax=ax)
    assert disp.ax_ is ax
    counts = disp.collection_.get_array()
    assert counts.sum() == len(iris)
    np.testing.assert_array_equal(counts, np.bincount(som.predict(iris), minlength=9))
    plt.close(disp.figure_)


@pytest.mark.parametrize("display", [UMatrixDisplay, HitMapDisplay])
def test_display_from_estimator_rejects_unfitted_map(iris, display):
    args = (iris,) if display is HitMapDisplay else ()
    for estimator in [SelfOrganizingMap(), SOMGenerativeModel()]:
        with pytest.raises(NotFittedError, match=type(estimator).__name__):
            display.from_estimator(estimator, *args)


@pytest.mark.parametrize("display", [UMatrixDisplay, HitMapDisplay])
def test_display_from_estimator_rejects_non_map(iris, display):
    args = (iris,) if display is HitMapDisplay else ()
    kmeans = KMeans(3, n_init=1, random_state=0).fit(iris)
    message = "expects a SelfOrganizingMap or SOMGenerativeModel.*got KMeans"
    with pytest.raises(TypeError, match=message):
        display.from_estimator(kmeans, *args)


def test_display_from_estimator_accepts_generative_model(iris):
    model = SOMGenerativeModel(SelfOrganizingMap(3, 4, random_state=0), random_state=0)
    model.fit(iris)
    som = model.som_
    disp = UMatrixDisplay.from_estimator(model, ax=Figure().add_subplot())
    np.testing.assert_allclose(
        disp.collection_.get_array(),
        u_matrix(som.codebook_, n_rows=3, n_cols=4).ravel(),
    )
    np.testing.assert_allclose(
        _cell_centres(disp.collection_), som.unit_coords_, atol=1e-12
    )
    # Hits are counted on the map's best-matching units.
    disp = HitMapDisplay.from_estimator(model, iris, ax=Figure().add_subplot())
    np.testing.assert_array_equal(
        disp.collection_.get_array(), np.bincount(som.predict(iris), minlength=12)
    )


def test_display_from_estimator_accepts_frozen_map(iris, fitted_som):
    model = SOMGenerativeModel(FrozenEstimator(fitted_som), random_state=0).fit(iris)
    for estimator in [FrozenEstimator(fitted_som), model]:
        disp = HitMapDisplay.from_estimator(estimator, iris, ax=Figure().add_subplot())
        np.testing.assert_array_equal(
            disp.collection_.get_array(),
            np.bincount(fitted_som.predict(iris), minlength=12),
        )


@pytest.mark.parametrize(
    "values, unit_coords, topology, message",
    [
        (
            np.arange(5.0),
            _unit_coordinates(3, 4, "rectangular"),
            "rectangular",
            "values has 5 entries, but unit_coords has 12 units",
        ),
        (
            np.zeros((4, 4)),
            _unit_coordinates(3, 4, "hexagonal"),
            "hexagonal",
            "values has 16 entries, but unit_coords has 12 units",
        ),
        (
            np.arange(12.0),
            np.arange(12.0),
            "rectangular",
            r"unit_coords must be of shape \(n_units, 2\); got shape \(12,\)",
        ),
        (
            np.arange(4.0),
            np.zeros((4, 3)),
            "rectangular",
            r"unit_coords must be of shape \(n_units, 2\); got shape \(4, 3\)",
        ),
        (
            np.arange(12.0),
            _unit_coordinates(3, 4, "rectangular"),
            "hex",
            "topology must be one of 'hexagonal', 'rectangular'; got 'hex'",
        ),
    ],
)
def test_grid_display_validates_its_arguments(values, unit_coords, topology, message):
    disp = UMatrixDisplay(values, unit_coords=unit_coords, topology=topology)
    fig = Figure()
    with pytest.raises(ValueError, match=message):
        disp.plot(ax=fig.add_subplot())
    assert not hasattr(disp, "collection_")
    assert len(fig.axes[0].collections) == 0


def test_display_leaves_global_state_alone(fitted_som, iris):
    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    fignums = plt.get_fignums()
    fig = Figure()
    disp = HitMapDisplay.from_estimator(fitted_som, iris, ax=fig.add_subplot())
    assert disp.figure_ is fig
    assert plt.get_fignums() == fignums
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc

    # Without ``ax``, exactly one new pyplot figure: the display's own.
    disp = UMatrixDisplay.from_estimator(fitted_som)
    assert plt.get_fignums() == fignums + [disp.figure_.number]
    plt.close(disp.figure_)
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc


def _display_polygons(collection, ax):
    """Vertices of every drawn cell in display (pixel) coordinates."""
    return np.array(
        [ax.transData.transform(path.vertices[:-1]) for path in collection.get_paths()]
    )


def _shoelace_areas(polygons):
    x, y = polygons[..., 0], polygons[..., 1]
    return 0.5 * np.abs(
        np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)
    )


def _check_tiling(polygons, coords, n_sides, rng):
    """Neighbouring cells share an edge, interior cells are closed by their
    neighbours' edges, and no point lies in two cells."""
    scale = np.abs(polygons).max()
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    neighbours = np.isclose(distances, 1.0)
    for unit, other in zip(*np.nonzero(np.triu(neighbours)), strict=True):
        gaps = np.linalg.norm(polygons[unit][:, None] - polygons[other][None], axis=-1)
        # Exactly two vertices in common: the shared edge.
        assert np.sum(gaps < 1e-12 * scale) == 2, (unit, other)
    # A unit with a full set of neighbours is closed off by them: each of its
    # edges is an edge of a neighbour.
    edge_neighbours = neighbours.sum(axis=1)
    assert edge_neighbours.max() == n_sides
    for unit in np.flatnonzero(edge_neighbours == n_sides):
        shared = 0
        for other in np.flatnonzero(neighbours[unit]):
            gaps = np.linalg.norm(
                polygons[unit][:, None] - polygons[other][None], axis=-1
            )
            shared += np.sum(gaps < 1e-12 * scale)
        assert shared == 2 * n_sides  # every vertex counted for its two edges
    # No overlap: random points in the drawn area each lie in at most one cell,
    # and the cells' areas add up to the area they cover together.
    lower, upper = polygons.min(axis=(0, 1)), polygons.max(axis=(0, 1))
    points = rng.uniform(lower, upper, size=(20_000, 2))
    inside = np.array([Path(p).contains_points(points) for p in polygons])
    assert inside.sum(axis=0).max() == 1
    covered = inside.any(axis=0).mean() * np.prod(upper - lower)
    areas = _shoelace_areas(polygons)
    np.testing.assert_allclose(areas.sum(), covered, rtol=0.03)
    # All cells are the same size on screen (equal aspect in data units).
    np.testing.assert_allclose(areas, areas[0], rtol=1e-9)


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
@pytest.mark.parametrize("colorbar", [False, True])
@pytest.mark.parametrize("display", ["umatrix", "hits", "labels", "planes"])
def test_grid_display_cells_share_edges_without_overlap(
    iris, topology, colorbar, display
):
    som = SelfOrganizingMap(4, 5, topology=topology, random_state=0).fit(iris)
    y = load_iris().target
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if display == "umatrix":
        disp = UMatrixDisplay.from_estimator(som, ax=ax, colorbar=colorbar)
    elif display == "hits":
        disp = HitMapDisplay.from_estimator(som, iris, ax=ax, colorbar=colorbar)
    elif display == "labels":
        disp = HitMapDisplay.from_estimator(som, iris, y, ax=ax, colorbar=colorbar)
    else:
        disp = ComponentPlanesDisplay.from_estimator(
            som, features=[0, 2], ax=ax, colorbar=colorbar
        )
    pairs = (
        list(zip(disp.collections_, disp.axes_, strict=True))
        if display == "planes"
        else [(disp.collection_, disp.ax_)]
    )
    n_sides = 6 if topology == "hexagonal" else 4
    rng = np.random.default_rng(0)
    for size in [(6, 4), (3, 5)]:
        fig.set_size_inches(size)
        fig.canvas.draw()
        for collection, plane_ax in pairs:
            # In data coordinates, shared vertices are equal to 1e-12.
            data = np.array([p.vertices[:-1] for p in collection.get_paths()])
            assert data.shape == (20, n_sides, 2)
            _check_tiling(data, som.unit_coords_, n_sides, rng)
            _check_tiling(
                _display_polygons(collection, plane_ax), som.unit_coords_, n_sides, rng
            )


def test_hit_map_display_majority_class_and_purity_by_hand():
    # Units 0..3 of a 2 x 2 map; unit 3 wins no sample.
    codebook = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    som = SelfOrganizingMap(2, 2, init=codebook, n_epochs=1).fit(codebook)
    som.codebook_ = codebook  # exact prototypes, whatever training did
    X = np.array(
        [[0, 0], [0.1, 0], [0, 0.1], [10, 0], [10.1, 0], [9.9, 0], [9.8, 0], [0, 10]]
    )
    y = np.array(["b", "a", "b", "c", "a", "a", "c", "c"])
    disp = HitMapDisplay.from_estimator(
        som, X, y, ax=Figure().add_subplot(), colorbar=True
    )
    # Unit 0: b, a, b -> b (2/3); unit 1: c, a, a, c -> tie, first class a (1/2);
    # unit 2: c (1/1); unit 3: no hit.
    np.testing.assert_array_equal(disp.hits_, [3, 4, 1, 0])
    np.testing.assert_array_equal(disp.display_labels, ["a", "b", "c"])
    np.testing.assert_array_equal(disp.majority_class_, [1, 0, 2, -1])
    np.testing.assert_allclose(disp.purity_, [2 / 3, 1 / 2, 1.0, np.nan])
    # Colours: class colours of tab10 at alpha = purity; the empty unit grey.
    tab10 = matplotlib.colormaps["tab10"]
    expected = np.array(
        [
            [*tab10(1)[:3], 2 / 3],
            [*tab10(0)[:3], 1 / 2],
            [*tab10(2)[:3], 1.0],
            matplotlib.colors.to_rgba("lightgrey"),
        ]
    )
    disp.collection_.update_scalarmappable()  # as drawing does
    np.testing.assert_allclose(disp.collection_.get_facecolors(), expected)
    labels = [t.get_text() for t in disp.colorbar_.ax.get_yticklabels()]
    assert labels == ["a", "b", "c"]

    # Purity as text instead of opacity.
    disp = HitMapDisplay.from_estimator(
        som, X, y, ax=Figure().add_subplot(), purity="text", colorbar=False
    )
    assert [t.get_text() for t in disp.text_[:3]] == ["67%", "50%", "100%"]
    assert disp.text_[3] is None
    disp.collection_.update_scalarmappable()
    np.testing.assert_allclose(disp.collection_.get_facecolors()[:3, 3], 1.0)
    assert not hasattr(disp, "colorbar_")


def test_hit_map_display_labels_on_iris(iris, fitted_som):
    y = load_iris().target
    disp = HitMapDisplay.from_estimator(fitted_som, iris, y, ax=Figure().add_subplot())
    units = fitted_som.predict(iris)
    for unit in range(12):
        members = y[units == unit]
        assert disp.hits_[unit] == members.size
        if members.size:
            counts = np.bincount(members, minlength=3)
            assert disp.majority_class_[unit] == np.argmax(counts)
            assert disp.purity_[unit] == counts.max() / members.size
        else:
            assert disp.majority_class_[unit] == -1
            assert np.isnan(disp.purity_[unit])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"purity": "size"}, "purity must be one of 'alpha', 'text' or None"),
        ({"display_labels": ["a", "b"]}, "display_labels has 2 entries"),
    ],
)
def test_hit_map_display_validates_label_options(iris, fitted_som, kwargs, message):
    y = load_iris().target
    with pytest.raises(ValueError, match=message):
        HitMapDisplay.from_estimator(
            fitted_som, iris, y, ax=Figure().add_subplot(), **kwargs
        )
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        HitMapDisplay.from_estimator(fitted_som, iris, y[:-1])
    disp = HitMapDisplay(
        np.ones(4),
        unit_coords=_unit_coordinates(2, 2, "rectangular"),
        class_counts=np.eye(4)[:, :3],
    )
    with pytest.raises(ValueError, match="its rows must sum to the hit counts"):
        disp.plot(ax=Figure().add_subplot())


def test_component_planes_display_from_dataframe(fitted_som):
    X = load_iris(as_frame=True).data
    som = SelfOrganizingMap(3, 4, topology="hexagonal", random_state=0).fit(X)
    fig = Figure()
    disp = ComponentPlanesDisplay.from_estimator(som, ax=fig.add_subplot())
    assert disp.figure_ is fig
    assert disp.axes_.shape == (4,)
    assert [ax.get_title() for ax in disp.axes_] == list(X.columns)
    for i, collection in enumerate(disp.collections_):
        np.testing.assert_array_equal(collection.get_array(), som.codebook_[:, i])
        np.testing.assert_allclose(
            _cell_centres(collection), som.unit_coords_, atol=1e-12
        )
    # The given Axes is split into the planes and turned off; one colour bar
    # per plane, each with its own scale.
    assert disp.bounding_ax_ is not None and not disp.bounding_ax_.axison
    assert len(disp.colorbars_) == 4
    for i, collection in enumerate(disp.collections_):
        assert collection.get_clim() == (
            som.codebook_[:, i].min(),
            som.codebook_[:, i].max(),
        )

    # A subset, by name and by index, in that order.
    disp = ComponentPlanesDisplay.from_estimator(
        som, features=["petal width (cm)", 0], ax=Figure().add_subplot()
    )
    assert [ax.get_title() for ax in disp.axes_] == [
        "petal width (cm)",
        "sepal length (cm)",
    ]
    np.testing.assert_array_equal(disp.collections_[0].get_array(), som.codebook_[:, 3])

    # Without feature names: x0, x1, ...
    disp = ComponentPlanesDisplay.from_estimator(
        fitted_som, features=[1, 3], ax=Figure().add_subplot()
    )
    assert [ax.get_title() for ax in disp.axes_] == ["x1", "x3"]


def test_component_planes_display_shared_colour_scale(fitted_som):
    fig = Figure()
    axes = fig.subplots(2, 2)
    disp = ComponentPlanesDisplay.from_estimator(
        fitted_som, ax=axes, shared_colorbar=True
    )
    np.testing.assert_array_equal(disp.axes_, axes.ravel())
    codebook = fitted_som.codebook_
    limits = {collection.get_clim() for collection in disp.collections_}
    assert limits == {(codebook.min(), codebook.max())}
    assert len(disp.colorbars_) == 1 and disp.colorbars_[0] is disp.colorbar_
    assert disp.colorbar_.mappable.get_clim() == (codebook.min(), codebook.max())

    disp = ComponentPlanesDisplay.from_estimator(
        fitted_som, ax=Figure().add_subplot(), colorbar=False
    )
    assert disp.colorbars_ == [] and not hasattr(disp, "colorbar_")
    assert len({collection.get_clim() for collection in disp.collections_}) == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"features": ["petal"]}, "features must be feature indices or names"),
        ({"features": [4]}, "feature index 4 is out of range"),
        ({"features": []}, "at least one feature"),
        ({"n_cols": 0}, "n_cols must be a positive integer"),
    ],
)
def test_component_planes_display_validates_features(fitted_som, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ComponentPlanesDisplay.from_estimator(
            fitted_som, ax=Figure().add_subplot(), **kwargs
        )


def test_component_planes_display_validates_axes(fitted_som):
    fig = Figure()
    with pytest.raises(ValueError, match="ax must be None, one Axes, or 4 Axes"):
        ComponentPlanesDisplay.from_estimator(fitted_som, ax=fig.subplots(1, 3))
    with pytest.raises(ValueError, match="ax must be a subplot"):
        ComponentPlanesDisplay.from_estimator(fitted_som, ax=fig.add_axes((0, 0, 1, 1)))


@pytest.mark.parametrize("display", ["umatrix", "hits", "labels", "planes"])
def test_display_passes_kwargs_to_the_collection(iris, fitted_som, display):
    y = load_iris().target
    ax = Figure().add_subplot()
    kwargs = {"edgecolor": "red", "lw": 2.0, "colorbar": False}
    if display == "umatrix":
        disp = UMatrixDisplay.from_estimator(fitted_som, ax=ax, **kwargs)
    elif display == "hits":
        disp = HitMapDisplay.from_estimator(fitted_som, iris, ax=ax, **kwargs)
    elif display == "labels":
        disp = HitMapDisplay.from_estimator(fitted_som, iris, y, ax=ax, **kwargs)
    else:
        disp = ComponentPlanesDisplay.from_estimator(fitted_som, ax=ax, **kwargs)
    collections = getattr(disp, "collections_", None)
    for collection in [disp.collection_] if collections is None else collections:
        # (With labels, the alpha of each cell is its purity.)
        edges = collection.get_edgecolor()[:, :3]
        np.testing.assert_allclose(edges, np.broadcast_to([1, 0, 0], edges.shape))
        np.testing.assert_allclose(collection.get_linewidth(), [2.0])


def test_grid_display_plot_with_and_without_colorbar(fitted_som, iris):
    disp = HitMapDisplay.from_estimator(fitted_som, iris, ax=Figure().add_subplot())
    np.testing.assert_array_equal(disp.hits_, disp.values)
    assert disp.colorbar_.mappable is disp.collection_
    disp.plot(ax=Figure().add_subplot(), colorbar=False)
    assert not hasattr(disp, "colorbar_")
    assert not hasattr(disp, "majority_class_")


@pytest.mark.parametrize("display", ["labels", "planes"])
def test_new_displays_leave_global_state_alone(fitted_som, iris, display):
    backend = matplotlib.get_backend()
    rc = dict(matplotlib.rcParams)
    fignums = plt.get_fignums()
    fig = Figure()
    if display == "labels":
        y = load_iris().target
        disp = HitMapDisplay.from_estimator(
            fitted_som, iris, y, ax=fig.add_subplot(), purity="text"
        )
    else:
        disp = ComponentPlanesDisplay.from_estimator(
            fitted_som, ax=fig.add_subplot(), shared_colorbar=True
        )
    assert disp.figure_ is fig
    assert plt.get_fignums() == fignums
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc

    if display == "planes":
        # Without ``ax``, exactly one new pyplot figure: the display's own.
        disp = ComponentPlanesDisplay.from_estimator(fitted_som)
        assert plt.get_fignums() == fignums + [disp.figure_.number]
        assert disp.axes_.shape == (4,)
        plt.close(disp.figure_)
        assert dict(matplotlib.rcParams) == rc
