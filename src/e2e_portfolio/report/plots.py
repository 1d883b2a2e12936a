"""Plotly figures of runs.

Training curves, Sharpe ratios, paired edges, equity, drawdowns, weights, turnover, factor
importance, chosen shrinkage. Each function takes plain data (frames, arrays, dicts) and
returns a ``plotly.graph_objects.Figure``; nothing is computed that a test could not check
against the inputs. Every trace takes its method's colour and dash from
:mod:`e2e_portfolio.report.style`. Series named ``method/seed=N`` (one per seed) are drawn
faintly, one legend entry per method, with the mean across seeds drawn boldly on top.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy import stats

from e2e_portfolio.report.style import colour, dash, method_of, seed_of

TOP_HOLDINGS = 8
"""Weights charts show this many largest holdings and the rest as "other"."""
LAYOUT = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0},
}
"""Every figure's frame; the legend runs below the plot, so a narrow page (a report embedded
in the app) never squeezes it into single letters."""


LONG_HISTORY = 240
"""Months (20 years) beyond which equity is drawn on a log scale and turnover and weights per
year."""


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
                name=f"{model}: {split}",
                line={"color": colour(model), "dash": "solid" if split == "train" else "dot"},
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
    fig.add_bar(x=methods, y=means, error_y={"type": "data", "array": halves, "visible": True},
                marker={"color": [colour(m) for m in methods]})  # fmt: skip
    return fig


def _per_seed(series: pd.DataFrame) -> bool:
    return bool(series["strategy"].map(seed_of).notna().any())


def _lines(fig: go.Figure, series: pd.DataFrame, values) -> go.Figure:
    """One trace per strategy of ``values(group) -> y``; per-seed series faint, mean bold."""
    faint = _per_seed(series)
    paths: dict[str, list[tuple[pd.Series, np.ndarray]]] = {}
    for strategy, group in series.groupby("strategy", sort=False):
        method, y = method_of(str(strategy)), np.asarray(values(group))
        paths.setdefault(method, []).append((group["date"], y))
        fig.add_scatter(
            x=group["date"], y=y, mode="lines", name=method if faint else strategy,
            legendgroup=method, showlegend=not faint,
            opacity=0.18 if faint else 1.0,
            line={"color": colour(str(strategy)), "dash": dash(str(strategy)),
                  "width": 1 if faint else 2},
            hovertemplate=f"{strategy}<br>%{{x|%Y-%m}}: %{{y:.3f}}<extra></extra>",
        )  # fmt: skip
    if faint:  # the mean across seeds, bold, one legend entry per method
        for method, per_seed in paths.items():
            length = min(len(y) for _, y in per_seed)
            fig.add_scatter(
                x=per_seed[0][0].iloc[:length],
                y=np.mean([y[:length] for _, y in per_seed], axis=0), mode="lines",
                name=f"{method} (mean)", legendgroup=method,
                line={"color": colour(method), "dash": dash(method), "width": 3},
            )  # fmt: skip
    return fig


def _long(series: pd.DataFrame) -> bool:
    """More than :data:`LONG_HISTORY` months per strategy: log wealth, yearly bars."""
    return bool(series.groupby("strategy")["date"].nunique().max() > LONG_HISTORY)


def _yearly(frame: pd.DataFrame, value: str, keys: Sequence[str]) -> pd.DataFrame:
    """Mean of ``value`` per calendar year and ``keys``, dated at the year's last month."""
    years = frame["date"].dt.year.rename("year")
    out = frame.groupby([*keys, years], sort=False).agg(date=("date", "max"), **{value: (
        value, "mean")}).reset_index()  # fmt: skip
    return out.drop(columns="year")


def equity_curves(series: pd.DataFrame) -> go.Figure:
    """Compounded wealth of each strategy; series: strategy, date, net_return.

    Over long histories wealth is drawn on a log scale, where equal growth rates are equal
    slopes (on a linear one sixty years look flat until the last two decades).
    """
    title = "Equity curves (net of costs)"
    if _per_seed(series):
        title += f": all {series['strategy'].map(seed_of).nunique()} seeds (faint) and mean"
    long = _long(series)
    fig = _lines(_figure(title + (", log scale" if long else ""), "", "wealth"), series,
                 lambda g: np.cumprod(1 + g["net_return"].to_numpy()))  # fmt: skip
    if long:
        fig.update_yaxes(type="log")
    return fig


