"""What every ``e2e`` command shares.

The typer app, common options, the store of the context, and one error wrapper
(:func:`handled`) that turns a library error into a one-line message and exit status 1.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console

from e2e_portfolio.config import export_threads, get_settings
from e2e_portfolio.data.datasets import (
    FRENCH_UNIVERSES,
)
from e2e_portfolio.data.records import RunRecord, write_run_file
from e2e_portfolio.data.store import Store
from e2e_portfolio.exceptions import E2EPortfolioError, PanelExistsError

console = Console()
err_console = Console(stderr=True)
Command = TypeVar("Command", bound=Callable[..., Any])

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


def store_of(ctx: typer.Context) -> Store:
    """The store of the ``--db`` file (or its default)."""
    return Store(ctx.obj["db"], lock_timeout=get_settings().e2e_lock_timeout)


BUILTIN_NAMES = ("synthetic", "french", "sp500")


def uses_stored_panel(store: Store, data: str) -> bool:
    """Whether ``--data`` names a stored panel; says so when that shadows a built-in."""
    stored = store.has_panel(data)
    if stored and data in BUILTIN_NAMES:
        err_console.print(
            f"[bold]note:[/] --data {data} is the panel stored under that name in {store.path}, "
            f"not the built-in one (`e2e data delete {data}` brings the built-in back)"
        )
    return stored


def print_stored(store: Store, run_id: str) -> None:
    """The last line of a command that saved a run (nothing when it went to a file)."""
    if run_id:
        count = len(store.list_runs())
        console.print(f"Stored run [bold]{run_id}[/] in {store.path} (every run is kept: "
                      f"{count} stored, `e2e runs` lists them)")  # fmt: skip


def writable_store_of(ctx: typer.Context) -> Store:
    """The store, checked before any work that will be saved there (fails fast, not after)."""
    store = store_of(ctx)
    store.check_writable()
    return store


def save_run(store: Store, record: RunRecord) -> str:
    """Save ``record``; if that fails, write it to a run file and say how to import it.

    Returns the run id, or ``""`` when the run went to a file instead.
    """
    try:
        return store.save_run(record)
    except Exception as exc:  # never lose a computed run, whatever stopped the save
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = f"{store.path.stem}.{record.kind}-{stamp}.run.json"
        folder = store.path.parent if os.access(store.path.parent, os.W_OK) else Path.cwd()
        path = write_run_file(record, folder / name)
        err_console.print(
            f"[bold yellow]warning:[/] could not save the run in {store.path} ({exc}); saved "
            f"it to {path} instead. Import it later with: e2e --db {store.path} runs import "
            f"{path}"
        )
        return ""


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as one error line; the exit (status 1) to raise."""
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)  # one line, the terminal wraps
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


def handled(*errors: type[Exception]) -> Callable[[Command], Command]:
    """Run a command; a library error (or one of ``errors``) prints one line and exits 1.

    Library messages name the argument (``data: expected ...``); a stored panel that would be
    overwritten gets the command line's own hint.
    """
    caught: tuple[type[Exception], ...] = (E2EPortfolioError, ValueError, *errors)

    def wrap(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except PanelExistsError as exc:
                hint = f"{exc.path}: panel {exc.name!r} is already stored; add --replace"
                raise fail(ValueError(f"{hint} to overwrite it")) from exc
            except caught as exc:
                raise fail(exc) from exc

        return cast(Command, run)

    return wrap


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("e2e-portfolio")
        except PackageNotFoundError:  # run from a source tree without installing
            from e2e_portfolio import __version__ as installed
        typer.echo(f"e2e-portfolio {installed}")
        raise typer.Exit()


VersionOption = Annotated[
    bool,
    typer.Option("--version", callback=_version, is_eager=True,
                 help="Print the installed version and exit."),
]  # fmt: skip


@app.callback()
def main(
    ctx: typer.Context, db: DbOption = None, threads: ThreadsOption = None,
    version: VersionOption = False,
) -> None:  # fmt: skip
    """End-to-end (decision-focused) portfolio optimisation.

    Data live in one local DuckDB file (``--db``, else ``$DB_PATH``, else
    ``./e2e_portfolio.duckdb``).
    """
    export_threads(threads)  # torch itself is configured by the commands that use it
    ctx.obj = {"db": db or get_settings().db_path}


def check_json_path(path: Path | None, option: str = "--json") -> None:
    """Fail before any work if the output file (of ``option``) could not be written."""
    if path is not None and not path.parent.is_dir():
        raise ValueError(f"{option}: the folder {path.parent} does not exist")


def comma_values(text: str | None, cast, option: str):
    """Comma-separated values of ``option``; 'none' means None."""
    if text is None:
        return None
    try:
        return [None if v.strip().lower() == "none" else cast(v.strip()) for v in text.split(",")]
    except ValueError:
        kind = {float: "numbers", int: "whole numbers"}.get(cast, "values")
        raise ValueError(f"{option}: expected comma-separated {kind}, got {text!r}") from None


def write_json(json_path: Path | None, document: dict) -> None:
    """Write ``document`` (NaN as null) so scripts never parse the tables."""
    if json_path is None:
        return
    from e2e_portfolio.data.records import clean_json

    json_path.write_text(json.dumps(clean_json(document), indent=1), encoding="utf-8")
    console.print(f"Wrote {json_path}")


JsonOption = Annotated[
    Path | None, typer.Option("--json", help="Also write the result as JSON here, for scripts.")
]


def reflow_help(typer_app: typer.Typer) -> None:
    """Let rich wrap every command's help to the terminal.

    Joins the docstrings' hard-wrapped lines within each paragraph: typer keeps them, which
    leaves a stub on every other line at 80 columns.
    """
    for command in typer_app.registered_commands:
        text = command.help or (command.callback.__doc__ if command.callback else None)
        command.help = reflowed(text)
    if typer_app.registered_callback is not None:
        callback = typer_app.registered_callback
        callback.help = reflowed(callback.help or (
            callback.callback.__doc__ if callback.callback else None))  # fmt: skip
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def reflowed(text: str | None) -> str | None:
    """``text`` with each paragraph on one line (paragraphs are separated by blank lines)."""
    if text is None:
        return None
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


SEEDS_HELP = "a range 0-9, a list 1,4,7 (or 0-4,10), or one seed"
"""The one seeds syntax, for every command's help (:mod:`e2e_portfolio.seeds`)."""


def resolve_seeds(seeds: str | None, default: str, old: str = "", old_seeds: list[int] | None = None
                  ) -> list[int]:  # fmt: skip
    """The seeds of ``--seeds`` (``default`` when not given), or of a deprecated ``old`` form.

    A deprecated form still works and says what to write instead; giving both is an error.
    """
    from e2e_portfolio.seeds import parse_seeds, seeds_text

    if old_seeds is None:
        return parse_seeds(default if seeds is None else seeds, "--seeds")
    if seeds is not None:
        raise ValueError(f"{old}: a deprecated form of --seeds; expected one of them, got both")
    err_console.print(f"[bold yellow]deprecated:[/] {old}: write --seeds {seeds_text(old_seeds)}",
                      soft_wrap=True)  # fmt: skip
    return old_seeds
