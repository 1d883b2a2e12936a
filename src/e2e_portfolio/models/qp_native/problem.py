r"""A batch of mean-variance problems in scale-free form, and active sets.

The layer's problem, for each member of a batch,

.. math::

    \min_w\; -\mu^\top w + \gamma\, w^\top \Sigma w + \kappa \lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = b,\; l \le w \le u,\; \lVert w\rVert_1 \le L,\;
    A_{eq} w = b_{eq},\; A_{ub} w \le b_{ub},

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
answer. The general rows are divided by their largest entry (:class:`LinearRows`), which
leaves their solution alone and keeps their multipliers on the same scale.

Bounds ``l <= w <= u`` are per asset (``-inf``/``inf`` for none); an asset with
``l = u = 0`` is *excluded* (held at 0, no sign condition on its multiplier). Weights are
bounded by :attr:`Problem.reach` (the leverage, or the budget plus every allowed short),
so bounds beyond it never bind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from e2e_portfolio.models.qp_native.operators import RiskOperator
from e2e_portfolio.models.qp_native.options import DEFAULT_OPTIONS, SolverOptions

EXCLUSION_PENALTY = 10.0
"""Return given to excluded assets inside the interior point: on the unit scale no gradient
or turnover term can outweigh it, so the interior point drives them to 0 (the polish then
holds them there exactly)."""


def rows_times(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``matrix @ vector`` for (batch, m, n) and (batch, n): (batch, m).

    As ``v' A'``: the batched product then reads ``matrix`` as a transposed operand, measured
    4.6x faster here than ``A v`` (batch 96, m = 10, n = 200: 29 against 132 us).
    """
    return (vector.unsqueeze(-2) @ matrix.mT).squeeze(-2)


@dataclass(frozen=True)
class LinearRows:
    """The budget row, ``A_eq`` and ``A_ub`` of a batch, each row divided by its largest entry.

    Rows ``0 .. n_eq - 1`` are equalities (row 0 is the budget, ``1' w = b``), the rest
    inequalities ``<=``. ``scale`` holds each row's divisor (1 for the budget), so that a
    gradient with respect to the given rows is the one to these divided by ``scale``.
    """

    matrix: torch.Tensor
    """(batch, m, n)"""
    rhs: torch.Tensor
    """(batch, m)"""
    n_eq: int
    scale: torch.Tensor
    """(batch, m)"""

    @property
    def count(self) -> int:
        """Number of rows, budget included."""
        return self.matrix.shape[1]

    @property
    def n_ub(self) -> int:
        """Number of inequality rows."""
        return self.count - self.n_eq

    def take(self, index: torch.Tensor) -> LinearRows:
        """The rows of the problems at ``index`` (1-D)."""
        return LinearRows(self.matrix[index], self.rhs[index], self.n_eq, self.scale[index])

    def to(self, dtype: torch.dtype) -> LinearRows:
        """The same rows in ``dtype``."""
        return LinearRows(self.matrix.to(dtype), self.rhs.to(dtype), self.n_eq,
                          self.scale.to(dtype))  # fmt: skip


