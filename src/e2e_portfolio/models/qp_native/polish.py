r"""Exact solution on a guessed active set, checked by its certificate, and exchanges.

Given which assets are *free* (F), where the others are *held* (at their floor, their cap,
their previous weight, or 0 under a leverage bound), and which inequality rows hold as
equalities, the optimum solves the equality-constrained QP

.. math::

    \begin{bmatrix} H_{FF} & C_F^\top \\ C_F & 0 \end{bmatrix}
    \begin{bmatrix} w_F \\ \lambda \end{bmatrix} =
    \begin{bmatrix} m_F - k\,\mathrm{sign}_F - H_{FH} w_H \\ c - C_H w_H \end{bmatrix},

where ``C`` stacks the budget row, ``A_eq``, the held rows of ``A_ub`` and, when the
leverage bound holds, the row :math:`\mathrm{sign}(w)^\top w = L` (each free asset's side is
part of the active set). :func:`solve_active_set` solves it by
:func:`~e2e_portfolio.models.qp_native.kkt.kkt_solve`; the solution is accepted only with a
KKT certificate (:mod:`~e2e_portfolio.models.qp_native.certificate`), and a failed one moves
every violating asset and row to its other set (:func:`exchange`) before the next try.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.certificate import Certificate, certify, dual_interval
from e2e_portfolio.models.qp_native.kkt import active_rows, kkt_solve
from e2e_portfolio.models.qp_native.problem import (
    ActiveSet,
    Problem,
    make_active_set,
    merge,
    rows_times,
)


def solve_active_set(
    problem: Problem, active: ActiveSet, fallback_duals: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact weights and row multipliers with the held assets fixed, and failed factorisations.

    Multipliers the free assets leave open are the ones closest to ``fallback_duals``
    (batch, m); where nothing is free and the budget is the only row, its multiplier is the
    fallback clamped into :func:`dual_interval`.
    """
    held = active.fixed_value
    matrix, rhs, on = active_rows(problem, active)
    target = rhs - rows_times(matrix, held)
    smooth_rhs = problem.mu - problem.risk.matvec(held)
    if problem.has_turnover:
        smooth_rhs = smooth_rhs - problem.kappa * active.sign
    x, duals, failed = kkt_solve(problem, active.free, smooth_rhs, matrix, target, on,
                                 fallback_duals)  # fmt: skip
    w = x + held
    stuck = ~active.free.any(dim=1) & (on.sum(dim=1) == 1)
    if bool(stuck.any()):
        low, high = dual_interval(problem, problem.gradient(w), active)
        clamped = torch.minimum(torch.maximum(fallback_duals[:, 0], low), high)
        duals = duals.clone()
        duals[:, 0] = torch.where(stuck, clamped, duals[:, 0])
    return w, duals, failed


def exchange(problem: Problem, w: torch.Tensor, active: ActiveSet, check: Certificate) -> ActiveSet:
    """One primal-dual active-set exchange: move every violating asset and row to its other set."""
    release = check.release
    lower = (active.at_lower & ~release) | check.to_lower
    upper = (active.at_upper & ~release) | check.to_upper
    at_previous = (active.at_previous & ~release) | check.to_previous
    value = active.fixed_value
    sign = active.sign
    if problem.has_turnover:
        # a released asset moves into the direction that lowers the objective
        assert problem.w_prev is not None
        moved = torch.where(value == problem.w_prev, check.direction,
                            torch.sign(value - problem.w_prev))  # fmt: skip
        sign = torch.where(release, moved, sign)
    at_zero = side = levered = None
    if problem.leverage is not None:
        assert active.at_zero is not None and active.side is not None
        assert check.levered_on is not None and check.levered_off is not None
        assert active.levered is not None
        at_zero = (active.at_zero & ~release) | check.to_zero
        kept = torch.where(active.side != 0, active.side, torch.sign(w))
        moved = torch.where(value == 0, check.direction, torch.sign(value))
        side = torch.where(release, moved, kept)
        levered = (active.levered & ~check.levered_off) | check.levered_on
    rows = None
    if active.rows is not None:
        assert check.rows_on is not None and check.rows_off is not None
        rows = (active.rows & ~check.rows_off) | check.rows_on
    return make_active_set(problem, w, lower, upper, at_previous, sign, at_zero=at_zero,
                           side=side, rows=rows, levered=levered)  # fmt: skip


@dataclass(frozen=True)
class Verified:
    """Problems whose solution passed the certificate, and those solutions."""

    solved: torch.Tensor
    """(batch,) bool"""
    weights: torch.Tensor
    duals: torch.Tensor
    """(batch, m) the rows' multipliers (budget first)"""
    active: ActiveSet

    def accepting(self, passed: torch.Tensor, w, duals, active: ActiveSet) -> Verified:
        """These results with the ``passed`` problems' solutions added."""
        return Verified(
            self.solved | passed,
            torch.where(passed.unsqueeze(1), w, self.weights),
            torch.where(passed.unsqueeze(1), duals, self.duals),
            merge(passed, active, self.active),
        )

    def take(self, index: torch.Tensor) -> Verified:
        """The results of the problems at ``index`` (1-D)."""
        return Verified(
            self.solved[index], self.weights[index], self.duals[index], self.active.take(index),
        )  # fmt: skip

    def scattered(self, index: torch.Tensor, part: Verified) -> Verified:
        """These results with the problems at ``index`` replaced by ``part``'s."""

        def put(whole: torch.Tensor | None, piece: torch.Tensor | None) -> torch.Tensor | None:
            if whole is None or piece is None:
                return None
            return whole.index_copy(0, index, piece)

        pairs = zip(self.active.fields(), part.active.fields(), strict=True)
        active = ActiveSet(*(put(a, b) for a, b in pairs))  # type: ignore[arg-type]
        solved, weights = put(self.solved, part.solved), put(self.weights, part.weights)
        duals = put(self.duals, part.duals)
        assert solved is not None and weights is not None and duals is not None
        return Verified(solved, weights, duals, active)


def polish(
    problem: Problem,
    trial: ActiveSet,
    duals: torch.Tensor,
    verified: Verified,
    exchanges: int,
    due: torch.Tensor,
) -> Verified:
    """Solve exactly on ``trial`` and certify; exchange and retry up to ``exchanges`` times.

    After a failed certificate the violating assets and rows move to their other set. Only
    the ``due`` problems (batch,) are polished and may join ``verified``: each problem's
    outcome depends on its own data alone. ``duals`` (batch, m) are the multipliers used
    where the free assets leave them open. When few problems are due, they are polished as
    a batch of their own.
    """
    count = int(due.sum())
    if count == 0:
        return verified
    if count < due.shape[0]:
        index = due.nonzero().squeeze(1)
        part = _polish_all(
            problem.take(index), trial.take(index), duals[index], verified.take(index), exchanges
        )
        return verified.scattered(index, part)
    return _polish_all(problem, trial, duals, verified, exchanges)


def _polish_all(problem, trial: ActiveSet, duals, verified: Verified, exchanges: int) -> Verified:
    """:func:`polish` with every problem of the batch due (none of them verified yet)."""
    for round_ in range(exchanges + 1):
        w, lam, failed = solve_active_set(problem, trial, duals)
        check = certify(problem, w, lam, trial)
        passed = ~verified.solved & ~check.failing & ~failed
        verified = verified.accepting(passed, w, lam, trial)
        if bool(verified.solved.all()):
            break
        if round_ < exchanges:
            trial = exchange(problem, w, trial, check)
    return verified
