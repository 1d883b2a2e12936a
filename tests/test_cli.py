from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from e2e_portfolio.apps.cli import app
from e2e_portfolio.backtest.arm_specs import ARMS, GAMMA_GRID
from e2e_portfolio.data.store import Store

runner = CliRunner()
SMALL_SHRINK_ARGS = ("shrink", "--seeds", "0-1", "--n-assets", "8", "--n-months", "50",
                     "--window", "20", "--score-months", "12")  # fmt: skip


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "data" in result.output


def test_version_from_the_command_and_the_module():
    import e2e_portfolio

    assert invoke("--version").output == f"e2e-portfolio {e2e_portfolio.__version__}\n"
    module = subprocess.run([sys.executable, "-m", "e2e_portfolio", "--version"],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert module.stdout.strip() == f"e2e-portfolio {e2e_portfolio.__version__}"


def _command_paths(group, prefix=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))
        yield (*prefix, name)


def test_help_wraps_to_an_80_column_terminal():
    """Descriptions are reflowed by rich, not hard-wrapped: at 80 columns no line of a
    paragraph but its last is a stub (rich breaks lines within ~20 characters of the edge)."""
    import typer.main

    paths = list(_command_paths(typer.main.get_command(app)))
    assert len(paths) > 10
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"},
                               catch_exceptions=False)  # fmt: skip
        assert result.exit_code == 0, path
        description = result.output.split("╭")[0].splitlines()
        for line, following in itertools.pairwise(description):
            if line.strip() and following.strip() and not line.lstrip().startswith("Usage:"):
                assert len(line.rstrip()) >= 60, (path, line)
    loaded = runner.invoke(app, ["data", "load", "--help"], env={"COLUMNS": "80"})
    words = " ".join(loaded.output.replace("│", " ").split())
    assert "Store under this name (default: the dataset's)." in words


def test_load_show_list_delete(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, "data", "load", "synthetic", "--n-assets", "6", "--n-months", "30")
    assert result.exit_code == 0, result.output
    assert "6 assets x 30 dates" in result.output
    assert Store(db).read_panel("synthetic").n_assets == 6

    shown = invoke("--db", db, "data", "show", "synthetic")
    assert shown.exit_code == 0
    assert "equal weight" in shown.output and "A0" in shown.output

    listed = invoke("--db", db, "data", "list")
    assert "stored" in listed.output and "french" in listed.output

    assert invoke("--db", db, "data", "delete", "synthetic").exit_code == 0
    assert not Store(db).has_panel("synthetic")


