r"""Exact solution on a guessed active set, its KKT certificate, and active-set exchanges.

Given which assets are *free* (F), where the others are *held* (at their floor, their cap,
their previous weight, or 0 under a leverage bound), and which inequality rows hold as
equalities, the optimum solves the equality-constrained QP

.. math::

    \begin{bmatrix} H_{FF} & C_F^\top \\ C_F & 0 \end{bmatrix}
    \begin{bmatrix} w_F \\ \lambda \end{bmatrix} =
    \begin{bmatrix} m_F - k\,\mathrm{sign}_F - H_{FH} w_H \\ c - C_H w_H \end{bmatrix},

where ``C`` stacks the budget row, ``A_eq``, the held rows of ``A_ub`` and, when the
leverage bound holds, the row :math:`\mathrm{sign}(w)^\top w = L` (each free asset's side is
part of the active set). :func:`kkt_solve` factorises the regularised ``H_FF + rho I``
(always definite), solves for ``C_F'`` in the same pass, and solves the small Schur
complement :math:`C_F (H_{FF} + \rho I)^{-1} C_F^\top` by a pseudo-inverse, so redundant or
rank-deficient rows (``A_eq`` repeating the budget, collinear factors) are handled: their
multipliers are the ones closest to the interior point's. Iterative refinement against the
exact ``H`` then removes the regularisation: each step multiplies the error by at most
``rho / (lambda + rho)`` on every direction with curvature ``lambda`` (proximal-point
iterations), and leaves directions of zero curvature alone (where the optimum is not unique,
any point of the optimal face is a solution). Each problem refines until its own residual
is below the refinement tolerance; a well-conditioned problem needs one step, a nearly
collinear one a few more. The same refinement removes the cancellation error of a badly
conditioned Woodbury factor (tiny ``d`` next to ``F F'``).

A solution is accepted only with a KKT certificate (:func:`certify`) on the unit scale of
:mod:`~e2e_portfolio.models.qp_native.problem`, within the options' ``kkt_tolerance``:

- stationarity on the free assets, :math:`|(Hw - m)_i + (C^\top\lambda)_i +
  k\,\mathrm{sign}_i + \lambda_L\,\mathrm{side}_i|`;
- primal feasibility: equality rows, inequality rows, the leverage bound, free assets within
  their bounds and on their side of ``w_prev`` and of 0 (held assets sit exactly on theirs);
- dual feasibility: held rows have multipliers >= 0, and every held asset has a multiplier
  of the right sign: at a kink of an L1 term (``w_prev``, or 0 under leverage) the term
  contributes any subgradient, so the condition is on an interval;
- complementarity holds by construction: free assets have zero bound multipliers, held
  assets zero slack, rows not held zero multipliers.

Where nothing is free and the budget is the only row, the budget multiplier is any point of
an interval; :func:`dual_interval` clamps the interior point's estimate into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.problem import (
    ActiveSet,
    Problem,
    make_active_set,
    merge,
    rows_times,
)

PSEUDO_INVERSE_CUTOFF = 1e-11
"""Eigenvalues of the rows' Schur complement below this share of its largest are taken as
zero (redundant rows)."""


def _pseudo_inverse(schur: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of the symmetric (batch, m, m) ``schur``; rows not ``on`` map to 0."""
    if schur.shape[1] == 1:
        value = schur[:, :1]
        return torch.where(value > 0, 1.0 / value.where(value > 0, 1.0), 0.0)
    diagonal = torch.diagonal(schur, dim1=-2, dim2=-1)
    size = diagonal.amax(dim=1, keepdim=True).clamp(min=torch.finfo(schur.dtype).tiny)
    filled = schur + torch.diag_embed((1.0 - on) * size)
    values, vectors = torch.linalg.eigh(0.5 * (filled + filled.mT))
    keep = values > PSEUDO_INVERSE_CUTOFF * values.abs().amax(dim=1, keepdim=True)
    inverse_values = torch.where(keep, 1.0 / values.where(keep, 1.0), 0.0)
    return (vectors * inverse_values.unsqueeze(1)) @ vectors.mT


