from __future__ import annotations

import dataclasses
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.records import read_run_file, write_run_file
from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.data.store_schema import ADDED_COLUMNS, TABLES
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
    with pytest.raises(StoreError, match=r"corrupt\.duckdb: not a DuckDB store"):
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


# ------------------------------------------------------------------ safety of the store
def foreign_store(path):
    """A DuckDB file of another program (one table, ``customers``); returns its path."""
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    return path


def test_foreign_duckdb_files_are_refused_and_left_untouched(tmp_path):
    path = foreign_store(tmp_path / "theirs.duckdb")
    before = path.read_bytes()
    store = Store(path)
    with pytest.raises(StoreError, match=r"holds tables of another program \(customers\)"):
        store.check_writable()
    with pytest.raises(StoreError, match="holds tables of another program"):
        store.save_run(RunRecord(kind="x", config={}))
    assert path.read_bytes() == before


def test_a_missing_folder_is_an_error_not_created(tmp_path):
    store = Store(tmp_path / "missing" / "store.duckdb")
    with pytest.raises(StoreError, match=r"the folder .*missing does not exist; create it first"):
        store.check_writable()
    with pytest.raises(StoreError, match="does not exist"):
        store.save_run(RunRecord(kind="x", config={}))
    assert not (tmp_path / "missing").exists()


HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path, seconds: float) -> subprocess.Popen:
    """Another process that holds the store for writing for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_another_process_then_writes(tmp_path):
    store = Store(tmp_path / "store.duckdb", lock_timeout=20)
    store.check_writable()
    store.save_run(RunRecord(kind="first", config={}))  # creates the tables
    holder = _hold(store.path, 1.5)
    run_id = store.save_run(RunRecord(kind="second", config={}))
    holder.wait(timeout=10)
    assert run_id in set(store.list_runs()["run_id"])


def test_a_store_held_too_long_fails_with_a_clear_message(tmp_path):
    store = Store(tmp_path / "store.duckdb", lock_timeout=0.5)
    store.save_run(RunRecord(kind="first", config={}))
    holder = _hold(store.path, 5)
    try:
        with pytest.raises(StoreError, match=r"another process held the store for more than 0.5"):
            store.save_run(RunRecord(kind="second", config={}))
    finally:
        holder.kill()
        holder.wait()


def test_run_files_round_trip(tmp_path, store):
    dates = pd.date_range("2001-01-31", periods=3, freq="ME")
    record = RunRecord(
        kind="shrink", config={"seeds": [1, 2]}, metrics={"p": float("nan"), "edge": 0.5},
        stats={"a": StrategyStats(**{f: 1.0 for f in StrategyStats.model_fields} | {"n_periods": 3})},
        series=pd.DataFrame({"strategy": "a", "date": dates, "net_return": [0.1, 0.0, -0.1],
                             "turnover": [1.0, 0.2, 0.1]}),
    )  # fmt: skip
    path = write_run_file(record, tmp_path / "pending.run.json")
    back = read_run_file(path)
    assert back.metrics == {"p": None, "edge": 0.5} and back.config == record.config
    pd.testing.assert_frame_equal(back.series, record.series, check_dtype=False)
    run_id = store.save_run(back)
    assert store.load_run(run_id).stats == record.stats
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="expected a run file written by e2e-portfolio"):
        read_run_file(tmp_path / "other.json")


def test_sectors_round_trip_and_an_older_store_gains_the_column(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # the schema before sectors (no "sectors" column)
    for table, columns in TABLES.items():
        kept = {c: t for c, t in columns.items() if c not in ADDED_COLUMNS.get(table, ())}
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in kept.items())})")
    con.execute("INSERT INTO store_meta VALUES ('schema_version', '1')")
    con.close()
    store = Store(path)
    assert store.panel_names() == []  # an older store reads as it is
    panel = simulate_universe(n_assets=6, n_months=5, seed=0)
    assert panel.sectors is not None and len(panel.sectors) == 6
    store.write_panel(panel)  # the first write adds the column
    back = store.read_panel(panel.name)
    assert back.sectors == panel.sectors and back.equals(panel)
    plain = FactorPanel(name="plain", dates=panel.dates, assets=panel.assets,
                        features=panel.features, exposures=panel.exposures,
                        returns=panel.returns)  # fmt: skip
    store.write_panel(plain)
    assert store.read_panel("plain").sectors is None


def test_bad_sectors_are_named():
    panel = simulate_universe(n_assets=4, n_months=5, seed=0)
    with pytest.raises(DataError, match=r"sectors: expected one label per asset \(4\), got 3"):
        dataclasses.replace(panel, sectors=("a", "b", "c"))
    with pytest.raises(DataError, match=r"sectors: expected non-empty labels"):
        dataclasses.replace(panel, sectors=("a", "b", " ", "c"))


@pytest.mark.parametrize("kind", ["sqlite", "csv"])
def test_files_of_other_formats_are_refused_without_reaching_for_extensions(tmp_path, kind):
    """An SQLite file once made DuckDB download its sqlite_scanner extension: now it is refused
    by its header before DuckDB sees it, and left byte for byte as it was."""
    import sqlite3

    path = tmp_path / f"theirs.{kind}"
    if kind == "sqlite":
        with sqlite3.connect(path) as con:
            con.execute("create table t (x integer)")
    else:
        path.write_text("date,asset,return\n2020-01-31,A,0.01\n")
    before = path.read_bytes()
    expected = r"not a DuckDB store \(an SQLite database\)" if kind == "sqlite" else (
        r"not a DuckDB store; expected a DuckDB file")  # fmt: skip
    with pytest.raises(StoreError, match=rf"theirs\.{kind}: {expected}"):
        Store(path).list_runs()
    with pytest.raises(StoreError, match=expected):
        Store(path).check_writable()
    assert path.read_bytes() == before


def test_the_store_turns_off_duckdb_extension_autoloading(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    with store._connect(write=True) as con:
        settings = dict(con.execute(
            "select name, value from duckdb_settings() where name like 'auto%_known_extensions'"
        ).fetchall())  # fmt: skip
    assert settings == {"autoinstall_known_extensions": "false",
                        "autoload_known_extensions": "false"}  # fmt: skip
