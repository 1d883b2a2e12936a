r"""Exact solution on a guessed active set, its KKT certificate, and active-set exchanges.

Given which assets are *free* (F) and where the others are *held* (at 0, at their cap, or at
their previous weight), the optimum solves the equality-constrained QP

.. math::

    \begin{bmatrix} H_{FF} & \mathbf 1 \\ \mathbf 1^\top & 0 \end{bmatrix}
    \begin{bmatrix} w_F \\ \nu \end{bmatrix} =
    \begin{bmatrix} m_F - k\,\mathrm{sign}_F - H_{FH} w_H \\ 1 - \mathbf 1^\top w_H
    \end{bmatrix}.

This bordered matrix is non-singular whenever ``H_FF`` is definite on ``1' x = 0``, which
holds at any unique optimum, including rank-deficient risk, cash assets and linear programs,
even though ``H_FF`` itself may be singular. :func:`kkt_solve` factorises the regularised
matrix (``H_FF + rho I``, always definite) and removes the regularisation by iterative
refinement against the exact ``H``: each step multiplies the error by at most
``rho / (lambda + rho)`` on every direction with curvature ``lambda`` (proximal-point
iterations), and leaves directions of zero curvature alone (where the optimum is not unique,
any point of the optimal face is a solution). Each problem refines until its own residual
is below ``REFINEMENT_TOLERANCE`` (at most ``MAX_REFINEMENTS`` steps); a well-conditioned
problem needs one step, a nearly collinear one a few more. The same refinement removes the
cancellation error of a badly conditioned Woodbury factor (tiny ``d`` next to ``F F'``).

A solution is accepted only with a KKT certificate (:func:`certify`) on the unit scale of
:mod:`~e2e_portfolio.models.qp_native.problem`, tolerance ``KKT_TOLERANCE``:

- stationarity on the free assets, :math:`|(Hw - m)_i + \nu + k\,\mathrm{sign}_i|`;
- primal feasibility: budget residual, free assets within their bounds and on their side of
  ``w_prev`` (held assets sit exactly on their bound);
- dual feasibility: the multiplier of every held asset has the right sign (at the kink of
  the L1 term, lies within ``[-k, k]``);
- complementarity holds by construction: free assets have zero bound multipliers, held
  assets zero slack.

Where nothing is free the budget multiplier is any point of an interval; the midpoint-free
choice :func:`dual_interval` clamps the interior point's estimate into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.problem import (
    ActiveSet,
    Problem,
    make_active_set,
    merge,
)

KKT_TOLERANCE = 1e-9
"""Largest accepted KKT residual, on the unit scale of the problem."""
MAX_REFINEMENTS = 30
"""Most iterative-refinement steps after the regularised solve."""
REFINEMENT_TOLERANCE = 1e-12
"""A problem stops refining once its KKT residual (unit scale) is below this."""
POLISH_REGULARISATION = 1e-12
"""Proximal term of the polish and backward solves (unit scale): small, so that one
refinement step usually suffices, yet keeping ``H_FF + rho I`` definite."""


def kkt_solve(
    problem: Problem, free: torch.Tensor, rhs: torch.Tensor, total: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``H_FF x + nu 1 = rhs_F, 1' x = total`` (``x = 0`` off ``free``).

    Returns ``x`` (batch, n), ``nu`` (batch,) (0 where nothing is free), whether anything
    is free (batch,), and whether the factorisation failed (batch,).
    """
    mask = free.to(rhs.dtype)
    factorisation = problem.risk.factorise((1.0 - mask) + POLISH_REGULARISATION * mask, mask)
    both = factorisation.solve(torch.stack([mask * rhs, mask], dim=1)) * mask.unsqueeze(1)
    x_rhs, ones = both.unbind(1)
    ones_total = ones.sum(dim=1)
    has_free = ones_total > 0
    safe_total = ones_total.masked_fill(~has_free, 1.0)

    def bordered(x_r: torch.Tensor, target: torch.Tensor):
        nu = ((x_r.sum(dim=1) - target) / safe_total).masked_fill_(~has_free, 0.0)
        return torch.addcmul(x_r, nu.unsqueeze(1), ones, value=-1.0), nu

    x, nu = bordered(x_rhs, total)
    for _ in range(MAX_REFINEMENTS):
        residual = mask * (rhs - problem.risk.matvec(x) - nu.unsqueeze(1))
        budget_residual = total - x.sum(dim=1)
        size = torch.maximum(residual.abs().amax(dim=1), budget_residual.abs())
        refining = size > REFINEMENT_TOLERANCE
        if not bool(refining.any()):
            break
        x_r = factorisation.solve(residual.unsqueeze(1)).squeeze(1) * mask
        dx, dnu = bordered(x_r, budget_residual)
        # only the problems still above the tolerance move: each stops on its own residual
        x = torch.where(refining.unsqueeze(1), x + dx, x)
        nu = torch.where(refining, nu + dnu, nu)
    return x, nu, has_free, factorisation.failed


