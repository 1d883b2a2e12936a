r"""Mehrotra predictor-corrector interior point on the epigraph form of the scale-free problem.

With :math:`t_i \ge |w_i - w_{prev,i}|` the problem becomes a smooth QP in ``(w, t)``:

.. math::

    \min\; -m^\top w + \tfrac12 w^\top H w + k\,\mathbf 1^\top t \quad\text{s.t.}\quad
    \mathbf 1^\top w = 1,\; G_w w + G_t t + s = h,\; s \ge 0,

with rows ``-w <= 0``, ``w <= u`` (if capped) and ``w - t <= w_prev``,
``-w - t <= -w_prev`` (if ``k > 0``). Every Newton system reduces, after eliminating the
slacks ``s``, the duals ``z`` and the per-asset ``t``, to

.. math::

    (\mathrm{diag}(D) + \rho I + H)\,\Delta w + \mathbf 1\,\Delta\nu = r,

solved by the risk operator (Woodbury for factor models) plus one more solve for
:math:`M^{-1}\mathbf 1`. The proximal term :math:`\rho` (``REGULARISATION``) keeps the
system definite when ``H`` is singular; the interior point only has to get close enough for
the active set to be read off (see :mod:`~e2e_portfolio.models.qp_native.polish`), so the
slightly inexact direction costs nothing in accuracy. Excluded assets carry
``EXCLUSION_PENALTY`` as their return here and no cap row, so they go to 0.

All problems iterate in lockstep, but every quantity (step length, centring, gaps) is per
problem: a problem's iterates do not depend on its batch mates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.problem import (
    EXCLUSION_PENALTY,
    REGULARISATION,
    Problem,
)

STEP_FRACTION = 0.99
TURNOVER_MARGIN_CAP = 1.0
"""Largest starting ``t - |w - w_prev|`` (weights live in [0, 1]): keeps ``t`` on the
problem's scale when ``k`` is tiny."""
IPM_CAP_OFF = 2.0
"""Cap used inside the interior point for uncapped and excluded assets: never binding."""


@dataclass(frozen=True)
class Rows:
    """Inequalities ``gw * w_i + gt * t_i <= h_i``, stacked on dim 1.

    ``gw``, ``gt``: (m, 1), ``gt`` None without the turnover term (then there is no ``t``);
    ``h``: (batch, m, n); ``mu``: the returns the interior point uses (excluded assets
    penalised).
    """

    gw: torch.Tensor
    gt: torch.Tensor | None
    h: torch.Tensor
    n_bounds: int
    mu: torch.Tensor

    def gradient(self, problem: Problem, w: torch.Tensor) -> torch.Tensor:
        """Gradient of the smooth part with the interior point's returns, ``H w - mu``."""
        return problem.risk.matvec(w) - self.mu

    def take(self, index: torch.Tensor) -> Rows:
        """The rows of the problems at ``index`` (1-D)."""
        return Rows(self.gw, self.gt, self.h[index], self.n_bounds, self.mu[index])

    def to(self, dtype: torch.dtype) -> Rows:
        """The same rows in ``dtype``."""
        gt = None if self.gt is None else self.gt.to(dtype)
        return Rows(self.gw.to(dtype), gt, self.h.to(dtype), self.n_bounds, self.mu.to(dtype))

    def weighted_w(self, rows: torch.Tensor) -> torch.Tensor:
        """``sum_j gw_j rows_j``, (batch, n), one pass (a matmul beats multiply-and-sum)."""
        return torch.matmul(self.gw.view(1, -1), rows).squeeze(-2)

    def weighted_t(self, rows: torch.Tensor) -> torch.Tensor:
        """``sum_j gt_j rows_j``, (batch, n)."""
        assert self.gt is not None
        return torch.matmul(self.gt.view(1, -1), rows).squeeze(-2)


def constraint_rows(problem: Problem) -> Rows:
    """The inequality rows of ``problem``'s epigraph form (see :class:`Rows`)."""
    mu = problem.mu
    gw, gt, h = [-1.0], [0.0], [torch.zeros_like(mu)]
    if problem.upper is not None:
        upper = problem.upper
        inside = (upper > 0) & (upper < 1)
        gw, gt, h = [*gw, 1.0], [*gt, 0.0], [*h, torch.where(inside, upper, IPM_CAP_OFF)]
    n_bounds = len(gw)
    if problem.has_turnover:
        assert problem.w_prev is not None
        gw, gt, h = [*gw, 1.0, -1.0], [*gt, -1.0, -1.0], [*h, problem.w_prev, -problem.w_prev]
    if problem.excluded is not None:
        mu = torch.where(problem.excluded, -EXCLUSION_PENALTY, mu)
    dtype, device = mu.dtype, mu.device
    return Rows(
        torch.tensor(gw, dtype=dtype, device=device).unsqueeze(1),
        torch.tensor(gt, dtype=dtype, device=device).unsqueeze(1) if problem.has_turnover else None,
        torch.stack(h, dim=1),
        n_bounds,
        mu,
    )


