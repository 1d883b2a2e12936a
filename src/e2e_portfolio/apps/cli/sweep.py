"""``e2e sweep``: grids of shrink and compare jobs, their summary and verdict tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.progress import Progress
from rich.table import Table

from e2e_portfolio.apps.cli.base import (
    SEEDS_HELP,
    JsonOption,
    app,
    check_json_path,
    comma_values,
    console,
    err_console,
    handled,
    resolve_seeds,
    writable_store_of,
    write_json,
)
from e2e_portfolio.report.style import interval, mean_ci, p_value


def _sweep_seeds(seeds: str) -> list[int]:
    """``--seeds`` as everywhere; a bare count (the old form: N meant 0 .. N-1) still works."""
    if seeds.strip().isdigit() and int(seeds) > 0:
        return resolve_seeds(None, "", f"--seeds {seeds.strip()} (a count)",
                             list(range(int(seeds))))  # fmt: skip
    return resolve_seeds(seeds, seeds)


@app.command()
@handled()
def sweep(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option(help="shrink, compare, or both: shrink,compare.")] = "shrink",
    seeds: Annotated[str, typer.Option(help=f"Seeds per configuration: {SEEDS_HELP}.")] = "0-9",
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
    json_path: JsonOption = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the sweep's HTML report (verdict first) to this file."),
    ] = None,
) -> None:
    """Run shrink/compare jobs over seeds x configurations in parallel and summarise them.

    Each job's result is stored (one run per seed and configuration) by this process, so a
    rerun skips what is done and a failed job loses nothing else. Options take
    comma-separated values whose combinations form the grid. The verdict pairs the methods
    seed by seed within each configuration (shrink: decision-aware against each rival;
    compare: e2e against decoupled and min_variance, e2e_risk against decoupled_nll,
    e2e_return against decoupled), Holm-adjusted over the whole sweep. Rerun the same
    command with --report FILE to write the report of a finished sweep without running it.
    """
    from e2e_portfolio.experiments.sweep import (
        expand_grid,
        per_seed,
        read_grid,
        run_sweep,
        summary_of,
        sweep_verdicts,
    )

    store = writable_store_of(ctx)
    check_json_path(json_path)
    check_json_path(report, "--report")
    if grid is not None:
        spec = read_grid(grid)
    else:
        options = {"n_assets": (n_assets, int), "n_months": (n_months, int),
                   "window": (window, int), "tc": (tc, float), "gamma": (gamma, float),
                   "w_max": (w_max, float), "kappa": (kappa, float), "epochs": (epochs, int),
                   "device": (device, str)}  # fmt: skip
        given = {key: comma_values(text, cast, "--" + key.replace("_", "-"))
                 for key, (text, cast) in options.items()}  # fmt: skip
        spec = {"kind": kind.split(","), "seeds": _sweep_seeds(seeds),
                **{k: v for k, v in given.items() if v is not None}}  # fmt: skip
    jobs = expand_grid(spec)
    with Progress(
        console=err_console, transient=True, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task(f"{len(jobs)} jobs", total=len(jobs))
        outcome = run_sweep(
            jobs, store, backend=backend, n_workers=workers, address=address,  # type: ignore[arg-type]
            on_done=lambda job, error: progress.advance(task),
        )  # fmt: skip
        progress.update(task, completed=len(jobs))
    frame = per_seed(store, jobs)
    summary = summary_of(frame)
    verdicts = sweep_verdicts(frame)
    console.print(
        f"{len(outcome.ran)} jobs run, {len(outcome.skipped)} already stored, "
        f"{len(outcome.failed)} failed"
    )
    if outcome.interrupted:
        console.print(*sweep_tables(summary))
        err_console.print(
            f"interrupted: {len(outcome.ran)} jobs stored in {store.path}, "
            f"{len(outcome.remaining)} not run; the same command runs only those"
        )
        raise typer.Exit(code=130)
    for job, error in outcome.failed:
        err_console.print(f"[red]failed[/] {job.kind} seed {job.seed} {dict(job.options)}: {error}")
    console.print(*sweep_tables(summary))
    if verdicts:
        console.print(sweep_verdict_table(verdicts))
    write_json(json_path, {"kind": "sweep", "jobs": len(jobs), "ran": len(outcome.ran),
                           "skipped": len(outcome.skipped),
                           "failed": [{"kind": j.kind, "seed": j.seed, "options": dict(j.options),
                                       "error": err} for j, err in outcome.failed],
                           "summary": summary.to_dict(orient="records"),
                           "verdict": verdicts})  # fmt: skip
    if report is not None:
        from e2e_portfolio.report.sweep import build_sweep_report

        report.write_text(build_sweep_report(frame, verdicts, summary), encoding="utf-8")
        console.print(f"Wrote the sweep's report to {report}")
    if outcome.failed:
        raise typer.Exit(code=1)


WIDE_METHODS = 4
"""Sweep tables with at most this many methods put them side by side (fits 80 columns)."""


def sweep_tables(summary) -> list[Table]:
    """Mean (± 95% CI half-width) Sharpe per configuration of a sweep, one table per kind.

    Up to :data:`WIDE_METHODS` methods are columns; more (compare's arms) are rows, so the
    table stays readable at 80 columns.
    """
    if summary.empty:
        return [Table(title="Sweep: no stored results", title_justify="left")]
    from e2e_portfolio.experiments.sweep import config_labels

    labels = config_labels(summary["config"])
    kinds = [json.loads(c)["kind"] for c in summary["config"]]
    tables = []
    for kind in dict.fromkeys(kinds):
        rows = summary[[k == kind for k in kinds]]
        sharpe = [c for c in rows.columns if c.startswith("sharpe_") and not c.endswith("_ci")
                  and rows[c].notna().any()]  # fmt: skip
        table = Table(title=f"Sweep ({kind}): mean out-of-sample Sharpe per configuration "
                      "(± 95% CI half-width over seeds)", title_justify="left",
                      box=box.SIMPLE_HEAD)  # fmt: skip
        wide = len(sharpe) <= WIDE_METHODS
        table.add_column("config")
        table.add_column("seeds", justify="right")
        names = [c.removeprefix("sharpe_") for c in sharpe] if wide else ["method", "Sharpe"]
        for name in names:
            table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)
        for _, row in rows.iterrows():
            cells = [mean_ci(row[c], row[f"{c}_ci"]) for c in sharpe]
            label = labels[row["config"]]
            if wide:
                table.add_row(label, str(row["n_seeds"]), *cells)
                continue
            for i, (column, cell) in enumerate(zip(sharpe, cells, strict=True)):
                table.add_row(label if i == 0 else "", str(row["n_seeds"]) if i == 0 else "",
                              column.removeprefix("sharpe_"), cell,
                              end_section=i == len(sharpe) - 1)  # fmt: skip
        tables.append(table)
    return tables


def sweep_verdict_table(verdicts: list[dict]) -> Table:
    """Paired differences per configuration of a sweep, Holm-adjusted over the whole sweep."""
    table = Table(title="Sweep verdict: arm - versus in net Sharpe, paired over seeds",
                  title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                  pad_edge=False)  # fmt: skip
    table.add_column("config", min_width=6)
    for column in ("arm", "versus", "diff", "95% CI", "wins", "Holm p"):
        table.add_column(column, justify="left" if column in ("arm", "versus") else "right",
                         no_wrap=True)  # fmt: skip
    for i, v in enumerate(verdicts):
        first = i == 0 or verdicts[i - 1]["config"] != v["config"]
        last = i == len(verdicts) - 1 or verdicts[i + 1]["config"] != v["config"]
        table.add_row(v["label"] if first else "", v["arm"], v["versus"], f"{v['mean']:+.3f}",
                      interval(v), f"{v['win_rate']:.2f}",
                      p_value(v["p_holm"]), end_section=last)  # fmt: skip
    table.caption = (
        "config: the options that differ; diff: mean over seeds; 95% CI: t-interval; "
        "wins: share of seeds where the arm is ahead; Holm p: Wilcoxon signed-rank, "
        "adjusted over every row"
    )
    table.caption_justify = "left"
    return table