def linear_rows(
    budget: torch.Tensor,
    n: int,
    equalities: tuple[torch.Tensor, torch.Tensor] | None,
    inequalities: tuple[torch.Tensor, torch.Tensor] | None,
) -> LinearRows:
    """Stack the budget row, ``(A_eq, b_eq)`` and ``(A_ub, b_ub)`` (batched), rows scaled."""
    batch = budget.shape[0]
    ones = torch.ones(batch, 1, n, dtype=budget.dtype, device=budget.device)
    matrices, rhs, n_eq = [ones], [budget.unsqueeze(1)], 1
    for given, is_eq in ((equalities, True), (inequalities, False)):
        if given is None:
            continue
        matrix, target = given
        matrices.append(matrix)
        rhs.append(target)
        n_eq += matrix.shape[1] if is_eq else 0
    matrix, target = torch.cat(matrices, dim=1), torch.cat(rhs, dim=1)
    size = matrix.abs().amax(dim=2)
    scale = torch.where(size > 0, size, torch.ones_like(size))
    scale[:, 0] = 1.0
    return LinearRows(matrix / scale.unsqueeze(2), target / scale, n_eq, scale)


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
    """per-asset caps, ``inf`` for none; None when no cap can bind"""
    scale: torch.Tensor
    """(batch,) ``sigma``"""
    curvature: torch.Tensor
    """(batch,) ``2 gamma / sigma``: ``H = curvature * Sigma``"""
    lower: torch.Tensor | None = None
    """per-asset floors, ``-inf`` for none; None for the long-only floor 0"""
    rows: LinearRows | None = None
    """the budget and general rows; None is ``1' w = 1`` alone (built on demand)"""
    leverage: torch.Tensor | None = None
    """(batch,) bound on ``||w||_1``; None without one"""
    reach: torch.Tensor | None = None
    """(batch,) a bound on every ``|w_i|`` of a feasible point (1 long-only)"""
    options: SolverOptions = DEFAULT_OPTIONS

    @cached_property
    def constraints(self) -> LinearRows:
        """The budget and general rows (the budget row alone when none were given)."""
        if self.rows is not None:
            return self.rows
        one = torch.ones_like(self.mu[:, 0])
        return linear_rows(one, self.mu.shape[1], None, None)

    @cached_property
    def bound(self) -> torch.Tensor:
        """(batch, 1) the bound on ``|w_i|``: :attr:`reach`, 1 when not given."""
        if self.reach is None:
            return torch.ones_like(self.mu[:, :1])
        return self.reach.unsqueeze(1)

    @cached_property
    def floor(self) -> torch.Tensor:
        """(batch, n) the floors, 0 long-only."""
        return torch.zeros_like(self.mu) if self.lower is None else self.lower

    @cached_property
    def excluded(self) -> torch.Tensor | None:
        """(batch, n) bool, assets with a cap of 0 and a floor of 0; None when there are none."""
        if self.upper is None:
            return None
        excluded = (self.upper <= 0) & (self.floor >= 0)
        return excluded if bool(excluded.any()) else None

    @property
    def batch(self) -> int:
        """Number of problems."""
        return self.mu.shape[0]

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of the smooth part, ``-m + H w``."""
        return self.risk.matvec(w) - self.mu

    def _map(self, tensor_map, risk, rows) -> Problem:
        opt = lambda t: None if t is None else tensor_map(t)  # noqa: E731
        return Problem(
            mu=tensor_map(self.mu),
            risk=risk,
            kappa=tensor_map(self.kappa),
            has_turnover=self.has_turnover,
            w_prev=opt(self.w_prev),
            upper=opt(self.upper),
            scale=tensor_map(self.scale),
            curvature=tensor_map(self.curvature),
            lower=opt(self.lower),
            rows=rows,
            leverage=opt(self.leverage),
            reach=opt(self.reach),
            options=self.options,
        )

    def take(self, index: torch.Tensor) -> Problem:
        """The problems at ``index`` (1-D), as a batch of their own."""
        rows = None if self.rows is None else self.rows.take(index)
        return self._map(lambda t: t[index], self.risk.take(index), rows)

    def to(self, dtype: torch.dtype) -> Problem:
        """The same problems with every floating tensor in ``dtype``."""
        rows = None if self.rows is None else self.rows.to(dtype)
        return self._map(lambda t: t.to(dtype), self.risk.to(dtype), rows)


def build_problem(
    mu: torch.Tensor,
    risk: RiskOperator,
    gamma: float,
    kappa: float,
    w_prev: torch.Tensor | None,
    upper: torch.Tensor | None,
    *,
    lower: torch.Tensor | None = None,
    budget: torch.Tensor | float = 1.0,
    leverage: float | None = None,
    equalities: tuple[torch.Tensor, torch.Tensor] | None = None,
    inequalities: tuple[torch.Tensor, torch.Tensor] | None = None,
    options: SolverOptions | None = None,
) -> Problem:
    """Scale a batch of problems to unit size; see the module docstring.

    ``upper`` and ``lower`` (batch, n) hold the bounds (``inf``/``-inf`` for none; ``lower``
    None is 0 everywhere); ``equalities`` and ``inequalities`` are ``(A (batch, m, n), b
    (batch, m))``. A leverage bound is kept only where some floor is below 0 (long-only,
    ``||w||_1`` is the budget). The caller checks that the bounds can hold the budget.
    """
    batch, n = mu.shape
    curvature_of_sigma = 2.0 * gamma * risk.diagonal().amax(dim=1)
    scale = torch.maximum(mu.abs().amax(dim=1), curvature_of_sigma).clamp(min=kappa)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    curvature = 2.0 * gamma / scale
    if not isinstance(budget, torch.Tensor):
        budget = torch.full((batch,), float(budget), dtype=mu.dtype, device=mu.device)
    if lower is not None and bool((lower >= 0).all()) and bool((lower == 0).all()):
        lower = None  # the long-only floor
    short = lower is not None
    reach_of: torch.Tensor | None = None
    lev: torch.Tensor | None = None
    if short:
        assert lower is not None
        if leverage is not None and bool((lower < 0).any()):
            lev = torch.full_like(budget, float(leverage))
            reach_of = lev
        else:
            reach_of = budget.abs() + (-lower).clamp(min=0).sum(dim=1)
    elif not bool((budget == 1).all()):
        reach_of = budget.abs()
    reach = torch.ones_like(budget) if reach_of is None else reach_of
    if upper is not None and bool((upper >= reach.unsqueeze(1)).all()):
        upper = None  # caps at or above the reach of any feasible point never bind
    rows = None
    if equalities is not None or inequalities is not None or not bool((budget == 1).all()):
        rows = linear_rows(budget, n, equalities, inequalities)
    return Problem(
        mu=mu / scale.unsqueeze(1),
        risk=risk.scaled(curvature),
        kappa=(kappa / scale).unsqueeze(1),
        has_turnover=kappa > 0,
        w_prev=w_prev if kappa > 0 else None,
        upper=upper,
        scale=scale,
        curvature=curvature,
        lower=lower,
        rows=rows,
        leverage=lev,
        reach=reach_of,
        options=DEFAULT_OPTIONS if options is None else options,
    )


@dataclass(frozen=True)
class ActiveSet:
    """Which assets are free and where the others are held, and which rows hold, per problem.

    Per asset (batch, n); per inequality row (batch, m_ub); per problem (batch,).
    """

    free: torch.Tensor
    """bool: strictly between its bounds and away from its kinks (``w_prev``, and 0 under a
    leverage bound)."""
    fixed_value: torch.Tensor
    """value of the held assets (floor, cap, ``w_prev`` or 0); 0 where free."""
    at_upper: torch.Tensor
    """bool: held at its cap."""
    at_previous: torch.Tensor
    """bool: held at its previous weight (the only held assets that move with ``w_prev``)."""
    sign: torch.Tensor
    """sign of ``w - w_prev`` for free assets (0 without the turnover term)."""
    at_zero: torch.Tensor | None = None
    """bool: held at 0 by the kink of the leverage term (floor below 0); None: none."""
    side: torch.Tensor | None = None
    """sign of ``w`` for free assets under a leverage bound; None without one."""
    rows: torch.Tensor | None = None
    """(batch, m_ub) bool: inequality rows held as equalities; None without such rows."""
    levered: torch.Tensor | None = None
    """(batch,) bool: the leverage bound holds as an equality; None without one."""

    def fields(self) -> tuple[torch.Tensor | None, ...]:
        """The masks and values, in constructor order."""
        return (self.free, self.fixed_value, self.at_upper, self.at_previous, self.sign,
                self.at_zero, self.side, self.rows, self.levered)  # fmt: skip

    def take(self, index: torch.Tensor) -> ActiveSet:
        """The active sets of the problems at ``index`` (1-D)."""
        return ActiveSet(*(None if field is None else field[index] for field in self.fields()))  # type: ignore[arg-type]

    def clone(self) -> ActiveSet:
        """A copy (out of inference mode)."""
        return ActiveSet(*(None if field is None else field.clone() for field in self.fields()))  # type: ignore[arg-type]

    @property
    def at_lower(self) -> torch.Tensor:
        """bool: held at the floor (including excluded assets)."""
        held = self.free | self.at_upper | self.at_previous
        if self.at_zero is not None:
            held = held | self.at_zero
        return ~held


def make_active_set(
    problem: Problem,
    w: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    at_previous: torch.Tensor,
    sign: torch.Tensor | None = None,
    *,
    at_zero: torch.Tensor | None = None,
    side: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
    levered: torch.Tensor | None = None,
) -> ActiveSet:
    """An active set from masks of held assets (excluded assets are always at 0).

    ``sign`` of free assets defaults to ``sign(w - w_prev)``, ``side`` to ``sign(w)``;
    ``rows`` and ``levered`` default to none held.
    """
    if problem.excluded is not None:
        lower = lower | problem.excluded
    upper = upper & ~lower
    at_previous = at_previous & ~lower & ~upper
    held = lower | upper | at_previous
    if problem.leverage is not None:
        at_zero = (torch.zeros_like(lower) if at_zero is None else at_zero) & ~held
        held = held | at_zero
    else:
        at_zero = None
    free = ~held
    fixed = torch.zeros_like(w)
    if problem.lower is not None:
        fixed = torch.where(lower, problem.lower, fixed)
    if problem.upper is not None:
        fixed = torch.where(upper, problem.upper, fixed)
    if problem.w_prev is not None:
        fixed = torch.where(at_previous, problem.w_prev, fixed)
    if problem.leverage is None:
        side, levered = None, None
    else:
        side = (torch.sign(w) if side is None else side).masked_fill(~free, 0.0)
        levered = torch.zeros_like(w[:, 0], dtype=torch.bool) if levered is None else levered
    n_ub = problem.constraints.n_ub
    if n_ub == 0:
        rows = None
    elif rows is None:
        rows = torch.zeros(w.shape[0], n_ub, dtype=torch.bool, device=w.device)
    if not problem.has_turnover:
        sign = torch.zeros_like(w)
    else:
        if sign is None:
            assert problem.w_prev is not None
            sign = torch.sign(w - problem.w_prev)
        sign = sign.masked_fill(~free, 0.0)
    return ActiveSet(free, fixed, upper, at_previous, sign, at_zero, side, rows, levered)


def merge(take: torch.Tensor, new: ActiveSet, old: ActiveSet) -> ActiveSet:
    """``new`` for the problems in ``take`` (batch,), ``old`` for the others."""

    def pick(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None or b is None:
            return None
        return torch.where(take.view(-1, *([1] * (a.ndim - 1))), a, b)

    return ActiveSet(*(pick(a, b) for a, b in zip(new.fields(), old.fields(), strict=True)))  # type: ignore[arg-type]
