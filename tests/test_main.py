"""The demo behind ``python -m somgen``."""

import re

import pytest

from somgen.__main__ import main


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
