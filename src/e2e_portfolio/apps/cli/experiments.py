"""``e2e shrink`` and ``e2e compare``: the experiments.

``e2e sweep`` is in :mod:`e2e_portfolio.apps.cli.sweep`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from e2e_portfolio.apps.cli.base import (
    SEEDS_HELP,
    TC_HELP,
    DataOption,
    JsonOption,
    UniverseOption,
    app,
    check_json_path,
    comma_values,
    console,
    err_console,
    handled,
    print_stored,
    resolve_seeds,
    save_run,
    uses_stored_panel,
    writable_store_of,
    write_json,
)
from e2e_portfolio.apps.cli.compare_seeds import compare_seeds, print_verdict
from e2e_portfolio.apps.cli.compare_tables import (
    edges_line,
    tuning_caption,
)
from e2e_portfolio.apps.cli.tables import (
    comparison_table,
    history_tables,
    shrink_tables,
)
from e2e_portfolio.backtest.arm_specs import ARMS, GAMMA_GRID, LEARNED

# The experiments import torch, cvxpy and scikit-learn: only the commands that run them do,
# so that `e2e --help`, `e2e runs` and `e2e data list` answer at once.


@app.command()
@handled()
def shrink(
    ctx: typer.Context,
    seeds: Annotated[
        str | None,
        typer.Option(help=f"Synthetic universes, one per seed: {SEEDS_HELP} (default 0-9)."),
    ] = None,
    n_assets: Annotated[int, typer.Option(help="Assets per synthetic universe.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="Months per synthetic universe.", min=10)] = 96,
    data: DataOption = "synthetic",
    universe: UniverseOption = "industries",
    window: Annotated[
        int, typer.Option(help="Months per sample covariance (at least 12, any number of assets).")
    ] = 48,
    score_months: Annotated[
        int, typer.Option(help="Months before each decision used to choose delta.", min=3)
    ] = 24,
    tc: Annotated[float, typer.Option(help=TC_HELP, min=0.0)] = 0.001,
    target: Annotated[
        str, typer.Option(help="Shrinkage target: identity (Ledoit-Wolf's) or diagonal.")
    ] = "identity",
    learn_theta: Annotated[
        bool, typer.Option(help="Also train the return head for net Sharpe (gradient ascent).")
    ] = False,
    baselines: Annotated[
        str | None,
        typer.Option(
            help="Further rivals, comma-separated: oas (Chen et al. 2010), nonlinear "
            "(Ledoit & Wolf 2020)."
        ),
    ] = None,
    n_seeds: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,  # deprecated
    first_seed: Annotated[int | None, typer.Option(hidden=True, min=0)] = None,  # deprecated
    gamma: Annotated[
        float | None,
        typer.Option(
            help="Book: risk aversion of the mean-variance QP (default 8 with a book).", min=0.0
        ),
    ] = None,
    w_min: Annotated[
        float | None, typer.Option(help="Book: per-asset floor (0 long-only, < 0 shorts).")
    ] = None,
    w_max: Annotated[float | None, typer.Option(help="Book: per-asset cap.", min=0.0)] = None,
    budget: Annotated[
        float | None, typer.Option(help="Book: sum(w), 1 invested (default), 0 dollar-neutral.")
    ] = None,
    leverage: Annotated[
        float | None, typer.Option(help="Book: bound on the gross exposure sum(|w|).", min=0.0)
    ] = None,
    sector_max: Annotated[
        float | None,
        typer.Option(
            help="Book: cap on each sector's weight (synthetic: industry blocks; "
            "imported panels: data import --sectors).",
            min=0.0,
        ),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """Headline experiment: decision-aware covariance shrinkage vs plug-in and Ledoit-Wolf.

    For each decision month, the sample covariance of the last WINDOW months is shrunk toward
    the target by delta: 0 (plug-in), Ledoit-Wolf's delta, or the delta that maximised the net
    Sharpe of the SCORE_MONTHS months before (decision-aware). Portfolios are the mean-variance
    direction at unit gross leverage; any of the book options (--gamma, --w-min, --w-max,
    --budget, --leverage, --sector-max) makes every method hold the mean-variance QP with
    those constraints instead (long-only and fully invested unless said otherwise), in the
    choice of delta as in the decision. On synthetic data the comparison is repeated over seeds
    and summarised with paired confidence intervals and Wilcoxon tests; on a real history it
    is one walk-forward with Jobson-Korkie-Memmel and block-bootstrap tests. p-values are
    Holm-adjusted over the comparisons. The run is stored in the DuckDB file.
    """
    from e2e_portfolio.models.decision_shrinkage import ShrinkageConfig  # numpy only

    old = None if n_seeds is None and first_seed is None else list(
        range(first_seed or 0, (first_seed or 0) + (n_seeds or 10)))  # fmt: skip
    seed_list = resolve_seeds(seeds, "0-9", "--n-seeds/--first-seed", old)
    store = writable_store_of(ctx)
    check_json_path(json_path)
    config = ShrinkageConfig(
        window=window,
        score_months=score_months,
        tc=tc,
        target=target,  # type: ignore[arg-type]  # ShrinkageConfig checks the value
        learn_theta=learn_theta,
        baselines=tuple(comma_values(baselines, str, "--baselines") or ()),
    )
    if data == "synthetic" and not store.has_panel(data):  # before torch loads: at once
        config.validate(n_assets, n_months)
    from e2e_portfolio.experiments import resolve_panel, shrink_history, shrink_synthetic
    from e2e_portfolio.models.portfolio import PortfolioConfig

    book = {"gamma": gamma, "w_min": w_min, "w_max": w_max, "budget": budget,
            "leverage": leverage, "sector_max": sector_max}  # fmt: skip
    asked = {key: value for key, value in book.items() if value is not None}
    portfolio = PortfolioConfig(**asked) if asked else None
    if not uses_stored_panel(store, data) and data == "synthetic":
        with Progress(
            console=err_console, transient=True, disable=not err_console.is_terminal
        ) as progress:
            task = progress.add_task(f"{len(seed_list)} universes", total=len(seed_list))
            summary, record = shrink_synthetic(
                seed_list,
                n_assets,
                n_months,
                config,
                on_seed=lambda _: progress.advance(task),
                portfolio=portfolio,
            )
        tables = shrink_tables(summary)
    else:
        panel = resolve_panel(data, store, universe)
        with err_console.status(f"walk-forward on {panel.name}"):
            summary, record = shrink_history(panel, config, portfolio)
        if data == "french":
            record = replace(record, config={**record.config, "universe": universe})
        tables = history_tables(summary, panel, record.config.get("book"))
    run_id = save_run(store, record)
    print_verdict(record)
    for table in tables:
        console.print(table)
    result = {k: v for k, v in summary.items() if k != "results"}  # per-seed arrays stay out
    write_json(json_path, {"kind": "shrink", "config": record.config, "result": result})
    print_stored(store, run_id)


@app.command()
@handled()
def compare(
    ctx: typer.Context,
    gamma: Annotated[
        float, typer.Option(help="Risk aversion the networks are trained at.", min=0.0)
    ] = 8.0,
    w_max: Annotated[
        float | None, typer.Option(help="Per-asset weight cap (default: none).", min=0.0)
    ] = None,
    kappa: Annotated[float, typer.Option(help="L1 turnover penalty in the QP.", min=0.0)] = 0.0,
    w_min: Annotated[
        float, typer.Option(help="Per-asset floor of the QP arms: negative allows shorts.")
    ] = 0.0,
    leverage: Annotated[
        float | None,
        typer.Option(
            help="Bound on the QP arms' gross exposure sum(|w|) (default: none).", min=0.0
        ),
    ] = None,
    budget: Annotated[
        float, typer.Option(help="sum(w) of the QP arms: 1 invested, 0 dollar-neutral (shorts).")
    ] = 1.0,
    sector_max: Annotated[
        float | None,
        typer.Option(
            help="Cap on each sector's weight in the QP arms (synthetic: industry blocks; "
            "imported panels: data import --sectors).",
            min=0.0,
        ),
    ] = None,
    tc: Annotated[float, typer.Option(help=TC_HELP, min=0.0)] = 0.005,
    data: DataOption = "synthetic",
    universe: UniverseOption = "industries",
    n_assets: Annotated[int, typer.Option(help="synthetic: number of assets.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="synthetic: number of months.", min=30)] = 96,
    seeds: Annotated[
        str | None,
        typer.Option(
            help=f"Seeds: {SEEDS_HELP} (default 42). One seed: one walk-forward, weights "
            "stored. Several: paired runs (synthetic: a universe and a network seed each; a "
            "real history: network seeds)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(hidden=True, min=0)] = None,  # deprecated
    workers: Annotated[int, typer.Option(help="--seeds: parallel workers.", min=1)] = 1,
    backend: Annotated[
        str, typer.Option(help="--seeds: where they run: local (joblib processes), serial or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="--backend ray: cluster address, e.g. auto.")
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the result as JSON here (--seeds: the verdict)."),
    ] = None,
    arms: Annotated[
        str | None, typer.Option(help=f"Comma-separated arms (default: all: {', '.join(ARMS)}).")
    ] = None,
    covariance: Annotated[
        str,
        typer.Option(help="Shrunk covariance of the covariance arms: ledoit_wolf, oas, nonlinear."),
    ] = "ledoit_wolf",
    gamma_grid: Annotated[
        str, typer.Option(help="Risk aversions each QP arm chooses from on validation months.")
    ] = ",".join(f"{g:g}" for g in GAMMA_GRID),
    widen_gamma_grid: Annotated[
        bool,
        typer.Option(
            help="Extend the gamma grid at an end while the best gamma sits there "
            "(up to 6 steps per end)."
        ),
    ] = False,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs per refit.", min=1)] = 40,
    window: Annotated[
        int, typer.Option(help="Months of history before the first decision and per covariance.")
    ] = 48,
    refit_every: Annotated[int, typer.Option(help="Decisions between refits.", min=1)] = 12,
    device: Annotated[
        str, typer.Option(help="torch device for training and the QP layer: cpu or cuda.")
    ] = "cpu",
) -> None:
    """Training for decisions against training for accuracy: eight arms, out of sample.

    Walks forward month by month. Arms: equal_weight, min_variance (least variance under the
    shrunk covariance), plug_in (sample mean-variance), decoupled (MSE forecast + shrunk
    covariance), decoupled_nll (MSE forecast + the network's factor covariance fitted by
    likelihood), e2e (forecast and covariance trained for net Sharpe through the QP), e2e_risk
    (MSE forecast frozen, covariance trained for Sharpe) and e2e_return (shrunk covariance,
    forecast trained for Sharpe). Learned arms refit every REFIT_EVERY months on the past only
    (early stopping on its latest quarter); every QP arm chooses its gamma on those validation
    months from GAMMA_GRID. --w-min, --leverage and --budget pose a long-short book to every QP
    arm (min_variance included; equal_weight stays 1/N), and --sector-max caps each sector. With
    --seeds the arms are paired across seeds (t-intervals, Wilcoxon, Holm-adjusted over the
    comparisons printed) and break-even costs are reported. The run is stored (config,
    statistics, returns; weights for one seed).
    """
    from e2e_portfolio.backtest.arm_specs import check_covariance, check_gamma_grid, resolve_arms

    # what can be checked before torch loads is checked at once
    seed_list = resolve_seeds(seeds, "42", "--seed", None if seed is None else [seed])
    store = writable_store_of(ctx)
    arm_list = tuple(comma_values(arms, str, "--arms") or ARMS)
    resolve_arms(arm_list)
    grid = check_gamma_grid(comma_values(gamma_grid, float, "--gamma-grid") or GAMMA_GRID)
    covariance = check_covariance(covariance)
    check_json_path(json_path)

    from e2e_portfolio.config import configure_threads
    from e2e_portfolio.experiments import compare_strategies, resolve_panel
    from e2e_portfolio.experiments.compare import CompareOptions
    from e2e_portfolio.models.portfolio import PortfolioConfig
    from e2e_portfolio.models.train import TrainConfig

    configure_threads()  # E2E_THREADS, as the command line exported it
    options = CompareOptions(
        train=TrainConfig(epochs=epochs, seed=seed_list[0], device=device),
        portfolio=PortfolioConfig(gamma=gamma, w_max=w_max, kappa=kappa, w_min=w_min,
                                  budget=budget, leverage=leverage, sector_max=sector_max),
        tc=tc, window=window, refit_every=refit_every, arms=arm_list,
        covariance=covariance, gamma_grid=grid,
        widen_gamma_grid=widen_gamma_grid,
    )  # fmt: skip
    if len(seed_list) > 1:
        compare_seeds(store, options, seed_list, (workers, backend, address),
                       json_path, data, universe, n_assets, n_months)  # fmt: skip
        return
    uses_stored_panel(store, data)
    panel = resolve_panel(data, store, universe, n_assets, n_months, seed_list[0])
    steps = len(arm_list) * (panel.n_dates - 1 - window)
    with Progress(
        console=err_console, transient=True, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task("walk-forward", total=max(steps, 1))

        def advance(name: str) -> None:
            progress.update(task, advance=1, description=f"{name}: deciding month by month")

        def training(name: str, date: str) -> None:
            work = "training and choosing gamma" if name in LEARNED else "choosing gamma"
            progress.update(task, description=f"{name}: {work} at {date}")

        comparison, record, _ = compare_strategies(panel, options, advance, training)
    if data == "french":
        record = replace(record, config={**record.config, "universe": universe})
    run_id = save_run(store, record)
    print_verdict(record)
    table = comparison_table(comparison, record.config)
    table.caption = (tuning_caption(record.metrics["tuning"]) + "\n"
                     + edges_line(record.metrics["gamma_edges"]))  # fmt: skip
    table.caption_justify = "left"
    console.print(table)
    write_json(json_path, {"kind": "compare", "config": record.config,
                            "stats": {k: v.model_dump() for k, v in record.stats.items()},
                            "tuning": record.metrics["tuning"],
                            "gamma_edges": record.metrics["gamma_edges"]})  # fmt: skip
    print_stored(store, run_id)
