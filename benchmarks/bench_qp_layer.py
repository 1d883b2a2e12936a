#!/usr/bin/env python3
"""Speed of the native QP layer against cvxpylayers (Clarabel), measured in the same run.

For each size, a batch of long-only mean-variance problems on a capped simplex
(``0 <= w <= max(0.1, 2/n)``, ``sum(w) = 1``) with ``R = [F'; diag(sqrt d)]`` (``k`` factors
plus the diagonal), float64: first without a turnover term (the reference problem of
ENVIRONMENT.md), then with ``kappa = --kappa``. Forward and backward (through ``sum(w * c)``
for a random ``c``) are timed separately; each figure is the median of ``--repeats`` runs.
The last columns are the ratios cvxpylayers / native per problem.

    python benchmarks/bench_qp_layer.py                  # n = 40, 200, 1000; batch 96
    python benchmarks/bench_qp_layer.py --sizes 40 --batch 16

cvxpylayers is not run above ``--reference-max-n`` (default 200): canonicalising the
parameter ``R`` of 1010 x 1000 entries needs more than 16 GiB of memory (measured here).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.risk import risk_matrix

FACTORS = {40: 5, 200: 5, 1000: 10}
COLUMNS = (
    "kappa", "n", "k", "backend", "forward s", "backward s", "ms / problem",
    "max |w - w_ref|", "fwd ratio", "fwd+bwd ratio",
)  # fmt: skip


def make_batch(batch: int, n: int, k: int, seed: int = 42, dense: bool = False):
    """mu (batch, n), R (batch, k + n, n), w_prev on the simplex.

    ``R = [F'; diag(sqrt d)]``, or with ``dense`` an unstructured Gaussian matrix.
    """
    generator = torch.Generator().manual_seed(seed)
    kw = {"dtype": torch.float64, "generator": generator}
    mu = 0.01 + 0.02 * torch.randn(batch, n, **kw)
    loadings = 0.05 * torch.randn(batch, n, k, **kw)
    idiosyncratic = 0.002 + 0.006 * torch.rand(batch, n, **kw)
    previous = torch.rand(batch, n, **kw)
    risk = (
        0.05 * torch.randn(batch, n + k, n, **kw) if dense else risk_matrix(loadings, idiosyncratic)
    )
    return mu, risk, previous / previous.sum(dim=1, keepdim=True)


def time_layer(layer, mu, risk, previous, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median forward and backward seconds, and the weights."""
    direction = torch.randn(mu.shape, dtype=mu.dtype, generator=torch.Generator().manual_seed(0))
    forward, backward = [], []
    for _ in range(repeats):
        mu_, risk_ = mu.clone().requires_grad_(), risk.clone().requires_grad_()
        start = time.perf_counter()
        weights = layer(mu_, risk_, previous)
        middle = time.perf_counter()
        (weights * direction).sum().backward()
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
    return statistics.median(forward), statistics.median(backward), weights.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 200, 1000])
    parser.add_argument("--batch", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gamma", type=float, default=5.0)
    parser.add_argument("--kappa", type=float, default=0.002)
    parser.add_argument("--reference-max-n", type=int, default=200)
    args = parser.parse_args()
    console = Console()
    threads = torch.get_num_threads()
    title = f"mean-variance QP layer, float64, batch {args.batch}, {threads} threads"
    table = Table(*COLUMNS, title=title)
    for kappa in (0.0, args.kappa):
        for n in args.sizes:
            k = FACTORS.get(n, 5)
            mu, risk, previous = make_batch(args.batch, n, k)
            options = {"w_max": max(0.1, 2.0 / n), "kappa": kappa}
            native = MeanVarianceQP(n, k + n, args.gamma, **options)
            with console.status(f"kappa={kappa} n={n}: native"):
                nat_f, nat_b, w_nat = time_layer(native, mu, risk, previous, args.repeats)
            per_nat = (nat_f + nat_b) / args.batch
            table.add_row(
                str(kappa), str(n), str(k), "native", f"{nat_f:.4f}", f"{nat_b:.4f}",
                f"{1e3 * per_nat:.3f}", "", "", "",
            )  # fmt: skip
            if n > args.reference_max_n:
                table.add_row("", "", "", "cvxpylayers", "not run: > 16 GiB to build", *[""] * 5)
                table.add_section()
                continue
            reference = MeanVarianceQP(n, k + n, args.gamma, backend="cvxpylayers", **options)
            with console.status(f"kappa={kappa} n={n}: cvxpylayers"):
                ref_f, ref_b, w_ref = time_layer(reference, mu, risk, previous, args.repeats)
            per_ref = (ref_f + ref_b) / args.batch
            table.add_row(
                "", "", "", "cvxpylayers", f"{ref_f:.4f}", f"{ref_b:.4f}", f"{1e3 * per_ref:.3f}",
                f"{(w_nat - w_ref).abs().max().item():.1e}", f"{ref_f / nat_f:.1f}x",
                f"{per_ref / per_nat:.1f}x",
            )  # fmt: skip
            table.add_section()
    console.print(table)


if __name__ == "__main__":
    main()
