"""Choosing gamma from a grid by a validation score: ties, the grid's ends, widening.

:func:`choose_gamma` scores every gamma of the grid and takes the smallest of the best (two
gammas often give the same corner portfolio, whose scores then differ by rounding only, so
scores within :data:`TIE_TOLERANCE` tie). It records whether the choice sat at an end of the
grid, and, when asked, widens the grid at that end while the best sits there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

TIE_TOLERANCE = 1e-9
"""Scores this close (relative) are a tie, resolved to the smaller gamma."""
WIDEN_STEPS = 6
"""How often a widening grid may grow at each end (a factor of 64 for the default's ratio
of 2: 1/128 to 4096)."""


@dataclass(frozen=True)
class GammaChoice:
    """A gamma chosen on validation months.

    ``gamma``; ``edge``: ``"low"``/``"high"`` when it is that end of the grid tried, else None;
    ``scores`` of every gamma tried, in ascending order.
    """

    gamma: float
    edge: str | None
    scores: dict[float, float]


def choose_gamma(
    grid: Sequence[float], score: Callable[[float], float], widen: bool = False
) -> GammaChoice:
    """The smallest best gamma of the ascending ``grid`` by ``score``.

    With ``widen`` a best gamma at an end extends the grid there by the grid's own ratio at
    that end, up to :data:`WIDEN_STEPS` times per end.
    """
    tried = list(grid)
    scores = {gamma: score(gamma) for gamma in tried}
    widened = {"low": 0, "high": 0}
    while widen and len(tried) > 1:
        end = edge_of(smallest_best(tried, scores), tried)
        if end is None or widened[end] == WIDEN_STEPS:
            break
        if end == "low":
            tried.insert(0, tried[0] ** 2 / tried[1])
        else:
            tried.append(tried[-1] ** 2 / tried[-2])
        gamma = tried[0] if end == "low" else tried[-1]
        scores[gamma], widened[end] = score(gamma), widened[end] + 1
    best = smallest_best(tried, scores)
    return GammaChoice(best, edge_of(best, tried), {g: scores[g] for g in tried})


def smallest_best(grid: Sequence[float], scores: dict[float, float]) -> float:
    """The smallest gamma of the (ascending) grid whose score ties the best."""
    best = max(scores[g] for g in grid)
    if not math.isfinite(best):
        return grid[0]
    return next(g for g in grid if scores[g] >= best - TIE_TOLERANCE * max(1.0, abs(best)))


def edge_of(gamma: float, grid: Sequence[float]) -> str | None:
    """``"low"`` or ``"high"`` when ``gamma`` is that end of the (ascending) grid, else None."""
    if len(grid) < 2:
        return None
    return "low" if gamma == grid[0] else "high" if gamma == grid[-1] else None


def gamma_edges(tuning: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per arm: its ``refits`` and how many chose the ``low`` or ``high`` end of the grid."""
    return {arm: {"refits": len(refits),
                  "low": sum(r.get("edge") == "low" for r in refits),
                  "high": sum(r.get("edge") == "high" for r in refits)}
            for arm, refits in tuning.items()}  # fmt: skip
