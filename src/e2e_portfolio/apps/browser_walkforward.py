"""The in-browser demo's walk-forward: a minimal numpy copy of the backtest engine's loop.

The demo runs on Pyodide with numpy and scipy only, so it cannot load the engine
(:mod:`e2e_portfolio.backtest.walkforward`, which needs pandas). This copy decides with the same
:func:`~e2e_portfolio.models.decision_shrinkage.shrinkage_portfolios` and charges the same
two-sided turnover against drifted holdings (:mod:`e2e_portfolio.turnover`), the first
decision bought from cash; ``tests/dashboards/test_browser_walkforward.py`` proves it equal to
:func:`e2e_portfolio.experiments.shrinkage.walk_forward` on shared inputs.
"""

from __future__ import annotations

import numpy as np

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.models.decision_shrinkage import (
    ShrinkageConfig,
    checked_arrays,
    shrinkage_portfolios,
)
from e2e_portfolio.turnover import path_turnover


def walk_forward(returns: np.ndarray, exposures: np.ndarray, config: ShrinkageConfig) -> dict:
    """Net returns, turnover and deltas of the three methods from ``window + score_months`` on.

    returns (T, N), exposures (T, N, K). Returns a dict with ``net_returns``, ``turnover``,
    ``delta`` (each method -> (M,)) and ``sharpe`` (method -> float).
    """
    returns, exposures = checked_arrays(returns, exposures)
    n_months, n_assets = returns.shape
    config.validate(n_assets, n_months)
    months = range(config.window + config.score_months, n_months - 1)
    decided = [shrinkage_portfolios(returns[: t + 1], exposures[: t + 1], config) for t in months]
    realised = returns[months.start + 1 :]
    out: dict = {"net_returns": {}, "turnover": {}, "delta": {}, "sharpe": {}}
    for method in config.methods:
        weights = np.array([d[method][0] for d in decided])
        turnover = path_turnover(weights, realised, np.zeros(n_assets))
        net = (weights * realised).sum(axis=1) - config.tc * turnover
        out["net_returns"][method], out["turnover"][method] = net, turnover
        out["delta"][method] = np.array([d[method][1] for d in decided])
        out["sharpe"][method] = float(annualised_sharpe(net))
    return out
