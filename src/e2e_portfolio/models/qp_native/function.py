"""Autograd glue: forward solves the batch, backward differentiates its KKT conditions.

The forward handles failures per problem.

Failed problems either raise :class:`~e2e_portfolio.exceptions.SolverError` naming their
batch indices and statuses (``on_failure="raise"``) or are re-solved with cvxpy/Clarabel
(``on_failure="fallback"``, with a :class:`QPFallbackWarning`). A re-solved problem's
active set is read off Clarabel's weights and polished exactly; if that polish is
certified its weights are exact, otherwise Clarabel's weights are kept and the backward
differentiates the KKT conditions at the active set they show.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch

from e2e_portfolio.exceptions import SolverError
from e2e_portfolio.models.qp_native.backward import (
    adjoint,
    differentiable_piece,
    factor_gradients,
    mu_gradient,
    root_gradient,
)
from e2e_portfolio.models.qp_native.operators import (
    FactorRisk,
    RiskOperator,
    as_risk_operator,
    factor_operator,
)
from e2e_portfolio.models.qp_native.polish import Verified, polish
from e2e_portfolio.models.qp_native.problem import (
    ActiveSet,
    Problem,
    build_problem,
    make_active_set,
    merge,
)
from e2e_portfolio.models.qp_native.solver import MAX_POLISH_ROUNDS, Solution, solve

OnFailure = Literal["raise", "fallback"]
ACTIVE_TOLERANCE = 1e-7
"""Distance to a bound (in weight) within which a fallback solution's asset counts as held."""


class QPFallbackWarning(UserWarning):
    """Some problems of a batch were re-solved with cvxpy/Clarabel."""


@dataclass(frozen=True)
class Settings:
    """The layer's fixed settings: risk aversion, turnover penalty, failure handling."""

    gamma: float
    kappa: float
    on_failure: OnFailure = "raise"


@dataclass
class WarmStart:
    """The certified active sets of a batch's last solve, to start its next solve from.

    Give the same ``WarmStart`` to the layer each time it solves nearly the same problems
    (a training loop solves the same months every epoch with slightly moved inputs): each
    problem first tries the active set it had last time, and a problem whose try passes the
    KKT certificate skips the interior point. Answers are certified as without it. A batch
    of another shape starts cold and replaces what is held.
    """

    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None
    at_previous: torch.Tensor | None = None
    sign: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    budget_dual: torch.Tensor | None = None

    def hint(self, problem: Problem) -> tuple[ActiveSet, torch.Tensor] | None:
        """The held active sets for ``problem`` (its caps and ``w_prev``), or None."""
        if self.weights is None or self.weights.shape != problem.mu.shape:
            return None
        assert self.lower is not None and self.upper is not None and self.budget_dual is not None
        assert self.at_previous is not None and self.sign is not None
        active = make_active_set(problem, self.weights, self.lower, self.upper,
                                 self.at_previous, self.sign)  # fmt: skip
        return active, self.budget_dual

    def remember(self, weights: torch.Tensor, active: ActiveSet, budget_dual: torch.Tensor) -> None:
        """Hold a solve's certified weights (batch, n), active sets and multipliers."""
        self.lower, self.upper = active.at_lower.clone(), active.at_upper.clone()
        self.at_previous, self.sign = active.at_previous.clone(), active.sign.clone()
        self.weights, self.budget_dual = weights.detach().clone(), budget_dual.clone()


def _clone(solution: Solution) -> tuple[torch.Tensor, ActiveSet]:
    """Weights and active sets copied out of inference mode (for saving to backward)."""
    active = ActiveSet(*(field.clone() for field in solution.active.fields()))
    return solution.weights.clone(), active


def _failure_message(solution: Solution) -> str:
    failures = solution.failures()
    shown = ", ".join(f"{i} ({status})" for i, status in list(failures.items())[:10])
    more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
    return (
        f"the native QP solver failed on {len(failures)} of {len(solution.status)} problems; "
        f"batch index (status): {shown}{more}"
    )


