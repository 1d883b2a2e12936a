"""Print the Findings tables (docs/findings.md) from the runs stored in a DuckDB file.

Every p-value is Holm-adjusted within its table (over every p-value the table shows), from
the raw p-values the runs stored. Run the commands the README lists with ``--db FILE``, then

    python scripts/findings_tables.py --db FILE

Rows appear in the order the runs were stored; each row names the command that made it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from e2e_portfolio.backtest.arm_specs import ARMS, GAMMA_GRID
from e2e_portfolio.data.store import Store
from e2e_portfolio.experiments.sweep import COMPARE_OPTIONS, SHRINK_OPTIONS
from e2e_portfolio.significance import holm

KEY_COMPARISONS = (("e2e_risk", "decoupled_nll"), ("e2e_return", "decoupled"),
                   ("e2e", "decoupled"), ("e2e", "min_variance"))  # fmt: skip
SHRINK_RIVALS = (("plug_in", "vs_plugin"), ("ledoit_wolf", "vs_lw"), ("oas", "vs_oas"),
                 ("nonlinear", "vs_nonlinear"))  # fmt: skip
DEFAULTS = {
    "compare": {**COMPARE_OPTIONS, "covariance": "ledoit_wolf", "arms": list(ARMS),
                "gamma_grid": list(GAMMA_GRID), "widen_gamma_grid": False},
    "shrink": SHRINK_OPTIONS,
}  # fmt: skip
"""The options' defaults (the sweep's, which are the commands'): non-defaults make the command."""


def _p(value: float | None) -> str:
    """``p = 0.013``, ``p < 0.001`` or ``p n/a``."""
    if value is None or value != value:
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}"


def _command(kind: str, config: dict, extra: str = "") -> str:
    """The command line that made a run: the options that differ from their defaults."""
    parts = [f"e2e {kind}"]
    data = config.get("data", "synthetic")
    if data != "synthetic":
        parts.append(f"--data {data}")
        if config.get("universe", "industries") != "industries":
            parts.append(f"--universe {config['universe']}")
    if kind == "compare":
        seeds = config["seeds"]
        parts.append(f"--seeds {seeds[0]}-{seeds[-1]} --workers 2")
    for key, default in DEFAULTS[kind].items():
        value = config.get(key, default)
        if value == default or (data != "synthetic" and key in ("n_assets", "n_months")):
            continue
        if isinstance(value, bool):  # a flag
            parts.append(f"--{key.replace('_', '-')}")
            continue
        if isinstance(value, list):
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        parts.append(f"--{key.replace('_', '-')} {'none' if value is None else value}")
    if config.get("learn_theta"):
        parts.append("--learn-theta")
    return "`" + " ".join(parts) + extra + "`"


def _head(columns: list[str]) -> list[str]:
    """A markdown table's header and rule."""
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def _cells(row: list, show) -> list[str]:
    """One table cell per comparison; empty where the run did not have both arms."""
    return ["" if item is None else show(item) for item in row]


def compare_tables(store: Store) -> str:
    runs = [store.load_run(r) for r in store.list_runs("compare")["run_id"]]
    runs = [r for r in runs if "verdict" in r.metrics][::-1]  # oldest first
    synthetic = [r for r in runs if "history" not in r.metrics]
    histories = [r for r in runs if "history" in r.metrics]
    out = []
    if synthetic:
        out.append("| regime | command | " + " | ".join(ARMS) + " |")
        out.append("| --- | --- |" + " --- |" * len(ARMS))
        for run in synthetic:
            mean = run.metrics["mean"]
            cells = [f"{mean[a]['sharpe']:.3f}" if a in mean else "" for a in ARMS]
            out.append(f"| N={run.config['n_assets']} | {_command('compare', run.config)} | "
                       + " | ".join(cells) + " |")  # fmt: skip
        out.append("")
        rows = []
        for run in synthetic:
            verdict = {(v["arm"], v["versus"]): v for v in run.metrics["verdict"]}
            rows.append([verdict.get(pair) for pair in KEY_COMPARISONS])
        adjusted = iter(holm([v.get("p", v.get("p_wilcoxon")) for row in rows for v in row if v]))
        out += _head(["regime", *(f"{a} - {b}" for a, b in KEY_COMPARISONS)])
        for run, row in zip(synthetic, rows, strict=True):
            cells = _cells(row, lambda v: f"{v['mean']:+.3f} [{v['ci_low']:+.2f}, "
                           f"{v['ci_high']:+.2f}], {v['win_rate']:.2f}, "
                           f"{_p(next(adjusted))}")  # fmt: skip
            label = f"N={run.config['n_assets']}, {run.config['covariance']}"
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Break-even costs (weights fixed): " + "; ".join(
            f"{_command('compare', r.config)}: " + ", ".join(
                f"{b['arm']} {'none' if b['cost'] is None else format(b['cost'], '.4f')}"
                for b in r.metrics["break_even"]) for r in synthetic))  # fmt: skip
        out.append("")
    if histories:
        tests = [[next((t for t in r.metrics["history"]["tests"]
                        if (t["arm"], t["versus"]) == pair), None) for pair in KEY_COMPARISONS]
                 for r in histories]  # fmt: skip
        adjusted = iter(holm([t["p_bootstrap"] for row in tests for t in row if t]))
        out += _head(["history", "command", *(f"{a} - {b}" for a, b in KEY_COMPARISONS)])
        for run, row in zip(histories, tests, strict=True):
            cells = _cells(row, lambda t: f"{t['difference']:+.3f} ({_p(next(adjusted))}; seeds "
                           f"{t['difference_min']:+.2f}..{t['difference_max']:+.2f})")  # fmt: skip
            out.append(f"| {run.config['data']} | {_command('compare', run.config)} | "
                       + " | ".join(cells) + " |")  # fmt: skip
        out.append("")
        for run in histories:
            mean = run.metrics["mean"]
            spread = run.metrics["history"]["spread"]
            cells = [f"{a} {mean[a]['sharpe']:.3f} ({spread[a]['min']:.2f}..{spread[a]['max']:.2f})"
                     for a in run.metrics["arms"]]  # fmt: skip
            label = run.config["data"]
            out.append(f"{label} mean Sharpe over network seeds (min..max): " + "; ".join(cells))
            out.append("")
    return "\n".join(out)


