"""Any set of arms, walked forward under one protocol: the central comparison's engine.

An arm is a specification (:class:`~e2e_portfolio.backtest.arm_specs.Arm`): a forecast source,
a risk model, a trainer and its loss, and whether gamma is tuned. The eight arms of
``e2e compare`` are :data:`~e2e_portfolio.backtest.arm_specs.BUILTIN_ARMS`:

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

"Shrunk covariance" is Ledoit-Wolf by default (``covariance="oas"`` or ``"nonlinear"``, or any
risk model). ``e2e_risk`` vs ``decoupled_nll`` isolates the decision loss on the risk model;
``e2e_return`` vs ``decoupled`` isolates it on the forecast.

**Same protocol for every arm.** All learned arms use the same training pairs (the last
``train_months`` pairs known at the refit date, from the ``MIN_HISTORY``-th month on), the
same chronological validation split (the last ``validation_fraction`` of those pairs) and
early stopping, the same seed, and refit on the same dates (every ``refit_every`` decisions);
arms with the same network share its MSE and likelihood fits. **Every tuned arm gets its risk
aversion chosen on those validation months from the same grid**: the arm's portfolios of
each validation month are recomputed for every gamma from data up to that month, scored by
their net Sharpe (two-sided turnover against the drifted book, as in the backtest), and the
best gamma is used until the next refit. For networks trained for Sharpe at the portfolio's
gamma this is the same as choosing the scale of their forecast. The choices are kept in
:attr:`ArmSet.tuning`.

**Risk in factor form.** Every covariance reaches the QP as ``F``, ``d`` (window estimates
from :mod:`e2e_portfolio.models.covariance`, with at most ``window`` factors; the networks'
own), so nothing of size ``n x n`` is formed and the layer runs its factor path: each window
is estimated once per ArmSet and shared by decisions, tuning and training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.backtest.arm_specs import (
    ARMS,
    GAMMA_GRID,
    SHRUNK,
    Arm,
    Covariance,
    check_covariance,
    check_gamma_grid,
    resolve_arms,
)
from e2e_portfolio.backtest.gamma_grid import choose_gamma
from e2e_portfolio.backtest.strategies import equal_weight
from e2e_portfolio.backtest.walkforward import PastView, Strategy, declare
from e2e_portfolio.backtest.windows import TrailingWindows
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import RISK_MODELS, RiskModel
from e2e_portfolio.models.losses import DECISION_LOSSES, DecisionLoss
from e2e_portfolio.models.portfolio import PortfolioConfig, solve_path
from e2e_portfolio.models.train import TrainConfig, train_decoupled, train_e2e, train_risk_nll
from e2e_portfolio.turnover import path_turnover

MIN_HISTORY = 13
"""Months of history a past month needs to be a training or validation month (a trailing
covariance from fewer is noise; nonlinear shrinkage needs 13)."""


@dataclass
class _Refit:
    """What all arms share at one refit date ``t``: the training pairs and their fits."""

    positions: np.ndarray  # (S,) panel positions s of the pairs (exposures[s], returns[s + 1])
    x: np.ndarray  # (S, n, k)
    y: np.ndarray  # (S, n)
    validation: slice  # the validation pairs
    returns: np.ndarray  # (t + 1, n) the past returns
    date: str  # the refit date
    cache: dict[Any, Any] = field(default_factory=dict)


@dataclass
class _ArmState:
    refit_date: int = -1
    models: dict[str, nn.Module] = field(default_factory=dict)
    gamma: float = 1.0


@dataclass
class ArmSet:
    """Arms on one panel, sharing training data, fits and window covariances.

    Parameters
    ----------
    portfolio : PortfolioConfig
        The QP (``gamma`` the networks train at, bounds, budget, leverage, sector cap,
        ``kappa``).
    train : TrainConfig
        Network and optimiser settings.
    first_decision : int
        The backtest's first decision position: refits happen there and every
        ``refit_every`` decisions after it.
    tc : float
        Cost per unit of two-sided turnover: in the decision losses and the gamma tuning.
    window : int
        Months in every trailing covariance and mean.
    refit_every : int
    train_months : int
        Pairs in each training set (at most).
    covariance : {"ledoit_wolf", "oas", "nonlinear"} or RiskModel
        What the arms' ``"shrunk"`` risk source is.
    gamma_grid : sequence of float
        Risk aversions the tuned arms choose from.
    widen_gamma_grid : bool
        Extend the grid at an end while the best gamma sits there (see ``ArmSet._tune``).
    sectors : sequence of str, optional
        The panel's sector per asset: with ``portfolio.sector_max`` every QP (decisions,
        gamma tuning, decision losses) caps each sector's weight.
    """

    portfolio: PortfolioConfig
    train: TrainConfig
    first_decision: int
    tc: float = 0.005
    window: int = 48
    refit_every: int = 12
    train_months: int = 120
    covariance: Covariance | RiskModel = "ledoit_wolf"
    gamma_grid: Sequence[float] = GAMMA_GRID
    widen_gamma_grid: bool = False
    sectors: Sequence[str] | None = None
    on_refit: Callable[[str, str], None] | None = field(default=None, repr=False)
    """Called with the arm and the refit date before an arm refits (progress bars)."""
    tuning: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per arm, per refit: ``date``, the chosen ``gamma``, its ``edge`` (``"low"`` or ``"high"``
    when it is an end of the grid, else None) and the validation Sharpe per gamma tried."""
    histories: dict[str, list[dict[str, list[float]]]] = field(default_factory=dict)
    _refits: dict[int, _Refit] = field(default_factory=dict, repr=False)
    _windows: TrailingWindows = field(init=False, repr=False)
    _rows: dict[str, torch.Tensor] = field(init=False, repr=False)
    _states: dict[str, _ArmState] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.covariance, str):  # an earlier spelling (ledoit-wolf) still works
            self.covariance = check_covariance(self.covariance)
        self.gamma_grid = check_gamma_grid(self.gamma_grid)
        if not (self.tc >= 0 and math.isfinite(self.tc)):
            raise DataError(f"tc: expected a finite cost >= 0, got {self.tc}")
        self._windows = TrailingWindows(self.window)
        self._rows = self.portfolio.sector_rows(self.sectors)  # the same for every solve

    # ------------------------------------------------------------------ the strategies
    def strategies(self, arms: Sequence[Arm | str] = ARMS) -> dict[str, Strategy]:
        """The arms (slugs of the built-ins or :class:`Arm` s) as strategies by slug."""
        return {arm.slug: self._strategy(arm) for arm in resolve_arms(list(arms))}

    def _strategy(self, arm: Arm) -> Strategy:
        def decide(view: PastView) -> np.ndarray:
            return self.weights(arm, view)

        decide.__name__ = arm.slug
        if arm.holds_equal_weights:
            return decide
        return declare(decide, short=self.portfolio.w_min < 0,
                       leverage=self.portfolio.budget != 1.0)  # fmt: skip

    def models(self, slug: str) -> dict[str, nn.Module]:
        """The arm's networks at its latest refit (``"mu"``, ``"risk"``, as it uses them)."""
        return dict(self._states[slug].models) if slug in self._states else {}

    def weights(self, arm: Arm | str, view: PastView) -> np.ndarray:
        """The arm's weights (n,) at the view's last date; refits first when due."""
        (arm,) = resolve_arms([arm])
        if arm.holds_equal_weights:
            return equal_weight(view)
        t = len(view.dates) - 1
        refit_date = self._refit_date(t)
        state = self._states.setdefault(arm.slug, _ArmState())
        if (arm.uses_network or arm.tune_gamma) and state.refit_date != refit_date:
            self._refit(arm, state, self._refit_data(refit_date, view))
        mu, risk = self._moments(arm, state, view.returns, view.exposures[-1:], [t])
        return self._solve(mu, risk, self._gamma(arm, state), view.holdings)[0]

    def _gamma(self, arm: Arm, state: _ArmState) -> float:
        if arm.tune_gamma:
            return state.gamma
        return self.portfolio.gamma if arm.gamma is None else arm.gamma

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
            n_validation = max(2, round(self.train.validation_fraction * len(y)))
            if len(y) - n_validation < 3:
                raise DataError(
                    f"first_decision: expected at least {MIN_HISTORY + 5} months of history "
                    f"before the first refit, got {t + 1}"
                )
            self._refits[t] = _Refit(positions, np.array(x), np.array(y),
                                     slice(len(y) - n_validation, None),
                                     np.array(view.returns), f"{view.dates[-1]:%Y-%m}")  # fmt: skip
        return self._refits[t]

    def _shared(self, data: _Refit, key: Any, make: Callable[[], Any]) -> Any:
        if key not in data.cache:
            data.cache[key] = make()
        return data.cache[key]

    def _refit(self, arm: Arm, state: _ArmState, data: _Refit) -> None:
        """Train what the arm learns on the refit's pairs, then choose its gamma."""
        if self.on_refit is not None:
            self.on_refit(arm.slug, data.date)
        # a changing universe: an asset may be held at s only if it was listed then
        listed = np.isfinite(data.returns[data.positions])
        models: dict[str, nn.Module] = {}
        history = None
        if arm.forecast == "mse" or arm.risk == "nll":
            mse = self._shared(data, ("mse", arm.network), lambda: train_decoupled(
                data.x, data.y, self.train, _unless_all(listed), network=arm.network))  # fmt: skip
            if arm.forecast == "mse":
                models["mu"], history = mse.model, mse.history
        if arm.risk == "nll":
            nll = self._shared(data, ("nll", arm.network), lambda: train_risk_nll(
                data.x, data.y, _forecast(mse.model, data.x, self.train.device), self.train,
                _unless_all(listed), network=arm.network))  # fmt: skip
            models["risk"], history = nll.model, nll.history
        if arm.learns_for_decisions:
            result = self._train_for_decisions(arm, models, data, listed)
            if arm.forecast == "decision":
                models["mu"] = result.model
            if arm.risk == "decision":
                models["risk"] = result.model
            history = result.history
        state.models, state.refit_date = models, len(data.returns) - 1
        self.histories.setdefault(arm.slug, []).extend([history] if history else [])
        if arm.tune_gamma:
            self._tune(arm, state, data)

    def _train_for_decisions(
        self, arm: Arm, models: dict[str, nn.Module], data: _Refit, listed: np.ndarray
    ):
        """Train the arm's network through the QP, holding its other input fixed."""
        allowed = listed.copy()
        fixed_mu = fixed_risk = None
        if arm.forecast == "mse":
            fixed_mu = _forecast(models["mu"], data.x, self.train.device)
        elif arm.forecast == "trailing_mean":
            fixed_mu, full = self._windows.means(data.returns, data.positions)
            allowed &= full
        elif arm.forecast == "zero":
            fixed_mu = np.zeros_like(data.y)
        if arm.window_risk:
            windows = self._windows.risk(self._risk_model(arm), data.returns, data.positions)
            fixed_risk = (windows.loadings, windows.idiosyncratic)
            allowed &= windows.mask
        elif arm.risk == "nll":
            with torch.no_grad():
                _, loadings, idiosyncratic = models["risk"](_tensor(data.x, self.train.device))
            fixed_risk = (loadings.cpu().numpy(), idiosyncratic.cpu().numpy())
        loss: DecisionLoss = DECISION_LOSSES[arm.loss] if isinstance(arm.loss, str) else arm.loss
        return train_e2e(data.x, data.y, self.train, portfolio=self.portfolio, tc=self.tc,
                         loss=loss, network=arm.network, fixed_mu=fixed_mu,
                         fixed_risk=fixed_risk, investable=_unless_all(allowed),
                         sectors=self.sectors)  # fmt: skip

    def _tune(self, arm: Arm, state: _ArmState, data: _Refit) -> None:
        """Choose gamma on the validation months (data up to each month only).

        The smallest of the best gammas on the validation Sharpe, widening the grid at an
        end when ``widen_gamma_grid`` (:func:`~e2e_portfolio.backtest.gamma_grid.choose_gamma`).
        """
        positions = data.positions[data.validation]
        realised = np.nan_to_num(data.y[data.validation])  # delisted: earns 0, as in the backtest
        mu, risk = self._moments(arm, state, data.returns, data.x[data.validation], positions)

        def score(gamma: float) -> float:
            weights = self._solve(mu, risk, gamma, None, realised)
            net = (weights * realised).sum(-1) - self.tc * path_turnover(weights, realised)
            return float(annualised_sharpe(net)) if net.std() > 0 else -math.inf

        choice = choose_gamma(self.gamma_grid, score, self.widen_gamma_grid)
        state.gamma = choice.gamma
        self.tuning.setdefault(arm.slug, []).append(
            {"date": data.date, "gamma": choice.gamma, "edge": choice.edge,
             "validation_sharpe": {str(g): s for g, s in choice.scores.items()}}
        )  # fmt: skip

    # ------------------------------------------------------------------ moments
    def _risk_model(self, arm: Arm) -> RiskModel:
        risk = self.covariance if arm.risk == SHRUNK else arm.risk
        if isinstance(risk, str):
            return RISK_MODELS[risk]
        assert risk is not None
        return risk

    def _moments(
        self,
        arm: Arm,
        state: _ArmState,
        returns: np.ndarray,
        exposures: np.ndarray,
        positions: Sequence[int] | np.ndarray,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``mu`` (m, n) and the risk model (``F``, ``d``, caps) at the given past positions.

        ``exposures`` (m, n, k) are those at the positions; trailing estimates use
        ``returns[: s + 1]`` for each position ``s`` only.
        """
        device = self.train.device
        x = _tensor(exposures, device)
        m, n = x.shape[:2]
        # an asset may be held only if listed now and its exposures are known (networks)
        holdable = np.isfinite(returns[np.asarray(positions)])
        if arm.uses_network:
            holdable &= np.isfinite(np.asarray(exposures)).all(axis=-1)
        if arm.window_risk:
            windows = self._windows.risk(self._risk_model(arm), returns, positions)
            holdable &= windows.mask
            risk = {"F": _tensor(windows.loadings, device),
                    "d": _tensor(windows.idiosyncratic, device)}  # fmt: skip
        else:
            with torch.no_grad():
                _, loadings, idiosyncratic = state.models["risk"](x)
            risk = {"F": loadings, "d": idiosyncratic}
        if arm.forecast == "zero":
            mu = x.new_zeros((m, n))
        elif arm.forecast == "trailing_mean":
            means, full = self._windows.means(returns, positions)
            holdable &= full
            mu = _tensor(means, device)  # excluded assets: 0, and not held
        else:
            with torch.no_grad():
                mu = state.models["mu"](x)[0]
        if not holdable.all():
            risk.update(self.portfolio.bounds(torch.as_tensor(holdable).to(device)))
        return mu, risk

    def _solve(
        self,
        mu: torch.Tensor,
        risk: dict[str, torch.Tensor],
        gamma: float,
        holdings: np.ndarray | None,
        realised: np.ndarray | None = None,
    ) -> np.ndarray:
        """Weights (m, n) by :func:`~e2e_portfolio.models.portfolio.solve_path`.

        ``holdings`` is the book before the first month (equal weights when None);
        ``realised`` (m, n) the returns each month earned (needed to chain when m > 1).
        """
        layer = self.portfolio.layer(mu.shape[-1], gamma)
        start = None if holdings is None else _tensor(holdings, mu.device)
        earned = None if realised is None else _tensor(realised, mu.device)
        with torch.no_grad():
            rows = {name: t.to(mu.device) for name, t in self._rows.items()}
            return solve_path(layer, mu, risk, earned, start, rows=rows).cpu().numpy()


def _tensor(values, device: str | torch.device) -> torch.Tensor:
    """A float64 tensor (a copy: views of the past are read-only), NaN as 0."""
    array = np.nan_to_num(np.array(values, dtype=np.float64))
    return torch.as_tensor(array).to(device)


def _forecast(model: nn.Module, exposures: np.ndarray, device: str) -> np.ndarray:
    """A network's ``mu`` (S, n) for exposures (S, n, k) (unknown exposures as 0)."""
    with torch.no_grad():
        return model(_tensor(exposures, device))[0].cpu().numpy()


def _unless_all(mask: np.ndarray) -> np.ndarray | None:
    """``mask``, or None when it holds everywhere (training is then unmasked)."""
    return None if mask.all() else mask
