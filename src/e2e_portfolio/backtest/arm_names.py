"""The arms' names and the risk-aversion grid, without importing torch.

The command line's help and option defaults use them; see :mod:`e2e_portfolio.backtest.arms`.
"""

from __future__ import annotations

from typing import Literal

ARMS = (
    "equal_weight",
    "min_variance",
    "plug_in",
    "decoupled",
    "decoupled_nll",
    "e2e",
    "e2e_risk",
    "e2e_return",
)
"""The arms' stable slugs, in the order of every table."""
GAMMA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Risk aversions each QP arm chooses from on its validation months."""
Covariance = Literal["ledoit-wolf", "oas", "nonlinear"]
COVARIANCES: tuple[Covariance, ...] = ("ledoit-wolf", "oas", "nonlinear")
LEARNED = ("decoupled", "decoupled_nll", "e2e", "e2e_risk", "e2e_return")
TUNED = ("plug_in", *LEARNED)
