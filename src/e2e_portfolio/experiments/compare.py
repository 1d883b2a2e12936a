"""The central comparison: the arms of :mod:`e2e_portfolio.backtest.arms`, over seeds.

:func:`compare_arms` walks every arm forward on one panel with the backtest engine.
:func:`compare_across_seeds` repeats it for many seeds (a new synthetic universe and network
seed each; on a real history only the network seed changes) in local worker processes, and
pairs the arms across seeds (:mod:`e2e_portfolio.experiments.verdict`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from e2e_portfolio.annualisation import annualised_sharpe
from e2e_portfolio.backtest.arm_specs import (
    ARMS,
    BUILTIN_ARMS,
    GAMMA_GRID,
    Arm,
    Covariance,
    resolve_arms,
)
from e2e_portfolio.backtest.arms import MIN_HISTORY, ArmSet
from e2e_portfolio.backtest.gamma_grid import gamma_edges
from e2e_portfolio.backtest.walkforward import ComparisonResult, run_comparison
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.records import clean_json
from e2e_portfolio.data.store import RunRecord
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.verdict import (
    break_even_cost,
    comparisons_for,
    paired_verdicts,
)
from e2e_portfolio.experiments.workers import Backend, run_jobs
from e2e_portfolio.models.decision_shrinkage import MIN_WINDOW
from e2e_portfolio.models.portfolio import NO_SECTORS, PortfolioConfig
from e2e_portfolio.models.train import TrainConfig
from e2e_portfolio.seeds import parse_seeds  # noqa: F401 - its old home

TRAIN_MONTHS = 120
"""Learned arms train on at most the last ten years of pairs."""
BREAK_EVEN_ARMS = ("e2e", "e2e_risk", "e2e_return")


@dataclass(frozen=True)
class CompareOptions:
    """Everything of a comparison besides the panel and the seed.

    Parameters
    ----------
    train : TrainConfig
        Network and optimiser (its ``seed`` is the network seed of a single run).
    portfolio : PortfolioConfig
        The QP: the gamma networks train at, ``w_max``, ``kappa``.
    tc : float
        Cost per unit of two-sided turnover, in the backtest, the losses and the tuning.
    window : int
        Months before the first decision and in every trailing covariance and mean, for any
        number of assets: at least 17 when an arm refits (its first training needs 18 months
        of history), else :data:`~e2e_portfolio.models.decision_shrinkage.MIN_WINDOW` (12).
    refit_every : int
        Decisions between refits.
    arms : tuple of str or Arm
        Built-in slugs (:data:`~e2e_portfolio.backtest.arm_specs.BUILTIN_ARMS`) or your own
        :class:`~e2e_portfolio.backtest.arm_specs.Arm` s.
    covariance : {"ledoit_wolf", "oas", "nonlinear"}
        What the arms' ``"shrunk"`` covariance is.
    gamma_grid : tuple of float
        Risk aversions the tuned arms choose from on their validation months.
    widen_gamma_grid : bool
        Extend the grid at an end while the best gamma sits there (up to 6 steps per end).
    """

    train: TrainConfig = field(default_factory=TrainConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    tc: float = 0.005
    window: int = 48
    refit_every: int = 12
    arms: tuple[Arm | str, ...] = ARMS
    covariance: Covariance = "ledoit_wolf"
    gamma_grid: tuple[float, ...] = GAMMA_GRID
    widen_gamma_grid: bool = False

    @property
    def arm_specs(self) -> tuple[Arm, ...]:
        """The arms as specifications."""
        return resolve_arms(list(self.arms))

    @property
    def least_window(self) -> int:
        """The shortest window: 17 when an arm refits, else 12.

        An arm's first refit, at the first decision (position ``window``), needs five pairs
        from the ``MIN_HISTORY``-th month on: three to train, two to validate.
        """
        refits = any(arm.uses_network or arm.tune_gamma for arm in self.arm_specs)
        return max(MIN_WINDOW, MIN_HISTORY + 4) if refits else MIN_WINDOW

    @property
    def slugs(self) -> list[str]:
        """The arms' slugs, in order."""
        return [arm.slug for arm in self.arm_specs]

    def validate(self, panel: FactorPanel) -> None:
        """Raise :class:`DataError` if the options cannot run on ``panel``."""
        self.check(panel.n_assets, panel.n_dates)
        if self.portfolio.sector_max is not None and panel.sectors is None:
            raise DataError(NO_SECTORS)
        self.portfolio.validate(panel.n_assets, panel.sectors)

    def check(self, n_assets: int, n_dates: int) -> None:
        """Raise :class:`DataError` if the options cannot run on a panel of this size."""
        least = self.least_window
        if self.window < least or self.window > n_dates - 13:
            raise DataError(
                f"window: expected between {least} and n_dates - 13 = {n_dates - 13} "
                f"months, got {self.window}"
            )
        if self.covariance == "nonlinear" and self.window < 13:
            raise DataError(f"window: expected at least 13 months for nonlinear shrinkage, "
                            f"got {self.window}")  # fmt: skip
        if not (self.tc >= 0 and math.isfinite(self.tc)):
            raise DataError(f"tc: expected a finite cost >= 0, got {self.tc}")
        self.arm_specs  # noqa: B018  (raises on unknown or repeated arms)
        self.train.validate()
        self.portfolio.validate(n_assets)

    def as_config(self) -> dict[str, Any]:
        """JSON-ready options: training and portfolio settings flattened, arms by slug.

        Arms that are not the built-ins are also described (``arm_specs``).
        """
        config = {"window": self.window, "refit_every": self.refit_every, "arms": self.slugs,
                  "covariance": self.covariance, "gamma_grid": list(self.gamma_grid),
                  "widen_gamma_grid": self.widen_gamma_grid,
                  **asdict(self.portfolio), "tc": self.tc, **asdict(self.train)}  # fmt: skip
        specs = self.arm_specs
        if any(BUILTIN_ARMS.get(arm.slug) != arm for arm in specs):
            config["arm_specs"] = [arm.describe() for arm in specs]
        return config


