"""``e2e compare --seeds``: many paired runs, and the verdict every experiment prints first."""

from __future__ import annotations

from dataclasses import replace

from rich.progress import Progress

from e2e_portfolio.apps.cli.base import (
    console,
    err_console,
    print_stored,
    save_run,
    uses_stored_panel,
    write_json,
)
from e2e_portfolio.apps.cli.compare_tables import (
    arms_table,
    edges_line,
    history_compare_tables,
    verdict_table,
)


def print_verdict(record) -> None:
    """The sentences that answer the run's question, first (as the report's first screen)."""
    from e2e_portfolio.report.verdict import verdict_of

    sentences = verdict_of(record).sentences
    if sentences:
        console.print("[bold]Verdict[/]")
        for sentence in sentences:
            console.print(sentence, highlight=False)
        console.print()


def _seed_done(result: dict, total: int, workers: int) -> str:
    """The progress line after a seed: which one finished, and its e2e and decoupled Sharpe."""
    arms = result["arms"]
    shown = "  ".join(f"{a} {arms[a]['sharpe']:.2f}" for a in ("e2e", "decoupled") if a in arms)
    return f"{total} seeds, {workers} workers: seed {result['seed']} done  {shown}"


def compare_seeds(store, options, seed_list, where, json_path, data, universe, n_assets,
                  n_months) -> None:  # fmt: skip
    """Run the seeds (``where``: workers, backend, address), store, print verdict first."""
    workers, backend, address = where
    from e2e_portfolio.experiments import resolve_panel
    from e2e_portfolio.experiments.compare import compare_across_seeds
    from e2e_portfolio.experiments.verdict import to_json

    stored = uses_stored_panel(store, data)
    history = None if data == "synthetic" and not stored else resolve_panel(data, store, universe)

    def panel_for(seed: int):
        # one history: only the training seeds vary
        return history or resolve_panel(data, store, universe, n_assets, n_months, seed)

    with Progress(
        console=err_console, transient=True, disable=not err_console.is_terminal
    ) as progress:
        task = progress.add_task(f"{len(seed_list)} seeds x {len(options.arms)} arms "
                                 f"({workers} workers)", total=len(seed_list))  # fmt: skip
        summary, record = compare_across_seeds(
            seed_list,
            panel_for,
            options,
            workers,
            on_seed=lambda result: progress.update(
                task, advance=1, description=_seed_done(result, len(seed_list), workers)
            ),
            one_history=history is not None,
            backend=backend,
            address=address,
        )
    about = {"data": data, "seeds": seed_list}
    if history is None:
        about |= {"n_assets": n_assets, "n_months": n_months}
    else:
        about |= {"n_assets": history.n_assets}
        if data == "french":
            about["universe"] = universe
    record = replace(record, config={**about, **record.config})
    run_id = save_run(store, record)
    print_verdict(record)
    console.print(arms_table(summary))
    console.print(edges_line(summary["gamma_edges"]), highlight=False)
    if history is not None:
        for table in history_compare_tables(summary, history.name):
            console.print(table)
    else:
        console.print(verdict_table(summary))
    if json_path is not None:
        write_json(json_path, to_json(summary["arms"], summary["verdict"], summary["per_seed"],
                                      record.config, summary["break_even"],
                                      summary.get("history"),
                                      summary["gamma_edges"]))  # fmt: skip
    print_stored(store, run_id)