def kkt_solve(
    problem: Problem,
    free: torch.Tensor,
    rhs: torch.Tensor,
    matrix: torch.Tensor,
    target: torch.Tensor,
    on: torch.Tensor,
    base: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``H_FF x + C_F' lam = rhs_F, C_F x = target`` on the rows ``on`` (x = 0 off ``free``).

    ``matrix`` (batch, m, n) holds the rows, ``target`` (batch, m) their right-hand sides,
    ``on`` (batch, m) bool which of them count. Multipliers the system leaves open (no free
    asset, redundant rows) are the ones closest to ``base`` (batch, m; 0 by default).
    Returns ``x`` (batch, n), ``lam`` (batch, m; 0 on rows not ``on``) and whether the
    factorisation failed (batch,).
    """
    count = int(on.sum(dim=1).max()) if on.shape[1] > 1 else on.shape[1]
    if count < on.shape[1]:
        # only the rows that hold, each problem's first (padded to the most any problem has):
        # sector caps of which a few bind cost a few columns, not all
        order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :count]
        rows_of = matrix.gather(1, order.unsqueeze(2).expand(-1, -1, matrix.shape[2]))
        base_of = None if base is None else base.gather(1, order)
        x, lam, failed = kkt_solve(problem, free, rhs, rows_of, target.gather(1, order),
                                   on.gather(1, order), base_of)  # fmt: skip
        return x, torch.zeros_like(target).scatter(1, order, lam), failed
    options = problem.options
    mask = free.to(rhs.dtype)
    factorisation = problem.risk.factorise(
        (1.0 - mask) + options.polish_regularisation * mask, mask
    )
    if problem.rows is None and problem.leverage is None:
        return _budget_solve(problem, mask, rhs, target, factorisation)
    weight = on.to(rhs.dtype)
    rows = matrix * mask.unsqueeze(1) * weight.unsqueeze(2)
    solved = factorisation.solve(torch.cat([(mask * rhs).unsqueeze(1), rows], dim=1))
    solved = solved * mask.unsqueeze(1)
    x_rhs, columns = solved[:, 0], solved[:, 1:]
    schur = rows @ columns.mT
    inverse = _pseudo_inverse(schur, weight)
    zero = torch.zeros_like(target)
    start = zero if base is None else base * weight

    def bordered(x_r: torch.Tensor, goal: torch.Tensor, first: torch.Tensor):
        miss = rows_times(rows, x_r) - goal * weight
        miss = miss - rows_times(schur, first)
        lam = first + rows_times(inverse, miss)
        return x_r - (lam.unsqueeze(1) @ columns).squeeze(1), lam

    x, lam = bordered(x_rhs, target, start)
    for _ in range(options.max_refinements):
        pulled = (lam.unsqueeze(1) @ rows).squeeze(1)
        residual = mask * (rhs - problem.risk.matvec(x) - pulled)
        row_residual = weight * (target - rows_times(rows, x))
        size = torch.maximum(residual.abs().amax(dim=1), row_residual.abs().amax(dim=1))
        refining = size > options.refinement_tolerance
        if not bool(refining.any()):
            break
        x_r = factorisation.solve(residual.unsqueeze(1)).squeeze(1) * mask
        dx, dlam = bordered(x_r, row_residual, zero)
        # only the problems still above the tolerance move: each stops on its own residual
        x = torch.where(refining.unsqueeze(1), x + dx, x)
        lam = torch.where(refining.unsqueeze(1), lam + dlam, lam)
    return x, lam, factorisation.failed


def _budget_solve(problem: Problem, mask, rhs, target, factorisation):
    """:func:`kkt_solve` with the budget ``1' x = target`` as the only row.

    Its Schur complement is the number ``1' M^-1 1``, so no products with rows are needed.
    """
    options = problem.options
    both = factorisation.solve(torch.stack([mask * rhs, mask], dim=1)) * mask.unsqueeze(1)
    x_rhs, ones = both.unbind(1)
    ones_total = ones.sum(dim=1)
    has_free = ones_total > 0
    safe_total = ones_total.masked_fill(~has_free, 1.0)
    total = target[:, 0]

    def bordered(x_r: torch.Tensor, goal: torch.Tensor):
        nu = ((x_r.sum(dim=1) - goal) / safe_total).masked_fill_(~has_free, 0.0)
        return torch.addcmul(x_r, nu.unsqueeze(1), ones, value=-1.0), nu

    x, nu = bordered(x_rhs, total)
    for _ in range(options.max_refinements):
        residual = mask * (rhs - problem.risk.matvec(x) - nu.unsqueeze(1))
        budget_residual = total - x.sum(dim=1)
        size = torch.maximum(residual.abs().amax(dim=1), budget_residual.abs())
        refining = size > options.refinement_tolerance
        if not bool(refining.any()):
            break
        x_r = factorisation.solve(residual.unsqueeze(1)).squeeze(1) * mask
        dx, dnu = bordered(x_r, budget_residual)
        x = torch.where(refining.unsqueeze(1), x + dx, x)
        nu = torch.where(refining, nu + dnu, nu)
    return x, nu.unsqueeze(1), factorisation.failed


def active_rows(problem: Problem, active: ActiveSet) -> tuple[torch.Tensor, ...]:
    """The rows of ``active``: matrix (batch, m, n), right-hand sides and ``on`` (batch, m).

    Budget and ``A_eq`` rows always, ``A_ub`` rows where held, and the leverage row (each
    free asset's side, each held asset's sign) where the bound holds.
    """
    constraints = problem.constraints
    matrix, rhs = constraints.matrix, constraints.rhs
    on = torch.ones_like(rhs, dtype=torch.bool)
    if active.rows is not None:
        on = torch.cat([on[:, : constraints.n_eq], active.rows], dim=1)
    if problem.leverage is not None:
        assert active.side is not None and active.levered is not None
        side = torch.where(active.free, active.side, torch.sign(active.fixed_value))
        matrix = torch.cat([matrix, side.unsqueeze(1)], dim=1)
        rhs = torch.cat([rhs, problem.leverage.unsqueeze(1)], dim=1)
        on = torch.cat([on, active.levered.unsqueeze(1)], dim=1)
    return matrix, rhs, on


def _held_range(
    problem: Problem, smooth: torch.Tensor, active: ActiveSet, leverage_dual: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, n) the range of a held asset's multiplier over the L1 terms' subgradients.

    ``smooth``: ``H w - m + C' lam`` without the L1 terms. At ``w_prev`` the turnover term
    adds any of ``[-k, k]``, elsewhere ``k sign(w - w_prev)``; at 0 the leverage term adds
    any of ``[-lam_L, lam_L]``, elsewhere ``lam_L sign(w)``.
    """
    low = high = smooth
    value = active.fixed_value
    if problem.has_turnover:
        assert problem.w_prev is not None
        k = problem.kappa
        kink = value == problem.w_prev
        fixed = k * torch.sign(value - problem.w_prev)
        low, high = low + torch.where(kink, -k, fixed), high + torch.where(kink, k, fixed)
    if leverage_dual is not None:
        dual = leverage_dual.unsqueeze(1)
        kink = value == 0
        fixed = dual * torch.sign(value)
        low = low + torch.where(kink, -dual.abs(), fixed)
        high = high + torch.where(kink, dual.abs(), fixed)
    return low, high


def _at_floor(problem: Problem, active: ActiveSet) -> torch.Tensor:
    """(batch, n) held at the floor with a sign condition (excluded assets have none)."""
    if problem.excluded is None:
        return active.at_lower
    return active.at_lower & ~problem.excluded


def _kinked(active: ActiveSet) -> torch.Tensor:
    """(batch, n) held at a kink of an L1 term, away from the bounds."""
    return active.at_previous if active.at_zero is None else active.at_previous | active.at_zero


def dual_interval(
    problem: Problem, smooth: torch.Tensor, active: ActiveSet
) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch,) bounds on the budget multiplier that keep every held multiplier feasible.

    ``smooth`` is the smooth gradient ``H w - m`` without the budget term; only for problems
    whose budget is the only row that holds.
    """
    low, high = _held_range(problem, smooth, active, None)
    inf = torch.full_like(smooth, torch.inf)
    floor, cap, kink = _at_floor(problem, active), active.at_upper, _kinked(active)
    # at the floor: high + nu >= 0; at the cap: low + nu <= 0; at a kink: both
    least = torch.where(floor | kink, -high, -inf).amax(dim=1)
    most = torch.where(cap | kink, -low, inf).amin(dim=1)
    return least, most


def solve_active_set(
    problem: Problem, active: ActiveSet, fallback_duals: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact weights and row multipliers with the held assets fixed, and failed factorisations.

    Multipliers the free assets leave open are the ones closest to ``fallback_duals``
    (batch, m; or (batch,), the budget's alone); where nothing is free and the budget is the
    only row, its multiplier is the fallback clamped into :func:`dual_interval`.
    """
    held = active.fixed_value
    matrix, rhs, on = active_rows(problem, active)
    if fallback_duals.ndim == 1:  # the budget multiplier alone
        budget_dual = fallback_duals
        fallback_duals = torch.zeros_like(rhs)
        fallback_duals[:, 0] = budget_dual
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


