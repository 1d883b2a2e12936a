"""The first screen of a report: what the run found, in one sentence and one small table.

Every kind of run that compares methods gets a headline, a table of paired differences (mean,
95% interval, win rate, adjusted p) and, across seeds, a chart of the per-seed paired edges.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from e2e_portfolio.data.records import RunRecord
from e2e_portfolio.report import plots
from e2e_portfolio.report.style import interval, p_phrase, p_value

RIVALS = (("plug_in", "vs_plugin"), ("ledoit_wolf", "vs_lw"), ("oas", "vs_oas"),
          ("nonlinear", "vs_nonlinear"))  # fmt: skip


@dataclass
class Verdict:
    """Headline sentences, the rows of the paired-differences table, and the edges figure."""

    sentences: list[str] = field(default_factory=list)
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = field(default_factory=list)
    figure: go.Figure | None = None

    def html(self) -> str:
        """The verdict as HTML (nothing for runs that compare nothing)."""
        if not self.sentences:
            return ""
        text = "".join(f"<p class='headline'>{html.escape(s)}</p>" for s in self.sentences)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        table = f"<table id='verdict'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f"<section id='verdict-section'><h2>Verdict</h2>{text}{table}</section>"


def says(name: str, versus: str, mean: float, p: float | None, what: str = "Holm p") -> str:
    """One sentence that never calls a non-significant difference a win."""
    shown = p_phrase(p)
    if p is not None and p == p and p < 0.05:
        word = "beats" if mean > 0 else "loses to"
        return f"{name} {word} {versus} by {mean:+.3f} Sharpe ({what} {shown})."
    return (f"{name} vs {versus}: no significant difference ({mean:+.3f} Sharpe, "
            f"{what} {shown}).")  # fmt: skip


def _count(n: int, noun: str) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _paired_row(label: str, v: Mapping) -> list[str]:
    return [label, f"{v['mean']:+.3f}", interval(v),
            f"{v['win_rate']:.0%}", p_value(v.get("p_holm"))]  # fmt: skip


PAIRED_COLUMNS = ("comparison", "mean difference", "95% interval", "wins", "Holm p")


def verdict_of(run: RunRecord) -> Verdict:
    """The verdict of a stored run, whatever its kind (empty when it compares nothing)."""
    m = run.metrics
    if run.kind == "shrink" and "rows" in m:
        return _shrink_seeds(m)
    if run.kind == "shrink" and "vs_plugin" in m:
        return _shrink_history(m, str(run.config.get("data", "")))
    if run.kind == "compare" and "history" in m:
        return _compare_history(m, str(run.config.get("data", "")))
    if run.kind == "compare" and "verdict" in m:
        return _compare_seeds(m)
    if run.kind == "compare" and run.stats:
        return _compare_one(run)
    if run.kind == "attribution" and m.get("rows"):
        return _attribution(m)
    return Verdict()


def _attribution(m: Mapping) -> Verdict:
    """How often end-to-end training moves saliency to the unpriced diversifiers."""
    rows = m["rows"]
    e2e = [r["e2e_diversifier_share"] for r in rows]
    decoupled = [r["decoupled_diversifier_share"] for r in rows]
    share = m["fraction_e2e_upweights_diversifiers"]
    sentence = (f"Over {_count(len(rows), 'seed')}: e2e gives the unpriced diversifiers a larger "
                f"share of gradient saliency than decoupled in {share:.0%} of seeds (mean share "
                f"{sum(e2e) / len(e2e):.3f} against {sum(decoupled) / len(decoupled):.3f}); "
                "a hypothesis holds only where that share is well above half.")  # fmt: skip
    shares = m["mean_shares"]
    table = [[feature, f"{shares['decoupled'][i]:.3f}", f"{shares['e2e'][i]:.3f}"]
             for i, feature in enumerate(m["features"])]  # fmt: skip
    return Verdict([sentence], ("feature", "decoupled share", "e2e share"), table)


HEADLINE_PAIRS = (("e2e", "decoupled", "end to end against the tuned decoupled pipeline"),
                  ("e2e_risk", "decoupled_nll", "the risk model trained for decisions"),
                  ("e2e_return", "decoupled", "the forecast trained for decisions"),
                  ("e2e", "min_variance", "end to end against minimum variance"))  # fmt: skip
"""The comparisons that answer compare's question: e2e against decoupled, the 2x2 (the risk
model's and the forecast's edge) and e2e against minimum variance."""


def _compare_one(run: RunRecord) -> Verdict:
    sharpe = {k: v.sharpe for k, v in run.stats.items()}
    seed = run.config.get("seed", (run.config.get("seeds") or ["?"])[0])
    lines = [f"{a} - {b} {sharpe[a] - sharpe[b]:+.3f} ({what})"
             for a, b, what in HEADLINE_PAIRS if a in sharpe and b in sharpe]  # fmt: skip
    sentences = [f"One walk-forward on {run.config.get('data')} (seed {seed}), net Sharpe "
                 "differences without a paired test (e2e compare --seeds 0-9 gives one): "
                 + "; ".join(lines) + "."] if lines else []  # fmt: skip
    ranked = sorted(sharpe.items(), key=lambda kv: -kv[1])
    return Verdict(sentences, ("arm", "net Sharpe"), [[k, f"{v:.3f}"] for k, v in ranked])


def _shrink_seeds(m: Mapping) -> Verdict:
    rows = m["rows"]
    rivals = [(name, key) for name, key in RIVALS if key in m]
    sentences = [f"Over {_count(len(rows), 'seed')}: " + " ".join(
        says("decision_aware", name, m[key]["mean"], m[key].get("p_holm", float("nan")))
        for name, key in rivals)]  # fmt: skip
    table = [_paired_row(f"decision_aware - {name}", m[key]) for name, key in rivals]
    edges = {f"decision_aware - {name}": [r["sharpe_decision_aware"] - r[f"sharpe_{name}"]
                                          for r in rows] for name, _ in rivals}  # fmt: skip
    intervals = {f"decision_aware - {name}": (m[key]["ci_low"], m[key]["ci_high"])
                 for name, key in rivals}  # fmt: skip
    figure = plots.paired_edges(edges, intervals) if len(rows) > 1 else None
    return Verdict(sentences, PAIRED_COLUMNS, table, figure)


def _shrink_history(m: Mapping, data: str) -> Verdict:
    rivals = [(name, key) for name, key in RIVALS if key in m]
    sentences = [f"On {data}: " + " ".join(
        says("decision_aware", name, m[key]["difference"],
              m[key].get("p_bootstrap_holm", m[key]["p_value"]), "block-bootstrap Holm p")
        for name, key in rivals)]  # fmt: skip
    table = [[f"decision_aware - {name}", f"{m[key]['difference']:+.3f}",
              p_value(m[key]["p_value"]), p_value(m[key].get("p_bootstrap_holm"))]
             for name, key in rivals]  # fmt: skip
    return Verdict(sentences, ("comparison", "Sharpe difference", "JKM p", "bootstrap Holm p"),
                   table)  # fmt: skip


def _compare_seeds(m: Mapping) -> Verdict:
    verdict = m["verdict"]
    per_seed = m["per_seed"]
    n = verdict[0]["n"] if verdict else 0
    key = {(v["arm"], v["versus"]): v for v in verdict}
    sentences = [f"Over {_count(n, 'seed')}:"]
    for arm, versus, _ in HEADLINE_PAIRS:
        if (arm, versus) in key:
            v = key[(arm, versus)]
            sentences.append(says(arm, versus, v["mean"], v["p_holm"]))
    table = [_paired_row(f"{v['arm']} - {v['versus']}", v) for v in verdict]
    sharpe = {(r["arm"], r["seed"]): r["sharpe"] for r in per_seed}
    seeds = sorted({r["seed"] for r in per_seed})
    shown = [pair for pair in (("e2e", "decoupled"), ("e2e_risk", "decoupled_nll"),
                               ("e2e_return", "decoupled"), ("e2e", "min_variance"))
             if pair in key]  # fmt: skip
    edges = {f"{a} - {b}": [sharpe[(a, s)] - sharpe[(b, s)] for s in seeds] for a, b in shown}
    intervals = {f"{a} - {b}": (key[(a, b)]["ci_low"], key[(a, b)]["ci_high"]) for a, b in shown}
    figure = plots.paired_edges(edges, intervals) if len(seeds) > 1 and shown else None
    return Verdict(sentences, PAIRED_COLUMNS, table, figure)


def _compare_history(m: Mapping, data: str) -> Verdict:
    history = m["history"]
    sentences = [
        f"On {data} (network seed {history['seed']}; differences over "
        f"{len(m['per_seed']) // max(len(m['arms']), 1)} network seeds in brackets):"
    ]
    for t in history["tests"]:
        if (t["arm"], t["versus"]) in (("e2e", "decoupled"), ("e2e_risk", "decoupled_nll"),
                                       ("e2e_return", "decoupled")):  # fmt: skip
            sentences.append(says(t["arm"], t["versus"], t["difference"],
                                   t["p_bootstrap_holm"], "block-bootstrap Holm p"))  # fmt: skip
    table = [[f"{t['arm']} - {t['versus']}", f"{t['difference']:+.3f}",
              f"{t['difference_min']:+.2f} .. {t['difference_max']:+.2f}", p_value(t["p_jkm"]),
              p_value(t["p_bootstrap_holm"])] for t in history["tests"]]  # fmt: skip
    return Verdict(sentences, ("comparison", "Sharpe difference", "over network seeds",
                               "JKM p", "bootstrap Holm p"), table)  # fmt: skip
