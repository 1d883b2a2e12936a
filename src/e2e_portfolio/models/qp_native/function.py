"""Autograd glue: forward solves the batch, backward differentiates its KKT conditions.

The forward handles failures per problem.

Failed problems either raise :class:`~e2e_portfolio.exceptions.SolverError` naming their
batch indices and statuses (``on_failure="raise"``) or are re-solved with cvxpy/Clarabel
(``on_failure="fallback"``, with a :class:`QPFallbackWarning`). A re-solved problem's
active set is read off Clarabel's weights and polished exactly; if that polish is
certified its weights are exact, otherwise Clarabel's weights are kept and the backward
differentiates the KKT conditions at the active set they show. A failed problem whose
constraints admit no weights at all (:mod:`.feasibility`) is reported as ``infeasible`` and
always raises: there are no weights to fall back to.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Literal

import torch

from e2e_portfolio.exceptions import SolverError
from e2e_portfolio.models.qp_native.backward import (
    adjoint,
    differentiable_piece,
    factor_gradients,
    mu_gradient,
    root_gradient,
    row_gradients,
)
from e2e_portfolio.models.qp_native.certificate import certify
from e2e_portfolio.models.qp_native.operators import (
    FactorRisk,
    RiskOperator,
    as_risk_operator,
    factor_operator,
)
from e2e_portfolio.models.qp_native.options import DEFAULT_OPTIONS, SolverOptions
from e2e_portfolio.models.qp_native.polish import Verified, polish
from e2e_portfolio.models.qp_native.problem import (
    ActiveSet,
    Problem,
    build_problem,
    make_active_set,
    merge,
    rows_times,
)
from e2e_portfolio.models.qp_native.solver import INFEASIBLE, STATUSES, Solution, solve

OnFailure = Literal["raise", "fallback"]
ACTIVE_TOLERANCE = 1e-7
"""Distance to a bound (in weight) within which a fallback solution's asset counts as held."""


class QPFallbackWarning(UserWarning):
    """Some problems of a batch were re-solved with cvxpy/Clarabel."""


@dataclass(frozen=True)
class Settings:
    """The layer's fixed settings.

    Risk aversion, turnover penalty, failure handling, budget, leverage and solver options.
    """

    gamma: float
    kappa: float
    on_failure: OnFailure = "raise"
    budget: float = 1.0
    leverage: float | None = None
    options: SolverOptions = DEFAULT_OPTIONS


@dataclass(frozen=True)
class QPInfo:
    """Per-problem diagnostics of one solve (``layer(..., return_info=True)``).

    ``status`` names each problem's outcome: ``"solved"``, ``"fallback"`` for a problem the
    native solver failed on that cvxpy/Clarabel re-solved and the polish then certified exact,
    ``"fallback_inexact"`` where Clarabel's weights were kept; ``iterations`` the
    interior-point iterations it took (0 when a warm start certified it at once) and
    ``kkt_residual`` the largest KKT residual of the returned weights on the unit scale of
    :mod:`~e2e_portfolio.models.qp_native.problem` (at most ``options.kkt_tolerance`` for a
    certified answer).
    """

    status: tuple[str, ...]
    iterations: torch.Tensor
    """(batch,) int"""
    kkt_residual: torch.Tensor
    """(batch,) float64"""

    @property
    def solved(self) -> torch.Tensor:
        """(batch,) bool: certified exact (``"solved"`` or ``"fallback"``)."""
        return torch.tensor([s in ("solved", "fallback") for s in self.status], dtype=torch.bool)