def compare_arms(
    panel: FactorPanel,
    options: CompareOptions,
    on_step: Callable[[str], None] | None = None,
    on_refit: Callable[[str, str], None] | None = None,
) -> tuple[ComparisonResult, ArmSet]:
    """Walk every arm forward on ``panel``; the first decision comes after ``window`` months.

    ``on_step(arm)`` after each decision and ``on_refit(arm, date)`` before each refit
    (progress bars).
    """
    options.validate(panel)
    arms = ArmSet(options.portfolio, options.train, first_decision=options.window,
                  tc=options.tc, window=options.window, refit_every=options.refit_every,
                  train_months=TRAIN_MONTHS, covariance=options.covariance,
                  gamma_grid=options.gamma_grid, widen_gamma_grid=options.widen_gamma_grid,
                  sectors=panel.sectors, on_refit=on_refit)  # fmt: skip
    strategies = arms.strategies(options.arm_specs)
    comparison = run_comparison(panel, strategies, options.window, options.tc, on_step)
    if comparison.failures:  # a verdict needs every arm on every month
        raise next(iter(comparison.failures.values()))
    return comparison, arms


def seed_rows(comparison: ComparisonResult, arms: ArmSet, seed: int, tc: float) -> dict:
    """Per arm: statistics, the chosen gammas and the series (gross returns, turnover)."""
    out = {}
    for arm, result in comparison.results.items():
        s = result.stats
        out[arm] = {
            "seed": seed, "arm": arm, "sharpe": s.sharpe, "turnover": s.turnover,
            "annualised_return": s.annualised_return,
            "annualised_volatility": s.annualised_volatility, "max_drawdown": s.max_drawdown,
            "gammas": [t["gamma"] for t in arms.tuning.get(arm, [])],
            "gross": (result.net_returns + tc * result.turnover).tolist(),
            "turnover_series": result.turnover.tolist(),
        }  # fmt: skip
    return out


