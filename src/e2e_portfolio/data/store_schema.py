"""The store's tables: their columns, the columns added since, and the check of a file's.

A file is accepted when its tables are exactly these (a new file gets them created). A table
that lacks only columns of :data:`ADDED_COLUMNS` is an older store: a write adds them, a read
takes them as NULL.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.exceptions import StoreError

SCHEMA_VERSION = "1"
STATS_FIELDS = tuple(StrategyStats.model_fields)

TABLES: dict[str, dict[str, str]] = {
    "store_meta": {"key": "VARCHAR PRIMARY KEY", "value": "VARCHAR"},
    "panels": {
        "name": "VARCHAR PRIMARY KEY",
        "description": "VARCHAR",
        "created_at": "TIMESTAMP",
        "assets": "VARCHAR[]",
        "features": "VARCHAR[]",
        "sectors": "VARCHAR[]",
    },
    "panel_values": {
        "name": "VARCHAR",
        "date": "TIMESTAMP",
        "asset": "VARCHAR",
        "variable": "VARCHAR",
        "value": "DOUBLE",
    },
    "runs": {
        "run_id": "VARCHAR PRIMARY KEY",
        "kind": "VARCHAR",
        "created_at": "TIMESTAMP",
        "config": "JSON",
        "metrics": "JSON",
    },
    "run_stats": {
        "run_id": "VARCHAR",
        "strategy": "VARCHAR",
        **{f: ("BIGINT" if f == "n_periods" else "DOUBLE") for f in STATS_FIELDS},
    },
    "run_series": {
        "run_id": "VARCHAR",
        "strategy": "VARCHAR",
        "date": "TIMESTAMP",
        "net_return": "DOUBLE",
        "turnover": "DOUBLE",
    },
    "run_weights": {
        "run_id": "VARCHAR",
        "strategy": "VARCHAR",
        "date": "TIMESTAMP",
        "asset": "VARCHAR",
        "weight": "DOUBLE",
    },
}


ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"panels": ("sectors",)}
"""Columns added to a table after stores were first written: an older store gains them on
its next write and reads them as NULL until then."""


def has_column(con: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    """Whether the store's ``table`` has ``column`` (an older store may lack added ones)."""
    found = con.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'main' AND "
        "table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    return found is not None


def check_schema(con: duckdb.DuckDBPyConnection, path: Path, create: bool) -> None:
    """Raise :class:`StoreError` naming ``path`` unless its tables are the store's.

    With ``create`` (a write), missing tables are created and an older store gains the
    columns added since.
    """
    existing: dict[str, list[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall():
        existing.setdefault(table, []).append(column)
    foreign = sorted(set(existing) - set(TABLES))
    if foreign:
        raise StoreError(
            f"{path}: holds tables of another program ({', '.join(foreign)}); left "
            "untouched: choose another store file"
        )
    missing = [t for t in TABLES if t not in existing]
    if missing and not create:
        raise StoreError(
            f"{path}: not an e2e-portfolio store (missing tables {missing}); "
            "point DB_PATH or --db at a store written by e2e"
        )
    for table, columns in TABLES.items():
        if table not in existing:
            if create:
                ddl = ", ".join(f'"{c}" {t}' for c, t in columns.items())
                con.execute(f"CREATE TABLE {table} ({ddl})")
            continue
        added = ADDED_COLUMNS.get(table, ())
        if added and existing[table] == [c for c in columns if c not in added]:
            # a store written before these columns: a write adds them (NULL for the rows
            # there), a read takes them as NULL
            if create:
                for column in added:
                    con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {columns[column]}')
            continue
        if existing[table] != list(columns):
            raise StoreError(
                f"{path}: wrong schema for table {table!r}: expected columns "
                f"{list(columns)}, got {existing[table]}"
            )
    if create and "store_meta" not in existing:
        con.execute("INSERT INTO store_meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
