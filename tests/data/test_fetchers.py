"""yfinance fetching, tested offline with stand-in downloaders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.fetchers import fetch_prices, prices_to_panel
from e2e_portfolio.exceptions import DataError, DataSourceError


def _fake_prices(symbols, start, end, **_):
    days = pd.bdate_range("2015-01-01", "2019-12-31")
    rng = np.random.default_rng(42)
    growth = np.exp(np.cumsum(rng.normal(0.0003, 0.01, (len(days), len(symbols))), axis=0))
    columns = pd.MultiIndex.from_product([["Close"], symbols])
    return pd.DataFrame(100 * growth, index=days, columns=columns)


def test_fetch_and_build_panel():
    prices = fetch_prices(["aapl", "msft", "ko"], download=_fake_prices)
    assert list(prices.columns) == ["AAPL", "MSFT", "KO"]
    panel = prices_to_panel(prices, name="yf")
    assert panel.n_assets == 3 and panel.dates[-1] == pd.Timestamp("2019-12-31")


def test_offline_download_gives_clear_message():
    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'query1.finance.yahoo.com'")

    with pytest.raises(DataSourceError, match=r"could not download \['AAPL', 'MSFT'\].*offline"):
        fetch_prices(["AAPL", "MSFT"], download=offline)


def test_empty_download_gives_clear_message():
    with pytest.raises(DataSourceError, match="returned no prices"):
        fetch_prices(["AAPL", "MSFT"], download=lambda *a, **k: pd.DataFrame())


def test_missing_yfinance_names_the_extra(without_module):
    without_module("yfinance")
    with pytest.raises(DataSourceError, match=r"pip install 'e2e-portfolio\[yfinance\]'"):
        fetch_prices(["AAPL", "MSFT"])


def test_bad_tickers():
    with pytest.raises(DataError, match=r"tickers: expected at least 2 distinct symbols"):
        fetch_prices(["AAPL"], download=_fake_prices)
