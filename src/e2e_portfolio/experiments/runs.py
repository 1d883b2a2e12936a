"""Experiments that tie data, models and the store together for the CLI and the app.

Each function runs one experiment end to end and returns its summary together with a
:class:`~e2e_portfolio.data.store.RunRecord` ready to be stored; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import pandas as pd
from torch import nn

from e2e_portfolio.backtest.arm_specs import ARMS
from e2e_portfolio.backtest.gamma_grid import gamma_edges
from e2e_portfolio.backtest.metrics import strategy_stats
from e2e_portfolio.backtest.walkforward import ComparisonResult
from e2e_portfolio.data.datasets import load_french, load_sp500
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.records import clean_json
from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.data.synthetic import month_ends, simulate_universe
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.compare import CompareOptions, compare_arms
from e2e_portfolio.experiments.shrinkage import (
    ShrinkageConfig,
    WalkForwardResult,
    _mean_or_none,
    book_config,
    edge_across_seeds,
    rival_key,
    walk_forward,
)
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.significance import block_bootstrap_sharpe_test, holm, sharpe_difference_test

COMPARED_STRATEGIES = ARMS
"""The strategies :func:`compare_strategies` runs by default: the arms' slugs."""


def shrink_synthetic(
    seeds: list[int],
    n_assets: int,
    n_months: int,
    config: ShrinkageConfig,
    on_seed: Callable[[dict], None] | None = None,
    portfolio: PortfolioConfig | None = None,
) -> tuple[dict, RunRecord]:
    """:func:`edge_across_seeds` plus a run record with per-seed statistics and series."""
    summary = edge_across_seeds(seeds, n_assets, n_months, config, on_seed=on_seed,
                                portfolio=portfolio)  # fmt: skip
    dates = month_ends(n_months)
    stats, series = {}, []
    for seed, result in summary["results"].items():
        seed_stats, seed_series = walk_forward_frames(result, dates, suffix=f"/seed={seed}")
        stats.update(seed_stats)
        series.append(seed_series)
    # one seed has no interval and no test: NaN is stored as null
    metrics = clean_json({k: v for k, v in summary.items() if k not in ("results", "config")})
    record = RunRecord(
        kind="shrink",
        config={"data": "synthetic", "seeds": seeds, **summary["config"]},
        metrics=metrics,
        stats=stats,
        series=pd.concat(series, ignore_index=True),
    )
    return summary, record


def shrink_history(
    panel: FactorPanel, config: ShrinkageConfig, portfolio: PortfolioConfig | None = None
) -> tuple[dict, RunRecord]:
    """The same comparison by walk-forward on one real history.

    Decision-aware against each rival (``vs_plugin``, ``vs_lw``, and the baselines asked
    for): the Jobson-Korkie-Memmel test (``p_value``) and the studentised circular block
    bootstrap (``p_bootstrap``, blocks of 6 months, 4,999 draws), each Holm-adjusted over the
    comparisons (``p_value_holm``, ``p_bootstrap_holm``). ``portfolio``: a constrained book
    every method holds (:func:`~e2e_portfolio.experiments.shrinkage.walk_forward`).
    """
    result = walk_forward(panel, config, portfolio=portfolio)
    decision = result.net_returns["decision_aware"]
    methods = config.methods
    tests = {}
    for method in (m for m in methods if m != "decision_aware"):
        other = result.net_returns[method]
        tests[f"vs_{rival_key(method)}"] = {
            **sharpe_difference_test(decision, other),
            "p_bootstrap": block_bootstrap_sharpe_test(decision, other)["p_value"],
        }
    for name in ("p_value", "p_bootstrap"):
        adjusted = holm([tests[key][name] for key in tests])
        for key, value in zip(tests, adjusted, strict=True):
            tests[key][f"{name}_holm"] = float(value)
    summary = {
        "sharpe": result.sharpe(),
        **tests,
        "mean_delta": {m: _mean_or_none(result.delta[m]) for m in methods},
        "mean_turnover": {m: float(result.turnover[m].mean()) for m in methods},
        "n_months": int(result.decision_months.size),
        "window": config.window,
        "first_month": str(panel.dates[result.decision_months[0] + 1].date()),
        "last_month": str(panel.dates[result.decision_months[-1] + 1].date()),
    }
    stats, series = walk_forward_frames(result, panel.dates)
    record = RunRecord(
        kind="shrink",
        config={
            "data": panel.name,
            "n_assets": panel.n_assets,
            **asdict(config),
            **book_config(portfolio),
        },
        metrics=clean_json(summary),
        stats=stats,
        series=series,
    )
    return summary, record


