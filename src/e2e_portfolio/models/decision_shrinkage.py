r"""Decision-aware covariance shrinkage: the shrinkage level chosen for realised net Sharpe.

The estimator and its two rivals (the plug-in sample covariance and Ledoit-Wolf), each turned
into a portfolio from the data known at one decision date. The experiment that walks them
forward and compares them is :mod:`e2e_portfolio.experiments.shrinkage`.

Imports numpy and scipy only (the in-browser dashboard runs this very module).

**Model.** A linear return head :math:`\hat\mu_{s} = [1, X_s]\,\theta` (intercept plus the
asset exposures) and a covariance shrunk toward a target,

.. math::

    \Sigma_s(\delta) = (1 - \delta)\, S_s + \delta\, T_s, \qquad \delta \in [0, 1],

where :math:`S_s` is the sample covariance (``1/W``-normalised, as scikit-learn's) of the
``window`` months ending at ``s``. The target :math:`T_s` is the scaled identity
:math:`\mathrm{tr}(S_s)/N \cdot I` (``target="identity"``, Ledoit-Wolf's own target, so the
three methods differ only in how :math:`\delta` is chosen) or :math:`\mathrm{diag}(S_s)`
(``target="diagonal"``). The portfolio is the mean-variance direction normalised to unit gross
leverage,

.. math::

    v_s = \Sigma_s(\delta)^{-1}\hat\mu_s, \qquad w_s = v_s / \lVert v_s\rVert_1,

which, unlike the budget-normalised tangency portfolio :math:`v / \mathbf 1^\top v`, cannot
explode when :math:`\mathbf 1^\top v \approx 0`. No ``N x N`` matrix is formed: each window's
family is kept in factor form (:class:`ShrinkageWindows`, from the thin SVD of the window), so
any number of assets works with any window. With ``N >= W - 1`` the sample covariance is
singular: :math:`\delta > 0` is still invertible, and :math:`\delta = 0` (the plug-in) uses the
pseudo-inverse, the minimum-norm direction on the sample's span. That closed form is the
default :class:`Book`, :class:`UnitGross`; a constrained book (long-only, fully invested,
leverage-bounded, sector-capped) holds the mean-variance QP instead, in the scoring of the
grid as in the decision (:class:`~e2e_portfolio.experiments.shrinkage_book.QPBook`). The
realised net return of
month ``s + 1`` is
:math:`r^p_{s+1} = w_s^\top r_{s+1} - \mathrm{tc}\,\lVert w_s - h_{s-1}\rVert_1`, with
:math:`h_{s-1}` the previous weights drifted by the month they earned (two-sided turnover,
:mod:`e2e_portfolio.turnover`, as the backtest engine charges it).

**Methods.** ``plug_in``: :math:`\delta = 0`. ``ledoit_wolf``: the Ledoit-Wolf (2004) intensity
toward the scaled identity (the formula of ``sklearn.covariance.ledoit_wolf_shrinkage``,
re-implemented here in numpy and tested against scikit-learn). ``decision_aware``: the
:math:`\delta` on a grid that maximises the realised net Sharpe of the ``score_months`` months
*before* the decision, each scored out of sample with its own trailing covariance (in-sample
scoring would always pick :math:`\delta = 0`). All three share the OLS head :math:`\theta` fitted
on the past; with ``learn_theta=True`` the decision-aware model also moves :math:`\theta` by
gradient ascent on the same scored Sharpe (:func:`scored_sharpe` gives the exact gradient).

**One decision.** :func:`shrinkage_portfolios` gives all three portfolios from the returns and
exposures known at a decision date.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from e2e_portfolio.annualisation import PERIODS_PER_YEAR, annualised_sharpe
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import (
    FactorCovariance,
    NonlinearShrinkage,
    ledoit_wolf_delta,
    oas_delta,
)
from e2e_portfolio.models.shrinkage_windows import ShrinkageWindows, Target
from e2e_portfolio.turnover import RUIN, drifted, path_turnover

MIN_WINDOW = 12
"""The fewest months a covariance is estimated from, for any number of assets."""
METHODS = ("plug_in", "ledoit_wolf", "decision_aware")
"""The three methods every run compares."""
BASELINES = ("oas", "nonlinear")
"""Optional further rivals: OAS (Chen et al. 2010, toward the scaled identity) and the
analytical nonlinear shrinkage of Ledoit & Wolf (2020), each with the same OLS head."""


@dataclass(frozen=True)
class ShrinkageConfig:
    """Options of the experiment; see the module docstring."""

    window: int = 48
    """Months in each sample covariance, at least :data:`MIN_WINDOW`, for any number of
    assets (with ``n_assets >= window - 1`` the plug-in uses the pseudo-inverse)."""
    score_months: int = 24
    """Months before each decision on which the decision-aware delta is scored."""
    tc: float = 0.001
    """Proportional cost per unit of two-sided turnover ``||w_t - h_{t-1}||_1`` against the
    drifted previous book, in the scoring as in the backtest."""
    target: Target = "identity"
    n_deltas: int = 21
    """Grid size for delta on [0, 1]."""
    learn_theta: bool = False
    theta_steps: int = 50
    theta_step_size: float = 0.05
    baselines: tuple[str, ...] = ()
    """Further rivals from :data:`BASELINES`, compared like Ledoit-Wolf."""

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods a run compares: :data:`METHODS` and the requested baselines."""
        return (*METHODS, *self.baselines)

    def validate(self, n_assets: int, n_months: int) -> None:
        """Raise :class:`DataError` if the windows do not fit ``n_months`` of ``n_assets``."""
        if self.window < MIN_WINDOW:
            raise DataError(f"window: expected at least {MIN_WINDOW} months, got {self.window}")
        if self.score_months < 3:
            raise DataError(f"score_months: expected at least 3, got {self.score_months}")
        if not (0.0 <= self.tc < 1.0):
            raise DataError(f"tc: expected a cost in [0, 1), got {self.tc}")
        if self.target not in ("identity", "diagonal"):
            raise DataError(f"target: expected 'identity' or 'diagonal', got {self.target!r}")
        if self.n_deltas < 2:
            raise DataError(f"n_deltas: expected at least 2, got {self.n_deltas}")
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines):
            raise DataError(
                f"baselines: expected distinct names from {', '.join(BASELINES)}, "
                f"got {list(self.baselines)}"
            )
        if "nonlinear" in self.baselines and self.window < 13:
            raise DataError(f"window: expected at least 13 months for nonlinear, got {self.window}")
        needed = self.window + self.score_months + 2
        if n_months < needed:
            raise DataError(
                f"n_months: expected at least window + score_months + 2 = {needed}, got {n_months}"
            )

    @property
    def deltas(self) -> np.ndarray:
        """The grid of shrinkage intensities the decision-aware choice scans, (grid,)."""
        return np.linspace(0.0, 1.0, self.n_deltas)


