"""Plotly figures of runs.

Training curves, Sharpe ratios, equity, drawdowns, weights, turnover, factor importance,
chosen shrinkage. Each function takes plain data (frames,
arrays, dicts) and returns a ``plotly.graph_objects.Figure``; nothing is computed that a
test could not check against the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

LAYOUT = {"template": "plotly_white", "height": 380, "margin": {"l": 60, "r": 20, "t": 50, "b": 40}}


def _figure(title: str, x_title: str = "", y_title: str = "") -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, **LAYOUT)
    return fig


def loss_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], title: str) -> go.Figure:
    """One line per model and split: ``histories[model][split]`` per epoch (epoch 0 = untrained)."""
    fig = _figure(title, "epoch", "value")
    for model, history in histories.items():
        for split, values in history.items():
            fig.add_scatter(
                x=list(range(len(values))), y=list(values), mode="lines+markers",
                name=f"{model}: {split}", line={"dash": "solid" if split == "train" else "dot"},
            )  # fmt: skip
    return fig


def sharpe_bars(
    sharpe_by_method: Mapping[str, Sequence[float]], confidence: float = 0.95
) -> go.Figure:
    """Mean out-of-sample Sharpe per method across seeds, with t-interval error bars."""
    methods = list(sharpe_by_method)
    means, halves = [], []
    for method in methods:
        values = np.asarray(sharpe_by_method[method], dtype=np.float64)
        means.append(float(values.mean()))
        half = 0.0
        if values.size > 1:
            half = float(
                stats.t.ppf(0.5 + confidence / 2, values.size - 1)
                * values.std(ddof=1)
                / math.sqrt(values.size)
            )
        halves.append(half)
    fig = _figure(f"Mean out-of-sample Sharpe ({confidence:.0%} CI across seeds)", "", "Sharpe")
    fig.add_bar(x=methods, y=means, error_y={"type": "data", "array": halves, "visible": True})
    return fig


def equity_curves(series: pd.DataFrame) -> go.Figure:
    """Compounded wealth of each strategy; series: strategy, date, net_return."""
    fig = _figure("Equity curves (net of costs)", "", "wealth")
    for strategy, group in series.groupby("strategy", sort=False):
        fig.add_scatter(
            x=group["date"],
            y=np.cumprod(1 + group["net_return"].to_numpy()),
            name=strategy,
            mode="lines",
        )
    return fig


def drawdowns(series: pd.DataFrame) -> go.Figure:
    """Fall of wealth from its running peak, per strategy."""
    fig = _figure("Drawdowns", "", "drawdown")
    for strategy, group in series.groupby("strategy", sort=False):
        wealth = np.cumprod(1 + group["net_return"].to_numpy())
        peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
        fig.add_scatter(x=group["date"], y=wealth / peak - 1, name=strategy, mode="lines")
    fig.update_yaxes(tickformat=".0%")
    return fig


def turnover(series: pd.DataFrame) -> go.Figure:
    """One-way turnover per period, per strategy."""
    fig = _figure("Turnover", "", "||w_t - w_t-1||_1")
    for strategy, group in series.groupby("strategy", sort=False):
        fig.add_scatter(x=group["date"], y=group["turnover"], name=strategy, mode="lines")
    return fig


def weights_over_time(weights: pd.DataFrame, strategy: str) -> go.Figure:
    """Stacked weights of one strategy; weights: strategy, date, asset, weight."""
    chosen = weights[weights["strategy"] == strategy]
    if chosen.empty:
        stored = sorted(weights["strategy"].unique())
        raise ValueError(f"strategy: no weights stored for {strategy!r}, have {stored}")
    fig = _figure(f"Weights: {strategy}", "", "weight")
    for asset, group in chosen.groupby("asset", sort=False):
        fig.add_scatter(
            x=group["date"], y=group["weight"], name=str(asset), mode="lines", stackgroup="weights"
        )
    return fig


def factor_importance(features: Sequence[str], shares: Mapping[str, Sequence[float]]) -> go.Figure:
    """Grouped bars of each model's importance share per feature."""
    fig = _figure("Factor importance (share of gradient saliency)", "", "share")
    for model, values in shares.items():
        fig.add_bar(x=list(features), y=list(values), name=model)
    fig.update_layout(barmode="group")
    return fig


def delta_distribution(deltas: Sequence[float]) -> go.Figure:
    """Histogram of the decision-aware shrinkage chosen per seed."""
    fig = _figure("Chosen shrinkage delta* (mean per seed)", "delta*", "seeds")
    fig.add_histogram(x=list(deltas), xbins={"start": 0.0, "end": 1.0, "size": 0.05})
    return fig
