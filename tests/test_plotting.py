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

from somgen.plotting import HitMapDisplay, UMatrixDisplay  # noqa: E402

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
