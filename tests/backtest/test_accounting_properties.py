"""Property-based tests of the backtest's accounting on random panels (hypothesis).

For any panel and any strategy that returns a budget of 1:

- costs: ``net = w' r - tc * turnover`` exactly, for every period;
- turnover is two-sided and measured against the *drifted* book: holding a fixed number of
  units (the drifted weights) trades nothing after the first period, and the first period
  buys the whole book from cash (turnover 1);
- budget: the recorded weights are the strategy's, summing to 1;
- one turnover: the engine, :func:`path_turnover` and the torch training loss agree, and
  the view's holdings are the drifted previous book;
- no look-ahead: changing the returns and exposures after a decision date changes none of
  the decisions up to that date.
Tolerances are rounding (1e-12) on returns of order 0.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from e2e_portfolio.backtest.walkforward import PastView, backtest
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.models.losses import net_portfolio_returns
from e2e_portfolio.turnover import drifted, path_turnover


@st.composite
def panels(draw) -> FactorPanel:
    n_dates = draw(st.integers(min_value=4, max_value=30))
    n_assets = draw(st.integers(min_value=2, max_value=8))
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**31)))
    returns = rng.uniform(-0.3, 0.3, size=(n_dates, n_assets))
    return FactorPanel(
        name="random",
        dates=pd.date_range("2000-01-31", periods=n_dates, freq="ME"),
        assets=[f"a{i}" for i in range(n_assets)],
        features=["x"],
        exposures=rng.standard_normal((n_dates, n_assets, 1)),
        returns=returns,
    )


def momentum(view: PastView) -> np.ndarray:
    """A strategy that uses the past: weights from the softmax of trailing returns."""
    score = view.returns[-3:].sum(axis=0) + view.exposures[-1, :, 0]
    weights = np.exp(score - score.max())
    return weights / weights.sum()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(panel=panels(), tc=st.floats(min_value=0.0, max_value=0.05), data=st.data())
def test_costs_budget_and_turnover(panel, tc, data):
    start = data.draw(st.integers(min_value=1, max_value=panel.n_dates - 3))  # >= 2 periods
    result = backtest(panel, momentum, start=start, tc=tc)
    realised = panel.returns[start + 1 :]
    gross = (result.weights * realised).sum(axis=1)
    np.testing.assert_allclose(result.net_returns, gross - tc * result.turnover, atol=1e-12)
    np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-12)
    # two-sided turnover against the book drifted by last period's returns
    drifted = result.weights[:-1] * (1 + realised[:-1])
    drifted = drifted / drifted.sum(axis=1, keepdims=True)
    expected = np.abs(result.weights[1:] - drifted).sum(axis=1)
    np.testing.assert_allclose(result.turnover[1:], expected, atol=1e-12)
    assert result.turnover[0] == np.abs(result.weights[0]).sum()  # bought from cash (exact)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(panel=panels())
def test_holding_the_drifted_book_trades_nothing(panel):
    n = panel.n_assets
    book = {"units": np.full(n, 1.0 / n), "last": None}

    def buy_and_hold(view: PastView) -> np.ndarray:
        if book["last"] is not None:  # the units bought at the previous decision, marked
            book["units"] = book["units"] * (1 + view.returns[-1])
        book["last"] = view.dates[-1]
        return book["units"] / book["units"].sum()

    result = backtest(panel, buy_and_hold, start=1)
    assert abs(result.turnover[0] - 1.0) < 1e-12
    np.testing.assert_allclose(result.turnover[1:], 0.0, atol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(panel=panels(), data=st.data())
def test_the_future_cannot_change_past_decisions(panel, data):
    cut = data.draw(st.integers(min_value=1, max_value=panel.n_dates - 2))
    rng = np.random.default_rng(data.draw(st.integers(min_value=0, max_value=2**31)))
    returns, exposures = panel.returns.copy(), panel.exposures.copy()
    returns[cut + 1 :] = rng.uniform(-0.3, 0.3, size=returns[cut + 1 :].shape)
    exposures[cut + 1 :] = rng.standard_normal(exposures[cut + 1 :].shape)
    changed = FactorPanel(panel.name, panel.dates, panel.assets, panel.features, exposures, returns)
    before = backtest(panel, momentum, start=1).weights
    after = backtest(changed, momentum, start=1).weights
    np.testing.assert_array_equal(before[:cut], after[:cut])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(panel=panels(), tc=st.floats(min_value=0.0, max_value=0.05), data=st.data())
def test_one_turnover_for_the_engine_the_scoring_and_the_training_loss(panel, tc, data):
    """The backtest, :func:`path_turnover` and the torch training loss charge the same costs.

    Tolerance 1e-12: the three compute the same arithmetic in float64 on returns of order 0.1.
    """
    start = data.draw(st.integers(min_value=1, max_value=panel.n_dates - 3))
    seen = []

    def recording(view: PastView) -> np.ndarray:
        seen.append(view.holdings.copy())
        return momentum(view)

    result = backtest(panel, recording, start=start, tc=tc)
    realised = panel.returns[start + 1 :]
    cash = np.zeros(panel.n_assets)
    np.testing.assert_allclose(
        result.turnover, path_turnover(result.weights, realised, cash), atol=1e-12
    )
    # the view's holdings are the previous decision drifted by the returns it earned
    np.testing.assert_array_equal(seen[0], cash)
    np.testing.assert_allclose(
        np.array(seen[1:]), drifted(result.weights[:-1], realised[:-1]), atol=1e-15
    )
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    net = net_portfolio_returns(
        as_tensor(result.weights), as_tensor(realised), tc, initial=as_tensor(cash)
    )
    np.testing.assert_allclose(net.numpy(), result.net_returns, atol=1e-12)
