"""Training the predictor: for accuracy (decoupled) or for decisions (end-to-end).

- :func:`train_decoupled` fits a network's ``mu`` to next-month returns by MSE. At decision
  time the optimiser pairs that forecast with a shrunk covariance of the trailing returns
  (:mod:`e2e_portfolio.models.covariance`): the textbook two-stage estimator.
- :func:`train_e2e` makes every epoch one pass over the whole training period: the QP is
  solved for every month by :func:`~e2e_portfolio.models.portfolio.solve_path` (one batch
  when ``kappa == 0``; month by month through the drifted book when ``kappa > 0``), and a
  decision loss of the realised net returns (minus the annualised Sharpe ratio by default,
  :data:`~e2e_portfolio.models.losses.DECISION_LOSSES`) is back-propagated through every
  solve into the network's ``mu``, ``F`` and ``d``. Either half can be held fixed:
  ``fixed_mu`` (a given forecast, e.g. an MSE fit's; only ``F`` and ``d`` learn) or
  ``fixed_risk`` (a given factor covariance per month, e.g. Ledoit-Wolf's; only ``mu``
  learns).
- :func:`train_risk_nll` fits ``F`` and ``d`` for statistical fit: the Gaussian negative
  log-likelihood of the realised returns around a given forecast.

The network is any ``torch.nn.Module`` mapping exposures (..., n, k) to ``mu`` (..., n),
``F`` (..., n, k_f) and ``d`` (..., n) > 0 (:class:`ReturnPredictor` by default; pass
``network``, a :data:`NetworkFactory`, for another). The cost ``tc`` belongs to the market
and the QP's settings to :class:`~e2e_portfolio.models.portfolio.PortfolioConfig`;
:class:`TrainConfig` holds the network's size and the optimiser's settings only.

Both split the months chronologically into training and validation, keep the parameters of
the best validation epoch (early stopping with ``patience``), return the loss history, and are
deterministic under ``seed``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import torch
from torch import nn

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.losses import DecisionLoss, mse_loss, negative_sharpe_loss
from e2e_portfolio.models.portfolio import PortfolioConfig, solve_path
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_native import WarmStart


@dataclass(frozen=True)
class TrainConfig:
    """The network's size and the optimiser's settings (full-batch Adam, early stopping)."""

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

    def validate(self) -> None:
        """Raise :class:`DataError` if the settings cannot hold."""
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
        if not 0 < self.validation_fraction < 1:
            raise DataError(
                f"validation_fraction: expected in (0, 1), got {self.validation_fraction}"
            )
        if self.epochs < 1:
            raise DataError(f"epochs: expected at least 1, got {self.epochs}")


NetworkFactory = Callable[[int, TrainConfig], nn.Module]
"""Builds a fresh network for ``n_features`` exposures: ``factory(n_features, config)``. The
module maps exposures (..., n, n_features) to ``(mu, F, d)``; its parameters are cast to
float64 and moved to ``config.device``, after ``torch.manual_seed(config.seed)``."""


def default_network(n_features: int, config: TrainConfig) -> nn.Module:
    """:class:`ReturnPredictor` with the config's width and number of risk factors."""
    return ReturnPredictor(n_features, config.n_risk_factors, config.hidden)


@dataclass
class TrainResult:
    """The trained model (best validation epoch) and the per-epoch history.

    ``history`` maps ``"train"`` and ``"validation"`` to one value per epoch, epoch 0 being
    the untrained model: MSE for the decoupled model, the NLL for the risk model, minus the
    decision loss for end-to-end (the annualised net Sharpe for the default loss).
    """

    model: nn.Module
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
    if torch.isinf(x).any() or torch.isinf(y).any():
        raise DataError("exposures, next_returns: expected finite values or NaN, got inf")
    return x, y


_Masks: TypeAlias = dict[str, torch.Tensor]
"""``investable`` (T, n): the asset may be held that month (listed, exposures known);
``known`` (T, n): investable and its next return is known (what a forecast is scored on)."""


def _split(exposures, next_returns, config: TrainConfig, investable=None):
    """Validated tensors split chronologically, and the masks of a changing universe.

    Returns ``parts`` (``{"train": (x, y), "validation": (x, y)}``, NaN replaced by 0) and
    ``masks`` (per part a ``_Masks``, or None when every value is known: then training is
    exactly the unmasked computation). ``investable`` (T, n) narrows the assets that may be
    held (e.g. those listed at each month); unknown exposures exclude an asset anyway.
    """
    config.validate()
    x, y = _tensors(exposures, next_returns, config.device)
    n_months = x.shape[0]
    n_validation = max(2, round(config.validation_fraction * n_months))
    if n_months - n_validation < 3:
        raise DataError(
            f"exposures: expected at least 5 months to train and validate, got {n_months}"
        )
    cut = n_months - n_validation
    can_hold = torch.isfinite(x).all(dim=-1)
    if investable is not None:
        can_hold &= torch.as_tensor(np.asarray(investable, dtype=bool), device=x.device)
    known = can_hold & torch.isfinite(y)
    complete = bool(known.all())
    x, y = torch.nan_to_num(x), torch.nan_to_num(y)  # unknown: 0, and masked out below
    parts = {"train": (x[:cut], y[:cut]), "validation": (x[cut:], y[cut:])}
    masks: dict[str, _Masks | None] = {"train": None, "validation": None}
    if not complete:
        masks = {
            "train": {"investable": can_hold[:cut], "known": known[:cut]},
            "validation": {"investable": can_hold[cut:], "known": known[cut:]},
        }
    return parts, masks


