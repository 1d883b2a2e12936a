"""The ``e2e`` command line: parses options, calls the library, presents the results.

Run ``e2e --help`` for the commands; every command has its own ``--help``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from e2e_portfolio.cli_tables import (
    comparison_table,
    history_tables,
    importance_table,
    panel_summary_table,
    panels_table,
    runs_table,
    shrink_tables,
    sweep_table,
)
from e2e_portfolio.config import configure_threads, get_settings
from e2e_portfolio.data.datasets import (
    BUILTIN_DATASETS,
    FRENCH_UNIVERSES,
)
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.data.store import Store
from e2e_portfolio.exceptions import E2EPortfolioError, PanelExistsError
from e2e_portfolio.experiments import (
    COMPARED_STRATEGIES,
    compare_strategies,
    resolve_panel,
    shrink_history,
    shrink_synthetic,
)
from e2e_portfolio.models.decision_shrinkage import ShrinkageConfig
from e2e_portfolio.models.train import TrainConfig

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="e2e",
    help="End-to-end (decision-focused) portfolio optimisation: data, experiments, reports.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Load, list and inspect factor panels in the DuckDB store.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="DuckDB file for panels and runs (default: $DB_PATH, else ./e2e_portfolio.duckdb).",
        dir_okay=False,
    ),
]
DataOption = Annotated[
    str, typer.Option(help="synthetic, french, sp500, or the name of a stored panel.")
]
UniverseOption = Annotated[
    str, typer.Option(help=f"french: which portfolios, one of {', '.join(FRENCH_UNIVERSES)}.")
]


def _store(ctx: typer.Context) -> Store:
    return Store(ctx.obj["db"])


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=1)


TC_HELP = "Cost per unit of two-sided turnover (buys plus sells)."
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="torch intra-op threads (default: $E2E_THREADS, else 1: small batched solves "
        "gain little from more and lose much when cores are busy).",
    ),
]


@app.callback()
def main(ctx: typer.Context, db: DbOption = None, threads: ThreadsOption = None) -> None:
    """End-to-end (decision-focused) portfolio optimisation.

    Data live in one local DuckDB file (``--db``, else ``$DB_PATH``, else
    ``./e2e_portfolio.duckdb``).
    """
    configure_threads(threads)
    ctx.obj = {"db": db or get_settings().db_path}


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List the built-in datasets and the panels stored in the DuckDB file."""
    console.print(panels_table(BUILTIN_DATASETS, _store(ctx)))


@data_app.command("load")
def data_load(
    ctx: typer.Context,
    dataset: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(BUILTIN_DATASETS)}.", show_default=False)
    ],
    name: Annotated[
        str | None, typer.Option("--as", help="Store under this name [default: DATASET].")
    ] = None,
    n_assets: Annotated[int, typer.Option(help="synthetic: number of assets.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="synthetic: number of months.", min=2)] = 96,
    seed: Annotated[int, typer.Option(help="synthetic: random seed.")] = 42,
    universe: Annotated[
        str, typer.Option(help=f"french: one of {', '.join(FRENCH_UNIVERSES)}.")
    ] = "industries",
    tickers: Annotated[
        str | None, typer.Option(help="yfinance: comma-separated symbols, e.g. AAPL,MSFT,KO.")
    ] = None,
    start: Annotated[str, typer.Option(help="yfinance: first date (ISO).")] = "2005-01-01",
    replace: Annotated[bool, typer.Option(help="Overwrite a stored panel of that name.")] = False,
) -> None:
    """Build a panel from a data source and store it in the DuckDB file."""
    store = _store(ctx)
    target = name or dataset
    try:
        panel = _build_panel(
            store, dataset, target, n_assets, n_months, seed, universe, tickers, start
        )
        store.write_panel(panel, replace=replace)
    except PanelExistsError as exc:
        hint = f"{exc.path}: panel {exc.name!r} is already stored; add --replace to overwrite it"
        raise _fail(ValueError(hint)) from exc
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(
        f"Stored panel [bold]{panel.name}[/]: {panel.n_assets} assets x {panel.n_dates} dates "
        f"x {panel.n_features} features in {store.path}"
    )


def _build_panel(
    store: Store,
    dataset: str,
    name: str,
    n_assets: int,
    n_months: int,
    seed: int,
    universe: str,
    tickers: str | None,
    start: str,
) -> FactorPanel:
    if dataset in ("synthetic", "french", "sp500"):
        return resolve_panel(dataset, store, universe, n_assets, n_months, seed, name=name)
    if dataset == "yfinance":
        from e2e_portfolio.data.fetchers import fetch_prices, prices_to_panel

        if not tickers:
            raise ValueError("--tickers: expected comma-separated symbols for yfinance, got none")
        symbols = tickers.split(",")
        return prices_to_panel(
            fetch_prices(symbols, start=start), name=name, description=f"yfinance {symbols}"
        )
    raise ValueError(f"DATASET: expected one of {list(BUILTIN_DATASETS)}, got {dataset!r}")


@data_app.command("show")
def data_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of a stored panel.", show_default=False)],
    max_assets: Annotated[int, typer.Option(help="Show at most this many assets.", min=1)] = 25,
) -> None:
    """Summarise a stored panel: dates, features, and mean/volatility/Sharpe per asset."""
    try:
        panel = _store(ctx).read_panel(name)
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(panel_summary_table(panel, max_assets=max_assets))