@dataclass
class WarmStart:
    """The certified active sets of a batch's last solve, to start its next solve from.

    Give the same ``WarmStart`` to the layer each time it solves nearly the same problems
    (a training loop solves the same months every epoch with slightly moved inputs): each
    problem first tries the active set it had last time, and a problem whose try passes the
    KKT certificate skips the interior point. Answers are certified as without it. A batch
    of another shape starts cold and replaces what is held.
    """

    active: ActiveSet | None = None
    weights: torch.Tensor | None = None
    duals: torch.Tensor | None = None

    def hint(self, problem: Problem) -> tuple[ActiveSet, torch.Tensor] | None:
        """The held active sets for ``problem`` (its bounds and ``w_prev``), or None."""
        if self.weights is None or self.weights.shape != problem.mu.shape:
            return None
        active, duals = self.active, self.duals
        assert active is not None and duals is not None
        count = problem.constraints.count + (problem.leverage is not None)
        n_ub = problem.constraints.n_ub
        if duals.shape[1] != count or (0 if active.rows is None else active.rows.shape[1]) != n_ub:
            return None
        if (active.levered is None) != (problem.leverage is None):
            return None
        hinted = make_active_set(problem, self.weights, active.at_lower, active.at_upper,
                                 active.at_previous, active.sign, at_zero=active.at_zero,
                                 side=active.side, rows=active.rows,
                                 levered=active.levered)  # fmt: skip
        return hinted, duals

    def remember(self, weights: torch.Tensor, active: ActiveSet, duals: torch.Tensor) -> None:
        """Hold a solve's certified weights (batch, n), active sets and multipliers."""
        self.active = active.clone()
        self.weights, self.duals = weights.detach().clone(), duals.clone()


def _failure_message(failures: dict[int, str], batch: int) -> str:
    shown = ", ".join(f"{i} ({status})" for i, status in list(failures.items())[:10])
    more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
    return (
        f"the native QP solver failed on {len(failures)} of {batch} problems; "
        f"batch index (status): {shown}{more}"
    )


def _numpy(tensor: torch.Tensor | None, i: int):
    return None if tensor is None else tensor[i].detach().cpu().numpy().astype("float64")


def _mark_infeasible(problem: Problem, solution: Solution, inputs: dict, settings: Settings):
    """The solution with the failed problems whose constraints admit no weights marked."""
    from e2e_portfolio.models.qp_native.feasibility import feasible

    if problem.lower is None and problem.rows is None:
        return solution  # long-only simplex, checked feasible before solving
    status = solution.status.clone()
    for i in solution.failed.nonzero().squeeze(1).tolist():
        n = problem.mu.shape[1]
        lower = _numpy(inputs["lower"], i)
        upper = _numpy(inputs["upper"], i)
        eq = (
            None
            if inputs["A_eq"] is None
            else (_numpy(inputs["A_eq"], i), _numpy(inputs["b_eq"], i))
        )
        ub = (
            None
            if inputs["A_ub"] is None
            else (_numpy(inputs["A_ub"], i), _numpy(inputs["b_ub"], i))
        )
        ok = feasible(
            settings.budget,
            lower if lower is not None else torch.zeros(n).numpy(),
            upper if upper is not None else torch.full((n,), torch.inf).numpy(),
            settings.leverage if problem.leverage is not None else None,
            eq,
            ub,
        )
        if not ok:
            status[i] = INFEASIBLE
    return replace(solution, status=status)


