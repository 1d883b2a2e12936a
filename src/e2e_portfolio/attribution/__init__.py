"""What the predictors learn: gradient saliency and SHAP importance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
