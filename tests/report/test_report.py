"""The HTML report: built from stored runs, self-contained, drawn in a real browser."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from e2e_portfolio.apps.cli import app
from e2e_portfolio.data.store import Store
from e2e_portfolio.report import style
from tests.browser import CHROMIUM_ARGS, chromium_path, offline_page, screenshot_path


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A shrink report and a compare report written by the CLI."""
    folder = tmp_path_factory.mktemp("reports")
    db = str(folder / "runs.duckdb")
    runner = CliRunner()
    shrink = ["--db", db, "shrink", "--seeds", "0-2", "--n-assets", "10", "--n-months", "80",
              "--window", "24", "--score-months", "12"]  # fmt: skip
    assert runner.invoke(app, shrink).exit_code == 0
    assert (
        runner.invoke(
            app, ["--db", db, "report", "--latest", "-o", str(folder / "shrink.html")]
        ).exit_code
        == 0
    )
    compare = ["--db", db, "compare", "--n-assets", "8", "--n-months", "48", "--window", "24",
               "--epochs", "2", "--refit-every", "24"]  # fmt: skip
    assert runner.invoke(app, compare).exit_code == 0
    run_id = Store(db).latest_run_id("compare")
    assert (
        runner.invoke(
            app, ["--db", db, "report", run_id, "-o", str(folder / "compare.html")]
        ).exit_code
        == 0
    )
    sweep = ["--db", db, "sweep", "--seeds", "0-2", "--n-assets", "8,10", "--n-months", "60",
             "--window", "20", "--backend", "serial", "--report", str(folder / "sweep.html"),
             "--json", str(folder / "sweep.json")]  # fmt: skip
    assert runner.invoke(app, sweep).exit_code == 0
    return {"shrink": folder / "shrink.html", "compare": folder / "compare.html",
            "sweep": folder / "sweep.html", "sweep.json": folder / "sweep.json"}  # fmt: skip


class _ExternalReferences(HTMLParser):
    """Collects script, link and image tags that point outside the file."""

    def __init__(self):
        super().__init__()
        self.external = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("data:", "#")):
                self.external.append((tag, value))


def test_report_is_self_contained(reports):
    text = reports["compare"].read_text()
    parser = _ExternalReferences()
    parser.feed(text)
    assert parser.external == []
    assert text.count("Plotly.newPlot") == 7
    for heading in ("Configuration", "Out-of-sample statistics", "Figures"):
        assert heading in text
    assert reports["shrink"].read_text().count("Plotly.newPlot") == 6  # with the paired edges


@pytest.mark.parametrize("kind", ["compare", "shrink"])
def test_the_report_leads_with_its_verdict(reports, kind):
    """The verdict (headline and paired differences) comes before the first figure, the
    configuration last; p-values read as p-values, seeds in numeric order."""
    text = reports[kind].read_text()
    verdict, figures = text.index("id='verdict-section'"), text.index("<h2>Figures</h2>")
    assert verdict < figures < text.index("<h2>Configuration</h2>")
    section = text[verdict:figures]
    if kind == "shrink":
        assert "Over 3 seeds: decision_aware" in section and "Holm p" in section
        stats = text[text.index("Out-of-sample statistics") : text.index("<h2>Configuration")]
        seeds = [int(s) for s in re.findall(r"decision_aware/seed=(\d+)", stats)]
        assert seeds == sorted(seeds)
    else:
        assert (
            "e2e" in section
            and "without a paired test" in section
            and "e2e_risk - decoupled_nll" in section
        )
    assert "%" in text[text.index("Out-of-sample statistics") :]  # returns as percentages


def test_the_sweep_report_leads_with_the_verdict_over_its_configurations(reports):
    """Verdict first (one sentence per comparison, a row per configuration and comparison,
    Holm over the whole sweep, the same numbers as --json), the edges chart, the tables, and
    the options last."""
    text = reports["sweep"].read_text()
    document = json.loads(reports["sweep.json"].read_text())
    verdict, figure = text.index("id='verdict-section'"), text.index("figure-sweep-edges")
    assert (
        verdict
        < figure
        < text.index("mean out-of-sample Sharpe")
        < text.index("shrink: configuration")
    )
    section = text[verdict:figure]
    assert "Sweep of 2 configurations, 3 seeds each (6 jobs)" in section
    assert "decision_aware vs ledoit_wolf:" in section and "of 2 configurations" in section
    rows = document["verdict"]
    assert [r["label"] for r in rows] == ["n_assets=8"] * 2 + ["n_assets=10"] * 2
    for row in rows:
        assert f"{row['mean']:+.3f}" in section and style.p_value(row["p_holm"]) in section
    assert text.count("Plotly.newPlot") == 1


def test_report_needs_exactly_one_run(tmp_path):
    result = CliRunner().invoke(app, ["--db", str(tmp_path / "x.duckdb"), "report"])
    assert result.exit_code == 1 and "expected a run id or --latest" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["compare", "shrink", "sweep"])
def test_report_draws_offline_in_chromium(reports, kind):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    errors, blocked = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        offline_page(page, errors, blocked)
        page.goto(reports[kind].as_uri())
        expected = {"compare": 7, "shrink": 6, "sweep": 1}[kind]
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {expected}",
            timeout=30_000,
        )
        drawn = page.evaluate("document.querySelectorAll('.js-plotly-plot g.trace').length")
        page.screenshot(path=screenshot_path(f"report-{kind}.png"), full_page=True)
        browser.close()
    assert drawn > 0
    assert errors == []
    assert blocked == []