def _fallback(
    problem: Problem, solution: Solution, inputs: dict, settings: Settings
) -> tuple[torch.Tensor, ActiveSet, torch.Tensor, torch.Tensor]:
    """Re-solve the failed problems with cvxpy/Clarabel.

    Returns weights, active sets, duals and which problems kept Clarabel's weights (not
    certified exact).
    """
    from e2e_portfolio.models.qp_reference import solve_with_cvxpy

    weights = solution.weights.clone()
    active = solution.active.clone()
    duals = solution.duals.clone()
    failed = solution.failed
    index = failed.nonzero().squeeze(1)
    pick = lambda t: None if t is None else t[index]  # noqa: E731
    reference = solve_with_cvxpy(
        inputs["mu"][index], pick(inputs["R"]), pick(inputs["w_prev"]), settings.gamma, None,
        settings.kappa, upper=pick(inputs["upper"]), loadings=pick(inputs["F"]),
        idiosyncratic=pick(inputs["d"]), lower=pick(inputs["lower"]), budget=settings.budget,
        leverage=settings.leverage, A_eq=pick(inputs["A_eq"]), b_eq=pick(inputs["b_eq"]),
        A_ub=pick(inputs["A_ub"]), b_ub=pick(inputs["b_ub"]),
    )  # fmt: skip
    weights[index] = reference
    tol = ACTIVE_TOLERANCE
    lower = (weights <= problem.floor + tol) & torch.isfinite(problem.floor)
    upper = torch.zeros_like(lower)
    if problem.upper is not None:
        upper = (weights >= problem.upper - tol) & ~lower
    at_previous = torch.zeros_like(lower)
    if problem.w_prev is not None:
        at_previous = ((weights - problem.w_prev).abs() <= tol) & ~lower & ~upper
    at_zero = levered = rows = None
    if problem.leverage is not None:
        at_zero = (weights.abs() <= tol) & ~lower & ~upper & ~at_previous
        levered = weights.abs().sum(dim=1) >= problem.leverage - tol
    constraints = problem.constraints
    if constraints.n_ub:
        values = rows_times(constraints.matrix, weights) - constraints.rhs
        rows = values[:, constraints.n_eq :] >= -tol
    guessed = make_active_set(problem, weights, lower, upper, at_previous, at_zero=at_zero,
                              rows=rows, levered=levered)  # fmt: skip
    trial = merge(failed, guessed, active)
    start = Verified(~failed, weights, duals, active)
    verified = polish(problem, trial, duals, start, problem.options.max_polish_rounds, failed)
    exact = verified.solved & failed
    kept = failed & ~exact
    warnings.warn(
        f"{_failure_message(solution.failures(), len(solution.status))}; re-solved with "
        f"cvxpy/Clarabel ({int(exact.sum())} certified exact after polish, {int(kept.sum())} "
        "at Clarabel's tolerance)",
        QPFallbackWarning,
        stacklevel=4,
    )
    final_active = merge(kept, trial, verified.active)
    final_weights = torch.where(kept.unsqueeze(1), weights, verified.weights)
    return final_weights, final_active, verified.duals, kept


def _info(problem: Problem, solution: Solution, weights, active, duals, fallback) -> QPInfo:
    """Statuses, iterations and KKT residuals of the returned weights."""
    with torch.inference_mode():
        residual = certify(problem, weights, duals, active).residual
    names = []
    for i, code in enumerate(solution.status.tolist()):
        if code == 0:
            names.append("solved")
        elif fallback is not None and bool(fallback[i] >= 0):
            names.append("fallback_inexact" if bool(fallback[i]) else "fallback")
        else:
            names.append(STATUSES[code])
    iterations = solution.problem_iterations
    if iterations is None:
        iterations = torch.zeros_like(solution.status)
    return QPInfo(tuple(names), iterations.clone(), residual.clone())