def walk_forward_frames(
    result: WalkForwardResult, dates: pd.DatetimeIndex, suffix: str = ""
) -> tuple[dict, pd.DataFrame]:
    """Statistics per method and the long series frame of a shrinkage walk-forward.

    The frame has columns strategy, date, net_return, turnover; ``dates`` are the panel's,
    ``suffix`` is appended to the method names.
    """
    realised_dates = dates[result.decision_months + 1]
    stats, frames = {}, []
    for method in result.net_returns:
        net, turnover = result.net_returns[method], result.turnover[method]
        stats[f"{method}{suffix}"] = strategy_stats(net, turnover)
        frames.append(
            pd.DataFrame(
                {
                    "strategy": f"{method}{suffix}",
                    "date": realised_dates,
                    "net_return": net,
                    "turnover": turnover,
                }
            )
        )
    return stats, pd.concat(frames, ignore_index=True)


def resolve_panel(
    data: str,
    store: Store,
    universe: str = "industries",
    n_assets: int = 40,
    n_months: int = 96,
    seed: int = 42,
    name: str | None = None,
) -> FactorPanel:
    """The panel an experiment's ``data`` option names.

    A panel stored under that name, which wins even over a built-in name (the command line
    says so); else ``synthetic`` (simulated with ``n_assets``, ``n_months``, ``seed``),
    ``french`` (``universe``) or ``sp500``. ``name`` renames a built-in panel.
    """
    if name is None and store.has_panel(data):
        return store.read_panel(data)
    if data == "synthetic":
        return simulate_universe(
            n_assets=n_assets, n_months=n_months, seed=seed, name=name or "synthetic"
        )
    if data == "french":
        return load_french(universe, name=name or "french")  # type: ignore[arg-type]
    if data == "sp500":
        return load_sp500(name=name or "sp500")
    raise DataError(
        f"data: expected synthetic, french, sp500 or a stored panel, got {data!r} "
        f"(stored panels: {', '.join(store.panel_names()) or 'none'})"
    )


def compare_strategies(
    panel: FactorPanel,
    options: CompareOptions,
    on_step: Callable[[str], None] | None = None,
    on_refit: Callable[[str, str], None] | None = None,
) -> tuple[ComparisonResult, RunRecord, dict[str, nn.Module]]:
    """The arms of ``options`` on the same months of one panel, with a run record.

    The first decision comes after ``window`` months; learned arms refit every
    ``refit_every`` decisions on the last ``TRAIN_MONTHS`` months known then, and every tuned
    arm chooses its gamma on the validation months. Returns the comparison, its run record
    (with the chosen gammas under ``metrics["tuning"]``) and the last fitted forecast networks
    by arm (``decoupled``: the MSE fit, ``e2e``: the network trained for Sharpe).
    """
    comparison, arm_set = compare_arms(panel, options, on_step, on_refit)
    record = RunRecord(
        kind="compare",
        config={"data": panel.name, "n_assets": panel.n_assets, **options.as_config()},
        metrics=clean_json(
            {
                "training_histories": arm_set.histories,
                "tuning": arm_set.tuning,
                "gamma_edges": gamma_edges(arm_set.tuning),
            }
        ),
        stats={name: r.stats for name, r in comparison.results.items()},
        series=comparison.series_frame(),
        weights=comparison.weights_frame(),
    )
    models: dict[str, nn.Module] = {
        arm: arm_set.models(arm)["mu"]
        for arm in ("decoupled", "e2e")
        if arm in options.slugs and "mu" in arm_set.models(arm)
    }
    return comparison, record, models