@data_app.command("delete")
def data_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of a stored panel.", show_default=False)],
) -> None:
    """Remove a stored panel."""
    store = _store(ctx)
    try:
        store.delete_panel(name)
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(f"Deleted panel [bold]{name}[/] from {store.path}")


@app.command()
def shrink(
    ctx: typer.Context,
    n_seeds: Annotated[
        int, typer.Option(help="Synthetic universes (seeds) to average.", min=1)
    ] = 10,
    n_assets: Annotated[int, typer.Option(help="Assets per synthetic universe.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="Months per synthetic universe.", min=10)] = 96,
    data: DataOption = "synthetic",
    universe: UniverseOption = "industries",
    window: Annotated[int, typer.Option(help="Months per sample covariance.", min=3)] = 48,
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
    first_seed: Annotated[
        int, typer.Option(help="Seeds are first_seed .. first_seed + n_seeds - 1.")
    ] = 0,
) -> None:
    """Headline experiment: decision-aware covariance shrinkage vs plug-in and Ledoit-Wolf.

    For each decision month, the sample covariance of the last WINDOW months is shrunk toward
    the target by delta: 0 (plug-in), Ledoit-Wolf's delta, or the delta that maximised the net
    Sharpe of the SCORE_MONTHS months before (decision-aware). Portfolios are the mean-variance
    direction at unit gross leverage. On synthetic data the comparison is repeated over seeds
    and summarised with paired confidence intervals and tests; on a real history it is one
    walk-forward with Jobson-Korkie-Memmel tests. The run is stored in the DuckDB file.
    """
    store = _store(ctx)
    config = ShrinkageConfig(
        window=window,
        score_months=score_months,
        tc=tc,
        target=target,  # type: ignore[arg-type]  # ShrinkageConfig checks the value
        learn_theta=learn_theta,
    )
    try:
        if data == "synthetic":
            seeds = list(range(first_seed, first_seed + n_seeds))
            with Progress(console=err_console, transient=True) as progress:
                task = progress.add_task(f"{n_seeds} universes", total=n_seeds)
                summary, record = shrink_synthetic(
                    seeds, n_assets, n_months, config, on_seed=lambda _: progress.advance(task)
                )
            tables = shrink_tables(summary)
        else:
            panel = resolve_panel(data, store, universe)
            with err_console.status(f"walk-forward on {panel.name}"):
                summary, record = shrink_history(panel, config)
            tables = history_tables(summary, panel)
        run_id = store.save_run(record)
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    for table in tables:
        console.print(table)
    console.print(f"Stored run [bold]{run_id}[/] in {store.path}")


@app.command()
def compare(
    ctx: typer.Context,
    gamma: Annotated[float, typer.Option(help="Risk aversion of the QP.", min=0.0)] = 8.0,
    w_max: Annotated[
        float | None, typer.Option(help="Per-asset weight cap (default: none).", min=0.0)
    ] = None,
    kappa: Annotated[float, typer.Option(help="L1 turnover penalty in the QP.", min=0.0)] = 0.0,
    tc: Annotated[float, typer.Option(help=TC_HELP, min=0.0)] = 0.005,
    data: DataOption = "synthetic",
    universe: UniverseOption = "industries",
    n_assets: Annotated[int, typer.Option(help="synthetic: number of assets.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="synthetic: number of months.", min=30)] = 96,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data and of training.")] = 42,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs per refit.", min=1)] = 40,
    window: Annotated[
        int, typer.Option(help="Months of history before the first decision and per covariance.")
    ] = 48,
    refit_every: Annotated[int, typer.Option(help="Decisions between refits.", min=1)] = 12,
    device: Annotated[
        str, typer.Option(help="torch device for training and the QP layer: cpu or cuda.")
    ] = "cpu",
) -> None:
    """Decoupled (MSE + Ledoit-Wolf) vs end-to-end (Sharpe through the QP), out of sample.

    Walks forward month by month. The learned strategies are retrained every REFIT_EVERY
    months on the past only (early stopping on the latest quarter of it); baselines are equal
    weight, long-only minimum variance (Ledoit-Wolf) and the plug-in mean-variance QP. Prints
    the out-of-sample statistics and stores the run (config, stats, returns, weights).
    """
    store = _store(ctx)
    config = TrainConfig(
        gamma=gamma, w_max=w_max, kappa=kappa, tc=tc, epochs=epochs, seed=seed, device=device
    )
    try:
        panel = resolve_panel(data, store, universe, n_assets, n_months, seed)
        steps = len(COMPARED_STRATEGIES) * (panel.n_dates - 1 - window)
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("walk-forward", total=max(steps, 1))

            def advance(name: str) -> None:
                progress.update(task, advance=1, description=f"walk-forward: {name}")

            comparison, record, _ = compare_strategies(panel, config, window, refit_every, advance)
        run_id = store.save_run(record)
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(comparison_table(comparison, record.config))
    console.print(f"Stored run [bold]{run_id}[/] in {store.path}")


@app.command()
def report(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(help="A stored run id (see e2e runs).", show_default=False)
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Report the newest run.")] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """Write one self-contained HTML report (plotly.js inlined, opens offline) of a stored run."""
    from e2e_portfolio.report.html import build_report

    store = _store(ctx)
    try:
        if (run_id is None) == (not latest):
            raise ValueError(
                "RUN_ID: expected a run id or --latest (exactly one), got "
                + ("both" if latest else "neither")
            )
        record = store.load_run(run_id or store.latest_run_id())
        output.write_text(build_report(record), encoding="utf-8")
    except (E2EPortfolioError, ValueError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"Wrote report of [bold]{record.run_id}[/] to {output}")


@app.command()
def runs(
    ctx: typer.Context, kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None
) -> None:
    """List the stored runs, newest first."""
    try:
        table = runs_table(_store(ctx).list_runs(kind))
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(table)


@app.command()
def attribute(
    ctx: typer.Context,
    n_seeds: Annotated[int, typer.Option(help="Synthetic universes to train on.", min=1)] = 5,
    n_assets: Annotated[int, typer.Option(help="Assets per universe.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="Months per universe.", min=10)] = 96,
    gamma: Annotated[float, typer.Option(help="Risk aversion of the QP.", min=0.0)] = 8.0,
    w_max: Annotated[float | None, typer.Option(help="Per-asset cap.", min=0.0)] = 0.1,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.", min=1)] = 40,
    shap: Annotated[
        bool, typer.Option("--shap", help="Also SHAP values (needs the shap extra).")
    ] = False,
) -> None:
    """Factor importance of the decoupled and end-to-end predictors, across seeds.

    Trains both on each synthetic universe, measures gradient saliency per exposure, and
    reports in how many seeds the end-to-end model gives the unpriced diversifier exposures
    a larger share than the MSE model does. The run is stored (use e2e report --latest).
    """
    from e2e_portfolio.attribution.saliency import attribution_across_seeds
    from e2e_portfolio.data.store import RunRecord

    store = _store(ctx)
    config = TrainConfig(gamma=gamma, w_max=w_max, epochs=epochs)
    try:
        config.validate(n_assets)
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("training per seed", total=n_seeds)
            summary = attribution_across_seeds(
                range(n_seeds),
                n_assets,
                n_months,
                config,
                on_seed=lambda _: progress.advance(task),
                with_shap=shap,
            )
        record = RunRecord(
            kind="attribution",
            config={"seeds": list(range(n_seeds)), "n_assets": n_assets, "n_months": n_months,
                    "gamma": gamma, "w_max": w_max, "epochs": epochs, "shap": shap},
            metrics=summary,
        )  # fmt: skip
        run_id = store.save_run(record)
    except (E2EPortfolioError, ValueError, ImportError) as exc:
        raise _fail(exc) from exc
    console.print(importance_table(summary))
    console.print(f"Stored run [bold]{run_id}[/] in {store.path}")


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve on.", min=1, max=65535)] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Launch the Streamlit dashboard (compare, shrinkage with a seed slider, stored runs)."""
    import subprocess
    import sys

    script = Path(__file__).with_name("app.py")
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
               "--server.address", address, "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]  # fmt: skip
    console.print(f"Serving the dashboard on http://{address}:{port} (Ctrl+C stops it)")
    raise typer.Exit(subprocess.run(command).returncode)


@app.command("build-dashboard")
def build_dashboard(
    output_dir: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("."),
    n_seeds: Annotated[
        int, typer.Option(help="Seeds precomputed for the static page.", min=1)
    ] = 20,
) -> None:
    """Write dashboard.html (stlite, needs internet) and dashboard_static.html (offline).

    dashboard.html embeds this installation's browser app and numpy-only modules, so rebuild
    it after changing them (a test checks the committed one is current).
    """
    from e2e_portfolio.dashboard_build import write_dashboards

    with err_console.status(f"precomputing {n_seeds} seeds"):
        live, static = write_dashboards(output_dir, range(n_seeds))
    console.print(f"Wrote {live} and {static}")


def _values(text: str | None, cast):
    """Comma-separated option values; 'none' means None."""
    if text is None:
        return None
    try:
        return [None if v.strip().lower() == "none" else cast(v.strip()) for v in text.split(",")]
    except ValueError as exc:
        raise ValueError(f"expected comma-separated values, got {text!r}: {exc}") from exc


@app.command()
def sweep(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option(help="shrink, compare, or both: shrink,compare.")] = "shrink",
    seeds: Annotated[int, typer.Option(help="Seeds 0 .. SEEDS-1 per configuration.", min=1)] = 10,
    n_assets: Annotated[str | None, typer.Option(help="e.g. 10,40")] = None,
    n_months: Annotated[str | None, typer.Option(help="e.g. 96,240")] = None,
    window: Annotated[str | None, typer.Option(help="Covariance window(s), e.g. 48")] = None,
    tc: Annotated[str | None, typer.Option(help="e.g. 0.001,0.005")] = None,
    gamma: Annotated[str | None, typer.Option(help="compare: e.g. 4,8")] = None,
    w_max: Annotated[str | None, typer.Option(help="compare: e.g. none,0.1")] = None,
    kappa: Annotated[str | None, typer.Option(help="compare: e.g. 0,0.001")] = None,
    epochs: Annotated[str | None, typer.Option(help="compare: e.g. 20")] = None,
    device: Annotated[str | None, typer.Option(help="compare: cpu or cuda")] = None,
    grid: Annotated[
        Path | None, typer.Option(help="TOML/YAML grid file instead of the options above.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="local (joblib processes), serial or ray.")
    ] = "local",
    workers: Annotated[int, typer.Option(help="Parallel workers.", min=1)] = 2,
    address: Annotated[str | None, typer.Option(help="ray: cluster address, e.g. auto.")] = None,
) -> None:
    """Run shrink/compare jobs over seeds x configurations in parallel and summarise them.

    Each job's result is stored (one run per seed and configuration) by this process, so a
    rerun skips what is done and a failed job loses nothing else. Options take
    comma-separated values whose combinations form the grid.
    """
    from e2e_portfolio.sweep import expand_grid, read_grid, run_sweep, summarise

    store = _store(ctx)
    try:
        if grid is not None:
            spec = read_grid(grid)
        else:
            given = {
                "n_assets": _values(n_assets, int), "n_months": _values(n_months, int),
                "window": _values(window, int), "tc": _values(tc, float),
                "gamma": _values(gamma, float), "w_max": _values(w_max, float),
                "kappa": _values(kappa, float), "epochs": _values(epochs, int),
                "device": _values(device, str),
            }  # fmt: skip
            spec = {"kind": kind.split(","), "seeds": seeds,
                    **{k: v for k, v in given.items() if v is not None}}  # fmt: skip
        jobs = expand_grid(spec)
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(f"{len(jobs)} jobs", total=len(jobs))
            outcome = run_sweep(
                jobs, store, backend=backend, n_workers=workers, address=address,  # type: ignore[arg-type]
                on_done=lambda job, error: progress.advance(task),
            )  # fmt: skip
            progress.update(task, completed=len(jobs))
        summary = summarise(store, jobs)
    except (E2EPortfolioError, ValueError) as exc:
        raise _fail(exc) from exc
    console.print(
        f"{len(outcome.ran)} jobs run, {len(outcome.skipped)} already stored, "
        f"{len(outcome.failed)} failed"
    )
    for job, error in outcome.failed:
        err_console.print(f"[red]failed[/] {job.kind} seed {job.seed} {dict(job.options)}: {error}")
    console.print(sweep_table(summary))
    if outcome.failed:
        raise typer.Exit(code=1)