def drawdowns(series: pd.DataFrame) -> go.Figure:
    """Fall of wealth from its running peak (negative), per strategy."""
    title = "Drawdowns (fall from the running peak)"
    if _per_seed(series):
        title += ": all seeds (faint) and mean"

    def fall(group: pd.DataFrame) -> np.ndarray:
        wealth = np.cumprod(1 + group["net_return"].to_numpy())
        peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
        return wealth / peak - 1

    fig = _lines(_figure(title, "", "drawdown"), series, fall)
    fig.update_yaxes(tickformat=".0%")
    return fig


def turnover(series: pd.DataFrame) -> go.Figure:
    """Two-sided turnover per period (buys plus sells against the drifted book)."""
    title = "Turnover ||w_t - h_t-1||_1 (two-sided)"
    if _per_seed(series):
        title += ": all seeds (faint) and mean"
    if _long(series):  # hundreds of monthly spikes read as noise: the mean of each year
        series = _yearly(series, "turnover", ["strategy"])
        title += ", mean per year"
    return _lines(_figure(title, "", "turnover"), series, lambda g: g["turnover"].to_numpy())


def paired_edges(
    edges: Mapping[str, Sequence[float]], intervals: Mapping[str, tuple[float, float]]
) -> go.Figure:
    """Per-seed paired differences in Sharpe (dots), their mean and 95% interval (bar)."""
    fig = _figure("Paired edges per seed (dots), mean and 95% interval", "", "Sharpe difference")
    for i, (label, values) in enumerate(edges.items()):
        method = label.split(" - ")[0]
        low, high = intervals[label]
        mean = float(np.mean(values))
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        fig.add_scatter(x=i + jitter, y=list(values), mode="markers", name=label,
                        marker={"color": colour(method), "size": 6, "opacity": 0.6},
                        showlegend=False)  # fmt: skip
        fig.add_scatter(x=[i], y=[mean], mode="markers", name=f"{label}: mean",
                        marker={"color": colour(method), "size": 13, "symbol": "diamond",
                                "line": {"color": "black", "width": 1}},
                        error_y={"type": "data", "symmetric": False, "array": [high - mean],
                                 "arrayminus": [mean - low], "color": "black", "width": 8},
                        showlegend=False)  # fmt: skip
    fig.add_hline(y=0, line={"color": "#666", "width": 1})
    fig.update_xaxes(tickvals=list(range(len(edges))), ticktext=list(edges))
    return fig


SYMBOLS = ("circle", "square", "triangle-up", "diamond-wide")


