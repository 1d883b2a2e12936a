r"""The portfolio every QP strategy holds: its settings and the one path through the book.

:class:`PortfolioConfig` holds what defines the mean-variance QP of
:class:`~e2e_portfolio.models.qp_layer.MeanVarianceQP` besides its inputs: the risk aversion
the networks are trained at, the per-asset cap and the turnover penalty. :func:`solve_path`
turns moments into weights month after month, in the one way the package does it — in the
backtest's decisions, in the gamma tuning on validation months and in the end-to-end
training loss:

- without a turnover penalty (``kappa == 0``) every month is independent: one batch;
- with one, month ``t`` is penalised against the book held then,
  :math:`h_{t-1} = w_{t-1} \odot (1 + r_{t-1}) / (1 + w_{t-1}^\top r_{t-1})`, the previous
  weights drifted by the returns they earned (:func:`~e2e_portfolio.models.losses.drifted`),
  which is what the backtest charges turnover against. Differentiable throughout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.losses import drifted
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.qp_native import WarmStart


@dataclass(frozen=True)
class PortfolioConfig:
    """The QP's settings: risk aversion, per-asset cap, turnover penalty.

    Parameters
    ----------
    gamma : float
        Risk aversion the networks are trained at (arms that tune it choose their own from a
        grid), > 0.
    w_max : float, optional
        Per-asset cap; None for none.
    kappa : float
        L1 turnover penalty against the book held, >= 0.
    """

    gamma: float = 8.0
    w_max: float | None = None
    kappa: float = 0.0

    def validate(self, n_assets: int) -> None:
        """Raise :class:`DataError` if the settings cannot hold for ``n_assets``."""
        if not self.gamma > 0:
            raise DataError(f"gamma: expected a risk aversion > 0, got {self.gamma}")
        if self.kappa < 0:
            raise DataError(f"kappa: expected a turnover penalty >= 0, got {self.kappa}")
        if self.w_max is not None and n_assets * self.w_max < 1:
            raise DataError(
                f"w_max: infeasible for {n_assets} assets, expected w_max >= 1/{n_assets} = "
                f"{1 / n_assets:.4g}, got {self.w_max}"
            )

    @property
    def cap(self) -> float:
        """The per-asset cap, 1 when there is none."""
        return 1.0 if self.w_max is None else self.w_max

    def layer(self, n_assets: int, gamma: float | None = None) -> MeanVarianceQP:
        """The layer for ``n_assets``, at ``gamma`` (the trained risk aversion by default)."""
        return MeanVarianceQP(n_assets, gamma=self.gamma if gamma is None else gamma,
                              w_max=self.w_max, kappa=self.kappa)  # fmt: skip


def solve_path(
    layer: MeanVarianceQP,
    mu: torch.Tensor,
    risk: Mapping[str, torch.Tensor],
    realised: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    warm: Sequence[WarmStart] | None = None,
) -> torch.Tensor:
    """Weights (T, n) for T consecutive months.

    Parameters
    ----------
    layer : MeanVarianceQP
    mu : Tensor, (T, n)
        Forecasts per month.
    risk : mapping of str to Tensor
        The layer's risk inputs per month, each with a leading T axis: ``R`` (T, m, n), or
        ``F`` (T, n, k) and ``d`` (T, n); optionally ``upper`` (T, n) caps (0: not held).
    realised : Tensor, (T, n), optional
        The returns each month's weights earned: with ``kappa > 0`` they drift the book into
        the next month (needed when T > 1).
    start : Tensor, (n,), optional
        The book held before the first month (the backtest's drifted holdings; zeros are
        cash); equal weights when None.
    warm : sequence of WarmStart, optional
        Solves that repeat (a training loop's epochs) start from the last active sets: one
        holder for the batch (``kappa == 0``), else one per month.
    """
    if warm is not None and len(warm) != (1 if layer.kappa == 0 else mu.shape[0]):
        raise DataError(f"warm: expected {1 if layer.kappa == 0 else mu.shape[0]} holders, "
                        f"got {len(warm)}")  # fmt: skip
    if layer.kappa == 0:
        return layer(mu, **risk, warm_start=None if warm is None else warm[0])
    n_months, n = mu.shape
    if n_months > 1 and realised is None:
        raise DataError("realised: expected the returns that drift the book when kappa > 0")
    held = start if start is not None else mu.new_full((n,), 1.0 / n)
    path = []
    for t in range(n_months):
        weights = layer(
            mu[t],
            w_prev=held,
            **{k: v[t] for k, v in risk.items()},
            warm_start=None if warm is None else warm[t],
        )
        path.append(weights)
        if realised is not None:
            held = drifted(weights, realised[t])
    return torch.stack(path)
