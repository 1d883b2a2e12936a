from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.data.synthetic import simulate_universe
from e2e_portfolio.exceptions import DataError, StoreError


def test_panel_round_trip_is_exact(store, small_panel):
    store.write_panel(small_panel)
    back = store.read_panel("small")
    assert back.equals(small_panel)
    assert back.exposures.dtype == np.float64 and back.returns.dtype == np.float64
    assert back.dates.dtype == small_panel.dates.dtype
    assert back.description == small_panel.description


def test_list_and_delete(store, small_panel):
    other = simulate_universe(n_assets=5, n_months=10, seed=1, name="other")
    store.write_panel(small_panel)
    store.write_panel(other)
    listing = store.list_panels()
    assert listing["name"].tolist() == ["other", "small"]
    assert listing.set_index("name").loc["small", "n_assets"] == 12
    store.delete_panel("other")
    assert store.list_panels()["name"].tolist() == ["small"]
    assert store.has_panel("small") and not store.has_panel("other")
    with pytest.raises(DataError, match=r"name: no panel 'other'"):
        store.delete_panel("other")


def test_existing_panel_needs_replace(store, small_panel):
    store.write_panel(small_panel)
    changed = simulate_universe(n_assets=12, n_months=36, seed=7, name="small")
    with pytest.raises(StoreError, match=r"panel 'small' is already stored; pass replace=True"):
        store.write_panel(changed)
    assert store.read_panel("small").equals(small_panel)
    store.write_panel(changed, replace=True)
    assert store.read_panel("small").equals(changed)


def test_failed_write_loses_nothing(store, small_panel, monkeypatch):
    """A write that fails half-way (after deleting the old rows) is rolled back."""
    store.write_panel(small_panel)
    replacement = simulate_universe(n_assets=12, n_months=36, seed=7, name="small")

    original_register = duckdb.DuckDBPyConnection.register

    def failing_register(self, view_name, python_object):
        raise RuntimeError("disk full")

    monkeypatch.setattr(duckdb.DuckDBPyConnection, "register", failing_register)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_panel(replacement, replace=True)
    monkeypatch.setattr(duckdb.DuckDBPyConnection, "register", original_register)
    assert store.read_panel("small").equals(small_panel)


def test_read_unknown_panel(store, small_panel):
    store.write_panel(small_panel)
    with pytest.raises(DataError, match=r"name: no panel 'nope' .* stored: \['small'\]"):
        store.read_panel("nope")


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "absent.duckdb"
    with pytest.raises(StoreError, match=r"absent\.duckdb: no such store"):
        Store(path).read_panel("x")
    assert not path.exists()


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "corrupt.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"corrupt\.duckdb: cannot open as a DuckDB database"):
        Store(path).list_panels()


def test_wrong_schema_is_named(tmp_path):
    path = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE panels (name VARCHAR, payload BLOB)")
    con.close()
    with pytest.raises(StoreError, match=r"foreign\.duckdb: wrong schema for table 'panels'"):
        Store(path).write_panel(simulate_universe(n_assets=3, n_months=4, seed=0))


def test_foreign_database_is_not_a_store(tmp_path):
    path = tmp_path / "other.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(StoreError, match=r"other\.duckdb: not an e2e-portfolio store"):
        Store(path).list_runs()


def _run_record() -> RunRecord:
    dates = pd.date_range("2010-01-31", periods=3, freq="ME")
    stats = StrategyStats(
        annualised_return=0.08, annualised_volatility=0.15, sharpe=0.53,
        max_drawdown=0.2, turnover=0.1, n_periods=3,
    )  # fmt: skip
    series = pd.DataFrame(
        {"strategy": "ew", "date": dates, "net_return": [0.01, -0.02, 0.03], "turnover": 0.1}
    )
    weights = pd.DataFrame(
        {"strategy": "ew", "date": np.repeat(dates, 2), "asset": ["a", "b"] * 3, "weight": 0.5}
    )
    return RunRecord(
        kind="compare",
        config={"gamma": 8.0, "seeds": range(3), "data": "synthetic"},
        metrics={"edge": np.float64(0.25)},
        stats={"ew": stats},
        series=series,
        weights=weights,
    )


def test_run_round_trip(store):
    run_id = store.save_run(_run_record())
    assert run_id.startswith("compare-")
    back = store.load_run(run_id)
    assert back.config == {"gamma": 8.0, "seeds": [0, 1, 2], "data": "synthetic"}
    assert back.metrics == {"edge": 0.25}
    assert back.stats["ew"].sharpe == 0.53
    assert back.series["net_return"].tolist() == [0.01, -0.02, 0.03]
    assert back.weights["weight"].sum() == pytest.approx(3.0)
    assert store.latest_run_id() == run_id
    assert store.list_runs(kind="shrink").empty


def test_run_with_nan_is_rejected_and_nothing_stored(store):
    record = _run_record()
    kept = store.save_run(record)
    bad = record.series.assign(net_return=[0.01, np.nan, 0.0])
    with pytest.raises(DataError, match=r"run_series: expected finite values"):
        store.save_run(RunRecord(kind="compare", config={}, series=bad))
    with pytest.raises(DataError, match=r"config: expected JSON-serialisable"):
        store.save_run(RunRecord(kind="compare", config={"x": float("nan")}))
    assert store.list_runs()["run_id"].tolist() == [kept]
