"""Rich tables the command line prints (presentation only, no computation of results)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from rich import box
from rich.table import Table

from e2e_portfolio.annualisation import PERIODS_PER_YEAR
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import Store
from e2e_portfolio.models.decision_shrinkage import METHODS
from e2e_portfolio.report.style import interval, p_value
from e2e_portfolio.seeds import seeds_text
from e2e_portfolio.slugs import canonical


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


def shrink_tables(summary: Mapping) -> list[Table | str]:
    """Headline tables of :func:`edge_across_seeds`."""
    config, rows = summary["config"], summary["rows"]
    n, window = config["n_assets"], config["window"]
    methods = Table(
        title=(
            f"Out-of-sample net Sharpe over {len(rows)} synthetic "
            f"universe{'s' if len(rows) != 1 else ''}: N={n} assets, "
            f"T={config['n_months']} months, window {window} (N/window = {n / window:.2f}), "
            f"tc {config['tc']}, target {config['target']}, {shrink_book(config.get('book'))}"
        ),
        title_justify="left",
    )
    for column in ("method", "mean Sharpe", "sd across seeds", "mean delta", "mean turnover"):
        methods.add_column(column, justify="right" if column != "method" else "left")
    for method in (*METHODS, *config.get("baselines", ())):
        sharpe = np.array([r[f"sharpe_{method}"] for r in rows])
        deltas = [r[f"delta_{method}"] for r in rows]
        turnover = float(np.mean([r[f"turnover_{method}"] for r in rows]))
        spread = f"{sharpe.std(ddof=1):.3f}" if sharpe.size > 1 else "-"
        # nonlinear shrinkage has no single delta
        shown = "-" if None in deltas else f"{np.mean(deltas):.2f}"
        methods.add_row(method, f"{sharpe.mean():.3f}", spread, shown, f"{turnover:.2f}")
    methods.caption = singular_note(n, window, config.get("book"))
    methods.caption_justify = "left"
    rivals = _rivals(summary)
    edges = Table(
        title="Paired edges of decision_aware (per seed; p: Wilcoxon, Holm over the "
        f"{len(rivals)} comparisons)",
        title_justify="left",
    )
    for column in ("versus", "mean edge", "95% CI", "win rate", "p", "Holm p"):
        edges.add_column(column, justify="right" if column != "versus" else "left",
                         no_wrap=True)  # fmt: skip
    for name, key in rivals:
        c = summary[key]
        edges.add_row(
            name, f"{c['mean']:+.3f}", interval(c),
            f"{c['win_rate']:.2f}", p_value(c["p_wilcoxon"]), p_value(c["p_holm"]),
        )  # fmt: skip
    return [methods, edges]


def singular_note(n_assets: int, window: int, book: Mapping | None = None) -> str | None:
    """The caption saying how the plug-in is defined when its covariance is singular."""
    if n_assets < window - 1:
        return None
    held = ("the QP's constraints bound the plug-in's book" if book is not None else
            "plug-in uses its pseudo-inverse (the minimum-norm direction on its span)")  # fmt: skip
    return f"N = {n_assets} >= window - 1 = {window - 1}: the sample covariance is singular; {held}"


def _rivals(summary: Mapping) -> list[tuple[str, str]]:
    """(name, key) of decision-aware's comparisons present in a shrink summary."""
    names = (("plug_in", "vs_plugin"), ("ledoit_wolf", "vs_lw"), ("oas", "vs_oas"),
             ("nonlinear", "vs_nonlinear"))  # fmt: skip
    return [(name, key) for name, key in names if key in summary]


