r"""Implicit differentiation of the KKT conditions at the certified active set.

On the free assets F the solution satisfies (unit scale, see
:mod:`~e2e_portfolio.models.qp_native.problem`)

.. math::

    H_{FF} w_F + \nu \mathbf 1 = m_F - k\,\mathrm{sign}_F - H_{FH} w_H,
    \qquad \mathbf 1^\top w_F = 1 - \mathbf 1^\top w_H .

For an upstream gradient :math:`g = \partial L / \partial w`, one solve of the same bordered
system, :math:`[H_{FF}\ \mathbf 1; \mathbf 1^\top\ 0]\,[a; b] = [g_F; 0]`, gives

.. math::

    \frac{\partial L}{\partial \mu} = \frac{a}{\sigma}, \qquad
    \frac{\partial L}{\partial \Sigma} = -c\, a w^\top \;(c = 2\gamma/\sigma),

hence :math:`\partial L/\partial R = -c\,R(a w^\top + w a^\top)`,
:math:`\partial L/\partial F = -c\,(a\, w^\top F + w\, a^\top F)` and
:math:`\partial L/\partial d = -c\, a \odot w` (never an ``n x n`` product), and for an asset
held at its previous weight or at its cap, :math:`g_i - (H a)_i - b`.

**Degenerate points.** The map is piecewise smooth; where an asset sits on a bound with a
zero multiplier (or on the edge of the L1 kink), the derivative returned is the one of the
piece in which that asset stays held: a valid one-sided derivative. One case needs more:
when *every* asset is held and some at their previous weights (inside the no-trade region),
perturbations of ``w_prev`` that change ``sum(w_prev)`` must be absorbed by some asset. The
piece returned is the one for perturbations that *raise* ``sum(w_prev)``: the asset that is
cheapest to sell (largest smooth gradient among those held at a positive previous weight)
is freed, so ``w_j = 1 - sum_{i != j} w_prev_i``. For perturbations that keep the sum, both
pieces agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.operators import FactorRisk, RiskOperator
from e2e_portfolio.models.qp_native.polish import kkt_solve
from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem


def differentiable_piece(problem: Problem, active: ActiveSet, weights: torch.Tensor) -> ActiveSet:
    """The active set whose derivative the backward returns (see the module docstring)."""
    if not problem.has_turnover or problem.w_prev is None:
        return active
    stuck = ~active.free.any(dim=1) & active.at_previous.any(dim=1)
    if not bool(stuck.any()):
        return active
    candidates = active.at_previous & (problem.w_prev > 0)
    score = torch.where(candidates, problem.gradient(weights), -torch.inf)
    chosen = torch.nn.functional.one_hot(score.argmax(dim=1), weights.shape[1]).bool()
    promote = chosen & candidates & stuck.unsqueeze(1)
    return ActiveSet(
        active.free | promote,
        torch.where(promote, 0.0, active.fixed_value),
        active.at_upper,
        active.at_previous & ~promote,
        torch.where(promote, -1.0, active.sign),
    )


@dataclass(frozen=True)
class Adjoint:
    """``a`` (batch, n, zero on held assets) and ``b`` (batch,) of the bordered solve."""

    a: torch.Tensor
    b: torch.Tensor

    def through_held(self, problem: Problem, grad_w: torch.Tensor) -> torch.Tensor:
        """``g - H a - b``: the derivative with respect to the value of a held asset."""
        return grad_w - problem.risk.matvec(self.a) - self.b.unsqueeze(1)


def adjoint(problem: Problem, active: ActiveSet, grad_w: torch.Tensor) -> Adjoint:
    """Solve the bordered KKT system with right-hand side ``(grad_w on the free assets, 0)``."""
    a, b, _, _ = kkt_solve(problem, active.free, grad_w, torch.zeros_like(grad_w[:, 0]))
    return Adjoint(a, b)


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
