"""Plotly figures and the self-contained HTML report of a stored run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.report.html import build_report, run_figures

_EXPORTS = {
    "build_report": "html",
    "run_figures": "html",
}
__all__ = ["build_report", "run_figures"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
