"""The solve loop: interior point, then exact and certified polish, problem by problem.

1. The interior point (:mod:`~e2e_portfolio.models.qp_native.interior_point`) iterates every
   unfinished problem of the batch in lockstep, first in float32, then in float64 (below).
2. A problem whose own mean gap falls below its polish threshold (first ``polish_gap`` of
   the :class:`~e2e_portfolio.models.qp_native.options.SolverOptions`) gets its active set
   read off the predictor step and solved exactly, in float64
   (:func:`~e2e_portfolio.models.qp_native.polish.polish`, up to ``exchanges_per_trial``
   exchanges). If the certificate passes, the problem stops; if not, its threshold falls by
   ``retry_factor`` (exchanges can cycle at the kink of the L1 term; the interior point
   breaks the cycle). Every decision is per problem, so an answer does not depend on the
   batch it was solved in.
3. A problem fails, with a status, when its iterate stops being finite (``non_finite``),
   its gap grows ``divergence_factor`` times above the smallest it reached (``diverged``),
   its Newton system cannot be factorised (``singular_system``), or it is still uncertified
   after ``max_ipm_iterations`` and a last run of exchanges (``max_iterations``). Failures
   are reported per problem, never for the whole batch; the layer then tells an infeasible
   problem (``infeasible``) from a failure of the solver.

**Two precisions.** The interior point only has to come close enough for the polish to read
off the active set, and every pass over its (batch, rows, n) tensors is memory-bound: in
float32 the same pass moves half the bytes (measured here: elementwise 2.1-2.3x and batched
products 1.3-1.8x faster, at n = 40 and n = 1000). So the interior point runs in float32
until a problem is certified, fails in float32, reaches a gap of ``low_precision_gap`` or
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

from e2e_portfolio.models.qp_native.epigraph import (
    Iterate,
    Rows,
    constraint_rows,
    mean_gap,
    start,
)
from e2e_portfolio.models.qp_native.interior_point import (
    corrected_step,
    guess_active,
    newton_system,
)
from e2e_portfolio.models.qp_native.polish import Verified, polish
from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem, make_active_set

# Measured choices behind the defaults of SolverOptions (options.py):
# - turnover_polish_gap 1e-8: the guess at the kink of the L1 term needs the interior point
#   closer, and with float32 iterations a failed polish costs more than two iterations
#   (kappa = 0.002: 20-30% faster than at 1e-6 at n = 200, 10-15% at n = 1000, no change at
#   n = 40).
# - exchanges_per_trial 2, none with the turnover term, where exchanges cycle at the kink
#   (2 exchanges cost 10-20% more time there, and save the same without it).
# - hint_exchanges 6, none with turnover: on the training loss of e2e_return at n = 1000
#   (90 months, 48 factors), 0 certify no month after an epoch's step, 2 some, 6 all; the
#   forward then costs a few exact solves instead of 13 iterations.

STATUSES = ("solved", "non_finite", "diverged", "singular_system", "max_iterations", "infeasible")
"""Per-problem outcome codes, indexed by :attr:`Solution.status`."""
_NON_FINITE, _DIVERGED, _SINGULAR, _MAX_ITERATIONS, INFEASIBLE = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Solution:
    """Certified weights and active sets of a batch, with each problem's status."""

    weights: torch.Tensor
    """(batch, n); meaningless where the problem failed"""
    duals: torch.Tensor
    """(batch, m) multipliers of the rows (budget, ``A_eq``, ``A_ub``, leverage; unit scale)"""
    active: ActiveSet
    status: torch.Tensor
    """(batch,) int, an index into :data:`STATUSES`; 0 is solved"""
    iterations: int
    """lockstep interior-point iterations, float32 and float64 together"""
    problem_iterations: torch.Tensor | None = None
    """(batch,) int, the interior-point iterations each problem took"""

    @property
    def budget_dual(self) -> torch.Tensor:
        """(batch,) multiplier of the budget row (unit scale)."""
        return self.duals[:, 0]

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

    Certified solutions, failure codes, last iterates, polish thresholds, iteration counts.
    """

    verified: Verified
    failure: torch.Tensor
    point: Iterate
    threshold: torch.Tensor
    count: torch.Tensor


def iterate_duals(point: Iterate) -> torch.Tensor:
    """(batch, m) an iterate's multipliers of the rows, in the order of the polish."""
    return point.y if point.gz is None else torch.cat([point.y, point.gd], dim=1)


