"""One self-contained HTML file per stored run, leading with its verdict.

First screen: the headline and the paired differences (:mod:`e2e_portfolio.report.verdict`),
then the per-seed edges chart, then the figures (one colour per method, all seeds faintly
with their mean), then the statistics with seeds in numeric order, and the configuration
last. plotly.js is inlined once, so the file opens offline and makes no network request.
"""

from __future__ import annotations

import html
import json

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from e2e_portfolio.data.store import RunRecord
from e2e_portfolio.report import plots
from e2e_portfolio.report.style import method_of, seed_of
from e2e_portfolio.report.verdict import verdict_of

MAX_TABLE_ROWS = 40
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.figure { margin: 1rem 0; }
.headline { font-size: 1.1rem; margin: 0.3rem 0; }
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


def table_html(frame: pd.DataFrame) -> str:
    """``frame`` as an HTML table of at most ``MAX_TABLE_ROWS`` rows (saying how many more)."""
    shown = frame.head(MAX_TABLE_ROWS)
    text = shown.to_html(float_format=lambda v: f"{v:.4g}", border=0, escape=True)
    if len(frame) > MAX_TABLE_ROWS:
        text += f"<p>... {len(frame) - MAX_TABLE_ROWS} more rows in the store.</p>"
    return text


def formatted_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """Statistics (one row per strategy, :class:`StrategyStats` columns) as text to show.

    Percentages as percentages, drawdowns negative, months as integers.
    """
    return pd.DataFrame({
        "Sharpe": stats["sharpe"].map(lambda v: f"{v:.3f}"),
        "annual return": stats["annualised_return"].map(lambda v: f"{v:.2%}"),
        "annual volatility": stats["annualised_volatility"].map(lambda v: f"{v:.2%}"),
        "max drawdown": stats["max_drawdown"].map(lambda v: f"{-v:.2%}"),
        "turnover": stats["turnover"].map(lambda v: f"{v:.3f}"),
        "months": stats["n_periods"].map(lambda v: f"{int(v)}"),
    }, index=stats.index)  # fmt: skip


def _stats_frame(run: RunRecord) -> pd.DataFrame:
    """The run's statistics to show, seeds in numeric order."""
    stats = pd.DataFrame({k: v.model_dump() for k, v in run.stats.items()}).T
    if stats.empty:
        return stats
    order = sorted(stats.index, key=lambda name: (method_of(name), seed_of(name) or -1))
    return formatted_stats(stats.loc[order])


def _arms_frame(run: RunRecord) -> pd.DataFrame:
    """Per arm across seeds (a compare run over seeds): mean and spread of net Sharpe, turnover."""
    m = run.metrics
    if run.kind != "compare" or "per_seed" not in m or "mean" not in m:
        return pd.DataFrame()
    per_seed = pd.DataFrame(m["per_seed"])
    rows = {}
    for arm in m["arms"]:
        sharpe = per_seed.loc[per_seed["arm"] == arm, "sharpe"].astype(float)
        rows[arm] = {"mean Sharpe": f"{m['mean'][arm]['sharpe']:.3f}",
                     "sd across seeds": f"{sharpe.std(ddof=1):.3f}" if len(sharpe) > 1 else "",
                     "min": f"{sharpe.min():.3f}", "max": f"{sharpe.max():.3f}",
                     "mean turnover": f"{m['mean'][arm]['turnover']:.3f}"}  # fmt: skip
    return pd.DataFrame(rows).T


def build_report(run: RunRecord) -> str:
    """The HTML text of the report of ``run``: verdict first, configuration last."""
    verdict = verdict_of(run)
    figures = run_figures(run)
    if verdict.figure is not None:
        figures = {"paired edges": verdict.figure, **figures}
    stats = _stats_frame(run)
    arms = _arms_frame(run)
    config = pd.DataFrame(
        {"value": [json.dumps(v) for v in run.config.values()]}, index=list(run.config)
    )
    parts = [verdict.html(), "<h2>Figures</h2>", *figure_divs(figures)]
    if not arms.empty:
        parts += [f"<h2>Arms over {len(run.metrics['seeds'])} seeds</h2>", table_html(arms)]
    if not stats.empty:
        parts += ["<h2>Out-of-sample statistics</h2>", table_html(stats)]
    created = html.escape(str(run.created_at))
    parts += ["<h2>Configuration</h2>", table_html(config), f"<p>created {created} UTC</p>"]
    return page(f"{run.kind} run {run.run_id}", parts)


def figure_divs(figures: dict[str, go.Figure]) -> list[str]:
    """Each figure as a ``div`` (id ``figure-<key>``) that uses the page's plotly.js."""
    divs = []
    for key, figure in figures.items():
        div = figure.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"figure-{key.replace(' ', '-')}"
        )
        divs.append(f"<div class='figure'>{div}</div>")
    return divs


def page(title: str, parts: list[str]) -> str:
    """A whole HTML page: ``title`` as its heading, ``parts`` below, plotly.js inlined once."""
    return "\n".join([
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>e2e-portfolio report {html.escape(title)}</title>",
        f"<style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *parts,
        "</body></html>",
    ])  # fmt: skip
