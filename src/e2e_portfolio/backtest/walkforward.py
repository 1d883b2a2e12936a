"""Out-of-sample walk-forward backtests in which a strategy can only see the past.

At each decision date ``t`` the engine hands the strategy a :class:`PastView`: the panel's
dates, exposures and returns up to and including ``t``, as read-only arrays. The strategy
returns weights; they earn ``returns[t + 1]``. Since the view holds no later data and cannot be
written to, look-ahead is impossible by construction, whatever the strategy does.

A changing universe (NaN returns where an asset is not listed, see
:mod:`e2e_portfolio.data.panel`): a decision may only hold assets listed at ``t``
(:attr:`PastView.listed_now`). An asset held over a month in which it delists earns 0 that
month (its last return was its last listed month's; the position is taken to have been
converted to cash at the last price) and then leaves the book: the drifted holdings carry it
as cash, outside the weights.

Costs: ``tc * ||w_t - h_{t-1}||_1`` (two-sided turnover), where ``h_{t-1}`` are last
period's weights after they drifted with that period's returns (the first decision trades from
cash); :mod:`e2e_portfolio.turnover` defines it for the whole package. The view also carries
``h_{t-1}`` as ``PastView.holdings``, so a strategy with a turnover penalty penalises the
trade it will be charged for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from e2e_portfolio.backtest.metrics import strategy_stats
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.exceptions import DataError, StrategyError
from e2e_portfolio.turnover import drifted


@dataclass(frozen=True)
class PastView:
    """Everything known at the close of ``dates[-1]``; arrays are read-only.

    dates (t + 1,); returns (t + 1, n): ``returns[-1]`` is the period just ended;
    exposures (t + 1, n, k); holdings (n,): the book held now, i.e. the previous decision's
    weights drifted by ``returns[-1]`` (zeros, cash, before the first decision; ``None`` when
    the view is not part of a backtest).
    """

    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    features: tuple[str, ...]
    returns: np.ndarray
    exposures: np.ndarray
    holdings: np.ndarray | None = None

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return len(self.assets)

    @property
    def listed_now(self) -> np.ndarray:
        """(n,) bool: listed over the period just ended; only these may be held."""
        return np.isfinite(self.returns[-1])

    def with_history(self, window: int) -> np.ndarray:
        """(n,) bool: a return in each of the last ``window`` periods (so listed now too)."""
        return np.isfinite(self.trailing_returns(window)).all(axis=0)

    def trailing_returns(self, window: int) -> np.ndarray:
        """The last ``window`` periods of returns, (window, n)."""
        if window > len(self.returns):
            raise DataError(f"window: expected at most {len(self.returns)} periods, got {window}")
        return self.returns[-window:]

    def training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Exposures and the returns that followed them, all known now: (t, n, k), (t, n)."""
        return self.exposures[:-1], self.returns[1:]


Strategy = Callable[[PastView], np.ndarray]
"""Any callable from the past to weights (n,).

The engine checks every decision: finite, non-negative and summing to 1 (within
``WEIGHT_TOLERANCE``), unless the callable declares ``allows_short = True`` (negative weights)
or ``allows_leverage = True`` (any sum), e.g. with :func:`declare`."""

WEIGHT_TOLERANCE = 1e-8
"""How far weights may fall below 0 or their sum stray from 1 (solver rounding)."""


def embed(weights: np.ndarray, subset: np.ndarray) -> np.ndarray:
    """Weights of a subset of assets (``subset``: (n,) bool) as weights of all n (0 elsewhere)."""
    out = np.zeros(subset.size)
    out[subset] = weights
    return out


def _check_listed(weights: np.ndarray, panel: FactorPanel, t: int) -> str | None:
    """A weight on an asset not listed at ``t``, or None."""
    unlisted = np.flatnonzero(~np.isfinite(panel.returns[t]) & (np.abs(weights) > WEIGHT_TOLERANCE))
    if unlisted.size:
        i = unlisted[0]
        return f"expected no weight on {panel.assets[i]!r} (not listed then), got {weights[i]:.3g}"
    return None


