"""Plot displays (matplotlib is a test extra)."""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from somgen import SelfOrganizingMap
from somgen.metrics import u_matrix

plt = pytest.importorskip("matplotlib.pyplot", reason="matplotlib is a test extra")
from somgen.plotting import HitMapDisplay, UMatrixDisplay  # noqa: E402


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_umatrix_display_colours_every_unit(topology):
    X, _ = load_iris(return_X_y=True)
    som = SelfOrganizingMap(4, 5, topology=topology, random_state=0).fit(X)
    disp = UMatrixDisplay.from_estimator(som, colorbar=False)
    expected = u_matrix(som.codebook_, n_rows=4, n_cols=5, topology=topology)
    np.testing.assert_allclose(disp.collection_.get_array(), expected.ravel())
    np.testing.assert_allclose(disp.collection_.get_offsets(), som.unit_coords_)
    plt.close(disp.figure_)


def test_hit_map_display_counts_samples():
    X, _ = load_iris(return_X_y=True)
    som = SelfOrganizingMap(3, 3, random_state=0).fit(X)
    _, ax = plt.subplots()
    disp = HitMapDisplay.from_estimator(som, X, ax=ax)
    assert disp.ax_ is ax
    counts = disp.collection_.get_array()
    assert counts.sum() == len(X)
    np.testing.assert_array_equal(counts, np.bincount(som.predict(X), minlength=9))
    plt.close(disp.figure_)


def test_display_requires_fitted_map():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        UMatrixDisplay.from_estimator(SelfOrganizingMap())
