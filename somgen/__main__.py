"""Demo: ``python -m somgen`` fits a map to scikit-learn's handwritten digits.

Prints the map's quality (quantization and topographic error), the fit time and
how pure the units are with respect to the digit labels (which the map never
sees), and writes the map's U-matrix to ``--output`` when matplotlib is
installed. Exits with status 1 when the image cannot be written, 2 on invalid
arguments.
"""

import argparse
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap


def _positive_int(text):
    """Argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None):
    """Run the demo.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 1 when the U-matrix image cannot be written.
    """
    parser = argparse.ArgumentParser(prog="python -m somgen", description=__doc__)
    parser.add_argument("--rows", type=_positive_int, default=12)
    parser.add_argument("--cols", type=_positive_int, default=16)
    parser.add_argument(
        "--topology", default="hexagonal", choices=["rectangular", "hexagonal"]
    )
    parser.add_argument("--epochs", type=_positive_int, default=20)
    parser.add_argument(
        "--output",
        default="somgen_digits_umatrix.png",
        help="U-matrix image path ('' to skip the plot)",
    )
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    som = SelfOrganizingMap(
        args.rows,
        args.cols,
        topology=args.topology,
        n_epochs=args.epochs,
        random_state=0,
    )
    tic = time.perf_counter()
    som.fit(X)
    elapsed = time.perf_counter() - tic

    units = som.predict(X)
    hits = np.bincount(units, minlength=som.codebook_.shape[0])
    # Label purity: share of samples that carry their unit's majority label.
    counts = np.zeros((som.codebook_.shape[0], 10), dtype=np.int64)
    np.add.at(counts, (units, y), 1)
    purity = counts.max(axis=1).sum() / len(y)

    print(f"somgen demo: {len(X)} digits (64 features, standardised)")
    print(f"map: {args.rows}x{args.cols} {args.topology}, {args.epochs} batch epochs")
    print(f"fit time:            {elapsed:.2f} s")
    print(f"quantization error:  {som.quantization_error_:.3f}")
    print(f"topographic error:   {som.topographic_error_:.3f}")
    print(f"units used:          {np.count_nonzero(hits)}/{hits.size}")
    print(f"label purity:        {purity:.3f} (labels unseen during training)")

    if args.output:
        try:
            from matplotlib.figure import Figure
        except ImportError:
            print('matplotlib not installed: no plot (pip install "somgen[plot]")')
            return 0
        from somgen.plotting import UMatrixDisplay

        # A standalone Figure: no pyplot, no backend switch, nothing left open.
        fig = Figure()
        ax = fig.add_subplot()
        UMatrixDisplay.from_estimator(som, ax=ax)
        ax.set_title("U-matrix of the digits map")
        try:
            fig.savefig(args.output, dpi=120, bbox_inches="tight")
        except OSError as exc:
            print(
                f"could not write the U-matrix to {args.output!r}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
        print(f"U-matrix written to  {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
