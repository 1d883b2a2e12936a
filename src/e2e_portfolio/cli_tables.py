"""Rich tables the command line prints (presentation only, no computation of results)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rich.table import Table

from e2e_portfolio.backtest.metrics import PERIODS_PER_YEAR
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import Store


def panels_table(builtin: Mapping[str, str], store: Store) -> Table:
    """Built-in datasets and stored panels in one table."""
    table = Table(title="Datasets", title_justify="left")
    for column in ("name", "kind", "dates", "assets", "description"):
        table.add_column(column)
    for name, text in builtin.items():
        table.add_row(name, "built-in", "", "", text)
    if store.path.exists():
        for row in store.list_panels().itertuples():
            dates = f"{row.first_date:%Y-%m} .. {row.last_date:%Y-%m}"
            table.add_row(row.name, "stored", dates, str(row.n_assets), row.description)
    table.caption = f"store: {store.path}" + ("" if store.path.exists() else " (not created yet)")
    return table


def panel_summary_table(panel: FactorPanel, max_assets: int = 25) -> Table:
    """Per-asset annualised mean, volatility and Sharpe of a panel's returns."""
    returns = panel.returns
    mean = returns.mean(axis=0) * PERIODS_PER_YEAR
    vol = returns.std(axis=0, ddof=1) * np.sqrt(PERIODS_PER_YEAR)
    sharpe = np.divide(mean, vol, out=np.zeros_like(mean), where=vol > 0)
    table = Table(
        title=(
            f"{panel.name}: {panel.n_assets} assets, {panel.n_dates} dates "
            f"{panel.dates[0]:%Y-%m} .. {panel.dates[-1]:%Y-%m}"
        ),
        title_justify="left",
        caption=f"{panel.description}\nfeatures: {', '.join(panel.features)}",
        caption_justify="left",
    )
    table.add_column("asset")
    for column in ("ann. mean", "ann. vol", "Sharpe", "min", "max"):
        table.add_column(column, justify="right")
    for j in range(min(panel.n_assets, max_assets)):
        table.add_row(
            panel.assets[j],
            f"{mean[j]:.2%}",
            f"{vol[j]:.2%}",
            f"{sharpe[j]:.2f}",
            f"{returns[:, j].min():.2%}",
            f"{returns[:, j].max():.2%}",
        )
    if panel.n_assets > max_assets:
        table.add_row(f"... {panel.n_assets - max_assets} more", "", "", "", "", "")
    table.add_section()
    ew = returns.mean(axis=1)
    ew_mean, ew_vol = ew.mean() * PERIODS_PER_YEAR, ew.std(ddof=1) * np.sqrt(PERIODS_PER_YEAR)
    table.add_row(
        "equal weight", f"{ew_mean:.2%}", f"{ew_vol:.2%}", f"{ew_mean / ew_vol:.2f}",
        f"{ew.min():.2%}", f"{ew.max():.2%}",
    )  # fmt: skip
    return table
