"""dashboard.html (stlite) and dashboard_static.html (offline, precomputed).

Offline, Pyodide cannot load numpy, so the stlite page's numbers cannot be checked here. What
is tested: the committed page is exactly what the build makes from this code (so the embedded
modules are the package's own), the pinned versions, the embedded app itself (run locally by
Streamlit's AppTest), and that stlite mounts when its assets are served from a local copy of
the pinned npm package. The static page is tested in the browser with all network aborted.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from e2e_portfolio.apps import dashboard_build
from e2e_portfolio.apps.dashboard_build import (
    PYODIDE_VERSION,
    STLITE_URL,
    STLITE_VERSION,
    build_dashboard_html,
    build_static_page,
)
from tests.browser import (
    CHROMIUM_ARGS,
    LOCAL_SCHEMES,
    chromium_path,
    offline_page,
    screenshot_path,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "e2e_portfolio"


def _embedded(text: str) -> dict[str, str]:
    match = re.search(
        r'<script type="application/json" id="e2e-files">\n(.*?)\n</script>', text, re.S
    )
    assert match, "no embedded files"
    return json.loads(match.group(1))


def test_committed_dashboard_is_current():
    committed = (ROOT / "dashboard.html").read_text(encoding="utf-8")
    assert committed == build_dashboard_html(), (
        "run `e2e build-dashboard` and commit dashboard.html"
    )


def test_embedded_sources_are_the_package_modules():
    files = _embedded((ROOT / "dashboard.html").read_text(encoding="utf-8"))
    shrinkage = (PACKAGE / "models" / "decision_shrinkage.py").read_text(encoding="utf-8")
    assert files["e2e_portfolio/models/decision_shrinkage.py"] == shrinkage
    assert files["app.py"] == (PACKAGE / "apps" / "browser_app.py").read_text(encoding="utf-8")
    for module in dashboard_build.EMBEDDED_MODULES:
        assert files[f"e2e_portfolio/{module}"] == (PACKAGE / module).read_text(encoding="utf-8")


def test_embedded_modules_import_nothing_heavy():
    """Module-level imports only (imports inside functions that the browser never calls,
    like simulate_universe's pandas, do not run there)."""
    allowed = {"numpy", "scipy", "streamlit", "e2e_portfolio", "__future__", "math", "dataclasses",
               "typing", "collections", "importlib"}  # fmt: skip
    for name, source in _embedded(build_dashboard_html()).items():
        for top in re.findall(r"^(?:from|import)\s+([\w_]+)", source, re.M):
            assert top in allowed, f"{name} imports {top}"


def test_versions_are_pinned():
    text = (ROOT / "dashboard.html").read_text(encoding="utf-8")
    assert f"@stlite/browser@{STLITE_VERSION}/build/stlite.js" in text
    assert f"@stlite/browser@{STLITE_VERSION}/build/stlite.css" in text
    assert f"pyodide/v{PYODIDE_VERSION}/full/pyodide.mjs" in text
    assert "@latest" not in text


@pytest.mark.slow
def test_browser_app_runs_and_its_seed_slider_works():
    testing = pytest.importorskip("streamlit.testing.v1", reason="streamlit is not installed")
    at = testing.AppTest.from_file(
        str(PACKAGE / "apps" / "browser_app.py"), default_timeout=120
    ).run()
    assert not at.exception
    before = at.table[0].value.copy()
    assert len(before) == 3
    next(s for s in at.slider if s.label == "seed").set_value(5).run()
    assert not at.table[0].value.equals(before)
    at.checkbox[0].check().run()
    assert len(at.table[0].value) == 4 and not at.exception


@pytest.fixture(scope="module")
def stlite_build(tmp_path_factory) -> Path:
    """The pinned @stlite/browser package from the npm registry, cached between runs."""
    cache = Path(os.environ.get("E2E_CACHE", Path.home() / ".cache" / "e2e-portfolio"))
    build = cache / f"stlite-{STLITE_VERSION}" / "package" / "build"
    if not (build / "stlite.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch @stlite/browser to serve it locally")
        folder = tmp_path_factory.mktemp("stlite")
        packed = subprocess.run(
            [npm, "pack", f"@stlite/browser@{STLITE_VERSION}", "--silent"],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if packed.returncode != 0:
            pytest.skip(f"npm pack @stlite/browser@{STLITE_VERSION} failed: {packed.stderr[-300:]}")
        with tarfile.open(folder / packed.stdout.strip().splitlines()[-1]) as archive:
            archive.extractall(cache / f"stlite-{STLITE_VERSION}", filter="data")
    return build


@pytest.mark.slow
def test_stlite_mounts_with_locally_served_assets(stlite_build):
    from playwright.sync_api import sync_playwright

    prefix = f"{STLITE_URL}/"
    served = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(prefix):
            file = stlite_build / url[len(prefix) :].split("?")[0]
            if file.is_file():
                served.append(file.name)
                kind = (
                    "text/javascript"
                    if file.suffix in (".js", ".mjs")
                    else mimetypes.guess_type(file.name)[0]
                )
                request_route.fulfill(
                    path=str(file), content_type=kind or "application/octet-stream"
                )
                return
        if url.startswith(LOCAL_SCHEMES):
            request_route.continue_()
        else:
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.route("**/*", route)
        page.goto((ROOT / "dashboard.html").as_uri())
        page.wait_for_function("document.body.innerText.includes('Pyodide')", timeout=60_000)
        text = page.evaluate("document.body.innerText")
        mounted = page.evaluate("document.getElementById('root').children.length")
        page.screenshot(path=screenshot_path("dashboard-stlite-offline.png"))
        browser.close()
    assert {"stlite.js", "stlite.css"} <= set(served)
    assert mounted > 0
    # offline the boot stops at Pyodide: the page names the pinned Pyodide it tried to load
    if "Error" in text:
        assert f"v{PYODIDE_VERSION}" in text


@pytest.fixture(scope="module")
def static_page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("static") / "dashboard_static.html"
    path.write_text(build_static_page(seeds=range(3), n_assets=10), encoding="utf-8")
    return path


@pytest.mark.slow
def test_static_page_slider_changes_numbers_offline(static_page):
    from playwright.sync_api import sync_playwright

    errors, blocked = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        offline_page(page, errors, blocked)
        page.goto(static_page.as_uri())
        page.wait_for_selector("#chart .main-svg")
        before = page.inner_text("#numbers")
        axis = "JSON.stringify(document.getElementById('chart').layout.yaxis.range)"
        range_before = page.evaluate(axis)
        page.locator("#seed").fill("2")
        page.wait_for_function("document.getElementById('seed-value').textContent === '2'")
        after = page.inner_text("#numbers")
        bars = page.evaluate("document.querySelectorAll('#chart g.point').length")
        range_after = page.evaluate(axis)
        summary = page.inner_text("#verdict")
        page.wait_for_selector("#edges .main-svg")
        page.screenshot(path=screenshot_path("dashboard-static.png"), full_page=True)
        browser.close()
    assert before != after and "decision_aware" in after
    assert bars == 3
    assert range_before == range_after  # one fixed axis for every seed
    assert "decision_aware - ledoit_wolf" in summary and "Holm p" in summary
    assert errors == [] and blocked == []


@pytest.mark.slow
def test_dashboard_html_offline_says_what_it_is_and_where_to_go():
    """Offline, the stlite page shows its own message (what it is, that it needs internet,
    the offline alternatives) and then says that the boot failed, never a blank page."""
    from playwright.sync_api import sync_playwright

    errors, blocked = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        offline_page(page, errors, blocked)
        page.goto((ROOT / "dashboard.html").as_uri())
        page.wait_for_function("document.getElementById('e2e-status').className === 'failed'",
                               timeout=20_000)  # fmt: skip
        text = page.inner_text("#root")
        page.screenshot(path=screenshot_path("dashboard-offline.png"), full_page=True)
        browser.close()
    assert "needs internet" in text and "dashboard_static.html" in text
    assert "could not start" in text
    assert blocked  # it did try the CDN
