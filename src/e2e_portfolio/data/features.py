"""Per-asset exposures built from a return history alone, using only the past.

Real datasets come as return histories; the models consume per-asset exposures like those of
the synthetic universe. :func:`build_features` makes them, at each date ``t`` from returns up
to and including ``t`` only:

==================  ==========================================================================
feature             definition at date ``t``
==================  ==========================================================================
``momentum``        cumulative return over months ``t-11 .. t-1`` (12-1 momentum, skips ``t``)
``reversal``        the return of month ``t`` (short-term reversal signal)
``volatility``      standard deviation of returns ``t-11 .. t``
``market_beta``     OLS beta of returns ``t-B+1 .. t`` on the equal-weight market, ``B`` =
                    ``beta_window``
==================  ==========================================================================

Each feature is then standardised across assets at each date (z-score), so the panel's
exposures are comparable across dates and with the synthetic ones. The first dates, where a
window is incomplete, are dropped. With a changing universe (NaN returns where an asset is
not listed) a feature is NaN until the asset has its window of history, and the z-score runs
over the assets that have it; the equal-weight market is the mean of the listed assets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2e_portfolio.data.panel import FactorPanel, check_listing
from e2e_portfolio.exceptions import DataError, NaNError

FEATURES = ("momentum", "reversal", "volatility", "market_beta")
"""The past-only exposures :func:`build_features` computes, in this order."""
MONTHLY_SPACING = (27, 32)
"""Median days between dates that make a history monthly (inclusive bounds)."""


def build_features(
    returns: pd.DataFrame,
    name: str,
    window: int = 12,
    beta_window: int = 36,
    description: str = "",
) -> FactorPanel:
    """Turn a (n_dates, n_assets) return history into a :class:`FactorPanel`.

    Parameters
    ----------
    returns : DataFrame, (n_dates, n_assets)
        Periodic simple returns, indexed by strictly increasing dates; NaN where an asset is
        not listed (one unbroken listing per asset).
    name : str
        Name of the panel.
    window : int
        Months of history for momentum and volatility (at least 3).
    beta_window : int
        Months of history for the market beta (at least 3).
    description : str
        Stored with the panel.

    Returns
    -------
    FactorPanel
        Dates from the first one with complete windows; exposures (T, N, 4) in the order of
        :data:`FEATURES`, z-scored across assets per date.
    """
    _check_history(returns)
    for argument, value in (("window", window), ("beta_window", beta_window)):
        if not isinstance(value, int) or value < 3:
            raise DataError(f"{argument}: expected an integer >= 3, got {value!r}")
    warm_up = max(window, beta_window)
    if len(returns) <= warm_up + 1:
        raise DataError(
            f"returns: expected more than {warm_up + 1} dates for windows of {window} and "
            f"{beta_window}, got {len(returns)}"
        )
    values = returns.astype(np.float64)
    growth = np.log1p(values)
    momentum = np.expm1(growth.shift(1).rolling(window - 1).sum())
    volatility = values.rolling(window).std()
    market = values.mean(axis=1)
    market_var = market.rolling(beta_window).var()
    market_beta = values.rolling(beta_window).cov(market).div(market_var, axis=0)
    raw = {
        "momentum": momentum,
        "reversal": values,
        "volatility": volatility,
        "market_beta": market_beta,
    }
    keep = slice(warm_up - 1, None)
    listed = np.isfinite(values.iloc[keep].to_numpy())
    exposures = np.stack([_zscore(raw[f].iloc[keep].where(listed)) for f in FEATURES], axis=-1)
    return FactorPanel(
        name=name,
        dates=pd.DatetimeIndex(values.index[keep]),
        assets=tuple(str(c) for c in values.columns),
        features=FEATURES,
        exposures=exposures,
        returns=values.iloc[keep].to_numpy(),
        description=description,
    )


def _zscore(frame: pd.DataFrame) -> np.ndarray:
    """Cross-sectional z-score per row over the known values; no dispersion gives zeros.

    Unknown (NaN) values stay NaN.
    """
    values = frame.to_numpy(dtype=np.float64)
    known = np.isfinite(values)
    count = known.sum(axis=1, keepdims=True)
    filled = np.where(known, values, 0.0)
    mean = np.divide(filled.sum(axis=1, keepdims=True), count, out=np.zeros_like(count, float),
                     where=count > 0)  # fmt: skip
    centred = np.where(known, values - mean, 0.0)
    scale = np.sqrt(np.divide((centred**2).sum(axis=1, keepdims=True), count,
                              out=np.zeros_like(mean), where=count > 0))  # fmt: skip
    z = np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 1e-12)
    return np.where(known, z, np.nan)


def spacing_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Days between consecutive dates, whatever the index's time unit."""
    return np.diff(dates.to_numpy()).astype("timedelta64[s]").astype(np.float64) / 86_400


def _check_history(returns: pd.DataFrame) -> None:
    if not isinstance(returns, pd.DataFrame):
        raise TypeError(f"returns: expected a pandas DataFrame, got {type(returns).__name__}")
    if not isinstance(returns.index, pd.DatetimeIndex):
        raise DataError(f"returns: expected a DatetimeIndex, got {type(returns.index).__name__}")
    if not returns.index.is_monotonic_increasing or not returns.index.is_unique:
        raise DataError("returns: expected strictly increasing dates, got unsorted or repeated")
    if returns.shape[1] < 2:
        raise DataError(f"returns: expected at least 2 assets, got {returns.shape[1]}")
    if len(returns) > 2:
        days = float(np.median(spacing_days(returns.index)))
        low, high = MONTHLY_SPACING
        if not low <= days <= high:
            raise DataError(
                f"returns: expected monthly dates, got a median spacing of {days:.1f} days; "
                "compound daily or weekly returns to months first (the importer does)"
            )
    values = returns.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        raise NaNError("returns: expected finite values or NaN (not listed), got inf")
    check_listing(values, returns.index, tuple(str(c) for c in returns.columns))
    if (values[np.isfinite(values)] <= -1.0).any():
        raise DataError(
            f"returns: expected simple returns > -1, got minimum {np.nanmin(values):.4g}"
        )
