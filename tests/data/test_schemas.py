from __future__ import annotations

import pydantic
import pytest

from e2e_portfolio.data.schemas import FactorExposure, StrategyStats

GOOD_STATS = dict(
    annualised_return=0.1, annualised_volatility=0.2, sharpe=0.5,
    max_drawdown=0.3, turnover=0.05, n_periods=12,
)  # fmt: skip


def test_valid_records():
    row = FactorExposure(
        date="2020-01-31", asset="AAPL", exposures={"value": 0.3}, realised_return=0.02
    )
    assert row.exposures["value"] == 0.3
    assert StrategyStats(**GOOD_STATS).sharpe == 0.5


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("sharpe", float("nan"), "expected a finite number"),
        ("annualised_return", float("inf"), "expected a finite number"),
        ("annualised_volatility", -0.1, "greater than or equal to 0"),
        ("max_drawdown", -0.01, "greater than or equal to 0"),
        ("turnover", -1.0, "greater than or equal to 0"),
        ("n_periods", 0, "greater than or equal to 1"),
    ],
    ids=["nan-sharpe", "inf-return", "negative-vol", "negative-drawdown", "negative-turnover",
         "zero-periods"],
)  # fmt: skip
def test_bad_stats_name_the_field(field, value, match):
    with pytest.raises(pydantic.ValidationError, match=rf"{field}\n.*{match}"):
        StrategyStats(**{**GOOD_STATS, field: value})


def test_bad_exposure_rows():
    with pytest.raises(pydantic.ValidationError, match=r"exposures\.value\n.*finite"):
        FactorExposure(date="2020-01-31", asset="A", exposures={"value": float("nan")},
                       realised_return=0.0)  # fmt: skip
    with pytest.raises(pydantic.ValidationError, match=r"realised_return\n.*greater than -1"):
        FactorExposure(date="2020-01-31", asset="A", exposures={"v": 0.0}, realised_return=-1.5)
