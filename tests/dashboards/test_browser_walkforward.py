"""The browser demo's minimal walk-forward equals the backtest engine on shared inputs.

Same decisions, same two-sided turnover against drifted holdings, same net returns, for
several universes, costs and with the head trained for Sharpe. Tolerance 1e-12 on returns of
order 0.05: the two differ only in the order of float64 additions.
"""

from __future__ import annotations

import numpy as np
import pytest

from e2e_portfolio.apps.browser_walkforward import walk_forward as browser_walk_forward
from e2e_portfolio.data.synthetic import simulate_universe
from e2e_portfolio.experiments.shrinkage import ShrinkageConfig, walk_forward


@pytest.mark.parametrize(
    ("seed", "n_assets", "config"),
    [
        (42, 10, ShrinkageConfig(window=24, score_months=12, tc=0.001)),
        (7, 20, ShrinkageConfig(window=24, score_months=8, tc=0.02, target="diagonal")),
        (3, 6, ShrinkageConfig(window=12, score_months=6, tc=0.005, learn_theta=True,
                               theta_steps=5)),
        (5, 8, ShrinkageConfig(window=20, score_months=6, baselines=("oas", "nonlinear"))),
    ],
    ids=["default-costs", "high-costs-diagonal", "learned-head", "baselines"],
)  # fmt: skip
def test_browser_copy_equals_the_engine(seed, n_assets, config):
    panel = simulate_universe(n_assets=n_assets, n_months=60, seed=seed)
    engine = walk_forward(panel, config)
    copy = browser_walk_forward(panel.returns, panel.exposures, config)
    assert tuple(copy["sharpe"]) == config.methods
    for method in config.methods:
        np.testing.assert_allclose(copy["turnover"][method], engine.turnover[method], atol=1e-12)
        np.testing.assert_allclose(
            copy["net_returns"][method], engine.net_returns[method], atol=1e-12
        )
        np.testing.assert_array_equal(copy["delta"][method], engine.delta[method])  # NaN too
    assert copy["sharpe"] == pytest.approx(engine.sharpe(), rel=1e-10)