def fit_return_head(exposures: np.ndarray, next_returns: np.ndarray) -> np.ndarray:
    """OLS of next-period returns on ``[1, exposures]``, pooled over dates and assets.

    exposures : (T, N, K); next_returns : (T, N). Pairs with a NaN (an asset not listed, or
    without its exposures yet) are left out. Returns theta (K + 1,).
    """
    design = _with_intercept(exposures).reshape(-1, exposures.shape[-1] + 1)
    target = next_returns.reshape(-1)
    known = np.isfinite(design).all(axis=1) & np.isfinite(target)  # listed, with exposures
    theta, *_ = np.linalg.lstsq(design[known], target[known], rcond=None)
    return theta


def _with_intercept(exposures: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((*exposures.shape[:-1], 1)), exposures], axis=-1)


def unit_gross_weights(direction: np.ndarray) -> np.ndarray:
    """``v / ||v||_1`` along the last axis; a zero direction gives zero weights."""
    gross = np.abs(direction).sum(axis=-1, keepdims=True)
    return np.divide(direction, gross, out=np.zeros_like(direction), where=gross > 0)


class Book(Protocol):
    """How a forecast and a covariance become weights: the portfolio every method holds.

    :class:`UnitGross` (the default) is the closed-form direction at unit gross leverage; a
    constrained book (budget, floors, caps, leverage, sector caps) solves the mean-variance QP
    instead (:class:`~e2e_portfolio.experiments.shrinkage_book.QPBook`).
    """

    def family(self, windows: ShrinkageWindows, deltas: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Weights (D, S, N) for each of ``deltas`` (D,) on each window, forecasts mu (S, N)."""
        ...

    def factor(self, covariance: FactorCovariance, mu: np.ndarray) -> np.ndarray:
        """Weights (N,) for one covariance in factor form and forecasts mu (N,)."""
        ...

    def subset(self, held: np.ndarray) -> Book:
        """The book on the assets where the boolean mask ``held`` (N,) is true."""
        ...


class UnitGross:
    r"""The closed-form book :math:`w = \Sigma^{-1}\hat\mu / \lVert\Sigma^{-1}\hat\mu\rVert_1`."""

    def family(self, windows: ShrinkageWindows, deltas: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Weights (D, S, N): the direction of each window's family at each delta."""
        return np.stack([unit_gross_weights(windows.solve(float(d), mu)) for d in deltas])

    def factor(self, covariance: FactorCovariance, mu: np.ndarray) -> np.ndarray:
        r"""Weights (N,): the direction :math:`\Sigma^{-1}\hat\mu` at unit gross."""
        return unit_gross_weights(covariance.solve(mu))

    def subset(self, held: np.ndarray) -> UnitGross:
        """The same rule: it has no per-asset settings."""
        return self


# --------------------------------------------------------------------- the scored Sharpe
@dataclass(frozen=True)
class ScoringData:
    """What the Sharpe of a block of consecutive months depends on, besides theta and delta.

    design (S, N, K+1): ``[1, exposures]`` at each decision month; windows: the shrinkage
    family of the covariance window ending at each decision month; realised (S, N): the next
    month's returns.
    """

    design: np.ndarray
    windows: ShrinkageWindows
    realised: np.ndarray


def _block_net_returns(weights: np.ndarray, realised: np.ndarray, tc: float) -> np.ndarray:
    """Net returns (..., S) of weights (..., S, N) on realised (S, N).

    Turnover is charged between consecutive months of the block (against the drifted
    previous weights), not into its first month.
    """
    return (weights * realised).sum(axis=-1) - tc * path_turnover(weights, realised)


def scored_sharpe(
    theta: np.ndarray, delta: float, data: ScoringData, tc: float
) -> tuple[float, np.ndarray, float]:
    """Annualised net Sharpe of the block and its exact gradient in theta and delta.

    Turnover is counted between consecutive months of the block (not into its first month),
    against the drifted previous weights; the drift is differentiated too. ``delta`` > 0 for
    ``d_delta`` (at 0 a singular sample covariance has no derivative).

    Returns
    -------
    sharpe : float
    d_theta : ndarray, (K + 1,)
    d_delta : float
    """
    mu = data.design @ theta
    direction = data.windows.solve(delta, mu)
    gross = np.abs(direction).sum(axis=-1, keepdims=True)
    weights = direction / gross
    held = drifted(weights[:-1], data.realised[:-1])
    trades = weights[1:] - held
    net = _block_net_returns(weights, data.realised, tc)
    count = net.size
    mean, std = net.mean(), net.std(ddof=1)
    sharpe = math.sqrt(PERIODS_PER_YEAR) * mean / std
    d_net = math.sqrt(PERIODS_PER_YEAR) * (
        1.0 / (count * std) - mean * (net - mean) / ((count - 1) * std**3)
    )
    d_weights = d_net[:, None] * data.realised
    d_held = tc * d_net[1:, None] * np.sign(trades)  # d net / d h_{s-1}
    d_weights[1:] -= d_held
    d_weights[:-1] += _drift_vjp(weights[:-1], data.realised[:-1], held, d_held)
    # w = v / ||v||_1  =>  dv = (dw - sign(v) (w . dw)) / ||v||_1
    d_direction = (
        d_weights - np.sign(direction) * (weights * d_weights).sum(-1, keepdims=True)
    ) / gross
    adjoint = data.windows.solve(delta, d_direction)  # Sigma is symmetric
    d_theta = np.einsum("sn,snk->k", adjoint, data.design)
    d_delta = -data.windows.target_minus_sample(adjoint, direction)
    return float(sharpe), d_theta, float(d_delta)


def _drift_vjp(
    weights: np.ndarray, returns: np.ndarray, held: np.ndarray, cotangent: np.ndarray
) -> np.ndarray:
    """``J' c`` for ``h = w (1 + r) / (1 + w'r)``: ``((1 + r) c - (c.h) r) / (1 + w'r)``."""
    growth = 1.0 + (weights * returns).sum(axis=-1, keepdims=True)
    alive = np.abs(growth) > RUIN
    through = (1.0 + returns) * cotangent - (cotangent * held).sum(-1, keepdims=True) * returns
    return np.where(alive, through / np.where(alive, growth, 1.0), cotangent)


def _grid_sharpes(
    theta: np.ndarray, deltas: np.ndarray, data: ScoringData, tc: float, book: Book
) -> np.ndarray:
    """Net Sharpe of the block for every delta of the grid, (n_deltas,)."""
    weights = book.family(data.windows, deltas, data.design @ theta)
    return annualised_sharpe(_block_net_returns(weights, data.realised, tc))


def _learn_theta(
    theta: np.ndarray, delta: float, data: ScoringData, config: ShrinkageConfig
) -> np.ndarray:
    """Normalised gradient ascent on the scored Sharpe, from the OLS theta."""
    scale = np.linalg.norm(theta)
    for _ in range(config.theta_steps):
        _, d_theta, _ = scored_sharpe(theta, delta, data, config.tc)
        norm = np.linalg.norm(d_theta)
        if norm == 0:
            break
        theta = theta + config.theta_step_size * scale * d_theta / norm
    return theta


# ------------------------------------------------------------------------- one decision
def shrinkage_portfolios(
    returns: np.ndarray, exposures: np.ndarray, config: ShrinkageConfig, book: Book | None = None
) -> dict[str, tuple[np.ndarray, float]]:
    """The three methods' portfolios at the last date of ``returns``, from that past only.

    Parameters
    ----------
    returns : ndarray, (t + 1, N)
        ``returns[s]`` realised over the period ending at ``s``; the last row is the period
        just ended. At least ``window + score_months`` rows.
    exposures : ndarray, (t + 1, N, K)
        Known at the end of each period.
    config : ShrinkageConfig
    book : Book, optional
        How each method's forecast and covariance become weights, in the scoring of the
        grid as in the decision: :class:`UnitGross` by default.

    Returns
    -------
    dict
        Method (``config.methods``) to ``(weights (N,), delta)``: the book's weights and the
        shrinkage intensity used (NaN for nonlinear shrinkage, which has none).
    """
    book = UnitGross() if book is None else book
    if config.learn_theta and not isinstance(book, UnitGross):
        raise DataError("learn_theta: expected the unit-gross book (its gradient is closed "
                        "form), got a constrained book")  # fmt: skip
    t = returns.shape[0] - 1
    window, months = config.window, config.score_months
    if t < window + months - 1:
        raise DataError(
            f"returns: expected at least window + score_months = {window + months} months, "
            f"got {t + 1}"
        )
    # the shrinkage families of the windows ending at t - months, ..., t
    ends = np.arange(t - months, t + 1)
    stacked = np.stack([returns[s - window + 1 : s + 1] for s in ends])
    windows = ShrinkageWindows.of(stacked, config.target)
    design = _with_intercept(exposures)
    theta = fit_return_head(exposures[:t], returns[1 : t + 1])
    block = ScoringData(design[t - months : t], windows.take(slice(None, -1)),
                        returns[t - months + 1 :])  # fmt: skip
    deltas = config.deltas
    best = float(deltas[int(np.argmax(_grid_sharpes(theta, deltas, block, config.tc, book)))])
    decision_theta = _learn_theta(theta, best, block, config) if config.learn_theta else theta
    window_returns = returns[t - window + 1 :]
    last = windows.take([-1])
    identity = last if config.target == "identity" else ShrinkageWindows.of(
        window_returns[None], "identity")  # fmt: skip
    chosen = {
        "plug_in": (0.0, last, theta),
        "ledoit_wolf": (ledoit_wolf_delta(window_returns), identity, theta),
        "decision_aware": (best, last, decision_theta),
    }
    if "oas" in config.baselines:
        chosen["oas"] = (oas_delta(window_returns), identity, theta)
    portfolios = {}
    for method, (delta, family, head) in chosen.items():
        weights = book.family(family, np.array([delta]), (design[t] @ head)[None])[0, 0]
        portfolios[method] = (weights, float(delta))
    if "nonlinear" in config.baselines:
        covariance = NonlinearShrinkage()(window_returns)
        portfolios["nonlinear"] = (book.factor(covariance, design[t] @ theta), math.nan)
    return {method: portfolios[method] for method in config.methods}


def checked_arrays(returns: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``returns`` (T, N >= 2) and ``exposures`` (T, N, K) as finite float64 arrays, or raise."""
    returns = np.asarray(returns, dtype=np.float64)
    exposures = np.asarray(exposures, dtype=np.float64)
    if returns.ndim != 2 or returns.shape[1] < 2:
        raise DataError(f"returns: expected shape (n_months, n_assets >= 2), got {returns.shape}")
    if exposures.ndim != 3 or exposures.shape[:2] != returns.shape:
        raise DataError(
            f"exposures: expected shape {(*returns.shape, 'n_features')}, got {exposures.shape}"
        )
    if not (np.isfinite(returns).all() and np.isfinite(exposures).all()):
        raise DataError("returns, exposures: expected finite values, got NaN or inf")
    return returns, exposures
