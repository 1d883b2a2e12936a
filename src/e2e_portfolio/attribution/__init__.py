"""What the predictors learn: gradient saliency and SHAP importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.attribution.saliency import (
        attribution_across_seeds,
        gradient_saliency,
        importance_shares,
        shap_importance,
    )

_EXPORTS = {
    "gradient_saliency": "saliency",
    "shap_importance": "saliency",
    "importance_shares": "saliency",
    "attribution_across_seeds": "saliency",
}
__all__ = ["attribution_across_seeds", "gradient_saliency", "importance_shares", "shap_importance"]


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on first use (PEP 562): importing the package
    stays cheap, and its numpy-only modules keep working without torch (in the browser)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