def _new_model(
    n_features: int, config: TrainConfig, network: NetworkFactory | None = None
) -> nn.Module:
    torch.manual_seed(config.seed)
    model = (network or default_network)(n_features, config)
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
        # scores of the parameters after ``epoch`` steps; the training pass keeps its graph
        # for the next step, so each epoch solves the training months once
        loss, train_score = objective(model, "train")
        with torch.no_grad():
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
        if epoch < config.epochs:
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.load_state_dict(best_state)
    return TrainResult(model, history, best_epoch)


def train_decoupled(
    exposures,
    next_returns,
    config: TrainConfig | None = None,
    investable=None,
    *,
    network: NetworkFactory | None = None,
) -> TrainResult:
    """Fit ``mu`` to next-month returns by MSE.

    Parameters
    ----------
    exposures : array, (T, n, k)
    next_returns : array, (T, n)
        ``next_returns[t]`` is realised over the month after ``exposures[t]``. NaN where not
        known (a changing universe): those pairs are left out of every loss.
    config : TrainConfig
    investable : array of bool, (T, n), optional
        Which assets may be held each month (e.g. listed then); assets with unknown
        exposures are excluded anyway.
    network : NetworkFactory, optional
        The network to train (:class:`ReturnPredictor` by default).
    """
    config = config or TrainConfig()
    parts, masks = _split(exposures, next_returns, config, investable)

    def objective(model, part):
        features, target = parts[part]
        mask = masks[part]
        if mask is None:
            loss = mse_loss(model(features)[0], target)
        else:  # only the returns of held-able assets that are known
            loss = mse_loss(model(features)[0][mask["known"]], target[mask["known"]])
        return loss, loss.item()

    n_features = parts["train"][0].shape[-1]
    model = _new_model(n_features, config, network)
    return _fit(model, objective, config, higher_is_better=False)


def _fixed(values, name: str, shape: tuple[int, ...], device: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values), dtype=torch.float64).to(device)
    if tensor.shape[: len(shape)] != shape:
        raise DataError(f"{name}: expected a leading shape {shape}, got {tuple(tensor.shape)}")
    return tensor


def train_e2e(
    exposures,
    next_returns,
    config: TrainConfig | None = None,
    *,
    portfolio: PortfolioConfig | None = None,
    tc: float = 0.005,
    loss: DecisionLoss = negative_sharpe_loss,
    network: NetworkFactory | None = None,
    initial_model: nn.Module | None = None,
    fixed_mu=None,
    fixed_risk=None,
    investable=None,
    sectors: Sequence[str] | None = None,
) -> TrainResult:
    """Train the network for a decision loss of the QP's portfolios (end-to-end).

    Parameters
    ----------
    exposures, next_returns, config, investable, network
        As for :func:`train_decoupled`. With ``investable`` the QP may not hold the other
        assets (caps of 0) and an unknown next return counts as 0.
    portfolio : PortfolioConfig
        The QP (trained at its ``gamma``).
    tc : float
        Cost per unit of two-sided turnover in the realised net returns, >= 0.
    loss : DecisionLoss
        ``loss(weights, realised, tc)``, minimised (minus the annualised net Sharpe ratio by
        default; see :data:`~e2e_portfolio.models.losses.DECISION_LOSSES`).
    initial_model : nn.Module, optional
        Start from these weights (copied), e.g. a decoupled fit.
    fixed_mu : array, (T, n), optional
        A given forecast per month (e.g. an MSE fit's): only the risk model learns.
    fixed_risk : tuple of arrays ``(F (T, n, k), d (T, n))``, optional
        A given factor covariance per month (e.g. Ledoit-Wolf's): only the forecast learns.
    sectors : sequence of str, optional
        Each asset's sector, for the portfolio's ``sector_max``.
    """
    config = config or TrainConfig()
    portfolio = portfolio or PortfolioConfig()
    if tc < 0:
        raise DataError(f"tc: expected a cost >= 0, got {tc}")
    parts, masks = _split(exposures, next_returns, config, investable)
    _, n_assets, n_features = parts["train"][0].shape
    portfolio.validate(n_assets, sectors)
    rows = portfolio.sector_rows(sectors, config.device)
    n_months, cut = np.shape(next_returns)[0], parts["train"][0].shape[0]
    bounds = {
        part: {} if mask is None else portfolio.bounds(mask["investable"])
        for part, mask in masks.items()
    }
    fixed: dict[str, torch.Tensor] = {}
    if fixed_mu is not None:
        fixed["mu"] = _fixed(fixed_mu, "fixed_mu", (n_months, n_assets), config.device)
    if fixed_risk is not None:
        loadings, idiosyncratic = fixed_risk
        fixed["F"] = _fixed(loadings, "fixed_risk", (n_months, n_assets), config.device)
        fixed["d"] = _fixed(idiosyncratic, "fixed_risk", (n_months, n_assets), config.device)
    halves = {"train": slice(None, cut), "validation": slice(cut, None)}
    layer = portfolio.layer(n_assets)
    if initial_model is not None:
        model = copy.deepcopy(initial_model).double().to(config.device)
    else:
        model = _new_model(n_features, config, network)

    # every epoch solves the same months: each starts from its last certified active set
    warm = {part: [WarmStart() for _ in range(1 if portfolio.kappa == 0 else len(x))]
            for part, (x, _) in parts.items()}  # fmt: skip

    def objective(model, part):
        features, target = parts[part]
        mu, loadings, idiosyncratic = model(features)
        given = {k: v[halves[part]] for k, v in fixed.items()}
        risk = {"F": given.get("F", loadings), "d": given.get("d", idiosyncratic)}
        risk.update(bounds[part])
        weights = solve_path(layer, given.get("mu", mu), risk, target, warm=warm[part], rows=rows)
        value = loss(weights, target, tc)
        return value, -value.item()

    return _fit(model, objective, config, higher_is_better=True)


