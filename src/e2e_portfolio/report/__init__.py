"""Plotly figures and the self-contained HTML report of a stored run."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.report.html import build_report, run_figures

_EXPORTS = {
    "build_report": "html",
    "run_figures": "html",
}
__all__ = ["build_report", "run_figures"]


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on first use (PEP 562): importing the package
    stays cheap, and its numpy-only modules keep working without torch (in the browser)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
