"""Paired verdicts across seeds, Holm-adjusted; break-even costs; the JSON contract.

The family of comparisons (:data:`COMPARISONS`): every arm against ``decoupled``, then
``e2e_risk`` vs ``decoupled_nll`` (the decision loss on the risk model), ``e2e_return`` vs
``decoupled`` (on the forecast; already in the first group) and ``e2e`` vs ``min_variance``.
Each is paired over seeds (mean difference in out-of-sample net Sharpe, 95% t-interval, win
rate, Wilcoxon p) and the Wilcoxon p-values are Holm-adjusted over the comparisons printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import brentq

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.backtest.arm_specs import ARMS
from e2e_portfolio.data.records import clean_json
from e2e_portfolio.significance import holm, paired_comparison

COMPARISONS: tuple[tuple[str, str], ...] = (
    *((arm, "decoupled") for arm in ARMS if arm != "decoupled"),
    ("e2e_risk", "decoupled_nll"),
    ("e2e", "min_variance"),
)
"""(arm, versus) pairs of the verdict, in print order."""
VERDICT_KEYS = ("arm", "versus", "mean", "ci_low", "ci_high", "win_rate", "p", "p_holm", "n")
"""One verdict entry, in shrink, compare and sweep alike: the paired Sharpe difference of
``arm`` minus ``versus`` over ``n`` seeds (mean, 95% t-interval, win rate), its Wilcoxon
signed-rank ``p`` and that p Holm-adjusted over the document's comparisons."""


def comparisons_for(arms: Sequence[str]) -> list[tuple[str, str]]:
    """The comparisons to report for the arms run.

    Those of :data:`COMPARISONS` whose two arms were both run, in its order, then every other
    arm (a user's) against ``decoupled``.
    """
    builtin = [(a, b) for a, b in COMPARISONS if a in arms and b in arms]
    others = [(a, "decoupled") for a in arms if a not in ARMS and "decoupled" in arms]
    return builtin + others


def paired_verdicts(
    sharpe: Mapping[str, Sequence[float]], comparisons: Iterable[tuple[str, str]]
) -> list[dict[str, Any]]:
    """One row per comparison, keys :data:`VERDICT_KEYS`; ``sharpe`` maps arm -> per seed."""
    rows = []
    for arm, versus in comparisons:
        stats = paired_comparison(np.asarray(sharpe[arm]), np.asarray(sharpe[versus]))
        rows.append({"arm": arm, "versus": versus, "mean": stats["mean"],
                     "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
                     "win_rate": stats["win_rate"], "p": stats["p_wilcoxon"],
                     "n": len(sharpe[arm])})  # fmt: skip
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = float(adjusted)
    return [{key: row[key] for key in VERDICT_KEYS} for row in rows]


def mean_sharpe_edge(
    gross: Sequence[np.ndarray],
    turnover: Sequence[np.ndarray],
    gross_versus: Sequence[np.ndarray],
    turnover_versus: Sequence[np.ndarray],
    cost: float,
) -> float:
    """Mean over seeds of the Sharpe difference when both arms pay ``cost`` per unit turnover."""
    edges = [
        annualised_sharpe(g - cost * t) - annualised_sharpe(gv - cost * tv)
        for g, t, gv, tv in zip(gross, turnover, gross_versus, turnover_versus, strict=True)
    ]
    return float(np.mean(edges))


def break_even_cost(
    gross: Sequence[np.ndarray],
    turnover: Sequence[np.ndarray],
    gross_versus: Sequence[np.ndarray],
    turnover_versus: Sequence[np.ndarray],
    upper: float = 0.1,
) -> float | None:
    """The cost per unit of turnover at which the mean Sharpe edge vanishes.

    The weights are held fixed: the stored gross returns and turnovers are re-priced, not
    re-optimised (a strategy that knew the cost would trade differently). Returns 0.0 when
    there is no edge even without costs, ``None`` when the edge survives every cost up to
    ``upper`` (10% per unit turnover), else the root of :func:`mean_sharpe_edge` by Brent's
    method.
    """

    def edge(cost: float) -> float:
        return mean_sharpe_edge(gross, turnover, gross_versus, turnover_versus, cost)

    if edge(0.0) <= 0:
        return 0.0
    if edge(upper) > 0:
        return None
    return float(brentq(edge, 0.0, upper, xtol=1e-7))


def to_json(
    arms: Sequence[str],
    verdict: list[dict[str, Any]],
    per_seed: list[dict[str, Any]],
    config: Mapping[str, Any],
    break_even: list[dict[str, Any]] | None = None,
    history: Mapping[str, Any] | None = None,
    gamma_edges: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document of ``e2e compare --seeds``.

    Keys ``arms``, ``verdict``, ``per_seed``, ``config``, ``break_even`` and ``gamma_edges``
    (per tuned arm: ``refits`` and how many chose the ``low`` or ``high`` end of the gamma
    grid, over all seeds). On one real history also ``history`` (tests on the history,
    decades, spread over network seeds; see
    :func:`~e2e_portfolio.experiments.compare.history_summary`). NaN (e.g. a p-value of
    identical arms) is written as ``null``.
    """
    document = {"arms": list(arms), "verdict": verdict, "per_seed": per_seed,
                "config": dict(config), "break_even": break_even or [],
                "gamma_edges": dict(gamma_edges or {})}  # fmt: skip
    if history is not None:
        document["history"] = dict(history)
    return clean_json(document)
