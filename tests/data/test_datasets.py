from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.datasets import (
    FRENCH_UNIVERSES,
    french_excess_returns,
    french_monthly,
    load_french,
    load_sp500,
    sp500_monthly_returns,
)
from e2e_portfolio.exceptions import DataError


def test_french_raw_columns_and_dates():
    frame = french_monthly()
    assert {"MktRF", "SMB", "HML", "Mom", "RF"} <= set(frame.columns)
    for columns in FRENCH_UNIVERSES.values():
        assert set(columns) <= set(frame.columns)
    assert frame.index[0] == pd.Timestamp("1949-01-31")
    assert frame.index[-1] == pd.Timestamp("2017-03-31")
    assert len(frame) == 819 and not frame.isna().any().any()
    assert frame.abs().max().max() < 1.0  # decimals, not percent


@pytest.mark.parametrize("universe", sorted(FRENCH_UNIVERSES))
def test_french_panels(universe):
    panel = load_french(universe)
    assert panel.assets == FRENCH_UNIVERSES[universe]
    assert panel.dates[-1] == pd.Timestamp("2017-03-31")
    assert np.isfinite(panel.exposures).all()


def test_french_excess_returns_subtract_rf():
    raw = french_monthly()
    excess = french_excess_returns("industries")
    np.testing.assert_allclose(excess["NoDur"], raw["NoDur"] - raw["RF"])
    np.testing.assert_array_equal(french_excess_returns("factors")["SMB"], raw["SMB"])


def test_french_unknown_universe():
    with pytest.raises(DataError, match=r"universe: expected one of .*, got 'stocks'"):
        load_french("stocks")


def test_sp500_monthly():
    returns = sp500_monthly_returns()
    assert returns.shape[1] == 20 and not returns.isna().any().any()
    assert returns.index[0] == pd.Timestamp("1990-02-28")
    assert returns.index[-1] == pd.Timestamp("2022-12-31")
    # the unadjusted 3-for-1 split of RRC would show as a -66 % month
    assert returns.loc["1990-04-30", "RRC"] > -0.4
    panel = load_sp500()
    assert panel.n_assets == 20 and panel.dates[-1] == pd.Timestamp("2022-12-31")