def sweep_edges(
    edges: Mapping[str, Mapping[str, Sequence[float]]],
    intervals: Mapping[str, Mapping[str, tuple[float, float]]],
) -> go.Figure:
    """Paired edges of a sweep: per comparison, per configuration, seeds (dots) and mean + CI.

    ``edges[comparison][configuration]`` holds the per-seed differences and
    ``intervals[comparison][configuration]`` the 95% interval. Each comparison takes its
    arm's colour and its own marker; configurations run along the x axis.
    """
    fig = _figure("Paired edges per configuration: seeds (dots), mean and 95% interval",
                  "configuration", "Sharpe difference")  # fmt: skip
    configurations = list(dict.fromkeys(c for by_config in edges.values() for c in by_config))
    width = 0.6 / max(len(edges), 1)
    for j, (label, by_config) in enumerate(edges.items()):
        method = label.split(" - ")[0]
        offset = (j - (len(edges) - 1) / 2) * width
        xs = [configurations.index(c) + offset for c in by_config]
        means = [float(np.mean(v)) for v in by_config.values()]
        dots_x = [x + d for x, v in zip(xs, by_config.values(), strict=True)
                  for d in np.linspace(-width / 3, width / 3, len(v)) * (len(v) > 1)]  # fmt: skip
        dots_y = [float(d) for v in by_config.values() for d in v]
        symbol = SYMBOLS[j % len(SYMBOLS)]
        fig.add_scatter(x=dots_x, y=dots_y, mode="markers", name=label, legendgroup=label,
                        showlegend=False, hoverinfo="skip",
                        marker={"color": colour(method), "size": 6, "opacity": 0.5,
                                "symbol": symbol})  # fmt: skip
        low = [intervals[label][c][0] for c in by_config]
        high = [intervals[label][c][1] for c in by_config]
        fig.add_scatter(x=xs, y=means, mode="markers", name=label, legendgroup=label,
                        marker={"color": colour(method), "size": 12, "symbol": symbol,
                                "line": {"color": "black", "width": 1}},
                        error_y={"type": "data", "symmetric": False,
                                 "array": [h - m for h, m in zip(high, means, strict=True)],
                                 "arrayminus": [m - lo for lo, m in zip(low, means, strict=True)],
                                 "color": "black", "width": 6})  # fmt: skip
    fig.add_hline(y=0, line={"color": "#666", "width": 1})
    fig.update_xaxes(tickvals=list(range(len(configurations))), ticktext=configurations)
    fig.update_layout(legend={"orientation": "h", "y": -0.2})
    return fig


def weights_over_time(weights: pd.DataFrame, strategy: str) -> go.Figure:
    """Stacked weights of one strategy: its largest holdings and the rest as "other".

    weights: strategy, date, asset, weight. The ``TOP_HOLDINGS`` assets with the largest
    mean absolute weight keep their own band; the others are summed.
    """
    chosen = weights[weights["strategy"] == strategy]
    if chosen.empty:
        stored = sorted(weights["strategy"].unique())
        raise ValueError(f"strategy: no weights stored for {strategy!r}, have {stored}")
    yearly = chosen["date"].nunique() > LONG_HISTORY
    if yearly:  # one band per year: hundreds of months of stacked weights are unreadable
        chosen = _yearly(chosen, "weight", ["strategy", "asset"])
    wide = chosen.pivot_table(index="date", columns="asset", values="weight", sort=False)
    order = wide.abs().mean().sort_values(ascending=False).index
    top = list(order[:TOP_HOLDINGS])
    bands = wide[top]
    if len(order) > TOP_HOLDINGS:
        bands = bands.assign(other=wide[list(order[TOP_HOLDINGS:])].sum(axis=1))
    n_assets = len(order)
    fig = _figure(f"Weights of {strategy}: the {len(top)} largest of {n_assets} holdings"
                  + (" and the rest" if n_assets > len(top) else "")
                  + (", mean per year" if yearly else ""), "", "weight")  # fmt: skip
    palette = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
               "#000000"]  # fmt: skip
    for i, asset in enumerate(bands.columns):
        fill = "#BBBBBB" if asset == "other" else palette[i % len(palette)]
        fig.add_scatter(x=bands.index, y=bands[asset], name=str(asset), mode="lines",
                        stackgroup="weights", line={"color": fill, "width": 0.5})  # fmt: skip
    fig.update_yaxes(tickformat=".0%")
    return fig


def factor_importance(features: Sequence[str], shares: Mapping[str, Sequence[float]]) -> go.Figure:
    """Grouped bars of each model's importance share per feature."""
    fig = _figure("Factor importance (share of gradient saliency)", "", "share")
    for model, values in shares.items():
        fig.add_bar(x=list(features), y=list(values), name=model,
                    marker={"color": colour(model)})  # fmt: skip
    fig.update_layout(barmode="group")
    return fig


def delta_distribution(deltas: Sequence[float]) -> go.Figure:
    """Histogram of the decision-aware shrinkage chosen per seed."""
    fig = _figure("Chosen shrinkage delta* (mean per seed)", "delta*", "seeds")
    fig.add_histogram(x=list(deltas), xbins={"start": 0.0, "end": 1.0, "size": 0.05},
                      marker={"color": colour("decision_aware")})  # fmt: skip
    return fig
