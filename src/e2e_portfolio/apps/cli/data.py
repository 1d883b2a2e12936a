"""``e2e data``: load, list, show and delete the panels in the DuckDB store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e2e_portfolio.apps.cli.base import (
    console,
    data_app,
    err_console,
    handled,
    store_of,
    writable_store_of,
)
from e2e_portfolio.apps.cli.tables import (
    panel_summary_table,
    panels_table,
)
from e2e_portfolio.data.datasets import (
    BUILTIN_DATASETS,
    FRENCH_UNIVERSES,
)
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import Store


@data_app.command("list")
@handled()
def data_list(ctx: typer.Context) -> None:
    """List the built-in datasets and the panels stored in the DuckDB file."""
    console.print(panels_table(BUILTIN_DATASETS, store_of(ctx)))


@data_app.command("load")
@handled()
def data_load(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(BUILTIN_DATASETS)}.", show_default=False)
    ],
    name: Annotated[
        str | None, typer.Option("--as", help="Store under this name (default: the dataset's).")
    ] = None,
    n_assets: Annotated[int, typer.Option(help="synthetic: number of assets.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="synthetic: number of months.", min=2)] = 96,
    seed: Annotated[int, typer.Option(help="synthetic: random seed.", min=0)] = 42,
    universe: Annotated[
        str, typer.Option(help=f"french: one of {', '.join(FRENCH_UNIVERSES)}.")
    ] = "industries",
    tickers: Annotated[
        str | None, typer.Option(help="yfinance: comma-separated symbols, e.g. AAPL,MSFT,KO.")
    ] = None,
    start: Annotated[str, typer.Option(help="yfinance: first date (ISO).")] = "2005-01-01",
    replace: Annotated[bool, typer.Option(help="Overwrite a stored panel of that name.")] = False,
) -> None:
    """Build a panel from a data source and store it in the DuckDB file."""
    store = writable_store_of(ctx)
    target = name or dataset
    panel = _build_panel(store, dataset, target, n_assets, n_months, seed, universe, tickers, start)
    store.write_panel(panel, replace=replace)
    console.print(
        f"Stored panel [bold]{panel.name}[/]: {panel.n_assets} assets x {panel.n_dates} dates "
        f"x {panel.n_features} features in {store.path}"
    )


def _build_panel(
    store: Store,
    dataset: str,
    name: str,
    n_assets: int,
    n_months: int,
    seed: int,
    universe: str,
    tickers: str | None,
    start: str,
) -> FactorPanel:
    if dataset in ("synthetic", "french", "sp500"):
        from e2e_portfolio.experiments import resolve_panel

        return resolve_panel(dataset, store, universe, n_assets, n_months, seed, name=name)
    if dataset == "yfinance":
        from e2e_portfolio.data.fetchers import fetch_prices, prices_to_panel

        if not tickers:
            raise ValueError("--tickers: expected comma-separated symbols for yfinance, got none")
        symbols = tickers.split(",")
        return prices_to_panel(
            fetch_prices(symbols, start=start), name=name, description=f"yfinance {symbols}"
        )
    raise ValueError(f"DATASET: expected one of {list(BUILTIN_DATASETS)}, got {dataset!r}")


@data_app.command("show")
@handled()
def data_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of a stored panel.", show_default=False)],
    max_assets: Annotated[int, typer.Option(help="Show at most this many assets.", min=1)] = 25,
) -> None:
    """Summarise a stored panel: dates, features, and mean/volatility/Sharpe per asset."""
    panel = store_of(ctx).read_panel(name)
    console.print(panel_summary_table(panel, max_assets=max_assets))


@data_app.command("delete")
@handled()
def data_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of a stored panel.", show_default=False)],
) -> None:
    """Remove a stored panel."""
    store = store_of(ctx)
    store.delete_panel(name)
    console.print(f"Deleted panel [bold]{name}[/] from {store.path}")


@data_app.command("import")
@handled()
def data_import(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A .csv or .parquet file of returns.", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Store the panel under this name.")],
    percent: Annotated[bool, typer.Option(help="Returns are in percent (1.2 = 1.2%).")] = False,
    replace: Annotated[bool, typer.Option(help="Overwrite a stored panel of that name.")] = False,
    sectors: Annotated[
        Path | None,
        typer.Option(help="A CSV/Parquet of asset,sector rows, for compare --sector-max."),
    ] = None,
) -> None:
    """Import your own returns from a CSV or Parquet file.

    Wide layout: a date column, then one column per asset. Long layout: columns date, asset,
    return, and optional characteristic columns, which become the exposures (without them
    the past-only features momentum, reversal, volatility and beta are built). Daily or
    weekly returns are compounded to months. Every problem is reported with its row and
    column. Then use the panel with --data NAME in shrink, compare and data show.
    """
    from e2e_portfolio.data.importer import import_returns

    store = writable_store_of(ctx)
    result = import_returns(path, name, percent=percent, sectors=sectors)
    for note in result.notes:
        err_console.print(f"[bold]note:[/] {note}")
    store.write_panel(result.panel, replace=replace)
    panel = result.panel
    console.print(
        f"Imported panel [bold]{panel.name}[/] ({result.layout}, {result.frequency}): "
        f"{panel.n_assets} assets x {panel.n_dates} months {panel.dates[0]:%Y-%m} .. "
        f"{panel.dates[-1]:%Y-%m} x {panel.n_features} features in {store.path}"
    )
