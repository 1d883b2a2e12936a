r"""Native batched solver of the mean-variance QP, with an exact implicit-KKT backward pass.

Solves, for every problem of a batch,

.. math::

    \min_w\; -\mu^\top w + \gamma\, w^\top Q w + \kappa \lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = 1,\; 0 \le w \le w_{max},

with :math:`Q = R^\top R`, in three steps:

1. **Interior point.** A Mehrotra predictor-corrector method on the epigraph form
   (:math:`t_i \ge |w_i - w_{prev,i}|`). Every Newton system reduces, after eliminating the
   per-asset 2 x 2 blocks, to :math:`(\mathrm{diag}(D) + 2\gamma Q)\,\Delta w + \mathbf 1
   \Delta\nu = r`, solved by Woodbury in :math:`O(nk^2)` when ``Q`` is low-rank plus diagonal,
   by Cholesky otherwise. All problems of the batch iterate in lockstep on the device of the
   inputs.
2. **Active-set polish.** Once every gap is small (``POLISH_GAP``), the point the full
   predictor step would reach tells, for each asset, whether it is free, at 0, at ``w_max``
   or at its previous weight (the kink of the L1 term). The equality-constrained QP on the
   free assets is then solved exactly, and the KKT conditions (multiplier signs, strict
   feasibility of the free assets) are checked; a violated condition moves that asset
   between sets and the polish is repeated. Verified problems stop; the others iterate on.
   The result is exact to rounding.
3. **Backward.** Implicit differentiation of the KKT conditions at that active set: one more
   solve with the same reduced matrix gives :math:`\partial L/\partial\mu`,
   :math:`\partial L/\partial R` (a rank-2 update, never an ``n x n`` product) and
   :math:`\partial L/\partial w_{prev}` (through assets held at their previous weight). At
   degenerate points (an asset at a bound with zero multiplier) the asset is treated as
   fixed, which yields a valid one-sided derivative.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch.autograd.function import once_differentiable

from e2e_portfolio.exceptions import SolverError
from e2e_portfolio.models.risk import RiskOperator, as_risk_operator

MAX_IPM_ITERATIONS = 60
MAX_POLISH_ROUNDS = 20
POLISH_GAP = 1e-5
"""Mean complementarity gap below which the exact polish is first tried."""
EXCHANGES_PER_TRIAL = 2
RETRY_FACTOR = 1e-2
"""After a polish that leaves problems unverified, the next waits for their largest gap to
fall by this factor."""
STEP_FRACTION = 0.99


@dataclass(frozen=True)
class ActiveSet:
    """Which assets are free and where the others are held, per problem (batch, n)."""

    free: torch.Tensor
    """bool: strictly between its bounds and away from its previous weight."""
    fixed_value: torch.Tensor
    """value of the held assets (0, ``w_max`` or ``w_prev``); 0 where free."""
    at_previous: torch.Tensor
    """bool: held at its previous weight (the only held assets that move with ``w_prev``)."""
    sign: torch.Tensor
    """sign of ``w - w_prev`` for free assets (0 when ``kappa == 0``)."""


@dataclass(frozen=True)
class Solution:
    weights: torch.Tensor
    """(batch, n)"""
    budget_dual: torch.Tensor
    """(batch,) multiplier of the budget constraint"""
    active: ActiveSet
    iterations: int


@dataclass(frozen=True)
class Problem:
    """One batch of problems in float64, (batch, n) tensors; see the module docstring."""

    mu: torch.Tensor
    risk: RiskOperator
    gamma: float
    w_max: float | None
    kappa: float
    w_prev: torch.Tensor | None

    @cached_property
    def mu_size(self) -> torch.Tensor:
        """(batch, 1) largest |mu|, the scale of the KKT tolerances."""
        return self.mu.abs().amax(dim=1, keepdim=True)

    @property
    def upper(self) -> float:
        return self.w_max if self.w_max is not None else float("inf")

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of the smooth part, ``-mu + 2 gamma Q w``."""
        return -self.mu + 2.0 * self.gamma * self.risk.matvec(w)


