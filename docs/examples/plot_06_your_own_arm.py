"""
Your own arm in ``e2e compare``
===============================

An arm says where the forecast ``mu`` and the risk model ``Sigma`` come from and how anything
learned is trained. Your arms run beside the built-ins on the same data, refits, validation
split and gamma tuning. Here: a diagonal risk model (no correlations) under the MSE forecast,
against the tuned decoupled pipeline, on a small universe with one refit (a real comparison
wants ``compare_across_seeds`` over many seeds).
"""

import numpy as np

from e2e_portfolio import (
    Arm,
    CompareOptions,
    FactorCovariance,
    TrainConfig,
    compare_arms,
    simulate_universe,
)
from e2e_portfolio.report import plots


def diagonal(window_returns):
    """A risk model: the window's variances, no correlations."""
    n = window_returns.shape[1]
    return FactorCovariance(np.zeros((n, 1)), window_returns.var(axis=0, ddof=1))


arms = ("equal_weight", "decoupled", Arm("mse_diagonal", forecast="mse", risk=diagonal))
options = CompareOptions(arms=arms, train=TrainConfig(epochs=5), refit_every=48)
comparison, arm_set = compare_arms(simulate_universe(n_assets=20, n_months=96, seed=0), options)
print(comparison.stats_frame()[["sharpe", "turnover"]].round(3))
print("gamma chosen per refit:", {slug: [round(h["gamma"], 1) for h in arm_set.tuning[slug]]
                                  for slug in ("decoupled", "mse_diagonal")})  # fmt: skip
plots.equity_curves(comparison.series_frame())