def declare(strategy: Strategy, *, short: bool = False, leverage: bool = False) -> Strategy:
    """Mark ``strategy`` as taking short positions and/or a budget other than 1; returns it."""
    strategy.allows_short = short  # type: ignore[attr-defined]
    strategy.allows_leverage = leverage  # type: ignore[attr-defined]
    return strategy


def check_weights(strategy: Strategy, weights: np.ndarray, n: int) -> str | None:
    """What is wrong with one decision's ``weights`` (n,), or None."""
    if weights.shape != (n,):
        return f"expected weights of shape ({n},), got shape {weights.shape}"
    bad = np.flatnonzero(~np.isfinite(weights))
    if bad.size:
        return f"expected finite weights, got {weights[bad[0]]} for asset {bad[0]}"
    if not getattr(strategy, "allows_short", False) and weights.min() < -WEIGHT_TOLERANCE:
        asset = int(np.argmin(weights))
        return (f"expected weights >= 0 (declare allows_short to short), got "
                f"{weights[asset]:.3g} for asset {asset}")  # fmt: skip
    total = float(weights.sum())
    if not getattr(strategy, "allows_leverage", False) and abs(total - 1) > WEIGHT_TOLERANCE:
        return (f"expected weights summing to 1 (declare allows_leverage otherwise), got "
                f"{total:.6g}")  # fmt: skip
    return None


def past_view(panel: FactorPanel, t: int, holdings: np.ndarray | None = None) -> PastView:
    """The view of ``panel`` at the close of position ``t`` (read-only slices).

    ``holdings`` (n,), the book held at ``t``, is copied read-only into the view.
    """
    returns, exposures = panel.returns[: t + 1], panel.exposures[: t + 1]
    assert not returns.flags.writeable and not exposures.flags.writeable
    if holdings is not None:
        holdings = np.array(holdings, dtype=np.float64)
        holdings.flags.writeable = False
    return PastView(
        panel.dates[: t + 1], panel.assets, panel.features, returns, exposures, holdings
    )


@dataclass(frozen=True)
class BacktestResult:
    """One strategy out of sample.

    Dates (M,) the returns were earned, weights (M, n) chosen one period before, net
    returns and turnover (M,), and their statistics.
    """

    name: str
    dates: pd.DatetimeIndex
    weights: np.ndarray
    net_returns: np.ndarray
    turnover: np.ndarray
    stats: StrategyStats


