"""Sphinx configuration for the telecard-auth documentation."""

from telecard_auth import __version__

project = "telecard-auth"
author = "telecard-auth developers"
copyright = "2026, telecard-auth developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "telecard-auth"

# --- API reference (api.md) -------------------------------------------------------------------

autodoc_member_order = "bysource"
python_maximum_signature_line_length = 90
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True}

# The build runs offline, so there is no intersphinx: references to the standard library and to
# third-party types in signatures cannot resolve. They are named here, and nothing else is
# ignored, so a broken reference to one of our own names still fails the build.
nitpick_ignore_regex = [
    # Standard library types in annotations; `datetime` and `Queue` where one stays a string.
    (r"py:(class|obj)", r"(datetime|enum|os|collections\.abc|queue|logging|typing)(\..+)?"),
    (r"py:class", r"Queue"),
    # Third-party types in annotations: cryptography's Ed25519 keys, redis-py's clients.
    (r"py:class", r"(cryptography|redis)\..+"),
    # Type variables of generic signatures.
    (
        r"py:(class|obj)",
        r"(~P|S|telecard_auth\.testing\.T|telecard_auth\.events\.E"
        r"|telecard_auth\._storage\.redis\.Client|telecard_auth\._issuer\.issuers\.Answer_co)",
    ),
]

# --- right-to-left pages (overview-ar.md) -----------------------------------------------------

# A page whose front matter says `dir: rtl` is wrapped in <div dir="rtl" lang="..."> by
# _templates/page.html; rtl.css keeps code left-to-right inside it.
templates_path = ["_templates"]
html_static_path = ["_static"]
html_css_files = ["rtl.css"]
