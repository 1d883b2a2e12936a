"""End-to-end (decision-focused) portfolio optimisation.

The package is laid out along the pipeline:

- :mod:`e2e_portfolio.data` — synthetic factor universe, offline real data, DuckDB store;
- :mod:`e2e_portfolio.models` — differentiable mean-variance QP layer, predictors, training,
  decision-aware covariance shrinkage;
- :mod:`e2e_portfolio.backtest` — walk-forward backtests and strategy statistics;
- :mod:`e2e_portfolio.attribution` and :mod:`e2e_portfolio.report` — factor importance, figures;
- :mod:`e2e_portfolio.cli` — the ``e2e`` command line.
"""

from __future__ import annotations

__version__ = "0.1.0"
