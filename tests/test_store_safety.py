"""Nothing is lost: the command line checks the store first, waits for other writers, and
writes a run to a file when the store cannot take it (real processes, real DuckDB locks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from e2e_portfolio.apps.cli import app
from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.exceptions import StoreError
from tests.data.test_store import _hold, foreign_store

runner = CliRunner()
E2E = [sys.executable, "-m", "e2e_portfolio"]
SMALL_SHRINK = ["shrink", "--seeds", "0-1", "--n-assets", "8", "--n-months", "50", "--window",
                "20", "--score-months", "12"]  # fmt: skip


def test_two_concurrent_processes_both_store_their_runs(tmp_path):
    db = str(tmp_path / "shared.duckdb")
    env = {**os.environ, "E2E_LOCK_TIMEOUT": "60"}
    runs = [subprocess.Popen([*E2E, "--db", db, *SMALL_SHRINK], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=180) for run in runs]
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "Stored run" in out
    assert len(Store(db).list_runs("shrink")) == 2


def test_a_foreign_store_is_refused_before_any_work(tmp_path):
    path = foreign_store(tmp_path / "theirs.duckdb")
    started = time.monotonic()
    result = runner.invoke(app, ["--db", str(path), "compare", "--seeds", "0-29"])
    assert result.exit_code == 1
    assert "holds tables of another program (customers)" in " ".join(result.output.split())
    assert time.monotonic() - started < 5  # refused up front, not after 30 seeds
    assert duckdb.connect(str(path)).execute("SHOW TABLES").fetchall() == [("customers",)]


def test_a_store_held_from_the_start_fails_before_any_work(tmp_path, monkeypatch):
    db = tmp_path / "busy.duckdb"
    Store(db).save_run(RunRecord(kind="first", config={}))
    monkeypatch.setenv("E2E_LOCK_TIMEOUT", "0.5")
    holder = _hold(db, 60)
    try:
        result = runner.invoke(app, ["--db", str(db), *SMALL_SHRINK])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert "another process held the store for more than 0.5 s" in " ".join(result.output.split())


def test_a_run_the_store_cannot_take_goes_to_a_file_and_imports_later(tmp_path, monkeypatch):
    """The store was fine when the run started and fails when it ends (here: a save that
    raises, as a lock held past the timeout or a full disk would)."""
    db = tmp_path / "store.duckdb"

    def broken(self, run):
        raise StoreError(f"{self.path}: disk full")

    with monkeypatch.context() as patched:
        patched.setattr(Store, "save_run", broken)
        result = runner.invoke(app, ["--db", str(db), *SMALL_SHRINK])
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert "could not save the run" in text and "disk full" in text and "runs import" in text
    files = list(tmp_path.glob("store.shrink-*.run.json"))
    assert len(files) == 1
    imported = runner.invoke(app, ["--db", str(db), "runs", "import", str(files[0])])
    assert imported.exit_code == 0, imported.output
    run = Store(db).load_run(Store(db).latest_run_id("shrink"))
    assert run.config["seeds"] == [0, 1] and len(run.series) > 0


@pytest.mark.parametrize("command", [["runs"], ["data", "list"]])
def test_garbage_files_give_one_line(tmp_path, command):
    path = tmp_path / "garbage.duckdb"
    path.write_text("not a database")
    result = runner.invoke(app, ["--db", str(path), *command])
    assert result.exit_code == 1
    assert "garbage.duckdb: not a DuckDB store" in " ".join(result.output.split())
    assert "Traceback" not in result.output and result.output.count("error:") == 1
    assert Path(path).read_text() == "not a database"
