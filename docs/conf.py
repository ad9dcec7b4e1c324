"""Sphinx configuration: `pip install ".[docs]"`, then `sphinx-build docs out`."""

project = "somgen"
author = "somgen developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]
autosummary_generate = True
numpydoc_show_class_members = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
