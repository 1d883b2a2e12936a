"""Fuzzing the importer: every malformed file ends in a one-line error naming the file, or in
an import that round-trips through the store; never in a traceback or a warning.

Files are drawn from a valid monthly table (wide or long) and then damaged: cells replaced by
text, huge or non-finite numbers, empty cells; rows made ragged; headers repeated; a byte-order
mark, another encoding, an empty file, a single row; Parquet files with columns of the wrong
type. Seeded through hypothesis' database-free profile of the suite (see tests/conftest.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2e_portfolio.data.importer import import_returns
from e2e_portfolio.data.store import Store
from e2e_portfolio.exceptions import DataError

CELLS = st.sampled_from(["", "abc", "1e400", "-inf", "nan", "1e300", "-1.5", "0,5", "12%",
                         "2000-01-31", "  0.01 ", "0x10", "None", "TRUE", "1e-320", "€"])  # fmt: skip


@st.composite
def damaged_csv(draw) -> bytes:
    months = draw(st.sampled_from([1, 2, 3, 40, 48]))  # features need more than 37 months
    assets = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(0.01, 0.05, (months, assets)).round(6).astype(str).astype(object)
    dates = [f"{d:%Y-%m-%d}" for d in pd.date_range("2001-01-31", periods=months, freq="ME")]
    names = [f"A{j}" for j in range(assets)]
    long = draw(st.booleans())
    if long:
        header = ["date", "asset", "return"]
        rows = [[dates[i], names[j], values[i, j]] for i in range(months) for j in range(assets)]
    else:
        header = ["date", *names]
        rows = [[dates[i], *values[i]] for i in range(months)]
    damaged = draw(st.booleans())  # half the files are valid but for their encoding
    for _ in range(draw(st.integers(1, 3)) if damaged else 0):  # cells, dates and names
        if rows:
            i = draw(st.integers(0, len(rows) - 1))
            j = draw(st.integers(0, len(rows[i]) - 1))
            rows[i][j] = draw(CELLS)
    if damaged and draw(st.booleans()) and rows:  # a ragged row
        i = draw(st.integers(0, len(rows) - 1))
        rows[i] = rows[i][: draw(st.integers(0, len(rows[i])))] + ["x"] * draw(st.integers(0, 2))
    if damaged and draw(st.integers(0, 4)) == 0:  # a repeated header
        header[-1] = header[min(1, len(header) - 1)]
    text = "\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    if damaged and draw(st.integers(0, 9)) == 0:
        return b""
    return text.encode(encoding, errors="replace")


@st.composite
def damaged_parquet(draw) -> pd.DataFrame:
    months = draw(st.sampled_from([1, 3, 40, 48]))
    dates = pd.date_range("2001-01-31", periods=months, freq="ME")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frame = pd.DataFrame({"date": dates, "A": rng.normal(0.01, 0.05, months),
                          "B": rng.normal(0.01, 0.05, months)})  # fmt: skip
    kind = draw(st.sampled_from(["valid", "bool", "text", "huge", "dates-as-numbers", "ints"]))
    if kind == "bool":
        frame["B"] = frame["B"] > 0
    elif kind == "text":
        frame["B"] = frame["B"].astype(str).where(np.arange(months) != 0, "n/a")
    elif kind == "huge":
        frame.loc[0, "A"] = 1e308
    elif kind == "dates-as-numbers":
        frame["date"] = np.arange(months)
    elif kind == "ints":
        frame["A"] = np.arange(months)
    return frame


def _check(path, store: Store) -> None:
    """One-line error naming the file, or an import whose panel the store gives back."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may leak
        try:
            result = import_returns(path, "fuzz")
        except DataError as exc:
            message = str(exc)
            assert "\n" not in message and message.startswith(path.name), message
            event(message.split(":")[1].strip()[:12])  # for --hypothesis-show-statistics
            return
    event("imported")
    panel = result.panel
    listed = np.isfinite(panel.returns)
    # listed returns are real returns; exposures are finite or not yet known (NaN)
    assert (panel.returns[listed] > -1).all() and not np.isinf(panel.exposures).any()
    store.write_panel(panel, replace=True)
    back = store.read_panel("fuzz")
    np.testing.assert_array_equal(back.returns, panel.returns)
    assert back.assets == panel.assets and (back.dates == panel.dates).all()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("fuzz") / "fuzz.duckdb")


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                HealthCheck.function_scoped_fixture])  # fmt: skip
"""Both fuzz tests: no deadline (imports vary in size); the store fixture is shared."""


@settings(FUZZ, max_examples=150)
@given(content=damaged_csv())
def test_malformed_csv_files(tmp_path, store, content):
    path = tmp_path / "returns.csv"
    path.write_bytes(content)
    _check(path, store)


@settings(FUZZ, max_examples=40)
@given(frame=damaged_parquet())
def test_malformed_parquet_files(tmp_path, store, frame):
    path = tmp_path / "returns.parquet"
    frame.to_parquet(path)
    _check(path, store)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"r\.csv: the file is empty"),
        ("date,A\n2001-01-31,0.01\n".encode("utf-16"), r"r\.csv: expected UTF-8 text"),
        (b"date,A,A\n2001-01-31,0.01,0.02\n", r"r\.csv: columns \['A'\]: expected each column"),
        (b"date,A\n2001-01-31,0.01,7\n", r"r\.csv: cannot read as CSV: .*line 2"),
        (b"date,A\nsoon,0.01\n2001-02-28,0.01\n2001-03-31,0.01\n",
         r"r\.csv: row 2, column 'date': expected a date, got 'soon'"),
        (b"date,A\n-1.5,0.01\n2001-02-28,0.01\n2001-03-31,0.01\n",  # once parsed as year -1
         r"r\.csv: row 2, column 'date': expected a date, got '-1.5'"),
        (b"date,A\n2001-01-31,1e400\n2001-02-28,0.01\n2001-03-31,0.01\n",
         r"r\.csv: row 2, column 'A': expected a finite number, got '1e400'"),
    ],
    ids=["empty", "utf-16", "repeated-header", "ragged", "bad-date", "year-minus-one", "overflow"],
)  # fmt: skip
def test_each_kind_of_damage_has_its_message(tmp_path, content, match):
    path = tmp_path / "r.csv"
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=match):
            import_returns(path, "r")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    rows = "\n".join(f"{d:%Y-%m-%d},0.01,0.02" for d in pd.date_range("2001-01-31", periods=48,
                                                                        freq="ME"))  # fmt: skip
    path = tmp_path / "bom.csv"
    path.write_bytes(("date,A,B\n" + rows + "\n").encode("utf-8-sig"))
    assert import_returns(path, "bom").panel.assets == ("A", "B")