def _fallback(
    problem: Problem,
    solution: Solution,
    inputs: dict[str, torch.Tensor | None],
    caps: torch.Tensor | None,
    settings: Settings,
) -> tuple[torch.Tensor, ActiveSet]:
    from e2e_portfolio.models.qp_reference import solve_with_cvxpy

    weights, active = _clone(solution)
    dual = solution.budget_dual
    failed = solution.failed
    index = failed.nonzero().squeeze(1)
    mu, w_prev = inputs["mu"], inputs["w_prev"]
    assert mu is not None
    pick = lambda t: None if t is None else t[index]  # noqa: E731
    reference = solve_with_cvxpy(
        mu[index],
        pick(inputs["R"]),
        pick(w_prev),
        settings.gamma,
        None,
        settings.kappa,
        upper=pick(caps),
        loadings=pick(inputs["F"]),
        idiosyncratic=pick(inputs["d"]),
    )
    weights[index] = reference
    tol = ACTIVE_TOLERANCE
    lower = weights <= tol
    upper = torch.zeros_like(lower)
    if problem.upper is not None:
        upper = (weights >= problem.upper - tol) & ~lower
    at_previous = torch.zeros_like(lower)
    if problem.w_prev is not None:
        at_previous = ((weights - problem.w_prev).abs() <= tol) & ~lower & ~upper
    guessed = make_active_set(problem, weights, lower, upper, at_previous)
    trial = merge(failed, guessed, active)
    verified = polish(
        problem, trial, dual, Verified(~failed, weights, dual, active), MAX_POLISH_ROUNDS, failed
    )
    exact = verified.solved & failed
    kept = failed & ~exact
    warnings.warn(
        f"{_failure_message(solution)}; re-solved with cvxpy/Clarabel "
        f"({int(exact.sum())} certified exact after polish, {int(kept.sum())} at Clarabel's "
        "tolerance)",
        QPFallbackWarning,
        stacklevel=4,
    )
    final_active = merge(kept, trial, verified.active)
    final_weights = torch.where(kept.unsqueeze(1), weights, verified.weights)
    return final_weights, final_active


class NativeMeanVarianceFunction(torch.autograd.Function):
    """The native layer as an autograd function.

    Inputs are float64 and batched: mu (b, n), either R (b, m, n) or F (b, n, k) and
    d (b, n), w_prev (b, n) or None, caps (b, n) or None (``inf`` for none).
    """

    @staticmethod
    def forward(ctx, mu, R, F, d, w_prev, caps, settings: Settings, warm: WarmStart | None = None):
        """Solve the batch; failed problems raise or fall back (see the module docstring)."""
        raw: RiskOperator = as_risk_operator(R) if R is not None else factor_operator(F, d)
        problem = build_problem(mu, raw, settings.gamma, settings.kappa, w_prev, caps)
        # inference mode skips autograd's per-op bookkeeping (~10% of a small solve)
        with torch.inference_mode():
            solution = solve(problem, None if warm is None else warm.hint(problem))
        if bool(solution.failed.any()):
            if settings.on_failure == "raise":
                raise SolverError(
                    _failure_message(solution),
                    status=",".join(sorted(set(solution.failures().values()))),
                    indices=list(solution.failures()),
                )
            inputs = {"mu": mu, "R": R, "F": F, "d": d, "w_prev": w_prev}
            weights, active = _fallback(problem, solution, inputs, caps, settings)
        else:
            weights, active = _clone(solution)
        if warm is not None:
            warm.remember(weights, active, solution.budget_dual)
        ctx.problem, ctx.raw, ctx.from_root, ctx.active = problem, raw, R is not None, active
        ctx.save_for_backward(weights)
        return weights

    @staticmethod
    def backward(ctx, grad_w):
        """Gradients with respect to mu, R, F, d, w_prev and the caps (None where unused)."""
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
        grads: list[torch.Tensor | None] = [None] * 8
        if needs[0]:
            grads[0] = mu_gradient(problem, adj)
        if needs[1] and ctx.from_root:
            grads[1] = root_gradient(problem, ctx.raw, adj, weights)
        if (needs[2] or needs[3]) and not ctx.from_root:
            assert isinstance(ctx.raw, FactorRisk)
            grads[2], grads[3] = factor_gradients(problem, ctx.raw, adj, weights)
        if needs[4] or needs[5]:
            through_held = adj.through_held(problem, grad_w)
            zero = torch.zeros_like(grad_w)
            if needs[4]:
                grads[4] = torch.where(active.at_previous, through_held, zero)
            if needs[5]:
                grads[5] = torch.where(active.at_upper, through_held, zero)
        return tuple(grads)
