r"""A batch of mean-variance problems in scale-free form, and active sets.

The layer's problem, for each member of a batch,

.. math::

    \min_w\; -\mu^\top w + \gamma\, w^\top \Sigma w + \kappa \lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = 1,\; 0 \le w \le u,

has the same minimiser after dividing the objective by any positive number. The solver
divides by the problem's own scale

.. math::

    \sigma = \max\bigl(\max_i |\mu_i|,\; 2\gamma \max_i \Sigma_{ii},\; \kappa\bigr)

(1 when all three vanish) and solves

.. math::

    \min_w\; -m^\top w + \tfrac12 w^\top H w + k \lVert w - w_{prev}\rVert_1,
    \qquad m = \mu / \sigma,\; H = 2\gamma\Sigma / \sigma,\; k = \kappa / \sigma,

whose data are all at most 1 in size. Every tolerance of the solver is then an absolute
number on this unit scale, so a problem and the same problem times ``1e-7`` get the same
answer (weights themselves are scale-free: they sum to 1).

Caps ``u`` are per asset (``inf`` for none); a cap of 0 *excludes* an asset (it is held at
0 and carries no sign condition on its multiplier).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from e2e_portfolio.models.qp_native.operators import RiskOperator

REGULARISATION = 1e-9
"""Proximal term added to every factorised system, on the unit scale (see operators)."""
EXCLUSION_PENALTY = 10.0
"""Return given to excluded assets inside the interior point: on the unit scale no gradient
or turnover term can outweigh it, so the interior point drives them to 0 (the polish then
holds them there exactly)."""


@dataclass(frozen=True)
class Problem:
    """A batch of scale-free problems; tensors are float64, (batch, n) unless stated."""

    mu: torch.Tensor
    """``m = mu / sigma``"""
    risk: RiskOperator
    """the operator of ``H = 2 gamma Sigma / sigma``"""
    kappa: torch.Tensor
    """(batch, 1) ``k = kappa / sigma``"""
    has_turnover: bool
    """whether the problem has the L1 term (``kappa > 0``)"""
    w_prev: torch.Tensor | None
    upper: torch.Tensor | None
    """per-asset caps, ``inf`` for none; None when no asset is capped below 1"""
    scale: torch.Tensor
    """(batch,) ``sigma``"""
    curvature: torch.Tensor
    """(batch,) ``2 gamma / sigma``: ``H = curvature * Sigma``"""

    @cached_property
    def excluded(self) -> torch.Tensor | None:
        """(batch, n) bool, assets with a cap of 0; None when there are none."""
        if self.upper is None:
            return None
        excluded = self.upper <= 0
        return excluded if bool(excluded.any()) else None

    @cached_property
    def kink_signs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, n) the most favourable L1 subgradients at 0 and at the cap.

        At 0: +1 where ``w_prev <= 0``, else -1; at the cap: +1 where ``w_prev`` is below
        the cap, else -1.
        """
        prev = self.w_prev
        assert prev is not None
        at_zero = 1.0 - 2.0 * (prev > 0).to(prev.dtype)
        if self.upper is None:
            return at_zero, torch.ones_like(prev)
        return at_zero, 2.0 * (prev < self.upper).to(prev.dtype) - 1.0

    @property
    def batch(self) -> int:
        """Number of problems."""
        return self.mu.shape[0]

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of the smooth part, ``-m + H w``."""
        return self.risk.matvec(w) - self.mu

    def take(self, index: torch.Tensor) -> Problem:
        """The problems at ``index`` (1-D), as a batch of their own."""
        return Problem(
            mu=self.mu[index],
            risk=self.risk.take(index),
            kappa=self.kappa[index],
            has_turnover=self.has_turnover,
            w_prev=None if self.w_prev is None else self.w_prev[index],
            upper=None if self.upper is None else self.upper[index],
            scale=self.scale[index],
            curvature=self.curvature[index],
        )

    def to(self, dtype: torch.dtype) -> Problem:
        """The same problems with every floating tensor in ``dtype``."""
        return Problem(
            mu=self.mu.to(dtype),
            risk=self.risk.to(dtype),
            kappa=self.kappa.to(dtype),
            has_turnover=self.has_turnover,
            w_prev=None if self.w_prev is None else self.w_prev.to(dtype),
            upper=None if self.upper is None else self.upper.to(dtype),
            scale=self.scale.to(dtype),
            curvature=self.curvature.to(dtype),
        )


def build_problem(
    mu: torch.Tensor,
    risk: RiskOperator,
    gamma: float,
    kappa: float,
    w_prev: torch.Tensor | None,
    upper: torch.Tensor | None,
) -> Problem:
    """Scale a batch of problems to unit size; see the module docstring.

    ``upper`` (batch, n) holds the caps (``inf`` for none) and must be feasible.
    """
    curvature_of_sigma = 2.0 * gamma * risk.diagonal().amax(dim=1)
    scale = torch.maximum(mu.abs().amax(dim=1), curvature_of_sigma).clamp(min=kappa)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    curvature = 2.0 * gamma / scale
    if upper is not None and bool((upper >= 1).all()):
        upper = None  # caps of 1 or more never bind: weights are non-negative and sum to 1
    return Problem(
        mu=mu / scale.unsqueeze(1),
        risk=risk.scaled(curvature),
        kappa=(kappa / scale).unsqueeze(1),
        has_turnover=kappa > 0,
        w_prev=w_prev if kappa > 0 else None,
        upper=upper,
        scale=scale,
        curvature=curvature,
    )


@dataclass(frozen=True)
class ActiveSet:
    """Which assets are free and where the others are held, per problem (batch, n)."""

    free: torch.Tensor
    """bool: strictly between its bounds and away from its previous weight."""
    fixed_value: torch.Tensor
    """value of the held assets (0, the cap or ``w_prev``); 0 where free."""
    at_upper: torch.Tensor
    """bool: held at its cap."""
    at_previous: torch.Tensor
    """bool: held at its previous weight (the only held assets that move with ``w_prev``)."""
    sign: torch.Tensor
    """sign of ``w - w_prev`` for free assets (0 without the turnover term)."""

    def fields(self) -> tuple[torch.Tensor, ...]:
        """The masks and values, in constructor order."""
        return self.free, self.fixed_value, self.at_upper, self.at_previous, self.sign

    def take(self, index: torch.Tensor) -> ActiveSet:
        """The active sets of the problems at ``index`` (1-D)."""
        return ActiveSet(*(field[index] for field in self.fields()))

    @property
    def at_lower(self) -> torch.Tensor:
        """bool: held at 0 (including excluded assets)."""
        return ~(self.free | self.at_upper | self.at_previous)


def make_active_set(
    problem: Problem,
    w: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    at_previous: torch.Tensor,
    sign: torch.Tensor | None = None,
) -> ActiveSet:
    """An active set from masks of held assets (excluded assets are always at 0).

    ``sign`` of free assets defaults to ``sign(w - w_prev)``.
    """
    if problem.excluded is not None:
        lower = lower | problem.excluded
        upper, at_previous = upper & ~lower, at_previous & ~lower
    free = ~(lower | upper | at_previous)
    fixed = torch.zeros_like(w)
    if problem.upper is not None:
        fixed = torch.where(upper, problem.upper, fixed)
    if problem.w_prev is not None:
        fixed = torch.where(at_previous, problem.w_prev, fixed)
    if not problem.has_turnover:
        return ActiveSet(free, fixed, upper, at_previous, torch.zeros_like(w))
    if sign is None:
        assert problem.w_prev is not None
        sign = torch.sign(w - problem.w_prev)
    return ActiveSet(free, fixed, upper, at_previous, sign.masked_fill(~free, 0.0))


def merge(take: torch.Tensor, new: ActiveSet, old: ActiveSet) -> ActiveSet:
    """``new`` for the problems in ``take`` (batch,), ``old`` for the others."""
    rows = take.unsqueeze(1)
    return ActiveSet(
        *(torch.where(rows, a, b) for a, b in zip(new.fields(), old.fields(), strict=True))
    )
