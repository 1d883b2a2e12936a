"""Differentiable optimisation layers, predictors, losses, training, shrinkage.

Names are imported on first use: :mod:`e2e_portfolio.models.decision_shrinkage` needs numpy
and scipy only (it also runs in the browser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.models.covariance import RISK_MODELS, FactorCovariance, RiskModel
    from e2e_portfolio.models.decision_shrinkage import ShrinkageConfig, shrinkage_portfolios
    from e2e_portfolio.models.losses import (
        DECISION_LOSSES,
        MeanVarianceUtility,
        mse_loss,
        negative_sharpe_loss,
    )
    from e2e_portfolio.models.portfolio import PortfolioConfig, solve_path
    from e2e_portfolio.models.predictor import ReturnPredictor
    from e2e_portfolio.models.qp_layer import MeanVarianceQP
    from e2e_portfolio.models.risk import covariance_root, risk_matrix
    from e2e_portfolio.models.train import (
        TrainConfig,
        TrainResult,
        train_decoupled,
        train_e2e,
        train_risk_nll,
    )

_EXPORTS = {
    "MeanVarianceQP": "qp_layer",
    "ReturnPredictor": "predictor",
    "TrainConfig": "train",
    "TrainResult": "train",
    "train_decoupled": "train",
    "train_e2e": "train",
    "train_risk_nll": "train",
    "solve_path": "portfolio",
    "PortfolioConfig": "portfolio",
    "FactorCovariance": "covariance",
    "RISK_MODELS": "covariance",
    "RiskModel": "covariance",
    "DECISION_LOSSES": "losses",
    "MeanVarianceUtility": "losses",
    "mse_loss": "losses",
    "negative_sharpe_loss": "losses",
    "risk_matrix": "risk",
    "covariance_root": "risk",
    "ShrinkageConfig": "decision_shrinkage",
    "shrinkage_portfolios": "decision_shrinkage",
}
__all__ = [
    "DECISION_LOSSES",
    "FactorCovariance",
    "MeanVarianceQP",
    "MeanVarianceUtility",
    "PortfolioConfig",
    "RISK_MODELS",
    "ReturnPredictor",
    "RiskModel",
    "ShrinkageConfig",
    "TrainConfig",
    "TrainResult",
    "covariance_root",
    "mse_loss",
    "negative_sharpe_loss",
    "risk_matrix",
    "shrinkage_portfolios",
    "solve_path",
    "train_decoupled",
    "train_e2e",
    "train_risk_nll",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
