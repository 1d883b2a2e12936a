#!/usr/bin/env python3
"""Speed and memory of the native QP layer against its peers, measured in the same run.

Problems: long-only mean-variance on a capped simplex (``0 <= w <= max(0.1, 2/n)``,
``sum(w) = 1``) with ``Sigma = F F' + diag(d)``, float64, first without a turnover term, then
with ``kappa = --kappa``. Each figure is the median of ``--repeats`` runs; "fwd+bwd" is the
forward solve plus the backward through ``sum(w * c)`` for a random ``c``. Ratios are
peer / native per problem, so above 1 means native is faster.

Sections:

1. ``R`` path against cvxpylayers (Clarabel inside diffcp) at n = 40 and 200 (batch 96): the
   layer's reference, forward and backward.
2. Factor path (``F``, ``d`` in, gradients to ``mu``, ``F``, ``d``) at n = 1000 (k = 10,
   batch 96) and n = 3000 (k = 50, batch 16), with the peak memory of a fresh process running
   that configuration alone. cvxpylayers cannot run there (canonicalising a 1010 x 1000
   parameter needs more than 16 GiB, measured), so the forward is compared with Clarabel
   through cvxpy in a loop (factor form, constants).
3. Optional peers (``pip install 'e2e-portfolio[bench]'``): proxsuite's QP layer
   (``QPFunction``, dense ``Q``; forward and backward) and the Moreau solver called directly
   (CPU, forward only; its weights are checked for feasibility, which its active-set mode has
   been seen to violate).

4. Constraints beyond the long-only simplex, each against the long-only problem of the same
   size (native) and the reference: a long-short book (``w_min = -0.05``, leverage 1.6), 10
   sector caps (``A_ub``, each at 0.15 with per-asset caps ``max(0.1, 2/n)``) and 5
   factor-neutrality rows (``A_eq`` = the first 5 factors' loadings, ``w_min = -0.05``).
   cvxpylayers at n = 40 and 200 (batch 96); the Clarabel loop at n = 1000 and 3000 (factor
   path, forward only).

    python benchmarks/bench_qp_layer.py                 # everything, one thread
    python benchmarks/bench_qp_layer.py --sections 1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.risk import risk_matrix

SMALL = ((40, 5, 96), (200, 5, 96))
LARGE = ((1000, 10, 96), (3000, 50, 16))


def make_batch(batch: int, n: int, k: int, seed: int = 42, dense: bool = False):
    """mu (batch, n), R (batch, k + n, n), w_prev on the simplex.

    ``R = [F'; diag(sqrt d)]``, or with ``dense`` an unstructured Gaussian matrix.
    """
    mu, loadings, idiosyncratic, previous = make_factor_batch(batch, n, k, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    risk = (
        0.05 * torch.randn(batch, n + k, n, dtype=torch.float64, generator=generator)
        if dense
        else risk_matrix(loadings, idiosyncratic)
    )
    return mu, risk, previous


def make_factor_batch(batch: int, n: int, k: int, seed: int = 42):
    """mu (batch, n), F (batch, n, k), d (batch, n), w_prev (batch, n) on the simplex."""
    generator = torch.Generator().manual_seed(seed)
    kw = {"dtype": torch.float64, "generator": generator}
    mu = 0.01 + 0.02 * torch.randn(batch, n, **kw)
    loadings = 0.05 * torch.randn(batch, n, k, **kw)
    idiosyncratic = 0.002 + 0.006 * torch.rand(batch, n, **kw)
    previous = torch.rand(batch, n, **kw)
    return mu, loadings, idiosyncratic, previous / previous.sum(dim=1, keepdim=True)


def cap(n: int) -> float:
    return max(0.1, 2.0 / n)


def timed(run: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds of ``run`` and its last result."""
    times, result = [], torch.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def forward_backward(layer, inputs: dict, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median forward and backward seconds through ``layer(**inputs)``, and the weights."""
    differentiable = [name for name in ("mu", "R", "F", "d") if inputs.get(name) is not None]
    direction = torch.randn(inputs["mu"].shape, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    forward, backward, weights = [], [], None
    for _ in range(repeats):
        given = dict(inputs)
        for name in differentiable:
            given[name] = inputs[name].clone().requires_grad_()
        start = time.perf_counter()
        weights = layer(given.pop("mu"), given.pop("R", None), given.pop("w_prev", None), **given)
        middle = time.perf_counter()
        (weights * direction).sum().backward()
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
    assert weights is not None
    return statistics.median(forward), statistics.median(backward), weights.detach()


def section_reference(console: Console, repeats: int, kappa_value: float) -> Table:
    table = Table("kappa", "n", "k", "backend", "fwd ms/pb", "bwd ms/pb", "fwd+bwd ms/pb",
                  "max |w - w_native|", "fwd ratio", "fwd+bwd ratio",
                  title="1. R path: native vs cvxpylayers (batch 96)")  # fmt: skip
    for kappa in (0.0, kappa_value):
        for n, k, batch in SMALL:
            mu, risk, previous = make_batch(batch, n, k)
            inputs = {"mu": mu, "R": risk, "w_prev": previous}
            options = {"w_max": cap(n), "kappa": kappa}
            rows = {}
            for backend in ("native", "cvxpylayers"):
                layer = MeanVarianceQP(n, gamma=5.0, backend=backend, **options)
                with console.status(f"kappa={kappa} n={n}: {backend}"):
                    forward_backward(layer, inputs, 1)  # warm-up
                    rows[backend] = forward_backward(layer, inputs, repeats)
            nat_f, nat_b, w_nat = rows["native"]
            for backend, (f, b, w) in rows.items():
                ratio_f = f"{f / nat_f:.1f}x" if backend != "native" else ""
                ratio = f"{(f + b) / (nat_f + nat_b):.1f}x" if backend != "native" else ""
                diff = f"{(w - w_nat).abs().max().item():.1e}" if backend != "native" else ""
                table.add_row(str(kappa), str(n), str(k), backend, f"{1e3 * f / batch:.3f}",
                              f"{1e3 * b / batch:.3f}", f"{1e3 * (f + b) / batch:.3f}", diff,
                              ratio_f, ratio)  # fmt: skip
            table.add_section()
    return table


def run_one(n: int, k: int, batch: int, kappa: float, repeats: int) -> dict:
    """The factor path alone in this process: times and the peak memory it added."""
    mu, loadings, idiosyncratic, previous = make_factor_batch(batch, n, k)
    layer = MeanVarianceQP(n, gamma=5.0, w_max=cap(n), kappa=kappa)
    inputs = {"mu": mu, "F": loadings, "d": idiosyncratic, "w_prev": previous}
    forward_backward(layer, {name: t[:1] for name, t in inputs.items()}, 1)  # load kernels
    before = _resident_kib()
    forward, backward, weights = forward_backward(layer, inputs, repeats)
    peak = _high_water_kib() - before
    return {"forward": forward, "backward": backward, "peak_kib": peak,
            "weights": weights.tolist()}  # fmt: skip


def _resident_kib() -> int:
    """Current resident memory of this process (Linux), KiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() // 1024


def _high_water_kib() -> int:
    """Peak resident memory of this process image (Linux ``VmHWM``), KiB. Unlike
    ``ru_maxrss``, it starts afresh at ``exec``, so a child does not inherit the parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("VmHWM not found in /proc/self/status")


def clarabel_forward(mu, loadings, idiosyncratic, previous, kappa, count: int):
    from e2e_portfolio.models.qp_reference import solve_with_cvxpy

    index = slice(0, count)
    caps = torch.full_like(mu[index], cap(mu.shape[1]))
    return timed(
        lambda: solve_with_cvxpy(
            mu[index],
            None,
            previous[index] if kappa else None,
            5.0,
            None,
            kappa,
            tolerance=1e-8,
            upper=caps,
            loadings=loadings[index],
            idiosyncratic=idiosyncratic[index],
        ),
        1,
    )


def section_factor(console: Console, repeats: int, kappa_value: float, threads: int) -> Table:
    table = Table("kappa", "n", "k", "batch", "native fwd ms/pb", "native bwd ms/pb",
                  "fwd+bwd ms/pb", "peak MiB", "peak bytes / (B n k)",
                  "Clarabel loop fwd ms/pb", "fwd ratio", "max |w - w_clarabel|",
                  title="2. factor path (F, d in; gradients to mu, F, d)")  # fmt: skip
    for kappa in (0.0, kappa_value):
        for n, k, batch in LARGE:
            with console.status(f"kappa={kappa} n={n}: native (own process)"):
                command = [sys.executable, __file__, "--one", json.dumps([n, k, batch, kappa]),
                           "--repeats", str(repeats), "--threads", str(threads)]  # fmt: skip
                output = subprocess.run(command, check=True, capture_output=True, text=True)
                result = json.loads(output.stdout.strip().splitlines()[-1])
            mu, loadings, idiosyncratic, previous = make_factor_batch(batch, n, k)
            count = min(batch, 4)
            with console.status(f"kappa={kappa} n={n}: Clarabel loop on {count} problems"):
                seconds, w_ref = clarabel_forward(
                    mu, loadings, idiosyncratic, previous, kappa, count
                )
            w_native = torch.tensor(result["weights"], dtype=torch.float64)[:count]
            per_native = result["forward"] / batch
            per_ref = seconds / count
            peak = 1024 * result["peak_kib"]
            table.add_row(
                str(kappa), str(n), str(k), str(batch), f"{1e3 * per_native:.2f}",
                f"{1e3 * result['backward'] / batch:.2f}",
                f"{1e3 * (result['forward'] + result['backward']) / batch:.2f}",
                f"{peak / 2**20:.0f}", f"{peak / (batch * n * k):.0f}",
                f"{1e3 * per_ref:.1f}", f"{per_ref / per_native:.1f}x",
                f"{(w_native - w_ref).abs().max().item():.1e}",
            )  # fmt: skip
    return table


def moreau_forward(mu, loadings, idiosyncratic, previous, kappa):
    """Each problem with the Moreau solver (CPU), in factor form with ``y = F' w``."""
    import moreau
    import numpy as np
    from scipy import sparse

    batch, n = mu.shape
    k = loadings.shape[-1]
    rows, statuses = [], set()
    for i in range(batch):
        f, d = loadings[i].numpy(), idiosyncratic[i].numpy()
        n_t = n if kappa else 0
        size = n + k + n_t
        p_matrix = sparse.block_diag([sparse.diags(10.0 * d), 10.0 * sparse.eye(k),
                                      sparse.csr_matrix((n_t, n_t))], format="csc")  # fmt: skip
        q = np.concatenate([-mu[i].numpy(), np.zeros(k), np.full(n_t, kappa)])
        equality = sparse.vstack([
            sparse.hstack([np.ones((1, n)), sparse.csr_matrix((1, k + n_t))]),
            sparse.hstack([f.T, -sparse.eye(k), sparse.csr_matrix((k, n_t))]),
        ])  # fmt: skip
        blocks = [sparse.hstack([-sparse.eye(n), sparse.csr_matrix((n, k + n_t))]),
                  sparse.hstack([sparse.eye(n), sparse.csr_matrix((n, k + n_t))])]  # fmt: skip
        rhs = [np.zeros(n), np.full(n, cap(n))]
        if kappa:
            prev = previous[i].numpy()
            gap = sparse.csr_matrix((n, k))
            blocks += [sparse.hstack([sparse.eye(n), gap, -sparse.eye(n)]),
                       sparse.hstack([-sparse.eye(n), gap, -sparse.eye(n)])]  # fmt: skip
            rhs += [prev, -prev]
        a_matrix = sparse.vstack([equality, *blocks], format="csc")
        b = np.concatenate([[1.0], np.zeros(k), *rhs])
        cones = moreau.Cones(num_zero_cones=1 + k, num_nonneg_cones=a_matrix.shape[0] - 1 - k)
        solver = moreau.Solver(p_matrix, q, a_matrix, b, cones)
        solution = solver.solve()
        statuses.add(str(solver.info.status).split(".")[-1])
        rows.append(np.asarray(solution.x)[:n])
        assert size == a_matrix.shape[1]
    return torch.as_tensor(np.stack(rows), dtype=torch.float64), ",".join(sorted(statuses))


def section_peers(console: Console, repeats: int, kappa_value: float) -> Table:
    table = Table("kappa", "n", "peer", "fwd ms/pb", "fwd+bwd ms/pb", "native ms/pb",
                  "ratio (peer / native)", "max |w - w_native|", "min w", "status",
                  title="3. optional peers (batch 96 at n <= 200; 16 at n = 1000)")  # fmt: skip
    try:
        from proxsuite.torch.qplayer import QPFunction
    except ImportError:
        QPFunction = None
    try:
        import moreau  # noqa: F401

        has_moreau = True
    except ImportError:
        has_moreau = False
    if QPFunction is None and not has_moreau:
        table.add_row("", "", "not installed: pip install 'e2e-portfolio[bench]'", *[""] * 6)
        return table
    for kappa in (0.0, kappa_value):
        for n, k, batch in ((40, 5, 96), (200, 5, 96), (1000, 10, 16)):
            mu, loadings, idiosyncratic, previous = make_factor_batch(batch, n, k)
            native = MeanVarianceQP(n, gamma=5.0, w_max=cap(n), kappa=kappa)
            inputs = {"mu": mu, "F": loadings, "d": idiosyncratic, "w_prev": previous}
            forward_backward(native, inputs, 1)
            nat_f, nat_b, w_nat = forward_backward(native, inputs, repeats)
            per_native = (nat_f + nat_b) / batch
            if QPFunction is not None and kappa == 0 and n <= 200:
                with console.status(f"n={n}: proxsuite"):
                    f, b, w = _proxsuite(QPFunction, mu, loadings, idiosyncratic, n, repeats)
                diff, low = (w - w_nat).abs().max().item(), w.min().item()
                table.add_row(str(kappa), str(n), "proxsuite QPFunction",
                              f"{1e3 * f / batch:.3f}", f"{1e3 * (f + b) / batch:.3f}",
                              f"{1e3 * per_native:.3f} (fwd+bwd)",
                              f"{(f + b) / batch / per_native:.1f}x", f"{diff:.1e}", f"{low:.1e}",
                              "")  # fmt: skip
            if has_moreau:
                with console.status(f"kappa={kappa} n={n}: Moreau"):
                    start = time.perf_counter()
                    w, status = moreau_forward(mu, loadings, idiosyncratic, previous, kappa)
                    seconds = time.perf_counter() - start
                diff, low = (w - w_nat).abs().max().item(), w.min().item()
                per, native_fwd = 1e3 * seconds / batch, 1e3 * nat_f / batch
                table.add_row(str(kappa), str(n), "Moreau (CPU, forward only)", f"{per:.3f}", "",
                              f"{native_fwd:.3f} (fwd)", f"{seconds / nat_f:.1f}x",
                              f"{diff:.1e}", f"{low:.1e}", status)  # fmt: skip
        table.add_section()
    return table


def _proxsuite(qp_function, mu, loadings, idiosyncratic, n, repeats):
    """proxsuite's layer on the dense problem: Q = 2 gamma Sigma, equality 1'w = 1, box."""
    sigma = loadings @ loadings.transpose(-1, -2) + torch.diag_embed(idiosyncratic)
    ones = torch.ones(mu.shape[0], 1, n, dtype=torch.float64)
    box = torch.eye(n, dtype=torch.float64).expand(mu.shape[0], n, n)
    lower = torch.zeros_like(mu)
    upper = torch.full_like(mu, cap(n))
    direction = torch.randn(
        mu.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    forward, backward, weights = [], [], mu
    for _ in range(repeats):
        mu_ = mu.clone().requires_grad_()
        start = time.perf_counter()
        weights = qp_function(eps=1e-9, maxIter=1000)(
            10.0 * sigma, -mu_, ones, torch.ones(mu.shape[0], 1, dtype=torch.float64),
            box, lower, upper,
        )[0]  # fmt: skip
        middle = time.perf_counter()
        (weights * direction).sum().backward()
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
    return statistics.median(forward), statistics.median(backward), weights.detach()


def constrained_form(form: str, n: int, loadings: torch.Tensor) -> tuple[dict, dict]:
    """The layer's settings and the forward's rows of one constrained form (see section 4)."""
    batch = loadings.shape[0]
    if form == "long-only":
        return {"w_max": cap(n)}, {}
    if form == "long-short 1.6":
        return {"w_min": -0.05, "w_max": cap(n), "leverage": 1.6}, {}
    if form == "10 sector caps":
        sectors = torch.zeros(10, n, dtype=torch.float64)
        sectors[torch.arange(n) % 10, torch.arange(n)] = 1.0
        return {"w_max": cap(n)}, {
            "A_ub": sectors,
            "b_ub": torch.full((10,), 0.15, dtype=torch.float64),
        }
    neutral = loadings[:, :, :5].transpose(-1, -2)
    return {"w_min": -0.05, "w_max": cap(n)}, {
        "A_eq": neutral,
        "b_eq": torch.zeros(batch, 5, dtype=torch.float64),
    }


FORMS = ("long-only", "long-short 1.6", "10 sector caps", "5 neutral rows")


def section_constraints(console: Console, repeats: int) -> Table:
    table = Table("n", "k", "batch", "form", "native fwd ms/pb", "native fwd+bwd ms/pb",
                  "vs long-only", "peer", "peer ms/pb", "ratio (peer / native)",
                  "max |w - w_peer|",
                  title="4. constraints: native against long-only and the reference")  # fmt: skip
    for n, k, batch in (*SMALL, *LARGE):
        mu, loadings, idiosyncratic, _ = make_factor_batch(batch, n, max(k, 5))
        inputs = {"mu": mu, "F": loadings, "d": idiosyncratic}
        base = None
        for form in FORMS:
            settings, rows = constrained_form(form, n, loadings)
            native = MeanVarianceQP(n, gamma=5.0, **settings)
            given = {**inputs, **rows}
            with console.status(f"n={n} {form}: native"):
                forward_backward(native, given, 1)
                nat_f, nat_b, w_nat = forward_backward(native, given, repeats)
            base = nat_f + nat_b if base is None else base
            if n <= 200:
                peer_name = "cvxpylayers fwd+bwd"
                layer = MeanVarianceQP(n, gamma=5.0, backend="cvxpylayers", **settings)
                with console.status(f"n={n} {form}: cvxpylayers"):
                    forward_backward(layer, given, 1)
                    f, b, w_peer = forward_backward(layer, given, repeats)
                peer, mine, count = f + b, nat_f + nat_b, batch
            else:
                peer_name = "Clarabel loop fwd"
                count = min(batch, 4)
                layer = MeanVarianceQP(n, gamma=5.0, backend="cvxpy", **settings)
                batched = ("mu", "F", "d", "A_eq", "b_eq")
                part = {name: t[:count] if name in batched else t for name, t in given.items()}

                def loop(layer=layer, part=part):
                    rest = {key: t for key, t in part.items() if key != "mu"}
                    return layer(part["mu"], **rest)

                with console.status(f"n={n} {form}: Clarabel loop on {count} problems"):
                    peer, w_peer = timed(loop, 1)
                mine = nat_f
                w_nat = w_nat[:count]
            per_native, per_peer = mine / batch, peer / count
            table.add_row(str(n), str(max(k, 5)), str(batch), form, f"{1e3 * nat_f / batch:.3f}",
                          f"{1e3 * (nat_f + nat_b) / batch:.3f}",
                          f"{(nat_f + nat_b) / base:.2f}x", peer_name, f"{1e3 * per_peer:.3f}",
                          f"{per_peer / per_native:.1f}x",
                          f"{(w_nat - w_peer).abs().max().item():.1e}")  # fmt: skip
        table.add_section()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kappa", type=float, default=0.002)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        n, k, batch, kappa = json.loads(args.one)
        print(json.dumps(run_one(n, k, batch, kappa, args.repeats)))
        return
    console = Console(width=200)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64")
    if 1 in args.sections:
        console.print(section_reference(console, args.repeats, args.kappa))
    if 2 in args.sections:
        console.print(section_factor(console, args.repeats, args.kappa, args.threads))
    if 3 in args.sections:
        console.print(section_peers(console, args.repeats, args.kappa))
    if 4 in args.sections:
        console.print(section_constraints(console, args.repeats))


if __name__ == "__main__":
    main()