@pytest.mark.slow
def test_in_chromium_the_verdict_comes_first_and_each_method_keeps_its_colour(reports):
    """Drawn offline in Chromium: the verdict section sits above the first figure, and every
    trace of a method, in every figure, has that method's colour."""
    from playwright.sync_api import sync_playwright

    colours_js = """() => {
      const out = {};
      for (const plot of document.querySelectorAll('.js-plotly-plot')) {
        for (const trace of plot.data || []) {
          const name = (trace.legendgroup || trace.name || '').replace(/ \\(mean\\)$/, '');
          const colour = (trace.line && trace.line.color) ||
                         (trace.marker && typeof trace.marker.color === 'string' && trace.marker.color);
          if (name && colour && !/training|validation|train/.test(name)) {
            (out[name] = out[name] || []).push(colour);
          }
        }
      }
      return out;
    }"""
    errors, blocked = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        offline_page(page, errors, blocked)
        page.goto(reports["shrink"].as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 6")
        verdict_top = page.evaluate(
            "document.getElementById('verdict-section').getBoundingClientRect().top"
        )
        figure_top = page.evaluate(
            "document.querySelector('.js-plotly-plot').getBoundingClientRect().top"
        )
        colours = page.evaluate(colours_js)
        page.screenshot(path=screenshot_path("report-shrink-first-screen.png"))
        browser.close()
    assert verdict_top < figure_top
    assert {"decision_aware", "ledoit_wolf", "plug_in"} <= set(colours)
    for method in ("decision_aware", "ledoit_wolf", "plug_in"):
        assert set(colours[method]) == {style.colour(method)}, (method, colours[method])
    assert errors == [] and blocked == []


def test_the_sweep_verdict_counts_only_adjusted_wins():
    """Ten seeds per configuration: a consistent edge in one configuration is a Holm-adjusted
    win, noise in the other is not, and the sentence says so with both means."""
    import numpy as np
    import pandas as pd

    from e2e_portfolio.experiments.sweep import sweep_verdicts
    from e2e_portfolio.report.sweep import sweep_verdict

    rng = np.random.default_rng(42)
    rows = []
    for n_assets, edge in ((10, 0.3), (40, 0.0)):
        config = json.dumps({"kind": "shrink", "n_assets": n_assets}, sort_keys=True)
        for seed in range(10):
            base = rng.normal(0.5, 0.3)
            rows.append({"config": config, "seed": seed, "sharpe_plug_in": base,
                         "sharpe_ledoit_wolf": base + rng.normal(0, 0.1),
                         "sharpe_decision_aware": base + edge + rng.normal(0, 0.05)})  # fmt: skip
    frame = pd.DataFrame(rows)
    verdicts = sweep_verdicts(frame)
    vs_plugin = [v for v in verdicts if v["versus"] == "plug_in"]
    assert vs_plugin[0]["p_holm"] < 0.05 < vs_plugin[1]["p_holm"]
    sentences = sweep_verdict(frame, verdicts).sentences
    assert sentences[0].startswith("Sweep of 2 configurations, 10 seeds each (20 jobs)")
    assert sentences[1].startswith("decision_aware vs plug_in: significantly better in 1 of 2")
    assert "(n_assets=40)" in sentences[1] and "(n_assets=10)" in sentences[1]


def test_multi_seed_compare_and_attribution_reports_say_what_the_terminal_says(tmp_path):
    """A compare over seeds reports each arm's statistics across seeds (the CLI's arms table)
    and no single-run seed in its configuration; an attribution report leads with a verdict."""
    db = str(tmp_path / "runs.duckdb")
    runner = CliRunner()
    compare = ["--db", db, "compare", "--seeds", "0-1", "--n-assets", "6", "--n-months", "40",
               "--window", "17", "--epochs", "1", "--refit-every", "30",
               "--arms", "equal_weight,decoupled,e2e"]  # fmt: skip
    assert runner.invoke(app, compare).exit_code == 0
    path = tmp_path / "seeds.html"
    assert runner.invoke(app, ["--db", db, "report", "--latest", "-o", str(path)]).exit_code == 0
    text = path.read_text()
    arms = text[text.index("<h2>Arms over 2 seeds</h2>") : text.index("<h2>Configuration</h2>")]
    for arm in ("equal_weight", "decoupled", "e2e"):
        assert f"<th>{arm}</th>" in arms
    assert "sd across seeds" in arms and "mean turnover" in arms
    config = text[text.index("<h2>Configuration</h2>") :]
    assert "<th>seeds</th>" in config and "<th>seed</th>" not in config
    attribute = ["--db", db, "attribute", "--seeds", "0-1", "--n-assets", "6", "--n-months", "40",
                 "--epochs", "1", "--w-max", "0.5"]  # fmt: skip
    assert runner.invoke(app, attribute).exit_code == 0
    path = tmp_path / "attribution.html"
    assert runner.invoke(app, ["--db", db, "report", "--latest", "-o", str(path)]).exit_code == 0
    text = path.read_text()
    verdict = text[text.index("id='verdict-section'") : text.index("<h2>Figures</h2>")]
    assert "Over 2 seeds: e2e gives the unpriced diversifiers" in verdict
    assert "e2e share" in verdict
