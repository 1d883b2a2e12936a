r"""Mehrotra predictor-corrector interior point on the epigraph form of the scale-free problem.

With :math:`t_i \ge |w_i - w_{prev,i}|` (turnover) and :math:`v_i \ge |w_i|` (leverage) the
problem becomes a smooth QP in ``(w, t, v)``:

.. math::

    \min\; -m^\top w + \tfrac12 w^\top H w + k\,\mathbf 1^\top t \quad\text{s.t.}\quad
    E w = e,\; G_w w + G_t t + G_v v + s = h,\; A w + s_A = b,\; \mathbf 1^\top v + s_L = L,
    \; s \ge 0,

with per-asset rows ``-w <= -l``, ``w <= u`` (if capped), ``w - t <= w_prev``,
``-w - t <= -w_prev`` (if ``k > 0``), ``w - v <= 0``, ``-w - v <= 0`` (under a leverage
bound), and the general rows: ``E`` the budget and ``A_eq``, ``A`` the rows of ``A_ub``.
After eliminating the slacks, the duals of the per-asset rows, and ``t`` and ``v`` asset by
asset, every Newton system is

.. math::

    \begin{bmatrix} K & C^\top \\ C & -D \end{bmatrix}
    \begin{bmatrix} \Delta x \\ \Delta\lambda \end{bmatrix} = \ldots,
    \qquad K \sim \mathrm{diag}(\cdot) + \rho I + H,

where ``C`` stacks the general rows (the leverage row acts on ``v``) and ``D`` is 0 on the
equalities (plus a tiny term for redundant ones) and ``s / z`` on the inequalities. It is
solved through the Schur complement :math:`C K^{-1} C^\top + D` of size ``m`` (the number of
general rows, 1 for the budget alone): one factorisation of ``K`` by the risk operator
(Woodbury for factor models, never ``n x n``), ``m + 1`` solves with it, and an ``m x m``
Cholesky factor. Time and memory stay :math:`O(B n (k + m))` on the factor path. The
proximal term :math:`\rho` keeps ``K`` definite when ``H`` is singular; the interior point
only has to get close enough for the active set to be read off (see
:mod:`~e2e_portfolio.models.qp_native.polish`), so the slightly inexact direction costs
nothing in accuracy. Excluded assets carry ``EXCLUSION_PENALTY`` as their return here and
no cap row, so they go to 0.

All problems iterate in lockstep, but every quantity (step length, centring, gaps) is per
problem: a problem's iterates do not depend on its batch mates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.epigraph import Iterate, Rows, mean_gap
from e2e_portfolio.models.qp_native.problem import Problem, rows_times

STEP_FRACTION = 0.99
Directions = Callable[[torch.Tensor, torch.Tensor | None], Iterate]

EQUALITY_REGULARISATION = 1e-10
"""Relative term on the equality rows' diagonal of the Schur complement: keeps it definite
when ``A_eq`` repeats the budget or is rank deficient (the polish is exact regardless)."""


@dataclass(frozen=True)
class NewtonSystem:
    """One factorised Newton system: its predictor step and corrected directions."""

    affine: Iterate
    """the predictor direction"""
    directions: Directions
    """from centring targets (per-asset rows, general rows) to the corrected direction"""
    failed: torch.Tensor
    """(batch,) problems whose factorisation failed"""
    products: torch.Tensor
    """(batch, p, n) ``s * z`` at the current point"""
    general_products: torch.Tensor | None
    """(batch, q) ``s * z`` of the general inequality rows"""

    @property
    def gap(self) -> torch.Tensor:
        """(batch,) mean complementarity at the current point (see :func:`mean_gap`)."""
        if self.general_products is None:
            return self.products.mean(dim=(1, 2))
        products = self.products
        count = products.shape[1] * products.shape[2] + self.general_products.shape[1]
        return (products.sum(dim=(1, 2)) + self.general_products.sum(dim=1)) / count


def newton_system(problem: Problem, rows: Rows, point: Iterate) -> NewtonSystem:
    """Factorise the reduced Newton system once; the general rows go through a Schur complement.

    Written for few passes over the (batch, p, n) row tensors, which dominate the cost at
    large ``n``: row sums with the coefficients ``gw``, ``gt``, ``gv`` are matrix products,
    and the slack and dual steps are written into one preallocated tensor.
    """
    s, z, gw, gt, gv = point.s, point.z, rows.gw, rows.gt, rows.gv
    p = s.shape[1]
    eq = rows.eq
    n_eq = eq.shape[1]
    # the budget alone (1' w = 1): its row is the ones, its Schur complement a number
    budget_only = problem.rows is None and not rows.n_global
    if budget_only:
        r_w = rows.gradient(problem, point.w) + point.y
        r_e = point.w.sum(dim=1, keepdim=True) - 1.0
    else:
        r_w = rows.gradient(problem, point.w) + (point.y.unsqueeze(1) @ eq).squeeze(1)
        r_e = rows_times(eq, point.w) - rows.eq_rhs
    r_w = r_w + rows.weighted_w(z)
    r_p = torch.addcmul(s - rows.h, gw, point.w.unsqueeze(1))
    weight = z / s
    diagonal = weight[:, : rows.n_bounds].sum(dim=1) + problem.options.regularisation
    bt = ct = r_t = bv = cv = r_v = None
    if gt is not None:
        assert point.t is not None
        r_t = problem.kappa + rows.weighted_t(z)
        r_p = torch.addcmul(r_p, gt, point.t.unsqueeze(1))
        above, below = weight[:, rows.turnover_row], weight[:, rows.turnover_row + 1]
        bt, ct = below - above, above + below
        # a - b^2 / c without cancellation: the kink contributes 4 W3 W4 / (W3 + W4)
        diagonal = diagonal + 4.0 * above * below / ct
    g_r = g_w = g_s = g_d = None
    if rows.n_global:
        g_s, g_d = point.gs, point.gd
        values = rows.general_values(point.w, point.v)
        rhs = rows.general_rhs()
        assert values is not None and rhs is not None
        g_r = g_s + values - rhs
        g_w = g_d / g_s
        if rows.ub is not None:
            r_w = r_w + (g_d[:, : rows.ub.shape[1]].unsqueeze(1) @ rows.ub).squeeze(1)
    if gv is not None:
        assert point.v is not None and g_d is not None
        r_v = g_d[:, -1:] + rows.weighted_v(z)
        r_p = torch.addcmul(r_p, gv, point.v.unsqueeze(1))
        above, below = weight[:, rows.leverage_row], weight[:, rows.leverage_row + 1]
        bv, cv = below - above, above + below
        diagonal = diagonal + 4.0 * above * below / cv
    factorisation = problem.risk.factorise(diagonal)
    solve_system = factorisation.solve
    neg_r_p = r_p.neg_()
    products = s * z
    general_products = None if g_s is None or g_d is None else g_s * g_d

    # the general rows in w-space: equalities, A_ub, and the leverage row (it acts on v,
    # which eliminates to -bv / cv on w)
    columns = [eq]
    if rows.ub is not None:
        columns.append(rows.ub)
    if rows.leverage is not None:
        assert bv is not None and cv is not None
        columns.append((-bv / cv).unsqueeze(1))

    def reduced(r_c: torch.Tensor):
        """Eliminate s, z, t and v: the right-hand side of the system in w."""
        e = torch.addcmul(r_c, z, neg_r_p, value=-1.0).div_(s)
        rho_w = -r_w - rows.weighted_w(e)
        rho_t = rho_v = None
        if gt is not None:
            assert r_t is not None and bt is not None and ct is not None
            rho_t = -r_t - rows.weighted_t(e)
            rho_w = rho_w - bt * rho_t / ct
        if gv is not None:
            assert r_v is not None and bv is not None and cv is not None
            rho_v = -r_v - rows.weighted_v(e)
            rho_w = rho_w - bv * rho_v / cv
        return e, rho_w, rho_t, rho_v

    def _completed(dw, dy, e, rho_t, dv=None, general=None) -> Iterate:
        """The epigraph, slack and dual steps from the step in w."""
        moves = gw * dw.unsqueeze(1)
        dt = None
        if gt is not None:
            assert bt is not None and ct is not None
            dt = (rho_t - bt * dw) / ct
            moves = torch.addcmul(moves, gt, dt.unsqueeze(1))
        if dv is not None:
            assert gv is not None
            moves = torch.addcmul(moves, gv, dv.unsqueeze(1))
        step = torch.empty_like(point.sz)
        torch.sub(neg_r_p, moves, out=step[:, :p])
        torch.addcmul(e, weight, moves, out=step[:, p:])
        return Iterate(dw, dt, dv, dy, step, general)

    e, rho_w, rho_t, rho_v = reduced(-products)
    if budget_only:
        both = solve_system(torch.stack([rho_w, torch.ones_like(rho_w)], dim=1))
        u, ones_solution = both.unbind(1)
        ones_total = ones_solution.sum(dim=1, keepdim=True)

        def budget_step(e, rho_t, rho_v, u, r_cg) -> Iterate:
            dy = (u.sum(dim=1, keepdim=True) + r_e) / ones_total
            return _completed(torch.addcmul(u, dy, ones_solution, value=-1.0), dy, e, rho_t)

        return _system(budget_step, e, rho_t, rho_v, u, None, reduced, solve_system,
                       factorisation.failed, products, None)  # fmt: skip
    cw = torch.cat(columns, dim=1)  # (b, m, n)
    m = cw.shape[1]
    solved = solve_system(torch.cat([rho_w.unsqueeze(1), cw], dim=1))
    u, columns_solution = solved[:, 0], solved[:, 1:]  # K^-1 C' in w, (b, m, n)
    n_wrows = cw.shape[1] - (rows.leverage is not None)
    row_matrix = cw[:, :n_wrows]  # rows acting on w (the leverage row acts on v)
    schur = row_matrix @ columns_solution.mT  # (b, m_w, m)
    leverage_v = None
    if rows.leverage is not None:
        assert bv is not None and cv is not None
        # v-part of K^-1 c_j: (delta_jL - bv u_j) / cv
        leverage_v = -bv.unsqueeze(1) * columns_solution / cv.unsqueeze(1)
        leverage_v[:, -1] += 1.0 / cv
        schur = torch.cat([schur, leverage_v.sum(dim=2).unsqueeze(1)], dim=1)
    schur = 0.5 * (schur + schur.mT)
    size = torch.diagonal(schur, dim1=-2, dim2=-1).abs().amax(dim=1, keepdim=True)
    extra = torch.zeros_like(schur[:, 0])
    extra[:, :n_eq] = EQUALITY_REGULARISATION * size
    if g_w is not None:
        extra[:, n_eq:] = 1.0 / g_w
    chol, info = torch.linalg.cholesky_ex(schur + torch.diag_embed(extra))
    failed = factorisation.failed | (info != 0)
    if bool((info != 0).any()):
        eye = torch.eye(m, dtype=chol.dtype, device=chol.device)
        chol = torch.where((info != 0).view(-1, 1, 1), eye, chol)

    def recovered(e, rho_t, rho_v, u, r_cg) -> Iterate:
        """The full direction from ``u = S^-1 rho_w`` and the Schur complement."""
        applied = [rows_times(row_matrix, u)]
        if rho_v is not None:
            assert bv is not None and cv is not None
            applied.append(((rho_v - bv * u) / cv).sum(dim=1, keepdim=True))
        target = torch.cat(applied, dim=1)
        q = [-r_e]
        if g_r is not None:
            assert g_d is not None and r_cg is not None
            q.append(-g_r - r_cg / g_d)
        dlam = torch.cholesky_solve((target - torch.cat(q, dim=1)).unsqueeze(-1), chol)
        dlam = dlam.squeeze(-1)
        dw = u - (dlam.unsqueeze(1) @ columns_solution).squeeze(1)
        dv = None
        if gv is not None:
            assert bv is not None and cv is not None
            dv = (rho_v - bv * dw - dlam[:, -1:]) / cv
        general = None
        if g_r is not None:
            values = rows.general_values(dw, dv)
            assert values is not None
            general = torch.cat([-g_r - values, dlam[:, n_eq:]], dim=1)
        return _completed(dw, dlam[:, :n_eq], e, rho_t, dv, general)

    r_cg = None if general_products is None else -general_products
    return _system(recovered, e, rho_t, rho_v, u, r_cg, reduced, solve_system, failed, products,
                   general_products)  # fmt: skip


def _system(recovered, e, rho_t, rho_v, u, r_cg, reduced, solve_system, failed, products,
            general_products) -> NewtonSystem:  # fmt: skip
    """The Newton system from its step recovery: the affine step and the corrected ones."""
    affine = recovered(e, rho_t, rho_v, u, r_cg)

    def directions(r_c: torch.Tensor, r_cg: torch.Tensor | None) -> Iterate:
        e, rho_w, rho_t, rho_v = reduced(r_c)
        u = solve_system(rho_w.unsqueeze(1)).squeeze(1)
        return recovered(e, rho_t, rho_v, u, r_cg)

    return NewtonSystem(affine, directions, failed, products, general_products)


def step_length(point: Iterate, step: Iterate) -> torch.Tensor:
    """Largest step in [0, 1] keeping slacks and duals non-negative, per problem.

    ``1 / max(-step / x)`` over the entries: one division and one reduction.
    """
    fastest_fall = (step.sz / point.sz).amin(dim=(1, 2))
    if point.gz is not None and step.gz is not None:
        fastest_fall = torch.minimum(fastest_fall, (step.gz / point.gz).amin(dim=1))
    return fastest_fall.clamp_(max=-1.0).reciprocal_().neg_()


def corrected_step(
    point: Iterate, system: NewtonSystem, gap: torch.Tensor
) -> tuple[Iterate, torch.Tensor]:
    """Mehrotra's centred and corrected direction from the affine one, and its step length."""
    affine = system.affine
    alpha = step_length(point, affine)
    reached_sz = torch.addcmul(point.sz, alpha.view(-1, 1, 1), affine.sz)
    reached_gz = None
    if point.gz is not None and affine.gz is not None:
        reached_gz = torch.addcmul(point.gz, alpha.view(-1, 1), affine.gz)
    gap_affine = mean_gap(Iterate(point.w, None, None, point.y, reached_sz, reached_gz))
    sigma = (gap_affine / gap.clamp(min=1e-300)).clamp(0.0, 1.0) ** 3
    target = torch.addcmul(system.products, affine.s, affine.z)
    target = torch.sub((sigma * gap).view(-1, 1, 1), target)
    general = None
    if system.general_products is not None:
        general = torch.addcmul(system.general_products, affine.gs, affine.gd)
        general = torch.sub((sigma * gap).view(-1, 1), general)
    step = system.directions(target, general)
    return step, STEP_FRACTION * step_length(point, step)


