#!/usr/bin/env python3
"""Download daily prices from Yahoo Finance and store them as a monthly factor panel.

Needs the network and the ``yfinance`` extra (``pip install 'e2e-portfolio[yfinance]'``).
The panel goes to ``$SIGNALS_DB_PATH`` (else ``$DB_PATH``, else ``./e2e_portfolio.duckdb``);
use it afterwards as ``--data NAME`` or inspect it with ``e2e data show NAME``.

Example::

    python scripts/download_data.py AAPL MSFT KO PEP XOM --name megacaps --start 2005-01-01
"""

from __future__ import annotations

import argparse
import sys

from e2e_portfolio.config import get_settings
from e2e_portfolio.data.fetchers import fetch_prices, prices_to_panel
from e2e_portfolio.data.store import Store
from e2e_portfolio.exceptions import E2EPortfolioError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tickers", nargs="+", help="ticker symbols (at least two)")
    parser.add_argument("--name", default="yfinance", help="panel name in the store")
    parser.add_argument("--start", default="2005-01-01", help="first date, ISO format")
    parser.add_argument("--end", default=None, help="last date, ISO format (default: today)")
    parser.add_argument("--replace", action="store_true", help="overwrite a stored panel")
    args = parser.parse_args(argv)
    store = Store(get_settings().signals_path)
    try:
        prices = fetch_prices(args.tickers, start=args.start, end=args.end)
        panel = prices_to_panel(prices, name=args.name, description=f"yfinance {args.tickers}")
        store.write_panel(panel, replace=args.replace)
    except (E2EPortfolioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"stored {panel.name}: {panel.n_assets} assets x {panel.n_dates} months in {store.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
