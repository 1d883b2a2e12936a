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
    bars = plots.sharpe_bars({"decision-aware": [1.0], "ledoit-wolf": [0.5]})
    assert list(bars.data[0].marker.color) == [style.colour("decision-aware"),
                                               style.colour("ledoit-wolf")]  # fmt: skip


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
