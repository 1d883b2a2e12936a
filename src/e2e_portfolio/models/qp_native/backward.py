r"""Implicit differentiation of the KKT conditions at the certified active set.

On the free assets F, with ``C`` the rows that hold (budget, ``A_eq``, held rows of
``A_ub``, the leverage row with each asset's side), the solution satisfies (unit scale, see
:mod:`~e2e_portfolio.models.qp_native.problem`)

.. math::

    H_{FF} w_F + C_F^\top \lambda = m_F - k\,\mathrm{sign}_F - H_{FH} w_H,
    \qquad C_F w_F = c - C_H w_H .

For an upstream gradient :math:`g = \partial L / \partial w`, one solve of the same bordered
system, :math:`[H_{FF}\ C_F^\top; C_F\ 0]\,[a; b] = [g_F; 0]`, gives

.. math::

    \frac{\partial L}{\partial \mu} = \frac{a}{\sigma}, \qquad
    \frac{\partial L}{\partial \Sigma} = -c\, a w^\top \;(c = 2\gamma/\sigma), \qquad
    \frac{\partial L}{\partial c_i} = b_i, \qquad
    \frac{\partial L}{\partial C_i} = -(\lambda_i a + b_i w),

hence :math:`\partial L/\partial R = -c\,R(a w^\top + w a^\top)`,
:math:`\partial L/\partial F = -c\,(a\, w^\top F + w\, a^\top F)` and
:math:`\partial L/\partial d = -c\, a \odot w` (never an ``n x n`` product); for an asset
held at its floor, its cap or its previous weight, :math:`g_i - (H a)_i - (C^\top b)_i`;
rows that do not hold have zero gradients. Gradients to the given ``A`` and ``b`` are these
divided by each row's scale (:class:`~e2e_portfolio.models.qp_native.problem.LinearRows`).
With redundant rows the multipliers are not unique and ``b`` is the least-norm one; the
gradients to ``mu``, the risk model and the held values do not depend on that choice.

**Degenerate points.** The map is piecewise smooth; where an asset sits on a bound with a
zero multiplier (or on the edge of a kink), the derivative returned is the one of the piece
in which that asset stays held: a valid one-sided derivative. One case needs more: when
*every* asset is held, some at their previous weights (inside the no-trade region) and the
budget is the only row, perturbations of ``w_prev`` that change ``sum(w_prev)`` must be
absorbed by some asset. The piece returned is the one for perturbations that *raise*
``sum(w_prev)``: the asset that is cheapest to sell (largest smooth gradient among those
held at a positive previous weight) is freed, so ``w_j = 1 - sum_{i != j} w_prev_i``. For
perturbations that keep the sum, both pieces agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.kkt import active_rows, kkt_solve
from e2e_portfolio.models.qp_native.operators import FactorRisk, RiskOperator
from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem


def differentiable_piece(problem: Problem, active: ActiveSet, weights: torch.Tensor) -> ActiveSet:
    """The active set whose derivative the backward returns (see the module docstring)."""
    if not problem.has_turnover or problem.w_prev is None:
        return active
    on = active_rows(problem, active)[2]
    stuck = ~active.free.any(dim=1) & active.at_previous.any(dim=1) & (on.sum(dim=1) == 1)
    if not bool(stuck.any()):
        return active
    candidates = active.at_previous & (problem.w_prev > 0)
    score = torch.where(candidates, problem.gradient(weights), -torch.inf)
    chosen = torch.nn.functional.one_hot(score.argmax(dim=1), weights.shape[1]).bool()
    promote = chosen & candidates & stuck.unsqueeze(1)
    side = None if active.side is None else torch.where(promote, torch.sign(weights), active.side)
    return ActiveSet(
        active.free | promote,
        torch.where(promote, 0.0, active.fixed_value),
        active.at_upper,
        active.at_previous & ~promote,
        torch.where(promote, -1.0, active.sign),
        active.at_zero,
        side,
        active.rows,
        active.levered,
    )


@dataclass(frozen=True)
class Adjoint:
    """``a`` (batch, n, zero on held assets) and ``b`` (batch, m) of the bordered solve."""

    a: torch.Tensor
    b: torch.Tensor
    matrix: torch.Tensor
    """(batch, m) the rows of the active set (see :func:`~.kkt.active_rows`)"""
    on: torch.Tensor
    """(batch, m) bool, the rows that hold"""

    def through_held(self, problem: Problem, grad_w: torch.Tensor) -> torch.Tensor:
        """``g - H a - C' b``: the derivative with respect to the value of a held asset."""
        pulled = (self.b.unsqueeze(1) @ self.matrix).squeeze(1)
        return grad_w - problem.risk.matvec(self.a) - pulled


def adjoint(problem: Problem, active: ActiveSet, grad_w: torch.Tensor) -> Adjoint:
    """Solve the bordered KKT system with right-hand side ``(grad_w on the free assets, 0)``."""
    matrix, _, on = active_rows(problem, active)
    zero = torch.zeros_like(matrix[:, :, 0])
    a, b, _ = kkt_solve(problem, active.free, grad_w, matrix, zero, on)
    return Adjoint(a, b, matrix, on)


def mu_gradient(problem: Problem, adj: Adjoint) -> torch.Tensor:
    """dL/dmu (batch, n): the adjoint, rescaled from the unit scale."""
    return adj.a / problem.scale.unsqueeze(1)


def root_gradient(
    problem: Problem, raw: RiskOperator, adj: Adjoint, weights: torch.Tensor
) -> torch.Tensor:
    """dL/dR = -c R (a w' + w a'), (batch, m, n), by one product of (b, m, 2) and (b, 2, n)."""
    pair = torch.stack([adj.a, weights], dim=-1)  # (b, n, 2)
    scaled_pair = -problem.curvature.view(-1, 1, 1) * pair.flip(-1).transpose(-1, -2)
    return raw.root_matvec(pair) @ scaled_pair


def factor_gradients(
    problem: Problem, raw: FactorRisk, adj: Adjoint, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/dF (batch, n, k) and dL/dd (batch, n), in O(n k)."""
    c = -problem.curvature.view(-1, 1)
    pair = torch.stack([weights, adj.a], dim=1)  # (b, 2, n)
    exposures = pair @ raw.factor_rows.transpose(-1, -2)  # (b, 2, k): w'F, a'F
    grad_f = adj.a.unsqueeze(-1) * exposures[:, :1] + weights.unsqueeze(-1) * exposures[:, 1:]
    return c.unsqueeze(-1) * grad_f, c * adj.a * weights


def row_gradients(
    problem: Problem, adj: Adjoint, duals: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dL/dA (batch, m, n) and dL/db (batch, m) for the given rows (budget first, no leverage).

    ``-(lambda_i a + b_i w)`` and ``b_i`` on the rows that hold, divided by each row's scale.
    """
    constraints = problem.constraints
    count = constraints.count
    on = adj.on[:, :count].to(weights.dtype)
    lam, b = duals[:, :count] * on, adj.b[:, :count] * on
    matrix = -(lam.unsqueeze(2) * adj.a.unsqueeze(1) + b.unsqueeze(2) * weights.unsqueeze(1))
    scale = constraints.scale
    return matrix / scale.unsqueeze(2), b / scale
