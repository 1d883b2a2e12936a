r"""Training losses: forecast accuracy (MSE) and decision quality (Sharpe, utility).

The realised net return of a weight path :math:`w_1..w_T` on returns :math:`r_1..r_T` is

.. math::

    r^p_t = w_t^\top r_t - \mathrm{tc}\,\lVert w_t - h_{t-1}\rVert_1,
    \qquad h_{t-1} = \frac{w_{t-1} \odot (1 + r_{t-1})}{1 + w_{t-1}^\top r_{t-1}},

the two-sided turnover against the drifted previous book that the backtest engine charges
(:mod:`e2e_portfolio.turnover`; the drift is differentiated too). :math:`h_0` = ``initial``
(no cost for the first period when it is omitted).

A decision loss (:data:`DecisionLoss`) is any callable ``loss(weights, realised, tc)`` to a
scalar tensor, minimised by the end-to-end training; the built-ins are in
:data:`DECISION_LOSSES` by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from e2e_portfolio.annualisation import PERIODS_PER_YEAR
from e2e_portfolio.turnover import RUIN


def mse_loss(predicted: torch.Tensor, realised: torch.Tensor) -> torch.Tensor:
    """Mean squared forecast error."""
    return torch.mean((predicted - realised) ** 2)


def drifted(weights: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`e2e_portfolio.turnover.drifted`: ``w (1 + r) / (1 + w'r)``, (..., n)."""
    growth = 1.0 + (weights * returns).sum(dim=-1, keepdim=True)
    alive = growth.abs() > RUIN
    return torch.where(alive, weights * (1.0 + returns) / torch.where(alive, growth, 1.0), weights)


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
    held = drifted(weights[:-1], realised[:-1])
    previous = held if initial is None else torch.cat([initial.unsqueeze(0), held])
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


@dataclass(frozen=True)
class MeanVarianceUtility:
    """The decision loss minus the realised utility ``mean(r) - gamma var(r)`` of net returns."""

    gamma: float = 8.0

    def __call__(self, weights: torch.Tensor, realised: torch.Tensor, tc: float) -> torch.Tensor:
        """The loss of weights (T, n) earning realised (T, n) at cost ``tc``."""
        return mean_variance_utility_loss(weights, realised, self.gamma, tc)


DecisionLoss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""``loss(weights (T, n), realised (T, n), tc) -> scalar``, lower is better."""
DECISION_LOSSES: dict[str, DecisionLoss] = {
    "sharpe": negative_sharpe_loss,
    "utility": MeanVarianceUtility(),
}
"""The built-in decision losses by name: minus the annualised net Sharpe ratio, minus the
realised mean-variance utility at gamma 8."""
