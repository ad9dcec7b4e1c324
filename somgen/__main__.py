"""Demo: ``python -m somgen`` fits a map to scikit-learn's handwritten digits.

Prints the map's quality (quantization and topographic error), the fit time and
how pure the units are with respect to the digit labels (which the map never
sees), and writes ``somgen_digits_umatrix.png`` when matplotlib is installed.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from somgen import SelfOrganizingMap


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m somgen", description=__doc__)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument(
        "--topology", default="hexagonal", choices=["rectangular", "hexagonal"]
    )
    parser.add_argument("--epochs", type=int, default=20)
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
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            print('matplotlib not installed: no plot (pip install "somgen[plot]")')
            return 0
        from somgen.plotting import UMatrixDisplay

        disp = UMatrixDisplay.from_estimator(som)
        disp.ax_.set_title("U-matrix of the digits map")
        disp.figure_.savefig(args.output, dpi=120, bbox_inches="tight")
        print(f"U-matrix written to  {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
