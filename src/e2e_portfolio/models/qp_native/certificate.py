r"""The KKT certificate of an active-set solution, on the unit scale of the problem.

A solution is accepted only if :func:`certify` passes it, within the options'
``kkt_tolerance``:

- stationarity on the free assets, :math:`|(Hw - m)_i + (C^\top\lambda)_i +
  k\,\mathrm{sign}_i + \lambda_L\,\mathrm{side}_i|`;
- primal feasibility: equality rows, inequality rows, the leverage bound, free assets within
  their bounds and on their side of ``w_prev`` and of 0 (held assets sit exactly on theirs);
- dual feasibility: held rows have multipliers >= 0, and every held asset has a multiplier
  of the right sign: at a kink of an L1 term (``w_prev``, or 0 under leverage) the term
  contributes any subgradient, so the condition is on an interval (:func:`held_range`);
- complementarity holds by construction: free assets have zero bound multipliers, held
  assets zero slack, rows not held zero multipliers.

Where nothing is free and the budget is the only row, the budget multiplier is any point of
an interval; :func:`dual_interval` gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem, rows_times


def held_range(
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
    low, high = held_range(problem, smooth, active, None)
    inf = torch.full_like(smooth, torch.inf)
    floor, cap, kink = _at_floor(problem, active), active.at_upper, _kinked(active)
    # at the floor: high + nu >= 0; at the cap: low + nu <= 0; at a kink: both
    least = torch.where(floor | kink, -high, -inf).amax(dim=1)
    most = torch.where(cap | kink, -low, inf).amin(dim=1)
    return least, most


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

    ``duals`` (batch, m): the rows' multipliers, as
    :func:`~e2e_portfolio.models.qp_native.polish.solve_active_set` returns them.
    """
    tolerance = problem.options.kkt_tolerance
    constraints = problem.constraints
    n_eq, count = constraints.n_eq, constraints.count
    row_duals = duals[:, :count]
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
    low, high = held_range(problem, smooth, active, leverage_dual)
    floor, cap, kink = _at_floor(problem, active), active.at_upper, _kinked(active)
    below, above = (-high).clamp(min=0), low.clamp(min=0)
    violation = torch.where(floor, below, zero)
    violation = torch.maximum(violation, torch.where(cap, above, zero))
    if problem.has_turnover or problem.leverage is not None:  # else nothing sits at a kink
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
