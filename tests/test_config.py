from __future__ import annotations

from pathlib import Path

from e2e_portfolio.config import DEFAULT_DB_PATH, Settings


def test_defaults_need_no_env_file(monkeypatch):
    monkeypatch.delenv("DB_PATH", raising=False)
    settings = Settings()
    assert settings.db_path == DEFAULT_DB_PATH
    assert settings.signals_path == DEFAULT_DB_PATH


def test_env_file_is_read(tmp_path, monkeypatch):
    monkeypatch.delenv("DB_PATH", raising=False)
    (tmp_path / ".env").write_text("DB_PATH=runs/a.duckdb\nSIGNALS_DB_PATH=prices.duckdb\n")
    settings = Settings()
    assert settings.db_path == Path("runs/a.duckdb")
    assert settings.signals_path == Path("prices.duckdb")
