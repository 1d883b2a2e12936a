from __future__ import annotations

import pytest
import torch

from e2e_portfolio.data.store import Store
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.sweep import (
    _guarded,
    config_labels,
    expand_grid,
    per_seed,
    read_grid,
    run_sweep,
    summarise,
    sweep_verdicts,
)
from e2e_portfolio.models.train import TrainConfig

SMALL = {
    "kind": "shrink",
    "seeds": 3,
    "n_assets": 8,
    "n_months": 60,
    "window": 20,
    "score_months": 12,
}


def _metrics(store, jobs):
    return store.job_metrics({j.job_key for j in jobs})


def test_grid_expansion_and_keys():
    jobs = expand_grid({**SMALL, "tc": [0.001, 0.005]})
    assert len(jobs) == 6
    assert len({j.job_key for j in jobs}) == 6
    assert len({j.config_key for j in jobs}) == 2
    assert expand_grid(SMALL)[0].job_key == expand_grid(SMALL)[0].job_key
    both = expand_grid({"kind": ["shrink", "compare"], "seeds": [7], "gamma": [4.0, 8.0]})
    assert sorted(j.kind for j in both) == ["compare", "compare", "shrink"]  # gamma: compare only
    with pytest.raises(DataError, match=r"grid: unknown options \['alpha'\]"):
        expand_grid({"alpha": 1})
    with pytest.raises(
        DataError, match=r"kind: expected one of \['compare', 'shrink'\], got 'fit'"
    ):
        expand_grid({"kind": "fit"})


