"""Sphinx configuration for the telecard-auth documentation."""

from telecard_auth import __version__

project = "telecard-auth"
author = "telecard-auth developers"
copyright = "2026, telecard-auth developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "telecard-auth"
