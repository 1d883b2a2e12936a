from __future__ import annotations

import numpy as np
import pytest

from e2e_portfolio.backtest.metrics import max_drawdown, strategy_stats
from e2e_portfolio.exceptions import DataError, NaNError


def test_stats_closed_form():
    returns = np.array([0.02, -0.01, 0.03, 0.00])
    stats = strategy_stats(returns, turnover=np.full(4, 0.2))
    assert stats.annualised_return == pytest.approx(0.01 * 12)
    assert stats.annualised_volatility == pytest.approx(returns.std(ddof=1) * np.sqrt(12))
    assert stats.sharpe == pytest.approx(0.01 / returns.std(ddof=1) * np.sqrt(12))
    assert stats.turnover == pytest.approx(0.2) and stats.n_periods == 4


def test_max_drawdown_closed_form():
    # wealth 1.1, 0.55, 0.605: peak 1.1, trough 0.55 -> 50 %
    assert max_drawdown([0.1, -0.5, 0.1]) == pytest.approx(0.5)
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([-0.2, 0.1]) == pytest.approx(0.2)  # from the initial wealth of 1


@pytest.mark.parametrize(
    ("returns", "turnover", "error", "match"),
    [
        ([0.01], [0.0], DataError, r"net_returns: expected a 1-d series of >= 2 periods"),
        ([0.01, 0.02], [0.0], DataError, r"turnover: expected shape \(2,\), got \(1,\)"),
        ([0.01, np.nan], [0.0, 0.0], NaNError, "expected finite values"),
        ([0.01, 0.01], [0.0, 0.0], DataError, "zero volatility"),
    ],
    ids=["short", "mismatch", "nan", "constant"],
)
def test_bad_series(returns, turnover, error, match):
    with pytest.raises(error, match=match):
        strategy_stats(returns, turnover)