def gaussian_nll(
    residuals: torch.Tensor, loadings: torch.Tensor, idiosyncratic: torch.Tensor
) -> torch.Tensor:
    r"""Mean Gaussian negative log-likelihood of residuals (T, n) under ``F F' + diag(d)``.

    Per month :math:`\tfrac12(\log\det\Sigma + e^\top\Sigma^{-1}e)` without the constant, by
    Woodbury and the matrix determinant lemma with the capacitance :math:`C = I + F^\top D^{-1}
    F` (k x k): nothing of size n x n is formed.
    """
    scaled = loadings / idiosyncratic[..., None]  # D^-1 F, (T, n, k)
    k = loadings.shape[-1]
    capacitance = torch.eye(k, dtype=loadings.dtype, device=loadings.device) + (
        loadings.transpose(-1, -2) @ scaled
    )
    cholesky = torch.linalg.cholesky(capacitance)
    log_det = torch.log(idiosyncratic).sum(-1) + 2 * torch.log(
        torch.diagonal(cholesky, dim1=-2, dim2=-1)
    ).sum(-1)
    projected = scaled.transpose(-1, -2) @ residuals[..., None]  # F' D^-1 e, (T, k, 1)
    solved = torch.cholesky_solve(projected, cholesky)
    quadratic = (residuals**2 / idiosyncratic).sum(-1) - (projected * solved).sum((-1, -2))
    return 0.5 * (log_det + quadratic).mean()


def train_risk_nll(
    exposures,
    next_returns,
    forecast,
    config: TrainConfig | None = None,
    investable=None,
    *,
    network: NetworkFactory | None = None,
) -> TrainResult:
    """Fit the risk model ``F``, ``d`` for statistical fit around a given forecast.

    A fresh network (seeded by ``config.seed``) learns ``F`` and ``d`` by the Gaussian
    negative log-likelihood (:func:`gaussian_nll`) of the residuals ``next_returns -
    forecast``; its own ``mu`` is unused. Early stopping on the validation NLL. ``forecast``
    (T, n) is the forecast of each month (e.g. an MSE fit's); the other parameters are as for
    :func:`train_decoupled`; with unknown pairs each month's likelihood is that of its known
    assets only.
    """
    config = config or TrainConfig()
    parts, masks = _split(exposures, next_returns, config, investable)
    n_months, cut = np.shape(next_returns)[0], parts["train"][0].shape[0]
    given = _fixed(np.nan_to_num(np.asarray(forecast, dtype=np.float64)), "forecast",
                   (n_months, np.shape(next_returns)[1]), config.device)  # fmt: skip
    residuals = {"train": parts["train"][1] - given[:cut],
                 "validation": parts["validation"][1] - given[cut:]}  # fmt: skip

    def objective(model, part):
        _, loadings, idiosyncratic = model(parts[part][0])
        residual, mask = residuals[part], masks[part]
        if mask is not None:  # unknown assets: no loading, unit variance, zero residual
            known = mask["known"]
            loadings = loadings * known[..., None]
            idiosyncratic = torch.where(known, idiosyncratic, 1.0)
            residual = torch.where(known, residual, 0.0)
        loss = gaussian_nll(residual, loadings, idiosyncratic)
        return loss, loss.item()

    n_features = parts["train"][0].shape[-1]
    model = _new_model(n_features, config, network)
    return _fit(model, objective, config, higher_is_better=False)
