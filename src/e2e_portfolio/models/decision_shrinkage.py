r"""Decision-aware covariance shrinkage against the plug-in covariance and Ledoit-Wolf.

Is a shrinkage level chosen for realised net Sharpe better than the plug-in sample
covariance and than Ledoit-Wolf?

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
explode when :math:`\mathbf 1^\top v \approx 0`. The realised net return of month ``s + 1`` is
:math:`r^p_{s+1} = w_s^\top r_{s+1} - \mathrm{tc}\,\lVert w_s - w_{s-1}\rVert_1`.

**Methods.** ``plug-in``: :math:`\delta = 0`. ``ledoit-wolf``: the Ledoit-Wolf (2004) intensity
toward the scaled identity (the formula of ``sklearn.covariance.ledoit_wolf_shrinkage``,
re-implemented here in numpy and tested against scikit-learn). ``decision-aware``: the
:math:`\delta` on a grid that maximises the realised net Sharpe of the ``score_months`` months
*before* the decision, each scored out of sample with its own trailing covariance (in-sample
scoring would always pick :math:`\delta = 0`). All three share the OLS head :math:`\theta` fitted
on the past; with ``learn_theta=True`` the decision-aware model also moves :math:`\theta` by
gradient ascent on the same scored Sharpe (:func:`scored_sharpe` gives the exact gradient).

**Protocol.** :func:`walk_forward` decides at every month ``t`` from data up to ``t`` only and
earns ``returns[t + 1]``; all methods are scored on the same out-of-sample months.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from e2e_portfolio.annualisation import PERIODS_PER_YEAR, annualised_sharpe
from e2e_portfolio.data.synthetic import simulate_arrays
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import (
    Target,
    batched_sample_covariance,
    ledoit_wolf_delta,
    shrinkage_target,
)
from e2e_portfolio.significance import paired_comparison

METHODS = ("plug-in", "ledoit-wolf", "decision-aware")


@dataclass(frozen=True)
class ShrinkageConfig:
    """Options of the experiment; see the module docstring."""

    window: int = 48
    """Months in each sample covariance; must exceed ``n_assets + 1``."""
    score_months: int = 24
    """Months before each decision on which the decision-aware delta is scored."""
    tc: float = 0.001
    """Proportional cost per unit of two-sided turnover ``||w_t - w_{t-1}||_1``, here
    against the previous *target* weights (the backtest engine drifts them first)."""
    target: Target = "identity"
    n_deltas: int = 21
    """Grid size for delta on [0, 1]."""
    learn_theta: bool = False
    theta_steps: int = 50
    theta_step_size: float = 0.05

    def validate(self, n_assets: int, n_months: int) -> None:
        """Raise :class:`DataError` if the windows do not fit ``n_months`` of ``n_assets``."""
        if self.window < n_assets + 2:
            raise DataError(
                f"window: expected at least n_assets + 2 = {n_assets + 2} months so the sample "
                f"covariance is invertible, got {self.window}"
            )
        if self.score_months < 3:
            raise DataError(f"score_months: expected at least 3, got {self.score_months}")
        if not (0.0 <= self.tc < 1.0):
            raise DataError(f"tc: expected a cost in [0, 1), got {self.tc}")
        if self.target not in ("identity", "diagonal"):
            raise DataError(f"target: expected 'identity' or 'diagonal', got {self.target!r}")
        if self.n_deltas < 2:
            raise DataError(f"n_deltas: expected at least 2, got {self.n_deltas}")
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

    exposures : (T, N, K); next_returns : (T, N). Returns theta (K + 1,).
    """
    design = _with_intercept(exposures).reshape(-1, exposures.shape[-1] + 1)
    theta, *_ = np.linalg.lstsq(design, next_returns.reshape(-1), rcond=None)
    return theta


def _with_intercept(exposures: np.ndarray) -> np.ndarray:
    return np.concatenate([np.ones((*exposures.shape[:-1], 1)), exposures], axis=-1)


def unit_gross_weights(direction: np.ndarray) -> np.ndarray:
    """``v / ||v||_1`` along the last axis; a zero direction gives zero weights."""
    gross = np.abs(direction).sum(axis=-1, keepdims=True)
    return np.divide(direction, gross, out=np.zeros_like(direction), where=gross > 0)


# --------------------------------------------------------------------- the scored Sharpe
@dataclass(frozen=True)
class ScoringData:
    """What the Sharpe of a block of consecutive months depends on, besides theta and delta.

    design (S, N, K+1): ``[1, exposures]`` at each decision month; sample, target (S, N, N);
    realised (S, N): the next month's returns.
    """

    design: np.ndarray
    sample: np.ndarray
    target: np.ndarray
    realised: np.ndarray


