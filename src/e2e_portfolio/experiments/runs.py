"""Experiments that tie data, models and the store together for the CLI and the app.

Each function runs one experiment end to end and returns its summary together with a
:class:`~e2e_portfolio.data.store.RunRecord` ready to be stored; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import pandas as pd

from e2e_portfolio.backtest.metrics import strategy_stats
from e2e_portfolio.backtest.strategies import (
    Decoupled,
    EndToEnd,
    MinimumVariance,
    PlugInMeanVariance,
    equal_weight,
)
from e2e_portfolio.backtest.walkforward import ComparisonResult, Strategy, run_comparison
from e2e_portfolio.data.datasets import load_french, load_sp500
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.data.synthetic import month_ends, simulate_universe
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.shrinkage import (
    METHODS,
    ShrinkageConfig,
    WalkForwardResult,
    edge_across_seeds,
    walk_forward,
)
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.train import TrainConfig
from e2e_portfolio.significance import sharpe_difference_test

TRAIN_MONTHS = 120
"""Learned strategies train on at most the last ten years of pairs."""
COMPARED_STRATEGIES = ("equal weight", "min variance (LW)", "plug-in MV", "decoupled", "end-to-end")


def shrink_synthetic(
    seeds: list[int],
    n_assets: int,
    n_months: int,
    config: ShrinkageConfig,
    on_seed: Callable[[dict], None] | None = None,
) -> tuple[dict, RunRecord]:
    """:func:`edge_across_seeds` plus a run record with per-seed statistics and series."""
    summary = edge_across_seeds(seeds, n_assets, n_months, config, on_seed=on_seed)
    dates = month_ends(n_months)
    stats, series = {}, []
    for seed, result in summary["results"].items():
        seed_stats, seed_series = walk_forward_frames(result, dates, suffix=f"/seed={seed}")
        stats.update(seed_stats)
        series.append(seed_series)
    metrics = {k: v for k, v in summary.items() if k not in ("results", "config")}
    record = RunRecord(
        kind="shrink",
        config={"data": "synthetic", "seeds": seeds, **summary["config"]},
        metrics=metrics,
        stats=stats,
        series=pd.concat(series, ignore_index=True),
    )
    return summary, record


def shrink_history(panel: FactorPanel, config: ShrinkageConfig) -> tuple[dict, RunRecord]:
    """The same comparison by walk-forward on one real history, with Jobson-Korkie-Memmel tests."""
    result = walk_forward(panel, config)
    decision = result.net_returns["decision-aware"]
    summary = {
        "sharpe": result.sharpe(),
        "vs_plugin": sharpe_difference_test(decision, result.net_returns["plug-in"]),
        "vs_lw": sharpe_difference_test(decision, result.net_returns["ledoit-wolf"]),
        "mean_delta": {m: float(result.delta[m].mean()) for m in METHODS},
        "mean_turnover": {m: float(result.turnover[m].mean()) for m in METHODS},
        "n_months": int(result.decision_months.size),
        "first_month": str(panel.dates[result.decision_months[0] + 1].date()),
        "last_month": str(panel.dates[result.decision_months[-1] + 1].date()),
    }
    stats, series = walk_forward_frames(result, panel.dates)
    record = RunRecord(
        kind="shrink",
        config={"data": panel.name, "n_assets": panel.n_assets, **asdict(config)},
        metrics=summary,
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
    for method in METHODS:
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

    ``synthetic`` (simulated with ``n_assets``, ``n_months``, ``seed``), ``french``
    (``universe``), ``sp500``, or a panel stored under that name. ``name`` renames a
    built-in panel.
    """
    if data == "synthetic":
        return simulate_universe(
            n_assets=n_assets, n_months=n_months, seed=seed, name=name or "synthetic"
        )
    if data == "french":
        return load_french(universe, name=name or "french")  # type: ignore[arg-type]
    if data == "sp500":
        return load_sp500(name=name or "sp500")
    if not store.has_panel(data):
        raise DataError(
            f"data: expected synthetic, french, sp500 or a stored panel, got {data!r} "
            f"(stored panels: {', '.join(store.panel_names()) or 'none'})"
        )
    return store.read_panel(data)


def compare_strategies(
    panel: FactorPanel,
    train_config: TrainConfig,
    window: int,
    refit_every: int,
    on_step: Callable[[str], None] | None = None,
) -> tuple[ComparisonResult, RunRecord, dict[str, ReturnPredictor]]:
    """Equal weight, minimum variance, plug-in, decoupled and end-to-end on the same months.

    The first decision comes after ``window`` months; learned strategies refit every
    ``refit_every`` decisions on the last ``TRAIN_MONTHS`` months known then. Returns the
    comparison, its run record and the last fitted decoupled and end-to-end predictors.
    """
    if window < 12 or window > panel.n_dates - 13:
        raise DataError(
            f"window: expected between 12 and n_dates - 13 = {panel.n_dates - 13} months, "
            f"got {window}"
        )
    train_config.validate(panel.n_assets)
    c = train_config
    decoupled = Decoupled(c, refit_every=refit_every, train_months=TRAIN_MONTHS,
                          covariance_window=window)  # fmt: skip
    end_to_end = EndToEnd(c, refit_every=refit_every, train_months=TRAIN_MONTHS)
    strategies: dict[str, Strategy] = {
        "equal weight": equal_weight,
        "min variance (LW)": MinimumVariance(window, "ledoit-wolf", long_only=True, w_max=c.w_max),
        "plug-in MV": PlugInMeanVariance(window, c.gamma, c.w_max),
        "decoupled": decoupled,
        "end-to-end": end_to_end,
    }
    assert tuple(strategies) == COMPARED_STRATEGIES
    comparison = run_comparison(panel, strategies, start=window, tc=c.tc, on_step=on_step)
    fitted = {"decoupled": decoupled, "end-to-end": end_to_end}
    learned = {name: strategy.histories for name, strategy in fitted.items()}
    record = RunRecord(
        kind="compare",
        config={"data": panel.name, "n_assets": panel.n_assets, "window": window,
                "refit_every": refit_every, **asdict(train_config)},
        metrics={"training_histories": learned},
        stats={name: r.stats for name, r in comparison.results.items()},
        series=comparison.series_frame(),
        weights=comparison.weights_frame(),
    )  # fmt: skip
    models: dict[str, ReturnPredictor] = {}
    for name, strategy in fitted.items():
        assert strategy.model is not None, f"{name} was never fitted"
        models[name] = strategy.model
    return comparison, record, models
