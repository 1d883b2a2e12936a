"""DuckDB persistence of factor panels and experiment runs.

One embedded DuckDB file holds everything later commands need: the panels loaded with
``e2e data load`` and every experiment run (its configuration, summary metrics, per-strategy
statistics, net return series and weights), so runs can be listed, compared and reported.

Every write is one transaction: if any statement fails, the file is left exactly as it was.
Reading a missing file, a file that is not a DuckDB database, or one whose tables have other
columns than this module's raises :class:`~e2e_portfolio.exceptions.StoreError` naming the file.
A DuckDB file that holds tables of another program is refused and left untouched, and a
missing folder is an error, never created. DuckDB lets one process write a file at a time:
a store that another process holds is retried with exponential backoff for up to
``lock_timeout`` seconds before it fails. :meth:`Store.check_writable` runs these checks
before an experiment computes anything. Opening a file never makes DuckDB fetch or load
code: its automatic extension install and load are off, and a file without DuckDB's header
(an SQLite database, a CSV) is refused before DuckDB sees it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from e2e_portfolio.data.panel import RETURN_COLUMN, FactorPanel
from e2e_portfolio.data.records import RunRecord, to_json
from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.data.store_schema import (
    TABLES,
    check_schema,
    has_column,
)
from e2e_portfolio.exceptions import DataError, PanelExistsError, StoreError

DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-12 of every DuckDB database file."""
NO_EXTENSIONS: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
"""Connection settings: a file opened never makes DuckDB download or load an extension."""


