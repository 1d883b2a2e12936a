"""The ``e2e`` command line: parses options, calls the library, presents the results.

Run ``e2e --help`` for the commands; every command has its own ``--help``. One module per
group of commands (:mod:`.data`, :mod:`.experiments`, :mod:`.sweep`, :mod:`.outputs`) registers
them on the
shared app of :mod:`.base`; :mod:`.tables` draws the rich tables.
"""

from __future__ import annotations

from e2e_portfolio.apps.cli import data, experiments, outputs, sweep  # noqa: F401 - registers
from e2e_portfolio.apps.cli.base import app, reflow_help

reflow_help(app)

__all__ = ["app"]
