#!/usr/bin/env python3
"""The native QP layer on CUDA: agreement with the CPU, then speed. Under five minutes.

Run from the repository root on a machine with a CUDA device::

    PYTHONPATH=. python benchmarks/gpu_check.py   # from the root; imports bench_qp_layer

1. Every regime of ``tests/models/qp_cases.py`` (rank-deficient, cash, LP, twins, tiny d,
   dominant turnover, exclusions, ...) solved on CUDA and on the CPU: largest weight
   difference (expected at rounding, < 1e-10 where the optimum is unique) and of the
   gradients with respect to ``mu``, ``F``, ``d`` (relative, expected < 1e-8).
2. Forward + backward times per problem on CUDA and on the CPU (one thread) for the factor
   path at n = 40, 200 (batch 96), 1000 (batch 96) and 3000 (batch 16), and a large batch
   (n = 200, batch 4096) where a GPU should pay off, with the ratio CPU / CUDA.

Exits 1 if a check fails or no CUDA device is present.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from bench_qp_layer import cap, make_factor_batch
from rich.console import Console
from rich.table import Table

from e2e_portfolio.models.qp_layer import MeanVarianceQP
from tests.models.qp_cases import CAPS, KAPPAS, REGIMES, draw_case

SIZES = ((40, 5, 96), (200, 5, 96), (1000, 10, 96), (3000, 50, 16), (200, 5, 4096))


def gradients(case, device: str):
    moved = {name: getattr(case, name) for name in ("mu", "F", "d", "w_prev", "upper")}
    moved = {k: None if v is None else v.to(device) for k, v in moved.items()}
    leaves = {k: moved[k].clone().requires_grad_() for k in ("mu", "F", "d")}
    layer = case.layer()
    w = layer(leaves["mu"], None, moved["w_prev"], F=leaves["F"], d=leaves["d"],
              upper=moved["upper"])  # fmt: skip
    upstream = torch.linspace(-1, 1, case.n, dtype=torch.float64, device=device)
    grads = torch.autograd.grad((w * upstream).sum(), list(leaves.values()))
    return w.cpu(), [g.cpu() for g in grads]


def agreement(console: Console) -> bool:
    table = Table("regime", "kappa", "caps", "max |w_cuda - w_cpu|", "max rel grad diff",
                  title="1. CUDA against CPU")  # fmt: skip
    ok = True
    for regime in REGIMES:
        if regime in {"dense", "sample_root", "collinear"}:
            continue  # R-only regimes: the factor path is what training uses
        for kappa in KAPPAS:
            for caps in CAPS:
                case = draw_case(regime, 16, 4, seed=3, kappa_kind=kappa, cap_kind=caps)
                w_cpu, g_cpu = gradients(case, "cpu")
                w_gpu, g_gpu = gradients(case, "cuda")
                dw = (w_gpu - w_cpu).abs().max().item()
                dg = max(((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()
                         for a, b in zip(g_gpu, g_cpu, strict=True))  # fmt: skip
                unique = regime != "twins" and kappa != "dominant"
                bad = (unique and dw > 1e-10) or (unique and dg > 1e-8)
                ok &= not bad
                style = "red" if bad else ""
                table.add_row(regime, kappa, caps, f"{dw:.1e}", f"{dg:.1e}", style=style)
    console.print(table)
    return ok


def time_per_problem(n: int, k: int, batch: int, device: str, kappa: float) -> float:
    mu, loadings, variances, previous = (
        t.to(device) for t in make_factor_batch(batch, n, k)
    )  # the benchmark's problems
    layer = MeanVarianceQP(n, gamma=5.0, w_max=cap(n), kappa=kappa)
    times = []
    for _ in range(3):
        m, f, d = (t.clone().requires_grad_() for t in (mu, loadings, variances))
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        w = layer(m, None, previous, F=f, d=d)
        w.sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]) / batch


def speed(console: Console) -> None:
    table = Table("kappa", "n", "k", "batch", "CPU ms/pb (1 thread)", "CUDA ms/pb", "CPU / CUDA",
                  title="2. factor path, forward + backward")  # fmt: skip
    for kappa in (0.0, 0.002):
        for n, k, batch in SIZES:
            torch.set_num_threads(1)
            cpu = time_per_problem(n, k, batch, "cpu", kappa) if batch <= 96 else float("nan")
            gpu = time_per_problem(n, k, batch, "cuda", kappa)
            table.add_row(str(kappa), str(n), str(k), str(batch), f"{1e3 * cpu:.3f}",
                          f"{1e3 * gpu:.3f}", f"{cpu / gpu:.1f}x")  # fmt: skip
    console.print(table)


def main() -> int:
    console = Console(width=160)
    if not torch.cuda.is_available():
        console.print("[red]no CUDA device: nothing to check[/]")
        return 1
    console.print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    ok = agreement(console)
    speed(console)
    console.print("[green]all checks passed[/]" if ok else "[red]a check failed[/]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
