"""The solve loop: interior point, then exact and certified polish, problem by problem.

1. The interior point (:mod:`~e2e_portfolio.models.qp_native.interior_point`) iterates every
   unfinished problem of the batch in lockstep, first in float32, then in float64 (below).
2. A problem whose own mean gap falls below its polish threshold (first ``POLISH_GAP``) gets
   its active set read off the predictor step and solved exactly, in float64
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

**Two precisions.** The interior point only has to come close enough for the polish to read
off the active set, and every pass over its (batch, rows, n) tensors is memory-bound: in
float32 the same pass moves half the bytes (measured here: elementwise 2.1-2.3x and batched
products 1.3-1.8x faster, at n = 40 and n = 1000). So the interior point runs in float32
until a problem is certified, fails in float32, reaches a gap of ``LOW_PRECISION_GAP`` or
takes a step that does not lower its gap; the problems still unsolved then carry on in
float64, from their float32 point (or, after a float32 failure, from the float64 start), and
only float64 failures are reported. On the
benchmark's problems and the regimes of the test suite (LPs, tiny ``d``, dominant ``kappa``,
scales down to 1e-7) the float32 gaps follow the float64 ones to within rounding down to
about 1e-9, and below that they stall. The polish and its certificate are always float64, so
the answers are as exact as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

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
"""Most float64 interior-point iterations."""
LOW_PRECISION_ITERATIONS = 30
"""Most float32 interior-point iterations before the float64 ones (0 turns them off)."""
LOW_PRECISION_GAP = 1e-10
"""Mean gap (unit scale) at which an uncertified problem leaves float32 for float64."""
COMPACT_FRACTION = 0.5
"""The working set is cut down to its running problems once they are at most this share."""
MAX_POLISH_ROUNDS = 20
POLISH_GAP = 1e-6
"""Mean complementarity gap (unit scale) below which the exact polish is first tried."""
TURNOVER_POLISH_GAP = 1e-8
"""The same with the turnover term: the guess at the kink of the L1 term needs the interior
point closer, and with float32 iterations a failed polish costs more than two iterations
(measured with ``kappa = 0.002``: 20-30% faster than at 1e-6 at n = 200, 10-15% at
n = 1000, no change at n = 40)."""
EXCHANGES_PER_TRIAL = 2
"""Exchanges after a failed polish inside the loop; none with the turnover term, where
exchanges cycle at the kink (measured: 2 exchanges cost 10-20% more time there, and save
the same without it)."""
HINT_EXCHANGES = 6
"""Exchanges from a warm start's active set before the interior point takes over (none with
the turnover term, where exchanges cycle at the kink). Measured on the training loss of
``e2e_return`` at n = 1000 (90 months, 48 factors): 0 certify no month after an epoch's
step, 2 some, 6 all; the forward then costs a few exact solves instead of 13 iterations."""
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
    """lockstep interior-point iterations, float32 and float64 together"""

    @property
    def failed(self) -> torch.Tensor:
        """(batch,) bool, the problems that were not solved."""
        return self.status != 0

    def failures(self) -> dict[int, str]:
        """Batch index -> status name of every failed problem."""
        codes = self.status.tolist()
        return {i: STATUSES[code] for i, code in enumerate(codes) if code != 0}


@dataclass(frozen=True)
class _Results:
    """Every problem's results so far, written back from the working sets as they shrink.

    Certified solutions, failure codes, last iterates and polish thresholds.
    """

    verified: Verified
    failure: torch.Tensor
    point: Iterate
    threshold: torch.Tensor


def solve(problem: Problem, hint: tuple[ActiveSet, torch.Tensor] | None = None) -> Solution:
    """Solve every problem of the batch; failures are reported in the solution's status.

    The interior point works on the unfinished problems only: once at most
    ``COMPACT_FRACTION`` of its working set still runs, the set is cut down to them, so the
    last iterations, spent on a few stragglers, cost a few problems' worth rather than the
    batch's.

    ``hint``: active sets (and budget multipliers) to try first, e.g. those of the same
    problems a moment ago (a training epoch earlier). Each problem whose hint passes the KKT
    certificate is solved by that one exact solve; the others go through the interior point
    as without a hint. An answer is accepted on the same certificate either way.
    """
    rows = constraint_rows(problem)
    exact = start(problem, rows)
    first = guess_active(problem, rows, exact)
    threshold = torch.full_like(
        exact.y, TURNOVER_POLISH_GAP if problem.has_turnover else POLISH_GAP
    )
    verified = Verified(
        torch.zeros(problem.batch, dtype=torch.bool, device=problem.mu.device),
        torch.zeros_like(problem.mu),
        torch.zeros_like(exact.y),
        make_active_set(problem, first.w, first.lower, first.upper, first.at_previous),
    )
    if hint is not None:
        everyone = torch.ones_like(verified.solved)
        exchanges = 0 if problem.has_turnover else HINT_EXCHANGES
        verified = polish(problem, hint[0], hint[1], verified, exchanges, everyone)
    results = _Results(
        verified,
        torch.zeros(problem.batch, dtype=torch.long, device=problem.mu.device),
        exact,
        threshold,
    )
    iterations = 0
    if LOW_PRECISION_ITERATIONS > 0 and problem.mu.dtype == torch.float64:
        low = torch.float32
        results = replace(results, point=exact.to(low))
        everyone = torch.arange(problem.batch, device=problem.mu.device)
        work = _working_set(everyone, problem, problem.to(low), rows.to(low), results,
                            LOW_PRECISION_GAP)  # fmt: skip
        results, iterations = _phase(work, results, LOW_PRECISION_ITERATIONS)
        # a float32 failure is not final: that problem starts over in float64
        kept = results.failure == 0
        results = _Results(
            results.verified,
            torch.zeros_like(results.failure),
            results.point.to(problem.mu.dtype).where(kept, exact),
            torch.where(kept, results.threshold, threshold),
        )
    unsolved = (~results.verified.solved).nonzero().squeeze(1)
    if len(unsolved) > 0:
        part, part_rows = problem.take(unsolved), rows.take(unsolved)
        work = _working_set(unsolved, part, part, part_rows, results, -math.inf)
        results, done = _phase(work, results, MAX_IPM_ITERATIONS)
        iterations += done
    running = ~results.verified.solved & (results.failure == 0)
    if bool(running.any()):
        # last resort: exchanges from the active set of the last iterate
        results = _last_resort(problem, rows, results, running)
    return Solution(results.verified.weights, results.verified.budget_dual,
                    results.verified.active, results.failure, iterations)  # fmt: skip


@dataclass
class _WorkingSet:
    """The problems the interior point still works on, and their state.

    ``index`` holds their positions in the batch; ``problem`` is their float64 problem (for
    the polish), ``ipm`` the same problem in the interior point's precision, with its
    ``rows``. The state is the iterate, certified results, failure codes, polish thresholds,
    current and smallest gaps. A problem stops running once its gap is at most ``floor``.
    """

    index: torch.Tensor
    problem: Problem
    ipm: Problem
    rows: Rows
    point: Iterate
    verified: Verified
    failure: torch.Tensor
    threshold: torch.Tensor
    gap: torch.Tensor
    smallest_gap: torch.Tensor
    floor: float
    left: torch.Tensor
    """(batch,) bool: left early, at a step that did not lower the gap (float32 only)"""

    @property
    def low_precision(self) -> bool:
        return self.floor > 0

    def running(self) -> torch.Tensor:
        return ~self.verified.solved & (self.failure == 0) & (self.gap > self.floor) & ~self.left

    def take(self, keep: torch.Tensor) -> _WorkingSet:
        return _WorkingSet(
            self.index[keep], self.problem.take(keep), self.ipm.take(keep),
            self.rows.take(keep), self.point.take(keep), self.verified.take(keep),
            self.failure[keep], self.threshold[keep], self.gap[keep], self.smallest_gap[keep],
            self.floor, self.left[keep],
        )  # fmt: skip

    def written_back(self, results: _Results) -> _Results:
        """The batch's results with this set's written in."""
        if len(self.index) == len(results.failure):
            return _Results(self.verified, self.failure, self.point, self.threshold)
        return _Results(
            results.verified.scattered(self.index, self.verified),
            results.failure.index_copy(0, self.index, self.failure),
            results.point.scattered(self.index, self.point),
            results.threshold.index_copy(0, self.index, self.threshold),
        )


def _working_set(
    index: torch.Tensor, problem: Problem, ipm: Problem, rows: Rows, results: _Results,
    floor: float,
) -> _WorkingSet:  # fmt: skip
    """The working set of the problems at ``index``, from their results so far."""
    point = results.point.take(index) if len(index) < len(results.failure) else results.point
    gap = mean_gap(point)
    return _WorkingSet(index, problem, ipm, rows, point, results.verified.take(index),
                       results.failure[index], results.threshold[index], gap, gap, floor,
                       torch.zeros_like(index, dtype=torch.bool))  # fmt: skip


def _phase(work: _WorkingSet, results: _Results, max_iterations: int) -> tuple[_Results, int]:
    """Iterate ``work`` until none of it runs or ``max_iterations`` have been done."""
    done = 0
    while done < max_iterations:
        running = work.running()
        count = int(running.sum())
        if count == 0:
            break
        if count <= COMPACT_FRACTION * len(work.index):
            results = work.written_back(results)
            work = work.take(running.nonzero().squeeze(1))
            running = torch.ones_like(running[: len(work.index)])
        _iterate(work, running)
        done += 1
    return work.written_back(results), done


def _iterate(work: _WorkingSet, running: torch.Tensor) -> None:
    """One interior-point iteration of the working set, with polish of the due problems."""
    problem, ipm, rows, point = work.problem, work.ipm, work.rows, work.point
    system = newton_system(ipm, rows, point)
    work.failure = work.failure.masked_fill(running & system.failed, _SINGULAR)
    gap = system.products.mean(dim=(1, 2))
    due = running & ~system.failed & (gap <= work.threshold)
    if bool(due.any()):
        predicted = point.moved(torch.ones_like(gap), system.affine)
        guess = guess_active(ipm, rows, point, predicted)
        w = guess.w.to(problem.mu.dtype)
        trial = make_active_set(problem, w, guess.lower, guess.upper, guess.at_previous)
        exchanges = 0 if problem.has_turnover else EXCHANGES_PER_TRIAL
        dual = point.y.to(problem.mu.dtype)
        work.verified = polish(problem, trial, dual, work.verified, exchanges, due)
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
    if work.low_precision:
        # float32 has reached its limits where a step no longer lowers the gap: such a
        # problem keeps its last point and carries on in float64
        work.left = work.left | (moving & ~(new_gap < gap))
        moving = moving & ~work.left
    work.point = moved if bool(moving.all()) else moved.where(moving, point)
    work.gap = new_gap = torch.where(moving, new_gap, gap)
    diverging = moving & (new_gap > DIVERGENCE_FACTOR * work.smallest_gap)
    work.failure = work.failure.masked_fill(diverging, _DIVERGED)
    work.smallest_gap = torch.minimum(work.smallest_gap, new_gap)


def _last_resort(
    problem: Problem, rows: Rows, results: _Results, running: torch.Tensor
) -> _Results:
    """Exchanges from the active set of the last iterate for problems still unsolved."""
    index = running.nonzero().squeeze(1)
    point = results.point.take(index)
    part = problem.take(index)
    guess = guess_active(part, rows.take(index), point)
    trial = make_active_set(part, guess.w, guess.lower, guess.upper, guess.at_previous)
    mine = results.verified.take(index)
    solved = polish(part, trial, point.y, mine, MAX_POLISH_ROUNDS, torch.ones_like(index).bool())
    codes = torch.where(solved.solved, 0, _MAX_ITERATIONS)
    return replace(results, verified=results.verified.scattered(index, solved),
                   failure=results.failure.index_copy(0, index, codes))  # fmt: skip