# ------------------------------------------------------------------------ interior point
@dataclass(frozen=True)
class _Rows:
    """Inequalities ``gw * w_i + gt * t_i <= h_i`` of the epigraph form, stacked on dim 1.

    Row kinds, in order: ``w >= 0``; ``w <= w_max`` if capped; ``t >= w - w_prev`` and
    ``t >= w_prev - w`` if ``kappa > 0``. ``gw``, ``gt``: (m, 1), ``gt`` None without the
    turnover term (then there is no ``t``); ``h``: (batch, m, n).
    """

    gw: torch.Tensor
    gt: torch.Tensor | None
    h: torch.Tensor
    n_bounds: int


def _constraints(problem: Problem) -> _Rows:
    mu = problem.mu
    gw, gt, h = [-1.0], [0.0], [torch.zeros_like(mu)]
    if problem.w_max is not None:
        gw, gt, h = [*gw, 1.0], [*gt, 0.0], [*h, torch.full_like(mu, problem.w_max)]
    n_bounds = len(gw)
    if problem.kappa > 0:
        assert problem.w_prev is not None
        gw, gt, h = [*gw, 1.0, -1.0], [*gt, -1.0, -1.0], [*h, problem.w_prev, -problem.w_prev]
    column = {"dtype": mu.dtype, "device": mu.device}
    return _Rows(
        torch.tensor(gw, **column).unsqueeze(1),
        torch.tensor(gt, **column).unsqueeze(1) if problem.kappa > 0 else None,
        torch.stack(h, dim=1),
        n_bounds,
    )


