"""Training the predictor: for accuracy (decoupled) or for decisions (end-to-end).

- :func:`train_decoupled` fits :class:`ReturnPredictor`'s ``mu`` to next-month returns by MSE.
  At decision time the optimiser pairs that forecast with a Ledoit-Wolf covariance of the
  trailing returns (:func:`~e2e_portfolio.models.risk.ledoit_wolf_covariance`): the textbook
  two-stage estimator.
- :func:`train_e2e` makes every epoch one pass over the whole training period: the QP is
  solved for every month (one batch when ``kappa == 0``; month by month with ``w_prev`` the
  previous month's solution drifted by its returns when ``kappa > 0``), the realised net
  returns are assembled and minus their annualised Sharpe ratio is back-propagated through
  every solve into the predictor's ``mu``, ``F`` and ``d``. Two ablations train half of it:
  ``frozen_mu`` (the forecast of a fixed model, e.g. an MSE fit; only ``F`` and ``d`` learn)
  and ``risk_roots`` (given covariance roots, e.g. Ledoit-Wolf; only ``mu`` learns).
- :func:`train_risk_nll` fits ``F`` and ``d`` for statistical fit: the Gaussian negative
  log-likelihood of the realised returns around a fixed model's forecast.

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
    if torch.isinf(x).any() or torch.isinf(y).any():
        raise DataError("exposures, next_returns: expected finite values or NaN, got inf")
    return x, y


Masks = dict[str, torch.Tensor]
"""``investable`` (T, n): the asset may be held that month (listed, exposures known);
``known`` (T, n): investable and its next return is known (what a forecast is scored on)."""


def _split(exposures, next_returns, config: TrainConfig, investable=None):
    """Validated tensors split chronologically, and the masks of a changing universe.

    Returns ``parts`` (``{"train": (x, y), "validation": (x, y)}``, NaN replaced by 0) and
    ``masks`` (per part a :data:`Masks`, or None when every value is known: then training is
    exactly the unmasked computation). ``investable`` (T, n) narrows the assets that may be
    held (e.g. those listed at each month); unknown exposures exclude an asset anyway.
    """
    config.validate(np.shape(next_returns)[-1])
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
    masks: dict[str, Masks | None] = {"train": None, "validation": None}
    if not complete:
        masks = {
            "train": {"investable": can_hold[:cut], "known": known[:cut]},
            "validation": {"investable": can_hold[cut:], "known": known[cut:]},
        }
    return parts, masks


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
    exposures, next_returns, config: TrainConfig | None = None, investable=None
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
    return _fit(_new_model(n_features, config), objective, config, higher_is_better=False)


def solve_path(
    model: ReturnPredictor,
    layer: MeanVarianceQP,
    exposures: torch.Tensor,
    realised: torch.Tensor,
    w_start: torch.Tensor | None = None,
    *,
    frozen_mu: ReturnPredictor | None = None,
    risk_roots: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weights (T, n) for every month: one batch, or chained through ``w_prev`` if kappa > 0.

    With a turnover penalty each month's ``w_prev`` is the book held then: the previous
    month's weights drifted by the ``realised`` (T, n) returns they earned, as in the
    backtest (``w_start``, equal weights by default, before the first month). The risk model
    goes to the layer in factor form (``F``, ``d``): gradients reach the loadings and variances
    directly and nothing of size ``n x n`` is formed. ``frozen_mu`` replaces the model's
    forecast by that model's (no gradient); ``risk_roots`` (T, m, n) replace its risk model by
    given roots ``R`` with ``R'R = Sigma``. ``upper`` (T, n): per-asset caps, 0 for an asset
    that may not be held that month.
    """
    mu, loadings, idiosyncratic = model(exposures)
    if frozen_mu is not None:
        with torch.no_grad():
            mu = frozen_mu(exposures)[0]
    n = exposures.shape[1]

    def risk(t: int | slice) -> dict[str, torch.Tensor]:
        caps = {} if upper is None else {"upper": upper[t]}
        if risk_roots is not None:
            return {"R": risk_roots[t], **caps}
        return {"F": loadings[t], "d": idiosyncratic[t], **caps}

    if layer.kappa == 0:
        return layer(mu, **risk(slice(None)))
    held = w_start if w_start is not None else mu.new_full((n,), 1.0 / n)
    path = []
    for t in range(exposures.shape[0]):
        weights = layer(mu[t], w_prev=held, **risk(t))
        path.append(weights)
        held = drifted(weights, realised[t])
    return torch.stack(path)


