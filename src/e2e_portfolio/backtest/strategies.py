"""Built-in strategies: plain callables from a :class:`PastView` to weights.

Heuristic and statistical: :func:`equal_weight`, :class:`MinimumVariance`,
:class:`PlugInMeanVariance`. Learned, refitted every ``refit_every`` decisions on the pairs
(exposures, next returns) known at that time: :class:`Decoupled` (MSE forecast + Ledoit-Wolf
covariance) and :class:`EndToEnd` (predictor trained for net Sharpe through the QP). All
QP-based strategies solve the same long-only problem of
:class:`~e2e_portfolio.models.qp_layer.MeanVarianceQP`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from e2e_portfolio.backtest.walkforward import PastView, embed
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.risk import covariance_root, ledoit_wolf_covariance
from e2e_portfolio.models.train import TrainConfig, train_decoupled, train_e2e

Estimator = Literal["sample", "ledoit-wolf"]


def _tensor(values, device: str = "cpu") -> torch.Tensor:
    """A float64 tensor holding a copy (views of the past are read-only)."""
    return torch.tensor(np.array(values, dtype=np.float64), device=device)


def equal_weight(view: PastView) -> np.ndarray:
    """Equal weights.

    Parameters
    ----------
    view : PastView
        The past (only its number of assets is used).

    Returns
    -------
    ndarray, (n_assets,)
        ``1 / k`` on each of the ``k`` assets listed now, 0 elsewhere.
    """
    listed = view.listed_now
    return np.where(listed, 1.0 / listed.sum(), 0.0)


def _subset(view: PastView, window: int) -> np.ndarray:
    """The assets with a return in each of the last ``window`` months (at least two)."""
    subset = view.with_history(window)
    if subset.sum() < 2:
        raise DataError(
            f"window: expected at least 2 assets with {window} months of history at "
            f"{view.dates[-1]:%Y-%m}, got {int(subset.sum())}"
        )
    return subset


def covariance(returns: np.ndarray, estimator: Estimator) -> np.ndarray:
    """Sample (ddof = 1) or Ledoit-Wolf covariance of (T, n) returns."""
    if estimator == "ledoit-wolf":
        return ledoit_wolf_covariance(returns).numpy()
    return np.cov(returns, rowvar=False)


def _solve_qp(
    mu: np.ndarray | torch.Tensor,
    gamma: float,
    w_max: float | None,
    kappa: float = 0.0,
    w_prev: np.ndarray | None = None,
    *,
    R: torch.Tensor | None = None,
    F: torch.Tensor | None = None,
    d: torch.Tensor | None = None,
) -> np.ndarray:
    """One decision's weights (n,) from the layer, the risk model as ``R`` or ``F, d``.

    ``w_prev`` is the book held now (the view's drifted holdings); equal weights when the view
    has none (a strategy called outside a backtest).
    """
    device = mu.device if isinstance(mu, torch.Tensor) else "cpu"
    mu_t = torch.as_tensor(mu, dtype=torch.float64, device=device)
    n = mu_t.shape[-1]
    layer = MeanVarianceQP(n, None, gamma, w_max=w_max, kappa=kappa)
    previous = None
    if kappa > 0:
        start = w_prev if w_prev is not None else np.full(n, 1.0 / n)
        previous = torch.as_tensor(start, dtype=torch.float64, device=device)
    if R is not None:
        R = torch.as_tensor(R, dtype=torch.float64).to(device)
    with torch.no_grad():
        return layer(mu_t, R, previous, F=F, d=d).cpu().numpy()


@dataclass
class MinimumVariance:
    """Minimum-variance weights from the trailing ``window`` returns.

    ``long_only=False``: the closed form ``Sigma^-1 1 / 1' Sigma^-1 1`` (shorts allowed, as in
    DeMiguel, Garlappi & Uppal 2009); ``long_only=True``: the QP with ``mu = 0``, ``0 <= w <=
    w_max``.
    """

    window: int = 60
    estimator: Estimator = "sample"
    long_only: bool = False
    w_max: float | None = None

    @property
    def allows_short(self) -> bool:
        """The closed form shorts; the long-only QP does not."""
        return not self.long_only

    def __call__(self, view: PastView) -> np.ndarray:
        """Weights (n,) for the view's last date, on the assets with a full window."""
        subset = _subset(view, self.window)
        sigma = covariance(view.trailing_returns(self.window)[:, subset], self.estimator)
        if not self.long_only:
            direction = np.linalg.solve(sigma, np.ones(subset.sum()))
            return embed(direction / direction.sum(), subset)
        risk = covariance_root(torch.as_tensor(sigma))
        return embed(_solve_qp(np.zeros(subset.sum()), 1.0, self.w_max, R=risk), subset)


