from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e2e_portfolio.config import DEFAULT_DB_PATH, Settings, configure_threads


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


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.delenv("E2E_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_default_to_one_and_follow_the_environment(restore_threads, monkeypatch):
    import os

    assert configure_threads() == 1 and torch.get_num_threads() == 1
    assert os.environ["E2E_THREADS"] == "1"  # exported for worker processes
    monkeypatch.setenv("E2E_THREADS", "2")
    expected = min(2, os.cpu_count() or 1)
    assert configure_threads() == expected == torch.get_num_threads()
    assert configure_threads(64) == (os.cpu_count() or 1)  # never more than the cores


def test_bad_thread_counts_are_refused(restore_threads, monkeypatch):
    with pytest.raises(ValueError, match="threads: expected a positive number of threads, got 0"):
        configure_threads(0)
    monkeypatch.setenv("E2E_THREADS", "0")
    with pytest.raises(ValueError, match="e2e_threads"):
        configure_threads()
