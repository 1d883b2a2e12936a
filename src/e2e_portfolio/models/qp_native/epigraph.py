r"""The epigraph form of the scale-free problem: its constraints, its points and the start.

With :math:`t_i \ge |w_i - w_{prev,i}|` (turnover) and :math:`v_i \ge |w_i|` (leverage) the
problem becomes a smooth QP in ``(w, t, v)`` with per-asset rows ``-w <= -l``, ``w <= u``
(if capped), ``w - t <= w_prev``, ``-w - t <= -w_prev`` (if ``k > 0``), ``w - v <= 0``,
``-w - v <= 0`` (under a leverage bound), and general rows: the budget and ``A_eq`` as
equalities, ``A_ub`` and ``1' v <= L`` as inequalities (:class:`Rows`). :class:`Iterate`
holds a primal-dual point of it, and :func:`start` the interior point's first one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from e2e_portfolio.models.qp_native.problem import EXCLUSION_PENALTY, Problem, rows_times

TURNOVER_MARGIN_CAP = 1.0
"""Largest starting ``t - |w - w_prev|`` (weights live in [0, 1]): keeps ``t`` on the
problem's scale when ``k`` is tiny."""


def _opt(tensor: torch.Tensor | None, fn: Callable[[torch.Tensor], torch.Tensor]):
    return None if tensor is None else fn(tensor)


@dataclass(frozen=True)
class Rows:
    """The interior point's constraints.

    Per-asset inequalities ``gw * w_i + gt * t_i + gv * v_i <= h_i``, stacked on dim 1:
    ``gw``, ``gt``, ``gv`` (p, 1) (``gt`` None without the turnover term, ``gv`` None
    without a leverage bound), ``h`` (batch, p, n); the first ``n_bounds`` are the bounds.
    General rows: equalities ``eq`` (batch, m_eq, n) with ``eq_rhs``, inequalities ``ub``
    (batch, m_ub, n) with ``ub_rhs`` (None without), and the leverage bound (batch,).
    ``mu``: the returns the interior point uses (excluded assets penalised).
    """

    gw: torch.Tensor
    gt: torch.Tensor | None
    gv: torch.Tensor | None
    h: torch.Tensor
    n_bounds: int
    mu: torch.Tensor
    eq: torch.Tensor
    eq_rhs: torch.Tensor
    ub: torch.Tensor | None
    ub_rhs: torch.Tensor | None
    leverage: torch.Tensor | None
    off: torch.Tensor
    """(batch, 1) the bound used for uncapped or excluded assets: never binding"""

    @property
    def n_global(self) -> int:
        """Number of general inequality rows (``A_ub`` and the leverage bound)."""
        return (0 if self.ub is None else self.ub.shape[1]) + (self.leverage is not None)

    @property
    def turnover_row(self) -> int:
        """Index of the first turnover row."""
        return self.n_bounds

    @property
    def leverage_row(self) -> int:
        """Index of the first leverage row."""
        return self.n_bounds + (0 if self.gt is None else 2)

    def gradient(self, problem: Problem, w: torch.Tensor) -> torch.Tensor:
        """Gradient of the smooth part with the interior point's returns, ``H w - mu``."""
        return problem.risk.matvec(w) - self.mu

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], coefficients) -> Rows:
        return Rows(
            coefficients(self.gw), _opt(self.gt, coefficients), _opt(self.gv, coefficients),
            fn(self.h), self.n_bounds, fn(self.mu), fn(self.eq), fn(self.eq_rhs),
            _opt(self.ub, fn), _opt(self.ub_rhs, fn), _opt(self.leverage, fn), fn(self.off),
        )  # fmt: skip

    def take(self, index: torch.Tensor) -> Rows:
        """The rows of the problems at ``index`` (1-D)."""
        return self._map(lambda t: t[index], lambda t: t)

    def to(self, dtype: torch.dtype) -> Rows:
        """The same rows in ``dtype``."""
        cast = lambda t: t.to(dtype)  # noqa: E731
        return self._map(cast, cast)

    def weighted_w(self, rows: torch.Tensor) -> torch.Tensor:
        """``sum_j gw_j rows_j``, (batch, n), one pass (a matmul beats multiply-and-sum)."""
        return torch.matmul(self.gw.view(1, -1), rows).squeeze(-2)

    def weighted_t(self, rows: torch.Tensor) -> torch.Tensor:
        """``sum_j gt_j rows_j``, (batch, n)."""
        assert self.gt is not None
        return torch.matmul(self.gt.view(1, -1), rows).squeeze(-2)

    def weighted_v(self, rows: torch.Tensor) -> torch.Tensor:
        """``sum_j gv_j rows_j``, (batch, n)."""
        assert self.gv is not None
        return torch.matmul(self.gv.view(1, -1), rows).squeeze(-2)

    def general_values(self, w: torch.Tensor, v: torch.Tensor | None) -> torch.Tensor | None:
        """``[A w; 1' v]`` (batch, n_global), None without general inequality rows."""
        parts = []
        if self.ub is not None:
            parts.append(rows_times(self.ub, w))
        if self.leverage is not None:
            assert v is not None
            parts.append(v.sum(dim=1, keepdim=True))
        return torch.cat(parts, dim=1) if parts else None

    def general_rhs(self) -> torch.Tensor | None:
        """``[b; L]`` (batch, n_global), None without general inequality rows."""
        parts = []
        if self.ub_rhs is not None:
            parts.append(self.ub_rhs)
        if self.leverage is not None:
            parts.append(self.leverage.unsqueeze(1))
        return torch.cat(parts, dim=1) if parts else None


