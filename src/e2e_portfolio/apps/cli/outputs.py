"""What was stored, and the ways to look at it.

``e2e runs``, ``report``, ``attribute``, ``dashboard`` and ``build-dashboard``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from e2e_portfolio.apps.cli.base import (
    SEEDS_HELP,
    JsonOption,
    app,
    check_json_path,
    console,
    err_console,
    handled,
    print_stored,
    resolve_seeds,
    save_run,
    store_of,
    writable_store_of,
    write_json,
)
from e2e_portfolio.apps.cli.tables import (
    importance_table,
    run_summaries,
    runs_table,
)


@app.command()
@handled(OSError)
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

    store = store_of(ctx)
    if (run_id is None) == (not latest):
        raise ValueError(
            "RUN_ID: expected a run id or --latest (exactly one), got "
            + ("both" if latest else "neither")
        )
    record = store.load_run(run_id or store.latest_run_id())
    output.write_text(build_report(record), encoding="utf-8")
    console.print(f"Wrote report of [bold]{record.run_id}[/] to {output}")


RUN_KINDS = ("shrink", "compare", "attribution", "sweep-shrink", "sweep-compare")
"""What ``e2e runs --kind`` takes: each experiment's runs (with its sweeps') or a sweep's."""

runs_app = typer.Typer(help="List the stored runs, or import a run file.")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
@handled()
def runs(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Only this kind: shrink, compare, attribution (shrink and compare "
            "also list their sweeps' runs), sweep-shrink or sweep-compare."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines for scripts.")] = False,
) -> None:
    """List the stored runs, newest first: kind, data, seeds, key options, headline Sharpe.

    ``e2e runs import FILE`` stores a run that was written to a file.
    """
    if ctx.invoked_subcommand is not None:
        return
    if kind is not None and kind not in RUN_KINDS:
        err_console.print(f"[bold red]error:[/] --kind: expected one of {', '.join(RUN_KINDS)}, "
                          f"got {kind!r}", soft_wrap=True)  # fmt: skip
        raise typer.Exit(code=2)
    store = store_of(ctx)
    frame = store.list_runs()
    if kind is not None:
        frame = frame[frame["kind"].isin([kind, f"sweep-{kind}"])]
    rows = run_summaries(frame, store.headline_stats(list(frame["run_id"])))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    console.print(runs_table(rows))


@runs_app.command("import")
@handled()
def runs_import(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A run file written when saving a run failed.", dir_okay=False)
    ],
) -> None:
    """Store a run that was written to a file because the store could not take it then."""
    from e2e_portfolio.data.records import read_run_file

    store = writable_store_of(ctx)
    print_stored(store, save_run(store, read_run_file(path)))


@app.command()
@handled(ImportError)
def attribute(
    ctx: typer.Context,
    seeds: Annotated[
        str | None,
        typer.Option(help=f"Synthetic universes to train on: {SEEDS_HELP} (default 0-4)."),
    ] = None,
    n_seeds: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,  # deprecated
    n_assets: Annotated[int, typer.Option(help="Assets per universe.", min=2)] = 40,
    n_months: Annotated[int, typer.Option(help="Months per universe.", min=10)] = 96,
    gamma: Annotated[float, typer.Option(help="Risk aversion of the QP.", min=0.0)] = 8.0,
    w_max: Annotated[float | None, typer.Option(help="Per-asset cap.", min=0.0)] = 0.1,
    epochs: Annotated[int, typer.Option(help="Maximum training epochs.", min=1)] = 40,
    shap: Annotated[
        bool, typer.Option("--shap", help="Also SHAP values (needs the shap extra).")
    ] = False,
    json_path: JsonOption = None,
) -> None:
    """Factor importance of the decoupled and end-to-end predictors, across seeds.

    Trains both on each synthetic universe, measures gradient saliency per exposure, and
    reports in how many seeds the end-to-end model gives the unpriced diversifier exposures
    a larger share than the MSE model does. The run is stored (use e2e report --latest).
    """
    from e2e_portfolio.attribution.saliency import attribution_across_seeds
    from e2e_portfolio.config import configure_threads
    from e2e_portfolio.data.store import RunRecord
    from e2e_portfolio.models.portfolio import PortfolioConfig
    from e2e_portfolio.models.train import TrainConfig

    configure_threads()  # E2E_THREADS, as the command line exported it
    seed_list = resolve_seeds(seeds, "0-4", "--n-seeds",
                              None if n_seeds is None else list(range(n_seeds)))  # fmt: skip
    store = writable_store_of(ctx)
    check_json_path(json_path)
    portfolio = PortfolioConfig(gamma=gamma, w_max=w_max)
    portfolio.validate(n_assets)
    with Progress(
        console=err_console, transient=True, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task("training per seed", total=len(seed_list))
        summary = attribution_across_seeds(
            seed_list,
            n_assets,
            n_months,
            TrainConfig(epochs=epochs),
            on_seed=lambda _: progress.advance(task),
            with_shap=shap,
            portfolio=portfolio,
        )
    record = RunRecord(
        kind="attribution",
        config={"seeds": seed_list, "n_assets": n_assets, "n_months": n_months,
                "gamma": gamma, "w_max": w_max, "epochs": epochs, "shap": shap},
        metrics=summary,
    )  # fmt: skip
    run_id = save_run(store, record)
    console.print(importance_table(summary))
    write_json(json_path, {"kind": "attribution", "config": record.config, "result": summary})
    print_stored(store, run_id)


@app.command()
@handled()
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to serve on.", min=1, max=65535)] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Launch the Streamlit dashboard (compare, shrinkage with a seed slider, stored runs).

    The dashboard reads and stores runs in the same DuckDB file (--db). This process becomes
    the Streamlit server, so Ctrl+C or killing it stops the server.
    """
    import os
    import sys

    script = Path(__file__).parents[1] / "streamlit_app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
               "--server.address", address, "--server.headless", "true",
               "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]  # fmt: skip  # no "Deploy" button
    database = Path(ctx.obj["db"]).resolve()
    console.print(f"Serving the dashboard on http://{address}:{port} with runs in {database} "
                  "(Ctrl+C stops it)")  # fmt: skip
    sys.stdout.flush()
    os.environ["DB_PATH"] = str(database)
    os.execv(sys.executable, command)  # replace this process: no orphaned server


@app.command("build-dashboard")
@handled()
def build_dashboard(
    output_dir: Annotated[Path, typer.Option(help="Folder to write into.")] = Path("."),
    seeds: Annotated[
        str | None,
        typer.Option(help=f"Seeds precomputed for the static page: {SEEDS_HELP} (default 0-19)."),
    ] = None,
    n_seeds: Annotated[int | None, typer.Option(hidden=True, min=1)] = None,  # deprecated
) -> None:
    """Write dashboard.html (stlite, needs internet) and dashboard_static.html (offline).

    dashboard.html embeds this installation's browser app and numpy-only modules, so rebuild
    it after changing them (a test checks the committed one is current).
    """
    from e2e_portfolio.apps.dashboard_build import write_dashboards

    seed_list = resolve_seeds(seeds, "0-19", "--n-seeds",
                              None if n_seeds is None else list(range(n_seeds)))  # fmt: skip
    with err_console.status(f"precomputing {len(seed_list)} seeds"):
        live, static = write_dashboards(output_dir, seed_list)
    console.print(f"Wrote {live} and {static}")
