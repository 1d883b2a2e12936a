#!/usr/bin/env python3
"""How ``e2e compare`` and ``e2e shrink`` scale with the number of assets, on this machine.

One seed of ``e2e compare`` (all eight arms, defaults otherwise: seed 0, window 48, gamma grid,
40 epochs) on a synthetic universe of n = 100, 300, 1000 and 3000 assets (96 months; 240 at
n = 3000, as the issue asks), each in a fresh process with one torch thread (as the ``e2e``
command runs; ``--threads 2`` as ``e2e --threads 2``), printing its wall time, its peak
resident memory and the share of the time spent in the QP layer (forward solves and implicit
backward passes). Then ``e2e shrink`` at n = 1000 (10 seeds, 96 months), the same way.

    python benchmarks/bench_compare_scale.py                  # every size (about 30 minutes)
    python benchmarks/bench_compare_scale.py --sizes 100 300  # some of them
    python benchmarks/bench_compare_scale.py --no-shrink --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MONTHS = {100: 96, 300: 96, 1000: 96, 3000: 240}


def _timed_layer() -> dict[str, float]:
    """Wrap the QP layer's forward and backward so their seconds add up in the result."""
    from e2e_portfolio.models.qp_layer import MeanVarianceQP
    from e2e_portfolio.models.qp_native.function import NativeMeanVarianceFunction

    spent = {"qp": 0.0}
    forward, backward = MeanVarianceQP.forward, NativeMeanVarianceFunction.backward

    def timed_forward(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return forward(self, *args, **kwargs)
        finally:
            spent["qp"] += time.perf_counter() - start

    def timed_backward(ctx, *grads):
        start = time.perf_counter()
        try:
            return backward(ctx, *grads)
        finally:
            spent["qp"] += time.perf_counter() - start

    MeanVarianceQP.forward = timed_forward  # type: ignore[method-assign]
    NativeMeanVarianceFunction.backward = staticmethod(timed_backward)  # type: ignore[method-assign]
    return spent


def child(kind: str, n_assets: int, n_months: int, threads: int) -> dict[str, float]:
    """What one fresh process measures (as ``e2e compare --seeds 0`` or ``e2e shrink``)."""
    from e2e_portfolio.config import configure_threads

    configure_threads(threads)
    spent = _timed_layer()
    start = time.perf_counter()
    if kind == "compare":
        from e2e_portfolio.data.synthetic import simulate_universe
        from e2e_portfolio.experiments.compare import CompareOptions, compare_arms
        from e2e_portfolio.models.train import TrainConfig

        panel = simulate_universe(n_assets=n_assets, n_months=n_months, seed=0)
        comparison, _ = compare_arms(panel, CompareOptions(train=TrainConfig(seed=0)))
        sharpe = {arm: r.stats.sharpe for arm, r in comparison.results.items()}
    else:
        from e2e_portfolio.experiments.shrinkage import edge_across_seeds

        sharpe = edge_across_seeds(range(10), n_assets=n_assets, n_months=n_months)["mean_sharpe"]
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    return {"wall": wall, "qp": spent["qp"], "peak_mib": peak, "sharpe": sharpe}


def measure(kind: str, n_assets: int, n_months: int, threads: int) -> dict:
    """Run :func:`child` in a fresh interpreter and read its JSON line."""
    code = ["--child", kind, str(n_assets), str(n_months), str(threads)]
    out = subprocess.run([sys.executable, __file__, *code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(MONTHS))
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (e2e --threads)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n_assets, n_months, threads = args.child
        print(json.dumps(child(kind, int(n_assets), int(n_months), int(threads))))
        return
    from rich.console import Console
    from rich.table import Table

    threads = f"{args.threads} torch thread{'s' if args.threads > 1 else ''}"
    table = Table(title=f"One seed, fresh process, {threads}")
    for column in ("command", "n", "months", "wall", "peak RSS", "in QP layer", "e2e Sharpe"):
        table.add_column(column, justify="right" if column != "command" else "left")
    jobs = [("compare", n, MONTHS.get(n, 96)) for n in args.sizes]
    if not args.no_shrink:
        jobs.append(("shrink", 1000, 96))
    console = Console()
    for kind, n_assets, n_months in jobs:
        result = measure(kind, n_assets, n_months, args.threads)
        label = "e2e compare --seeds 0" if kind == "compare" else "e2e shrink (10 seeds)"
        headline = result["sharpe"].get("e2e", result["sharpe"].get("decision_aware"))
        table.add_row(label, str(n_assets), str(n_months), f"{result['wall']:.0f} s",
                      f"{result['peak_mib'] / 1024:.2f} GiB",
                      f"{result['qp'] / result['wall']:.0%}", f"{headline:.3f}")  # fmt: skip
        console.print(f"{label} n={n_assets}: {result['wall']:.1f} s", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