def _held_at_zero(problem: Problem, active: ActiveSet) -> torch.Tensor:
    """(batch, n) held at 0 with a sign condition on the multiplier (excluded assets have none)."""
    if problem.excluded is None:
        return active.at_lower
    return active.at_lower & ~problem.excluded


def dual_interval(
    problem: Problem, grad: torch.Tensor, active: ActiveSet
) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch,) bounds on the budget multiplier that keep every held multiplier feasible.

    ``grad`` is the smooth gradient ``H w - m`` without the budget term.
    """
    inf = torch.full_like(grad, torch.inf)
    lower, upper = _held_at_zero(problem, active), active.at_upper
    k = problem.kappa
    lower_shift = upper_shift = torch.zeros_like(grad)
    if problem.has_turnover:
        lower_sign, upper_sign = problem.kink_signs
        lower_shift, upper_shift = k * lower_sign, k * upper_sign
    low = torch.where(lower, -(grad + lower_shift), -inf)
    high = torch.where(upper, -(grad + upper_shift), inf)
    if problem.has_turnover:
        low = torch.maximum(low, torch.where(active.at_previous, -k - grad, -inf))
        high = torch.minimum(high, torch.where(active.at_previous, k - grad, inf))
    return low.amax(dim=1), high.amin(dim=1)


def solve_active_set(
    problem: Problem, active: ActiveSet, fallback_dual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact weights and budget multiplier with the held assets fixed, and failed factorisations.

    Where nothing is free the multiplier is ``fallback_dual`` clamped into
    :func:`dual_interval`.
    """
    held = active.fixed_value
    rhs = problem.mu - problem.kappa * active.sign - problem.risk.matvec(held)
    x, nu, has_free, failed = kkt_solve(problem, active.free, rhs, 1.0 - held.sum(dim=1))
    w = x + held
    if not bool(has_free.all()):
        low, high = dual_interval(problem, problem.gradient(w), active)
        clamped = torch.minimum(torch.maximum(fallback_dual, low), high)
        nu = torch.where(has_free, nu, clamped)
    return w, nu, failed


@dataclass(frozen=True)
class Certificate:
    """KKT residuals of an active-set solution (unit scale) and the assets that break them."""

    to_lower: torch.Tensor
    """(batch, n) free but below 0"""
    to_upper: torch.Tensor
    """(batch, n) free but above its cap"""
    to_previous: torch.Tensor
    """(batch, n) free but on the wrong side of its previous weight"""
    release: torch.Tensor
    """(batch, n) held, with a multiplier of the wrong sign (or outside ``[-k, k]``)"""
    gradient: torch.Tensor
    """(batch, n) ``H w - m + nu``"""
    stationarity: torch.Tensor
    """(batch,) largest ``|H w - m + nu + k sign|`` over free assets"""
    primal: torch.Tensor
    """(batch,) largest budget or bound violation"""
    dual: torch.Tensor
    """(batch,) largest multiplier-sign violation of a held asset"""

    @property
    def failing(self) -> torch.Tensor:
        """(batch,) problems that fail the certificate."""
        worst = torch.maximum(torch.maximum(self.stationarity, self.primal), self.dual)
        masks = self.to_lower | self.to_upper | self.to_previous
        return masks.any(dim=1) | ~(worst <= KKT_TOLERANCE)


def certify(problem: Problem, w: torch.Tensor, nu: torch.Tensor, active: ActiveSet) -> Certificate:
    """Check the KKT conditions of an active-set solution; see the module docstring."""
    grad = problem.gradient(w) + nu.unsqueeze(1)
    free, zero = active.free, torch.zeros_like(grad)
    k = problem.kappa
    to_lower = free & (w < 0)
    to_upper = torch.zeros_like(free)
    primal = (w.sum(dim=1) - 1.0).abs()
    if problem.upper is not None:
        to_upper = free & (w > problem.upper)
    lower, upper = _held_at_zero(problem, active), active.at_upper
    to_previous = torch.zeros_like(free)
    stationary = grad
    if problem.has_turnover:
        assert problem.w_prev is not None
        stationary = grad + k * active.sign
        crossed = (active.sign * (w - problem.w_prev) < 0) | (active.sign == 0)
        to_previous = free & crossed & ~to_lower & ~to_upper
        lower_sign, upper_sign = problem.kink_signs
        lower_mult, upper_mult = grad + k * lower_sign, grad + k * upper_sign
        kink_excess = torch.where(active.at_previous, grad.abs() - k, zero).clamp(min=0)
    else:
        lower_mult, upper_mult, kink_excess = grad, grad, zero
    lower_violation = torch.where(lower, -lower_mult, zero).clamp(min=0)
    upper_violation = torch.where(upper, upper_mult, zero).clamp(min=0)
    release = (lower_violation > KKT_TOLERANCE) | (upper_violation > KKT_TOLERANCE)
    release = release | (kink_excess > KKT_TOLERANCE)
    dual = torch.maximum(torch.maximum(lower_violation, upper_violation), kink_excess)
    return Certificate(
        to_lower=to_lower,
        to_upper=to_upper,
        to_previous=to_previous,
        release=release,
        gradient=grad,
        stationarity=torch.where(free, stationary, zero).abs().amax(dim=1),
        primal=primal,
        dual=dual.amax(dim=1),
    )


