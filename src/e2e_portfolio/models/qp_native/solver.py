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
    Iterate,
    Rows,
    constraint_rows,
    corrected_step,
    guess_active,
    mean_gap,
    newton_system,
    start,
)
from e2e_portfolio.models.qp_native.polish import Verified, polish
from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem, make_active_set

MAX_IPM_ITERATIONS = 60
COMPACT_FRACTION = 0.5
"""The working set is cut down to its running problems once they are at most this share."""
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
        """(batch,) bool, the problems that were not solved."""
        return self.status != 0

    def failures(self) -> dict[int, str]:
        """Batch index -> status name of every failed problem."""
        codes = self.status.tolist()
        return {i: STATUSES[code] for i, code in enumerate(codes) if code != 0}


def solve(problem: Problem) -> Solution:
    """Solve every problem of the batch; failures are reported in the solution's status.

    The interior point works on the unfinished problems only: once at most
    ``COMPACT_FRACTION`` of its working set still runs, the set is cut down to them, so the
    last iterations, spent on a few stragglers, cost a few problems' worth rather than the
    batch's.
    """
    rows = constraint_rows(problem)
    point = start(problem, rows)
    first = guess_active(problem, rows, point)
    everything = Verified(
        torch.zeros(problem.batch, dtype=torch.bool, device=problem.mu.device),
        torch.zeros_like(problem.mu),
        torch.zeros_like(point.y),
        make_active_set(problem, first.w, first.lower, first.upper, first.at_previous),
    )
    work = _WorkingSet(
        index=torch.arange(problem.batch, device=problem.mu.device),
        problem=problem,
        rows=rows,
        point=point,
        verified=everything,
        failure=torch.zeros(problem.batch, dtype=torch.long, device=problem.mu.device),
        threshold=torch.full_like(point.y, POLISH_GAP),
        smallest_gap=mean_gap(point),
    )
    failure = work.failure
    iteration = 0
    for iteration in range(1, MAX_IPM_ITERATIONS + 1):  # noqa: B007 - reported below
        running = work.running()
        count = int(running.sum())
        if count == 0:
            break
        if count <= COMPACT_FRACTION * len(work.index):
            everything, failure = work.written_back(everything, failure)
            work = work.take(running.nonzero().squeeze(1))
            running = torch.ones_like(running[: len(work.index)])
        _iterate(work, running)
    everything, failure = work.written_back(everything, failure)
    running = ~everything.solved & (failure == 0)
    if bool(running.any()):
        # last resort: exchanges from the active set of the last iterate
        everything, failure = _last_resort(problem, work, everything, failure, running)
    return Solution(everything.weights, everything.budget_dual, everything.active, failure,
                    iteration)  # fmt: skip


@dataclass
class _WorkingSet:
    """The problems the interior point still works on, and their state.

    ``index`` holds their positions in the batch; the state is the iterate, certified
    results, failure codes, polish thresholds and smallest gaps.
    """

    index: torch.Tensor
    problem: Problem
    rows: Rows
    point: Iterate
    verified: Verified
    failure: torch.Tensor
    threshold: torch.Tensor
    smallest_gap: torch.Tensor

    def running(self) -> torch.Tensor:
        return ~self.verified.solved & (self.failure == 0)

    def take(self, keep: torch.Tensor) -> _WorkingSet:
        return _WorkingSet(
            self.index[keep], self.problem.take(keep), self.rows.take(keep),
            self.point.take(keep), self.verified.take(keep), self.failure[keep],
            self.threshold[keep], self.smallest_gap[keep],
        )  # fmt: skip

    def written_back(
        self, everything: Verified, failure: torch.Tensor
    ) -> tuple[Verified, torch.Tensor]:
        """The batch's results with this set's written in."""
        if len(self.index) == len(failure):
            return self.verified, self.failure
        merged = everything.scattered(self.index, self.verified)
        return merged, failure.index_copy(0, self.index, self.failure)


def _iterate(work: _WorkingSet, running: torch.Tensor) -> None:
    """One interior-point iteration of the working set, with polish of the due problems."""
    problem, rows, point = work.problem, work.rows, work.point
    system = newton_system(problem, rows, point)
    work.failure = work.failure.masked_fill(running & system.failed, _SINGULAR)
    gap = system.products.mean(dim=(1, 2))
    due = running & ~system.failed & (gap <= work.threshold)
    if bool(due.any()):
        predicted = point.moved(torch.ones_like(gap), system.affine)
        guess = guess_active(problem, rows, point, predicted)
        trial = make_active_set(problem, guess.w, guess.lower, guess.upper, guess.at_previous)
        exchanges = 0 if problem.has_turnover else EXCHANGES_PER_TRIAL
        work.verified = polish(problem, trial, point.y, work.verified, exchanges, due)
        work.threshold = torch.where(
            due & ~work.verified.solved, RETRY_FACTOR * gap, work.threshold
        )
        running = work.running()
        if not bool(running.any()):
            return
    step, alpha = corrected_step(point, system, gap)
    moved = point.moved(alpha, step)
    new_gap = mean_gap(moved)
    # a NaN or inf in the slacks or duals makes the gap non-finite
    finite = torch.isfinite(new_gap + moved.w.sum(dim=1))
    work.failure = work.failure.masked_fill(running & ~finite, _NON_FINITE)
    moving = running & finite
    work.point = moved if bool(moving.all()) else moved.where(moving, point)
    new_gap = torch.where(moving, new_gap, gap)
    diverging = moving & (new_gap > DIVERGENCE_FACTOR * work.smallest_gap)
    work.failure = work.failure.masked_fill(diverging, _DIVERGED)
    work.smallest_gap = torch.minimum(work.smallest_gap, new_gap)


def _last_resort(
    problem: Problem,
    work: _WorkingSet,
    everything: Verified,
    failure: torch.Tensor,
    running: torch.Tensor,
) -> tuple[Verified, torch.Tensor]:
    """Exchanges from the active set of the last iterate for problems still unsolved."""
    index = running.nonzero().squeeze(1)
    # the last iterate of each of them lives in the working set (it only ever shrinks)
    position = torch.searchsorted(work.index, index)
    point = work.point.take(position)
    part = problem.take(index)
    guess = guess_active(part, work.rows.take(position), point)
    trial = make_active_set(part, guess.w, guess.lower, guess.upper, guess.at_previous)
    mine = everything.take(index)
    solved = polish(part, trial, point.y, mine, MAX_POLISH_ROUNDS, torch.ones_like(index).bool())
    everything = everything.scattered(index, solved)
    codes = torch.where(solved.solved, 0, _MAX_ITERATIONS)
    return everything, failure.index_copy(0, index, codes)
