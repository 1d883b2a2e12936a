"""The report of a sweep: one verdict over every configuration, then the tables behind it.

First screen: how many configurations each headline comparison wins, loses or leaves open
(p-values Holm-adjusted over the whole sweep), and the paired differences per configuration.
Then the chart of per-seed edges by configuration, the mean Sharpe of every method per
configuration, each job's Sharpe (seeds in numeric order), and the options last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from e2e_portfolio.experiments.sweep import config_labels
from e2e_portfolio.report import plots
from e2e_portfolio.report.html import figure_divs, page, table_html
from e2e_portfolio.report.style import interval, mean_ci, p_value
from e2e_portfolio.report.verdict import Verdict, says

COLUMNS = ("configuration", "comparison", "mean difference", "95% interval", "wins", "Holm p")


def _comparisons(verdicts: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for v in verdicts:
        grouped.setdefault(f"{v['arm']} - {v['versus']}", []).append(v)
    return grouped


def _sentence(label: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """How one comparison fared over the configurations, never calling noise a win."""
    arm, versus = label.split(" - ")
    significant = [r for r in rows if r["p_holm"] == r["p_holm"] and r["p_holm"] < 0.05]
    better = [r for r in significant if r["mean"] > 0]
    worse = [r for r in significant if r["mean"] < 0]
    if all(r["n"] < 2 for r in rows):
        means = ", ".join(f"{r['mean']:+.3f}" for r in rows)
        return f"{arm} vs {versus}: {means} Sharpe on one seed; no test (run more seeds)."
    if len(rows) == 1:
        return says(arm, versus, rows[0]["mean"], rows[0]["p_holm"])
    low = min(rows, key=lambda r: r["mean"])
    high = max(rows, key=lambda r: r["mean"])
    text = f"{arm} vs {versus}: significantly better in {len(better)} of {len(rows)} configurations"
    if worse:
        text += f", worse in {len(worse)}"
    return (f"{text}; mean edge from {low['mean']:+.3f} ({low['label']}) to {high['mean']:+.3f} "
            f"({high['label']}).")  # fmt: skip


def sweep_verdict(frame: pd.DataFrame, verdicts: Sequence[Mapping[str, Any]]) -> Verdict:
    """Headline, paired-differences table and edges chart of a sweep.

    ``frame``: one row per job (:func:`~e2e_portfolio.experiments.sweep.per_seed`);
    ``verdicts``: :func:`~e2e_portfolio.experiments.sweep.sweep_verdicts` of it.
    """
    if not verdicts:
        return Verdict()
    n_configs = frame["config"].nunique()
    seeds = frame.groupby("config")["seed"].nunique()
    counted = f"{seeds.iloc[0]} seeds each" if seeds.nunique() == 1 else "seeds as listed"
    plural = "s" if n_configs > 1 else ""
    sentences = [f"Sweep of {n_configs} configuration{plural}, {counted} ({len(frame)} jobs); "
                 f"Holm-adjusted over all {len(verdicts)} comparisons."]  # fmt: skip
    grouped = _comparisons(verdicts)
    sentences += [_sentence(label, rows) for label, rows in grouped.items()]
    table = [[v["label"], f"{v['arm']} - {v['versus']}", f"{v['mean']:+.3f}", interval(v),
              f"{v['win_rate']:.0%}", p_value(v["p_holm"])] for v in verdicts]  # fmt: skip
    edges: dict[str, dict[str, list[float]]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for label, rows in grouped.items():
        for v in rows:
            group = frame[frame["config"] == v["config"]]
            diff = group[f"sharpe_{v['arm']}"] - group[f"sharpe_{v['versus']}"]
            edges.setdefault(label, {})[v["label"]] = [float(d) for d in diff]
            intervals.setdefault(label, {})[v["label"]] = (v["ci_low"], v["ci_high"])
    figure = plots.sweep_edges(edges, intervals) if len(frame) > n_configs else None
    return Verdict(sentences, COLUMNS, table, figure)


def _mean_table(summary: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    methods = [c for c in summary.columns if c.startswith("sharpe_") and not c.endswith("_ci")]
    rows = {}
    for _, row in summary.iterrows():
        cells = {"seeds": str(int(row["n_seeds"]))}
        for column in methods:
            half = row.get(f"{column}_ci", float("nan"))
            cells[column.removeprefix("sharpe_")] = mean_ci(row[column], half)
        rows[labels[row["config"]]] = cells
    return pd.DataFrame.from_dict(rows, orient="index")


def build_sweep_report(frame: pd.DataFrame, verdicts: Sequence[Mapping[str, Any]],
                       summary: pd.DataFrame) -> str:  # fmt: skip
    """The HTML text of a sweep's report (``summary``: :func:`~...sweep.summarise`)."""
    labels = config_labels(frame["config"]) if not frame.empty else {}
    verdict = sweep_verdict(frame, verdicts)
    parts = [verdict.html()]
    if verdict.figure is not None:
        parts += ["<h2>Figures</h2>", *figure_divs({"sweep edges": verdict.figure})]
    kinds = {c: json.loads(c)["kind"] for c in labels}
    for kind in dict.fromkeys(kinds.values()):
        configs = [c for c in labels if kinds[c] == kind]
        mine = summary[summary["config"].isin(configs)]
        parts += [f"<h2>{kind}: mean out-of-sample Sharpe per configuration "
                  "(± 95% CI half-width over seeds)</h2>",
                  table_html(_mean_table(mine.dropna(axis=1, how="all"), labels))]  # fmt: skip
        jobs = frame[frame["config"].isin(configs)].dropna(axis=1, how="all")
        sharpe = [c for c in jobs.columns if c.startswith("sharpe_")]
        shown = jobs[sharpe].rename(columns=lambda c: c.removeprefix("sharpe_"))
        shown.index = pd.MultiIndex.from_arrays([jobs["config"].map(labels), jobs["seed"]],
                                                names=["configuration", "seed"])  # fmt: skip
        parts += [f"<h2>{kind}: out-of-sample Sharpe of every job</h2>", table_html(shown)]
        options = {labels[c]: {k: json.dumps(v) for k, v in json.loads(c).items()} for c in configs}
        parts += [f"<h2>{kind}: configuration</h2>",
                  table_html(pd.DataFrame(options, dtype=object))]  # fmt: skip
    return page(f"sweep of {len(frame)} jobs", parts)
