r"""Risk models as the factor matrix ``R`` with :math:`R^\top R = \Sigma`, and fast products.

The mean-variance layer takes the risk model as ``R`` so that :math:`w^\top\Sigma w =
\lVert R w\rVert^2` with no Cholesky factorisation. For the predictor's low-rank-plus-diagonal
model :math:`\Sigma = F F^\top + \mathrm{diag}(d)`, :func:`risk_matrix` stacks
:math:`R = [F^\top;\ \mathrm{diag}(\sqrt d)]`. The solver recognises that shape again
(:func:`as_risk_operator`, re-exported from :mod:`e2e_portfolio.models.qp_native.operators`)
and then works with ``F`` and ``d`` directly: products and solves cost :math:`O(n k^2)`
instead of :math:`O(n^3)`. The layer also takes ``F`` and ``d`` themselves, which never forms
``R`` at all. The covariance estimators themselves (sample, Ledoit-Wolf, OAS, nonlinear
shrinkage) are in :mod:`e2e_portfolio.models.covariance`, in factor form.
"""

from __future__ import annotations

import torch

from e2e_portfolio.models.qp_native.operators import (
    DenseRisk,
    FactorRisk,
    RiskOperator,
    as_risk_operator,
)

__all__ = [
    "DenseRisk",
    "FactorRisk",
    "RiskOperator",
    "as_risk_operator",
    "cholesky_risk_matrix",
    "covariance_root",
    "risk_matrix",
]


def risk_matrix(loadings: torch.Tensor, idiosyncratic: torch.Tensor) -> torch.Tensor:
    r"""Stack :math:`R = [F^\top;\ \mathrm{diag}(\sqrt d)]`.

    Then :math:`R^\top R = FF^\top + \mathrm{diag}(d)`.

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


def covariance_root(covariance: torch.Tensor) -> torch.Tensor:
    """``R`` with ``R'R = covariance`` for any positive semi-definite covariance.

    Parameters
    ----------
    covariance : Tensor, (..., n, n)
        Symmetric positive semi-definite.

    Returns
    -------
    Tensor, (..., n, n)
        ``L'`` from Cholesky when the matrix is definite; otherwise (a sample covariance of
        fewer months than assets, a zero-variance asset) the eigen-root
        ``diag(sqrt(lambda)) V'``, which the mean-variance layer solves exactly.

    Raises
    ------
    ValueError
        An eigenvalue below ``-1e-10`` times the largest: the matrix is not a covariance.
    """
    chol, info = torch.linalg.cholesky_ex(covariance)
    if not bool(info.any()):
        return chol.transpose(-1, -2)
    values, vectors = torch.linalg.eigh(covariance)
    largest = values.abs().amax(dim=-1, keepdim=True)
    if bool((values < -1e-10 * largest).any()):
        raise ValueError(
            "covariance: expected a positive semi-definite matrix, got an eigenvalue of "
            f"{float(values.min()):.3g}"
        )
    return (vectors * values.clamp(min=0).sqrt().unsqueeze(-2)).transpose(-1, -2)


def cholesky_risk_matrix(covariance: torch.Tensor) -> torch.Tensor:
    """``R = L'`` for ``covariance = L L'``, so that ``R'R = covariance``; (..., n, n)."""
    chol, info = torch.linalg.cholesky_ex(covariance)
    if bool(info.any()):
        raise ValueError("covariance: expected a positive definite matrix, got a singular one")
    return chol.transpose(-1, -2)