def constraint_rows(problem: Problem) -> Rows:
    """The constraints of ``problem``'s epigraph form (see :class:`Rows`)."""
    mu = problem.mu
    off = 2.0 * problem.bound + 1.0
    floor = problem.floor
    lower_h = torch.where(torch.isfinite(floor), -floor, off)
    gw, gt, gv, h = [-1.0], [0.0], [0.0], [lower_h]
    excluded = problem.excluded
    if problem.upper is not None:
        upper = problem.upper
        inside = upper < problem.bound
        if excluded is not None:
            inside = inside & ~excluded
        gw, gt, gv, h = [*gw, 1.0], [*gt, 0.0], [*gv, 0.0], [*h, torch.where(inside, upper, off)]
    n_bounds = len(gw)
    if problem.has_turnover:
        assert problem.w_prev is not None
        gw, gt, gv = [*gw, 1.0, -1.0], [*gt, -1.0, -1.0], [*gv, 0.0, 0.0]
        h = [*h, problem.w_prev, -problem.w_prev]
    if problem.leverage is not None:
        zero = torch.zeros_like(mu)
        gw, gt, gv, h = [*gw, 1.0, -1.0], [*gt, 0.0, 0.0], [*gv, -1.0, -1.0], [*h, zero, zero]
    if excluded is not None:
        mu = torch.where(excluded, -EXCLUSION_PENALTY, mu)
    dtype, device = mu.dtype, mu.device
    column = lambda values: torch.tensor(values, dtype=dtype, device=device).unsqueeze(1)  # noqa: E731
    constraints = problem.constraints
    n_eq = constraints.n_eq
    return Rows(
        column(gw),
        column(gt) if problem.has_turnover else None,
        column(gv) if problem.leverage is not None else None,
        torch.stack(h, dim=1),
        n_bounds,
        mu,
        constraints.matrix[:, :n_eq],
        constraints.rhs[:, :n_eq],
        constraints.matrix[:, n_eq:] if constraints.n_ub else None,
        constraints.rhs[:, n_eq:] if constraints.n_ub else None,
        problem.leverage,
        off,
    )