def solve(problem: Problem, hint: tuple[ActiveSet, torch.Tensor] | None = None) -> Solution:
    """Solve every problem of the batch; failures are reported in the solution's status.

    The interior point works on the unfinished problems only: once at most
    ``compact_fraction`` of its working set still runs, the set is cut down to them, so the
    last iterations, spent on a few stragglers, cost a few problems' worth rather than the
    batch's. Tolerances and limits come from ``problem.options``.

    ``hint``: active sets (and row multipliers) to try first, e.g. those of the same
    problems a moment ago (a training epoch earlier). Each problem whose hint passes the KKT
    certificate is solved by that one exact solve; the others go through the interior point
    as without a hint. An answer is accepted on the same certificate either way.
    """
    options = problem.options
    rows = constraint_rows(problem)
    exact = start(problem, rows)
    first = guess_active(problem, rows, exact)
    threshold = torch.full_like(
        exact.y[:, 0], options.turnover_polish_gap if problem.has_turnover else options.polish_gap
    )
    verified = Verified(
        torch.zeros(problem.batch, dtype=torch.bool, device=problem.mu.device),
        torch.zeros_like(problem.mu),
        torch.zeros_like(iterate_duals(exact)),
        _guessed_set(problem, first),
    )
    if hint is not None:
        everyone = torch.ones_like(verified.solved)
        exchanges = 0 if problem.has_turnover else options.hint_exchanges
        verified = polish(problem, hint[0], hint[1], verified, exchanges, everyone)
    zeros = torch.zeros(problem.batch, dtype=torch.long, device=problem.mu.device)
    results = _Results(verified, zeros, exact, threshold, zeros)
    iterations = 0
    if options.low_precision_iterations > 0 and problem.mu.dtype == torch.float64:
        low = torch.float32
        results = replace(results, point=exact.to(low))
        everyone = torch.arange(problem.batch, device=problem.mu.device)
        work = _working_set(everyone, problem, problem.to(low), rows.to(low), results,
                            options.low_precision_gap)  # fmt: skip
        results, iterations = _phase(work, results, options.low_precision_iterations)
        # a float32 failure is not final: that problem starts over in float64
        kept = results.failure == 0
        results = _Results(
            results.verified,
            torch.zeros_like(results.failure),
            results.point.to(problem.mu.dtype).where(kept, exact),
            torch.where(kept, results.threshold, threshold),
            results.count,
        )
    unsolved = (~results.verified.solved).nonzero().squeeze(1)
    if len(unsolved) > 0:
        part, part_rows = problem.take(unsolved), rows.take(unsolved)
        work = _working_set(unsolved, part, part, part_rows, results, -math.inf)
        results, done = _phase(work, results, options.max_ipm_iterations)
        iterations += done
    running = ~results.verified.solved & (results.failure == 0)
    if bool(running.any()):
        # last resort: exchanges from the active set of the last iterate
        results = _last_resort(problem, rows, results, running)
    verified = results.verified
    return Solution(verified.weights, verified.duals, verified.active, results.failure,
                    iterations, results.count)  # fmt: skip


def _guessed_set(problem: Problem, guess) -> ActiveSet:
    return make_active_set(problem, guess.w, guess.lower, guess.upper, guess.at_previous,
                           at_zero=guess.at_zero, rows=guess.rows,
                           levered=guess.levered)  # fmt: skip


@dataclass
class _WorkingSet:
    """The problems the interior point still works on, and their state.

    ``index`` holds their positions in the batch; ``problem`` is their float64 problem (for
    the polish), ``ipm`` the same problem in the interior point's precision, with its
    ``rows``. The state is the iterate, certified results, failure codes, polish thresholds,
    current and smallest gaps, iteration counts. A problem stops running once its gap is at
    most ``floor``.
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
    count: torch.Tensor

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
            self.floor, self.left[keep], self.count[keep],
        )  # fmt: skip

    def written_back(self, results: _Results) -> _Results:
        """The batch's results with this set's written in."""
        if len(self.index) == len(results.failure):
            return _Results(self.verified, self.failure, self.point, self.threshold, self.count)
        return _Results(
            results.verified.scattered(self.index, self.verified),
            results.failure.index_copy(0, self.index, self.failure),
            results.point.scattered(self.index, self.point),
            results.threshold.index_copy(0, self.index, self.threshold),
            results.count.index_copy(0, self.index, self.count),
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
                       torch.zeros_like(index, dtype=torch.bool),
                       results.count[index])  # fmt: skip


def _phase(work: _WorkingSet, results: _Results, max_iterations: int) -> tuple[_Results, int]:
    """Iterate ``work`` until none of it runs or ``max_iterations`` have been done."""
    done = 0
    compact = work.problem.options.compact_fraction
    while done < max_iterations:
        running = work.running()
        count = int(running.sum())
        if count == 0:
            break
        if count <= compact * len(work.index):
            results = work.written_back(results)
            work = work.take(running.nonzero().squeeze(1))
            running = torch.ones_like(running[: len(work.index)])
        work.count = work.count.add_(running)
        _iterate(work, running)
        done += 1
    return work.written_back(results), done


def _iterate(work: _WorkingSet, running: torch.Tensor) -> None:
    """One interior-point iteration of the working set, with polish of the due problems."""
    problem, ipm, rows, point = work.problem, work.ipm, work.rows, work.point
    options = problem.options
    system = newton_system(ipm, rows, point)
    work.failure = work.failure.masked_fill(running & system.failed, _SINGULAR)
    gap = system.gap
    due = running & ~system.failed & (gap <= work.threshold)
    if bool(due.any()):
        predicted = point.moved(torch.ones_like(gap), system.affine)
        guess = guess_active(ipm, rows, point, predicted)
        guess = replace(guess, w=guess.w.to(problem.mu.dtype))
        trial = _guessed_set(problem, guess)
        exchanges = 0 if problem.has_turnover else options.exchanges_per_trial
        duals = iterate_duals(point).to(problem.mu.dtype)
        work.verified = polish(problem, trial, duals, work.verified, exchanges, due)
        work.threshold = torch.where(
            due & ~work.verified.solved, options.retry_factor * gap, work.threshold
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
    diverging = moving & (new_gap > options.divergence_factor * work.smallest_gap)
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
    trial = _guessed_set(part, guess)
    mine = results.verified.take(index)
    rounds = problem.options.max_polish_rounds
    duals = iterate_duals(point)
    solved = polish(part, trial, duals, mine, rounds, torch.ones_like(index).bool())
    codes = torch.where(solved.solved, 0, _MAX_ITERATIONS)
    return replace(results, verified=results.verified.scattered(index, solved),
                   failure=results.failure.index_copy(0, index, codes))  # fmt: skip