def backtest(
    panel: FactorPanel,
    strategy: Strategy,
    start: int,
    tc: float = 0.0,
    name: str = "strategy",
    on_step: Callable[[], None] | None = None,
) -> BacktestResult:
    """Walk forward from decision ``start`` to the second-to-last date.

    Parameters
    ----------
    panel : FactorPanel
    strategy : callable
        ``strategy(PastView) -> weights (n,)``.
    start : int
        First decision position (it earns ``returns[start + 1]``).
    tc : float
        Proportional cost per unit of two-sided turnover (buys plus sells), >= 0;
        turnover is ``||w_t - h_t||_1`` with ``h_t`` the previous weights drifted by
        the period's returns (cash before the first decision).
    on_step : callable, optional
        Called after each decision (progress bars).
    """
    if tc < 0 or not np.isfinite(tc):
        raise DataError(f"tc: expected a finite cost >= 0, got {tc}")
    if not 1 <= start <= panel.n_dates - 2:
        raise DataError(f"start: expected in [1, {panel.n_dates - 2}], got {start}")
    n = panel.n_assets
    decisions = range(start, panel.n_dates - 1)
    weights = np.empty((len(decisions), n))
    held = np.zeros(n)  # drifted weights from the previous period; cash at first
    turnover = np.empty(len(decisions))
    net = np.empty(len(decisions))
    for i, t in enumerate(decisions):
        try:
            w = np.asarray(strategy(past_view(panel, t, held)), dtype=np.float64)
        except Exception as exc:
            raise StrategyError(name, f"{panel.dates[t]:%Y-%m}",
                                f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
        problem = check_weights(strategy, w, n) or _check_listed(w, panel, t)
        if problem is not None:
            raise StrategyError(name, f"{panel.dates[t]:%Y-%m}", problem)
        listed_next = np.isfinite(panel.returns[t + 1])
        realised = np.where(listed_next, panel.returns[t + 1], 0.0)  # delisted: earns 0
        turnover[i] = np.abs(w - held).sum()
        gross = float(w @ realised)
        net[i] = gross - tc * turnover[i]
        weights[i] = w
        held = np.where(listed_next, drifted(w, realised), 0.0)  # delisted: cash, out
        if on_step is not None:
            on_step()
    dates = panel.dates[start + 1 :]
    return BacktestResult(name, dates, weights, net, turnover, strategy_stats(net, turnover))


@dataclass(frozen=True)
class ComparisonResult:
    """Backtests of several strategies on the same panel and months."""

    panel_name: str
    assets: tuple[str, ...]
    results: dict[str, BacktestResult]
    failures: dict[str, StrategyError] = field(default_factory=dict)
    """Strategies that raised or returned weights they may not: name to the error (with
    the date); the others' results are kept."""

    def stats_frame(self) -> pd.DataFrame:
        """One row per strategy, one column per :class:`StrategyStats` field."""
        return pd.DataFrame(
            {name: r.stats.model_dump() for name, r in self.results.items()}
        ).T.rename_axis("strategy")

    def series_frame(self) -> pd.DataFrame:
        """Long frame: strategy, date, net_return, turnover."""
        return pd.concat(
            [
                pd.DataFrame(
                    {
                        "strategy": name,
                        "date": r.dates,
                        "net_return": r.net_returns,
                        "turnover": r.turnover,
                    }
                )
                for name, r in self.results.items()
            ],
            ignore_index=True,
        )

    def weights_frame(self) -> pd.DataFrame:
        """Long frame: strategy, date, asset, weight."""
        frames = []
        for name, r in self.results.items():
            wide = pd.DataFrame(r.weights, index=r.dates.rename("date"), columns=list(self.assets))
            long = wide.stack().rename("weight").reset_index().rename(columns={"level_1": "asset"})
            frames.append(long.assign(strategy=name)[["strategy", "date", "asset", "weight"]])
        return pd.concat(frames, ignore_index=True)


def run_comparison(
    panel: FactorPanel,
    strategies: Mapping[str, Strategy],
    start: int,
    tc: float = 0.0,
    on_step: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Backtest every strategy on the same out-of-sample months of ``panel``.

    Parameters
    ----------
    panel : FactorPanel
        Returns (n_dates, n_assets) and exposures (n_dates, n_assets, n_features).
    strategies : mapping of str to callable
        Name to ``strategy(PastView) -> weights (n_assets,)``; a strategy sees only the past.
    start : int
        First decision position; it earns ``returns[start + 1]``.
    tc : float
        Cost per unit of two-sided turnover, >= 0.
    on_step : callable, optional
        Called with the strategy's name after each of its decisions (progress bars).

    Returns
    -------
    ComparisonResult
        Per-strategy :class:`BacktestResult` and frames of series, weights and statistics;
        a strategy that raised or returned bad weights is in ``failures`` (with its date)
        and the others are kept. Raises :class:`StrategyError` only when all failed.
    """
    if not strategies:
        raise DataError("strategies: expected at least one strategy, got none")
    results, failures = {}, {}
    for name, strategy in strategies.items():
        step = (lambda name=name: on_step(name)) if on_step is not None else None
        try:
            results[name] = backtest(panel, strategy, start, tc, name=name, on_step=step)
        except StrategyError as exc:
            failures[name] = exc
    if not results:
        raise StrategyError(", ".join(failures), "every date", "every strategy failed: "
                            + "; ".join(str(e) for e in failures.values()))  # fmt: skip
    return ComparisonResult(panel.name, panel.assets, results, failures)
