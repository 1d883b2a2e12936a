"""Jobs run the same wherever they run: this process, joblib processes or Ray tasks."""

from __future__ import annotations

import pytest

from e2e_portfolio.backtest.walkforward import past_view
from e2e_portfolio.exceptions import DataError, StrategyError
from e2e_portfolio.experiments.workers import run_jobs


def _square(job: int) -> int:
    return job * job


def _read_only_in_worker(panel) -> tuple[bool, bool]:
    """What a worker sees of a panel: read-only returns, and a view that holds."""
    view = past_view(panel, 5)
    return (not panel.returns.flags.writeable, view.returns.shape == (6, panel.n_assets))


def _raise_strategy_error(job: int) -> None:
    raise StrategyError("e2e", "2001-01", f"job {job} failed")


@pytest.mark.parametrize(("backend", "workers"), [("serial", 1), ("local", 1), ("local", 2)])
def test_results_arrive_from_every_local_backend(backend, workers):
    assert sorted(run_jobs(list(range(6)), _square, backend, workers)) == [0, 1, 4, 9, 16, 25]


def test_panels_and_errors_cross_the_process_boundary(small_panel):
    """A panel sent to a worker is read-only there; a package error raised there arrives as
    itself, with its message (it used to break the pool: it could not be unpickled)."""
    assert list(run_jobs([small_panel, small_panel], _read_only_in_worker, "local", 2)) == [
        (True, True), (True, True)]  # fmt: skip
    # both jobs fail, in parallel: whichever error arrives first is raised
    with pytest.raises(StrategyError, match=r"e2e: at 2001-01: job [12] failed"):
        list(run_jobs([1, 2], _raise_strategy_error, "local", 2))


def test_bad_backends_are_named():
    with pytest.raises(DataError, match=r"backend: expected one of local, serial, ray, got 'mpi'"):
        list(run_jobs([1], _square, "mpi"))  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"workers: expected at least 1, got 0"):
        list(run_jobs([1], _square, "local", 0))


@pytest.mark.slow
def test_compare_seeds_on_ray_give_the_serial_numbers():
    """``compare_across_seeds(..., backend="ray")`` (``e2e compare --seeds --backend ray``):
    the same per-seed Sharpe ratios as in this process."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'e2e-portfolio[ray]')")
    from e2e_portfolio.data.synthetic import simulate_universe
    from e2e_portfolio.experiments.compare import CompareOptions, compare_across_seeds
    from e2e_portfolio.models.train import TrainConfig

    options = CompareOptions(train=TrainConfig(epochs=1), window=20, refit_every=24,
                             arms=("equal_weight", "plug_in", "e2e"))  # fmt: skip

    def panel_for(seed: int):
        return simulate_universe(n_assets=6, n_months=40, seed=seed)

    serial, _ = compare_across_seeds([0, 1], panel_for, options, backend="serial")
    distributed, _ = compare_across_seeds([0, 1], panel_for, options, workers=2, backend="ray")
    assert [r["sharpe"] for r in distributed["per_seed"]] == pytest.approx(
        [r["sharpe"] for r in serial["per_seed"]], abs=1e-12
    )
