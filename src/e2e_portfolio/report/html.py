"""One self-contained HTML file per stored run: its configuration, tables and figures.

plotly.js is inlined once, so the file opens offline and makes no network request.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from e2e_portfolio.data.store import RunRecord
from e2e_portfolio.report import plots

MAX_TABLE_ROWS = 40
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.figure { margin: 1rem 0; }
"""


def run_figures(run: RunRecord) -> dict[str, go.Figure]:
    """The figures that fit the kind of run, keyed by title."""
    figures: dict[str, go.Figure] = {}
    series = run.series
    if run.kind == "shrink" and run.config.get("data") == "synthetic":
        rows = run.metrics["rows"]
        methods = [k.removeprefix("sharpe_") for k in rows[0] if k.startswith("sharpe_")]
        figures["sharpe"] = plots.sharpe_bars(
            {m: [r[f"sharpe_{m}"] for r in rows] for m in methods}
        )
        figures["delta"] = plots.delta_distribution(run.metrics["delta_star"])
        first = f"/seed={rows[0]['seed']}"
        series = series[series["strategy"].str.endswith(first)]
    if run.kind == "attribution":
        figures["importance"] = plots.factor_importance(
            run.metrics["features"], run.metrics["mean_shares"]
        )
    if not series.empty:
        figures["equity"] = plots.equity_curves(series)
        figures["drawdowns"] = plots.drawdowns(series)
        figures["turnover"] = plots.turnover(series)
    for strategy in ("e2e", "decoupled"):
        if not run.weights.empty and strategy in set(run.weights["strategy"]):
            figures[f"weights {strategy}"] = plots.weights_over_time(run.weights, strategy)
    histories = run.metrics.get("training_histories", {})
    for model, label in (("decoupled", "MSE"), ("e2e", "net Sharpe")):
        if histories.get(model):
            title = f"{model} training, last refit ({label})"
            figures[f"training {model}"] = plots.loss_curves({model: histories[model][-1]}, title)
    return figures


def _table(frame: pd.DataFrame) -> str:
    shown = frame.head(MAX_TABLE_ROWS)
    text = shown.to_html(float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    if len(frame) > MAX_TABLE_ROWS:
        text += f"<p>... {len(frame) - MAX_TABLE_ROWS} more rows in the store.</p>"
    return text


def _scalars(values: Mapping, prefix: str = "") -> dict[str, object]:
    """Flatten the numbers and strings of nested dicts (lists are left out)."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_scalars(value, f"{name}."))
        elif isinstance(value, int | float | str | bool) or value is None:
            flat[name] = value
    return flat


def build_report(run: RunRecord) -> str:
    """The HTML text of the report of ``run``."""
    figures = run_figures(run)
    stats = pd.DataFrame({k: v.model_dump() for k, v in run.stats.items()}).T
    config = pd.DataFrame(
        {"value": [json.dumps(v) for v in run.config.values()]}, index=list(run.config)
    )
    summary = _scalars(run.metrics)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>e2e-portfolio report {html.escape(run.run_id)}</title>",
        f"<style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>{html.escape(run.kind)} run {html.escape(run.run_id)}</h1>",
        f"<p>created {html.escape(str(run.created_at))} UTC</p>",
        "<h2>Configuration</h2>", _table(config),
    ]  # fmt: skip
    if summary:
        frame = pd.DataFrame({"value": list(summary.values())}, index=list(summary))
        parts += ["<h2>Summary</h2>", _table(frame)]
    if not stats.empty:
        parts += ["<h2>Out-of-sample statistics</h2>", _table(stats)]
    parts.append("<h2>Figures</h2>")
    for key, figure in figures.items():
        div = figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"figure-{key.replace(' ', '-')}"
        )
        parts.append(f"<div class='figure'>{div}</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
