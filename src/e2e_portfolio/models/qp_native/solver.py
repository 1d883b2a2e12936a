"""The solve loop: interior point, then exact and certified polish, problem by problem.

1. The interior point (:mod:`~e2e_portfolio.models.qp_native.interior_point`) iterates every
   unfinished problem of the batch in lockstep.
2. A problem whose own mean gap falls below its polish threshold (first ``POLISH_GAP``) gets
   its active set read off the predictor step and solved exactly
   (:func:`~e2e_portfolio.models.qp_native.polish.polish`, up to ``EXCHANGES_PER_TRIAL``
   exchanges). If the certificate passes, the problem stops; if not, its threshold falls by
   ``RETRY_FACTOR`` (exchanges can cycle at the kink of the L1 term; the interior point
   breaks the cycle). Every decision is per problem, so an answer does not depend on the
   batch it was solved in.
3. A problem fails, with a status, when its iterate stops being finite (``non_finite``),
   its gap grows ``DIVERGENCE_FACTOR`` times above the smallest it reached (``diverged``),
   its Newton system cannot be factorised (``singular_system``), or it is still uncertified
   after ``MAX_IPM_ITERATIONS`` and a last run of exchanges (``max_iterations``). Failures
   are reported per problem, never for the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.interior_point import (
    constraint_rows,
    corrected_step,
    guess_active,
    mean_gap,
    newton_system,
    start,
)
from e2e_portfolio.models.qp_native.polish import Verified, polish
from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem, make_active_set, merge

MAX_IPM_ITERATIONS = 60
MAX_POLISH_ROUNDS = 20
POLISH_GAP = 1e-6
"""Mean complementarity gap (unit scale) below which the exact polish is first tried."""
EXCHANGES_PER_TRIAL = 2
"""Exchanges after a failed polish inside the loop; none with the turnover term, where
exchanges cycle at the kink (measured: 2 exchanges cost 10-20% more time there, and save
the same without it)."""
RETRY_FACTOR = 1e-2
"""After a polish that fails, the next waits for the problem's gap to fall by this factor."""
DIVERGENCE_FACTOR = 1e6
"""A gap this many times above the smallest one reached means the iterates diverge."""

STATUSES = ("solved", "non_finite", "diverged", "singular_system", "max_iterations")
"""Per-problem outcome codes, indexed by :attr:`Solution.status`."""
_NON_FINITE, _DIVERGED, _SINGULAR, _MAX_ITERATIONS = 1, 2, 3, 4


@dataclass(frozen=True)
class Solution:
    """Certified weights and active sets of a batch, with each problem's status."""

    weights: torch.Tensor
    """(batch, n); meaningless where the problem failed"""
    budget_dual: torch.Tensor
    """(batch,) multiplier of the budget constraint (unit scale)"""
    active: ActiveSet
    status: torch.Tensor
    """(batch,) int, an index into :data:`STATUSES`; 0 is solved"""
    iterations: int

    @property
    def failed(self) -> torch.Tensor:
        return self.status != 0

    def failures(self) -> dict[int, str]:
        """Batch index -> status name of every failed problem."""
        codes = self.status.tolist()
        return {i: STATUSES[code] for i, code in enumerate(codes) if code != 0}


def solve(problem: Problem) -> Solution:
    """Solve every problem of the batch; failures are reported in the solution's status."""
    rows = constraint_rows(problem)
    point = start(problem, rows)
    batch = problem.batch
    first = guess_active(problem, rows, point)
    verified = Verified(
        torch.zeros(batch, dtype=torch.bool, device=problem.mu.device),
        torch.zeros_like(problem.mu),
        torch.zeros_like(point.y),
        make_active_set(problem, first.w, first.lower, first.upper, first.at_previous),
    )
    failure = torch.zeros(batch, dtype=torch.long, device=problem.mu.device)
    threshold = torch.full_like(point.y, POLISH_GAP)
    smallest_gap = mean_gap(point)
    iteration = 0
    for iteration in range(1, MAX_IPM_ITERATIONS + 1):  # noqa: B007 - reported below
        running = ~verified.solved & (failure == 0)
        if not bool(running.any()):
            break
        system = newton_system(problem, rows, point)
        failure = torch.where(running & system.failed, _SINGULAR, failure)
        gap = mean_gap(point)
        due = running & ~system.failed & (gap <= threshold)
        if bool(due.any()):
            guess = guess_active(
                problem, rows, point, point.moved(torch.ones_like(gap), system.affine)
            )
            trial = make_active_set(problem, guess.w, guess.lower, guess.upper, guess.at_previous)
            exchanges = 0 if problem.has_turnover else EXCHANGES_PER_TRIAL
            verified = polish(problem, trial, point.y, verified, exchanges, due)
            threshold = torch.where(due & ~verified.solved, RETRY_FACTOR * gap, threshold)
        running = ~verified.solved & (failure == 0)
        if not bool(running.any()):
            break
        step, alpha = corrected_step(point, system, gap)
        moved = point.moved(alpha, step)
        finite = torch.isfinite(moved.w.sum(dim=1) + moved.sz.sum(dim=(1, 2)))
        failure = torch.where(running & ~finite, _NON_FINITE, failure)
        point = moved.where(running & finite, point)
        new_gap = mean_gap(point)
        diverging = running & finite & (new_gap > DIVERGENCE_FACTOR * smallest_gap)
        failure = torch.where(diverging, _DIVERGED, failure)
        smallest_gap = torch.minimum(smallest_gap, new_gap)
    running = ~verified.solved & (failure == 0)
    if bool(running.any()):
        # last resort: exchanges from the active set of the last iterate
        guess = guess_active(problem, rows, point)
        last = make_active_set(problem, guess.w, guess.lower, guess.upper, guess.at_previous)
        trial = merge(verified.solved, verified.active, last)
        verified = polish(problem, trial, point.y, verified, MAX_POLISH_ROUNDS, running)
        failure = torch.where(~verified.solved & (failure == 0), _MAX_ITERATIONS, failure)
    return Solution(verified.weights, verified.budget_dual, verified.active, failure, iteration)
