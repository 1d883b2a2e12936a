"""Data sources (synthetic, offline real data, yfinance) and the DuckDB store."""

from e2e_portfolio.data.panel import FactorPanel

__all__ = ["FactorPanel"]