@dataclass
class PlugInMeanVariance:
    """The QP with the trailing sample mean and covariance plugged in."""

    window: int = 60
    gamma: float = 8.0
    w_max: float | None = None
    estimator: Estimator = "sample"

    def __call__(self, view: PastView) -> np.ndarray:
        """Weights (n,) for the view's last date, on the assets with a full window."""
        subset = _subset(view, self.window)
        past = view.trailing_returns(self.window)[:, subset]
        risk = covariance_root(torch.as_tensor(covariance(past, self.estimator)))
        return embed(_solve_qp(past.mean(axis=0), self.gamma, self.w_max, R=risk), subset)


@dataclass
class _Learned:
    """Shared refitting logic: train on the last ``train_months`` pairs every ``refit_every``."""

    config: TrainConfig = field(default_factory=TrainConfig)
    refit_every: int = 12
    train_months: int | None = 120
    model: ReturnPredictor | None = field(default=None, init=False)
    histories: list[dict[str, list[float]]] = field(default_factory=list, init=False)
    _since_fit: int = field(default=0, init=False)

    def _training_data(self, view: PastView) -> tuple[np.ndarray, np.ndarray]:
        x, y = view.training_pairs()
        if self.train_months is not None:
            x, y = x[-self.train_months :], y[-self.train_months :]
        return x, y

    def _maybe_refit(self, view: PastView) -> ReturnPredictor:
        if self.model is None or self._since_fit >= self.refit_every:
            result = self._train(*self._training_data(view))
            self.model, self._since_fit = result.model, 0
            self.histories.append(result.history)
        self._since_fit += 1
        return self.model

    def _train(self, x, y):  # pragma: no cover - defined by subclasses
        raise NotImplementedError


@dataclass
class Decoupled(_Learned):
    """MSE-trained ``mu`` + Ledoit-Wolf covariance of the trailing ``covariance_window``."""

    covariance_window: int = 48

    def _train(self, x, y):
        return train_decoupled(x, y, self.config)

    def __call__(self, view: PastView) -> np.ndarray:
        """Weights (n,) for the view's last date; refits first when due."""
        model = self._maybe_refit(view)
        with torch.no_grad():
            mu = model(_tensor(view.exposures[-1], self.config.device))[0]
        sigma = ledoit_wolf_covariance(view.trailing_returns(self.covariance_window))
        c = self.config
        risk = covariance_root(sigma)
        return _solve_qp(mu, c.gamma, c.w_max, c.kappa, view.holdings, R=risk)


@dataclass
class EndToEnd(_Learned):
    """Predictor of ``mu``, ``F``, ``d`` trained for the net Sharpe of the QP's portfolios."""

    def _train(self, x, y):
        return train_e2e(x, y, self.config)

    def __call__(self, view: PastView) -> np.ndarray:
        """Weights (n,) for the view's last date; refits first when due."""
        model = self._maybe_refit(view)
        with torch.no_grad():
            mu, loadings, idiosyncratic = model(_tensor(view.exposures[-1], self.config.device))
        c = self.config
        return _solve_qp(mu, c.gamma, c.w_max, c.kappa, view.holdings, F=loadings, d=idiosyncratic)
