r"""The equality-constrained solve at the heart of the polish and the backward pass.

Given the free assets F and the rows that hold, :func:`kkt_solve` solves

.. math::

    \begin{bmatrix} H_{FF} & C_F^\top \\ C_F & 0 \end{bmatrix}
    \begin{bmatrix} x_F \\ \lambda \end{bmatrix} =
    \begin{bmatrix} r_F \\ c \end{bmatrix}.

It factorises the regularised ``H_FF + rho I`` (always definite), solves for ``C_F'`` in the
same pass, and solves the small Schur complement :math:`C_F (H_{FF} + \rho I)^{-1} C_F^\top`
by a pseudo-inverse, so redundant or rank-deficient rows (``A_eq`` repeating the budget,
collinear factors) are handled: their multipliers are the ones closest to a given base (the
interior point's). Iterative refinement against the exact ``H`` then removes the
regularisation: each step multiplies the error by at most ``rho / (lambda + rho)`` on every
direction with curvature ``lambda`` (proximal-point iterations), and leaves directions of
zero curvature alone (where the optimum is not unique, any point of the optimal face is a
solution). Each problem refines until its own residual is below the refinement tolerance; a
well-conditioned problem needs one step, a nearly collinear one a few more. The same
refinement removes the cancellation error of a badly conditioned Woodbury factor (tiny ``d``
next to ``F F'``). With the budget as the only row the Schur complement is a number and no
product with rows is formed.
"""

from __future__ import annotations

import torch

from e2e_portfolio.models.qp_native.problem import ActiveSet, Problem, rows_times

PSEUDO_INVERSE_CUTOFF = 1e-11
"""Eigenvalues of the rows' Schur complement below this share of its largest are taken as
zero (redundant rows)."""


