"""Settings read from the environment or a ``.env`` file (all optional).

=====================  ==========================================================
variable               meaning
=====================  ==========================================================
``DB_PATH``            DuckDB file for stored panels and runs
                       (default ``./e2e_portfolio.duckdb``)
``SIGNALS_DB_PATH``    DuckDB file that ``scripts/download_data.py`` writes
                       price-based panels to (default: ``DB_PATH``)
``E2E_THREADS``        torch intra-op threads of the ``e2e`` command and of each
                       sweep worker (default 1, see :func:`configure_threads`)
``E2E_LOCK_TIMEOUT``   seconds a command waits for a store another process holds
                       before it gives up (default 30; the run then goes to a file)
=====================  ==========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("e2e_portfolio.duckdb")
DEFAULT_THREADS = 1
"""torch intra-op threads of the command line. The work is many small batched solves and
training steps (tens to hundreds of assets), where a second thread saves little and an
oversubscribed core costs a lot: measured on a 2-core machine, ``e2e compare --seeds 42``
takes 8.1 s with one thread and 7.9 s with two when the machine is idle, but 8.2 s against
14.7 s when another process keeps one core busy."""


class Settings(BaseSettings):
    """Paths of the local DuckDB files; the defaults need no ``.env``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    db_path: Path = DEFAULT_DB_PATH
    signals_db_path: Path | None = None
    e2e_threads: int = Field(default=DEFAULT_THREADS, ge=1)
    e2e_lock_timeout: float = Field(default=30.0, ge=0)

    @property
    def signals_path(self) -> Path:
        """Where downloaded price panels go: ``SIGNALS_DB_PATH`` or else ``DB_PATH``."""
        return self.signals_db_path or self.db_path


def get_settings() -> Settings:
    """Read the settings afresh (environment first, then ``.env``, then defaults)."""
    return Settings()


def export_threads(threads: int | None = None) -> int:
    """Choose and export the torch threads as ``E2E_THREADS``, without importing torch.

    ``threads``, else ``$E2E_THREADS``, else 1; never more than the cores. Returns the number.
    """
    wanted = threads if threads is not None else get_settings().e2e_threads
    if wanted < 1:
        raise ValueError(f"threads: expected a positive number of threads, got {wanted}")
    count = min(wanted, os.cpu_count() or 1)
    os.environ["E2E_THREADS"] = str(count)
    return count


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads``, else ``$E2E_THREADS``, else 1.

    The value is exported as ``E2E_THREADS`` so that worker processes (sweeps) use the same
    number; never more than the machine's cores. Returns the number set.
    """
    import torch

    count = export_threads(threads)
    torch.set_num_threads(count)
    return count
