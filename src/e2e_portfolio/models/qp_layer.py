r"""The mean-variance QP as a differentiable ``torch.nn.Module``.

:class:`MeanVarianceQP` solves, for each problem of a batch,

.. math::

    w^\star(\mu, R) = \arg\min_w\; -\mu^\top w + \gamma\,\lVert R w\rVert^2
        + \kappa\,\lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = 1,\; 0 \le w \le w_{max}

and differentiates :math:`w^\star` with respect to ``mu``, the risk model and ``w_prev``.

The risk model comes in one of two forms:

- ``R`` (batch, k, n) with :math:`\Sigma = R^\top R` (any ``R``; one of the shape
  ``[F'; diag(s)]`` is recognised and handled in factor form);
- ``F`` (batch, n, k) loadings and ``d`` (batch, n) idiosyncratic variances, :math:`\Sigma =
  F F^\top + \mathrm{diag}(d)`: time and memory :math:`O(B n k)`, gradients to ``F`` and
  ``d`` directly, and nothing of size ``n x n`` is ever formed.

``upper`` (batch, n) adds per-asset caps (combined with ``w_max``); a cap of 0 excludes an
asset.

Backends:

- ``"native"`` (default): :mod:`e2e_portfolio.models.qp_native`, a batched interior point
  plus exact, KKT-certified active-set polish in torch, on the inputs' device, with an
  exact implicit-KKT backward pass. Problems it cannot solve raise
  :class:`~e2e_portfolio.exceptions.SolverError` naming their batch indices, or with
  ``on_failure="fallback"`` are re-solved by cvxpy/Clarabel with a warning.
- ``"cvxpylayers"``: the same problem in DPP form through cvxpylayers, solved by Clarabel
  inside diffcp; the reference implementation.
- ``"cvxpy"``: forward only, one cvxpy/Clarabel solve per problem (works without
  cvxpylayers); asking it for a gradient raises.

``gamma``, ``kappa`` and ``w_max`` are fixed when the layer is built: a learnable ``gamma``
multiplying :math:`\lVert Rw\rVert^2` would break DPP.
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
    Settings,
    WarmStart,
)

Backend = Literal["native", "cvxpylayers", "cvxpy"]
BACKENDS: tuple[Backend, ...] = ("native", "cvxpylayers", "cvxpy")
ON_FAILURE: tuple[OnFailure, ...] = ("raise", "fallback")


class MeanVarianceQP(nn.Module):
    """Differentiable long-only mean-variance portfolio layer.

    Parameters
    ----------
    n : int
        Number of assets.
    n_factors : int, optional
        Rows of ``R`` (for ``R = [F'; diag(sqrt d)]`` that is ``k + n``) or columns of ``F``;
        ``None`` infers it from the inputs, otherwise the inputs must match it.
    gamma : float
        Risk aversion, > 0 (required).
    w_max : float, optional
        Per-asset cap; ``None`` for none. Must satisfy ``n * w_max >= 1``.
    kappa : float
        L1 turnover penalty against ``w_prev``, >= 0.
    backend : {"native", "cvxpylayers", "cvxpy"}
        Solver, see the module docstring.
    on_failure : {"raise", "fallback"}
        What the native backend does with problems it cannot solve: raise
        :class:`~e2e_portfolio.exceptions.SolverError` naming them, or re-solve them with
        cvxpy/Clarabel (with a :class:`~e2e_portfolio.models.qp_native.QPFallbackWarning`).
    """

    def __init__(
        self,
        n: int,
        n_factors: int | None = None,
        gamma: float | None = None,
        w_max: float | None = None,
        kappa: float = 0.0,
        backend: Backend = "native",
        *,
        on_failure: OnFailure = "raise",
    ) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer, got {n!r}")
        if n_factors is not None and (
            isinstance(n_factors, bool) or not isinstance(n_factors, int) or n_factors < 1
        ):
            raise ValueError(f"n_factors: expected a positive integer or None, got {n_factors!r}")
        if not (isinstance(gamma, int | float) and gamma > 0 and gamma < float("inf")):
            raise ValueError(f"gamma: expected a finite risk aversion > 0, got {gamma!r}")
        if not (isinstance(kappa, int | float) and 0 <= kappa < float("inf")):
            raise ValueError(f"kappa: expected a finite turnover penalty >= 0, got {kappa!r}")
        if w_max is not None:
            if not (isinstance(w_max, int | float) and 0 < w_max < float("inf")):
                raise ValueError(f"w_max: expected a positive cap or None, got {w_max!r}")
            if n * w_max < 1 - 1e-12:
                raise ValueError(
                    f"w_max: infeasible, expected n * w_max >= 1 so weights can sum to 1, got "
                    f"{n} * {w_max} = {n * w_max:.4g}"
                )
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        if on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure: expected one of {ON_FAILURE}, got {on_failure!r}")
        self.n, self.n_factors = n, n_factors
        self.gamma, self.kappa = float(gamma), float(kappa)
        self.w_max = None if w_max is None else float(w_max)
        self.backend: Backend = backend
        self.on_failure: OnFailure = on_failure
        self._references: dict[int, qp_reference.CvxpyLayerSolver] = {}

    def extra_repr(self) -> str:
        """The settings, for ``print(layer)``."""
        return (
            f"n={self.n}, n_factors={self.n_factors}, gamma={self.gamma}, w_max={self.w_max}, "
            f"kappa={self.kappa}, backend={self.backend!r}, on_failure={self.on_failure!r}"
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
        warm_start: WarmStart | None = None,
    ) -> torch.Tensor:
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
        upper : Tensor, (n,) or (batch, n), optional
            Per-asset caps >= 0 (``inf`` for none), combined with ``w_max``; 0 excludes
            an asset. Their sum (each at most 1) must reach 1 in every problem.
        warm_start : WarmStart, optional
            Native backend: start from the active sets this holder kept from its last solve
            of a batch of the same shape, and keep this solve's (see
            :class:`~e2e_portfolio.models.qp_native.WarmStart`); the other backends ignore it.

        Returns
        -------
        Tensor, (n,) or (batch, n)
            On the device and dtype of ``mu``; batched if any input is batched.
        """
        inputs = LayerInputs.checked(self, mu, R, w_prev, F, d, upper)
        if inputs.batch == 0 or self.n == 1:
            # nothing to solve: an empty batch, or one asset that must hold everything
            weights = inputs.mu * 0.0 + 1.0
        elif self.backend == "native":
            settings = Settings(self.gamma, self.kappa, self.on_failure)
            weights = NativeMeanVarianceFunction.apply(
                inputs.mu,
                inputs.R,
                inputs.F,
                inputs.d,
                inputs.w_prev,
                inputs.caps,
                settings,
                warm_start,
            )
        elif self.backend == "cvxpylayers":
            weights = self._cvxpylayers(inputs)
        else:
            weights = qp_reference.solve_with_cvxpy(
                inputs.mu, inputs.R, inputs.w_prev, self.gamma, None, self.kappa,
                upper=inputs.caps, loadings=inputs.F, idiosyncratic=inputs.d,
            )  # fmt: skip
        weights = weights.to(dtype=mu.dtype)
        return weights if inputs.batched else weights.squeeze(0)

    def _cvxpylayers(self, inputs: LayerInputs) -> torch.Tensor:
        if inputs.upper_given:
            raise ValueError("upper: per-asset caps need backend 'native' or 'cvxpy'")
        root = inputs.R
        if root is None:
            assert inputs.F is not None and inputs.d is not None
            root = torch.cat([inputs.F.transpose(-1, -2), torch.diag_embed(inputs.d.sqrt())], -2)
        k = root.shape[-2]
        if k not in self._references:
            self._references[k] = qp_reference.CvxpyLayerSolver(
                self.n, k, self.gamma, self.w_max, self.kappa
            )
        return self._references[k](inputs.mu, root, inputs.w_prev)
