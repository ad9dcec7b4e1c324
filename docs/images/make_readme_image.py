"""Draw ``docs/images/digits_hit_map.png``, the picture shown in the README.

Run from the repository root with ``python docs/images/make_readme_image.py``
(needs the ``plot`` extra). It is the second figure of the gallery example
``examples/plot_digits_hit_map.py``.
"""

from pathlib import Path


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    from somgen import SelfOrganizingMap
    from somgen.plotting import HitMapDisplay

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    som = SelfOrganizingMap(12, 16, topology="hexagonal", random_state=0).fit(X)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    HitMapDisplay.from_estimator(som, X, y, ax=ax)
    ax.set_title("Digits on a 12x16 hexagonal map: majority digit per unit")
    fig.tight_layout()
    out = Path(__file__).with_name("digits_hit_map.png")
    fig.savefig(out, dpi=80)
    plt.close(fig)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
