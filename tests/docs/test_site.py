"""The documentation site, opened from ``file://`` in Chromium with the network blocked.

``python3 quickstart.py docs`` builds it (CI does so before the tests); without a build the
test skips and says how to make one. Checked: the index, an API page whose maths MathJax
typesets from the site's own copy, a gallery page whose plotly figure draws from the site's
plotly.js, and a search that finds the layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import CHROMIUM_ARGS, chromium_path, offline_page, screenshot_path

SITE = Path(__file__).resolve().parents[2] / "docs" / "_build" / "html"


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.skip("no built site: python3 quickstart.py docs builds docs/_build/html")
    return SITE


def test_the_site_works_offline_in_chromium(site):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    blocked: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        offline_page(page, errors, blocked)
        page.goto((site / "index.html").as_uri())
        assert "e2e-portfolio" in page.title()
        links = page.locator("a").evaluate_all("links => links.map(a => a.textContent)")
        assert any("Examples" in text for text in links), links
        # an API page: decision-aware shrinkage, its maths typeset by the site's own MathJax
        page.goto((site / "api" / "generated" / "e2e_portfolio.models.decision_shrinkage.html")
                  .as_uri())  # fmt: skip
        page.wait_for_selector("mjx-container", timeout=30_000)
        assert page.locator("mjx-container").count() >= 10
        assert "ShrinkageConfig" in page.inner_text("main")
        page.screenshot(path=screenshot_path("docs-api.png"))
        # a gallery page: its plotly figure drawn, its printed output shown
        page.goto((site / "auto_examples" / "plot_02_gradients_against_finite_differences.html")
                  .as_uri())  # fmt: skip
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        assert "largest relative difference" in page.inner_text("main")
        page.screenshot(path=screenshot_path("docs-gallery.png"), full_page=True)
        # the search, offline
        page.goto((site / "search.html").as_uri() + "?q=MeanVarianceQP")
        page.wait_for_selector("#search-results li", timeout=30_000)
        results = page.inner_text("#search-results")
        browser.close()
    assert "MeanVarianceQP" in results
    assert blocked == [], blocked
    assert not [e for e in errors if "favicon" not in e], errors


def test_every_public_name_has_its_api_entry(site):
    """Each name of ``e2e_portfolio.__all__`` and of each subpackage's ``__all__`` is in the
    site's inventory, where it is defined (a class or function by its module and qualified
    name; a constant in the module that documents it)."""
    import importlib
    import inspect

    inventory = pytest.importorskip("sphinx.util.inventory")
    with (site / "objects.inv").open("rb") as handle:
        loaded = inventory.InventoryFile.load(handle, "", lambda base, uri: uri)
    documented = {name for kind in loaded for name in loaded[kind]}
    missing = []
    for package in ("e2e_portfolio", "e2e_portfolio.data", "e2e_portfolio.models",
                    "e2e_portfolio.backtest", "e2e_portfolio.experiments",
                    "e2e_portfolio.report", "e2e_portfolio.attribution"):  # fmt: skip
        module = importlib.import_module(package)
        for name in (n for n in module.__all__ if not n.startswith("__")):
            thing = getattr(module, name)
            if inspect.isclass(thing) or inspect.isfunction(thing):
                found = f"{thing.__module__}.{thing.__qualname__}" in documented
            else:
                found = any(entry.endswith(f".{name}") for entry in documented)
            if not found:
                missing.append(f"{package}.{name}")
    assert not missing, missing