def _one_seed(job: tuple[FactorPanel, CompareOptions, int, int]) -> dict:
    """What a worker runs: one seed's comparison (panel, options, seed, threads), as plain data."""
    from e2e_portfolio.config import configure_threads

    panel, options, seed, threads = job
    configure_threads(threads)
    seeded = replace(options, train=replace(options.train, seed=seed))
    comparison, arms = compare_arms(panel, seeded)
    first = next(iter(comparison.results.values()))
    return {"seed": seed, "dates": [f"{d:%Y-%m-%d}" for d in first.dates],
            "arms": seed_rows(comparison, arms, seed, options.tc),
            "tuning": arms.tuning}  # fmt: skip


def worker_threads(workers: int) -> int:
    """Torch threads per worker so that workers never use more threads than cores."""
    from e2e_portfolio.config import get_settings

    cores = os.cpu_count() or 1
    return max(1, min(get_settings().e2e_threads, cores // workers))


def compare_across_seeds(
    seeds: Sequence[int],
    panel_for: Callable[[int], FactorPanel],
    options: CompareOptions,
    workers: int = 1,
    on_seed: Callable[[dict], None] | None = None,
    one_history: bool = False,
    backend: Backend = "local",
    address: str | None = None,
) -> tuple[dict[str, Any], RunRecord]:
    """Run :func:`compare_arms` per seed (``panel_for(seed)``) and pair the arms over seeds.

    Parameters
    ----------
    seeds : sequence of int
        Each seeds the network (``TrainConfig.seed``) and, through ``panel_for``, the data.
    panel_for : callable
        Seed to panel (a new synthetic universe, or the same history every time).
    options : CompareOptions
    workers : int
        Parallel workers; local ones (joblib processes) get ``cores // workers`` torch
        threads each at most.
    on_seed : callable, optional
        Called with each finished seed's result (progress bars).
    one_history : bool
        Every seed runs on the same real history (only the network seed varies): the
        paired verdict across seeds then measures training noise only, so the summary adds
        ``history`` (:func:`history_summary`): tests on the history itself and sub-periods.
    backend : {"local", "serial", "ray"}
        Where the seeds run (:func:`~e2e_portfolio.experiments.workers.run_jobs`).
    address : str, optional
        ``ray``: the cluster's address (a local Ray with ``workers`` CPUs when None).

    Returns
    -------
    summary : dict
        ``verdict`` (:func:`paired_verdicts` over :func:`comparisons_for` the arms run),
        ``per_seed`` rows, ``mean`` (per arm: mean Sharpe and turnover), ``break_even`` (per
        e2e arm vs decoupled), ``tuning`` (per seed, per arm, the chosen gammas per refit),
        and ``history`` when ``one_history``.
    record : RunRecord
        One stored run: its series hold every arm and seed (``arm/seed=N``).
    """
    if not seeds:
        raise DataError("seeds: expected at least one seed, got none")
    if workers < 1:
        raise DataError(f"workers: expected at least 1, got {workers}")
    options.validate(panel_for(seeds[0]))
    threads = worker_threads(workers)
    jobs = [(panel_for(seed), options, seed, threads) for seed in seeds]
    results = []
    for result in run_jobs(jobs, _one_seed, backend, workers, address):
        results.append(result)
        if on_seed is not None:
            on_seed(result)
    results.sort(key=lambda r: r["seed"])
    summary, record = _summarise(results, options)
    if one_history:
        summary["history"] = history_summary(results, options)
        record.metrics["history"] = clean_json(summary["history"])  # type: ignore[index]
    return summary, record


def history_summary(results: list[dict], options: CompareOptions) -> dict[str, Any]:
    """Tests on one real history, sub-periods by decade, and the spread over network seeds.

    ``tests``: for each comparison, on the first network seed's run, the Sharpe difference,
    the Jobson-Korkie-Memmel p and the studentised circular block-bootstrap p (Ledoit & Wolf
    2008; blocks of 6 months), each Holm-adjusted over the comparisons; plus the smallest and
    largest difference over all network seeds. ``decades``: per calendar decade of the
    out-of-sample months, each arm's Sharpe on the first seed. ``spread``: per arm, the
    Sharpe's min, median and max over network seeds.
    """
    from e2e_portfolio.significance import block_bootstrap_sharpe_test, holm, sharpe_difference_test

    first, tc = results[0], options.tc
    net = {arm: np.array(a["gross"]) - tc * np.array(a["turnover_series"])
           for arm, a in first["arms"].items()}  # fmt: skip
    tests = []
    for arm, versus in comparisons_for(options.slugs):
        jkm = sharpe_difference_test(net[arm], net[versus])
        boot = block_bootstrap_sharpe_test(net[arm], net[versus])
        gaps = [r["arms"][arm]["sharpe"] - r["arms"][versus]["sharpe"] for r in results]
        tests.append({"arm": arm, "versus": versus, "difference": jkm["difference"],
                      "p_jkm": jkm["p_value"], "p_bootstrap": boot["p_value"],
                      "difference_min": min(gaps), "difference_max": max(gaps)})  # fmt: skip
    for name in ("p_jkm", "p_bootstrap"):
        for row, adjusted in zip(tests, holm([t[name] for t in tests]), strict=True):
            row[f"{name}_holm"] = float(adjusted)
    dates = pd.to_datetime(first["dates"])
    decades = []
    for decade in sorted(set(dates.year // 10 * 10)):
        mask = np.asarray(dates.year // 10 * 10 == decade)
        if mask.sum() < 12:
            continue
        decades.append({"decade": f"{decade}s", "months": int(mask.sum()),
                        "sharpe": {arm: float(annualised_sharpe(r[mask]))
                                   for arm, r in net.items()}})  # fmt: skip
    spread = {arm: {k: float(f([r["arms"][arm]["sharpe"] for r in results]))
                    for k, f in (("min", np.min), ("median", np.median), ("max", np.max))}
              for arm in options.slugs}  # fmt: skip
    return {"seed": first["seed"], "tests": tests, "decades": decades, "spread": spread}


def _summarise(results: list[dict], options: CompareOptions) -> tuple[dict, RunRecord]:
    arms = options.slugs
    sharpe = {arm: [r["arms"][arm]["sharpe"] for r in results] for arm in arms}
    verdict = paired_verdicts(sharpe, comparisons_for(arms))
    series = lambda arm, key: [np.array(r["arms"][arm][key]) for r in results]  # noqa: E731
    break_even = []
    for arm in (a for a in BREAK_EVEN_ARMS if a in arms and "decoupled" in arms):
        cost = break_even_cost(series(arm, "gross"), series(arm, "turnover_series"),
                               series("decoupled", "gross"),
                               series("decoupled", "turnover_series"))  # fmt: skip
        break_even.append({"arm": arm, "versus": "decoupled", "cost": cost})
    per_seed = [
        {k: v for k, v in r["arms"][arm].items() if k not in ("gross", "turnover_series")}
        for r in results
        for arm in arms
    ]
    mean = {arm: {"sharpe": float(np.mean(sharpe[arm])),
                  "turnover": float(np.mean([r["arms"][arm]["turnover"] for r in results]))}
            for arm in arms}  # fmt: skip
    edges = [gamma_edges(r["tuning"]) for r in results]
    summary = {"arms": arms, "verdict": verdict, "per_seed": per_seed, "mean": mean,
               "break_even": break_even, "seeds": [r["seed"] for r in results],
               "tuning": {str(r["seed"]): r["tuning"] for r in results},
               "gamma_edges": {arm: {key: sum(e[arm][key] for e in edges if arm in e)
                                     for key in ("refits", "low", "high")}
                               for arm in arms if any(arm in e for e in edges)}}  # fmt: skip
    frames = []
    for r in results:
        for arm in arms:
            a = r["arms"][arm]
            gross, turnover = np.array(a["gross"]), np.array(a["turnover_series"])
            frames.append(pd.DataFrame({
                "strategy": f"{arm}/seed={r['seed']}", "date": pd.to_datetime(r["dates"]),
                "net_return": gross - options.tc * turnover, "turnover": turnover,
            }))  # fmt: skip
    config = {k: v for k, v in options.as_config().items() if k != "seed"}  # seeds instead
    metrics = {k: v for k, v in summary.items() if k != "per_seed"} | {"per_seed": per_seed}
    record = RunRecord(kind="compare", config={**config, "seeds": summary["seeds"]},
                       metrics=clean_json(metrics),  # one seed: no interval, no test
                       series=pd.concat(frames, ignore_index=True))  # fmt: skip
    return summary, record
