"""Validated records at the edges of the package (pydantic v2).

These models check what crosses a boundary — rows read from a file or the store, statistics
written to it — so that NaN, infinities and out-of-range values are rejected with a message
naming the field instead of travelling on silently.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class FactorExposure(BaseModel):
    """One asset on one date: its exposures and the return realised over that period.

    Rows of a :class:`~e2e_portfolio.data.panel.FactorPanel` in record form (see
    ``FactorPanel.to_frame``), e.g. for importing a panel from a CSV file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    date: datetime
    asset: Annotated[str, Field(min_length=1)]
    exposures: Annotated[dict[str, FiniteFloat], Field(min_length=1)]
    realised_return: Annotated[FiniteFloat, Field(gt=-1.0)]
    """Simple return over the period ending at ``date``; a long position cannot lose >100%."""


class StrategyStats(BaseModel):
    """Out-of-sample performance of one strategy over ``n_periods`` periods.

    Returns and volatilities are annualised from monthly data with 12 periods a year; the
    Sharpe ratio is annualised mean over annualised volatility of the (excess or raw, as the
    data are) net returns. ``max_drawdown`` is a positive fraction of peak wealth;
    ``turnover`` is the mean two-sided ``||w_t - w_{t-1}||_1`` per period (buys plus sells).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    annualised_return: FiniteFloat
    annualised_volatility: Annotated[FiniteFloat, Field(ge=0.0)]
    sharpe: FiniteFloat
    max_drawdown: Annotated[FiniteFloat, Field(ge=0.0)]
    turnover: Annotated[FiniteFloat, Field(ge=0.0)]
    n_periods: Annotated[int, Field(ge=1)]
