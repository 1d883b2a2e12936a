#!/usr/bin/env python3
"""Scaling of sweeps and of end-to-end training, measured on this machine.

1. Wall time of a sweep against its number of seeds, with 1 and 2 local workers (joblib
   processes), for ``shrink`` jobs (40 assets, 96 months) and ``compare`` jobs (20 assets,
   96 months, 10 epochs). Each sweep writes to a fresh temporary store.
2. Time of one end-to-end training epoch (forward and backward through the native QP for
   every training month) against the number of assets, 36 months, k_f = 3.

    python benchmarks/bench_sweep.py
    python benchmarks/bench_sweep.py --seeds 2 4 --assets 40 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from e2e_portfolio.data.store import Store
from e2e_portfolio.data.synthetic import simulate_arrays
from e2e_portfolio.experiments.sweep import expand_grid, run_sweep
from e2e_portfolio.models.losses import negative_sharpe_loss
from e2e_portfolio.models.portfolio import solve_path
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_layer import MeanVarianceQP

GRIDS = {
    "shrink": {"kind": "shrink", "n_assets": 40},
    "compare": {"kind": "compare", "n_assets": 20, "epochs": 10},
}


def sweep_seconds(grid: dict, seeds: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.duckdb")
        start = time.perf_counter()
        run_sweep(expand_grid({**grid, "seeds": seeds}), store, n_workers=workers)
        return time.perf_counter() - start


def epoch_seconds(n_assets: int, months: int = 36, repeats: int = 2) -> float:
    exposures, returns = simulate_arrays(n_assets=n_assets, n_months=months + 1, seed=42)
    x, y = torch.tensor(exposures[:-1]), torch.tensor(returns[1:])
    torch.manual_seed(42)
    model = ReturnPredictor(x.shape[-1]).double()
    layer = MeanVarianceQP(n_assets, gamma=8.0, w_max=max(0.1, 2.0 / n_assets))
    best = float("inf")
    for _ in range(repeats):
        model.zero_grad()
        start = time.perf_counter()
        mu, loadings, idiosyncratic = model(x)
        weights = solve_path(layer, mu, {"F": loadings, "d": idiosyncratic})
        negative_sharpe_loss(weights, y, tc=0.005).backward()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--assets", type=int, nargs="+", default=[40, 100, 200, 500, 1000])
    args = parser.parse_args()
    console = Console()
    sweeps = Table(
        "jobs", "seeds", "1 worker s", "2 workers s", "speed-up", title="Sweep wall time"
    )
    for name, grid in GRIDS.items():
        for seeds in args.seeds:
            with console.status(f"{name}: {seeds} seeds"):
                one, two = sweep_seconds(grid, seeds, 1), sweep_seconds(grid, seeds, 2)
            sweeps.add_row(name, str(seeds), f"{one:.1f}", f"{two:.1f}", f"{one / two:.2f}x")
    console.print(sweeps)
    epochs = Table("n_assets", "epoch s (36 months, fwd+bwd)", title="End-to-end training epoch")
    for n in args.assets:
        with console.status(f"epoch at n={n}"):
            epochs.add_row(str(n), f"{epoch_seconds(n):.3f}")
    console.print(epochs)


if __name__ == "__main__":
    main()