@dataclass
class Iterate:
    """Primal-dual point of the interior point.

    Weights w (batch, n), epigraph t (batch, n) or None without the turnover term, budget
    dual y (batch,), and slacks s and duals z (batch, m, n) stacked as ``sz``
    (batch, 2m, n), so that a step and its length take one operation each.
    """

    w: torch.Tensor
    t: torch.Tensor | None
    y: torch.Tensor
    sz: torch.Tensor

    @property
    def s(self) -> torch.Tensor:
        """Slacks, (batch, m, n)."""
        return self.sz[:, : self.sz.shape[1] // 2]

    @property
    def z(self) -> torch.Tensor:
        """Duals, (batch, m, n)."""
        return self.sz[:, self.sz.shape[1] // 2 :]

    def moved(self, alpha: torch.Tensor, step: Iterate) -> Iterate:
        """The point ``alpha`` (batch,) along ``step``."""
        a = alpha.unsqueeze(1)
        return Iterate(
            torch.addcmul(self.w, a, step.w),
            None if self.t is None or step.t is None else torch.addcmul(self.t, a, step.t),
            torch.addcmul(self.y, alpha, step.y),
            torch.addcmul(self.sz, alpha.view(-1, 1, 1), step.sz),
        )

    def to(self, dtype: torch.dtype) -> Iterate:
        """The same point in ``dtype``."""
        t = None if self.t is None else self.t.to(dtype)
        return Iterate(self.w.to(dtype), t, self.y.to(dtype), self.sz.to(dtype))

    def take(self, index: torch.Tensor) -> Iterate:
        """The iterates of the problems at ``index`` (1-D)."""
        t = None if self.t is None else self.t[index]
        return Iterate(self.w[index], t, self.y[index], self.sz[index])

    def scattered(self, index: torch.Tensor, part: Iterate) -> Iterate:
        """These points with the problems at ``index`` replaced by ``part``'s."""
        t = None if self.t is None or part.t is None else self.t.index_copy(0, index, part.t)
        return Iterate(
            self.w.index_copy(0, index, part.w),
            t,
            self.y.index_copy(0, index, part.y),
            self.sz.index_copy(0, index, part.sz),
        )

    def where(self, keep: torch.Tensor, other: Iterate) -> Iterate:
        """The point of ``self`` for the problems in ``keep`` (batch,), ``other`` elsewhere."""
        rows = keep.unsqueeze(1)
        t = None if self.t is None or other.t is None else torch.where(rows, self.t, other.t)
        return Iterate(
            torch.where(rows, self.w, other.w),
            t,
            torch.where(keep, self.y, other.y),
            torch.where(keep.view(-1, 1, 1), self.sz, other.sz),
        )


def start(problem: Problem, rows: Rows) -> Iterate:
    """A dual-feasible start at equal weights.

    With ``g`` the gradient at equal weights and the budget dual ``y = -mean(g)``, every
    asset's bound duals are set so that the stationarity residual is exactly zero:
    ``z_lower = max(g + y, 0) + delta`` and, where capped, ``z_upper = max(-(g + y), 0) +
    delta`` (without caps, ``y`` is raised until every ``z_lower >= delta``); the two turnover
    rows of an asset share ``k`` equally (``z3 = z4 = k / 2``), which zeroes the residual of
    ``t``. Equal weights (and ``t = |w - w_prev| + margin``) are primal feasible whenever no
    cap is below ``1/n``. From a feasible start the Newton steps keep every residual at zero,
    so only the complementarity gap has to close (measured: 9 -> 6 iterations at n = 200
    without turnover, 20 -> 17 at n = 1000 with it). ``delta``, the mean size of the
    gradient, sets the starting gap on the problem's own scale.

    The ``margin`` centres the turnover rows: their duals are pinned at ``k / 2``, so their
    slacks (at least ``margin``) are chosen to give them the bound rows' mean product,
    ``margin = 2 mu_bounds / k`` within ``[1/n, TURNOVER_MARGIN_CAP]``. With ``1/n`` instead,
    their products were far below the bound rows' and the first steps short (median step
    0.09 at n = 1000); centred, the interior point does about 10% fewer problem-iterations
    (measured on the benchmark's problems: 718 -> 601 at n = 40, 1101 -> 972 at n = 200,
    1386 -> 1270 at n = 1000, 289 -> 257 at n = 3000).
    """
    n = problem.mu.shape[1]
    w = torch.full_like(problem.mu, 1.0 / n)
    gradient = rows.gradient(problem, w)
    delta = gradient.abs().mean(dim=1, keepdim=True).clamp(min=1e-3)
    y = -gradient.mean(dim=1, keepdim=True)
    if problem.upper is None:
        y = torch.maximum(y, (-gradient).amax(dim=1, keepdim=True))
    reduced = gradient + y
    duals = [reduced.clamp(min=0) + delta]
    if problem.upper is not None:
        duals.append((-reduced).clamp(min=0) + delta)
    z = torch.stack(duals, dim=1)  # the bound rows' duals
    s = rows.h - rows.gw * w.unsqueeze(1)
    t = None
    if rows.gt is not None:
        assert problem.w_prev is not None
        # epigraph slack that centres the turnover rows: with their duals fixed at k / 2,
        # slacks of 2 mu / k give them the bound rows' mean product mu
        bounds = z * s[:, : z.shape[1]].clamp(min=1.0 / n)
        margin = 2.0 * bounds.mean(dim=(1, 2)).unsqueeze(1) / problem.kappa
        margin = margin.clamp(min=1.0 / n, max=TURNOVER_MARGIN_CAP)
        t = (w - problem.w_prev).abs() + margin
        s = s - rows.gt * t.unsqueeze(1)
    s = s.clamp(min=1.0 / n)
    if rows.gt is not None:
        half = (problem.kappa / 2).expand_as(w).unsqueeze(1)
        z = torch.cat([z, half, half], dim=1)
    return Iterate(w, t, y.squeeze(1), torch.cat([s, z], dim=1))


def mean_gap(point: Iterate) -> torch.Tensor:
    """(batch,) mean complementarity ``s * z``."""
    return (point.s * point.z).mean(dim=(1, 2))


Directions = Callable[[torch.Tensor], Iterate]


@dataclass(frozen=True)
class NewtonSystem:
    """One factorised Newton system: its predictor step and corrected directions."""

    affine: Iterate
    """the predictor direction"""
    directions: Directions
    """from a centring target to the corrected direction"""
    failed: torch.Tensor
    """(batch,) problems whose factorisation failed"""
    products: torch.Tensor
    """(batch, m, n) ``s * z`` at the current point"""


def newton_system(problem: Problem, rows: Rows, point: Iterate) -> NewtonSystem:
    """Factorise the reduced Newton system once; ``M^-1 1`` is solved with the affine step.

    Written for few passes over the (batch, m, n) row tensors, which dominate the cost at
    large ``n``: row sums with the coefficients ``gw``, ``gt`` are matrix products, and the
    slack and dual steps are written into one preallocated tensor.
    """
    s, z, gw, gt = point.s, point.z, rows.gw, rows.gt
    m = s.shape[1]
    r_w = rows.gradient(problem, point.w) + point.y.unsqueeze(1) + rows.weighted_w(z)
    r_p = torch.addcmul(s - rows.h, gw, point.w.unsqueeze(1))
    r_e = point.w.sum(dim=1) - 1.0
    weight = z / s
    diagonal = weight[:, : rows.n_bounds].sum(dim=1) + REGULARISATION
    b = c = r_t = None
    if gt is not None:
        assert point.t is not None
        r_t = problem.kappa + rows.weighted_t(z)
        r_p = torch.addcmul(r_p, gt, point.t.unsqueeze(1))
        above, below = weight[:, -2], weight[:, -1]
        b, c = below - above, above + below
        # a - b^2 / c without cancellation: the kink contributes 4 W3 W4 / (W3 + W4)
        diagonal = diagonal + 4.0 * above * below / c
    factorisation = problem.risk.factorise(diagonal)
    solve_system = factorisation.solve
    neg_r_p = r_p.neg_()
    products = s * z

    def reduced(r_c: torch.Tensor):
        """Eliminate s, z and t: the right-hand side of the system in w."""
        e = torch.addcmul(r_c, z, neg_r_p, value=-1.0).div_(s)
        rho_w = -r_w - rows.weighted_w(e)
        rho_t = None
        if gt is not None:
            assert r_t is not None and b is not None and c is not None
            rho_t = -r_t - rows.weighted_t(e)
            rho_w = rho_w - b * rho_t / c
        return e, rho_w, rho_t

    def recovered(e, rho_t, u, ones_solution, ones_total) -> Iterate:
        """The full direction from ``u = M^-1 rho_w`` and the budget row."""
        dy = (u.sum(dim=1) + r_e) / ones_total
        dw = torch.addcmul(u, dy.unsqueeze(1), ones_solution, value=-1.0)
        moves = gw * dw.unsqueeze(1)
        dt = None
        if gt is not None:
            assert b is not None and c is not None
            dt = (rho_t - b * dw) / c
            moves = torch.addcmul(moves, gt, dt.unsqueeze(1))
        step = torch.empty_like(point.sz)
        torch.sub(neg_r_p, moves, out=step[:, :m])
        torch.addcmul(e, weight, moves, out=step[:, m:])
        return Iterate(dw, dt, dy, step)

    e, rho_w, rho_t = reduced(-products)
    both = solve_system(torch.stack([rho_w, torch.ones_like(rho_w)], dim=1))
    u, ones_solution = both.unbind(1)
    ones_total = ones_solution.sum(dim=1)
    affine = recovered(e, rho_t, u, ones_solution, ones_total)

    def directions(r_c: torch.Tensor) -> Iterate:
        e, rho_w, rho_t = reduced(r_c)
        u = solve_system(rho_w.unsqueeze(1)).squeeze(1)
        return recovered(e, rho_t, u, ones_solution, ones_total)

    return NewtonSystem(affine, directions, factorisation.failed, products)


def step_length(point: Iterate, step: Iterate) -> torch.Tensor:
    """Largest step in [0, 1] keeping slacks and duals non-negative, per problem.

    ``1 / max(-step / x)`` over the entries: one division and one reduction.
    """
    fastest_fall = (step.sz / point.sz).amin(dim=(1, 2))
    return fastest_fall.clamp_(max=-1.0).reciprocal_().neg_()


def corrected_step(
    point: Iterate, system: NewtonSystem, gap: torch.Tensor
) -> tuple[Iterate, torch.Tensor]:
    """Mehrotra's centred and corrected direction from the affine one, and its step length."""
    affine = system.affine
    alpha = step_length(point, affine).view(-1, 1, 1)
    reached = torch.addcmul(point.sz, alpha, affine.sz)
    m = reached.shape[1] // 2
    gap_affine = (reached[:, :m] * reached[:, m:]).mean(dim=(1, 2))
    sigma = (gap_affine / gap.clamp(min=1e-300)).clamp(0.0, 1.0) ** 3
    target = torch.addcmul(system.products, affine.s, affine.z)
    target = torch.sub((sigma * gap).view(-1, 1, 1), target)
    step = system.directions(target)
    return step, STEP_FRACTION * step_length(point, step)


@dataclass(frozen=True)
class Guess:
    """Held-asset masks read off an iterate, (batch, n) bool, and the weights they came from."""

    lower: torch.Tensor
    upper: torch.Tensor
    at_previous: torch.Tensor
    w: torch.Tensor


def guess_active(
    problem: Problem, rows: Rows, point: Iterate, predicted: Iterate | None = None
) -> Guess:
    """Guess the active set at the limit of the interior point.

    With the ``predicted`` point of a full affine step, by Tapia's indicators: along the
    central path the slack of an active constraint shrinks to 0 while its dual settles, so
    ``z_pred / z > s_pred / s`` marks it active. The ratios are scale-free. Without a
    prediction, a constraint is taken as active where its dual exceeds its slack.
    """
    if predicted is None:
        active, predicted = point.z > point.s, point
    else:
        active = predicted.z * point.s > predicted.s * point.z
    lower = active[:, 0]
    upper = torch.zeros_like(lower)
    if problem.upper is not None:
        upper = active[:, 1] & ~lower & (rows.h[:, 1] < IPM_CAP_OFF)
    at_previous = torch.zeros_like(lower)
    if problem.has_turnover:
        at_previous = active[:, -2] & active[:, -1] & ~lower & ~upper
    return Guess(lower, upper, at_previous, predicted.w)
