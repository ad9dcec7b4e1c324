"""Sphinx configuration of the somgen documentation.

Build with ``pip install ".[docs]"`` and then, from the repository root::

    sphinx-build -n -W -b html docs docs/_build/html

The gallery (``examples/plot_*.py``) is executed by sphinx-gallery and written to
``docs/auto_examples``; the API pages are generated into ``docs/generated``.

Cross-references to scikit-learn, NumPy, SciPy and matplotlib go through
intersphinx, whose inventories are downloaded at build time. Set the environment
variable ``SOMGEN_DOCS_INTERSPHINX`` to ``1`` to require them, ``0`` to build
offline; by default (``auto``) they are used when https://scikit-learn.org is
reachable. Offline, references to those external projects (and only to them)
are rendered as plain text instead of links: ``nitpick_ignore_regex`` below
is limited to their namespaces, so a dead reference to somgen's own objects still
fails a ``-n -W`` build. threadpoolctl publishes no inventory, so references to
it are plain text in both modes.
"""

import os
import socket
from pathlib import Path

import somgen

project = "somgen"
author = "somgen developers"
copyright = "2026, somgen developers"
release = somgen.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
nitpicky = True

# -- API pages ----------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = False

# -- Gallery ------------------------------------------------------------------
_here = Path(__file__).resolve().parent
sphinx_gallery_conf = {
    "examples_dirs": str(_here.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("somgen",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"somgen": None},
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": "True",
}

# -- Cross-references to other projects ---------------------------------------
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "joblib": ("https://joblib.readthedocs.io/en/stable/", None),
    "skops": ("https://skops.readthedocs.io/en/stable/", None),
    "imblearn": ("https://imbalanced-learn.org/stable/", None),
    "polars": ("https://docs.pola.rs/api/python/stable/", None),
}
intersphinx_timeout = 10

# threadpoolctl publishes no Sphinx inventory: its references stay plain text.
nitpick_ignore_regex = [(r"py:.*", r"threadpoolctl(\..*)?")]

# Namespaces of the projects above; offline, only these may stay unresolved.
_EXTERNAL = (
    r"(builtins|numpy|np|scipy|matplotlib|sklearn|pandas|polars|joblib|skops"
    r"|imblearn|pickle)"
)


def _online():
    """Whether the intersphinx inventories can be downloaded."""
    setting = os.environ.get("SOMGEN_DOCS_INTERSPHINX", "auto").lower()
    if setting in {"0", "false", "no", "off"}:
        return False
    if setting in {"1", "true", "yes", "on"}:
        return True
    try:
        socket.create_connection(("scikit-learn.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


if not _online():
    print(
        "somgen docs: intersphinx inventories unreachable, building offline "
        "(references to external projects are rendered as plain text)."
    )
    intersphinx_mapping = {}
    nitpick_ignore_regex += [
        # Objects of the external projects, e.g. sklearn.base.BaseEstimator.
        (r"py:.*", _EXTERNAL + r"(\..*)?"),
    ]
    # Labels and glossary terms of scikit-learn and imbalanced-learn used by the
    # docstrings somgen's estimators inherit from them (get_metadata_routing,
    # set_output, the set_*_request methods, ClassifierMixin.score) or cite
    # (":term:`fit`" in the description of feature_names_in_).
    nitpick_ignore = [
        ("std:ref", "metadata_routing"),
        ("std:ref", "accuracy_score"),
        ("std:ref", "df_output_transform"),
        ("std:ref", "sphx_glr_auto_examples_miscellaneous_plot_set_output.py"),
        ("std:term", "fit"),
        ("std:term", "meta-estimator"),
        ("std:term", "fit_resample"),
    ]

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"somgen {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
