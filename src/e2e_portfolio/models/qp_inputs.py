"""Checks of the mean-variance layer's inputs: types, shapes, values, one batch size.

Every message names the argument and says what was expected and what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from e2e_portfolio.models.qp_layer import MeanVarianceQP

CAP_TOLERANCE = 1e-12


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry is finite; one reduction instead of three elementwise passes.

    A NaN or inf entry makes the sum non-finite, so a finite sum settles it; only a sum that
    overflows (or holds a NaN) needs the exact elementwise check.
    """
    with torch.no_grad():
        return bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all())


def _check_tensor(name: str, tensor: object, device: torch.device) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {tensor.dtype}")
    if tensor.device != device:
        raise ValueError(f"{name}: expected device {device}, got {tensor.device}")
    if name == "upper":
        if bool(torch.isnan(tensor).any()):
            raise ValueError("upper: expected caps >= 0 (inf for none), got NaN")
    elif not _all_finite(tensor):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


@dataclass(frozen=True)
class LayerInputs:
    """The layer's inputs as float64 tensors with one batch dimension."""

    mu: torch.Tensor
    R: torch.Tensor | None
    F: torch.Tensor | None
    d: torch.Tensor | None
    w_prev: torch.Tensor | None
    caps: torch.Tensor | None
    """(batch, n) ``min(upper, w_max)``, ``inf`` for none; None without caps"""
    batched: bool
    upper_given: bool

    @property
    def batch(self) -> int:
        """Number of problems."""
        return self.mu.shape[0]

    @classmethod
    def checked(
        cls,
        layer: MeanVarianceQP,
        mu: torch.Tensor,
        R: torch.Tensor | None,
        w_prev: torch.Tensor | None,
        F: torch.Tensor | None,
        d: torch.Tensor | None,
        upper: torch.Tensor | None,
    ) -> LayerInputs:
        """Check the layer's inputs; raise naming the argument, expected and got."""
        given = {"mu": mu, "R": R, "F": F, "d": d, "w_prev": w_prev, "upper": upper}
        device = mu.device if isinstance(mu, torch.Tensor) else torch.device("cpu")
        for name, tensor in given.items():
            if tensor is not None:
                _check_tensor(name, tensor, device)
        n, k = layer.n, layer.n_factors
        if mu.ndim not in (1, 2) or mu.shape[-1] != n:
            raise ValueError(f"mu: expected shape ({n},) or (batch, {n}), got {tuple(mu.shape)}")
        if R is not None and (F is not None or d is not None):
            raise ValueError("R, F, d: expected either R or F and d, got both forms")
        if R is None and (F is None or d is None):
            missing = "d" if F is not None else "F" if d is not None else "R"
            raise ValueError(f"{missing}: required, expected R or both F and d, got None")
        if R is not None:
            rows = "k" if k is None else str(k)
            if R.ndim not in (2, 3) or R.shape[-1] != n or (k is not None and R.shape[-2] != k):
                raise ValueError(
                    f"R: expected shape ({rows}, {n}) or (batch, {rows}, {n}), got {tuple(R.shape)}"
                )
        else:
            assert F is not None and d is not None
            cols = "k" if k is None else str(k)
            if F.ndim not in (2, 3) or F.shape[-2] != n or (k is not None and F.shape[-1] != k):
                raise ValueError(
                    f"F: expected shape ({n}, {cols}) or (batch, {n}, {cols}), got {tuple(F.shape)}"
                )
            if d.ndim not in (1, 2) or d.shape[-1] != n:
                raise ValueError(f"d: expected shape ({n},) or (batch, {n}), got {tuple(d.shape)}")
            if bool((d < 0).any()):
                raise ValueError("d: expected idiosyncratic variances >= 0, got a negative value")
        if layer.kappa > 0 and w_prev is None:
            raise ValueError(f"w_prev: required when kappa > 0 (kappa={layer.kappa}), got None")
        for name, tensor in (("w_prev", w_prev), ("upper", upper)):
            if tensor is not None and (tensor.ndim not in (1, 2) or tensor.shape[-1] != n):
                raise ValueError(
                    f"{name}: expected shape ({n},) or (batch, {n}), got {tuple(tensor.shape)}"
                )
        if upper is not None and bool((upper < 0).any()):
            raise ValueError("upper: expected caps >= 0 (inf for none), got a negative value")
        flat_dims = {"mu": 1, "R": 2, "F": 2, "d": 1, "w_prev": 1, "upper": 1}
        present = [name for name, t in given.items() if t is not None]
        sizes = {given[nm].shape[0] for nm in present if given[nm].ndim > flat_dims[nm]}  # type: ignore[union-attr]
        if len(sizes) > 1:
            raise ValueError(f"{', '.join(present)}: expected one batch size, got {sorted(sizes)}")
        batched = bool(sizes)
        batch = sizes.pop() if sizes else 1

        def expand(tensor: torch.Tensor | None, *shape: int) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor.to(torch.float64).expand(batch, *shape)

        caps = _caps(layer, expand(upper, n), batch, device)
        m = R.shape[-2] if R is not None else 0
        k_f = F.shape[-1] if F is not None else 0
        return cls(
            mu=expand(mu, n),  # type: ignore[arg-type]
            R=expand(R, m, n),
            F=expand(F, n, k_f),
            d=expand(d, n),
            w_prev=expand(w_prev, n) if layer.kappa > 0 else None,
            caps=caps,
            batched=batched,
            upper_given=upper is not None,
        )


def _caps(
    layer: MeanVarianceQP, upper: torch.Tensor | None, batch: int, device: torch.device
) -> torch.Tensor | None:
    """``min(upper, w_max)`` (batch, n), checked to admit a budget of 1 in every problem."""
    if upper is None and layer.w_max is None:
        return None
    caps = (
        torch.full((batch, layer.n), torch.inf, dtype=torch.float64, device=device)
        if upper is None
        else upper
    )
    if layer.w_max is not None:
        caps = caps.clamp(max=layer.w_max)
    room = caps.clamp(max=1.0).sum(dim=1)
    short = (room < 1.0 - CAP_TOLERANCE).nonzero().squeeze(1).tolist()
    if short:
        shown = ", ".join(f"{i} (sum {float(room[i]):.4g})" for i in short[:10])
        raise ValueError(
            "upper: infeasible caps, expected min(upper, w_max, 1) to sum to >= 1 in every "
            f"problem, got less in problem {shown}"
        )
    return caps