def test_grid_file(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('[grid]\nkind = "shrink"\nseeds = 2\nn_assets = [8, 10]\n')
    assert len(expand_grid(read_grid(path))) == 4
    with pytest.raises(DataError, match=r"grid file: expected .toml, .yaml or .yml"):
        (tmp_path / "grid.ini").write_text("x")
        read_grid(tmp_path / "grid.ini")


@pytest.mark.slow
def test_two_workers_give_the_serial_numbers(tmp_path):
    jobs = expand_grid(SMALL)
    serial, parallel = Store(tmp_path / "serial.duckdb"), Store(tmp_path / "parallel.duckdb")
    run_sweep(jobs, serial, backend="serial")
    outcome = run_sweep(jobs, parallel, backend="local", n_workers=2)
    assert len(outcome.ran) == 3 and not outcome.failed
    assert _metrics(serial, jobs) == _metrics(parallel, jobs)


@pytest.mark.slow
def test_ray_local_mode_gives_the_serial_numbers(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'e2e-portfolio[ray]')")
    jobs = expand_grid({**SMALL, "seeds": 2})
    serial, distributed = Store(tmp_path / "serial.duckdb"), Store(tmp_path / "ray.duckdb")
    run_sweep(jobs, serial, backend="serial")
    run_sweep(jobs, distributed, backend="ray", n_workers=2)
    assert _metrics(serial, jobs) == _metrics(distributed, jobs)


def test_failed_job_is_reported_and_others_kept(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    jobs = expand_grid({**SMALL, "seeds": 4})

    def fragile(job):  # a job that raises at run time (the grid itself is valid)
        return (job, None, "RuntimeError: out of memory") if job.seed % 2 else _guarded(job)

    reported = []
    outcome = run_sweep(jobs, store, backend="serial", runner=fragile,
                        on_done=lambda job, error: reported.append(error))  # fmt: skip
    assert len(outcome.ran) == 2 and len(outcome.failed) == 2
    assert all("out of memory" in error for _, error in outcome.failed)
    assert sum(e is not None for e in reported) == 2
    assert len(store.job_keys()) == 2


def test_the_whole_grid_is_checked_before_any_job_runs():
    with pytest.raises(DataError, match=r"grid: 1 configuration\(s\) cannot run: .*\"window\": 5"
                       r".*window: expected at least 12 months, got 5"):  # fmt: skip
        expand_grid({**SMALL, "window": [5, 20]})
    with pytest.raises(DataError, match=r"grid: not an option of kind shrink: gamma"):
        expand_grid({**SMALL, "gamma": [4.0, 8.0]})
    with pytest.raises(DataError, match=r"seeds: expected non-negative seeds, got -5"):
        expand_grid({**SMALL, "seeds": [-5, 1]})


def test_ctrl_c_keeps_what_is_stored_and_names_what_remains(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    jobs = expand_grid({**SMALL, "seeds": 4})
    calls = []

    def interrupted_after_two(job):
        calls.append(job)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return _guarded(job)

    outcome = run_sweep(jobs, store, backend="serial", runner=interrupted_after_two)
    assert outcome.interrupted and len(outcome.ran) == 2 and len(outcome.remaining) == 2
    assert len(store.job_keys()) == 2
    again = run_sweep(jobs, store, backend="serial")  # the rerun runs only the rest
    assert len(again.skipped) == 2 and len(again.ran) == 2


def test_rerun_skips_stored_jobs_and_summarises(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    first = expand_grid({**SMALL, "seeds": 2})
    run_sweep(first, store, backend="serial")
    more = expand_grid({**SMALL, "seeds": 3})
    outcome = run_sweep(more, store, backend="serial")
    assert len(outcome.skipped) == 2 and len(outcome.ran) == 1
    summary = summarise(store, more)
    assert summary["n_seeds"].tolist() == [3]
    assert {"sharpe_plug_in", "sharpe_decision_aware_ci"} <= set(summary.columns)


def test_cuda_device_is_validated():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CPU-only message cannot be checked")
    with pytest.raises(DataError, match=r"device: expected an available device, got 'cuda'"):
        TrainConfig(device="cuda").validate()
    with pytest.raises(DataError, match=r"device: expected a torch device"):
        TrainConfig(device="abacus").validate()


def test_sweep_verdicts_pair_seeds_within_each_configuration_and_holm_over_all(tmp_path):
    """Against a direct computation: the mean paired difference is the mean over seeds of the
    stored Sharpe differences, and Holm runs over every configuration and comparison."""
    from scipy import stats

    from e2e_portfolio.significance import holm

    store = Store(tmp_path / "s.duckdb")
    jobs = expand_grid({**SMALL, "seeds": 4, "n_assets": [8, 10]})
    run_sweep(jobs, store, backend="serial")
    frame = per_seed(store, jobs)
    assert list(frame["seed"]) == [0, 1, 2, 3] * 2  # grid order, seeds ascending
    rows = sweep_verdicts(frame)
    assert [(r["label"], r["versus"]) for r in rows] == [
        ("n_assets=8", "plug_in"), ("n_assets=8", "ledoit_wolf"),
        ("n_assets=10", "plug_in"), ("n_assets=10", "ledoit_wolf"),
    ]  # fmt: skip
    raw = []
    for row in rows:
        group = frame[frame["config"] == row["config"]]
        diff = group["sharpe_decision_aware"] - group[f"sharpe_{row['versus']}"]
        assert row["mean"] == pytest.approx(diff.mean(), abs=1e-12)
        assert row["win_rate"] == (diff > 0).mean() and row["n"] == 4
        raw.append(stats.wilcoxon(diff).pvalue)
    assert [r["p_holm"] for r in rows] == pytest.approx(list(holm(raw)), abs=1e-12)


def test_config_labels_name_what_differs():
    shrink = [j.config_key for j in expand_grid({**SMALL, "tc": [0.001, 0.005]})]
    assert set(config_labels(shrink).values()) == {"tc=0.001", "tc=0.005"}
    single = config_labels([shrink[0]])
    assert list(single.values()) == ["all jobs"]
    both = expand_grid({"kind": ["shrink", "compare"], "seeds": 1, "gamma": [4.0, 8.0]})
    labels = config_labels(j.config_key for j in both)
    assert sorted(labels.values()) == ["compare gamma=4.0", "compare gamma=8.0", "shrink"]
