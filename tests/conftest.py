"""Shared seed-42 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import Store
from e2e_portfolio.data.synthetic import simulate_universe

SEED = 42


@pytest.fixture(scope="session")
def small_panel() -> FactorPanel:
    """A 12-asset, 36-month synthetic universe (seed 42)."""
    return simulate_universe(n_assets=12, n_months=36, seed=SEED, name="small")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in a temporary folder (the file does not exist yet)."""
    return Store(tmp_path / "store.duckdb")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test away from the user's DuckDB file and .env."""
    monkeypatch.setenv("DB_PATH", str(tmp_path / "default.duckdb"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def without_module(monkeypatch: pytest.MonkeyPatch):
    """Make ``import NAME`` fail as if the optional package were not installed."""
    import builtins

    real_import = builtins.__import__

    def block(name: str) -> None:
        def fake_import(module, *args, **kwargs):
            if module == name:
                raise ImportError(f"No module named {name!r}")
            return real_import(module, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake_import)

    return block