def history_tables(
    summary: Mapping, panel: FactorPanel, book: Mapping | None = None
) -> list[Table | str]:
    """Tables of :func:`~e2e_portfolio.experiments.shrink_history` on one real history."""
    table = Table(
        title=(
            f"{panel.name}: out-of-sample {summary['first_month']} .. {summary['last_month']} "
            f"({summary['n_months']} months), N={panel.n_assets}, {shrink_book(book)}"
        ),
        title_justify="left",
    )
    for column in ("method", "net Sharpe", "mean delta", "mean turnover"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for method in summary["sharpe"]:
        delta = summary["mean_delta"][method]
        table.add_row(
            method,
            f"{summary['sharpe'][method]:.3f}",
            "-" if delta is None else f"{delta:.2f}",
            f"{summary['mean_turnover'][method]:.2f}",
        )
    table.caption = singular_note(panel.n_assets, summary["window"], book)
    table.caption_justify = "left"
    tests = Table(
        title="Tests of decision_aware: Jobson-Korkie-Memmel and block bootstrap (Ledoit-Wolf "
        "2008); Holm over the comparisons",
        title_justify="left",
    )
    for column in ("versus", "difference", "z", "p JKM", "Holm", "p boot", "Holm"):
        tests.add_column(column, justify="right" if column != "versus" else "left", no_wrap=True)
    rivals = _rivals(summary)
    for name, key in rivals:
        c = summary[key]
        tests.add_row(name, f"{c['difference']:+.3f}", f"{c['z']:+.2f}", p_value(c["p_value"]),
                      p_value(c["p_value_holm"]), p_value(c["p_bootstrap"]),
                      p_value(c["p_bootstrap_holm"]))  # fmt: skip
    return [table, tests]


def shrink_book(book: Mapping | None) -> str:
    """How the shrinkage methods hold their book, for a title."""
    if book is None:
        return "unit gross leverage"
    cap = f", w_max {book['w_max']}" if book.get("w_max") is not None else ""
    return f"QP book (gamma {book['gamma']:g}{cap}{_book(book)})"


def _cap(config: Mapping) -> str:
    """The per-asset cap for a title: none is said as such."""
    return ", no cap" if config.get("w_max") is None else f", w_max {config['w_max']}"


def _book(config: Mapping) -> str:
    """The QP arms' book where it is not long-only and fully invested, for a title."""
    defaults = {"w_min": 0.0, "budget": 1.0, "leverage": None, "sector_max": None}
    parts = [f"{key} {config[key]}" for key, default in defaults.items()
             if config.get(key, default) != default]  # fmt: skip
    return f", {', '.join(parts)}" if parts else ""


def comparison_table(comparison, config: Mapping) -> Table:
    """Out-of-sample statistics of :func:`~e2e_portfolio.experiments.compare_strategies`."""
    first = next(iter(comparison.results.values()))
    table = Table(
        title=(
            f"{comparison.panel_name}: out of sample {first.dates[0]:%Y-%m} .. "
            f"{first.dates[-1]:%Y-%m} ({first.stats.n_periods} months), gamma {config['gamma']}"
            f"{_cap(config)}, kappa {config['kappa']}, tc {config['tc']}{_book(config)}"
        ),
        title_justify="left",
    )
    for column in ("strategy", "Sharpe", "ann. return", "ann. vol", "max drawdown", "turnover"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, result in comparison.results.items():
        s = result.stats
        table.add_row(
            name, f"{s.sharpe:.3f}", f"{s.annualised_return:.2%}",
            f"{s.annualised_volatility:.2%}", f"{s.max_drawdown:.2%}", f"{s.turnover:.3f}",
        )  # fmt: skip
    return table


KEY_OPTIONS = ("n_assets", "window", "tc", "gamma", "w_max", "w_min", "leverage", "budget",
               "sector_max",
               "kappa", "target", "covariance", "epochs", "learn_theta", "baselines")  # fmt: skip


def _headline(kind: str, metrics: Mapping, stats: Mapping[str, float]) -> dict[str, float]:
    """The one comparison a run is about: its two methods' Sharpe, by slug."""

    def pair(values: Mapping, a: str, b: str) -> dict[str, float]:
        values = {canonical(k): v for k, v in values.items()}  # runs stored with old spellings
        return {a: float(values[a]), b: float(values[b])} if a in values and b in values else {}

    if kind == "shrink":
        values = metrics.get("mean_sharpe") or metrics.get("sharpe") or {}
        return pair(values, "decision_aware", "ledoit_wolf")
    if kind == "compare":
        mean = {a: v["sharpe"] for a, v in metrics.get("mean", {}).items()}
        return pair(mean or stats, "e2e", "decoupled")
    if kind.startswith("sweep-"):
        values = {k.removeprefix("sharpe_"): v for k, v in metrics.items()
                  if k.startswith("sharpe_") and isinstance(v, int | float)}  # fmt: skip
        return pair(values, "decision_aware", "ledoit_wolf") or pair(values, "e2e", "decoupled")
    return {}


def _seeds(config: Mapping) -> list[int]:
    seeds = config.get("seeds", config.get("seed"))
    if seeds is None:
        return []
    return [int(s) for s in seeds] if isinstance(seeds, list) else [int(seeds)]


def run_summaries(runs, stats: Mapping[str, Mapping[str, float]]) -> list[dict]:
    """One plain row per stored run: id, kind, created, data, seeds, options, headline.

    Numbers as numbers: ``seeds`` a list, ``headline`` the Sharpe of the run's two headline
    methods by slug.
    """
    rows = []
    for row in runs.itertuples():
        config, metrics = json.loads(row.config), json.loads(row.metrics)
        options = {k: config[k] for k in KEY_OPTIONS
                   if k in config and config[k] not in (None, [], False)}  # fmt: skip
        headline = _headline(row.kind, metrics, stats.get(row.run_id, {}))
        rows.append({"run_id": row.run_id, "kind": row.kind,
                     "created": f"{row.created_at:%Y-%m-%d %H:%M:%S}",
                     "data": str(config.get("data", "synthetic")), "seeds": _seeds(config),
                     "options": options, "headline": headline})  # fmt: skip
    return rows


def runs_table(rows: list[dict]) -> Table:
    """Stored runs, one block each: id, kind, data, seeds; headline Sharpe; options, time.

    Ids are never cut, whatever the width.
    """
    table = Table(title=f"Stored runs, newest first ({len(rows)})", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, show_header=False)  # fmt: skip
    table.add_column("run", overflow="fold")
    for r in rows:
        options = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in r["options"].items()
        )
        count = len(r["seeds"])
        seeds = f"  seeds {seeds_text(r['seeds'])}" + (f" ({count})" if count > 1 else "")
        headline = " vs ".join(f"{slug} {value:.3f}" for slug, value in r["headline"].items())
        lines = [f"[bold]{r['run_id']}[/]  {r['kind']}  {r['data']}{seeds if count else ''}"]
        lines += [f"  {text}" for text in (headline, options) if text]
        lines.append(f"  {r['created']} UTC")
        table.add_row("\n".join(lines))
    return table


def importance_table(summary: Mapping) -> Table:
    """Mean saliency shares of both predictors and the robustness of the hypothesis."""
    share = summary["fraction_e2e_upweights_diversifiers"]
    table = Table(
        title=f"Factor importance (share of gradient saliency), {len(summary['rows'])} seeds",
        title_justify="left",
        caption=(
            f"end-to-end gives the diversifiers a larger share than decoupled in {share:.0%} "
            "of seeds"
        ),
        caption_justify="left",
    )
    table.add_column("feature")
    table.add_column("decoupled", justify="right")
    table.add_column("e2e", justify="right")
    columns = [summary["mean_shares"]]
    if "mean_shap_shares" in summary:
        table.add_column("decoupled SHAP", justify="right")
        table.add_column("e2e SHAP", justify="right")
        columns.append(summary["mean_shap_shares"])
    for j, feature in enumerate(summary["features"]):
        cells = [f"{c[m][j]:.3f}" for c in columns for m in ("decoupled", "e2e")]
        table.add_row(feature, *cells)
    return table
