"""The shrinkage experiment: plug-in, Ledoit-Wolf and decision-aware shrinkage, walked forward.

Each method is a strategy of the backtest engine
(:func:`~e2e_portfolio.backtest.walkforward.run_comparison`): at every decision month ``t`` it
sees the past through a
:class:`~e2e_portfolio.backtest.walkforward.PastView`, returns the portfolio of
:func:`~e2e_portfolio.models.decision_shrinkage.shrinkage_portfolios`, and earns
``returns[t + 1]`` net of ``tc`` times the two-sided turnover against its drifted previous book
(the first decision buys from cash). All methods are scored on the same out-of-sample months;
:func:`edge_across_seeds` pairs them across simulated universes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.backtest.walkforward import (
    PastView,
    Strategy,
    declare,
    embed,
    run_comparison,
)
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.synthetic import simulate_universe
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.verdict import paired_verdicts
from e2e_portfolio.models.decision_shrinkage import (
    METHODS,
    Book,
    ShrinkageConfig,
    UnitGross,
    shrinkage_portfolios,
)
from e2e_portfolio.models.portfolio import NO_SECTORS, PortfolioConfig
from e2e_portfolio.significance import holm, paired_comparison

__all__ = ["METHODS", "ShrinkageConfig", "WalkForwardResult", "edge_across_seeds", "walk_forward"]


def _mean_or_none(values: np.ndarray) -> float | None:
    """The mean, or None where there is none (nonlinear shrinkage has no single delta)."""
    return None if np.isnan(values).any() else float(values.mean())


def rival_key(method: str) -> str:
    """The key of a rival's comparison: ``vs_plugin``, ``vs_lw``, ``vs_oas``, ``vs_nonlinear``."""
    return {"plug_in": "plugin", "ledoit_wolf": "lw"}.get(method, method)


@dataclass(frozen=True)
class WalkForwardResult:
    """Out-of-sample series of the three methods on the same months.

    decision_months (M,): positions ``t`` of the decisions (each earns ``returns[t + 1]``);
    net_returns, turnover: dict method -> (M,); delta: dict method -> (M,) shrinkage used;
    weights: dict method -> (M, N).
    """

    decision_months: np.ndarray
    net_returns: dict[str, np.ndarray]
    turnover: dict[str, np.ndarray]
    delta: dict[str, np.ndarray]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def sharpe(self) -> dict[str, float]:
        """Annualised net Sharpe ratio of each method."""
        return {m: float(annualised_sharpe(r)) for m, r in self.net_returns.items()}


@dataclass
class _SharedDecisions:
    """All three methods' portfolios per decision month, computed once for the three."""

    config: ShrinkageConfig
    book: Book
    decided: dict[int, dict[str, tuple[np.ndarray, float]]] = field(default_factory=dict)

    def strategy(self, method: str) -> Strategy:
        def decide(view: PastView) -> np.ndarray:
            t = len(view.dates) - 1
            if t not in self.decided:
                self.decided[t] = self._decide(view)
            return self.decided[t][method][0]

        return declare(decide, short=True, leverage=True)  # long-short books are allowed

    def _decide(self, view: PastView) -> dict[str, tuple[np.ndarray, float]]:
        """The methods on the assets listed with exposures over everything they score on."""
        c = self.config
        span = c.window + c.score_months
        subset = np.isfinite(view.returns[-span:]).all(axis=0) & np.isfinite(
            view.exposures[-c.score_months - 1 :]
        ).all(axis=(0, 2))
        if subset.all():
            return shrinkage_portfolios(view.returns, view.exposures, c, self.book)
        if subset.sum() < 2:
            raise DataError(
                f"window: expected at least 2 assets listed over the last {span} months at "
                f"{view.dates[-1]:%Y-%m}, got {int(subset.sum())}"
            )
        chosen = shrinkage_portfolios(view.returns[:, subset], view.exposures[:, subset], c,
                                      self.book.subset(subset))  # fmt: skip
        return {
            method: (embed(weights, subset), delta) for method, (weights, delta) in chosen.items()
        }


def walk_forward(
    panel: FactorPanel,
    config: ShrinkageConfig | None = None,
    first_decision: int | None = None,
    on_step: Callable[[str], None] | None = None,
    portfolio: PortfolioConfig | None = None,
) -> WalkForwardResult:
    """Compare plug-in, Ledoit-Wolf and decision-aware shrinkage out of sample.

    Parameters
    ----------
    panel : FactorPanel
        Returns (T, N) and exposures (T, N, K); at least ``window + score_months + 2`` months.
    config : ShrinkageConfig
    first_decision : int, optional
        First decision month; the earliest possible (``window + score_months``) by default.
    on_step : callable, optional
        Called with the method's name after each of its decisions (progress bars).
    portfolio : PortfolioConfig, optional
        A constrained book (budget, floor, cap, leverage, sector cap, risk aversion) that
        every method holds, solved as the mean-variance QP
        (:class:`~e2e_portfolio.experiments.shrinkage_book.QPBook`); by default the closed-form
        direction at unit gross leverage.

    Returns
    -------
    WalkForwardResult
    """
    config = config or ShrinkageConfig()
    config.validate(panel.n_assets, panel.n_dates)
    book = book_of(portfolio, panel, config)
    earliest = config.window + config.score_months
    start = earliest if first_decision is None else first_decision
    if not earliest <= start <= panel.n_dates - 2:
        raise DataError(
            f"first_decision: expected in [{earliest}, {panel.n_dates - 2}], got {start}"
        )
    shared = _SharedDecisions(config, book)
    methods = config.methods
    comparison = run_comparison(
        panel, {m: shared.strategy(m) for m in methods}, start, config.tc, on_step=on_step
    )
    if comparison.failures:  # every method is needed for the paired comparison
        raise next(iter(comparison.failures.values()))
    months = np.arange(start, panel.n_dates - 1)
    results = comparison.results
    return WalkForwardResult(
        decision_months=months,
        net_returns={m: results[m].net_returns for m in methods},
        turnover={m: results[m].turnover for m in methods},
        delta={m: np.array([shared.decided[int(t)][m][1] for t in months]) for m in methods},
        weights={m: results[m].weights for m in methods},
    )