class Store:
    """A DuckDB file of panels and runs.

    Parameters
    ----------
    path : path-like
        The DuckDB file. Writes create it (its folder must exist); reads require it to exist.
    lock_timeout : float
        Seconds to keep retrying while another process holds the file.
    """

    def __init__(self, path: str | Path, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def check_writable(self) -> None:
        """Raise :class:`StoreError` now if a run could not be saved here later.

        The folder must exist and be writable; an existing file must be a DuckDB database
        with no tables but this module's (it is opened for writing, waiting for other
        processes as any write would, and its tables are created if it has none).
        """
        folder = self.path.parent
        if not folder.is_dir():
            raise StoreError(f"{self.path}: the folder {folder} does not exist; create it first")
        if not self.path.exists():
            if not os.access(folder, os.W_OK):
                raise StoreError(f"{self.path}: the folder {folder} is not writable")
            return
        if not os.access(self.path, os.W_OK):
            raise StoreError(f"{self.path}: the file is not writable")
        with self._connect(write=True):
            pass

    # ----------------------------------------------------------------- connections
    @contextmanager
    def _connect(self, write: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        if not write and not self.path.exists():
            raise StoreError(f"{self.path}: no such store; load data or run an experiment first")
        if write and not self.path.parent.is_dir():
            raise StoreError(
                f"{self.path}: the folder {self.path.parent} does not exist; create it first"
            )
        con = self._open(write)
        try:
            check_schema(con, self.path, create=write)
            yield con
        finally:
            con.close()

    def _open(self, write: bool) -> duckdb.DuckDBPyConnection:
        """Connect, retrying with exponential backoff while another process holds the file."""
        self._check_header()
        deadline, wait = time.monotonic() + self.lock_timeout, 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=not write, config=NO_EXTENSIONS)
            except duckdb.Error as exc:
                locked = "lock" in str(exc).lower()
                if locked and time.monotonic() + wait < deadline:
                    time.sleep(wait)
                    wait = min(2 * wait, 2.0)
                    continue
                if locked:
                    raise StoreError(
                        f"{self.path}: another process held the store for more than "
                        f"{self.lock_timeout:g} s: {exc}"
                    ) from exc
                raise StoreError(f"{self.path}: cannot open as a DuckDB database: {exc}") from exc

    def _check_header(self) -> None:
        """Refuse an existing, non-empty file that does not start as a DuckDB database does."""
        try:
            with self.path.open("rb") as handle:
                head = handle.read(16)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the file: {exc}") from exc
        if head and head[8:12] != DUCKDB_MAGIC:
            kind = " (an SQLite database)" if head.startswith(b"SQLite format 3") else ""
            raise StoreError(f"{self.path}: not a DuckDB store{kind}; expected a DuckDB file "
                             "written by e2e, or a new path")  # fmt: skip

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect(write=True) as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    # ---------------------------------------------------------------------- panels
    def write_panel(self, panel: FactorPanel, replace: bool = False) -> None:
        """Store ``panel`` under its name; ``replace=True`` overwrites a stored one."""
        frame = panel.to_frame()
        long = frame.rename_axis(columns="variable").stack().rename("value").reset_index()
        long.insert(0, "name", panel.name)
        long = long[list(TABLES["panel_values"])]
        with self._transaction() as con:
            exists = con.execute("SELECT 1 FROM panels WHERE name = ?", [panel.name]).fetchone()
            if exists and not replace:
                raise PanelExistsError(self.path, panel.name)
            con.execute("DELETE FROM panel_values WHERE name = ?", [panel.name])
            con.execute("DELETE FROM panels WHERE name = ?", [panel.name])
            con.execute(
                "INSERT INTO panels VALUES (?, ?, ?, ?, ?, ?)",
                [
                    panel.name,
                    panel.description,
                    _now(),
                    list(panel.assets),
                    list(panel.features),
                    None if panel.sectors is None else list(panel.sectors),
                ],
            )
            con.register("new_values", long)
            con.execute("INSERT INTO panel_values SELECT * FROM new_values")
            con.unregister("new_values")

    def read_panel(self, name: str) -> FactorPanel:
        """The panel stored under ``name``."""
        with self._connect(write=False) as con:
            sectors = "sectors" if has_column(con, "panels", "sectors") else "NULL"
            row = con.execute(
                f"SELECT description, assets, features, {sectors} FROM panels WHERE name = ?",
                [name],
            ).fetchone()
            if row is None:
                raise DataError(
                    f"name: no panel {name!r} in {self.path}; stored: {self._panel_names(con)}"
                )
            long = con.execute(
                "SELECT date, asset, variable, value FROM panel_values WHERE name = ?", [name]
            ).df()
        description, assets, features, sector_labels = row
        wide = long.pivot(index=["date", "asset"], columns="variable", values="value")
        dates = pd.DatetimeIndex(wide.index.get_level_values("date").unique()).sort_values()
        full = pd.MultiIndex.from_product([dates, assets], names=["date", "asset"])
        wide = wide.reindex(index=full, columns=[*features, RETURN_COLUMN])
        wide.columns.name = None
        return FactorPanel.from_frame(name, wide, description=description,
                                      sectors=sector_labels)  # fmt: skip

    def list_panels(self) -> pd.DataFrame:
        """One row per stored panel: name, description, dates, assets, features, created_at."""
        with self._connect(write=False) as con:
            return con.execute(
                "SELECT p.name, p.description, min(v.date) AS first_date, max(v.date) AS last_date,"
                " len(p.assets) AS n_assets, len(p.features) AS n_features, p.created_at"
                " FROM panels p LEFT JOIN panel_values v USING (name)"
                " GROUP BY ALL ORDER BY p.name"
            ).df()

    def delete_panel(self, name: str) -> None:
        """Remove the panel ``name``; unknown names raise :class:`DataError`."""
        with self._transaction() as con:
            if not con.execute("SELECT 1 FROM panels WHERE name = ?", [name]).fetchone():
                raise DataError(f"name: no panel {name!r} in {self.path}")
            con.execute("DELETE FROM panel_values WHERE name = ?", [name])
            con.execute("DELETE FROM panels WHERE name = ?", [name])

    def panel_names(self) -> list[str]:
        """Names of the stored panels, sorted (empty when the file does not exist)."""
        if not self.path.exists():
            return []
        with self._connect(write=False) as con:
            return self._panel_names(con)

    def has_panel(self, name: str) -> bool:
        """Whether a panel ``name`` is stored (``False`` when the file does not exist)."""
        if not self.path.exists():
            return False
        with self._connect(write=False) as con:
            return bool(con.execute("SELECT 1 FROM panels WHERE name = ?", [name]).fetchone())

    @staticmethod
    def _panel_names(con: duckdb.DuckDBPyConnection) -> list[str]:
        return [r[0] for r in con.execute("SELECT name FROM panels ORDER BY name").fetchall()]

    # ------------------------------------------------------------------------ runs
    def save_run(self, run: RunRecord) -> str:
        """Store ``run`` and return its new id (``<kind>-<utc time>-<6 hex>``)."""
        created = _now()
        run_id = f"{run.kind}-{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        config, metrics = to_json("config", run.config), to_json("metrics", run.metrics)
        stats = pd.DataFrame(
            [{"run_id": run_id, "strategy": s, **v.model_dump()} for s, v in run.stats.items()],
            columns=list(TABLES["run_stats"]),
        )
        series = _with_run_id(run.series, run_id, "run_series")
        weights = _with_run_id(run.weights, run_id, "run_weights")
        with self._transaction() as con:
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                [run_id, run.kind, created, config, metrics],
            )
            for table, frame in (
                ("run_stats", stats),
                ("run_series", series),
                ("run_weights", weights),
            ):
                if len(frame):
                    con.register("new_rows", frame)
                    con.execute(f"INSERT INTO {table} SELECT * FROM new_rows")
                    con.unregister("new_rows")
        return run_id

    def load_run(self, run_id: str) -> RunRecord:
        """The run stored under ``run_id``."""
        with self._connect(write=False) as con:
            row = con.execute(
                "SELECT kind, created_at, config, metrics FROM runs WHERE run_id = ?", [run_id]
            ).fetchone()
            if row is None:
                raise DataError(f"run_id: no run {run_id!r} in {self.path}")
            tables = {
                t: con.execute(
                    f"SELECT * EXCLUDE (run_id) FROM {t} WHERE run_id = ? ORDER BY ALL", [run_id]
                ).df()
                for t in ("run_stats", "run_series", "run_weights")
            }
        kind, created_at, config, metrics = row
        stats = {
            r.pop("strategy"): StrategyStats(**r)
            for r in tables["run_stats"].to_dict(orient="records")
        }
        return RunRecord(
            kind=kind,
            config=json.loads(config),
            metrics=json.loads(metrics),
            stats=stats,
            series=tables["run_series"],
            weights=tables["run_weights"],
            run_id=run_id,
            created_at=created_at,
        )

    def list_runs(self, kind: str | None = None) -> pd.DataFrame:
        """Stored runs, newest first: run_id, kind, created_at, config, metrics (JSON text)."""
        with self._connect(write=False) as con:
            return con.execute(
                "SELECT run_id, kind, created_at, config, metrics FROM runs"
                " WHERE ? IS NULL OR kind = ? ORDER BY created_at DESC, run_id DESC",
                [kind, kind],
            ).df()

    def headline_stats(self, run_ids: list[str]) -> dict[str, dict[str, float]]:
        """Out-of-sample Sharpe per strategy of the given runs (those with statistics)."""
        if not run_ids:
            return {}
        with self._connect(write=False) as con:
            rows = con.execute(
                "SELECT run_id, strategy, sharpe FROM run_stats WHERE list_contains(?, run_id)",
                [run_ids],
            ).fetchall()
        out: dict[str, dict[str, float]] = {}
        for run_id, strategy, sharpe in rows:
            out.setdefault(run_id, {})[strategy] = float(sharpe)
        return out

    def job_keys(self) -> set[str]:
        """``job_key`` of every stored sweep job (see :mod:`e2e_portfolio.experiments.sweep`)."""
        return set(self.job_metrics())

    def job_metrics(self, keys: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """Metrics of the stored sweep jobs, by ``job_key`` (only ``keys`` if given)."""
        with self._connect(write=False) as con:
            rows = con.execute(
                "SELECT config->>'job_key', metrics FROM runs WHERE config->>'job_key' IS NOT NULL"
            ).fetchall()
        return {k: json.loads(m) for k, m in rows if keys is None or k in keys}

    def latest_run_id(self, kind: str | None = None) -> str:
        """Id of the newest run (of ``kind`` if given)."""
        runs = self.list_runs(kind)
        if runs.empty:
            raise DataError(f"kind: no {kind or ''} runs stored in {self.path}".replace("  ", " "))
        return str(runs["run_id"].iloc[0])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # microseconds: "latest" is never a tie


def _with_run_id(frame: pd.DataFrame, run_id: str, table: str) -> pd.DataFrame:
    columns = list(TABLES[table])
    if frame.empty:
        return pd.DataFrame(columns=columns)
    missing = set(columns[1:]) - set(frame.columns)
    if missing:
        raise DataError(f"{table}: expected columns {columns[1:]}, missing {sorted(missing)}")
    out = frame.assign(run_id=run_id)[columns]
    values = out.select_dtypes("number").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{table}: expected finite values, got NaN or inf")
    return out
