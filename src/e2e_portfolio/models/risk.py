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
from functools import cached_property

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
    r""":math:`Q = F F^\top + \mathrm{diag}(d)`; ``F'`` as ``factor_rows`` (batch, k, n), ``d``
    (batch, n) > 0.

    ``F`` is kept transposed, as it sits in ``R``: every broadcast over assets then runs
    along the contiguous last dimension, which is several times faster on a CPU than
    broadcasting a per-asset scale across ``k`` columns.
    """

    factor_rows: torch.Tensor
    idiosyncratic: torch.Tensor

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``Q v`` for v (batch, n)."""
        rows = self.factor_rows
        exposure = rows @ v.unsqueeze(-1)  # (b, k, 1)
        return (exposure.transpose(-1, -2) @ rows).squeeze(-2) + self.idiosyncratic * v

    def root_matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``R v`` for v (batch, n, r): ``[F' v; sqrt(d) v]``, (batch, k + n, r)."""
        root = self.idiosyncratic.sqrt().unsqueeze(-1)
        return torch.cat([self.factor_rows @ v, root * v], dim=-2)

    def solver(
        self, scale: float, diagonal: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Solve:
        r"""Factorise :math:`M = \mathrm{diag}(\text{diagonal}) + s\, D_m Q D_m` (Woodbury).

        ``D_m = diag(mask)`` restricts ``Q`` to the masked coordinates (all of them when
        ``mask`` is None); ``diagonal + scale * mask * d`` must be positive.
        """
        rows = self.factor_rows
        masked_d = self.idiosyncratic if mask is None else mask * self.idiosyncratic
        inverse_base = 1.0 / (diagonal + scale * masked_d)  # (b, n)
        masked = rows if mask is None else rows * mask.unsqueeze(-2)  # (b, k, n)
        scaled = masked * inverse_base.unsqueeze(-2)
        k = rows.shape[-2]
        eye = torch.eye(k, dtype=rows.dtype, device=rows.device)
        capacitance = torch.baddbmm(eye, masked, scaled.transpose(-1, -2), beta=1.0 / scale)
        # k x k and well conditioned (>= I / scale): an explicit inverse is accurate, and
        # folding it into ``scaled`` makes each solve two small batched products
        inverse, info = torch.linalg.inv_ex(capacitance)
        if bool(info.any()):
            raise torch.linalg.LinAlgError("Woodbury capacitance matrix is singular")
        gain = inverse @ scaled  # (b, k, n)
        inverse_base = inverse_base.unsqueeze(-1)

        def solve(rhs: torch.Tensor) -> torch.Tensor:
            # (c' S)' rather than S' c: the product runs along the contiguous assets axis
            correction = ((gain @ rhs).transpose(-1, -2) @ scaled).transpose(-1, -2)
            return rhs * inverse_base - correction

        return solve


@dataclass(frozen=True)
class DenseRisk:
    """Any ``R`` (batch, m, n), with ``Q = R'R`` formed explicitly, (batch, n, n)."""

    root: torch.Tensor

    @cached_property
    def matrix(self) -> torch.Tensor:
        return self.root.transpose(-1, -2) @ self.root

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return (self.matrix @ v.unsqueeze(-1)).squeeze(-1)

    def root_matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``R v`` for v (batch, n, r), (batch, m, r)."""
        return self.root @ v

    def solver(
        self, scale: float, diagonal: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Solve:
        """Factorise ``diag(diagonal) + scale * D_m Q D_m`` by Cholesky."""
        restricted = self.matrix
        if mask is not None:
            restricted = mask.unsqueeze(-1) * restricted * mask.unsqueeze(-2)
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


def _off_diagonal(square: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of (..., n, n) as a strided view (..., n - 1, n)."""
    n = square.shape[-1]
    flat = square.flatten(-2)[..., 1:]  # n^2 - 1 = (n - 1)(n + 1) entries
    return flat.unflatten(-1, (n - 1, n + 1))[..., :n]


def as_risk_operator(risk: torch.Tensor) -> RiskOperator:
    """The cheapest exact operator for ``Q = R'R``, R (batch, m, n).

    When the last ``n`` rows of ``R`` are diagonal with non-zero entries (the shape
    :func:`risk_matrix` builds), returns a :class:`FactorRisk`; otherwise a :class:`DenseRisk`.
    """
    m, n = risk.shape[-2:]
    if m >= n:
        bottom = risk[..., m - n :, :]
        diagonal = torch.diagonal(bottom, dim1=-2, dim2=-1)
        nonzero_diagonal = bool((diagonal.abs() > 1e-12).all())
        if nonzero_diagonal and not bool(_off_diagonal(bottom).any()):
            return FactorRisk(risk[..., : m - n, :], diagonal.square())
    return DenseRisk(risk)


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
