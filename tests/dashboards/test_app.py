"""The Streamlit app: headless with AppTest, and served by `streamlit run` in a real browser."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_portfolio.config import get_settings
from e2e_portfolio.data.store import Store
from tests.browser import CHROMIUM_ARGS, chromium_path, screenshot_path

streamlit_testing = pytest.importorskip("streamlit.testing.v1", reason="streamlit is not installed")
APP = Path(__file__).resolve().parents[2] / "src" / "e2e_portfolio" / "apps" / "streamlit_app.py"


def _slider(at, label):
    return next(s for s in at.slider if s.label == label)


def test_seed_slider_changes_the_shrinkage_table():
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception
    assert [t.label for t in at.tabs] == ["Compare", "Decision-aware shrinkage", "Stored runs"]
    before = at.dataframe[0].value.copy()
    assert list(before.index) == ["plug_in", "ledoit_wolf", "decision_aware"]
    _slider(at, "seed").set_value(3).run()
    after = at.dataframe[0].value
    assert not before["out-of-sample Sharpe"].equals(after["out-of-sample Sharpe"])


def test_compare_form_runs_the_comparison():
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=180).run()
    assert at.number_input[0].value == 40 and _slider(at, "epochs per refit").value == 40  # CLI's
    assert at.text_input[0].value == "42"  # one seed: one walk-forward
    at.number_input[0].set_value(6)  # synthetic assets
    at.number_input[1].set_value(48)  # synthetic months
    _slider(at, "epochs per refit").set_value(2)
    at.button[0].click().run()
    assert not at.exception
    stats = at.dataframe[0].value
    assert {"equal_weight", "decoupled", "e2e", "e2e_risk"} <= set(stats.index)
    assert stats.loc["e2e", "annual return"].endswith("%")
    assert len(at.get("plotly_chart")) >= 3
    # any later click keeps the results (they live in the session state)
    weights_of = next(s for s in at.selectbox if s.label == "weights of")
    weights_of.set_value("decoupled").run()
    assert not at.exception and len(at.dataframe) >= 1
    assert {"e2e", "decoupled"} <= set(at.dataframe[0].value.index)
    # storing stores, and says so
    store_button = next(b for b in at.button if b.label == "Store this run")
    store_button.click().run()
    assert any("Stored as compare-" in s.value for s in at.success)
    runs = Store(get_settings().db_path).list_runs("compare")
    assert len(runs) == 1


def test_several_seeds_give_the_verdict_across_seeds():
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=240).run()
    at.text_input[0].set_value("0-2")  # seeds
    at.number_input[0].set_value(6)  # synthetic assets
    at.number_input[1].set_value(48)  # synthetic months
    _slider(at, "epochs per refit").set_value(1)
    at.button[0].click().run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["Verdict across seeds"]
    assert at.markdown[0].value == "Over 3 seeds:"
    table = at.dataframe[0].value
    assert "e2e - decoupled" in set(table["comparison"]) and "Holm p" in table.columns
    assert len(at.get("plotly_chart")) == 3  # paired edges, equity curves; the shrinkage tab's
    next(b for b in at.button if b.label == "Store this run").click().run()
    stored = Store(get_settings().db_path)
    record = stored.load_run(stored.latest_run_id("compare"))
    assert record.config["seeds"] == [0, 1, 2] and len(record.metrics["verdict"]) > 0
    at.text_input[0].set_value("0-2").run()  # data other than synthetic refuse several seeds
    at.selectbox[0].set_value("french")
    at.button[0].click().run()
    assert "a verdict across seeds runs on synthetic data" in at.error[0].value
    at.selectbox[0].set_value("synthetic")
    for spec, message in (("0-99", "expected at most 20 here"), ("3-1", "expected ranges")):
        at.text_input[0].set_value(spec)
        at.button[0].click().run()
        assert message in at.error[0].value, spec
        # a bad entry says so above the verdict it leaves in place
        assert [h.value for h in at.subheader] == ["Verdict across seeds"], spec


def test_a_stored_panel_named_like_a_builtin_is_listed_once():
    from e2e_portfolio.data.datasets import load_french

    Store(get_settings().db_path).write_panel(load_french(), replace=True)
    at = streamlit_testing.AppTest.from_file(str(APP), default_timeout=120).run()
    options = at.selectbox[0].options
    assert options.count("french") == 1 and options[:3] == ["synthetic", "french", "sp500"]
    source = APP.read_text()
    assert "components.v1" not in source and "st.iframe(" in source  # no deprecated API


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    port = _free_port()
    # what `e2e dashboard` runs (it becomes the Streamlit server), with this test's store
    command = [sys.executable, "-m", "e2e_portfolio", "--db", str(get_settings().db_path),
               "dashboard", "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit run did not answer within 60 s")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.mark.slow
def test_real_browser_moves_the_seed_slider(served_app):
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(served_app)
        page.get_by_role("tab", name="Decision-aware shrinkage").click()
        table = page.locator("[data-testid='stDataFrame']").first
        table.wait_for(timeout=60_000)
        page.locator("[data-testid='stPlotlyChart']").first.wait_for(timeout=60_000)
        before = page.locator("[data-testid='stCaptionContainer']").first.inner_text()
        page.get_by_role("slider", name="seed").focus()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "text => !document.body.innerText.includes(text)", arg=before, timeout=60_000
        )
        after = page.locator("[data-testid='stCaptionContainer']").first.inner_text()
        page.screenshot(path=screenshot_path("dashboard-streamlit.png"), full_page=True)
        browser.close()
    assert before != after and after.startswith("delta* per month")


@pytest.mark.slow
def test_real_browser_keeps_the_comparison_after_clicks_and_stores_it(served_app):
    """Served by streamlit run and driven in Chromium: after "Run comparison", choosing other
    weights and moving a slider in another tab keep the results; "Store this run" stores the
    run, says so, and the Stored runs tab then offers its report."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(served_app)
        for label, value in (("synthetic assets", "6"), ("synthetic months", "48")):
            field = page.get_by_label(label)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("slider", name="epochs per refit").focus()
        page.keyboard.press("Home")  # 1 epoch
        page.get_by_role("button", name="Run comparison").click()
        assert page.get_by_role("button", name="Deploy").count() == 0  # toolbarMode viewer
        heading = page.get_by_text("Out-of-sample statistics (one run")
        heading.wait_for(timeout=180_000)
        page.get_by_text("Weights of e2e").first.wait_for(timeout=30_000)
        # another click on this tab: the weights of another arm
        page.get_by_role("combobox", name="weights of").click()
        page.keyboard.press("ArrowDown")  # opens the list
        page.get_by_role("option", name="decoupled", exact=True).click()
        page.get_by_text("Weights of decoupled").first.wait_for(timeout=60_000)
        assert heading.is_visible()
        # a slider in another tab, then back
        page.get_by_role("tab", name="Decision-aware shrinkage").click()
        page.get_by_role("slider", name="seed").focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(1_000)
        page.get_by_role("tab", name="Compare").click()
        page.get_by_text("Weights of decoupled").first.wait_for(timeout=60_000)
        assert heading.is_visible()
        # storing stores and says so
        page.get_by_role("button", name="Store this run").click()
        stored = page.get_by_text("Stored as compare-")
        stored.wait_for(timeout=60_000)
        run_id = stored.inner_text().split()[2]
        assert heading.is_visible()
        page.screenshot(path=screenshot_path("dashboard-streamlit-compare.png"), full_page=True)
        page.get_by_role("tab", name="Stored runs").click()
        chosen = page.get_by_role("combobox", name="report of")
        chosen.wait_for(timeout=60_000)
        assert chosen.input_value() == run_id  # the newest run, the one just stored
        frame = page.frame_locator("iframe").first
        report = frame.locator("#verdict-section")
        report.wait_for(timeout=60_000)
        verdict = report.inner_text()
        # the legend is whole inside the embedded report: every entry's text fits its figure
        frame.locator(".legendtext").first.wait_for(timeout=60_000)
        legend = frame.locator("#figure-equity").evaluate(
            "div => { const svg = div.querySelector('.main-svg').getBoundingClientRect();"
            " return [...div.querySelectorAll('.legendtext')].map(t => {"
            " const r = t.getBoundingClientRect(); return [t.textContent, r.width,"
            " r.right <= svg.right + 1]; }); }"
        )
        page.screenshot(path=screenshot_path("dashboard-streamlit-report.png"), full_page=True)
        browser.close()
    names = {text for text, _, _ in legend}
    assert {"equal_weight", "e2e", "decoupled"} <= names, names
    assert all(inside and width > 20 for _, width, inside in legend), legend
    assert list(Store(get_settings().db_path).list_runs("compare")["run_id"]) == [run_id]
    assert "One walk-forward on synthetic" in verdict