@dataclass
class Iterate:
    """Primal-dual point of the interior point.

    Weights w (batch, n), epigraphs t and v (batch, n) or None, equality duals y
    (batch, m_eq), per-asset slacks s and duals z (batch, p, n) stacked as ``sz``
    (batch, 2p, n), and the general inequality rows' slacks and duals stacked as ``gz``
    (batch, 2q) (None without such rows), so that a step and its length take few operations.
    """

    w: torch.Tensor
    t: torch.Tensor | None
    v: torch.Tensor | None
    y: torch.Tensor
    sz: torch.Tensor
    gz: torch.Tensor | None

    @property
    def s(self) -> torch.Tensor:
        """Per-asset slacks, (batch, p, n)."""
        return self.sz[:, : self.sz.shape[1] // 2]

    @property
    def z(self) -> torch.Tensor:
        """Per-asset duals, (batch, p, n)."""
        return self.sz[:, self.sz.shape[1] // 2 :]

    @property
    def gs(self) -> torch.Tensor:
        """General rows' slacks, (batch, q)."""
        assert self.gz is not None
        return self.gz[:, : self.gz.shape[1] // 2]

    @property
    def gd(self) -> torch.Tensor:
        """General rows' duals, (batch, q)."""
        assert self.gz is not None
        return self.gz[:, self.gz.shape[1] // 2 :]

    def _fields(self) -> tuple[torch.Tensor | None, ...]:
        return self.w, self.t, self.v, self.y, self.sz, self.gz

    def moved(self, alpha: torch.Tensor, step: Iterate) -> Iterate:
        """The point ``alpha`` (batch,) along ``step``."""
        column = alpha.unsqueeze(1)

        def along(mine: torch.Tensor | None, theirs: torch.Tensor | None) -> torch.Tensor | None:
            return None if mine is None or theirs is None else torch.addcmul(mine, column, theirs)

        return Iterate(
            torch.addcmul(self.w, column, step.w),
            along(self.t, step.t),
            along(self.v, step.v),
            torch.addcmul(self.y, column, step.y),
            torch.addcmul(self.sz, alpha.view(-1, 1, 1), step.sz),
            along(self.gz, step.gz),
        )

    def to(self, dtype: torch.dtype) -> Iterate:
        """The same point in ``dtype``."""
        return Iterate(*(_opt(f, lambda t: t.to(dtype)) for f in self._fields()))

    def take(self, index: torch.Tensor) -> Iterate:
        """The iterates of the problems at ``index`` (1-D)."""
        return Iterate(*(_opt(f, lambda t: t[index]) for f in self._fields()))

    def scattered(self, index: torch.Tensor, part: Iterate) -> Iterate:
        """These points with the problems at ``index`` replaced by ``part``'s."""
        out: list[torch.Tensor | None] = []
        for mine, theirs in zip(self._fields(), part._fields(), strict=True):
            out.append(
                None if mine is None or theirs is None else mine.index_copy(0, index, theirs)
            )
        return Iterate(*out)  # type: ignore[arg-type]

    def where(self, keep: torch.Tensor, other: Iterate) -> Iterate:
        """The point of ``self`` for the problems in ``keep`` (batch,), ``other`` elsewhere."""
        out: list[torch.Tensor | None] = []
        for mine, theirs in zip(self._fields(), other._fields(), strict=True):
            if mine is None or theirs is None:
                out.append(None)
            else:
                out.append(torch.where(keep.view(-1, *([1] * (mine.ndim - 1))), mine, theirs))
        return Iterate(*out)  # type: ignore[arg-type]


def start(problem: Problem, rows: Rows) -> Iterate:
    """A dual-feasible start at equal weights (``budget / n`` each).

    With ``g`` the gradient at equal weights (plus the general rows' duals, started at
    ``delta``) and the budget dual ``y = -mean(g)``, every asset's bound duals are set so
    that the stationarity residual is exactly zero: ``z_lower = max(g + y, 0) + delta`` and,
    where capped, ``z_upper = max(-(g + y), 0) + delta`` (without caps, ``y`` is raised until
    every ``z_lower >= delta``); the two turnover rows of an asset share ``k`` equally
    (``z3 = z4 = k / 2``), which zeroes the residual of ``t``, and the two leverage rows
    share the leverage dual. Long-only with the budget alone and no cap below ``1/n``, equal
    weights (and ``t = |w - w_prev| + margin``) are primal feasible: from a feasible start the
    Newton steps keep every residual at zero, so only the complementarity gap has to close
    (measured: 9 -> 6 iterations at n = 200 without turnover, 20 -> 17 at n = 1000 with it).
    Otherwise slacks start at ``max(h - G x, 1/n)`` and the primal residuals close with the
    gap. ``delta``, the mean size of the gradient, sets the starting gap on the problem's
    own scale.

    The ``margin`` centres the turnover rows: their duals are pinned at ``k / 2``, so their
    slacks (at least ``margin``) are chosen to give them the bound rows' mean product,
    ``margin = 2 mu_bounds / k`` within ``[1/n, TURNOVER_MARGIN_CAP]``. With ``1/n`` instead,
    their products were far below the bound rows' and the first steps short (median step
    0.09 at n = 1000); centred, the interior point does about 10% fewer problem-iterations
    (measured on the benchmark's problems: 718 -> 601 at n = 40, 1101 -> 972 at n = 200,
    1386 -> 1270 at n = 1000, 289 -> 257 at n = 3000).
    """
    n = problem.mu.shape[1]
    budget = rows.eq_rhs[:, :1]
    w = torch.full_like(problem.mu, 1.0 / n)
    if problem.rows is not None:
        w = w * budget
    gradient = rows.gradient(problem, w)
    delta = gradient.abs().mean(dim=1, keepdim=True).clamp(min=1e-3)
    general_duals = None
    if rows.n_global:
        general_duals = delta.expand(-1, rows.n_global)
        if rows.ub is not None:
            ub_duals = general_duals[:, : rows.ub.shape[1]]
            gradient = gradient + (ub_duals.unsqueeze(1) @ rows.ub).squeeze(1)
    y = -gradient.mean(dim=1, keepdim=True)
    if problem.upper is None:
        y = torch.maximum(y, (-gradient).amax(dim=1, keepdim=True))
    reduced = gradient + y
    duals = [reduced.clamp(min=0) + delta]
    if problem.upper is not None:
        duals.append((-reduced).clamp(min=0) + delta)
    z = torch.stack(duals, dim=1)  # the bound rows' duals
    s = rows.h - rows.gw * w.unsqueeze(1)
    t = v = None
    if rows.gt is not None:
        assert problem.w_prev is not None
        # epigraph slack that centres the turnover rows: with their duals fixed at k / 2,
        # slacks of 2 mu / k give them the bound rows' mean product mu
        bounds = z * s[:, : z.shape[1]].clamp(min=1.0 / n)
        margin = 2.0 * bounds.mean(dim=(1, 2)).unsqueeze(1) / problem.kappa
        margin = margin.clamp(min=1.0 / n, max=TURNOVER_MARGIN_CAP)
        t = (w - problem.w_prev).abs() + margin
        s = s - rows.gt * t.unsqueeze(1)
    if rows.gv is not None:
        v = w.abs() + 1.0 / n
        s = s - rows.gv * v.unsqueeze(1)
    s = s.clamp(min=1.0 / n)
    if rows.gt is not None:
        half = (problem.kappa / 2).expand_as(w).unsqueeze(1)
        z = torch.cat([z, half, half], dim=1)
    if rows.gv is not None:
        half = (delta / 2).expand_as(w).unsqueeze(1)
        z = torch.cat([z, half, half], dim=1)
    y_all = torch.zeros_like(rows.eq_rhs)
    y_all[:, :1] = y
    gz = None
    if general_duals is not None:
        values, rhs = rows.general_values(w, v), rows.general_rhs()
        assert values is not None and rhs is not None
        slacks = (rhs - values).clamp(min=1.0 / n)
        gz = torch.cat([slacks, general_duals], dim=1)
    return Iterate(w, t, v, y_all, torch.cat([s, z], dim=1), gz)


def mean_gap(point: Iterate) -> torch.Tensor:
    """(batch,) mean complementarity ``s * z`` over every inequality row."""
    products = point.s * point.z
    if point.gz is None:
        return products.mean(dim=(1, 2))
    count = products.shape[1] * products.shape[2] + point.gs.shape[1]
    return (products.sum(dim=(1, 2)) + (point.gs * point.gd).sum(dim=1)) / count