class NativeMeanVarianceFunction(torch.autograd.Function):
    """The native layer as an autograd function.

    Inputs are float64 and batched: mu (b, n), either R (b, m, n) or F (b, n, k) and
    d (b, n), w_prev (b, n) or None, lower and upper (b, n) or None (``-inf``/``inf`` for
    none), A_eq (b, m_eq, n) and b_eq (b, m_eq), A_ub (b, m_ub, n) and b_ub (b, m_ub) or
    None. ``report``: a list the forward appends its :class:`QPInfo` to, or None.
    """

    @staticmethod
    def forward(ctx, mu, R, F, d, w_prev, lower, upper, A_eq, b_eq, A_ub, b_ub,
                settings: Settings, warm: WarmStart | None = None,
                report: list | None = None):  # fmt: skip
        """Solve the batch; failed problems raise or fall back (see the module docstring)."""
        raw: RiskOperator = as_risk_operator(R) if R is not None else factor_operator(F, d)
        problem = build_problem(
            mu, raw, settings.gamma, settings.kappa, w_prev, upper, lower=lower,
            budget=settings.budget, leverage=settings.leverage,
            equalities=None if A_eq is None else (A_eq, b_eq),
            inequalities=None if A_ub is None else (A_ub, b_ub), options=settings.options,
        )  # fmt: skip
        # inference mode skips autograd's per-op bookkeeping (~10% of a small solve)
        with torch.inference_mode():
            solution = solve(problem, None if warm is None else warm.hint(problem))
        inputs = {
            "mu": mu, "R": R, "F": F, "d": d, "w_prev": w_prev, "lower": lower, "upper": upper,
            "A_eq": A_eq, "b_eq": b_eq, "A_ub": A_ub, "b_ub": b_ub,
        }  # fmt: skip
        fallback = None
        if bool(solution.failed.any()):
            solution = _mark_infeasible(problem, solution, inputs, settings)
            failures = solution.failures()
            infeasible = [i for i, status in failures.items() if status == "infeasible"]
            if infeasible or settings.on_failure == "raise":
                message = _failure_message(failures, len(solution.status))
                if infeasible:
                    message = (
                        f"infeasible problems: {len(infeasible)} of {len(solution.status)} "
                        "admit no weights (checked by a linear program); "
                        + message.split("; ", 1)[1]
                    )
                raise SolverError(
                    message,
                    status=",".join(sorted(set(failures.values()))),
                    indices=list(failures),
                )
            weights, active, duals, kept = _fallback(problem, solution, inputs, settings)
            fallback = torch.where(solution.failed, kept.long(), -1)
        else:
            weights, active, duals = (
                solution.weights.clone(),
                solution.active.clone(),
                solution.duals.clone(),
            )
        if warm is not None:
            warm.remember(weights, active, duals)
        if report is not None:
            report.append(_info(problem, solution, weights, active, duals, fallback))
        ctx.problem, ctx.raw, ctx.from_root, ctx.active = problem, raw, R is not None, active
        ctx.duals = duals
        ctx.save_for_backward(weights)
        return weights

    @staticmethod
    def backward(ctx, grad_w):
        """Gradients with respect to every tensor input (None where unused)."""
        if torch.is_grad_enabled():
            raise RuntimeError(
                "the native QP layer's backward is not itself differentiable: double backward "
                "(create_graph=True) is unsupported; use backend='cvxpylayers' for it"
            )
        (weights,) = ctx.saved_tensors
        problem: Problem = ctx.problem
        # the piece whose derivative is returned: only the backward needs it
        active = differentiable_piece(problem, ctx.active, weights)
        adj = adjoint(problem, active, grad_w)
        needs = ctx.needs_input_grad
        grads: list[torch.Tensor | None] = [None] * 14
        if needs[0]:
            grads[0] = mu_gradient(problem, adj)
        if needs[1] and ctx.from_root:
            grads[1] = root_gradient(problem, ctx.raw, adj, weights)
        if (needs[2] or needs[3]) and not ctx.from_root:
            assert isinstance(ctx.raw, FactorRisk)
            grads[2], grads[3] = factor_gradients(problem, ctx.raw, adj, weights)
        if needs[4] or needs[5] or needs[6]:
            through_held = adj.through_held(problem, grad_w)
            zero = torch.zeros_like(grad_w)
            floor = active.at_lower
            if problem.excluded is not None:
                floor = floor & ~problem.excluded
            for slot, held in ((4, active.at_previous), (5, floor), (6, active.at_upper)):
                if needs[slot]:
                    grads[slot] = torch.where(held, through_held, zero)
        if any(needs[7:11]):
            matrix, rhs = row_gradients(problem, adj, ctx.duals, weights)
            n_eq = problem.constraints.n_eq
            parts = (matrix[:, 1:n_eq], rhs[:, 1:n_eq], matrix[:, n_eq:], rhs[:, n_eq:])
            for slot, part in enumerate(parts, start=7):
                grads[slot] = part if needs[slot] else None
        return tuple(grads)
