r"""The mean-variance QP as a differentiable ``torch.nn.Module``.

:class:`MeanVarianceQP` solves, for each problem of a batch,

.. math::

    w^\star(\mu, R) = \arg\min_w\; -\mu^\top w + \gamma\,\lVert R w\rVert^2
        + \kappa\,\lVert w - w_{prev}\rVert_1
    \quad\text{s.t.}\quad \mathbf 1^\top w = 1,\; 0 \le w \le w_{max}

and differentiates :math:`w^\star` with respect to ``mu``, ``R`` and ``w_prev``.

Backends:

- ``"native"`` (default): :mod:`e2e_portfolio.models.qp_native`, a batched interior point
  plus exact active-set polish in torch, on the inputs' device, with an exact implicit-KKT
  backward pass.
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
from e2e_portfolio.models.qp_native import NativeMeanVarianceFunction

Backend = Literal["native", "cvxpylayers", "cvxpy"]
BACKENDS: tuple[Backend, ...] = ("native", "cvxpylayers", "cvxpy")


class MeanVarianceQP(nn.Module):
    """Differentiable long-only mean-variance portfolio layer.

    Parameters
    ----------
    n : int
        Number of assets.
    n_factors : int
        Number of rows of ``R`` (for ``R = [F'; diag(sqrt d)]`` that is ``k + n``).
    gamma : float
        Risk aversion, > 0.
    w_max : float, optional
        Per-asset cap; ``None`` for none. Must satisfy ``n * w_max >= 1``.
    kappa : float
        L1 turnover penalty against ``w_prev``, >= 0.
    backend : {"native", "cvxpylayers", "cvxpy"}
        Solver, see the module docstring.
    """

    def __init__(
        self,
        n: int,
        n_factors: int,
        gamma: float,
        w_max: float | None = None,
        kappa: float = 0.0,
        backend: Backend = "native",
    ) -> None:
        super().__init__()
        for argument, value in (("n", n), ("n_factors", n_factors)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{argument}: expected a positive integer, got {value!r}")
        if n < 2:
            raise ValueError(f"n: expected at least 2 assets, got {n}")
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
        self.n, self.n_factors = n, n_factors
        self.gamma, self.kappa = float(gamma), float(kappa)
        self.w_max = None if w_max is None else float(w_max)
        self.backend = backend
        self._reference = (
            qp_reference.CvxpyLayerSolver(n, n_factors, self.gamma, self.w_max, self.kappa)
            if backend == "cvxpylayers"
            else None
        )

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, n_factors={self.n_factors}, gamma={self.gamma}, w_max={self.w_max}, "
            f"kappa={self.kappa}, backend={self.backend!r}"
        )

    def forward(
        self, mu: torch.Tensor, R: torch.Tensor, w_prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Optimal weights.

        Parameters
        ----------
        mu : Tensor, (n,) or (batch, n)
            Expected returns.
        R : Tensor, (n_factors, n) or (batch, n_factors, n)
            Risk factor matrix, ``Sigma = R' R``.
        w_prev : Tensor, (n,) or (batch, n), optional
            Previous weights; required when ``kappa > 0``.

        Returns
        -------
        Tensor, (n,) or (batch, n)
            On the device and dtype of ``mu``; batched if any input is batched.
        """
        mu_b, risk_b, prev_b, batched = self._validate(mu, R, w_prev)
        if self.backend == "native":
            weights = NativeMeanVarianceFunction.apply(
                mu_b, risk_b, prev_b, self.gamma, self.w_max, self.kappa
            )
        elif self.backend == "cvxpylayers":
            assert self._reference is not None
            weights = self._reference(mu_b, risk_b, prev_b)
        else:
            weights = qp_reference.solve_with_cvxpy(
                mu_b, risk_b, prev_b, self.gamma, self.w_max, self.kappa
            )
        weights = weights.to(dtype=mu.dtype)
        return weights if batched else weights.squeeze(0)

    def _validate(
        self, mu: torch.Tensor, R: torch.Tensor, w_prev: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
        """Check types, shapes and values; return float64 tensors with a common batch."""
        inputs = {"mu": mu, "R": R} if w_prev is None else {"mu": mu, "R": R, "w_prev": w_prev}
        for name, tensor in inputs.items():
            if not isinstance(tensor, torch.Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
            if not tensor.is_floating_point():
                raise TypeError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
            if tensor.device != mu.device:
                raise ValueError(f"{name}: expected device {mu.device}, got {tensor.device}")
            if not _all_finite(tensor):
                raise ValueError(f"{name}: expected finite values, got NaN or inf")
        n, k = self.n, self.n_factors
        if mu.ndim not in (1, 2) or mu.shape[-1] != n:
            raise ValueError(f"mu: expected shape ({n},) or (batch, {n}), got {tuple(mu.shape)}")
        if R.ndim not in (2, 3) or tuple(R.shape[-2:]) != (k, n):
            raise ValueError(
                f"R: expected shape ({k}, {n}) or (batch, {k}, {n}), got {tuple(R.shape)}"
            )
        if self.kappa > 0 and w_prev is None:
            raise ValueError(f"w_prev: required when kappa > 0 (kappa={self.kappa}), got None")
        if w_prev is not None and (w_prev.ndim not in (1, 2) or w_prev.shape[-1] != n):
            raise ValueError(
                f"w_prev: expected shape ({n},) or (batch, {n}), got {tuple(w_prev.shape)}"
            )
        sizes = {
            t.shape[0]
            for t, flat in ((mu, 1), (R, 2), (w_prev, 1))
            if t is not None and t.ndim > flat
        }
        if len(sizes) > 1:
            raise ValueError(f"mu, R, w_prev: expected one batch size, got {sorted(sizes)}")
        batched = bool(sizes)
        batch = sizes.pop() if sizes else 1
        mu_b = mu.to(torch.float64).expand(batch, n)
        risk_b = R.to(torch.float64).expand(batch, k, n)
        prev_b = None
        if self.kappa > 0 and w_prev is not None:
            prev_b = w_prev.to(torch.float64).expand(batch, n)
        return mu_b, risk_b, prev_b, batched


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry is finite; one reduction instead of three elementwise passes.

    A NaN or inf entry makes the sum non-finite, so a finite sum settles it; only a sum that
    overflows (or holds a NaN) needs the exact elementwise check.
    """
    with torch.no_grad():
        return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())
