"""Sphinx configuration for the xstf documentation (built with -W in the test suite)."""

from __future__ import annotations

import os
import shutil

import sphinx_autosummary_accessors

import xstf

# The notebooks' kernels inherit this environment: with MPLBACKEND set (e.g. to Agg) they
# would not pick the inline backend and the executed notebooks would show no figure.
# Sphinx itself needs no backend setting (matplotlib falls back to Agg without a display).
os.environ.pop("MPLBACKEND", None)

project = "xstf"
author = "xstf developers"
copyright = "2026, xstf developers"
release = xstf.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_autosummary_accessors",
]
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "scripts", "**.ipynb_checkpoints", "jupyter_execute"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3
# Notebooks are executed at build time (there is no network: they use the synthetic cube).
nb_execution_mode = "cache"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
suppress_warnings = ["myst.header", "config.cache"]

html_theme = "pydata_sphinx_theme"
html_title = f"xstf {release}"
html_static_path = ["_static"]
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}

# The example notebooks live in ../examples (where users find them); copy them in so that
# myst-nb executes and renders them as part of the docs build.
_here = os.path.dirname(os.path.abspath(__file__))
_dst = os.path.join(_here, "examples")
os.makedirs(_dst, exist_ok=True)
for _name in sorted(os.listdir(os.path.join(_here, "..", "examples"))):
    if _name.endswith(".ipynb"):
        shutil.copyfile(os.path.join(_here, "..", "examples", _name), os.path.join(_dst, _name))
