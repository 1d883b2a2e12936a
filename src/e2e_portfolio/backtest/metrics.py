"""Performance statistics of a net return series (pure numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from e2e_portfolio.annualisation import PERIODS_PER_YEAR
from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.exceptions import DataError, NaNError


def max_drawdown(net_returns: npt.ArrayLike) -> float:
    """Largest fall of compounded wealth from its running peak, as a positive fraction."""
    wealth = np.cumprod(1.0 + np.asarray(net_returns, dtype=np.float64))
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    return float(np.max(1.0 - wealth / peak, initial=0.0))


def strategy_stats(
    net_returns: npt.ArrayLike,
    turnover: npt.ArrayLike,
    periods_per_year: int = PERIODS_PER_YEAR,
) -> StrategyStats:
    """Annualised statistics of one strategy.

    Parameters
    ----------
    net_returns : array, (n_periods,)
        Per-period returns net of transaction costs.
    turnover : array, (n_periods,)
        Per-period two-sided turnover (buys plus sells), ``||w_t - w_{t-1}||_1``.
    periods_per_year : int
        12 for monthly data.

    Raises
    ------
    DataError
        Fewer than two periods, mismatched lengths, or zero volatility (Sharpe undefined).
    """
    returns = np.asarray(net_returns, dtype=np.float64)
    trades = np.asarray(turnover, dtype=np.float64)
    if returns.ndim != 1 or returns.size < 2:
        raise DataError(f"net_returns: expected a 1-d series of >= 2 periods, got {returns.shape}")
    if trades.shape != returns.shape:
        raise DataError(f"turnover: expected shape {returns.shape}, got {trades.shape}")
    if not (np.isfinite(returns).all() and np.isfinite(trades).all()):
        raise NaNError("net_returns, turnover: expected finite values, got NaN or inf")
    volatility = returns.std(ddof=1)
    if volatility <= 1e-15:
        raise DataError("net_returns: zero volatility, the Sharpe ratio is undefined")
    mean = returns.mean()
    return StrategyStats(
        annualised_return=float(mean * periods_per_year),
        annualised_volatility=float(volatility * np.sqrt(periods_per_year)),
        sharpe=float(mean / volatility * np.sqrt(periods_per_year)),
        max_drawdown=max_drawdown(returns),
        turnover=float(trades.mean()),
        n_periods=int(returns.size),
    )
