"""Data sources (synthetic, offline real data, yfinance) and the DuckDB store.

Modules are imported one by one (``from e2e_portfolio.data.panel import FactorPanel``):
the synthetic simulation needs numpy only and also runs in the browser.
"""