def shrink_tables(store: Store) -> str:
    runs = [store.load_run(r) for r in store.list_runs("shrink")["run_id"]][::-1]
    synthetic = [r for r in runs if "rows" in r.metrics and "vs_oas" in r.metrics]
    histories = [r for r in runs if "rows" not in r.metrics and "vs_oas" in r.metrics]
    out = []
    if synthetic:
        comparisons = [[r.metrics[key] for _, key in SHRINK_RIVALS] for r in synthetic]
        adjusted = iter(holm([c["p_wilcoxon"] for row in comparisons for c in row]))
        out.append("| command | plug-in | Ledoit-Wolf | decision-aware | OAS | nonlinear | "
                   "edge vs plug-in | vs Ledoit-Wolf | vs OAS | vs nonlinear |")  # fmt: skip
        out.append("| --- |" + " --- |" * 9)
        for run, row in zip(synthetic, comparisons, strict=True):
            sharpe = run.metrics["mean_sharpe"]
            cells = [f"{sharpe[m]:.3f}" for m in ("plug_in", "ledoit_wolf", "decision_aware",
                                                 "oas", "nonlinear")]  # fmt: skip
            for c in row:
                cells.append(f"{c['mean']:+.3f} [{c['ci_low']:+.2f}, {c['ci_high']:+.2f}], "
                             f"{c['win_rate']:.2f}, {_p(next(adjusted))}")  # fmt: skip
            config = {**run.config, "n_assets": run.config.get("n_assets")}
            extra = f" --seeds 0-{len(run.metrics['rows']) - 1} --baselines oas,nonlinear"
            out.append(f"| {_command('shrink', config, extra)}"
                       " | " + " | ".join(cells) + " |")  # fmt: skip
        out.append("")
    if histories:
        comparisons = [[r.metrics[key] for _, key in SHRINK_RIVALS] for r in histories]
        adjusted = iter(holm([c["p_bootstrap"] for row in comparisons for c in row]))
        out.append("| command | out of sample | plug-in | Ledoit-Wolf | decision-aware | OAS | "
                   "nonlinear | vs plug-in | vs Ledoit-Wolf | vs OAS | vs nonlinear |")  # fmt: skip
        out.append("| --- |" + " --- |" * 10)
        for run, row in zip(histories, comparisons, strict=True):
            m = run.metrics
            cells = [f"{m['first_month'][:7]}..{m['last_month'][:7]}"]
            methods = ("plug_in", "ledoit_wolf", "decision_aware", "oas", "nonlinear")
            cells += [f"{m['sharpe'][k]:.3f}" for k in methods]
            cells += [f"{c['difference']:+.3f} ({_p(next(adjusted))})" for c in row]
            out.append(f"| {_command('shrink', run.config, ' --baselines oas,nonlinear')} | "
                       + " | ".join(cells) + " |")  # fmt: skip
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the DuckDB file of the runs")
    parser.add_argument("--json", action="store_true", help="dump the raw metrics instead")
    args = parser.parse_args()
    store = Store(args.db)
    if args.json:
        print(json.dumps({r: store.load_run(r).metrics for r in store.list_runs()["run_id"]},
                         default=str, indent=1))  # fmt: skip
        return
    print(compare_tables(store))
    print(shrink_tables(store))


if __name__ == "__main__":
    main()