def exchange(problem: Problem, w: torch.Tensor, active: ActiveSet, check: Certificate) -> ActiveSet:
    """One primal-dual active-set exchange: move every violating asset to its other set."""
    release = check.release
    held_lower, held_upper = active.at_lower, active.at_upper
    lower = (held_lower & ~release) | check.to_lower
    upper = (held_upper & ~release) | check.to_upper
    at_previous = (active.at_previous & ~release) | check.to_previous
    sign = active.sign
    if problem.has_turnover:
        # a released asset moves into the direction that lowers the objective
        assert problem.w_prev is not None
        lower_sign, upper_sign = problem.kink_signs
        from_bound = torch.where(held_lower, lower_sign, 0.0)
        from_bound = torch.where(held_upper, upper_sign, from_bound)
        released = torch.where(active.at_previous, -torch.sign(check.gradient), from_bound)
        sign = torch.where(release, released, sign)
    return make_active_set(problem, w, lower, upper, at_previous, sign=sign)


@dataclass(frozen=True)
class Verified:
    """Problems whose solution passed the certificate, and those solutions."""

    solved: torch.Tensor
    """(batch,) bool"""
    weights: torch.Tensor
    budget_dual: torch.Tensor
    active: ActiveSet

    def accepting(self, passed: torch.Tensor, w, nu, active: ActiveSet) -> Verified:
        """These results with the ``passed`` problems' solutions added."""
        return Verified(
            self.solved | passed,
            torch.where(passed.unsqueeze(1), w, self.weights),
            torch.where(passed, nu, self.budget_dual),
            merge(passed, active, self.active),
        )

    def take(self, index: torch.Tensor) -> Verified:
        """The results of the problems at ``index`` (1-D)."""
        return Verified(
            self.solved[index], self.weights[index], self.budget_dual[index],
            self.active.take(index),
        )  # fmt: skip

    def scattered(self, index: torch.Tensor, part: Verified) -> Verified:
        """These results with the problems at ``index`` replaced by ``part``'s."""
        fields = [self.solved, self.weights, self.budget_dual, *self.active.fields()]
        parts = [part.solved, part.weights, part.budget_dual, *part.active.fields()]
        merged = [
            whole.index_copy(0, index, piece) for whole, piece in zip(fields, parts, strict=True)
        ]
        return Verified(merged[0], merged[1], merged[2], ActiveSet(*merged[3:]))


def polish(
    problem: Problem,
    trial: ActiveSet,
    dual: torch.Tensor,
    verified: Verified,
    exchanges: int,
    due: torch.Tensor,
) -> Verified:
    """Solve exactly on ``trial`` and certify; exchange and retry up to ``exchanges`` times.

    After a failed certificate the violating assets move to their other set. Only the
    ``due`` problems (batch,) are polished and may join ``verified``: each problem's outcome
    depends on its own data alone. ``dual`` is the budget multiplier used where nothing is
    free. When few problems are due, they are polished as a batch of their own.
    """
    count = int(due.sum())
    if count == 0:
        return verified
    if count < due.shape[0]:
        index = due.nonzero().squeeze(1)
        part = _polish_all(
            problem.take(index), trial.take(index), dual[index], verified.take(index), exchanges
        )
        return verified.scattered(index, part)
    return _polish_all(problem, trial, dual, verified, exchanges)


def _polish_all(problem, trial: ActiveSet, dual, verified: Verified, exchanges: int) -> Verified:
    """:func:`polish` with every problem of the batch due (none of them verified yet)."""
    for round_ in range(exchanges + 1):
        w, nu, failed = solve_active_set(problem, trial, dual)
        check = certify(problem, w, nu, trial)
        passed = ~verified.solved & ~check.failing & ~failed
        verified = verified.accepting(passed, w, nu, trial)
        if bool(verified.solved.all()):
            break
        if round_ < exchanges:
            trial = exchange(problem, w, trial, check)
    return verified
