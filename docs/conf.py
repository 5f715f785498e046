"""Sphinx configuration: reStructuredText pages, autodoc for the API, ``_ext/ttdocs.py`` for what is generated."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))  # the working tree's package, installed or not

import tracedthreading  # noqa: E402

project = "tracedthreading"
author = "the tracedthreading authors"
copyright = "the tracedthreading authors"  # noqa: A001 - Sphinx's name
release = version = tracedthreading.__version__

extensions = ["sphinx.ext.autodoc", "ttdocs"]
exclude_patterns = ["_build", "_generated/*.dot"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "code"
highlight_language = "python"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options: dict[str, object] = {}  # no "Bases:" lines: the bases are private

html_theme = "alabaster"
html_title = f"tracedthreading {release}"
html_theme_options = {
    "description": "why your threads wait, and where they could deadlock",
    "page_width": "1180px",
    "sidebar_width": "230px",
}