@dataclass(frozen=True)
class Certificate:
    """KKT residuals of an active-set solution (unit scale) and what breaks them."""

    to_lower: torch.Tensor
    """(batch, n) free but below its floor"""
    to_upper: torch.Tensor
    """(batch, n) free but above its cap"""
    to_previous: torch.Tensor
    """(batch, n) free but on the wrong side of its previous weight"""
    to_zero: torch.Tensor
    """(batch, n) free but on the wrong side of 0 under a held leverage bound"""
    release: torch.Tensor
    """(batch, n) held, with a multiplier of the wrong sign (or outside its kink's range)"""
    direction: torch.Tensor
    """(batch, n) where a released asset moves: +1 up, -1 down"""
    rows_on: torch.Tensor | None
    """(batch, m_ub) inequality rows not held but violated"""
    rows_off: torch.Tensor | None
    """(batch, m_ub) held inequality rows with a negative multiplier"""
    levered_on: torch.Tensor | None
    """(batch,) leverage bound not held but exceeded"""
    levered_off: torch.Tensor | None
    """(batch,) held leverage bound with a negative multiplier"""
    stationarity: torch.Tensor
    """(batch,) largest stationarity residual over free assets"""
    primal: torch.Tensor
    """(batch,) largest row or bound violation"""
    dual: torch.Tensor
    """(batch,) largest multiplier-sign violation"""
    tolerance: float

    @property
    def residual(self) -> torch.Tensor:
        """(batch,) the largest of the three residuals."""
        return torch.maximum(torch.maximum(self.stationarity, self.primal), self.dual)

    @property
    def failing(self) -> torch.Tensor:
        """(batch,) problems that fail the certificate."""
        masks = self.to_lower | self.to_upper | self.to_previous | self.to_zero
        return masks.any(dim=1) | ~(self.residual <= self.tolerance)