def _block_net_returns(weights: np.ndarray, realised: np.ndarray, tc: float) -> np.ndarray:
    """Net returns (..., S) of weights (..., S, N) on realised (S, N).

    Turnover is charged between consecutive months of the block, not into its first month.
    """
    net = (weights * realised).sum(axis=-1)
    net[..., 1:] -= tc * np.abs(np.diff(weights, axis=-2)).sum(axis=-1)
    return net


def scored_sharpe(
    theta: np.ndarray, delta: float, data: ScoringData, tc: float
) -> tuple[float, np.ndarray, float]:
    """Annualised net Sharpe of the block and its exact gradient in theta and delta.

    Turnover is counted between consecutive months of the block (not into its first month).

    Returns
    -------
    sharpe : float
    d_theta : ndarray, (K + 1,)
    d_delta : float
    """
    covariance = (1.0 - delta) * data.sample + delta * data.target
    mu = data.design @ theta
    direction = np.linalg.solve(covariance, mu[..., None])[..., 0]
    gross = np.abs(direction).sum(axis=-1, keepdims=True)
    weights = direction / gross
    trades = np.diff(weights, axis=0)
    net = _block_net_returns(weights, data.realised, tc)
    count = net.size
    mean, std = net.mean(), net.std(ddof=1)
    sharpe = math.sqrt(PERIODS_PER_YEAR) * mean / std
    d_net = math.sqrt(PERIODS_PER_YEAR) * (
        1.0 / (count * std) - mean * (net - mean) / ((count - 1) * std**3)
    )
    trade_sign = np.sign(trades)
    d_weights = d_net[:, None] * data.realised
    d_weights[1:] -= tc * d_net[1:, None] * trade_sign
    d_weights[:-1] += tc * d_net[1:, None] * trade_sign
    # w = v / ||v||_1  =>  dv = (dw - sign(v) (w . dw)) / ||v||_1
    d_direction = (
        d_weights - np.sign(direction) * (weights * d_weights).sum(-1, keepdims=True)
    ) / gross
    adjoint = np.linalg.solve(covariance, d_direction[..., None])[..., 0]  # symmetric
    d_theta = np.einsum("sn,snk->k", adjoint, data.design)
    d_delta = -np.einsum("sn,snm,sm->", adjoint, data.target - data.sample, direction)
    return float(sharpe), d_theta, float(d_delta)


def _grid_sharpes(
    theta: np.ndarray, deltas: np.ndarray, data: ScoringData, tc: float
) -> np.ndarray:
    """Net Sharpe of the block for every delta of the grid at once, (n_deltas,)."""
    d = deltas[:, None, None, None]
    covariance = (1.0 - d) * data.sample[None] + d * data.target[None]
    mu = np.broadcast_to((data.design @ theta)[None, ..., None], (*covariance.shape[:-1], 1))
    weights = unit_gross_weights(np.linalg.solve(covariance, mu)[..., 0])
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


# ------------------------------------------------------------------------- walk-forward
@dataclass(frozen=True)
class WalkForwardResult:
    """Out-of-sample series of the three methods on the same months.

    decision_months (M,): positions ``t`` of the decisions (each earns ``returns[t + 1]``);
    net_returns, turnover: dict method -> (M,); delta: dict method -> (M,) shrinkage used.
    """

    decision_months: np.ndarray
    net_returns: dict[str, np.ndarray]
    turnover: dict[str, np.ndarray]
    delta: dict[str, np.ndarray]

    def sharpe(self) -> dict[str, float]:
        """Annualised net Sharpe ratio of each method."""
        return {m: float(annualised_sharpe(r)) for m, r in self.net_returns.items()}


