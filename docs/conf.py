"""Sphinx configuration. Built offline: no intersphinx, no network access at build time."""

from __future__ import annotations

import importlib.metadata

project = "flask-oauth2-client"
author = "the flask-oauth2-client developers"
copyright = f"2026, {author}"
release = importlib.metadata.version("flask-oauth2-client")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = False

# The package uses ``from __future__ import annotations``: show types in the field lists, where
# an unresolvable name is plain text rather than a failed signature.
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_typehints_description_target = "documented_params"

myst_heading_anchors = 3

html_theme = "furo"
html_title = f"{project} {release}"
