"""Where independent jobs run: this process, local worker processes (joblib) or Ray.

:func:`run_jobs` hands each job to ``runner`` and yields the results as they finish (in any
order). Only the caller's process consumes them, so the caller alone touches the store.
Everything crossing a process boundary must pickle: panels rebuild themselves read-only and
every exception of :mod:`e2e_portfolio.exceptions` survives the trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal, TypeVar

from e2e_portfolio.exceptions import DataError

Backend = Literal["local", "serial", "ray"]
BACKENDS: tuple[Backend, ...] = ("local", "serial", "ray")
Job = TypeVar("Job")
Result = TypeVar("Result")


def run_jobs(
    jobs: Sequence[Job],
    runner: Callable[[Job], Result],
    backend: Backend = "local",
    n_workers: int = 1,
    address: str | None = None,
) -> Iterator[Result]:
    """Yield ``runner(job)`` for every job, as each finishes.

    Parameters
    ----------
    jobs : sequence
        Picklable job descriptions.
    runner : callable
        A module-level function (workers import it by name).
    backend : {"local", "serial", "ray"}
        ``local``: ``n_workers`` joblib processes (this process when ``n_workers == 1``);
        ``serial``: this process, in order; ``ray``: a Ray cluster at ``address`` (a local
        one with ``n_workers`` CPUs when None), needing the ``ray`` extra.
    n_workers : int
        Parallel workers, >= 1.
    address : str, optional
        Ray only: the cluster to join, e.g. ``"auto"``.
    """
    if backend not in BACKENDS:
        raise DataError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if n_workers < 1:
        raise DataError(f"workers: expected at least 1, got {n_workers}")
    if backend == "serial" or (backend == "local" and n_workers == 1):
        yield from (runner(job) for job in jobs)
    elif backend == "local":
        from joblib import Parallel, delayed

        parallel = Parallel(n_jobs=n_workers, return_as="generator_unordered")
        yield from parallel(delayed(runner)(job) for job in jobs)
    else:
        yield from _ray_results(jobs, runner, n_workers, address)


def _ray_results(jobs, runner, n_workers: int, address: str | None) -> Iterator:
    try:
        import ray
    except ImportError as exc:
        raise DataError("backend 'ray' needs ray: pip install 'e2e-portfolio[ray]'") from exc
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": n_workers}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"address: no Ray cluster at {address or 'local'}: {first}") from exc
    remote = ray.remote(runner)
    pending = [remote.remote(job) for job in jobs]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
