"""Each figure's data equal its inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.report import plots, style


@pytest.fixture
def series():
    dates = pd.date_range("2010-01-31", periods=4, freq="ME")
    return pd.DataFrame({
        "strategy": ["a"] * 4 + ["b"] * 4,
        "date": list(dates) * 2,
        "net_return": [0.1, -0.5, 0.1, 0.0, 0.01, 0.02, -0.01, 0.0],
        "turnover": [1.0, 0.2, 0.1, 0.0, 1.0, 0.5, 0.5, 0.5],
    })  # fmt: skip


def test_equity_drawdown_turnover(series):
    equity = plots.equity_curves(series)
    np.testing.assert_allclose(equity.data[0].y, [1.1, 0.55, 0.605, 0.605])
    assert [trace.name for trace in equity.data] == ["a", "b"]
    drawdown = plots.drawdowns(series)
    np.testing.assert_allclose(drawdown.data[0].y, [0.0, -0.5, -0.45, -0.45])
    np.testing.assert_allclose(plots.turnover(series).data[1].y, [1.0, 0.5, 0.5, 0.5])


def test_sharpe_bars_with_confidence_interval():
    fig = plots.sharpe_bars({"x": [1.0, 2.0, 3.0], "y": [0.5, 0.5, 0.5]})
    np.testing.assert_allclose(fig.data[0].y, [2.0, 0.5])
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    np.testing.assert_allclose(fig.data[0].error_y.array, [half, 0.0])


def test_weights_importance_delta_losses():
    dates = pd.date_range("2010-01-31", periods=2, freq="ME")
    weights = pd.DataFrame({"strategy": "e2e", "date": np.repeat(dates, 2), "asset": ["p", "q"] * 2,
                            "weight": [0.3, 0.7, 0.6, 0.4]})  # fmt: skip
    fig = plots.weights_over_time(weights, "e2e")
    np.testing.assert_allclose(fig.data[0].y, [0.7, 0.4])  # the largest holding first
    with pytest.raises(ValueError, match=r"strategy: no weights stored for 'x', have \['e2e'\]"):
        plots.weights_over_time(weights, "x")
    importance = plots.factor_importance(["v", "q"], {"m1": [0.2, 0.8], "m2": [0.5, 0.5]})
    assert list(importance.data[1].y) == [0.5, 0.5] and list(importance.data[0].x) == ["v", "q"]
    assert list(plots.delta_distribution([0.1, 0.9]).data[0].x) == [0.1, 0.9]
    losses = plots.loss_curves({"e2e": {"train": [1.0, 0.5], "validation": [1.2, 0.9]}}, "t")
    assert [list(t.y) for t in losses.data] == [[1.0, 0.5], [1.2, 0.9]]


def test_one_colour_per_method_in_every_figure_and_many_seeds_faint():
    dates = pd.date_range("2010-01-31", periods=4, freq="ME")
    series = pd.concat([
        pd.DataFrame({"strategy": f"{arm}/seed={seed}", "date": dates,
                      "net_return": 0.01 * (seed + 1), "turnover": 0.1})
        for arm in ("e2e", "decoupled") for seed in (0, 1, 2)
    ])  # fmt: skip
    figures = [plots.equity_curves(series), plots.drawdowns(series), plots.turnover(series)]
    for fig in figures:
        colours = {}
        for trace in fig.data:
            method = trace.name.removesuffix(" (mean)")
            colours.setdefault(method, set()).add(trace.line.color)
        assert colours == {"e2e": {style.colour("e2e")}, "decoupled": {style.colour("decoupled")}}
        means = [t for t in fig.data if t.name.endswith("(mean)")]
        assert len(means) == 2 and all(t.opacity is None or t.opacity == 1 for t in means)
        assert "all" in fig.layout.title.text and "mean" in fig.layout.title.text
    equity = figures[0]
    mean_e2e = next(t for t in equity.data if t.name == "e2e (mean)")
    expected = np.mean([np.cumprod(np.full(4, 1 + 0.01 * (s + 1))) for s in range(3)], axis=0)
    np.testing.assert_allclose(mean_e2e.y, expected)
    bars = plots.sharpe_bars({"decision_aware": [1.0], "ledoit_wolf": [0.5]})
    assert list(bars.data[0].marker.color) == [style.colour("decision_aware"),
                                               style.colour("ledoit_wolf")]  # fmt: skip


def test_weights_of_many_assets_show_the_top_holdings_and_other():
    dates = pd.date_range("2010-01-31", periods=3, freq="ME")
    assets = [f"a{i:02d}" for i in range(40)]
    weights = pd.DataFrame([(d, a, (i + 1) / 820) for d in dates for i, a in enumerate(assets)],
                           columns=["date", "asset", "weight"]).assign(strategy="e2e")  # fmt: skip
    fig = plots.weights_over_time(weights, "e2e")
    names = [t.name for t in fig.data]
    assert names[:2] == ["a39", "a38"] and names[-1] == "other" and len(names) == 9
    np.testing.assert_allclose(np.sum([t.y for t in fig.data], axis=0), 1.0)
    assert "8 largest of 40" in fig.layout.title.text


def test_one_colour_per_method_and_none_shared():
    """Every arm of compare and every method of shrink has its own colour (old spellings of a
    stored run read as their slug), and the delta* histogram wears decision_aware's."""
    from e2e_portfolio.backtest.arm_specs import ARMS
    from e2e_portfolio.models.decision_shrinkage import BASELINES, METHODS
    from e2e_portfolio.report.plots import delta_distribution
    from e2e_portfolio.report.style import OTHER, STYLES, colour

    methods = set(ARMS) | set(METHODS) | set(BASELINES)
    assert methods <= set(STYLES)
    colours = [colour(m) for m in sorted(methods)]
    assert len(set(colours)) == len(colours) and OTHER[0] not in colours
    assert colour("decision-aware/seed=3") == colour("decision_aware")
    assert colour("plug-in") == colour("plug_in") != colour("ledoit_wolf")
    histogram = delta_distribution([0.2, 0.4]).data[0]
    assert histogram.marker.color == colour("decision_aware")


def test_long_histories_read_on_a_log_scale_and_per_year():
    """60 years: wealth on a log axis, turnover and weights as one point per year; 10 years
    stay monthly on a linear axis."""
    from e2e_portfolio.report.plots import equity_curves, turnover, weights_over_time

    rng = np.random.default_rng(42)

    def history(months: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        dates = pd.date_range("1960-01-31", periods=months, freq="ME")
        series = pd.concat([pd.DataFrame({"strategy": s, "date": dates,
                                          "net_return": rng.normal(0.008, 0.04, months),
                                          "turnover": rng.uniform(0, 0.5, months)})
                            for s in ("e2e", "decoupled")])  # fmt: skip
        weights = pd.DataFrame([{"strategy": "e2e", "date": d, "asset": a, "weight": 0.5}
                                for d in dates for a in ("A", "B")])  # fmt: skip
        return series, weights

    series, weights = history(720)
    assert equity_curves(series).layout.yaxis.type == "log"
    yearly = turnover(series)
    assert (
        all(len(trace.x) == 60 for trace in yearly.data) and "per year" in yearly.layout.title.text
    )
    stacked = weights_over_time(weights, "e2e")
    assert len(stacked.data[0].x) == 60
    np.testing.assert_allclose(stacked.data[0].y, 0.5)
    short, short_weights = history(120)
    assert equity_curves(short).layout.yaxis.type != "log"
    assert all(len(trace.x) == 120 for trace in turnover(short).data)
    assert len(weights_over_time(short_weights, "e2e").data[0].x) == 120
