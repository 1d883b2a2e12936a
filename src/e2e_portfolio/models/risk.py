r"""Risk models as the factor matrix ``R`` with :math:`R^\top R = \Sigma`, and fast products.

The mean-variance layer takes the risk model as ``R`` so that :math:`w^\top\Sigma w =
\lVert R w\rVert^2` with no Cholesky factorisation. For the predictor's low-rank-plus-diagonal
model :math:`\Sigma = F F^\top + \mathrm{diag}(d)`, :func:`risk_matrix` stacks
:math:`R = [F^\top;\ \mathrm{diag}(\sqrt d)]`. The solver recognises that shape again
(:func:`as_risk_operator`) and then works with ``F`` and ``d`` directly: products and solves cost
:math:`O(n k^2)` instead of :math:`O(n^3)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Solve = Callable[[torch.Tensor], torch.Tensor]
"""Solves a factorised system for right-hand sides (batch, n, r)."""


def risk_matrix(loadings: torch.Tensor, idiosyncratic: torch.Tensor) -> torch.Tensor:
    r"""Stack :math:`R = [F^\top;\ \mathrm{diag}(\sqrt d)]` so that :math:`R^\top R = FF^\top +
    \mathrm{diag}(d)`.

    Parameters
    ----------
    loadings : Tensor, (n, k) or (batch, n, k)
        Factor loadings ``F``.
    idiosyncratic : Tensor, (n,) or (batch, n)
        Idiosyncratic variances ``d``, positive.

    Returns
    -------
    Tensor, (k + n, n) or (batch, k + n, n)
    """
    if loadings.shape[:-1] != idiosyncratic.shape:
        raise ValueError(
            f"idiosyncratic: expected shape {tuple(loadings.shape[:-1])} to match loadings "
            f"{tuple(loadings.shape)}, got {tuple(idiosyncratic.shape)}"
        )
    if not bool((idiosyncratic > 0).all()):
        raise ValueError("idiosyncratic: expected positive variances, got a value <= 0")
    return torch.cat([loadings.transpose(-1, -2), torch.diag_embed(idiosyncratic.sqrt())], dim=-2)


@dataclass(frozen=True)
class FactorRisk:
    r""":math:`Q = F F^\top + \mathrm{diag}(d)`; ``F`` (batch, n, k), ``d`` (batch, n) > 0."""

    loadings: torch.Tensor
    idiosyncratic: torch.Tensor

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``Q v`` for v (batch, n)."""
        f = self.loadings
        return (f @ (f.transpose(-1, -2) @ v.unsqueeze(-1))).squeeze(-1) + self.idiosyncratic * v

    def solver(self, scale: float, diagonal: torch.Tensor, mask: torch.Tensor) -> Solve:
        r"""Factorise :math:`M = \mathrm{diag}(\text{diagonal}) + s\, D_m Q D_m` (Woodbury).

        ``D_m = diag(mask)`` restricts ``Q`` to the masked coordinates; ``diagonal +
        scale * mask * d`` must be positive.
        """
        base = diagonal + scale * mask * self.idiosyncratic
        masked = mask.unsqueeze(-1) * self.loadings  # (b, n, k)
        scaled = masked / base.unsqueeze(-1)
        k = masked.shape[-1]
        eye = torch.eye(k, dtype=base.dtype, device=base.device)
        inner = eye / scale + masked.transpose(-1, -2) @ scaled
        # k x k and well conditioned (>= I / scale): an explicit inverse is accurate and
        # makes each solve two small batched products
        inverse, info = torch.linalg.inv_ex(inner)
        if bool(info.any()):
            raise torch.linalg.LinAlgError("Woodbury capacitance matrix is singular")
        scaled_t = scaled.transpose(-1, -2)

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            return rhs / base.unsqueeze(-1) - scaled @ (inverse @ (scaled_t @ rhs))

        return solve


@dataclass(frozen=True)
class DenseRisk:
    """``Q = R'R`` formed explicitly, (batch, n, n)."""

    matrix: torch.Tensor

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return (self.matrix @ v.unsqueeze(-1)).squeeze(-1)

    def solver(self, scale: float, diagonal: torch.Tensor, mask: torch.Tensor) -> Solve:
        """Factorise ``diag(diagonal) + scale * D_m Q D_m`` by Cholesky."""
        restricted = mask.unsqueeze(-1) * self.matrix * mask.unsqueeze(-2)
        system = scale * restricted + torch.diag_embed(diagonal)
        chol, info = torch.linalg.cholesky_ex(system)
        if bool(info.any()):
            raise torch.linalg.LinAlgError(
                "the risk model restricted to the free assets is singular"
            )

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            return torch.cholesky_solve(rhs, chol)

        return solve


RiskOperator = FactorRisk | DenseRisk


def as_risk_operator(risk: torch.Tensor) -> RiskOperator:
    """The cheapest exact operator for ``Q = R'R``, R (batch, m, n).

    When the last ``n`` rows of ``R`` are diagonal with non-zero entries (the shape
    :func:`risk_matrix` builds), returns a :class:`FactorRisk`; otherwise a :class:`DenseRisk`.
    """
    m, n = risk.shape[-2:]
    if m >= n:
        bottom = risk[..., m - n :, :]
        diagonal = torch.diagonal(bottom, dim1=-2, dim2=-1)
        nonzero_diagonal = diagonal != 0
        only_diagonal = bool((bottom.count_nonzero(dim=(-2, -1)) == nonzero_diagonal.sum(-1)).all())
        if only_diagonal and bool((diagonal.abs() > 1e-12).all()):
            return FactorRisk(risk[..., : m - n, :].transpose(-1, -2), diagonal.square())
    return DenseRisk(risk.transpose(-1, -2) @ risk)


def ledoit_wolf_covariance(returns) -> torch.Tensor:
    """Ledoit-Wolf shrunk covariance (scikit-learn; target: scaled identity) of (T, n) returns."""
    from sklearn.covariance import LedoitWolf

    values = np.asarray(returns, dtype=np.float64)
    return torch.as_tensor(LedoitWolf().fit(values).covariance_, dtype=torch.float64)


def cholesky_risk_matrix(covariance: torch.Tensor) -> torch.Tensor:
    """``R = L'`` for ``covariance = L L'``, so that ``R'R = covariance``; (..., n, n)."""
    chol, info = torch.linalg.cholesky_ex(covariance)
    if bool(info.any()):
        raise ValueError("covariance: expected a positive definite matrix, got a singular one")
    return chol.transpose(-1, -2)
