"""The arms of the central comparison: training for decisions against training for accuracy.

Eight strategies with stable slugs (:data:`ARMS`), every one a plain callable on a
:class:`~e2e_portfolio.backtest.walkforward.PastView`:

============== ========================================== ==================================
slug           forecast ``mu``                             risk model
============== ========================================== ==================================
equal_weight   (none: 1/N)                                 (none)
min_variance   0 (long-only minimum variance)              shrunk covariance of the window
plug_in        trailing sample mean                        trailing sample covariance
decoupled      network trained by MSE                      shrunk covariance of the window
decoupled_nll  network trained by MSE                      network ``F F' + diag(d)`` by NLL
e2e            network trained for net Sharpe              network ``F F' + diag(d)``, same
e2e_risk       network trained by MSE (frozen)             network trained for net Sharpe
e2e_return     network trained for net Sharpe              shrunk covariance of the window
============== ========================================== ==================================

"Shrunk covariance" is Ledoit-Wolf by default (``covariance="oas"`` or ``"nonlinear"`` for the
alternatives). ``e2e_risk`` vs ``decoupled_nll`` isolates the decision loss on the risk model;
``e2e_return`` vs ``decoupled`` isolates it on the forecast.

**Same protocol for every arm.** All learned arms use the same network family and seed, the
same training pairs (the last ``train_months`` pairs known at the refit date, from the
``MIN_HISTORY``-th month on), the same chronological validation split (the last
``validation_fraction`` of those pairs) and early stopping, and refit on the same dates (every
``refit_every`` decisions). **Every arm that goes through the QP gets its risk aversion chosen
on those validation months from the same grid** (:data:`GAMMA_GRID`): the arm's portfolios of
each validation month are recomputed for every gamma from data up to that month, scored by
their net Sharpe (two-sided turnover against the drifted book, as in the backtest), and the
best gamma is used until the next refit. For the networks trained for Sharpe at
``config.gamma`` this is the same as choosing the scale of their forecast. Minimum variance
has no forecast, so no gamma to choose. The choices are kept in :attr:`ArmSet.tuning`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.backtest.arm_names import (
    ARMS,
    COVARIANCES,
    GAMMA_GRID,
    TUNED,
    Covariance,
)
from e2e_portfolio.backtest.strategies import equal_weight
from e2e_portfolio.backtest.walkforward import PastView, Strategy
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import nonlinear_shrinkage
from e2e_portfolio.models.losses import drifted
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.risk import covariance_root
from e2e_portfolio.models.train import TrainConfig, train_decoupled, train_e2e, train_risk_nll
from e2e_portfolio.turnover import path_turnover

MIN_HISTORY = 13
"""Months of history a past month needs to be a training or validation month (a trailing
covariance from fewer is noise; nonlinear shrinkage needs 13)."""


def shrunk_covariance(returns: np.ndarray, estimator: Covariance) -> np.ndarray:
    """Ledoit-Wolf, OAS (scikit-learn) or analytical nonlinear shrinkage of (W, n) returns."""
    if estimator == "nonlinear":
        return nonlinear_shrinkage(returns)
    from sklearn.covariance import OAS, LedoitWolf

    model = LedoitWolf() if estimator == "ledoit-wolf" else OAS()
    return model.fit(returns).covariance_


def _window_covariance(
    returns: np.ndarray, s: int, window: int, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """Covariance (n, n) of the ``window`` months ending at position ``s``, and its mask (n,).

    Only the assets with a return in every one of those months enter (fewer months where
    fewer are known). ``how``: a :data:`Covariance` estimator, or ``"sample"`` (ddof 1). An
    excluded asset gets the mean variance of the others on the diagonal (it is never held).
    """
    past = returns[max(0, s - window + 1) : s + 1]
    mask = np.isfinite(past).all(axis=0)
    if mask.sum() < 2:
        raise DataError(f"window: expected at least 2 assets with a full window at position "
                        f"{s}, got {int(mask.sum())}")  # fmt: skip
    sub = past[:, mask]
    covariance = (np.cov(sub, rowvar=False) if how == "sample"
                  else shrunk_covariance(sub, how))  # type: ignore[arg-type]  # fmt: skip
    full = np.diag(np.full(mask.size, np.mean(np.diag(covariance))))
    full[np.ix_(mask, mask)] = covariance
    return full, mask


@dataclass
class _Refit:
    """What all arms share at one refit date ``t``: the training pairs and their estimates."""

    positions: np.ndarray  # (S,) panel positions s of the pairs (exposures[s], returns[s + 1])
    x: np.ndarray  # (S, n, k)
    y: np.ndarray  # (S, n)
    validation: slice  # the validation pairs
    returns: np.ndarray  # (t + 1, n) the past returns
    date: str  # the refit date
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class _ArmState:
    refit_date: int = -1
    models: dict[str, ReturnPredictor] = field(default_factory=dict)
    gamma: float = 1.0


@dataclass
class ArmSet:
    """The eight arms on one panel, sharing training data, the MSE fit and covariance estimates.

    Parameters
    ----------
    config : TrainConfig
        Network, training, QP (``gamma`` for training, ``w_max``, ``kappa``) and cost options.
    first_decision : int
        The backtest's first decision position: refits happen there and every
        ``refit_every`` decisions after it.
    window : int
        Months in every trailing covariance and plug-in mean.
    refit_every : int
    train_months : int
        Pairs in each training set (at most).
    covariance : {"ledoit-wolf", "oas", "nonlinear"}
        The shrunk covariance of ``min_variance``, ``decoupled`` and ``e2e_return``.
    gamma_grid : sequence of float
        Risk aversions the QP arms choose from.
    """

    config: TrainConfig
    first_decision: int
    window: int = 48
    refit_every: int = 12
    train_months: int = 120
    covariance: Covariance = "ledoit-wolf"
    gamma_grid: Sequence[float] = GAMMA_GRID
    on_refit: Callable[[str, str], None] | None = field(default=None, repr=False)
    """Called with the arm and the refit date before an arm trains (progress bars)."""
    tuning: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per arm, per refit: ``date``, the chosen ``gamma`` and the validation Sharpe per gamma."""
    histories: dict[str, list[dict[str, list[float]]]] = field(default_factory=dict)
    _refits: dict[int, _Refit] = field(default_factory=dict, repr=False)
    _covariances: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )
    """Window covariances by (estimator, position): the arms, their tuning and training share
    them (one ArmSet walks one panel, so a position's past never changes)."""
    _states: dict[str, _ArmState] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.covariance not in COVARIANCES:
            raise DataError(f"covariance: expected one of {COVARIANCES}, got {self.covariance!r}")
        grid = [float(g) for g in self.gamma_grid]
        if not grid or any(not math.isfinite(g) or g <= 0 for g in grid):
            raise DataError(f"gamma_grid: expected positive risk aversions, got {grid}")
        self.gamma_grid = tuple(sorted(set(grid)))

    # ------------------------------------------------------------------ the strategies
    def strategies(self, arms: Sequence[str] = ARMS) -> dict[str, Strategy]:
        """The named arms as strategies for :func:`~.walkforward.run_comparison`."""
        unknown = [a for a in arms if a not in ARMS]
        if unknown or not arms:
            raise DataError(f"arms: expected some of {', '.join(ARMS)}, got {list(arms)}")
        return {arm: self._strategy(arm) for arm in arms}

    def _strategy(self, arm: str) -> Strategy:
        def decide(view: PastView) -> np.ndarray:
            return self.weights(arm, view)

        decide.__name__ = arm
        return decide

    def models(self, arm: str) -> dict[str, ReturnPredictor]:
        """The arm's networks at its latest refit (``"mu"``, ``"risk"``, as it uses them)."""
        return dict(self._states[arm].models) if arm in self._states else {}

    def weights(self, arm: str, view: PastView) -> np.ndarray:
        """The arm's weights (n,) at the view's last date; refits first when due."""
        t = len(view.dates) - 1
        if arm == "equal_weight":
            return equal_weight(view)
        refit_date = self._refit_date(t)
        state = self._states.setdefault(arm, _ArmState())
        if arm in TUNED and state.refit_date != refit_date:
            self._refit(arm, state, self._refit_data(refit_date, view))
        mu, risk = self._moments(arm, state, view.returns, view.exposures[-1:], [t])
        gamma = state.gamma if arm in TUNED else 1.0
        return self._solve(mu, risk, gamma, view.holdings)[0]

    # ------------------------------------------------------------------ refits
    def _refit_date(self, t: int) -> int:
        if t < self.first_decision:
            raise DataError(f"view: expected a date from position {self.first_decision}, got {t}")
        return t - (t - self.first_decision) % self.refit_every

    def _refit_data(self, t: int, view: PastView) -> _Refit:
        if t not in self._refits:
            if len(view.dates) - 1 != t:
                raise DataError("view: the first view of a refit period must be at its refit date")
            x, y = view.training_pairs()
            positions = np.arange(len(y))
            keep = positions >= max(MIN_HISTORY - 1, len(y) - self.train_months)
            positions, x, y = positions[keep], x[keep], y[keep]
            n_validation = max(2, round(self.config.validation_fraction * len(y)))
            if len(y) - n_validation < 3:
                raise DataError(
                    f"first_decision: expected at least {MIN_HISTORY + 4} months of history "
                    f"before the first refit, got {t + 1}"
                )
            self._refits[t] = _Refit(positions, np.array(x), np.array(y),
                                     slice(len(y) - n_validation, None),
                                     np.array(view.returns), f"{view.dates[-1]:%Y-%m}")  # fmt: skip
        return self._refits[t]

    def _roots(
        self, returns: np.ndarray, positions: Sequence[int] | np.ndarray, how: str
    ) -> tuple[torch.Tensor, np.ndarray]:
        """Covariance roots (m, n, n) of the windows ending at the positions, and masks (m, n).

        See :func:`_window_covariance`; each window's covariance is estimated once per ArmSet.
        """
        pairs = []
        for s in positions:
            key = (how, int(s))
            if key not in self._covariances:
                self._covariances[key] = _window_covariance(returns, int(s), self.window, how)
            pairs.append(self._covariances[key])
        covariances = np.array([covariance for covariance, _ in pairs])
        roots = covariance_root(torch.as_tensor(covariances, dtype=torch.float64))
        return roots, np.array([mask for _, mask in pairs])

    def _shared(self, data: _Refit, key: str, make: Callable[[], Any]) -> Any:
        if key not in data.cache:
            data.cache[key] = make()
        return data.cache[key]

    def _refit(self, arm: str, state: _ArmState, data: _Refit) -> None:
        c = self.config
        if self.on_refit is not None:
            self.on_refit(arm, data.date)
        # a changing universe: an asset may be held at s only if it was listed then
        listed = np.isfinite(data.returns[data.positions])
        investable = None if listed.all() else listed
        models: dict[str, ReturnPredictor] = {}
        trained = []
        if arm in ("decoupled", "decoupled_nll", "e2e_risk"):
            mse = self._shared(data, "mse", lambda: train_decoupled(data.x, data.y, c, investable))
            models["mu"] = mse.model
            trained.append(("decoupled", mse))
        if arm == "decoupled_nll":
            nll = self._shared(data, "nll", lambda: train_risk_nll(
                data.x, data.y, mse.model, c, investable))  # fmt: skip
            models["risk"] = nll.model
            trained.append((arm, nll))
        elif arm == "e2e":
            result = train_e2e(data.x, data.y, c, investable=investable)
            models["mu"] = models["risk"] = result.model
            trained.append((arm, result))
        elif arm == "e2e_risk":
            result = train_e2e(data.x, data.y, c, frozen_mu=mse.model, investable=investable)
            models["risk"] = result.model
            trained.append((arm, result))
        elif arm == "e2e_return":
            roots, masks = self._roots(data.returns, data.positions, self.covariance)
            allowed = masks if investable is None else masks & investable
            result = train_e2e(data.x, data.y, c, risk_roots=roots,
                               investable=None if allowed.all() else allowed)  # fmt: skip
            models["mu"] = result.model
            trained.append((arm, result))
        state.models, state.refit_date = models, len(data.returns) - 1
        self.histories.setdefault(arm, []).extend(r.history for _, r in trained[-1:])
        self._tune(arm, state, data)

    def _tune(self, arm: str, state: _ArmState, data: _Refit) -> None:
        """Choose gamma on the validation months (data up to each month only)."""
        positions = data.positions[data.validation]
        realised = np.nan_to_num(data.y[data.validation])  # delisted: earns 0, as in the backtest
        mu, risk = self._moments(arm, state, data.returns, data.x[data.validation], positions)
        scores = {}
        for gamma in self.gamma_grid:
            weights = self._solve(mu, risk, gamma, None, realised)
            net = (weights * realised).sum(-1) - self.config.tc * path_turnover(weights, realised)
            scores[gamma] = float(annualised_sharpe(net)) if net.std() > 0 else -math.inf
        state.gamma = max(self.gamma_grid, key=lambda g: scores[g])  # first best (smallest)
        self.tuning.setdefault(arm, []).append(
            {"date": data.date, "gamma": state.gamma,
             "validation_sharpe": {str(g): s for g, s in scores.items()}}
        )  # fmt: skip

    # ------------------------------------------------------------------ one decision
    def _moments(
        self,
        arm: str,
        state: _ArmState,
        returns: np.ndarray,
        exposures: np.ndarray,
        positions: Sequence[int] | np.ndarray,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``mu`` (m, n) and the risk model (``R`` or ``F, d``) at the given past positions.

        ``exposures`` (m, n, k) are those at the positions; trailing estimates use
        ``returns[: s + 1]`` for each position ``s`` only.
        """
        x = torch.as_tensor(np.array(exposures), dtype=torch.float64).to(self.config.device)
        m, n = x.shape[:2]
        # an asset may be held only if listed now and its exposures are known (networks)
        holdable = np.isfinite(returns[np.asarray(positions)])
        if arm not in ("min_variance", "plug_in"):
            holdable &= np.isfinite(np.asarray(exposures)).all(axis=-1)
        x = torch.nan_to_num(x)
        masks = None
        if arm in ("min_variance", "plug_in", "decoupled", "e2e_return"):
            how = "sample" if arm == "plug_in" else self.covariance
            roots, masks = self._roots(returns, positions, how)
            holdable &= masks
            risk = {"R": roots.to(x.device)}
        else:
            with torch.no_grad():
                _, loadings, idiosyncratic = state.models["risk"](x)
            risk = {"F": loadings, "d": idiosyncratic}
        if not holdable.all():
            cap = 1.0 if self.config.w_max is None else self.config.w_max
            risk["upper"] = torch.as_tensor(np.where(holdable, cap, 0.0)).to(x.device)
        if arm == "min_variance":
            mu = x.new_zeros((m, n))
        elif arm == "plug_in":
            means = [returns[max(0, s - self.window + 1) : s + 1].mean(axis=0) for s in positions]
            assert masks is not None
            means_array = np.where(masks, np.array(means), 0.0)  # excluded assets: not held
            mu = torch.as_tensor(means_array, dtype=torch.float64).to(x.device)
        else:
            with torch.no_grad():
                mu = state.models["mu"](x)[0]
        return mu, risk

    def _solve(
        self,
        mu: torch.Tensor,
        risk: dict[str, torch.Tensor],
        gamma: float,
        holdings: np.ndarray | None,
        realised: np.ndarray | None = None,
    ) -> np.ndarray:
        """Weights (m, n): one batch, or month by month through the drifted book if kappa > 0.

        ``holdings`` is the book before the first month (equal weights when None);
        ``realised`` (m, n) the returns each month earned (needed to chain when m > 1).
        """
        c = self.config
        n = mu.shape[-1]
        layer = MeanVarianceQP(n, None, gamma, w_max=c.w_max, kappa=c.kappa)
        with torch.no_grad():
            if c.kappa == 0:
                return layer(mu, **risk).cpu().numpy()
            start = np.full(n, 1.0 / n) if holdings is None else np.array(holdings)
            held = torch.as_tensor(start, dtype=torch.float64).to(mu.device)
            path = []
            for i in range(mu.shape[0]):
                weights = layer(mu[i], w_prev=held, **{k: v[i] for k, v in risk.items()})
                path.append(weights)
                if realised is not None:
                    held = drifted(weights, torch.as_tensor(realised[i]).to(mu.device))
            return torch.stack(path).cpu().numpy()
