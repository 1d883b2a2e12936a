"""End-to-end (decision-focused) portfolio optimisation.

The package is laid out along the pipeline:

- :mod:`e2e_portfolio.data` — synthetic factor universe, offline real data, DuckDB store;
- :mod:`e2e_portfolio.models` — differentiable mean-variance QP layer, predictors, training,
  covariance estimators including decision-aware shrinkage;
- :mod:`e2e_portfolio.backtest` — the walk-forward engine and strategy statistics;
- :mod:`e2e_portfolio.experiments` — the shrinkage and compare experiments, sweeps;
- :mod:`e2e_portfolio.attribution` and :mod:`e2e_portfolio.report` — factor importance, figures;
- :mod:`e2e_portfolio.apps` — the ``e2e`` command line, the Streamlit dashboard, the
  in-browser demo.

The main objects are importable from the top level, e.g. ``from e2e_portfolio import
MeanVarianceQP, ReturnPredictor, run_comparison, PastView``; each is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.backtest.arm_specs import BUILTIN_ARMS, Arm
    from e2e_portfolio.backtest.arms import ArmSet
    from e2e_portfolio.backtest.metrics import strategy_stats
    from e2e_portfolio.backtest.strategies import MinimumVariance, equal_weight
    from e2e_portfolio.backtest.walkforward import PastView, run_comparison
    from e2e_portfolio.data.datasets import load_french, load_sp500
    from e2e_portfolio.data.features import build_features
    from e2e_portfolio.data.panel import FactorPanel
    from e2e_portfolio.data.store import RunRecord, Store
    from e2e_portfolio.data.synthetic import simulate_universe
    from e2e_portfolio.exceptions import DataError, E2EPortfolioError, SolverError
    from e2e_portfolio.experiments.compare import CompareOptions, compare_arms
    from e2e_portfolio.experiments.shrinkage import ShrinkageConfig, edge_across_seeds
    from e2e_portfolio.models.covariance import RISK_MODELS, FactorCovariance
    from e2e_portfolio.models.portfolio import PortfolioConfig
    from e2e_portfolio.models.predictor import ReturnPredictor
    from e2e_portfolio.models.qp_layer import MeanVarianceQP
    from e2e_portfolio.models.qp_native import QPFallbackWarning
    from e2e_portfolio.models.risk import covariance_root, risk_matrix
    from e2e_portfolio.models.train import TrainConfig, train_decoupled, train_e2e

__version__ = "0.1.0"

_EXPORTS = {
    "MeanVarianceQP": "models.qp_layer",
    "QPFallbackWarning": "models.qp_native",
    "ReturnPredictor": "models.predictor",
    "TrainConfig": "models.train",
    "train_decoupled": "models.train",
    "train_e2e": "models.train",
    "risk_matrix": "models.risk",
    "covariance_root": "models.risk",
    "ShrinkageConfig": "models.decision_shrinkage",
    "edge_across_seeds": "experiments.shrinkage",
    "FactorPanel": "data.panel",
    "simulate_universe": "data.synthetic",
    "load_french": "data.datasets",
    "load_sp500": "data.datasets",
    "build_features": "data.features",
    "Store": "data.store",
    "RunRecord": "data.store",
    "PastView": "backtest.walkforward",
    "run_comparison": "backtest.walkforward",
    "equal_weight": "backtest.strategies",
    "MinimumVariance": "backtest.strategies",
    "Arm": "backtest.arm_specs",
    "BUILTIN_ARMS": "backtest.arm_specs",
    "ArmSet": "backtest.arms",
    "CompareOptions": "experiments.compare",
    "compare_arms": "experiments.compare",
    "FactorCovariance": "models.covariance",
    "RISK_MODELS": "models.covariance",
    "PortfolioConfig": "models.portfolio",
    "strategy_stats": "backtest.metrics",
    "E2EPortfolioError": "exceptions",
    "DataError": "exceptions",
    "SolverError": "exceptions",
}
__all__ = [
    "Arm",
    "ArmSet",
    "BUILTIN_ARMS",
    "CompareOptions",
    "DataError",
    "E2EPortfolioError",
    "FactorCovariance",
    "FactorPanel",
    "MeanVarianceQP",
    "MinimumVariance",
    "PastView",
    "PortfolioConfig",
    "QPFallbackWarning",
    "RISK_MODELS",
    "ReturnPredictor",
    "RunRecord",
    "ShrinkageConfig",
    "SolverError",
    "Store",
    "TrainConfig",
    "__version__",
    "build_features",
    "compare_arms",
    "covariance_root",
    "edge_across_seeds",
    "equal_weight",
    "load_french",
    "load_sp500",
    "risk_matrix",
    "run_comparison",
    "simulate_universe",
    "strategy_stats",
    "train_decoupled",
    "train_e2e",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
