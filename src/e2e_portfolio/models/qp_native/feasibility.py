"""Whether a problem's constraints admit any weights: a linear program per problem (HiGHS).

The layer calls this only for problems the native solver failed on, to tell an infeasible
problem (reported as ``infeasible``) from a failure of the solver. The cheap cases (a budget
outside the bounds' reach, leverage below the budget) are refused before solving, in
:mod:`~e2e_portfolio.models.qp_inputs`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

FEASIBILITY_TOLERANCE = 1e-9


def feasible(
    budget: float,
    lower: np.ndarray,
    upper: np.ndarray,
    leverage: float | None = None,
    equalities: tuple[np.ndarray, np.ndarray] | None = None,
    inequalities: tuple[np.ndarray, np.ndarray] | None = None,
) -> bool:
    """Whether some ``w`` has ``1'w = budget``, bounds, ``||w||_1 <= leverage`` and the rows.

    With a leverage bound the variables are ``(w, u)`` with ``-u <= w <= u`` and
    ``1'u <= leverage``.
    """
    n = lower.shape[0]
    lever = leverage is not None
    width = 2 * n if lever else n
    eq_rows = [np.concatenate([np.ones(n), np.zeros(width - n)])]
    eq_rhs = [budget]
    if equalities is not None:
        for row, rhs in zip(*equalities, strict=True):
            eq_rows.append(np.concatenate([row, np.zeros(width - n)]))
            eq_rhs.append(rhs)
    ub_rows, ub_rhs = [], []
    if inequalities is not None:
        for row, rhs in zip(*inequalities, strict=True):
            ub_rows.append(np.concatenate([row, np.zeros(width - n)]))
            ub_rhs.append(rhs)
    if lever:
        eye = np.eye(n)
        ub_rows.extend(np.concatenate([eye, -eye], axis=1))
        ub_rows.extend(np.concatenate([-eye, -eye], axis=1))
        ub_rhs.extend([0.0] * (2 * n))
        ub_rows.append(np.concatenate([np.zeros(n), np.ones(n)]))
        ub_rhs.append(float(leverage))  # type: ignore[arg-type]
    bounds = [
        (None if not np.isfinite(lo) else float(lo), None if not np.isfinite(hi) else float(hi))
        for lo, hi in zip(lower, upper, strict=True)
    ]
    if lever:
        bounds += [(0.0, None)] * n
    result = linprog(
        np.zeros(width),
        A_ub=np.array(ub_rows) if ub_rows else None,
        b_ub=np.array(ub_rhs) if ub_rhs else None,
        A_eq=np.array(eq_rows),
        b_eq=np.array(eq_rhs),
        bounds=bounds,
        method="highs",
        options={"primal_feasibility_tolerance": FEASIBILITY_TOLERANCE},
    )
    return result.status != 2  # 2: infeasible
