"""Real datasets that work offline, shipped inside pip packages.

- ``french``: Kenneth French's monthly portfolios, 1949-01 to 2017-03, from the copy inside
  ``linearmodels``. Universes: 12 industries, 9 size x book-to-market, 9 size x momentum
  (returns in excess of the one-month T-bill ``RF``), and the factors ``MktRF``, ``SMB``,
  ``HML`` themselves (already excess / long-short returns).
- ``sp500``: daily prices of 20 large US stocks, 1990-2022, from the copy inside ``skfolio``,
  compounded to month-end simple returns (not in excess: no risk-free rate covers the span).
  The 20 are 2022 survivors, so 1/N looks unusually good on them. RRC's prices before its
  3-for-1 split of 1990-04-10 are unadjusted in the source; they are adjusted here.

Each loader returns a :class:`FactorPanel` whose exposures are built from past returns by
:func:`~e2e_portfolio.data.features.build_features`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from e2e_portfolio.data.features import build_features
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.exceptions import DataError

FrenchUniverse = Literal["industries", "size_value", "size_momentum", "factors"]

FRENCH_UNIVERSES: dict[str, tuple[str, ...]] = {
    "industries": (
        "NoDur", "Durbl", "Manuf", "Enrgy", "Chems", "BusEq",
        "Telcm", "Utils", "Shops", "Hlth", "Money", "Other",
    ),
    "size_value": ("S1V1", "S1V3", "S1V5", "S3V1", "S3V3", "S3V5", "S5V1", "S5V3", "S5V5"),
    "size_momentum": ("S1M1", "S1M3", "S1M5", "S3M1", "S3M3", "S3M5", "S5M1", "S5M3", "S5M5"),
    "factors": ("MktRF", "SMB", "HML"),
}  # fmt: skip
FRENCH_FACTORS = ("MktRF", "SMB", "HML", "Mom", "RF")

BUILTIN_DATASETS = {
    "synthetic": "simulated factor universe (options: --n-assets, --n-months, --seed)",
    "french": "Fama-French monthly portfolios 1949-2017, offline (linearmodels)",
    "sp500": "20 S&P 500 stocks, daily 1990-2022 to monthly, offline (skfolio)",
    "yfinance": "monthly prices of --tickers from Yahoo Finance (needs internet and the extra)",
}


def french_monthly() -> pd.DataFrame:
    """The raw French data: factors and portfolio returns, decimals, month-end index.

    Returns
    -------
    DataFrame, (819, 35)
        Columns ``MktRF SMB HML Mom RF`` and the 30 portfolios; portfolio returns are raw
        (subtract ``RF`` for excess returns).
    """
    from linearmodels.datasets import french

    raw = french.load()
    frame = raw.set_index(pd.DatetimeIndex(raw.pop("dates")) + pd.offsets.MonthEnd(0))
    frame.index.name = "date"
    return frame.astype(np.float64)


def french_excess_returns(universe: FrenchUniverse = "industries") -> pd.DataFrame:
    """Monthly excess returns of one French universe, (n_months, n_assets)."""
    if universe not in FRENCH_UNIVERSES:
        raise DataError(f"universe: expected one of {sorted(FRENCH_UNIVERSES)}, got {universe!r}")
    frame = french_monthly()
    columns = list(FRENCH_UNIVERSES[universe])
    if universe == "factors":
        return frame[columns]
    return frame[columns].sub(frame["RF"], axis=0)


def load_french(universe: FrenchUniverse = "industries", name: str = "french") -> FactorPanel:
    """The French universe as a panel of excess returns with return-based exposures.

    Parameters
    ----------
    universe : {"industries", "size_value", "size_momentum", "factors"}
        Which portfolios (shipped offline in ``linearmodels``).
    name : str
        The panel's name (its key in the store).

    Returns
    -------
    FactorPanel
        Monthly excess returns (over ``RF``) and past-only exposures.
    """
    returns = french_excess_returns(universe)
    return build_features(
        returns,
        name=name,
        description=f"Fama-French {universe} portfolios (linearmodels), monthly excess returns",
    )


def sp500_monthly_returns() -> pd.DataFrame:
    """Month-end simple returns of skfolio's 20 S&P 500 stocks, (n_months, 20)."""
    from skfolio.datasets import load_sp500_dataset

    prices = load_sp500_dataset().astype(np.float64)
    prices = _adjust_unrecorded_split(prices, "RRC", pd.Timestamp("1990-04-10"))
    month_end = prices.resample("ME").last()
    returns = month_end.pct_change().iloc[1:]
    returns.index.name = "date"
    return returns


def load_sp500(name: str = "sp500") -> FactorPanel:
    """Skfolio's S&P 20 as a monthly panel with return-based exposures.

    Parameters
    ----------
    name : str
        The panel's name (its key in the store).

    Returns
    -------
    FactorPanel
        Monthly simple returns of 20 large US stocks, 2022 survivors, and past-only
        exposures.
    """
    return build_features(
        sp500_monthly_returns(),
        name=name,
        description="20 S&P 500 stocks (skfolio, 2022 survivors), monthly simple returns",
    )


def _adjust_unrecorded_split(prices: pd.DataFrame, ticker: str, day: pd.Timestamp) -> pd.DataFrame:
    """Scale the prices before ``day`` by the overnight price ratio at ``day``."""
    if ticker not in prices.columns or day not in prices.index:
        return prices
    position = prices.index.get_loc(day)
    ratio = prices[ticker].iloc[position] / prices[ticker].iloc[position - 1]
    if ratio > 0.5:  # no split-sized gap: the source has been fixed upstream
        return prices
    adjusted = prices.copy()
    adjusted.iloc[:position, adjusted.columns.get_loc(ticker)] *= ratio
    return adjusted
