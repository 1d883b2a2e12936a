"""Validation with teeth: tests that fail on an off-by-one in return alignment or a wrong window.

The DeMiguel-Garlappi-Uppal check in ``test_walkforward.py`` cannot tell these apart (returns
earned one month early give a 1/N Sharpe of 0.229 against the published 0.224). Here the panel
is built so that the right answer is known exactly and every plausible mistake gives another.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.backtest.arm_specs import Arm
from e2e_portfolio.backtest.arms import ArmSet
from e2e_portfolio.backtest.strategies import MinimumVariance
from e2e_portfolio.backtest.walkforward import PastView, backtest, past_view
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.train import TrainConfig

N_ASSETS, N_DATES = 5, 40


@pytest.fixture(scope="module")
def oracle_panel() -> FactorPanel:
    """Next month's return is a known function of today's exposure: ``r[t+1] = x[t] / 100``.

    Exposures are drawn at random (seed 42), so ``r[t]`` (one month early) and ``r[t+2]`` (one
    month late) are unrelated to ``x[t]``.
    """
    rng = np.random.default_rng(42)
    exposures = rng.uniform(-1.0, 1.0, size=(N_DATES, N_ASSETS, 1))
    returns = np.empty((N_DATES, N_ASSETS))
    returns[0] = rng.uniform(-0.01, 0.01, N_ASSETS)
    returns[1:] = exposures[:-1, :, 0] / 100
    return FactorPanel(
        name="oracle",
        dates=pd.date_range("2000-01-31", periods=N_DATES, freq="ME"),
        assets=[f"a{i}" for i in range(N_ASSETS)],
        features=["signal"],
        exposures=exposures,
        returns=returns,
    )


def best_today(view: PastView) -> np.ndarray:
    """All in the asset with the highest exposure now: it earns max(x[t]) / 100 next month."""
    weights = np.zeros(view.n_assets)
    weights[np.argmax(view.exposures[-1, :, 0])] = 1.0
    return weights


def test_each_decision_earns_the_next_months_return(oracle_panel):
    result = backtest(oracle_panel, best_today, start=3)
    expected = oracle_panel.exposures[3:-1, :, 0].max(axis=1) / 100
    np.testing.assert_allclose(result.net_returns, expected, rtol=1e-15)
    assert (result.dates == oracle_panel.dates[4:]).all()
    # one month early or late would earn something else, by far
    early = (result.weights * oracle_panel.returns[3:-1]).sum(axis=1)
    late = (result.weights[:-1] * oracle_panel.returns[5:]).sum(axis=1)
    assert np.abs(early - expected).max() > 5e-3
    assert np.abs(late - expected[:-1]).max() > 5e-3


def test_the_oracle_training_pairs_are_aligned(oracle_panel):
    """``training_pairs`` pairs exposures with the return that followed them: exact fit."""
    x, y = past_view(oracle_panel, 20).training_pairs()
    np.testing.assert_allclose(y, x[..., 0] / 100, rtol=1e-15)
    assert x.shape[0] == 20 and y.shape[0] == 20


@pytest.mark.parametrize("window", [6, 12])
def test_minimum_variance_uses_exactly_the_trailing_window(window):
    """The closed form from exactly the last ``window`` months; windows off by one (or an
    expanding one) give visibly different weights on this panel, whose regime changes every
    month (alternating scales)."""
    rng = np.random.default_rng(42)
    scales = rng.uniform(0.01, 0.1, size=(N_DATES, N_ASSETS))
    returns = rng.standard_normal((N_DATES, N_ASSETS)) * scales
    panel = FactorPanel(
        name="regimes",
        dates=pd.date_range("2000-01-31", periods=N_DATES, freq="ME"),
        assets=[f"a{i}" for i in range(N_ASSETS)],
        features=["none"],
        exposures=np.zeros((N_DATES, N_ASSETS, 1)),
        returns=returns,
    )
    t = 25

    def closed_form(past: np.ndarray) -> np.ndarray:
        direction = np.linalg.solve(np.cov(past, rowvar=False), np.ones(N_ASSETS))
        return direction / direction.sum()

    weights = MinimumVariance(window=window)(past_view(panel, t))
    np.testing.assert_allclose(weights, closed_form(returns[t - window + 1 : t + 1]), rtol=1e-10)
    wrong = {
        "one month short": returns[t - window + 2 : t + 1],
        "one month long": returns[t - window : t + 1],
        "shifted back": returns[t - window : t],
        "expanding": returns[: t + 1],
    }
    for name, past in wrong.items():
        assert np.abs(closed_form(past) - weights).max() > 1e-3, name


def test_plug_in_mean_is_the_trailing_mean(oracle_panel):
    """With gamma tiny the plug-in arm's QP goes all in on the best trailing mean of exactly
    the window. The decision date is the first where the best asset over the 4 months differs from
    the best over 3, over 5 and over the 4 months one month earlier."""
    window, returns = 4, oracle_panel.returns

    def best_over(first: int, last: int) -> int:
        return int(np.argmax(returns[first : last + 1].mean(axis=0)))

    t = next(
        t
        for t in range(10, N_DATES - 1)
        if len({best_over(t - window + 1, t), best_over(t - window + 2, t)}) == 2
        and best_over(t - window + 1, t) != best_over(t - window, t)
        and best_over(t - window + 1, t) != best_over(t - window, t - 1)
    )
    best = best_over(t - window + 1, t)
    plug_in = Arm("plug_in_fixed", "trailing_mean", "sample", tune_gamma=False, gamma=1e-6)
    arms = ArmSet(PortfolioConfig(), TrainConfig(), first_decision=t, window=window)
    weights = arms.weights(plug_in, past_view(oracle_panel, t))
    assert np.argmax(weights) == best and weights[best] > 0.99
