"""Reference solvers of the mean-variance QP: cvxpylayers (differentiable) and cvxpy (forward).

Both build the same DPP problem (:func:`build_problem`); every parameter enters affinely, so
cvxpylayers can differentiate it. cvxpylayers runs diffcp with Clarabel: diffcp's default SCS
leaves constraint violations around 1e-4, Clarabel about 1e-10.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import torch

from e2e_portfolio.exceptions import SolverError

OK_STATUSES = {cp.OPTIMAL}


def build_problem(
    n: int,
    n_factors: int,
    gamma: float,
    w_max: float | None,
    kappa: float,
    *,
    per_asset_upper: bool = False,
    lower: bool = False,
    budget: float = 1.0,
    leverage: float | None = None,
    m_eq: int = 0,
    m_ub: int = 0,
) -> tuple[cp.Problem, list[cp.Parameter], cp.Variable]:
    """The DPP problem; returns it, its parameters and the weights.

    Parameters, in order: ``mu``, ``R``, then as present ``w_prev`` (``kappa > 0``),
    ``upper`` (``per_asset_upper``), ``lower``, ``A_eq``, ``b_eq``, ``A_ub``, ``b_ub``.
    Without ``lower`` the floor is 0.
    """
    w = cp.Variable(n, name="w")
    mu = cp.Parameter(n, name="mu")
    risk = cp.Parameter((n_factors, n), name="R")
    objective = -mu @ w + gamma * cp.sum_squares(risk @ w)
    constraints = [cp.sum(w) == budget]
    parameters = [mu, risk]
    if kappa > 0:
        w_prev = cp.Parameter(n, name="w_prev")
        objective = objective + kappa * cp.norm1(w - w_prev)
        parameters.append(w_prev)
    if w_max is not None:
        constraints.append(w <= w_max)
    if per_asset_upper:
        upper = cp.Parameter(n, name="upper")
        constraints.append(w <= upper)
        parameters.append(upper)
    if lower:
        floor = cp.Parameter(n, name="lower")
        constraints.append(w >= floor)
        parameters.append(floor)
    else:
        constraints.append(w >= 0)
    if leverage is not None:
        constraints.append(cp.norm1(w) <= leverage)
    for m, name, equality in ((m_eq, "eq", True), (m_ub, "ub", False)):
        if m:
            matrix = cp.Parameter((m, n), name=f"A_{name}")
            rhs = cp.Parameter(m, name=f"b_{name}")
            constraints.append(matrix @ w == rhs if equality else matrix @ w <= rhs)
            parameters.extend([matrix, rhs])
    problem = cp.Problem(cp.Minimize(objective), constraints)
    if not problem.is_dpp():
        raise AssertionError("the mean-variance problem must be DPP")
    return problem, parameters, w


class CvxpyLayerSolver:
    """cvxpylayers' ``CvxpyLayer`` of :func:`build_problem`, with Clarabel inside diffcp."""

    def __init__(
        self,
        n: int,
        n_factors: int,
        gamma: float,
        w_max: float | None,
        kappa: float,
        *,
        tolerance: float = 1e-8,
        **forms,
    ) -> None:
        try:
            from cvxpylayers.torch import CvxpyLayer
        except ImportError as exc:
            raise ImportError(
                "backend 'cvxpylayers' needs cvxpylayers: pip install 'e2e-portfolio[layers]'"
            ) from exc
        problem, parameters, w = build_problem(n, n_factors, gamma, w_max, kappa, **forms)
        self.bound = abs(forms.get("budget", 1.0)) if forms.get("leverage") is None else None
        self.leverage = forms.get("leverage")
        self.layer = CvxpyLayer(problem, parameters=parameters, variables=[w])
        self.solver_args = {"solve_method": "Clarabel", "tol_gap_abs": tolerance,
                            "tol_gap_rel": tolerance, "tol_feas": tolerance}  # fmt: skip

    def __call__(
        self,
        mu: torch.Tensor,
        risk: torch.Tensor,
        w_prev: torch.Tensor | None,
        *,
        upper: torch.Tensor | None = None,
        lower: torch.Tensor | None = None,
        A_eq: torch.Tensor | None = None,
        b_eq: torch.Tensor | None = None,
        A_ub: torch.Tensor | None = None,
        b_ub: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weights (batch, n) from cvxpylayers; its failures raise :class:`SolverError`.

        Infinite bounds become finite ones that cannot bind (parameters must be finite).
        """
        if self.leverage is not None:
            reach = self.leverage
        else:
            assert self.bound is not None
            shorts = 0.0 if lower is None else float((-lower).clamp(min=0).sum(1).max())
            reach = self.bound + shorts
        finite = 2.0 * reach + 1.0
        inputs = [mu, risk]
        upper = None if upper is None else upper.clamp(max=finite)
        lower = None if lower is None else lower.clamp(min=-finite)
        for tensor in (w_prev, upper, lower, A_eq, b_eq, A_ub, b_ub):
            if tensor is not None:
                inputs.append(tensor)
        try:
            (weights,) = self.layer(*inputs, solver_args=self.solver_args)
        except Exception as exc:  # diffcp raises SolverError or plain exceptions
            raise SolverError(f"cvxpylayers failed: {exc}", status=type(exc).__name__) from exc
        return weights


def solve_with_cvxpy(
    mu: torch.Tensor,
    risk: torch.Tensor | None,
    w_prev: torch.Tensor | None,
    gamma: float,
    w_max: float | None,
    kappa: float,
    tolerance: float = 1e-10,
    *,
    upper: torch.Tensor | None = None,
    loadings: torch.Tensor | None = None,
    idiosyncratic: torch.Tensor | None = None,
    lower: torch.Tensor | None = None,
    budget: float = 1.0,
    leverage: float | None = None,
    A_eq: torch.Tensor | None = None,
    b_eq: torch.Tensor | None = None,
    A_ub: torch.Tensor | None = None,
    b_ub: torch.Tensor | None = None,
) -> torch.Tensor:
    """Solve each problem of the batch with cvxpy and Clarabel; forward only.

    The risk model is either ``risk`` (batch, m, n) or ``loadings`` (batch, n, k) and
    ``idiosyncratic`` (batch, n); ``upper`` and ``lower`` (batch, n) hold per-asset bounds
    (``inf``/``-inf`` for none; ``lower`` None is 0) on top of ``w_max``; ``A_eq``, ``b_eq``,
    ``A_ub``, ``b_ub`` are batched rows. Each problem is built with its data as constants
    (no parameters), which keeps large ``R`` cheap to canonicalise. The result carries no
    gradient: if an input requires one, calling ``backward`` through the result raises a
    clear error.
    """
    rows = []
    for i in range(mu.shape[0]):
        prev = None if w_prev is None else _numpy(w_prev[i])
        if risk is not None:
            model: np.ndarray | tuple[np.ndarray, np.ndarray] = _numpy(risk[i])
        else:
            assert loadings is not None and idiosyncratic is not None
            model = (_numpy(loadings[i]), _numpy(idiosyncratic[i]))
        caps = _caps(mu.shape[1], w_max, None if upper is None else _numpy(upper[i]))
        extra = Constraints(
            lower=None if lower is None else _numpy(lower[i]),
            budget=budget,
            leverage=leverage,
            equalities=None if A_eq is None else (_numpy(A_eq[i]), _numpy(b_eq[i])),  # type: ignore[index]
            inequalities=None if A_ub is None else (_numpy(A_ub[i]), _numpy(b_ub[i])),  # type: ignore[index]
        )
        problem, w = _constant_problem(_numpy(mu[i]), model, prev, gamma, caps, kappa, extra)
        try:
            problem.solve(
                solver=cp.CLARABEL,
                tol_gap_abs=tolerance,
                tol_gap_rel=tolerance,
                tol_feas=tolerance,
                tol_ktratio=tolerance,
            )
        except cp.SolverError as exc:
            raise SolverError(
                f"cvxpy/Clarabel failed on problem {i}: {exc}", "solver_error"
            ) from exc
        if problem.status not in OK_STATUSES:
            raise SolverError(f"cvxpy/Clarabel did not solve problem {i}", status=problem.status)
        rows.append(np.asarray(w.value, dtype=np.float64))
    weights = torch.as_tensor(np.stack(rows), dtype=mu.dtype, device=mu.device)
    inputs = (mu, risk, w_prev, loadings, idiosyncratic, upper, lower, A_eq, b_eq, A_ub, b_ub)
    needing = [t for t in inputs if t is not None and t.requires_grad]
    if needing:
        return _NoGradient.apply(weights, needing[0])
    return weights


@dataclass(frozen=True)
class Constraints:
    """The constraints beyond the long-only simplex, for one problem (numpy)."""

    lower: np.ndarray | None = None
    budget: float = 1.0
    leverage: float | None = None
    equalities: tuple[np.ndarray, np.ndarray] | None = None
    inequalities: tuple[np.ndarray, np.ndarray] | None = None


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.float64)


def _caps(n: int, w_max: float | None, upper: np.ndarray | None) -> np.ndarray | None:
    """Per-asset caps from a scalar and a vector (``inf`` for none); None when no cap."""
    caps = np.full(n, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
    if w_max is not None:
        caps = np.minimum(caps, w_max)
    return caps if np.isfinite(caps).any() else None


def _constant_problem(
    mu: np.ndarray,
    risk: np.ndarray | tuple[np.ndarray, np.ndarray],
    w_prev: np.ndarray | None,
    gamma: float,
    caps: np.ndarray | None,
    kappa: float,
    extra: Constraints | None = None,
) -> tuple[cp.Problem, cp.Variable]:
    extra = Constraints() if extra is None else extra
    w = cp.Variable(mu.shape[0], name="w")
    if isinstance(risk, tuple):  # F (n, k), d (n,): never forms the (k + n) x n root
        loadings, idiosyncratic = risk
        variance = cp.sum_squares(loadings.T @ w) + cp.sum(cp.multiply(idiosyncratic, w**2))
    else:
        variance = cp.sum_squares(risk @ w)
    objective = -mu @ w + gamma * variance
    if kappa > 0 and w_prev is not None:
        objective = objective + kappa * cp.norm1(w - w_prev)
    constraints = [cp.sum(w) == extra.budget]
    if extra.lower is None:
        constraints.append(w >= 0)
    else:
        finite = np.isfinite(extra.lower)
        if finite.any():
            constraints.append(w[np.flatnonzero(finite)] >= extra.lower[finite])
    if caps is not None:
        finite = np.isfinite(caps)
        constraints.append(w[np.flatnonzero(finite)] <= caps[finite])
    if extra.leverage is not None:
        constraints.append(cp.norm1(w) <= extra.leverage)
    if extra.equalities is not None:
        constraints.append(extra.equalities[0] @ w == extra.equalities[1])
    if extra.inequalities is not None:
        constraints.append(extra.inequalities[0] @ w <= extra.inequalities[1])
    return cp.Problem(cp.Minimize(objective), constraints), w


class _NoGradient(torch.autograd.Function):
    """Passes values through; its backward explains that this backend has no gradients."""

    @staticmethod
    def forward(ctx, weights, anchor):
        return weights.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError(
            "backend 'cvxpy' solves the forward problem only; use backend='native' or "
            "'cvxpylayers' for gradients"
        )
