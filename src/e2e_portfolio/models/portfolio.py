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

import numpy as np
import torch

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.losses import drifted
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.qp_native import WarmStart

NO_SECTORS = (
    "sector_max: needs a panel with sectors (synthetic universes have industry blocks; import "
    "yours with e2e data import ... --sectors FILE), got none"
)


@dataclass(frozen=True)
class PortfolioConfig:
    """The QP's settings: risk aversion, per-asset bounds, budget, leverage, turnover penalty.

    Parameters
    ----------
    gamma : float
        Risk aversion the networks are trained at (arms that tune it choose their own from a
        grid), > 0.
    w_max : float, optional
        Per-asset cap; None for none.
    kappa : float
        L1 turnover penalty against the book held, >= 0.
    w_min : float
        Per-asset floor; 0 is long-only, negative allows shorts.
    budget : float
        ``sum(w)``: 1 fully invested, 0 (with shorts) dollar-neutral.
    leverage : float, optional
        Bound on the gross exposure ``sum(|w|)``; None for none.
    sector_max : float, optional
        Cap on each sector's net weight (one ``A_ub`` row per sector of the panel); None for
        none.
    """

    gamma: float = 8.0
    w_max: float | None = None
    kappa: float = 0.0
    w_min: float = 0.0
    budget: float = 1.0
    leverage: float | None = None
    sector_max: float | None = None

    def validate(self, n_assets: int, sectors: Sequence[str] | None = None) -> None:
        """Raise :class:`DataError` if the settings cannot hold for ``n_assets`` (in ``sectors``).

        Without ``sectors`` a sector cap is checked when its rows are built
        (:meth:`sector_rows`).
        """
        if not self.gamma > 0:
            raise DataError(f"gamma: expected a risk aversion > 0, got {self.gamma}")
        if self.kappa < 0:
            raise DataError(f"kappa: expected a turnover penalty >= 0, got {self.kappa}")
        if self.w_max is not None and n_assets * self.w_max < self.budget:
            raise DataError(
                f"w_max: infeasible for {n_assets} assets, expected w_max >= "
                f"{self.budget:g}/{n_assets} = {self.budget / n_assets:.4g}, got {self.w_max}"
            )
        if not (self.w_min > -float("inf") and n_assets * self.w_min <= self.budget):
            raise DataError(
                f"w_min: infeasible for {n_assets} assets, expected a finite floor <= "
                f"{self.budget:g}/{n_assets} = {self.budget / n_assets:.4g}, got {self.w_min}"
            )
        if self.w_min >= 0 and not self.budget > 0:
            raise DataError(f"budget: expected > 0 without shorts (w_min >= 0), got {self.budget}")
        if self.sector_max is not None and not self.sector_max > 0:
            raise DataError(f"sector_max: expected a cap > 0, got {self.sector_max}")
        if self.sector_max is not None and sectors is not None:
            count = len(set(sectors))
            if not self.sector_max * count >= self.budget:
                raise DataError(
                    f"sector_max: infeasible for {count} sectors, expected sector_max >= "
                    f"{self.budget:g}/{count} = {self.budget / count:.4g}, got {self.sector_max}"
                )
        if self.leverage is not None and not self.leverage >= abs(self.budget):
            raise DataError(
                f"leverage: expected a gross-exposure bound >= |budget| = {abs(self.budget)}, "
                f"got {self.leverage}"
            )

    def sector_rows(
        self, sectors: Sequence[str] | None, device: str | torch.device = "cpu"
    ) -> dict[str, torch.Tensor]:
        """The layer's ``A_ub`` (one indicator row per sector) and ``b_ub`` for ``sector_max``.

        Empty without a sector cap.
        """
        if self.sector_max is None:
            return {}
        if sectors is None:
            raise DataError(NO_SECTORS)
        _, sector_of = np.unique(np.asarray(sectors, dtype=str), return_inverse=True)
        count = int(sector_of.max()) + 1
        matrix = torch.as_tensor(sector_of[None, :] == np.arange(count)[:, None],
                                 dtype=torch.float64, device=device)  # fmt: skip
        caps = torch.full((count,), self.sector_max, dtype=torch.float64, device=device)
        return {"A_ub": matrix, "b_ub": caps}

    def bounds(self, holdable: torch.Tensor) -> dict[str, torch.Tensor]:
        """The layer's ``upper`` (and with shorts ``lower``) with unholdable assets at 0."""
        cap = float("inf") if self.w_max is None else self.w_max
        zero = torch.zeros((), dtype=torch.float64, device=holdable.device)
        bounds = {"upper": torch.where(holdable, cap, zero)}
        if self.w_min != 0:
            bounds["lower"] = torch.where(holdable, self.w_min, zero)
        return bounds

    def layer(self, n_assets: int, gamma: float | None = None) -> MeanVarianceQP:
        """The layer for ``n_assets``, at ``gamma`` (the trained risk aversion by default)."""
        return MeanVarianceQP(n_assets, gamma=self.gamma if gamma is None else gamma,
                              w_max=self.w_max, kappa=self.kappa, w_min=self.w_min,
                              budget=self.budget, leverage=self.leverage)  # fmt: skip


def solve_path(
    layer: MeanVarianceQP,
    mu: torch.Tensor,
    risk: Mapping[str, torch.Tensor],
    realised: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
    warm: Sequence[WarmStart] | None = None,
    rows: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Weights (T, n) for T consecutive months.

    Parameters
    ----------
    layer : MeanVarianceQP
    mu : Tensor, (T, n)
        Forecasts per month.
    risk : mapping of str to Tensor
        The layer's risk inputs per month, each with a leading T axis: ``R`` (T, m, n), or
        ``F`` (T, n, k) and ``d`` (T, n); optionally ``upper`` and ``lower`` (T, n) bounds
        (both 0: not held).
    realised : Tensor, (T, n), optional
        The returns each month's weights earned: with ``kappa > 0`` they drift the book into
        the next month (needed when T > 1).
    start : Tensor, (n,), optional
        The book held before the first month (the backtest's drifted holdings; zeros are
        cash); equal weights when None.
    warm : sequence of WarmStart, optional
        Solves that repeat (a training loop's epochs) start from the last active sets: one
        holder for the batch (``kappa == 0``), else one per month.
    rows : mapping of str to Tensor, optional
        Rows the same every month (``A_ub``, ``b_ub``, ``A_eq``, ``b_eq`` without a T axis),
        e.g. :meth:`PortfolioConfig.sector_rows`.
    """
    rows = {} if rows is None else dict(rows)
    if warm is not None and len(warm) != (1 if layer.kappa == 0 else mu.shape[0]):
        raise DataError(f"warm: expected {1 if layer.kappa == 0 else mu.shape[0]} holders, "
                        f"got {len(warm)}")  # fmt: skip
    if layer.kappa == 0:
        return layer(mu, **risk, **rows, warm_start=None if warm is None else warm[0])
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
            **rows,
            warm_start=None if warm is None else warm[t],
        )
        path.append(weights)
        if realised is not None:
            held = drifted(weights, realised[t])
    return torch.stack(path)
