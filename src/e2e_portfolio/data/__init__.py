"""Data sources (synthetic, offline real data, yfinance) and the DuckDB store.

The synthetic simulation needs numpy only and also runs in the browser; the names below are
imported on first use, so ``import e2e_portfolio.data.synthetic`` pulls in nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.data.datasets import load_french, load_sp500
    from e2e_portfolio.data.features import build_features
    from e2e_portfolio.data.panel import FactorPanel
    from e2e_portfolio.data.store import RunRecord, Store
    from e2e_portfolio.data.synthetic import DGPParams, simulate_universe

_EXPORTS = {
    "FactorPanel": "panel",
    "simulate_universe": "synthetic",
    "DGPParams": "synthetic",
    "load_french": "datasets",
    "load_sp500": "datasets",
    "build_features": "features",
    "Store": "store",
    "RunRecord": "store",
}
__all__ = [
    "DGPParams",
    "FactorPanel",
    "RunRecord",
    "Store",
    "build_features",
    "load_french",
    "load_sp500",
    "simulate_universe",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
