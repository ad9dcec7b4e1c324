"""The demo behind ``python -m somgen``."""

import re

import numpy as np
import pytest

from somgen.__main__ import main

SMALL = ["--rows", "4", "--cols", "5", "--epochs", "2"]


def test_demo_prints_quality_and_writes_umatrix(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is a test extra")
    out_png = tmp_path / "umatrix.png"
    assert (
        main(["--rows", "6", "--cols", "8", "--epochs", "5", "--output", str(out_png)])
        == 0
    )
    text = capsys.readouterr().out
    qe = float(re.search(r"quantization error:\s+([\d.]+)", text).group(1))
    te = float(re.search(r"topographic error:\s+([\d.]+)", text).group(1))
    purity = float(re.search(r"label purity:\s+([\d.]+)", text).group(1))
    assert 0 < qe < 8  # standardised 64-D digits: the mean alone is at ~7.9
    assert 0 <= te <= 0.2
    assert purity > 0.7
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_reports_unwritable_output(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="matplotlib is a test extra")
    out_png = tmp_path / "missing" / "umatrix.png"
    assert main([*SMALL, "--output", str(out_png)]) == 1
    captured = capsys.readouterr()
    assert "quantization error:" in captured.out  # results still printed
    assert "written to" not in captured.out
    assert f"could not write the U-matrix to {str(out_png)!r}" in captured.err
    assert "Traceback" not in captured.err
    assert not out_png.exists()


@pytest.mark.parametrize("option", ["--rows", "--cols", "--epochs"])
@pytest.mark.parametrize("value", ["0", "-3", "2.5", "two"])
def test_demo_rejects_non_positive_integer_sizes(option, value, capsys):
    with pytest.raises(SystemExit) as exc_info:
        main([option, value, "--output", ""])
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a positive integer, got {value!r}" in err
    assert err.startswith("usage:")


def test_demo_leaves_matplotlib_state_alone(tmp_path, capsys):
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is a test extra")
    plt = pytest.importorskip("matplotlib.pyplot")
    # Run under a backend other than Agg, so that switching to it would show.
    original = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        backend = matplotlib.get_backend()
        fignums = plt.get_fignums()
        rc = dict(matplotlib.rcParams)
        out_png = tmp_path / "umatrix.png"
        assert main([*SMALL, "--output", str(out_png)]) == 0
        assert matplotlib.get_backend() == backend
        assert plt.get_fignums() == fignums
        assert dict(matplotlib.rcParams) == rc
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.switch_backend(original)
    assert "U-matrix written to" in capsys.readouterr().out


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_demo_umatrix_png_cells_do_not_overlap(tmp_path, monkeypatch, topology):
    """Every cell of the demo's U-matrix shows its own colour up to near its
    corners in the figure as saved: no cell is drawn over its neighbours."""
    figure_module = pytest.importorskip(
        "matplotlib.figure", reason="matplotlib is a test extra"
    )
    saved = []
    original = figure_module.Figure.savefig

    def capture(fig, *args, **kwargs):
        saved.append((fig, kwargs.get("dpi")))
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(figure_module.Figure, "savefig", capture)
    out_png = tmp_path / "umatrix.png"
    argv = ["--rows", "6", "--cols", "8", "--epochs", "2", "--topology", topology]
    assert main([*argv, "--output", str(out_png)]) == 0
    ((fig, dpi),) = saved
    assert out_png.stat().st_size > 0
    backend = pytest.importorskip("matplotlib.backends.backend_agg")
    backend.FigureCanvasAgg(fig)  # the canvas savefig drew on, kept
    fig.set_dpi(dpi)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[:, :, :3]
    ax = fig.axes[0]
    collection = ax.collections[0]
    colours = (collection.get_facecolor()[:, :3] * 255).round()
    paths = collection.get_paths()
    assert len(paths) == 48
    for path, colour in zip(paths, colours, strict=True):
        corners = np.unique(path.vertices.round(9), axis=0)
        centre = corners.mean(axis=0)
        # 0.85 of the way to each corner and to each edge midpoint: inside the
        # cell, within a few pixels of its neighbours.
        edges = 0.5 * (corners + np.roll(corners, 1, axis=0))
        probes = centre + 0.85 * (np.vstack([corners, edges]) - centre)
        xy = ax.transData.transform(probes)
        rows = (image.shape[0] - xy[:, 1]).astype(int)
        rgb = image[rows, xy[:, 0].astype(int)]
        np.testing.assert_allclose(rgb, np.broadcast_to(colour, rgb.shape), atol=3)