def train_e2e(
    exposures,
    next_returns,
    config: TrainConfig | None = None,
    initial_model: ReturnPredictor | None = None,
    *,
    frozen_mu: ReturnPredictor | None = None,
    risk_roots=None,
    investable=None,
) -> TrainResult:
    """Train the predictor for the net Sharpe ratio of the QP's portfolios (end-to-end).

    Parameters are as for :func:`train_decoupled`; ``initial_model`` (copied) starts the
    training from given weights, e.g. a decoupled fit. ``frozen_mu``: a fixed model whose
    forecast the QP gets, so only the risk model learns (``e2e_risk``). ``risk_roots`` (T, m, n):
    fixed covariance roots per month, so only the forecast learns (``e2e_return``).
    ``investable`` as for :func:`train_decoupled`: the QP may not hold the other assets
    (caps of 0) and an unknown next return counts as 0.
    """
    config = config or TrainConfig()
    parts, masks = _split(exposures, next_returns, config, investable)
    cap = 1.0 if config.w_max is None else config.w_max
    uppers = {
        part: None if mask is None else torch.where(mask["investable"], cap, 0.0).double()
        for part, mask in masks.items()
    }
    roots: dict[str, torch.Tensor | None] = {"train": None, "validation": None}
    if risk_roots is not None:
        stacked = torch.as_tensor(np.asarray(risk_roots), dtype=torch.float64).to(config.device)
        if stacked.ndim != 3 or stacked.shape[0] != np.shape(next_returns)[0]:
            raise DataError(
                f"risk_roots: expected shape (T, m, n) with T = {np.shape(next_returns)[0]}, "
                f"got {tuple(stacked.shape)}"
            )
        cut = parts["train"][0].shape[0]
        roots = {"train": stacked[:cut], "validation": stacked[cut:]}
    if frozen_mu is not None:
        frozen_mu = copy.deepcopy(frozen_mu).double().to(config.device).eval()
    _, n_assets, n_features = parts["train"][0].shape
    n_factors = None if risk_roots is not None else config.n_risk_factors
    layer = MeanVarianceQP(n_assets, n_factors, config.gamma, config.w_max, config.kappa)
    if initial_model is not None:
        model = copy.deepcopy(initial_model).double().to(config.device)
    else:
        model = _new_model(n_features, config)

    def objective(model, part):
        features, target = parts[part]
        weights = solve_path(model, layer, features, target, frozen_mu=frozen_mu,
                             risk_roots=roots[part], upper=uppers[part])  # fmt: skip
        loss = negative_sharpe_loss(weights, target, config.tc)
        return loss, -loss.item()

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
    mu_model: ReturnPredictor,
    config: TrainConfig | None = None,
    investable=None,
) -> TrainResult:
    """Fit the risk model ``F``, ``d`` for statistical fit around a fixed forecast.

    A fresh predictor of the same family (seeded by ``config.seed``) learns ``F`` and ``d`` by
    the Gaussian negative log-likelihood (:func:`gaussian_nll`) of the residuals
    ``next_returns - mu_model(exposures)``; its own ``mu`` is unused. Early stopping on the
    validation NLL. Parameters are as for :func:`train_decoupled`; with unknown pairs each
    month's likelihood is that of its known assets only.
    """
    config = config or TrainConfig()
    parts, masks = _split(exposures, next_returns, config, investable)
    frozen = copy.deepcopy(mu_model).double().to(config.device).eval()
    with torch.no_grad():
        residuals = {part: y - frozen(x)[0] for part, (x, y) in parts.items()}

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
    return _fit(_new_model(n_features, config), objective, config, higher_is_better=False)