@dataclass(frozen=True)
class Guess:
    """Held-asset masks read off an iterate, (batch, n) bool, and the weights they came from.

    ``at_zero`` (leverage kink), ``rows`` (held inequality rows, (batch, m_ub)) and
    ``levered`` (leverage bound held, (batch,)) are None where the problem has none.
    """

    lower: torch.Tensor
    upper: torch.Tensor
    at_previous: torch.Tensor
    w: torch.Tensor
    at_zero: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    levered: torch.Tensor | None = None


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
        general = None if point.gz is None else point.gd > point.gs
    else:
        active = predicted.z * point.s > predicted.s * point.z
        general = None
        if point.gz is not None:
            general = predicted.gd * point.gs > predicted.gs * point.gd
    lower = active[:, 0] & (rows.h[:, 0] < rows.off)
    upper = torch.zeros_like(lower)
    if problem.upper is not None:
        upper = active[:, 1] & ~lower & (rows.h[:, 1] < rows.off)
    at_previous = torch.zeros_like(lower)
    if problem.has_turnover:
        first = rows.turnover_row
        at_previous = active[:, first] & active[:, first + 1] & ~lower & ~upper
    at_zero = held_rows = levered = None
    if problem.leverage is not None:
        first = rows.leverage_row
        at_zero = active[:, first] & active[:, first + 1] & ~lower & ~upper & ~at_previous
    if general is not None:
        n_ub = 0 if rows.ub is None else rows.ub.shape[1]
        held_rows = general[:, :n_ub] if n_ub else None
        levered = general[:, -1] if problem.leverage is not None else None
    return Guess(lower, upper, at_previous, predicted.w, at_zero, held_rows, levered)