def book_of(portfolio: PortfolioConfig | None, panel: FactorPanel, config: ShrinkageConfig) -> Book:
    """The book every method holds: unit gross by default, else the QP of ``portfolio``."""
    if portfolio is None:
        return UnitGross()
    if config.learn_theta:
        raise DataError(
            "learn_theta: expected the unit-gross book (no --w-min, --w-max, --budget, "
            "--leverage, --sector-max or --gamma), got a constrained one"
        )
    portfolio.validate(panel.n_assets, panel.sectors)
    if portfolio.sector_max is not None and panel.sectors is None:
        raise DataError(NO_SECTORS)
    from e2e_portfolio.experiments.shrinkage_book import QPBook

    return QPBook(portfolio, panel.sectors)  # refuses a turnover penalty


def book_config(portfolio: PortfolioConfig | None) -> dict:
    """The book's settings for a run's configuration: ``{"book": ...}``, or empty for unit gross."""
    return {} if portfolio is None else {"book": asdict(portfolio)}


def edge_across_seeds(
    seeds: Iterable[int],
    n_assets: int = 40,
    n_months: int = 96,
    config: ShrinkageConfig | None = None,
    on_seed: Callable[[dict], None] | None = None,
    portfolio: PortfolioConfig | None = None,
) -> dict:
    """Run :func:`walk_forward` on one synthetic universe per seed and summarise the edges.

    Parameters
    ----------
    seeds : iterable of int
    n_assets, n_months : int
        Size of each simulated universe (:func:`~e2e_portfolio.data.synthetic.simulate_universe`).
    config : ShrinkageConfig
    on_seed : callable, optional
        Called with each seed's row when it is done (for progress bars).
    portfolio : PortfolioConfig, optional
        A constrained book every method holds (:func:`walk_forward`).

    Returns
    -------
    dict
        ``verdict`` (decision_aware against each rival, entries of
        :data:`~e2e_portfolio.experiments.verdict.VERDICT_KEYS`, as compare's and sweep's),
        ``mean_edge``, ``win_rate`` (decision-aware vs plug-in), ``mean_edge_vs_lw``,
        ``win_rate_vs_lw``, ``vs_plugin``, ``vs_lw`` and ``vs_oas``, ``vs_nonlinear`` when
        those baselines run (full :func:`paired_comparison`, plus ``p_holm``: the Wilcoxon p
        Holm-adjusted over the comparisons),
        ``mean_sharpe`` per method, ``rows`` (per seed: Sharpe per method, mean chosen
        delta, mean Ledoit-Wolf delta, mean turnover per method), ``delta_star`` (per seed),
        ``config``, and ``results`` (the :class:`WalkForwardResult` per seed).
    """
    config = config or ShrinkageConfig()
    rows, results = [], {}
    for seed in seeds:
        panel = simulate_universe(n_assets=n_assets, n_months=n_months, seed=int(seed))
        result = walk_forward(panel, config, portfolio=portfolio)
        sharpe = result.sharpe()
        row = {
            "seed": int(seed),
            **{f"sharpe_{m}": sharpe[m] for m in config.methods},
            "delta_star": float(result.delta["decision_aware"].mean()),
            "delta_lw": float(result.delta["ledoit_wolf"].mean()),
            **{f"delta_{m}": _mean_or_none(result.delta[m]) for m in config.methods},
            **{f"turnover_{m}": float(result.turnover[m].mean()) for m in config.methods},
        }
        rows.append(row)
        results[int(seed)] = result
        if on_seed is not None:
            on_seed(row)
    if not rows:
        raise DataError("seeds: expected at least one seed, got none")
    column = {m: np.array([r[f"sharpe_{m}"] for r in rows]) for m in config.methods}
    versus = {f"vs_{rival_key(m)}": paired_comparison(column["decision_aware"], column[m])
              for m in config.methods if m != "decision_aware"}  # fmt: skip
    adjusted = holm([v["p_wilcoxon"] for v in versus.values()])
    for comparison, p_holm in zip(versus.values(), adjusted, strict=True):
        comparison["p_holm"] = float(p_holm)
    vs_plugin, vs_lw = versus["vs_plugin"], versus["vs_lw"]
    rivals = [m for m in config.methods if m != "decision_aware"]
    return {
        **versus,
        "verdict": paired_verdicts(
            {m: list(v) for m, v in column.items()}, [("decision_aware", m) for m in rivals]
        ),
        "mean_edge": vs_plugin["mean"],
        "win_rate": vs_plugin["win_rate"],
        "mean_edge_vs_lw": vs_lw["mean"],
        "win_rate_vs_lw": vs_lw["win_rate"],
        "mean_sharpe": {m: float(v.mean()) for m, v in column.items()},
        "rows": rows,
        "delta_star": [r["delta_star"] for r in rows],
        "config": {
            **asdict(config),
            "n_assets": n_assets,
            "n_months": n_months,
            **book_config(portfolio),
        },
        "results": results,
    }
