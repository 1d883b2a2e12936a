"""Online prices from Yahoo Finance (optional extra ``yfinance``), turned into a panel.

Nothing here is needed offline: the synthetic universe and the datasets of
:mod:`e2e_portfolio.data.datasets` cover every experiment. When yfinance is missing or the
network is unreachable, :func:`fetch_prices` raises :class:`DataSourceError` saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from e2e_portfolio.data.features import build_features
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.exceptions import DataError, DataSourceError

Downloader = Callable[..., pd.DataFrame]


def _yfinance_download() -> Downloader:
    try:
        import yfinance
    except ImportError as exc:
        raise DataSourceError(
            "yfinance is not installed; install the extra: pip install 'e2e-portfolio[yfinance]'"
        ) from exc
    return yfinance.download


def fetch_prices(
    tickers: Sequence[str],
    start: str = "2005-01-01",
    end: str | None = None,
    download: Downloader | None = None,
) -> pd.DataFrame:
    """Daily adjusted close prices, (n_days, n_tickers), from Yahoo Finance.

    Parameters
    ----------
    tickers : sequence of str
        At least two ticker symbols.
    start, end : str
        ISO dates; ``end=None`` means today.
    download : callable, optional
        Stand-in for ``yfinance.download`` (tests pass one); the real one by default.

    Raises
    ------
    DataSourceError
        yfinance is missing, the network is unreachable, or no prices came back.
    """
    symbols = [t.strip().upper() for t in tickers if t.strip()]
    if len(symbols) < 2 or len(set(symbols)) != len(symbols):
        raise DataError(f"tickers: expected at least 2 distinct symbols, got {list(tickers)}")
    download = download or _yfinance_download()
    try:
        raw = download(
            symbols, start=start, end=end, auto_adjust=True, progress=False, threads=False
        )
    except Exception as exc:  # yfinance raises many kinds of network errors
        raise DataSourceError(
            f"could not download {symbols} from Yahoo Finance (offline?): {exc}"
        ) from exc
    if raw is None or raw.empty:
        raise DataSourceError(
            f"Yahoo Finance returned no prices for {symbols} (offline, or unknown tickers?)"
        )
    prices = raw["Close"] if isinstance(raw.columns, pd.MultiIndex) else raw
    missing = [s for s in symbols if s not in prices.columns or prices[s].isna().all()]
    if missing:
        raise DataSourceError(f"Yahoo Finance returned no prices for {missing}")
    return prices[symbols].astype(np.float64)


def prices_to_panel(prices: pd.DataFrame, name: str, description: str = "") -> FactorPanel:
    """Month-end returns of daily prices, with return-based exposures.

    Months before every ticker has a price are dropped, so the panel has no gaps.
    """
    month_end = prices.resample("ME").last().dropna(how="any")
    returns = month_end.pct_change().iloc[1:]
    returns.index.name = "date"
    return build_features(returns, name=name, description=description)
