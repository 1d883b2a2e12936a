r"""Training losses: forecast accuracy (MSE) and decision quality (Sharpe, utility).

The realised net return of a weight path :math:`w_1..w_T` on returns :math:`r_1..r_T` is

.. math::

    r^p_t = w_t^\top r_t - \mathrm{tc}\,\lVert w_t - w_{t-1}\rVert_1,

with :math:`w_0` = ``initial`` (no cost for the first period when it is omitted).
"""

from __future__ import annotations

import math

import torch

from e2e_portfolio.annualisation import PERIODS_PER_YEAR


def mse_loss(predicted: torch.Tensor, realised: torch.Tensor) -> torch.Tensor:
    """Mean squared forecast error."""
    return torch.mean((predicted - realised) ** 2)


def net_portfolio_returns(
    weights: torch.Tensor,
    realised: torch.Tensor,
    tc: float = 0.0,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Net returns (T,) of weights (T, n) held over realised returns (T, n)."""
    gross = (weights * realised).sum(dim=-1)
    if tc == 0:
        return gross
    previous = weights[:-1] if initial is None else torch.cat([initial.unsqueeze(0), weights[:-1]])
    trades = (weights[1:] if initial is None else weights) - previous
    costs = tc * trades.abs().sum(dim=-1)
    if initial is None:
        costs = torch.cat([costs.new_zeros(1), costs])
    return gross - costs


def negative_sharpe_loss(
    weights: torch.Tensor,
    realised: torch.Tensor,
    tc: float = 0.0,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minus the annualised Sharpe ratio of the net returns (std with ddof = 1)."""
    net = net_portfolio_returns(weights, realised, tc, initial)
    return -math.sqrt(PERIODS_PER_YEAR) * net.mean() / net.std().clamp(min=1e-12)


def mean_variance_utility_loss(
    weights: torch.Tensor,
    realised: torch.Tensor,
    gamma: float,
    tc: float = 0.0,
    initial: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minus the realised mean-variance utility ``mean(r) - gamma var(r)`` of the net returns."""
    net = net_portfolio_returns(weights, realised, tc, initial)
    return -(net.mean() - gamma * net.var())