def walk_forward(
    returns: np.ndarray,
    exposures: np.ndarray,
    config: ShrinkageConfig | None = None,
    first_decision: int | None = None,
) -> WalkForwardResult:
    """Compare plug-in, Ledoit-Wolf and decision-aware shrinkage out of sample.

    Parameters
    ----------
    returns : ndarray, (T, N)
        ``returns[t]`` realised over the period ending at ``t``.
    exposures : ndarray, (T, N, K)
        Known at the end of ``t``.
    config : ShrinkageConfig
    first_decision : int, optional
        First decision month; the earliest possible (``window + score_months``) by default.
    """
    config = config or ShrinkageConfig()
    returns, exposures = _checked_arrays(returns, exposures)
    n_months, n_assets = returns.shape
    config.validate(n_assets, n_months)
    earliest = config.window + config.score_months
    start = earliest if first_decision is None else first_decision
    if not earliest <= start <= n_months - 2:
        raise DataError(f"first_decision: expected in [{earliest}, {n_months - 2}], got {start}")
    # sample covariance and target of the window ending at every month s >= window - 1
    ends = np.arange(config.window - 1, n_months)
    windows = np.stack([returns[s - config.window + 1 : s + 1] for s in ends])
    samples = np.empty((n_months, n_assets, n_assets))
    samples[ends] = batched_sample_covariance(windows)
    targets = np.empty_like(samples)
    targets[ends] = shrinkage_target(samples[ends], config.target)
    design = _with_intercept(exposures)
    deltas = config.deltas
    months = np.arange(start, n_months - 1)
    chosen = {m: np.empty(months.size) for m in METHODS}
    weights = {m: np.empty((months.size, n_assets)) for m in METHODS}
    for i, t in enumerate(months):
        theta = fit_return_head(exposures[:t], returns[1 : t + 1])
        scored = slice(t - config.score_months, t)
        block = ScoringData(
            design[scored],
            samples[scored],
            targets[scored],
            returns[t - config.score_months + 1 : t + 1],
        )
        grid = _grid_sharpes(theta, deltas, block, config.tc)
        best = float(deltas[int(np.argmax(grid))])
        decision_theta = _learn_theta(theta, best, block, config) if config.learn_theta else theta
        lw = ledoit_wolf_delta(returns[t - config.window + 1 : t + 1])
        for method, delta, head in (
            ("plug-in", 0.0, theta),
            ("ledoit-wolf", lw, theta),
            ("decision-aware", best, decision_theta),
        ):
            target = (
                targets[t] if method != "ledoit-wolf" else shrinkage_target(samples[t], "identity")
            )
            covariance = (1.0 - delta) * samples[t] + delta * target
            weights[method][i] = unit_gross_weights(np.linalg.solve(covariance, design[t] @ head))
            chosen[method][i] = delta
    realised = returns[months + 1]
    net, turnover = {}, {}
    for method in METHODS:
        w = weights[method]
        trades = np.abs(np.diff(w, axis=0, prepend=np.zeros((1, n_assets)))).sum(axis=1)
        turnover[method] = trades
        net[method] = (w * realised).sum(axis=1) - config.tc * trades
    return WalkForwardResult(months, net, turnover, chosen)


def _checked_arrays(returns: np.ndarray, exposures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def edge_across_seeds(
    seeds: Iterable[int],
    n_assets: int = 40,
    n_months: int = 96,
    config: ShrinkageConfig | None = None,
    on_seed=None,
) -> dict:
    """Run :func:`walk_forward` on one synthetic universe per seed and summarise the edges.

    Parameters
    ----------
    seeds : iterable of int
    n_assets, n_months : int
        Size of each simulated universe (:func:`~e2e_portfolio.data.synthetic.simulate_arrays`).
    config : ShrinkageConfig
    on_seed : callable, optional
        Called with each seed's row when it is done (for progress bars).

    Returns
    -------
    dict
        ``mean_edge``, ``win_rate`` (decision-aware vs plug-in), ``mean_edge_vs_lw``,
        ``win_rate_vs_lw``, ``vs_plugin`` and ``vs_lw`` (full :func:`paired_comparison`),
        ``mean_sharpe`` per method, ``rows`` (per seed: Sharpe per method, mean chosen
        delta, mean Ledoit-Wolf delta, mean turnover per method), ``delta_star`` (per seed),
        ``config``, and ``results`` (the :class:`WalkForwardResult` per seed).
    """
    config = config or ShrinkageConfig()
    rows, results = [], {}
    for seed in seeds:
        exposures, returns = simulate_arrays(n_assets=n_assets, n_months=n_months, seed=int(seed))
        result = walk_forward(returns, exposures, config)
        sharpe = result.sharpe()
        row = {
            "seed": int(seed),
            **{f"sharpe_{m}": sharpe[m] for m in METHODS},
            "delta_star": float(result.delta["decision-aware"].mean()),
            "delta_lw": float(result.delta["ledoit-wolf"].mean()),
            **{f"turnover_{m}": float(result.turnover[m].mean()) for m in METHODS},
        }
        rows.append(row)
        results[int(seed)] = result
        if on_seed is not None:
            on_seed(row)
    if not rows:
        raise DataError("seeds: expected at least one seed, got none")
    column = {m: np.array([r[f"sharpe_{m}"] for r in rows]) for m in METHODS}
    vs_plugin = paired_comparison(column["decision-aware"], column["plug-in"])
    vs_lw = paired_comparison(column["decision-aware"], column["ledoit-wolf"])
    return {
        "mean_edge": vs_plugin["mean"],
        "win_rate": vs_plugin["win_rate"],
        "mean_edge_vs_lw": vs_lw["mean"],
        "win_rate_vs_lw": vs_lw["win_rate"],
        "vs_plugin": vs_plugin,
        "vs_lw": vs_lw,
        "mean_sharpe": {m: float(v.mean()) for m, v in column.items()},
        "rows": rows,
        "delta_star": [r["delta_star"] for r in rows],
        "config": {**asdict(config), "n_assets": n_assets, "n_months": n_months},
        "results": results,
    }
