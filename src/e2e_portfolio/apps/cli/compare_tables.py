"""Rich tables of ``e2e compare``: the arms, the paired verdict, one history's tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rich import box
from rich.table import Table

from e2e_portfolio.report.style import interval, p_phrase, p_value


def tuning_caption(tuning: Mapping) -> str:
    """The gammas each QP arm chose at its refits, one line."""
    chosen = []
    for arm, refits in tuning.items():
        gammas = "/".join(f"{t['gamma']:g}" for t in refits)
        chosen.append(f"{arm} {gammas}")
    return "gamma chosen on the validation months at each refit: " + "; ".join(chosen)


def edges_line(edges: Mapping[str, Mapping[str, int]]) -> str:
    """How often each tuned arm's gamma sat at an end of its grid, one line."""
    parts = []
    for arm, e in edges.items():
        ends = [f"{end} {e[end]}" for end in ("low", "high") if e[end]]
        if ends:
            share = (e["low"] + e["high"]) / e["refits"]
            parts.append(f"{arm} {share:.0%} ({', '.join(ends)} of {e['refits']})")
    if not parts:
        return "gamma never sat at an end of its grid"
    return ("gamma at an end of its grid: " + "; ".join(parts)
            + " (--widen-gamma-grid extends the grid where the best sits at an end)")  # fmt: skip


def arms_table(summary: Mapping) -> Table:
    """Mean out-of-sample Sharpe and turnover of every arm across seeds."""
    n_seeds = len(summary["seeds"])
    seeds = "network seeds" if "history" in summary else "seeds"
    table = Table(title=f"Arms over {n_seeds} {seeds}: out-of-sample net Sharpe",
                  title_justify="left")  # fmt: skip
    for column in ("arm", "mean Sharpe", "sd across seeds", "mean turnover"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for arm in summary["arms"]:
        values = [r["sharpe"] for r in summary["per_seed"] if r["arm"] == arm]
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        m = summary["mean"][arm]
        table.add_row(arm, f"{m['sharpe']:.3f}", f"{sd:.3f}", f"{m['turnover']:.3f}")
    return table


def verdict_table(summary: Mapping) -> Table:
    """Paired differences in Sharpe across seeds, Wilcoxon and Holm-adjusted p-values."""
    table = Table(
        title="Paired verdicts: arm - versus in net Sharpe per seed (p: Wilcoxon; Holm over "
        "the comparisons shown)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for column in ("arm", "versus", "diff", "95% CI", "wins", "p", "Holm p"):
        table.add_column(column, justify="left" if column in ("arm", "versus") else "right",
                         no_wrap=True)  # fmt: skip
    for v in summary["verdict"]:
        shown = interval(v)
        table.add_row(v["arm"], v["versus"], f"{v['mean']:+.3f}", shown, f"{v['win_rate']:.2f}",
                      p_value(v["p"]), p_value(v["p_holm"]))  # fmt: skip
    notes = ["diff: mean of arm minus versus over seeds; 95% CI: t-interval; wins: share of "
             "seeds where the arm is ahead; p: Wilcoxon signed-rank; Holm p: adjusted over the "
             "rows shown"]  # fmt: skip
    if summary.get("break_even"):
        parts = []
        for b in summary["break_even"]:
            cost = b["cost"]
            text = "no edge at 0" if cost == 0 else ("> 0.1" if cost is None else f"{cost:.4f}")
            parts.append(f"{b['arm']} vs {b['versus']} {text}")
        notes.append("break-even cost per unit turnover (weights held fixed): " + "; ".join(parts))
    table.caption = "\n".join(notes)
    table.caption_justify = "left"
    return table


def history_compare_tables(summary: Mapping, name: str) -> list[Table | str]:
    """One real history: tests on the first network seed, decades, spread over seeds."""
    history = summary["history"]
    seeds = summary["seeds"]
    tests = Table(
        title=f"{name}, network seed {history['seed']}: Sharpe differences; p by "
        "Jobson-Korkie-Memmel and by block bootstrap (Holm-adjusted: Holm); range of the "
        f"difference over {len(seeds)} network seeds",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    tests.caption = ("diff: Sharpe difference on this seed; p JKM: Jobson-Korkie-Memmel; p boot: "
                     "studentised circular block bootstrap (6-month blocks); Holm: p boot "
                     "adjusted over the rows; seed range: the difference's range over network "
                     "seeds")  # fmt: skip
    tests.caption_justify = "left"
    for column in ("arm", "versus", "diff", "p JKM", "p boot", "Holm", "seed range"):
        tests.add_column(column, justify="left" if column in ("arm", "versus") else "right",
                         no_wrap=True)  # fmt: skip
    for t in history["tests"]:
        tests.add_row(t["arm"], t["versus"], f"{t['difference']:+.3f}", p_value(t["p_jkm"]),
                      p_value(t["p_bootstrap"]), p_value(t["p_bootstrap_holm"]),
                      f"{t['difference_min']:+.2f}..{t['difference_max']:+.2f}")  # fmt: skip
    arms = summary["arms"]
    decades = Table(title=f"{name}: net Sharpe by decade (network seed {history['seed']})",
                    title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    decades.add_column("arm", no_wrap=True)
    for row in history["decades"]:
        decades.add_column(f"{row['decade']} ({row['months']})", justify="right", no_wrap=True)
    for arm in arms:
        decades.add_row(arm, *(f"{row['sharpe'][arm]:.2f}" for row in history["decades"]))
    lines = []
    for t in history["tests"]:
        p = t["p_bootstrap_holm"]
        if p < 0.05:
            word = "beats" if t["difference"] > 0 else "loses to"
            lines.append(f"{t['arm']} {word} {t['versus']} on {name} "
                         f"(block-bootstrap Holm p {p_phrase(p)})")  # fmt: skip
    if not lines:
        lines.append(f"No difference on {name} survives the Holm-adjusted block bootstrap.")
    return [tests, decades, "\n".join(lines)]