def _pseudo_inverse(schur: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Pseudo-inverse of the symmetric (batch, m, m) ``schur``; rows not ``on`` map to 0."""
    if schur.shape[1] == 1:
        value = schur[:, :1]
        return torch.where(value > 0, 1.0 / value.where(value > 0, 1.0), 0.0)
    diagonal = torch.diagonal(schur, dim1=-2, dim2=-1)
    size = diagonal.amax(dim=1, keepdim=True).clamp(min=torch.finfo(schur.dtype).tiny)
    filled = schur + torch.diag_embed((1.0 - on) * size)
    values, vectors = torch.linalg.eigh(0.5 * (filled + filled.mT))
    keep = values > PSEUDO_INVERSE_CUTOFF * values.abs().amax(dim=1, keepdim=True)
    inverse_values = torch.where(keep, 1.0 / values.where(keep, 1.0), 0.0)
    return (vectors * inverse_values.unsqueeze(1)) @ vectors.mT


def kkt_solve(
    problem: Problem,
    free: torch.Tensor,
    rhs: torch.Tensor,
    matrix: torch.Tensor,
    target: torch.Tensor,
    on: torch.Tensor,
    base: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``H_FF x + C_F' lam = rhs_F, C_F x = target`` on the rows ``on`` (x = 0 off ``free``).

    ``matrix`` (batch, m, n) holds the rows, ``target`` (batch, m) their right-hand sides,
    ``on`` (batch, m) bool which of them count. Multipliers the system leaves open (no free
    asset, redundant rows) are the ones closest to ``base`` (batch, m; 0 by default).
    Returns ``x`` (batch, n), ``lam`` (batch, m; 0 on rows not ``on``) and whether the
    factorisation failed (batch,).
    """
    count = int(on.sum(dim=1).max()) if on.shape[1] > 1 else on.shape[1]
    if count < on.shape[1]:
        # only the rows that hold, each problem's first (padded to the most any problem has):
        # sector caps of which a few bind cost a few columns, not all
        order = torch.argsort((~on).to(torch.int8), dim=1, stable=True)[:, :count]
        rows_of = matrix.gather(1, order.unsqueeze(2).expand(-1, -1, matrix.shape[2]))
        base_of = None if base is None else base.gather(1, order)
        x, lam, failed = kkt_solve(problem, free, rhs, rows_of, target.gather(1, order),
                                   on.gather(1, order), base_of)  # fmt: skip
        return x, torch.zeros_like(target).scatter(1, order, lam), failed
    options = problem.options
    mask = free.to(rhs.dtype)
    factorisation = problem.risk.factorise(
        (1.0 - mask) + options.polish_regularisation * mask, mask
    )
    if problem.rows is None and problem.leverage is None:
        return _budget_solve(problem, mask, rhs, target, factorisation)
    weight = on.to(rhs.dtype)
    rows = matrix * mask.unsqueeze(1) * weight.unsqueeze(2)
    solved = factorisation.solve(torch.cat([(mask * rhs).unsqueeze(1), rows], dim=1))
    solved = solved * mask.unsqueeze(1)
    x_rhs, columns = solved[:, 0], solved[:, 1:]
    schur = rows @ columns.mT
    inverse = _pseudo_inverse(schur, weight)
    zero = torch.zeros_like(target)
    start = zero if base is None else base * weight

    def bordered(x_r: torch.Tensor, goal: torch.Tensor, first: torch.Tensor):
        miss = rows_times(rows, x_r) - goal * weight
        miss = miss - rows_times(schur, first)
        lam = first + rows_times(inverse, miss)
        return x_r - (lam.unsqueeze(1) @ columns).squeeze(1), lam

    x, lam = bordered(x_rhs, target, start)
    for _ in range(options.max_refinements):
        pulled = (lam.unsqueeze(1) @ rows).squeeze(1)
        residual = mask * (rhs - problem.risk.matvec(x) - pulled)
        row_residual = weight * (target - rows_times(rows, x))
        size = torch.maximum(residual.abs().amax(dim=1), row_residual.abs().amax(dim=1))
        refining = size > options.refinement_tolerance
        if not bool(refining.any()):
            break
        x_r = factorisation.solve(residual.unsqueeze(1)).squeeze(1) * mask
        dx, dlam = bordered(x_r, row_residual, zero)
        # only the problems still above the tolerance move: each stops on its own residual
        x = torch.where(refining.unsqueeze(1), x + dx, x)
        lam = torch.where(refining.unsqueeze(1), lam + dlam, lam)
    return x, lam, factorisation.failed


def _budget_solve(problem: Problem, mask, rhs, target, factorisation):
    """:func:`kkt_solve` with the budget ``1' x = target`` as the only row.

    Its Schur complement is the number ``1' M^-1 1``, so no products with rows are needed.
    """
    options = problem.options
    both = factorisation.solve(torch.stack([mask * rhs, mask], dim=1)) * mask.unsqueeze(1)
    x_rhs, ones = both.unbind(1)
    ones_total = ones.sum(dim=1)
    has_free = ones_total > 0
    safe_total = ones_total.masked_fill(~has_free, 1.0)
    total = target[:, 0]

    def bordered(x_r: torch.Tensor, goal: torch.Tensor):
        nu = ((x_r.sum(dim=1) - goal) / safe_total).masked_fill_(~has_free, 0.0)
        return torch.addcmul(x_r, nu.unsqueeze(1), ones, value=-1.0), nu

    x, nu = bordered(x_rhs, total)
    for _ in range(options.max_refinements):
        residual = mask * (rhs - problem.risk.matvec(x) - nu.unsqueeze(1))
        budget_residual = total - x.sum(dim=1)
        size = torch.maximum(residual.abs().amax(dim=1), budget_residual.abs())
        refining = size > options.refinement_tolerance
        if not bool(refining.any()):
            break
        x_r = factorisation.solve(residual.unsqueeze(1)).squeeze(1) * mask
        dx, dnu = bordered(x_r, budget_residual)
        x = torch.where(refining.unsqueeze(1), x + dx, x)
        nu = torch.where(refining, nu + dnu, nu)
    return x, nu.unsqueeze(1), factorisation.failed


def active_rows(problem: Problem, active: ActiveSet) -> tuple[torch.Tensor, ...]:
    """The rows of ``active``: matrix (batch, m, n), right-hand sides and ``on`` (batch, m).

    Budget and ``A_eq`` rows always, ``A_ub`` rows where held, and the leverage row (each
    free asset's side, each held asset's sign) where the bound holds.
    """
    constraints = problem.constraints
    matrix, rhs = constraints.matrix, constraints.rhs
    on = torch.ones_like(rhs, dtype=torch.bool)
    if active.rows is not None:
        on = torch.cat([on[:, : constraints.n_eq], active.rows], dim=1)
    if problem.leverage is not None:
        assert active.side is not None and active.levered is not None
        side = torch.where(active.free, active.side, torch.sign(active.fixed_value))
        matrix = torch.cat([matrix, side.unsqueeze(1)], dim=1)
        rhs = torch.cat([rhs, problem.leverage.unsqueeze(1)], dim=1)
        on = torch.cat([on, active.levered.unsqueeze(1)], dim=1)
    return matrix, rhs, on
