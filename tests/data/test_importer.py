"""Importing a user's return file: layouts, units, frequencies, and errors that name the cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.importer import import_returns
from e2e_portfolio.exceptions import DataError

DATES = pd.date_range("2000-01-31", periods=60, freq="ME")


@pytest.fixture
def wide() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    return pd.DataFrame(rng.normal(0.01, 0.05, (60, 4)), index=DATES, columns=list("ABCD"))


def _write(frame: pd.DataFrame, path, index_label="month"):
    frame.to_csv(path, index_label=index_label)
    return path


def test_wide_monthly_keeps_every_return(tmp_path, wide):
    result = import_returns(_write(wide, tmp_path / "r.csv"), "mine")
    panel = result.panel
    assert (result.layout, result.frequency) == ("wide", "monthly")
    assert panel.assets == ("A", "B", "C", "D") and panel.name == "mine"
    # the past-only features need 36 months of history: the panel starts there
    np.testing.assert_allclose(panel.returns, wide.to_numpy()[-panel.n_dates :], rtol=1e-15)
    assert panel.dates[-1] == DATES[-1]


def test_percent_mid_month_dates_and_parquet(tmp_path, wide):
    shifted = (wide * 100).set_axis(DATES - pd.Timedelta(days=14))  # mid-month stamps
    result = import_returns(_write(shifted, tmp_path / "p.csv"), "p", percent=True)
    np.testing.assert_allclose(result.panel.returns, wide.to_numpy()[-result.panel.n_dates :],
                               rtol=1e-12)  # fmt: skip
    assert (result.panel.dates == DATES[-result.panel.n_dates :]).all()  # month ends
    assert "percent" in result.notes[0]
    wide.rename_axis("date").reset_index().to_parquet(tmp_path / "r.parquet")
    assert import_returns(tmp_path / "r.parquet", "q").panel.n_assets == 4


def test_daily_returns_compound_to_months(tmp_path):
    """Two assets, business days of 2001-2004: each month is prod(1 + r) - 1 of its days."""
    days = pd.bdate_range("2001-01-01", "2004-12-31")
    rng = np.random.default_rng(42)
    daily = pd.DataFrame(rng.normal(0.0005, 0.01, (len(days), 2)), index=days, columns=["x", "y"])
    result = import_returns(_write(daily, tmp_path / "d.csv", "date"), "d")
    expected = (1 + daily).groupby(days.to_period("M")).prod() - 1
    panel = result.panel
    np.testing.assert_allclose(panel.returns, expected.to_numpy()[-panel.n_dates :], rtol=1e-12)
    assert result.frequency == "daily" and "compounded to months" in result.notes[0]


def test_long_layout_uses_the_characteristics(tmp_path, wide):
    long = wide.stack().rename("Return").rename_axis(["Date", "Asset"]).reset_index()
    long["size"] = np.arange(len(long), dtype=float)
    long.sample(frac=1.0, random_state=0).to_csv(tmp_path / "l.csv", index=False)  # any order
    result = import_returns(tmp_path / "l.csv", "l")
    panel = result.panel
    assert result.layout == "long" and panel.features == ("size",) and panel.n_dates == 60
    np.testing.assert_allclose(panel.returns, wide.to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(panel.exposures[..., 0], np.arange(240.0).reshape(60, 4))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.assign(C=lambda f: f["C"].where(f.index != 5, "abc")),
         r"row 7, column 'C': expected a finite number, got 'abc'"),
        (lambda t: t.assign(month=lambda f: f["month"].where(f.index != 3, f["month"][2])),
         r"row 5, column 'month': duplicate date 2000-03-31"),
        (lambda t: t.assign(month=lambda f: f["month"].where(f.index != 3, "2000-01-15")),
         r"row 5, column 'month': dates out of order: 2000-01-15 after 2000-03-31"),
        (lambda t: t.drop(index=[10, 11, 12]),
         r"row 12, column 'month': irregular dates: 120 days from 2000-10-31 to 2001-02-28"),
        (lambda t: t.assign(B=lambda f: f["B"].where(f.index != 8, "-1.2")),
         r"date 2000-09-30, asset 'B': a return of -1.2 is a loss of 100% or more"),
        (lambda t: t.assign(D=lambda f: f["D"].where(f.index != 30, "")),
         r"asset 'D' has no return at 2002-07-31 between its first"),
        (lambda t: t.assign(month=lambda f: f["month"].where(f.index != 4, "May 40th")),
         r"row 6, column 'month': expected a date, got 'May 40th'"),
    ],
    ids=["not-a-number", "duplicate-date", "unsorted", "irregular", "total-loss", "gap",
         "bad-date"],
)  # fmt: skip
def test_errors_name_the_row_and_column(tmp_path, wide, edit, match):
    table = wide.rename_axis("month").reset_index().astype(str)
    table["month"] = [f"{d:%Y-%m-%d}" for d in DATES]
    path = tmp_path / "bad.csv"
    edit(table).to_csv(path, index=False)
    with pytest.raises(DataError, match=match):
        import_returns(path, "bad")


def test_implausible_returns_get_a_note_and_wrong_files_an_error(tmp_path, wide):
    big = wide.copy()
    big.iloc[50, 1] = 2.5
    result = import_returns(_write(big, tmp_path / "big.csv"), "big")
    assert any("beyond +-100%" in note and "for B at 2004-03" in note for note in result.notes)
    with pytest.raises(DataError, match=r"path: expected a .csv or .parquet file, got r.xlsx"):
        (tmp_path / "r.xlsx").write_text("x")
        import_returns(tmp_path / "r.xlsx", "x")
    with pytest.raises(DataError, match=r"path: no such file"):
        import_returns(tmp_path / "none.csv", "x")


def test_late_listings_and_delistings_are_kept_as_missing(tmp_path, wide):
    """C lists at month 20 and D delists after month 45: empty cells, kept as not listed."""
    table = wide.copy()
    table.iloc[:20, 2] = np.nan
    table.iloc[45:, 3] = np.nan
    path = tmp_path / "changing.csv"
    table.to_csv(path, index_label="month", na_rep="")
    result = import_returns(path, "changing")
    panel = result.panel
    offset = 60 - panel.n_dates
    assert not panel.is_complete
    np.testing.assert_array_equal(panel.listed[:, 3], np.arange(offset, 60) < 45)
    np.testing.assert_array_equal(panel.listed[:, 2], np.arange(offset, 60) >= 20)
