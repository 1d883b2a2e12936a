"""
A sweep on a local Ray cluster
==============================

A sweep is jobs (a kind, a seed, options) over a grid; each result is stored as it arrives,
so a rerun skips what is done. ``backend="ray"`` sends the jobs to Ray workers (here a local
cluster of two started by the call; ``address="auto"`` joins a running one), the same code
``e2e sweep --backend ray`` runs. Decision-aware shrinkage at two sizes of universe, over six
seeds.
"""

import json
import tempfile
from pathlib import Path

from e2e_portfolio import Store
from e2e_portfolio.experiments import expand_grid, run_sweep, summarise

store = Store(Path(tempfile.mkdtemp()) / "e2e.duckdb")
jobs = expand_grid({"kind": "shrink", "seeds": "0-5", "n_assets": [10, 40]})
outcome = run_sweep(jobs, store, backend="ray", n_workers=2)
print(f"ran {len(outcome.ran)} jobs, {len(outcome.failed)} failed")
again = run_sweep(jobs, store, backend="ray", n_workers=2)
print(f"rerun: ran {len(again.ran)}, skipped {len(again.skipped)} already stored")

summary = summarise(store, jobs)  # one row per configuration: mean and CI half-width
summary["n_assets"] = [json.loads(config)["n_assets"] for config in summary["config"]]
columns = [c for c in summary.columns if c.startswith("sharpe_") and not c.endswith("_ci")]
print(summary[["n_assets", "n_seeds", *columns]].round(3).to_string(index=False))

import ray  # only to stop the local cluster this example started

ray.shutdown()
