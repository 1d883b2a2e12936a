"""Training the predictor: for accuracy (decoupled) or for decisions (end-to-end).

- :func:`train_decoupled` fits :class:`ReturnPredictor`'s ``mu`` to next-month returns by MSE.
  At decision time the optimiser pairs that forecast with a Ledoit-Wolf covariance of the
  trailing returns (:func:`~e2e_portfolio.models.risk.ledoit_wolf_covariance`): the textbook
  two-stage estimator.
- :func:`train_e2e` makes every epoch one pass over the whole training period: the QP is
  solved for every month (one batch when ``kappa == 0``; month by month with ``w_prev`` the
  previous month's solution when ``kappa > 0``), the realised net returns are assembled and
  minus their annualised Sharpe ratio is back-propagated through every solve into the
  predictor's ``mu``, ``F`` and ``d``.

Both split the months chronologically into training and validation, keep the parameters of
the best validation epoch (early stopping with ``patience``), return the loss history, and are
deterministic under ``seed``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.losses import drifted, mse_loss, negative_sharpe_loss
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_layer import MeanVarianceQP


@dataclass(frozen=True)
class TrainConfig:
    """Options shared by both trainings and by the QP the predictor feeds."""

    gamma: float = 8.0
    w_max: float | None = None
    kappa: float = 0.0
    tc: float = 0.005
    hidden: int = 32
    n_risk_factors: int = 3
    epochs: int = 40
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    patience: int = 8
    validation_fraction: float = 0.25
    seed: int = 42
    device: str = "cpu"
    """torch device for training and the QP layer, e.g. ``"cuda"``."""

    def validate(self, n_assets: int) -> None:
        """Raise :class:`DataError` if the settings cannot hold for ``n_assets``."""
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise DataError(
                f"device: expected an available device, got {self.device!r} but "
                "torch.cuda.is_available() is False (a CPU build of torch, or no GPU)"
            )
        try:
            torch.device(self.device)
        except RuntimeError as exc:
            raise DataError(
                f"device: expected a torch device like 'cpu' or 'cuda', got {self.device!r}"
            ) from exc
        if self.tc < 0:
            raise DataError(f"tc: expected a cost >= 0, got {self.tc}")
        if self.w_max is not None and n_assets * self.w_max < 1:
            raise DataError(
                f"w_max: infeasible for {n_assets} assets, expected w_max >= 1/{n_assets} = "
                f"{1 / n_assets:.4g}, got {self.w_max}"
            )
        if not 0 < self.validation_fraction < 1:
            raise DataError(
                f"validation_fraction: expected in (0, 1), got {self.validation_fraction}"
            )
        if self.epochs < 1:
            raise DataError(f"epochs: expected at least 1, got {self.epochs}")


@dataclass
class TrainResult:
    """The trained model (best validation epoch) and the per-epoch history.

    ``history`` maps ``"train"`` and ``"validation"`` to one value per epoch, epoch 0 being
    the untrained model: MSE for the decoupled model, annualised net Sharpe for end-to-end.
    """

    model: ReturnPredictor
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0


def _tensors(exposures, next_returns, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.array(exposures, dtype=np.float64), device=device)
    y = torch.tensor(np.array(next_returns, dtype=np.float64), device=device)
    if x.ndim != 3 or y.shape != x.shape[:2]:
        raise DataError(
            f"exposures, next_returns: expected shapes (T, n, k) and (T, n), got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise DataError("exposures, next_returns: expected finite values, got NaN or inf")
    return x, y


def _split(exposures, next_returns, config: TrainConfig):
    """Validated tensors, split chronologically: ``{"train": (x, y), "validation": (x, y)}``."""
    config.validate(np.shape(next_returns)[-1])
    x, y = _tensors(exposures, next_returns, config.device)
    n_months = x.shape[0]
    n_validation = max(2, round(config.validation_fraction * n_months))
    if n_months - n_validation < 3:
        raise DataError(
            f"exposures: expected at least 5 months to train and validate, got {n_months}"
        )
    cut = n_months - n_validation
    return {"train": (x[:cut], y[:cut]), "validation": (x[cut:], y[cut:])}


def _new_model(n_features: int, config: TrainConfig) -> ReturnPredictor:
    torch.manual_seed(config.seed)
    model = ReturnPredictor(n_features, config.n_risk_factors, config.hidden)
    return model.double().to(config.device)


def _fit(model, objective, config: TrainConfig, higher_is_better: bool) -> TrainResult:
    """Full-batch Adam on ``objective(model, part) -> (loss, score)`` with early stopping."""
    optimiser = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history: dict[str, list[float]] = {"train": [], "validation": []}
    sign = 1.0 if higher_is_better else -1.0
    best_score, best_state, best_epoch, waited = -math.inf, None, 0, 0
    for epoch in range(config.epochs + 1):
        if epoch > 0:
            optimiser.zero_grad()
            loss, _ = objective(model, "train")
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            _, train_score = objective(model, "train")
            _, validation_score = objective(model, "validation")
        history["train"].append(train_score)
        history["validation"].append(validation_score)
        if sign * validation_score > best_score:
            best_score, best_epoch, waited = sign * validation_score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited > config.patience:
                break
    model.load_state_dict(best_state)
    return TrainResult(model, history, best_epoch)


def train_decoupled(exposures, next_returns, config: TrainConfig | None = None) -> TrainResult:
    """Fit ``mu`` to next-month returns by MSE.

    Parameters
    ----------
    exposures : array, (T, n, k)
    next_returns : array, (T, n)
        ``next_returns[t]`` is realised over the month after ``exposures[t]``.
    config : TrainConfig
    """
    config = config or TrainConfig()
    parts = _split(exposures, next_returns, config)

    def objective(model, part):
        features, target = parts[part]
        loss = mse_loss(model(features)[0], target)
        return loss, loss.item()

    n_features = parts["train"][0].shape[-1]
    return _fit(_new_model(n_features, config), objective, config, higher_is_better=False)


def solve_path(
    model: ReturnPredictor,
    layer: MeanVarianceQP,
    exposures: torch.Tensor,
    realised: torch.Tensor,
    w_start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weights (T, n) for every month: one batch, or chained through ``w_prev`` if kappa > 0.

    With a turnover penalty each month's ``w_prev`` is the book held then: the previous
    month's weights drifted by the ``realised`` (T, n) returns they earned, as in the
    backtest (``w_start``, equal weights by default, before the first month). The risk model
    goes to the layer in factor form (``F``, ``d``): gradients reach the loadings and variances
    directly and nothing of size ``n x n`` is formed.
    """
    mu, loadings, idiosyncratic = model(exposures)
    if layer.kappa == 0:
        return layer(mu, F=loadings, d=idiosyncratic)
    n = exposures.shape[1]
    held = w_start if w_start is not None else mu.new_full((n,), 1.0 / n)
    path = []
    for t in range(exposures.shape[0]):
        weights = layer(mu[t], None, held, F=loadings[t], d=idiosyncratic[t])
        path.append(weights)
        held = drifted(weights, realised[t])
    return torch.stack(path)


def train_e2e(
    exposures,
    next_returns,
    config: TrainConfig | None = None,
    initial_model: ReturnPredictor | None = None,
) -> TrainResult:
    """Train the predictor for the net Sharpe ratio of the QP's portfolios (end-to-end).

    Parameters are as for :func:`train_decoupled`; ``initial_model`` (copied) starts the
    training from given weights, e.g. a decoupled fit.
    """
    config = config or TrainConfig()
    parts = _split(exposures, next_returns, config)
    _, n_assets, n_features = parts["train"][0].shape
    layer = MeanVarianceQP(
        n_assets, config.n_risk_factors, config.gamma, config.w_max, config.kappa
    )
    if initial_model is not None:
        model = copy.deepcopy(initial_model).double().to(config.device)
    else:
        model = _new_model(n_features, config)

    def objective(model, part):
        features, target = parts[part]
        weights = solve_path(model, layer, features, target)
        loss = negative_sharpe_loss(weights, target, config.tc)
        return loss, -loss.item()

    return _fit(model, objective, config, higher_is_better=True)
