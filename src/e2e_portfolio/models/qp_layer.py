r"""The mean-variance QP as a differentiable ``torch.nn.Module``.

:class:`MeanVarianceQP` solves, for each problem of a batch,

.. math::

    w^\star = \arg\min_w\; -\mu^\top w + \gamma\,w^\top \Sigma w
        + \kappa\,\lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = \text{budget},\; l \le w \le u,\;
    \lVert w\rVert_1 \le \text{leverage},\; A_{eq} w = b_{eq},\; A_{ub} w \le b_{ub}

and differentiates :math:`w^\star` with respect to ``mu``, the risk model, ``w_prev``, the
bounds ``lower`` and ``upper``, and the rows ``A_eq``, ``b_eq``, ``A_ub``, ``b_ub``. The
bounds are ``l = max(lower, w_min)`` and ``u = min(upper, w_max)``: the default is a
long-only, fully invested book; a negative ``w_min`` (or ``lower``) allows shorts,
``leverage`` bounds the gross exposure, ``budget=0`` with shorts is a dollar-neutral book,
sector caps are rows of ``A_ub`` and factor neutrality is ``A_eq = F'``.

The risk model comes in one of two forms:

- ``R`` (batch, k, n) with :math:`\Sigma = R^\top R` (any ``R``; one of the shape
  ``[F'; diag(s)]`` is recognised and handled in factor form);
- ``F`` (batch, n, k) loadings and ``d`` (batch, n) idiosyncratic variances, :math:`\Sigma =
  F F^\top + \mathrm{diag}(d)`: time and memory :math:`O(B n (k + m))` with ``m`` general
  rows, gradients to ``F`` and ``d`` directly, and nothing of size ``n x n`` is ever formed.

Backends:

- ``"native"`` (default): :mod:`e2e_portfolio.models.qp_native`, a batched interior point
  plus exact, KKT-certified active-set polish in torch, on the inputs' device, with an
  exact implicit-KKT backward pass. Problems it cannot solve raise
  :class:`~e2e_portfolio.exceptions.SolverError` naming their batch indices, or with
  ``on_failure="fallback"`` are re-solved by cvxpy/Clarabel with a warning. Problems whose
  constraints admit no weights always raise, with status ``infeasible``.
- ``"cvxpylayers"``: the same problem in DPP form through cvxpylayers, solved by Clarabel
  inside diffcp; the reference implementation.
- ``"cvxpy"``: forward only, one cvxpy/Clarabel solve per problem (works without
  cvxpylayers); asking it for a gradient raises.

``gamma``, ``kappa``, ``w_min``, ``w_max``, ``budget`` and ``leverage`` are fixed when the
layer is built: a learnable ``gamma`` multiplying :math:`\lVert Rw\rVert^2` would break DPP.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from e2e_portfolio.models import qp_reference
from e2e_portfolio.models.qp_inputs import LayerInputs
from e2e_portfolio.models.qp_native import (
    NativeMeanVarianceFunction,
    OnFailure,
    QPInfo,
    Settings,
    SolverOptions,
    WarmStart,
)

Backend = Literal["native", "cvxpylayers", "cvxpy"]
BACKENDS: tuple[Backend, ...] = ("native", "cvxpylayers", "cvxpy")
ON_FAILURE: tuple[OnFailure, ...] = ("raise", "fallback")


def _number(name: str, value: object, rule: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not ok(float(value)):
        raise ValueError(f"{name}: expected {rule}, got {value!r}")
    return float(value)


class MeanVarianceQP(nn.Module):
    """Differentiable mean-variance portfolio layer (see the module docstring).

    Parameters
    ----------
    n : int
        Number of assets.
    gamma : float
        Risk aversion, > 0 (keyword-only, required).
    w_max : float, optional
        Per-asset cap; ``None`` for none.
    w_min : float
        Per-asset floor; 0 is long-only, a negative floor allows shorts (``-inf`` for no
        floor, with a ``leverage`` bound).
    budget : float
        ``sum(w)``; 1 is fully invested, 0 with shorts a dollar-neutral book.
    leverage : float, optional
        Bound on the gross exposure ``sum(|w|)``, at least ``|budget|``; binds only with
        shorts.
    kappa : float
        L1 turnover penalty against ``w_prev``, >= 0.
    backend : {"native", "cvxpylayers", "cvxpy"}
        Solver, see the module docstring.
    on_failure : {"raise", "fallback"}
        What the native backend does with problems it cannot solve: raise
        :class:`~e2e_portfolio.exceptions.SolverError` naming them, or re-solve them with
        cvxpy/Clarabel (with a :class:`~e2e_portfolio.models.qp_native.QPFallbackWarning`).
    options : SolverOptions, optional
        The native solver's tolerances and limits; None for the defaults.

    Examples
    --------
    A 130/30 book, at most 5% per asset, in sector caps of 30%:

    >>> layer = MeanVarianceQP(40, gamma=8.0, w_min=-0.05, w_max=0.05, leverage=1.6)
    >>> w = layer(mu, F=loadings, d=variances, A_ub=sector_rows, b_ub=0.3 * ones)  # doctest: +SKIP
    """

    def __init__(
        self,
        n: int,
        *,
        gamma: float,
        w_max: float | None = None,
        w_min: float = 0.0,
        budget: float = 1.0,
        leverage: float | None = None,
        kappa: float = 0.0,
        backend: Backend = "native",
        on_failure: OnFailure = "raise",
        options: SolverOptions | None = None,
    ) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        inf = float("inf")
        self.gamma = _number("gamma", gamma, "a finite risk aversion > 0", lambda g: 0 < g < inf)
        self.kappa = _number("kappa", kappa, "a finite turnover penalty >= 0",
                             lambda k: 0 <= k < inf)  # fmt: skip
        self.budget = _number("budget", budget, "a finite budget", lambda b: abs(b) < inf)
        self.w_min = _number("w_min", w_min, "a floor below inf (-inf for none)",
                             lambda w: w < inf)  # fmt: skip
        self.w_max = None
        if w_max is not None:
            self.w_max = _number("w_max", w_max, "a finite cap or None", lambda w: abs(w) < inf)
            if self.w_min >= 0 and self.w_max <= 0:
                raise ValueError(f"w_max: expected a positive cap or None, got {w_max!r}")
            if self.w_max < self.w_min:
                raise ValueError(f"w_max: expected at least w_min = {self.w_min}, got {w_max!r}")
        self.leverage = None
        if leverage is not None:
            self.leverage = _number(
                "leverage", leverage, f"a finite gross-exposure bound >= |budget| = "
                f"{abs(self.budget):.4g}", lambda v: abs(self.budget) <= v < inf,
            )  # fmt: skip
        if self.w_min == -inf and self.leverage is None:
            raise ValueError("w_min: expected a finite floor without a leverage bound, got -inf")
        if self.w_min >= 0 and self.budget <= 0:
            raise ValueError(
                f"budget: expected > 0 for a book without shorts (w_min >= 0), got {budget!r}"
            )
        if self.w_max is not None and n * self.w_max < self.budget - 1e-12:
            raise ValueError(
                f"w_max: infeasible, expected n * w_max >= {self.budget:g} so weights can sum "
                f"to the budget, got {n} * {w_max} = {n * self.w_max:.4g}"
            )
        if n * self.w_min > self.budget + 1e-12:
            raise ValueError(
                f"w_min: infeasible, expected n * w_min <= {self.budget:g} so weights can sum "
                f"to the budget, got {n} * {w_min} = {n * self.w_min:.4g}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure: expected one of {ON_FAILURE}, got {on_failure!r}")
        if options is not None and not isinstance(options, SolverOptions):
            raise TypeError(f"options: expected a SolverOptions, got {type(options).__name__}")
        self.n = n
        self.backend: Backend = backend
        self.on_failure: OnFailure = on_failure
        self.options = SolverOptions() if options is None else options
        self._references: dict[tuple, qp_reference.CvxpyLayerSolver] = {}

    def extra_repr(self) -> str:
        """The settings, for ``print(layer)``."""
        return (
            f"n={self.n}, gamma={self.gamma}, w_max={self.w_max}, w_min={self.w_min}, "
            f"budget={self.budget}, leverage={self.leverage}, kappa={self.kappa}, "
            f"backend={self.backend!r}, on_failure={self.on_failure!r}"
        )

    def forward(
        self,
        mu: torch.Tensor,
        R: torch.Tensor | None = None,
        w_prev: torch.Tensor | None = None,
        *,
        F: torch.Tensor | None = None,
        d: torch.Tensor | None = None,
        upper: torch.Tensor | None = None,
        lower: torch.Tensor | None = None,
        A_eq: torch.Tensor | None = None,
        b_eq: torch.Tensor | None = None,
        A_ub: torch.Tensor | None = None,
        b_ub: torch.Tensor | None = None,
        warm_start: WarmStart | None = None,
        return_info: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, QPInfo]:
        """Optimal weights.

        Parameters
        ----------
        mu : Tensor, (n,) or (batch, n)
            Expected returns.
        R : Tensor, (k, n) or (batch, k, n), optional
            Risk root, ``Sigma = R' R``. Give either ``R`` or ``F`` and ``d``.
        w_prev : Tensor, (n,) or (batch, n), optional
            Previous weights; required when ``kappa > 0``.
        F : Tensor, (n, k) or (batch, n, k), optional
            Factor loadings, ``Sigma = F F' + diag(d)``.
        d : Tensor, (n,) or (batch, n), optional
            Idiosyncratic variances, >= 0.
        upper, lower : Tensor, (n,) or (batch, n), optional
            Per-asset caps (``inf`` for none) and floors (``-inf`` for none). Caps combine
            with ``w_max`` as ``min(upper, w_max)``; floors replace the default floor 0 (so a
            negative ``lower`` allows shorts) and combine with any other ``w_min`` as
            ``max(lower, w_min)``. An asset with both bounds 0 is excluded.
        A_eq, b_eq : Tensor, (m, n) or (batch, m, n) and (m,) or (batch, m), optional
            Equality rows ``A_eq w = b_eq`` (e.g. ``A_eq = F'`` for factor neutrality);
            redundant rows are fine.
        A_ub, b_ub : Tensor, (m, n) or (batch, m, n) and (m,) or (batch, m), optional
            Inequality rows ``A_ub w <= b_ub`` (e.g. one row per sector with its cap).
        warm_start : WarmStart, optional
            Native backend: start from the active sets this holder kept from its last solve
            of a batch of the same shape, and keep this solve's (see
            :class:`~e2e_portfolio.models.qp_native.WarmStart`); the other backends ignore it.
        return_info : bool
            Also return a :class:`~e2e_portfolio.models.qp_native.QPInfo` with each
            problem's status, iterations and KKT residual (native backend; the reference
            backends report ``"solved"`` with 0 iterations and a NaN residual).

        Returns
        -------
        Tensor, (n,) or (batch, n)
            On the device and dtype of ``mu``; batched if any input is batched. With
            ``return_info``, the pair ``(weights, info)``.

        Raises
        ------
        SolverError
            Status ``infeasible`` for problems whose constraints admit no weights (with
            their batch indices), or the native solver's status for problems it could not
            solve (with ``on_failure="raise"``).
        """
        inputs = LayerInputs.checked(self, mu, R, w_prev, F, d, upper, lower, A_eq, b_eq,
                                     A_ub, b_ub)  # fmt: skip
        report: list[QPInfo] = []
        if inputs.batch == 0 or (self.n == 1 and inputs.A_eq is None and inputs.A_ub is None):
            # nothing to solve: an empty batch, or one asset that must hold the budget
            weights = inputs.mu * 0.0 + self.budget
            if self.n == 1 and inputs.batch:
                self._check_single(inputs)
        elif self.backend == "native":
            settings = Settings(self.gamma, self.kappa, self.on_failure, self.budget,
                                self.leverage, self.options)  # fmt: skip
            weights = NativeMeanVarianceFunction.apply(
                inputs.mu, inputs.R, inputs.F, inputs.d, inputs.w_prev, inputs.floors,
                inputs.caps, inputs.A_eq, inputs.b_eq, inputs.A_ub, inputs.b_ub, settings,
                warm_start, report if return_info else None,
            )  # fmt: skip
        elif self.backend == "cvxpylayers":
            weights = self._cvxpylayers(inputs)
        else:
            weights = qp_reference.solve_with_cvxpy(
                inputs.mu, inputs.R, inputs.w_prev, self.gamma, None, self.kappa,
                upper=inputs.caps, loadings=inputs.F, idiosyncratic=inputs.d,
                lower=inputs.floors, budget=self.budget, leverage=self.leverage,
                A_eq=inputs.A_eq, b_eq=inputs.b_eq, A_ub=inputs.A_ub, b_ub=inputs.b_ub,
            )  # fmt: skip
        weights = weights.to(dtype=mu.dtype)
        weights = weights if inputs.batched else weights.squeeze(0)
        if not return_info:
            return weights
        if report:
            return weights, report[0]
        batch = inputs.batch
        return weights, QPInfo(
            ("solved",) * batch,
            torch.zeros(batch, dtype=torch.long),
            torch.full((batch,), float("nan"), dtype=torch.float64),
        )

    def _check_single(self, inputs: LayerInputs) -> None:
        """One asset holds the budget: refuse bounds that do not admit it."""
        value = torch.full_like(inputs.mu, self.budget)
        outside = torch.zeros_like(value, dtype=torch.bool)
        if inputs.caps is not None:
            outside |= value > inputs.caps
        if inputs.floors is not None:
            outside |= value < inputs.floors
        if bool(outside.any()):
            from e2e_portfolio.exceptions import SolverError

            bad = outside.any(dim=1).nonzero().squeeze(1).tolist()
            raise SolverError(
                f"infeasible problems: one asset must hold the budget {self.budget}, outside "
                f"its bounds; batch index: {bad[:10]}",
                status="infeasible",
                indices=bad,
            )

    def _cvxpylayers(self, inputs: LayerInputs) -> torch.Tensor:
        root = inputs.R
        if root is None:
            assert inputs.F is not None and inputs.d is not None
            root = torch.cat([inputs.F.transpose(-1, -2), torch.diag_embed(inputs.d.sqrt())], -2)
        k = root.shape[-2]
        m_eq = 0 if inputs.A_eq is None else inputs.A_eq.shape[1]
        m_ub = 0 if inputs.A_ub is None else inputs.A_ub.shape[1]
        key = (k, inputs.caps is not None and inputs.upper_given, inputs.floors is not None,
               m_eq, m_ub)  # fmt: skip
        if key not in self._references:
            self._references[key] = qp_reference.CvxpyLayerSolver(
                self.n, k, self.gamma, None if inputs.upper_given else self.w_max, self.kappa,
                per_asset_upper=key[1], lower=key[2], budget=self.budget,
                leverage=self.leverage, m_eq=m_eq, m_ub=m_ub,
                tolerance=self.options.cvxpylayers_tolerance,
            )  # fmt: skip
        return self._references[key](
            inputs.mu, root, inputs.w_prev,
            upper=inputs.caps if key[1] else None, lower=inputs.floors,
            A_eq=inputs.A_eq, b_eq=inputs.b_eq, A_ub=inputs.A_ub, b_ub=inputs.b_ub,
        )  # fmt: skip
