"""Random mean-variance problems from every regime the layer must solve exactly.

``draw_case`` builds one batch of a regime at unit scale (returns ~2%, volatilities ~5-10%),
then scales the objective by ``scale`` (``mu``, ``gamma`` and ``kappa`` together), which leaves
the minimiser unchanged: a reference solved on the unit-scale copy is the reference of every
scaled copy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from e2e_portfolio.models.qp_layer import MeanVarianceQP

REGIMES = (
    "factor",  # F F' + diag(d), d ~ 0.002..0.008
    "dense",  # unstructured full-rank R
    "sample_root",  # centred returns / sqrt(T - 1) with T < n: rank-deficient
    "cash",  # one asset with zero variance
    "linear",  # R = 0: a linear program
    "twins",  # two identical assets (same risk; same return half the time)
    "collinear",  # one asset a mix of two others
    "tiny_d",  # d = 1e-10 next to F ~ 0.05
)
KAPPAS = ("none", "moderate", "dominant")
CAPS = ("none", "loose", "tight", "per_asset")


@dataclass(frozen=True)
class Case:
    """A batch of problems; tensors float64, risk as ``R`` or as ``F, d``."""

    regime: str
    mu: torch.Tensor
    gamma: float
    kappa: float
    w_max: float | None
    w_prev: torch.Tensor
    R: torch.Tensor | None = None
    F: torch.Tensor | None = None
    d: torch.Tensor | None = None
    upper: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.mu.shape[-1]

    def layer(self, backend: str = "native", **options) -> MeanVarianceQP:
        return MeanVarianceQP(
            self.n,
            gamma=self.gamma,
            w_max=self.w_max,
            kappa=self.kappa,
            backend=backend,
            **options,
        )

    def solve(self, layer: MeanVarianceQP) -> torch.Tensor:
        return layer(self.mu, self.R, self.w_prev, F=self.F, d=self.d, upper=self.upper)

    def objective(self, w: torch.Tensor) -> torch.Tensor:
        """(batch,) the layer's objective at weights w (batch, n)."""
        value = -(self.mu * w).sum(-1) + self.gamma * variance(w, self.R, self.F, self.d)
        if self.kappa > 0:
            value = value + self.kappa * (w - self.w_prev).abs().sum(-1)
        return value

    def objective_scale(self) -> torch.Tensor:
        """(batch,) max(|mu|, 2 gamma max diag Sigma, kappa): the size of the objective."""
        return objective_scale(self.mu, self.gamma, self.kappa, self.R, self.F, self.d)

    def scaled(self, factor: float) -> Case:
        return replace(
            self, mu=self.mu * factor, gamma=self.gamma * factor, kappa=self.kappa * factor
        )


def variance(w: torch.Tensor, R=None, F=None, d=None) -> torch.Tensor:
    """(batch,) ``w' Sigma w`` with ``Sigma = R'R`` or ``F F' + diag(d)``."""
    if R is not None:
        return ((R @ w.unsqueeze(-1)).squeeze(-1) ** 2).sum(-1)
    assert F is not None and d is not None
    return ((w.unsqueeze(-2) @ F).squeeze(-2) ** 2).sum(-1) + (d * w * w).sum(-1)


def objective_scale(mu, gamma: float, kappa: float, R=None, F=None, d=None) -> torch.Tensor:
    """(batch,) max(|mu|, 2 gamma max diag Sigma, kappa): the size of the objective."""
    if R is not None:
        diagonal = R.square().sum(-2)
    else:
        assert F is not None and d is not None
        diagonal = F.square().sum(-1) + d
    return torch.maximum(mu.abs().amax(-1), 2 * gamma * diagonal.amax(-1)).clamp(min=kappa)


def draw_case(
    regime: str,
    n: int,
    batch: int,
    seed: int,
    kappa_kind: str = "none",
    cap_kind: str = "none",
    form: str = "F",
    scale: float = 1.0,
) -> Case:
    """One batch of ``regime`` (see ``REGIMES``) with the given turnover and cap kinds."""
    rng = np.random.default_rng(seed)
    k = max(1, min(4, n - 1))
    mu = 0.01 + 0.02 * rng.standard_normal((batch, n))
    loadings = 0.05 * rng.standard_normal((batch, n, k))
    idiosyncratic = 0.002 + 0.006 * rng.random((batch, n))
    root = None
    if regime == "dense":
        root = 0.05 * rng.standard_normal((batch, n + k, n))
    elif regime == "sample_root":
        months = max(2, n // 3)
        returns = 0.05 * rng.standard_normal((batch, months, n))
        returns = returns - returns.mean(axis=1, keepdims=True)
        root = returns / np.sqrt(months - 1)
    elif regime == "cash":
        loadings[:, 0], idiosyncratic[:, 0] = 0.0, 0.0
    elif regime == "linear":
        loadings[:], idiosyncratic[:] = 0.0, 0.0
    elif regime == "twins" and n >= 2:
        loadings[:, 1], idiosyncratic[:, 1] = loadings[:, 0], idiosyncratic[:, 0]
        if seed % 2 == 0:
            mu[:, 1] = mu[:, 0]
    elif regime == "collinear" and n >= 3:
        root = 0.05 * rng.standard_normal((batch, n + k, n))
        root[:, :, 2] = 0.5 * (root[:, :, 0] + root[:, :, 1])
    elif regime == "tiny_d":
        idiosyncratic[:] = 1e-10
    previous = rng.random((batch, n))
    previous = previous / previous.sum(axis=1, keepdims=True)
    kappa = {"none": 0.0, "moderate": 0.002, "dominant": 1e3 * float(np.abs(mu).max())}[kappa_kind]
    w_max, upper = None, None
    if cap_kind == "loose" and n >= 4:
        w_max = 0.25
    elif cap_kind == "tight":
        w_max = 1.0 / n  # a single feasible point
    elif cap_kind == "per_asset":
        upper = 0.2 + rng.random((batch, n))
        upper[:, : n // 4] = 0.0  # excluded assets (not yet listed, or delisted)
        short = upper.clip(max=1.0).sum(axis=1) < 1.0
        upper[short] = np.where(upper[short] > 0, 1.0, 0.0)
    as_tensor = lambda a: None if a is None else torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    case = Case(
        regime=regime,
        mu=as_tensor(mu),
        gamma=4.0,
        kappa=kappa,
        w_max=w_max,
        w_prev=as_tensor(previous),
        upper=as_tensor(upper),
    )
    if root is not None or form == "R":
        if root is None:
            root = np.concatenate(
                [loadings.transpose(0, 2, 1), np.sqrt(idiosyncratic)[:, None] * np.eye(n)], axis=1
            )
        case = replace(case, R=as_tensor(root))
    else:
        case = replace(case, F=as_tensor(loadings), d=as_tensor(idiosyncratic))
    return case.scaled(scale) if scale != 1.0 else case