@dataclass
class _Iterate:
    """Primal-dual point: weights w (batch, n), epigraph t (batch, n) or None without the
    turnover term, budget dual y (batch,), and slacks s and duals z (batch, m, n) stacked as
    ``sz`` (batch, 2m, n), so that a step and its length take one operation each."""

    w: torch.Tensor
    t: torch.Tensor | None
    y: torch.Tensor
    sz: torch.Tensor

    @property
    def s(self) -> torch.Tensor:
        return self.sz[:, : self.sz.shape[1] // 2]

    @property
    def z(self) -> torch.Tensor:
        return self.sz[:, self.sz.shape[1] // 2 :]

    def moved(self, alpha: torch.Tensor, step: _Iterate) -> _Iterate:
        a = alpha.unsqueeze(1)
        return _Iterate(
            torch.addcmul(self.w, a, step.w),
            None if self.t is None else torch.addcmul(self.t, a, step.t),
            torch.addcmul(self.y, alpha, step.y),
            torch.addcmul(self.sz, alpha.view(-1, 1, 1), step.sz),
        )


def _start(problem: Problem, rows: _Rows) -> _Iterate:
    batch, n = problem.mu.shape
    w = torch.full_like(problem.mu, 1.0 / n)
    s = rows.h - rows.gw * w.unsqueeze(1)
    t = None
    if rows.gt is not None:
        t = (w - problem.w_prev).abs() + 1.0 / n
        s = s - rows.gt * t.unsqueeze(1)
    s = s.clamp(min=1.0 / n)
    y = torch.zeros(batch, dtype=w.dtype, device=w.device)
    # duals on the scale of the objective's gradient rather than 1: the starting gap is then
    # near the one the problem needs, which saves about one iteration (measured: 7 -> 6 at
    # n = 40, 10 -> 8 at n = 200) and keeps the start invariant to rescaling mu and gamma
    scale = problem.gradient(w).abs().mean(dim=1).clamp(min=1e-12)
    z = scale.view(-1, 1, 1).expand_as(s)
    return _Iterate(w, t, y, torch.cat([s, z], dim=1))


def _mean_gap(point: _Iterate) -> torch.Tensor:
    return (point.s * point.z).mean(dim=(1, 2))


def _newton_directions(problem: Problem, rows: _Rows, point: _Iterate):
    """Factorise the reduced Newton system once.

    Returns the affine (predictor) direction and a function from a centring target to the
    corrected direction; ``M^-1 1``, which every direction needs, is solved together with the
    affine right-hand side.
    """
    s, z, gw, gt = point.s, point.z, rows.gw, rows.gt
    r_w = problem.gradient(point.w) + point.y.unsqueeze(1) + (gw * z).sum(dim=1)
    r_p = gw * point.w.unsqueeze(1) + s - rows.h
    r_e = point.w.sum(dim=1) - 1.0
    weight = z / s
    diagonal = weight[:, : rows.n_bounds].sum(dim=1)
    if gt is not None:
        r_t = problem.kappa + (gt * z).sum(dim=1)
        r_p = r_p + gt * point.t.unsqueeze(1)
        above, below = weight[:, -2], weight[:, -1]
        b, c = below - above, above + below
        # a - b^2 / c without cancellation: the kink contributes 4 W3 W4 / (W3 + W4)
        diagonal = diagonal + 4.0 * above * below / c
    solve_system = problem.risk.solver(2.0 * problem.gamma, diagonal)

    def reduced(r_c: torch.Tensor):
        """Eliminate s, z and t: the right-hand side of the system in w."""
        e = (r_c + z * r_p) / s
        rho_w = -r_w - (gw * e).sum(dim=1)
        rho_t = None
        if gt is not None:
            rho_t = -r_t - (gt * e).sum(dim=1)
            rho_w = rho_w - b * rho_t / c
        return e, rho_w, rho_t

    def recovered(e: torch.Tensor, rho_t: torch.Tensor | None, u: torch.Tensor) -> _Iterate:
        """The full direction from ``u = M^-1 rho_w`` and the budget row."""
        dy = (u.sum(dim=1) + r_e) / ones_total
        dw = torch.addcmul(u, dy.unsqueeze(1), ones_solution, value=-1.0)
        moves = gw * dw.unsqueeze(1)
        dt = None
        if gt is not None:
            dt = (rho_t - b * dw) / c
            moves = moves + gt * dt.unsqueeze(1)
        return _Iterate(dw, dt, dy, torch.cat([-r_p - moves, weight * moves + e], dim=1))

    e, rho_w, rho_t = reduced(-s * z)
    both = solve_system(torch.stack([rho_w, torch.ones_like(rho_w)], dim=-1))
    u, ones_solution = both.unbind(-1)
    ones_total = ones_solution.sum(dim=1)
    affine = recovered(e, rho_t, u)

    def directions(r_c: torch.Tensor) -> _Iterate:
        e, rho_w, rho_t = reduced(r_c)
        return recovered(e, rho_t, solve_system(rho_w.unsqueeze(-1)).squeeze(-1))

    return affine, directions


def _step_length(point: _Iterate, step: _Iterate) -> torch.Tensor:
    """Largest step in [0, 1] keeping slacks and duals non-negative, per problem."""
    decrease = step.sz.neg().clamp_(min=1e-300)
    return (point.sz / decrease).amin(dim=(1, 2)).clamp_(max=1.0)


def _corrected_step(
    point: _Iterate, directions, affine: _Iterate, gap: torch.Tensor
) -> tuple[_Iterate, torch.Tensor]:
    """Mehrotra's centred and corrected direction from the affine one, and its step length."""
    alpha = _step_length(point, affine).view(-1, 1, 1)
    reached = torch.addcmul(point.sz, alpha, affine.sz)
    m = reached.shape[1] // 2
    gap_affine = (reached[:, :m] * reached[:, m:]).mean(dim=(1, 2))
    sigma = (gap_affine / gap.clamp(min=1e-300)).clamp(0.0, 1.0) ** 3
    target = (sigma * gap).view(-1, 1, 1) - point.s * point.z
    step = directions(torch.addcmul(target, affine.s, affine.z, value=-1.0))
    return step, (STEP_FRACTION * _step_length(point, step)).clamp(max=1.0)


def _identify(problem: Problem, point: _Iterate, predicted: _Iterate | None = None) -> ActiveSet:
    """Guess the active set at the limit of the interior point.

    With the ``predicted`` point of a full affine step, by Tapia's indicators: along the
    central path the slack of an active constraint shrinks to 0 while its dual settles, so
    ``z_pred / z > s_pred / s`` marks it active. The ratios are scale-free and about one
    iteration more reliable than comparing duals with slacks (measured on the benchmark
    problems: 15 of 96 problems fail the first polish at gap 3e-6, against 57). Without a
    prediction, a constraint is taken as active where its dual exceeds its slack.
    """
    if predicted is None:
        active, predicted = point.z > point.s, point
    else:
        active = predicted.z * point.s > predicted.s * point.z
    lower = active[:, 0]
    upper = active[:, 1] & ~lower if problem.w_max is not None else torch.zeros_like(lower)
    at_previous = torch.zeros_like(lower)
    if problem.kappa > 0:
        at_previous = active[:, -2] & active[:, -1] & ~lower & ~upper
    return _active_set(problem, predicted.w, lower, upper, at_previous)


def _active_set(
    problem: Problem,
    w: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    at_previous: torch.Tensor,
    sign: torch.Tensor | None = None,
) -> ActiveSet:
    free = ~(lower | upper | at_previous)
    fixed = torch.zeros_like(w)
    if problem.w_max is not None:
        fixed = torch.where(upper, problem.w_max, fixed)
    if problem.w_prev is not None:
        fixed = torch.where(at_previous, problem.w_prev, fixed)
    if problem.kappa == 0:
        return ActiveSet(free, fixed, at_previous, torch.zeros_like(w))
    if sign is None:
        sign = torch.sign(w - problem.w_prev)
    return ActiveSet(free, fixed, at_previous, torch.where(free, sign, 0.0))


def _merge(take: torch.Tensor, new: ActiveSet, old: ActiveSet) -> ActiveSet:
    rows = take.unsqueeze(1)
    return ActiveSet(
        *(torch.where(rows, a, b) for a, b in zip(_fields(new), _fields(old), strict=True))
    )


def _fields(active: ActiveSet) -> tuple[torch.Tensor, ...]:
    return active.free, active.fixed_value, active.at_previous, active.sign


# ---------------------------------------------------------------------- active-set polish
def _reduced_solver(problem: Problem, active: ActiveSet):
    """Factorise the KKT matrix of the equality-constrained QP on the free assets."""
    mask = active.free.to(problem.mu.dtype)
    return problem.risk.solver(2.0 * problem.gamma, 1.0 - mask, mask), mask


def _budget_solve(solve_reduced, mask: torch.Tensor, rhs: torch.Tensor, total: torch.Tensor):
    """Solve ``M x + nu mask = rhs, sum(mask * x) = total``; nu = 0 where nothing is free."""
    both = solve_reduced(torch.stack([rhs, mask], dim=-1))
    x_rhs, x_ones = both[..., 0] * mask, both[..., 1] * mask
    denominator = x_ones.sum(dim=1)
    has_free = denominator > 0
    nu = torch.where(
        has_free, (x_rhs.sum(dim=1) - total) / torch.where(has_free, denominator, 1.0), 0.0
    )
    return x_rhs - nu.unsqueeze(1) * x_ones, nu, has_free


def solve_active_set(
    problem: Problem, active: ActiveSet, fallback_dual: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact solution and budget dual of the QP with the held assets fixed."""
    solve_reduced, mask = _reduced_solver(problem, active)
    held = active.fixed_value
    smooth = problem.mu - problem.kappa * active.sign
    rhs = mask * (smooth - 2.0 * problem.gamma * problem.risk.matvec(held))
    free_part, nu, has_free = _budget_solve(solve_reduced, mask, rhs, 1.0 - held.sum(dim=1))
    return free_part + held, torch.where(has_free, nu, fallback_dual)


@dataclass(frozen=True)
class _KKTCheck:
    """Assets of an active-set solution that break a KKT condition, as (batch, n) masks."""

    to_lower: torch.Tensor
    """free but below 0"""
    to_upper: torch.Tensor
    """free but above ``w_max``"""
    to_previous: torch.Tensor
    """free but past its previous weight, against its sign"""
    release: torch.Tensor
    """held, with a multiplier of the wrong sign (or above ``kappa`` at the kink)"""
    gradient: torch.Tensor
    """``-mu + 2 gamma Q w + nu``"""
    off_budget: torch.Tensor
    """(batch,) ``sum(w) != 1``: possible only when every asset is held"""

    @property
    def failing(self) -> torch.Tensor:
        """(batch,) problems with at least one violation."""
        masks = self.to_lower | self.to_upper | self.to_previous | self.release
        return masks.any(dim=1) | self.off_budget


def _violations(problem: Problem, w: torch.Tensor, nu: torch.Tensor, active: ActiveSet):
    """Check the KKT conditions of an active-set solution; see :class:`_KKTCheck`."""
    grad = problem.gradient(w) + nu.unsqueeze(1)
    kappa, upper_bound = problem.kappa, problem.upper
    tol = 1e-9 * (1.0 + problem.mu_size + grad.abs().amax(dim=1, keepdim=True))
    free = active.free
    to_lower = free & (w < 0)
    to_upper = free & (w > upper_bound) if problem.w_max is not None else torch.zeros_like(free)
    off_budget = (w.sum(dim=1) - 1.0).abs() > 1e-9
    lower, upper = _held_at_bounds(active)
    if kappa == 0:
        release = (lower & (grad < -tol)) | (upper & (grad > tol))
        return _KKTCheck(to_lower, to_upper, torch.zeros_like(free), release, grad, off_budget)
    prev = problem.w_prev
    to_previous = free & (active.sign * (w - prev) <= 0) & ~to_lower & ~to_upper
    lower_mult = grad + kappa * torch.where(prev <= 0, 1.0, -1.0)
    upper_mult = grad + kappa * torch.where(prev < upper_bound, 1.0, -1.0)
    release = (
        (lower & (lower_mult < -tol))
        | (upper & (upper_mult > tol))
        | (active.at_previous & (grad.abs() > kappa + tol))
    )
    return _KKTCheck(to_lower, to_upper, to_previous, release, grad, off_budget)


def _held_at_bounds(active: ActiveSet) -> tuple[torch.Tensor, torch.Tensor]:
    held = ~active.free & ~active.at_previous
    lower = held & (active.fixed_value == 0)
    return lower, held & ~lower


def _exchange(problem: Problem, w, active: ActiveSet, check: _KKTCheck) -> ActiveSet:
    """One primal-dual active-set exchange: move every violating asset to its other set."""
    release = check.release
    held_lower, held_upper = _held_at_bounds(active)
    lower = (held_lower & ~release) | check.to_lower
    upper = (held_upper & ~release) | check.to_upper
    at_previous = (active.at_previous & ~release) | check.to_previous
    sign = active.sign
    if problem.kappa > 0:
        # a released asset moves into the direction that lowers the objective
        prev = problem.w_prev
        from_bound = torch.where(held_lower, torch.where(prev > 0, -1.0, 1.0), 0.0)
        from_bound = torch.where(
            held_upper, torch.where(prev >= problem.upper, -1.0, 1.0), from_bound
        )
        released = torch.where(active.at_previous, -torch.sign(check.gradient), from_bound)
        sign = torch.where(release, released, sign)
    return _active_set(problem, w, lower, upper, at_previous, sign=sign)


def solve(problem: Problem) -> Solution:
    """Interior point with exact, KKT-verified polish; raises :class:`SolverError` on failure.

    Once the duality gap of every unverified problem is below ``POLISH_GAP``, the active set
    is guessed from the full affine (predictor) step (:func:`_identify`) and polished
    (:func:`_polish`, up to ``EXCHANGES_PER_TRIAL`` exchanges). A problem whose solution
    passes every KKT check stops iterating. The rest iterate on, and are polished again once
    their largest gap has fallen by ``RETRY_FACTOR`` (exchanges can cycle at the kink of the
    L1 term; the interior point breaks the cycle).
    """
    rows = _constraints(problem)
    point = _start(problem, rows)
    solved = torch.zeros(problem.mu.shape[0], dtype=torch.bool, device=problem.mu.device)
    verified = _Verified(solved, torch.zeros_like(problem.mu), torch.zeros_like(point.y),
                         _identify(problem, point))  # fmt: skip
    polish_below, iteration = POLISH_GAP, 0
    try:
        for iteration in range(1, MAX_IPM_ITERATIONS + 1):  # noqa: B007 - reported below
            affine, directions = _newton_directions(problem, rows, point)
            gap = _mean_gap(point)
            largest_gap = float(gap[~verified.solved].max())
            if largest_gap <= polish_below:
                trial = _identify(problem, point, point.moved(torch.ones_like(gap), affine))
                verified = _polish(problem, trial, point.y, verified, EXCHANGES_PER_TRIAL)
                polish_below = RETRY_FACTOR * largest_gap
            if verified.done:
                break
            step, alpha = _corrected_step(point, directions, affine, gap)
            point = point.moved(alpha * ~verified.solved, step)
            if not bool(torch.isfinite(point.w).all()):
                raise SolverError("the native QP solver diverged", status="nan_iterate")
        if not verified.done:
            # last resort: exchanges from the active set of the last iterate
            trial = _merge(verified.solved, verified.active, _identify(problem, point))
            verified = _polish(problem, trial, point.y, verified, MAX_POLISH_ROUNDS)
    except torch.linalg.LinAlgError as exc:
        raise SolverError(f"native QP solver: singular system: {exc}", status="singular") from exc
    if not verified.done:
        raise SolverError(
            f"the native QP solver did not converge on {int((~verified.solved).sum())} of "
            f"{len(verified.solved)} problems within {MAX_IPM_ITERATIONS} iterations",
            status="max_iterations",
        )
    return Solution(verified.weights, verified.budget_dual, verified.active, iteration)


@dataclass(frozen=True)
class _Verified:
    """The problems whose polished solution passed the KKT check, and those solutions."""

    solved: torch.Tensor
    """(batch,) bool"""
    weights: torch.Tensor
    budget_dual: torch.Tensor
    active: ActiveSet

    @property
    def done(self) -> bool:
        return bool(self.solved.all())


def _polish(
    problem: Problem, trial: ActiveSet, dual: torch.Tensor, verified: _Verified, exchanges: int
) -> _Verified:
    """Solve the QP exactly on the ``trial`` active set and check the KKT conditions; up to
    ``exchanges`` times, move the violating assets and try again. Problems that pass join
    ``verified``; ``dual`` is the budget dual where no asset is free."""
    for exchange in range(exchanges + 1):
        w_trial, nu_trial = solve_active_set(problem, trial, dual)
        check = _violations(problem, w_trial, nu_trial, trial)
        passed = ~verified.solved & ~check.failing
        verified = _Verified(
            verified.solved | passed,
            torch.where(passed.unsqueeze(1), w_trial, verified.weights),
            torch.where(passed, nu_trial, verified.budget_dual),
            _merge(passed, trial, verified.active),
        )
        if verified.done:
            break
        if exchange < exchanges:
            trial = _exchange(problem, w_trial, trial, check)
    return verified


# ------------------------------------------------------------------------------ backward
def adjoint(
    problem: Problem, active: ActiveSet, grad_w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the reduced KKT system with right-hand side ``(grad_w on free assets, 0)``.

    Returns the adjoint ``a`` (batch, n), zero on held assets, and its budget part (batch,).
    """
    solve_reduced, mask = _reduced_solver(problem, active)
    a, b, _ = _budget_solve(solve_reduced, mask, mask * grad_w, torch.zeros_like(grad_w[:, 0]))
    return a, b


class NativeMeanVarianceFunction(torch.autograd.Function):
    """Autograd glue: forward solves the batch, backward differentiates its KKT conditions.

    Inputs are float64, batched: mu (b, n), R (b, m, n), w_prev (b, n) or None.
    """

    @staticmethod
    def forward(ctx, mu, risk, w_prev, gamma, w_max, kappa):
        problem = Problem(mu, as_risk_operator(risk), gamma, w_max, kappa, w_prev)
        # inference mode skips autograd's per-op bookkeeping (~10% of a small solve); its
        # tensors cannot be saved for backward, so the few that are kept are copied out
        with torch.inference_mode():
            solution = solve(problem)
        weights = solution.weights.clone()
        ctx.problem = problem
        ctx.active = ActiveSet(*(field.clone() for field in _fields(solution.active)))
        ctx.save_for_backward(weights)
        return weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_w):
        (weights,) = ctx.saved_tensors
        problem: Problem = ctx.problem
        a, b = adjoint(problem, ctx.active, grad_w)
        grad_mu = grad_risk = grad_prev = None
        if ctx.needs_input_grad[0]:
            grad_mu = a
        if ctx.needs_input_grad[1]:
            # dL/dR = -2 gamma (R a w' + R w a'): one product of (b, m, 2) by (b, 2, n)
            pair = torch.stack([a, weights], dim=-1)  # (b, n, 2)
            scaled_pair = -2.0 * problem.gamma * pair.flip(-1).transpose(-1, -2)
            grad_risk = problem.risk.root_matvec(pair) @ scaled_pair
        if ctx.needs_input_grad[2]:
            through_held = grad_w - 2.0 * problem.gamma * problem.risk.matvec(a) - b.unsqueeze(1)
            grad_prev = torch.where(ctx.active.at_previous, through_held, torch.zeros_like(grad_w))
        return grad_mu, grad_risk, grad_prev, None, None, None
