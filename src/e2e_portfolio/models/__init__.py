"""Differentiable optimisation layers, predictors, losses, training, shrinkage.

Names are imported on first use: :mod:`e2e_portfolio.models.decision_shrinkage` needs numpy
and scipy only (it also runs in the browser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.models.decision_shrinkage import ShrinkageConfig, edge_across_seeds
    from e2e_portfolio.models.losses import mse_loss, negative_sharpe_loss
    from e2e_portfolio.models.predictor import ReturnPredictor
    from e2e_portfolio.models.qp_layer import MeanVarianceQP
    from e2e_portfolio.models.risk import covariance_root, ledoit_wolf_covariance, risk_matrix
    from e2e_portfolio.models.train import (
        TrainConfig,
        TrainResult,
        solve_path,
        train_decoupled,
        train_e2e,
    )

_EXPORTS = {
    "MeanVarianceQP": "qp_layer",
    "ReturnPredictor": "predictor",
    "TrainConfig": "train",
    "TrainResult": "train",
    "train_decoupled": "train",
    "train_e2e": "train",
    "solve_path": "train",
    "mse_loss": "losses",
    "negative_sharpe_loss": "losses",
    "risk_matrix": "risk",
    "covariance_root": "risk",
    "ledoit_wolf_covariance": "risk",
    "ShrinkageConfig": "decision_shrinkage",
    "edge_across_seeds": "decision_shrinkage",
}
__all__ = [
    "MeanVarianceQP",
    "ReturnPredictor",
    "ShrinkageConfig",
    "TrainConfig",
    "TrainResult",
    "covariance_root",
    "edge_across_seeds",
    "ledoit_wolf_covariance",
    "mse_loss",
    "negative_sharpe_loss",
    "risk_matrix",
    "solve_path",
    "train_decoupled",
    "train_e2e",
]


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on first use (PEP 562): importing the package
    stays cheap, and its numpy-only modules keep working without torch (in the browser)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