def certify(
    problem: Problem, w: torch.Tensor, duals: torch.Tensor, active: ActiveSet
) -> Certificate:
    """Check the KKT conditions of an active-set solution; see the module docstring.

    ``duals`` (batch, m): the rows' multipliers, as :func:`solve_active_set` returns them
    (a problem's budget multiplier alone, (batch,), is accepted too).
    """
    tolerance = problem.options.kkt_tolerance
    if duals.ndim == 1:
        duals = duals.unsqueeze(1)
    constraints = problem.constraints
    n_eq, count = constraints.n_eq, constraints.count
    row_duals = duals[:, :count]
    if row_duals.shape[1] < count:
        row_duals = torch.cat([row_duals, torch.zeros_like(w[:, : count - row_duals.shape[1]])], 1)
    if problem.rows is None:
        smooth = problem.gradient(w) + row_duals
    else:
        smooth = problem.gradient(w) + (row_duals.unsqueeze(1) @ constraints.matrix).squeeze(1)
    leverage_dual = duals[:, count] if problem.leverage is not None else None
    free, zero = active.free, torch.zeros_like(w)
    no = torch.zeros_like(free)
    stationary = smooth
    if problem.rows is None:  # the budget alone
        values = w.sum(dim=1, keepdim=True) - 1.0
    else:
        values = rows_times(constraints.matrix, w) - constraints.rhs
    primal = values[:, :n_eq].abs().amax(dim=1)
    dual = torch.zeros_like(primal)
    to_lower = free & (w < problem.floor)
    to_upper = no if problem.upper is None else free & (w > problem.upper)
    to_previous = to_zero = no
    if problem.has_turnover:
        assert problem.w_prev is not None
        stationary = stationary + problem.kappa * active.sign
        crossed = (active.sign * (w - problem.w_prev) < 0) | (active.sign == 0)
        to_previous = free & crossed & ~to_lower & ~to_upper
    rows_on = rows_off = levered_on = levered_off = None
    if active.rows is not None:
        gap = values[:, n_eq:]
        held_rows = active.rows
        rows_on = ~held_rows & (gap > tolerance)
        rows_off = held_rows & (row_duals[:, n_eq:] < -tolerance)
        primal = torch.maximum(primal, torch.where(held_rows, gap.abs(), gap.clamp(min=0)).amax(1))
        dual = torch.maximum(dual, torch.where(held_rows, -row_duals[:, n_eq:], 0.0).amax(1))
    if leverage_dual is not None:
        assert active.side is not None and active.levered is not None
        levered = active.levered
        stationary = stationary + leverage_dual.unsqueeze(1) * active.side
        crossed = (active.side * w < 0) | ((active.side == 0) & (w != 0))
        to_zero = free & levered.unsqueeze(1) & crossed & ~to_lower & ~to_upper & ~to_previous
        assert problem.leverage is not None
        excess = w.abs().sum(dim=1) - problem.leverage
        levered_on = ~levered & (excess > tolerance)
        levered_off = levered & (leverage_dual < -tolerance)
        primal = torch.maximum(primal, torch.where(levered, excess.abs(), excess.clamp(min=0)))
        dual = torch.maximum(dual, torch.where(levered, -leverage_dual, 0.0))
    low, high = _held_range(problem, smooth, active, leverage_dual)
    floor, cap, kink = _at_floor(problem, active), active.at_upper, _kinked(active)
    below, above = (-high).clamp(min=0), low.clamp(min=0)
    violation = torch.where(floor, below, zero)
    violation = torch.maximum(violation, torch.where(cap, above, zero))
    violation = torch.maximum(violation, torch.where(kink, torch.maximum(below, above), zero))
    release = violation > tolerance
    direction = torch.where(cap | (kink & (above > 0)), -1.0, 1.0)
    dual = torch.maximum(dual, violation.amax(dim=1))
    return Certificate(
        to_lower=to_lower,
        to_upper=to_upper,
        to_previous=to_previous,
        to_zero=to_zero,
        release=release,
        direction=direction,
        rows_on=rows_on,
        rows_off=rows_off,
        levered_on=levered_on,
        levered_off=levered_off,
        stationarity=torch.where(free, stationary, zero).abs().amax(dim=1),
        primal=primal,
        dual=dual,
        tolerance=tolerance,
    )


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
