"""Settings read from the environment or a ``.env`` file (all optional).

=====================  ==========================================================
variable               meaning
=====================  ==========================================================
``DB_PATH``            DuckDB file for stored panels and runs
                       (default ``./e2e_portfolio.duckdb``)
``SIGNALS_DB_PATH``    DuckDB file that ``scripts/download_data.py`` writes
                       price-based panels to (default: ``DB_PATH``)
=====================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("e2e_portfolio.duckdb")


class Settings(BaseSettings):
    """Paths of the local DuckDB files; the defaults need no ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    db_path: Path = DEFAULT_DB_PATH
    signals_db_path: Path | None = None

    @property
    def signals_path(self) -> Path:
        """Where downloaded price panels go: ``SIGNALS_DB_PATH`` or else ``DB_PATH``."""
        return self.signals_db_path or self.db_path


def get_settings() -> Settings:
    """Read the settings afresh (environment first, then ``.env``, then defaults)."""
    return Settings()
