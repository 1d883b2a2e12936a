"""Sphinx configuration of the e2e-portfolio documentation (``python3 quickstart.py docs``).

The site builds offline: MathJax is served from the copy that the ``sphinx-mathjax-offline``
distribution ships (its module is not importable, so its files are copied here),
plotly.js from the plotly package, and the examples gallery runs at build time. Warnings are
errors (``-W``) and every cross-reference must resolve (``nitpicky``).
"""

from __future__ import annotations

import importlib
import shutil
from importlib.metadata import distribution
from pathlib import Path

import plotly
import plotly.io as pio
from plotly.io._base_renderers import SphinxGalleryHtmlRenderer
from sphinx.util.fileutil import copy_asset

import e2e_portfolio

DOCS = Path(__file__).resolve().parent


def _quiet_streamlit() -> None:
    """The API reference imports the Streamlit app's module; outside a running app Streamlit
    would log a warning per cached function."""
    import streamlit.logger

    streamlit.logger.set_log_level("error")


_quiet_streamlit()

project = "e2e-portfolio"
author = "the e2e-portfolio developers"
copyright = "2026, the e2e-portfolio developers"
release = version = e2e_portfolio.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "examples/README.rst", "**/GALLERY_HEADER.rst"]
templates_path = ["_templates"]

# --- API reference: one page per module, every public member, from the docstrings
autosummary_generate = True
autosummary_imported_members = False

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc sections give the types and shapes
autodoc_inherit_docstrings = False  # torch's own docstrings refer to torch's pages
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|np|numpy|pd|pandas|nn|go|plotly|typer|sklearn|duckdb|scipy|pydantic|pydantic_settings|collections)"
        r"(\..*)?",
    ),
]

# --- the site
html_theme = "pydata_sphinx_theme"
html_title = f"e2e-portfolio {release}"
html_static_path = ["_static"]
html_js_files = ["plotly.min.js", "plotly_fit.js"]  # the gallery's plotly figures, offline
html_css_files = ["site.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "icon_links": [],
}
html_sidebars = {"index": []}
html_context = {"default_mode": "light"}
html_show_search_summary = False  # summaries fetch each page: blocked from file:// (CORS)
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
mathjax_path = "mathjax/tex-chtml.js"  # copied into the site by setup() below

# --- the examples gallery, executed at build time


class _OfflineFigures(SphinxGalleryHtmlRenderer):
    """Figures as ``div``s that use the page's own plotly.js (``_static``): no CDN."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False,
                           full_html=False, default_width="100%", default_height=420,
                           validate=False)  # fmt: skip
        return {"text/html": html}


pio.renderers["offline_gallery"] = _OfflineFigures()
pio.renderers.default = "offline_gallery"
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "image_scrapers": (),
    "capture_repr": ("_repr_html_", "__repr__"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "write_computation_times": False,  # its page loads DataTables from a CDN
}


def _copy_plotly_js() -> None:
    """plotly.js from the installed plotly package into _static (no CDN)."""
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    target = DOCS / "_static" / "plotly.min.js"
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)


def _cli_reference() -> None:
    """guide/cli_reference.md: every command's ``--help``, from the typer app itself."""
    import typer.main
    from typer.testing import CliRunner

    from e2e_portfolio.apps.cli import app

    def paths(group, prefix=()):
        for name, command in sorted(group.commands.items()):
            yield (*prefix, name)
            if hasattr(command, "commands"):
                yield from paths(command, (*prefix, name))

    parts = ["# Command reference", "",
             "Every command's `--help`, generated from the command line when these pages build.",
             "", "```text", CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"}).output,
             "```"]  # fmt: skip
    for path in paths(typer.main.get_command(app)):
        text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"}).output
        parts += ["", f"## `e2e {' '.join(path)}`", "", "```text", text.rstrip(), "```"]
    target = DOCS / "guide" / "cli_reference.md"
    text = "\n".join(parts) + "\n"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


_copy_plotly_js()
_cli_reference()


def _copy_mathjax(app, error) -> None:
    """MathJax (with its fonts) into the built site, from the sphinx-mathjax-offline files."""
    if error is None:
        files = distribution("sphinx-mathjax-offline").locate_file("")
        source = Path(str(files)) / "sphinx-mathjax-offline" / "static" / "mathjax"
        copy_asset(str(source), str(Path(app.outdir) / "_static" / "mathjax"))


def _resolve_by_name(app, env, node, contnode):
    """Resolve a short name or a package's re-export to the one object it can mean.

    ``DataError`` or ``e2e_portfolio.experiments.walk_forward`` in a docstring; ambiguous
    names still warn.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    domain = env.get_domain("py")
    name = target.rpartition(".")[2]
    package = target.rpartition(".")[0]
    matches = sorted({full for full in domain.objects if full.endswith("." + target)}
                     or {full for full in domain.objects
                         if full.rpartition(".")[2] == name
                         and (not package or full.startswith(package + "."))})  # fmt: skip
    if not matches and package:  # a module's import of a name defined elsewhere
        try:
            thing = getattr(importlib.import_module(package), name)
            canonical = f"{thing.__module__}.{thing.__qualname__}"
        except (ImportError, AttributeError):
            return None
        matches = [canonical] if canonical in domain.objects else []
    if len(matches) != 1:
        return None
    kind = domain.objects[matches[0]].objtype
    role = {"class": "class", "exception": "exc", "function": "func", "method": "meth",
            "attribute": "attr", "data": "data", "module": "mod", "property": "attr"}  # fmt: skip
    return domain.resolve_xref(env, node["refdoc"], app.builder, role.get(kind, "obj"),
                               matches[0], node, contnode)  # fmt: skip


def setup(app) -> None:
    """Copy MathJax after the build; resolve short names in cross-references."""
    app.connect("build-finished", _copy_mathjax)
    app.connect("missing-reference", _resolve_by_name)
