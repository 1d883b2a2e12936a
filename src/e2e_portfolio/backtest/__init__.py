"""Walk-forward backtests on past-only views, arms and strategies, strategy statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.backtest.arm_specs import ARMS, BUILTIN_ARMS, Arm, resolve_arms
    from e2e_portfolio.backtest.arms import ArmSet
    from e2e_portfolio.backtest.metrics import max_drawdown, strategy_stats
    from e2e_portfolio.backtest.strategies import MinimumVariance, equal_weight
    from e2e_portfolio.backtest.walkforward import (
        BacktestResult,
        ComparisonResult,
        PastView,
        backtest,
        past_view,
        run_comparison,
    )

_EXPORTS = {
    "PastView": "walkforward",
    "past_view": "walkforward",
    "backtest": "walkforward",
    "run_comparison": "walkforward",
    "BacktestResult": "walkforward",
    "ComparisonResult": "walkforward",
    "equal_weight": "strategies",
    "MinimumVariance": "strategies",
    "Arm": "arm_specs",
    "ARMS": "arm_specs",
    "BUILTIN_ARMS": "arm_specs",
    "resolve_arms": "arm_specs",
    "ArmSet": "arms",
    "strategy_stats": "metrics",
    "max_drawdown": "metrics",
}
__all__ = [
    "ARMS",
    "Arm",
    "ArmSet",
    "BUILTIN_ARMS",
    "BacktestResult",
    "ComparisonResult",
    "MinimumVariance",
    "PastView",
    "backtest",
    "equal_weight",
    "max_drawdown",
    "past_view",
    "resolve_arms",
    "run_comparison",
    "strategy_stats",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