def test_load_french_then_show(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    assert invoke("--db", db, "data", "load", "french").exit_code == 0
    shown = invoke("--db", db, "data", "show", "french")
    assert shown.exit_code == 0 and "NoDur" in shown.output and "1951-12" in shown.output


def test_default_db_from_environment(tmp_path, monkeypatch):
    db = tmp_path / "from_env.duckdb"
    monkeypatch.setenv("DB_PATH", str(db))
    assert invoke("data", "load", "synthetic", "--n-months", "12").exit_code == 0
    assert Store(db).has_panel("synthetic")


def test_reload_needs_replace(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    invoke("--db", db, "data", "load", "synthetic", "--n-months", "12")
    again = invoke("--db", db, "data", "load", "synthetic", "--n-months", "12")
    assert again.exit_code == 1 and "--replace" in again.output
    assert invoke("--db", db, "data", "load", "synthetic", "--replace").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "load", "bloomberg"], "DATASET: expected one of"),
        (["data", "load", "french", "--universe", "stocks"], "universe: expected one of"),
        (["data", "load", "yfinance"], "--tickers: expected comma-separated symbols"),
        (["data", "show", "absent"], "no such store"),
    ],
    ids=["unknown-dataset", "unknown-universe", "yfinance-without-tickers", "missing-store"],
)
def test_bad_input_gives_clear_error(tmp_path, args, message):
    result = invoke("--db", str(tmp_path / "x.duckdb"), *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_option_range_is_checked(tmp_path):
    result = invoke("--db", str(tmp_path / "x.duckdb"), "data", "load", "synthetic",
                    "--n-assets", "1")  # fmt: skip
    assert result.exit_code == 2
    assert "n-assets" in result.output


def test_shrink_synthetic_prints_verdict_and_stores_run(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, "shrink", "--seeds", "0-2", "--n-assets", "10", "--n-months", "80",
                    "--window", "24", "--score-months", "12")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "N/window = 0.42" in text
    assert (
        "decision_aware" in text
        and "ledoit_wolf" in text
        and text.index("Verdict") < text.index("Out-of-sample")
    )
    assert "Stored run shrink-" in text
    store = Store(db)
    run = store.load_run(store.latest_run_id("shrink"))
    assert run.config["seeds"] == [0, 1, 2] and run.config["window"] == 24
    assert len(run.metrics["rows"]) == 3
    assert {"plug_in/seed=0", "ledoit_wolf/seed=2", "decision_aware/seed=1"} <= set(run.stats)
    assert set(run.series["strategy"]) == set(run.stats)


def test_shrink_on_real_history(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke(
        "--db", db, "shrink", "--data", "french", "--window", "24", "--score-months", "12"
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Jobson-Korkie-Memmel" in text and "french" in text


def test_runs_refuses_an_unknown_kind_and_options_name_themselves(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    listed = runner.invoke(app, ["--db", db, "runs", "--kind", "nosuch"])
    assert listed.exit_code == 2
    assert "--kind: expected one of shrink, compare, attribution, sweep-shrink, sweep-compare, " \
        "got 'nosuch'" in listed.output  # fmt: skip
    grid = invoke("--db", db, "compare", "--gamma-grid", "a,b")
    assert grid.exit_code == 1
    assert grid.output.startswith(
        "error: --gamma-grid: expected comma-separated numbers, got 'a,b'"
    )
    assert grid.output.count("\n") == 1  # one line, whatever the terminal's width


def test_one_seeds_syntax_and_the_deprecated_forms_say_what_to_write(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    small = ("--n-assets", "8", "--n-months", "50", "--window", "20", "--score-months", "12")
    new = invoke("--db", db, "shrink", "--seeds", "3,5", *small)
    assert new.exit_code == 0, new.output
    old = runner.invoke(app, ["--db", db, "shrink", "--n-seeds", "2", "--first-seed", "3", *small])
    assert old.exit_code == 0, old.output
    assert "deprecated: --n-seeds/--first-seed: write --seeds 3-4" in old.output
    stored = [json.loads(c)["seeds"] for c in Store(db).list_runs()["config"]]
    assert sorted(stored) == [[3, 4], [3, 5]]
    both = invoke("--db", db, "shrink", "--seeds", "1", "--n-seeds", "2", *small)
    assert both.exit_code == 1 and "a deprecated form of --seeds" in both.output
    bad = invoke("--db", db, "sweep", "--seeds", "0-x")
    assert (
        bad.exit_code == 1 and "--seeds: expected e.g. 0-29, 1,4,7 or 42, got '0-x'" in bad.output
    )
    count = runner.invoke(app, ["--db", db, "sweep", "--seeds", "2", "--n-assets", "8",
                                "--n-months", "50", "--window", "20"])  # fmt: skip
    assert count.exit_code == 0, count.output
    assert "deprecated: --seeds 2 (a count): write --seeds 0-1" in " ".join(count.output.split())
    for command in ("compare", "attribute", "build-dashboard"):
        text = " ".join(invoke(command, "--help").output.replace("│", " ").split())
        assert "a range 0-9, a list 1,4,7" in text and "--n-seeds" not in text


def test_shrink_on_a_constrained_book(tmp_path):
    """The book options make every method hold the QP: said in the title, kept in the run."""
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, *SMALL_SHRINK_ARGS, "--w-min", "-0.05", "--leverage", "1.6",
                    "--sector-max", "1.2")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "QP book (gamma 8, w_min -0.05, leverage 1.6, sector_max 1.2)" in text
    run = Store(db).load_run(Store(db).latest_run_id("shrink"))
    assert run.config["book"] == {"gamma": 8.0, "w_max": None, "kappa": 0.0, "w_min": -0.05,
                                  "budget": 1.0, "leverage": 1.6, "sector_max": 1.2}  # fmt: skip
    weights = run.series[run.series["strategy"] == "decision_aware/seed=0"]
    assert not weights.empty
    plain = invoke("--db", db, *SMALL_SHRINK_ARGS)
    assert "unit gross leverage" in " ".join(plain.output.split())
    assert "book" not in Store(db).load_run(Store(db).latest_run_id("shrink")).config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learn-theta", "--w-min", "0"], "learn_theta: expected the unit-gross book"),
        (["--budget", "0"], "budget: expected > 0 without shorts (w_min >= 0), got 0.0"),
        (["--data", "french", "--window", "24", "--sector-max", "0.3"],
         "sector_max: needs a panel with sectors"),
        (["--window", "11"], "window: expected at least 12 months, got 11"),
        (["--target", "zero"], "target: expected 'identity' or 'diagonal'"),
        (["--data", "nowhere"], "data: expected synthetic, french, sp500 or a stored panel"),
    ],
    ids=["learn-theta-book", "budget-long-only", "sectors-french", "window-too-short",
         "unknown-target", "unknown-data"],
)  # fmt: skip
def test_shrink_bad_options(tmp_path, args, message):
    result = invoke("--db", str(tmp_path / "x.duckdb"), "shrink", "--seeds", "0", *args)
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_compare_prints_table_and_stores_run(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, "compare", "--n-assets", "8", "--n-months", "48", "--window", "24",
                    "--epochs", "2", "--w-max", "0.3", "--refit-every", "24")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for name in (*ARMS, "Sharpe", "max drawdown", "gamma chosen on the validation months"):
        assert name in text
    store = Store(db)
    run = store.load_run(store.latest_run_id("compare"))
    assert run.config["w_max"] == 0.3 and run.config["tc"] == 0.005
    assert set(run.stats) == set(ARMS)
    assert len(run.weights) == len(ARMS) * 23 * 8
    tuning = run.metrics["tuning"]
    assert set(tuning) == {"plug_in", "decoupled", "decoupled_nll", "e2e", "e2e_risk",
                           "e2e_return"}  # fmt: skip
    assert all(refit["gamma"] in GAMMA_GRID for refits in tuning.values() for refit in refits)


def test_compare_poses_a_long_short_book_to_the_qp_arms(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, "compare", "--n-assets", "8", "--n-months", "48", "--window", "24",
                    "--epochs", "1", "--refit-every", "24", "--arms", "equal_weight,plug_in,e2e",
                    "--w-min", "-0.1", "--leverage", "1.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "w_min -0.1, leverage 1.5" in " ".join(result.output.split())
    store = Store(db)
    run = store.load_run(store.latest_run_id("compare"))
    assert run.config["w_min"] == -0.1 and run.config["leverage"] == 1.5
    weights = run.weights
    for arm in ("plug_in", "e2e"):
        book = weights[weights["strategy"] == arm].pivot(index="date", columns="asset",
                                                         values="weight")  # fmt: skip
        assert book.min().min() >= -0.1 - 1e-12 and book.abs().sum(axis=1).max() <= 1.5 + 1e-9
        assert abs(book.sum(axis=1) - 1).max() < 1e-9
    plug_in = weights[weights["strategy"] == "plug_in"]
    assert (plug_in["weight"] < -1e-6).any()  # the sample plug-in does short


def test_compare_over_seeds_writes_the_json_contract(tmp_path):
    db, path = str(tmp_path / "cli.duckdb"), tmp_path / "verdict.json"
    result = invoke("--db", db, "compare", "--seeds", "0-2", "--n-assets", "6", "--n-months",
                    "40", "--window", "20", "--epochs", "1", "--refit-every", "24", "--arms",
                    "equal_weight,min_variance,decoupled,e2e", "--json", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Paired verdicts" in text and "p Holm" in text and "break-even cost" in text
    document = json.loads(path.read_text())
    assert set(document) == {"arms", "verdict", "per_seed", "config", "break_even",
                             "gamma_edges"}  # fmt: skip
    assert document["arms"] == ["equal_weight", "min_variance", "decoupled", "e2e"]
    edges = document["gamma_edges"]
    assert set(edges) == {"decoupled", "e2e"} and edges["e2e"]["refits"] == 3  # one per seed
    assert edges["e2e"]["low"] + edges["e2e"]["high"] <= 3 and "end of its grid" in text
    pairs = [(v["arm"], v["versus"]) for v in document["verdict"]]
    assert pairs == [("equal_weight", "decoupled"), ("min_variance", "decoupled"),
                     ("e2e", "decoupled"), ("e2e", "min_variance")]  # fmt: skip
    for v in document["verdict"]:
        assert set(v) == {"arm", "versus", "mean", "ci_low", "ci_high", "win_rate", "p",
                          "p_holm", "n"}  # fmt: skip
        assert v["n"] == 3
    assert len(document["per_seed"]) == 3 * 4
    assert {"seed", "arm", "sharpe", "turnover", "gammas"} <= set(document["per_seed"][0])
    assert document["config"]["seeds"] == [0, 1, 2] and document["config"]["epochs"] == 1
    store = Store(db)
    run = store.load_run(store.latest_run_id("compare"))
    assert run.metrics["verdict"] == document["verdict"]
    assert set(run.series["strategy"]) == {f"{a}/seed={s}" for a in document["arms"]
                                           for s in range(3)}  # fmt: skip
    # the README's Findings tables are printed from stored runs like this one
    script = Path(__file__).resolve().parents[1] / "scripts" / "findings_tables.py"
    tables = subprocess.run([sys.executable, str(script), "--db", db], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    command = (
        "`e2e compare --seeds 0-2 --workers 2 --n-assets 6 --n-months 40 --window 20 "
        "--epochs 1 --refit-every 24 --arms equal_weight,min_variance,decoupled,e2e`"
    )
    assert command in tables and "| e2e - decoupled |" in tables


def test_compare_on_one_history_tests_the_history_itself(tmp_path):
    """A stored panel is one history: only network seeds vary; the output has the JKM and
    block-bootstrap tests, decades and the spread over network seeds."""
    db = str(tmp_path / "cli.duckdb")
    loaded = invoke("--db", db, "data", "load", "synthetic", "--as", "mine", "--n-assets", "6",
                    "--n-months", "150")  # fmt: skip
    assert loaded.exit_code == 0, loaded.output
    path = tmp_path / "history.json"
    result = invoke("--db", db, "compare", "--data", "mine", "--seeds", "0-1", "--window",
                    "24", "--epochs", "1", "--refit-every", "60", "--arms",
                    "equal_weight,decoupled,e2e", "--json", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "over 2 network seeds" in text and "block bootstrap" in text
    assert "2010s" in text or "2000s" in text
    history = Store(db).load_run(Store(db).latest_run_id("compare")).metrics["history"]
    assert [(t["arm"], t["versus"]) for t in history["tests"]] == [
        ("equal_weight", "decoupled"), ("e2e", "decoupled")]  # fmt: skip
    for t in history["tests"]:
        assert 0 < t["p_bootstrap"] <= 1 and t["p_bootstrap_holm"] >= t["p_bootstrap"]
        assert t["difference_min"] <= t["difference_max"]
    assert set(history["spread"]) == {"equal_weight", "decoupled", "e2e"}
    assert json.loads(path.read_text())["history"]["tests"] == history["tests"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "3-1"], "seeds: expected ranges low-high, got '3-1'"),
        (["--seeds", "a"], "--seeds: expected e.g. 0-29, 1,4,7 or 42, got 'a'"),
        (["--arms", "e2e,magic"], "arms: expected some of equal_weight"),
        (["--covariance", "sample"], "covariance: expected one of"),
        (["--gamma-grid", "4,-1"], "gamma_grid: expected positive risk aversions"),
        (["--json", "missing/x.json"], "--json: the folder missing does not exist"),
    ],
    ids=["seed-range", "seed-text", "arm", "covariance", "grid", "json-folder"],
)
def test_compare_bad_arm_options(tmp_path, args, message):
    result = invoke("--db", str(tmp_path / "x.duckdb"), "compare", "--n-assets", "6",
                    "--n-months", "40", "--window", "20", "--epochs", "1", *args)  # fmt: skip
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--tc", "-0.1"], "Invalid value for '--tc'", 2),
        (["--w-max", "0.01"], "w_max: infeasible for 40 assets", 1),
        (["--data", "bloomberg"], "data: expected synthetic, french, sp500 or a stored panel", 1),
        (["--window", "16"], "window: expected between 17 and n_dates - 13 = 83", 1),
        (
            ["--w-min", "-0.05", "--leverage", "0.5"],
            "leverage: expected a gross-exposure bound >= |budget| = 1.0, got 0.5",
            1,
        ),
        (["--budget", "0"], "budget: expected > 0 without shorts (w_min >= 0), got 0.0", 1),
        (["--w-min", "0.1"], "w_min: infeasible for 40 assets", 1),
    ],
    ids=[
        "negative-tc",
        "infeasible-cap",
        "unknown-data",
        "short-window",
        "low-leverage",
        "long-only-zero-budget",
        "infeasible-floor",
    ],
)
def test_compare_bad_options(tmp_path, args, message, code):
    result = invoke("--db", str(tmp_path / "x.duckdb"), "compare", *args)
    assert result.exit_code == code
    assert message in " ".join(result.output.split())


def test_attribute_and_runs(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    result = invoke("--db", db, "attribute", "--seeds", "0", "--n-assets", "6", "--n-months",
                    "30", "--epochs", "2", "--w-max", "0.5")  # fmt: skip
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "diversifier_2" in text and "of seeds" in text
    listed = invoke("--db", db, "runs")
    assert "attribution-" in listed.output


def test_sweep_command(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    args = ["--db", db, "sweep", "--seeds", "0-1", "--n-assets", "6,8", "--n-months", "50",
            "--window", "12", "--backend", "serial"]  # fmt: skip
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "4 jobs run, 0 already stored, 0 failed" in first.output
    again = invoke(*args)
    assert "0 jobs run, 4 already stored" in again.output
    bad = invoke("--db", db, "sweep", "--seeds", "0", "--n-assets", "8", "--window", "5",
                 "--backend", "serial")  # fmt: skip
    text = " ".join(bad.output.split())
    assert bad.exit_code == 1 and "grid: 1 configuration(s) cannot run" in text
    assert "jobs run" not in text  # refused before anything ran
    idle = invoke("--db", db, "sweep", "--kind", "shrink", "--gamma", "4,8")
    assert idle.exit_code == 1 and "not an option of kind shrink: gamma" in idle.output


def test_a_one_seed_sweep_reports_without_tests(tmp_path):
    db, report = str(tmp_path / "cli.duckdb"), tmp_path / "one.html"
    result = invoke("--db", db, "sweep", "--seeds", "0", "--n-assets", "8", "--n-months", "50",
                    "--window", "12", "--backend", "serial", "--report", str(report))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "n/a" in result.output and "nan" not in result.output
    text = report.read_text()
    assert "on one seed; no test (run more seeds)" in text and "nan" not in text.split("<body>")[1]
    missing = invoke("--db", db, "sweep", "--seeds", "0", "--report", str(tmp_path / "no" / "r"))
    assert missing.exit_code == 1 and "--report: the folder" in missing.output


def test_a_stored_panel_with_a_builtin_name_is_used_and_said_so(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    loaded = invoke("--db", db, "data", "load", "french", "--universe", "size_value")
    assert loaded.exit_code == 0, loaded.output
    result = invoke("--db", db, "shrink", "--data", "french", "--window", "24")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--data french is the panel stored under that name" in text
    assert "N=9" in text  # the stored size x value portfolios, not the 12 industries


def test_import_a_csv_then_shrink_and_compare_on_it(tmp_path):
    rng = np.random.default_rng(42)
    dates = pd.date_range("1990-01-31", periods=150, freq="ME")
    returns = pd.DataFrame(rng.normal(0.008, 0.05, (150, 6)), index=dates,
                           columns=[f"S{i}" for i in range(6)])  # fmt: skip
    (returns * 100).to_csv(tmp_path / "mine.csv", index_label="month")
    db = str(tmp_path / "cli.duckdb")
    imported = invoke("--db", db, "data", "import", str(tmp_path / "mine.csv"), "--name", "mine",
                      "--percent")  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert "Imported panel mine (wide, monthly): 6 assets x 115 months" in " ".join(
        imported.output.split()
    )
    shrunk = invoke("--db", db, "shrink", "--data", "mine", "--window", "24")
    assert shrunk.exit_code == 0, shrunk.output
    compared = invoke("--db", db, "compare", "--data", "mine", "--window", "24", "--epochs", "1",
                      "--refit-every", "60", "--arms", "equal_weight,decoupled,e2e")  # fmt: skip
    assert compared.exit_code == 0, compared.output
    assert Store(db).load_run(Store(db).latest_run_id("compare")).config["data"] == "mine"


def test_imported_sectors_cap_the_qp_arms(tmp_path):
    rng = np.random.default_rng(42)
    dates = pd.date_range("1990-01-31", periods=90, freq="ME")
    assets = [f"S{i}" for i in range(6)]
    pd.DataFrame(rng.normal(0.008, 0.05, (90, 6)), index=dates, columns=assets).to_csv(
        tmp_path / "mine.csv", index_label="month"
    )
    db = str(tmp_path / "cli.duckdb")
    assert invoke("--db", db, "data", "import", str(tmp_path / "mine.csv"), "--name",
                  "plain").exit_code == 0  # fmt: skip
    no_sectors = invoke("--db", db, "compare", "--data", "plain", "--window", "24",
                        "--sector-max", "0.5")  # fmt: skip
    assert no_sectors.exit_code == 1
    assert "sector_max: needs a panel with sectors" in " ".join(no_sectors.output.split())
    pd.DataFrame({"asset": assets[:5], "sector": ["tech"] * 3 + ["energy"] * 2}).to_csv(
        tmp_path / "partial.csv", index=False
    )
    partial = invoke("--db", db, "data", "import", str(tmp_path / "mine.csv"), "--name", "mine",
                     "--sectors", str(tmp_path / "partial.csv"))  # fmt: skip
    assert partial.exit_code == 1
    assert "partial.csv: expected the panel's 6 assets, got no sector for ['S5']" in " ".join(
        partial.output.split()
    )
    pd.DataFrame({"asset": assets, "sector": ["tech"] * 3 + ["energy"] * 3}).to_csv(
        tmp_path / "sectors.csv", index=False
    )
    imported = invoke("--db", db, "data", "import", str(tmp_path / "mine.csv"), "--name", "mine",
                      "--sectors", str(tmp_path / "sectors.csv"))  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert Store(db).read_panel("mine").sectors == ("tech",) * 3 + ("energy",) * 3
    infeasible = invoke("--db", db, "compare", "--data", "mine", "--window", "24",
                        "--sector-max", "0.4")  # fmt: skip
    assert "sector_max: infeasible for 2 sectors" in " ".join(infeasible.output.split())
    compared = invoke("--db", db, "compare", "--data", "mine", "--window", "24", "--epochs", "1",
                      "--refit-every", "60", "--arms", "equal_weight,plug_in,e2e",
                      "--sector-max", "0.51")  # fmt: skip
    assert compared.exit_code == 0, compared.output
    assert "sector_max 0.51" in " ".join(compared.output.split())
    run = Store(db).load_run(Store(db).latest_run_id("compare"))
    assert run.config["sector_max"] == 0.51
    weights = run.weights
    largest = 0.0
    for arm in ("plug_in", "e2e"):
        book = weights[weights["strategy"] == arm]
        tech = book[book["asset"].isin(assets[:3])].groupby("date")["weight"].sum()
        energy = book[book["asset"].isin(assets[3:])].groupby("date")["weight"].sum()
        assert tech.max() <= 0.51 + 1e-9 and energy.max() <= 0.51 + 1e-9
        largest = max(largest, tech.max(), energy.max())
    assert largest >= 0.51 - 1e-9  # the cap binds somewhere


def test_runs_lists_kind_data_seeds_headline_and_json(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    assert invoke("--db", db, *SMALL_SHRINK_ARGS).exit_code == 0
    assert invoke("--db", db, "sweep", "--seeds", "0", "--n-assets", "8", "--n-months", "50",
                  "--window", "12", "--backend", "serial").exit_code == 0  # fmt: skip
    listed = invoke("--db", db, "runs", "--kind", "shrink")
    assert listed.exit_code == 0, listed.output
    text = listed.output
    run_ids = list(Store(db).list_runs()["run_id"])
    assert all(run_id in text for run_id in run_ids)  # whole ids, also the sweep's
    assert "sweep-shrink" in text and "decision_aware" in text and "seeds 0-1 (2)" in text
    rows = [json.loads(line) for line in invoke("--db", db, "runs", "--json").output.splitlines()]
    assert {r["kind"] for r in rows} == {"shrink", "sweep-shrink"}
    assert (
        rows[-1]["options"]["window"] == 20
        and set(rows[-1]["headline"]) == {"decision_aware", "ledoit_wolf"}
        and rows[-1]["seeds"] == [0, 1]
    )


def test_dashboard_becomes_the_server_with_the_store(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("os.execv", lambda path, args: calls.append((path, args)))
    monkeypatch.delenv("DB_PATH", raising=False)
    db = tmp_path / "mine.duckdb"
    result = invoke("--db", str(db), "dashboard", "--port", "8600")
    assert result.exit_code == 0, result.output
    ((_, args),) = calls
    assert args[1:4] == ["-m", "streamlit", "run"] and "8600" in args

    assert os.environ["DB_PATH"] == str(db.resolve())


def test_a_changing_universe_round_trips_through_shrink_and_compare(tmp_path):
    """A CSV with a late listing (S6 from 1995) and a delisting (S1 after 2000): imported
    with the gaps as not listed; shrink and every arm of compare run and never hold S1 after
    it delists."""
    rng = np.random.default_rng(42)
    dates = pd.date_range("1990-01-31", periods=180, freq="ME")
    returns = pd.DataFrame(rng.normal(0.008, 0.05, (180, 8)), index=dates,
                           columns=[f"S{i}" for i in range(8)])  # fmt: skip
    returns.loc[:"1994-12-31", "S6"] = np.nan
    returns.loc["2001-01-31":, "S1"] = np.nan
    returns.to_csv(tmp_path / "changing.csv", index_label="month", na_rep="")
    db = str(tmp_path / "cli.duckdb")
    imported = invoke("--db", db, "data", "import", str(tmp_path / "changing.csv"), "--name",
                      "changing")  # fmt: skip
    assert imported.exit_code == 0, imported.output
    panel = Store(db).read_panel("changing")
    assert not panel.is_complete and panel.listed[:, 1].sum() < panel.n_dates
    shrunk = invoke("--db", db, "shrink", "--data", "changing", "--window", "24")
    assert shrunk.exit_code == 0, shrunk.output
    run = Store(db).load_run(Store(db).latest_run_id("shrink"))
    assert len(run.series) > 0 and np.isfinite(run.series["net_return"]).all()
    args = ["--db", db, "compare", "--data", "changing", "--window", "24", "--epochs", "1"]
    simple = invoke(*args, "--arms", "equal_weight,min_variance,plug_in")
    assert simple.exit_code == 0, simple.output
    weights = Store(db).load_run(Store(db).latest_run_id("compare")).weights
    after = weights[(weights["asset"] == "S1") & (weights["date"] > "2001-01-31")]
    assert len(after) and (after["weight"] == 0).all()  # delisted: never held again
    learned = invoke(*args, "--refit-every", "60", "--arms",
                     "decoupled,decoupled_nll,e2e,e2e_risk,e2e_return")  # fmt: skip
    assert learned.exit_code == 0, learned.output
    weights = Store(db).load_run(Store(db).latest_run_id("compare")).weights
    gone = weights[(weights["asset"] == "S1") & (weights["date"] > "2001-01-31")]
    assert len(gone) and (gone["weight"] == 0).all()


def test_light_commands_do_not_import_torch(tmp_path):
    """`e2e --help`, `e2e runs` and `e2e data list` answer without importing torch, cvxpy or
    scikit-learn (they took 2.6 s when every command imported them)."""
    db = tmp_path / "cli.duckdb"
    assert invoke("--db", str(db), "data", "load", "sp500").exit_code == 0
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from e2e_portfolio.apps.cli import app\n"
        f"for args in (['--help'], ['--db', {str(db)!r}, 'runs'],"
        f" ['--db', {str(db)!r}, 'data', 'list']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "heavy = sorted(m for m in ('torch', 'cvxpy', 'sklearn') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_bad_experiment_options_are_refused_before_torch_loads(tmp_path):
    """compare's and shrink's common mistakes answer at once (torch took ~3 s to load first)."""
    db = str(tmp_path / "cli.duckdb")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from e2e_portfolio.apps.cli import app\n"
        "for args in (['compare', '--gamma-grid', 'a,b'], ['compare', '--arms', 'nosuch'],"
        " ['compare', '--covariance', 'sample'], ['compare', '--gamma-grid', '4,-1'],"
        " ['compare', '--seeds', 'x'], ['shrink', '--window', '5'], ['shrink', '--seeds', '3-1']):\n"
        f"    result = CliRunner().invoke(app, ['--db', {db!r}, *args])\n"
        "    assert result.exit_code == 1 and result.output.startswith('error: '), args\n"
        "heavy = sorted(m for m in ('torch', 'cvxpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_tables_have_json_twins_for_scripts(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    path = tmp_path / "shrink.json"
    assert invoke("--db", db, *SMALL_SHRINK_ARGS, "--json", str(path)).exit_code == 0
    document = json.loads(path.read_text())
    assert document["kind"] == "shrink" and len(document["result"]["rows"]) == 2
    assert set(document["result"]["vs_lw"]) >= {"mean", "ci_low", "ci_high", "p_holm"}
    path = tmp_path / "compare.json"
    result = invoke("--db", db, "compare", "--n-assets", "6", "--n-months", "40", "--window",
                    "20", "--epochs", "1", "--arms", "equal_weight,plug_in", "--json", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(path.read_text())
    assert set(document["stats"]) == {"equal_weight", "plug_in"}
    assert document["stats"]["plug_in"]["n_periods"] == 19 and "plug_in" in document["tuning"]


def test_sweep_and_attribute_write_json_too(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    path = tmp_path / "sweep.json"
    result = invoke("--db", db, "sweep", "--seeds", "0-1", "--n-assets", "8", "--n-months", "50",
                    "--window", "12", "--backend", "serial", "--json", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(path.read_text())
    assert document["ran"] == 2 and document["summary"][0]["n_seeds"] == 2
    path = tmp_path / "attribution.json"
    result = invoke("--db", db, "attribute", "--seeds", "0", "--n-assets", "6", "--n-months",
                    "30", "--epochs", "1", "--w-max", "0.5", "--json", str(path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fraction_e2e_upweights_diversifiers" in json.loads(path.read_text())["result"]


def test_compare_seeds_in_worker_processes_on_an_imported_panel_with_gaps(tmp_path):
    """An imported panel with a late listing runs with --workers 2 (the store's panel is
    read-only and contiguous in the workers too), and the run records the seeds it ran."""
    rng = np.random.default_rng(42)
    dates = pd.date_range("1990-01-31", periods=90, freq="ME")
    returns = pd.DataFrame(rng.normal(0.008, 0.05, (90, 6)), index=dates,
                           columns=[f"S{i}" for i in range(6)])  # fmt: skip
    returns.loc[:"1992-06-30", "S4"] = np.nan
    returns.to_csv(tmp_path / "gaps.csv", index_label="month", na_rep="")
    db = str(tmp_path / "cli.duckdb")
    assert invoke("--db", db, "data", "import", str(tmp_path / "gaps.csv"),
                  "--name", "gaps").exit_code == 0  # fmt: skip
    result = invoke("--db", db, "compare", "--data", "gaps", "--seeds", "0-1", "--workers", "2",
                    "--window", "24", "--epochs", "1", "--refit-every", "60",
                    "--arms", "equal_weight,min_variance,decoupled,e2e")  # fmt: skip
    assert result.exit_code == 0, result.output
    run = Store(db).load_run(Store(db).latest_run_id("compare"))
    assert run.config["seeds"] == [0, 1] and "seed" not in run.config
    assert set(run.series["strategy"]) == {f"{arm}/seed={seed}" for seed in (0, 1)
                                            for arm in ("equal_weight", "min_variance",
                                                        "decoupled", "e2e")}  # fmt: skip
    one = invoke("--db", db, "compare", "--data", "gaps", "--seeds", "0", "--window", "24",
                 "--epochs", "1", "--arms", "equal_weight,min_variance")  # fmt: skip
    assert one.exit_code == 0 and "Stored run" in one.output  # no interval, still stored


def test_more_assets_than_months_in_both_experiments(tmp_path):
    """N > T: shrink with 30 assets and a 20-month window (the plug-in on the sample's span,
    said so), compare with 30 assets and a 17-month window (every arm runs)."""
    db = str(tmp_path / "cli.duckdb")
    shrunk = invoke("--db", db, "shrink", "--seeds", "0-1", "--n-assets", "30", "--n-months",
                    "50", "--window", "20", "--score-months", "12")  # fmt: skip
    assert shrunk.exit_code == 0, shrunk.output
    assert "pseudo-inverse" in " ".join(shrunk.output.split())
    compared = invoke("--db", db, "compare", "--seeds", "0", "--n-assets", "30", "--n-months",
                      "40", "--window", "17", "--epochs", "1", "--refit-every", "30")  # fmt: skip
    assert compared.exit_code == 0, compared.output
    stats = Store(db).load_run(Store(db).latest_run_id("compare")).stats
    assert set(stats) == set(ARMS) and all(np.isfinite(s.sharpe) for s in stats.values())
