"""Checks of the mean-variance layer's inputs: types, shapes, values, one batch size.

Every message names the argument and says what was expected and what arrived. Problems
whose bounds cannot hold the budget or the leverage bound are refused here, per problem,
with a :class:`~e2e_portfolio.exceptions.SolverError` of status ``infeasible`` naming them:
cheap checks before any solving. (Infeasibility that needs a linear program, e.g. sector
caps that cannot hold the budget, is found by the solver.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from e2e_portfolio.exceptions import SolverError

if TYPE_CHECKING:
    from e2e_portfolio.models.qp_layer import MeanVarianceQP

CAP_TOLERANCE = 1e-12
# the dimensions of an unbatched input; one more means batched
FLAT_DIMS = {"mu": 1, "R": 2, "F": 2, "d": 1, "w_prev": 1, "upper": 1, "lower": 1,
             "A_eq": 2, "b_eq": 1, "A_ub": 2, "b_ub": 1}  # fmt: skip


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
    if name in ("upper", "lower"):
        if bool(torch.isnan(tensor).any()):
            none = "inf" if name == "upper" else "-inf"
            raise ValueError(f"{name}: expected bounds ({none} for none), got NaN")
    elif not _all_finite(tensor):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def _infeasible(what: str, problems: list[int], values: torch.Tensor) -> SolverError:
    shown = ", ".join(f"{i} ({float(values[i]):.4g})" for i in problems[:10])
    more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
    return SolverError(
        f"infeasible problems: {what}; batch index (value): {shown}{more}",
        status="infeasible",
        indices=problems,
    )


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
    floors: torch.Tensor | None = None
    """(batch, n) the floors, ``-inf`` for none; None for the long-only floor 0"""
    A_eq: torch.Tensor | None = None
    b_eq: torch.Tensor | None = None
    A_ub: torch.Tensor | None = None
    b_ub: torch.Tensor | None = None

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
        lower: torch.Tensor | None = None,
        A_eq: torch.Tensor | None = None,
        b_eq: torch.Tensor | None = None,
        A_ub: torch.Tensor | None = None,
        b_ub: torch.Tensor | None = None,
    ) -> LayerInputs:
        """Check the layer's inputs; raise naming the argument, expected and got."""
        given = {
            "mu": mu, "R": R, "F": F, "d": d, "w_prev": w_prev, "upper": upper, "lower": lower,
            "A_eq": A_eq, "b_eq": b_eq, "A_ub": A_ub, "b_ub": b_ub,
        }  # fmt: skip
        device = mu.device if isinstance(mu, torch.Tensor) else torch.device("cpu")
        for name, tensor in given.items():
            if tensor is not None:
                _check_tensor(name, tensor, device)
        n = layer.n
        if mu.ndim not in (1, 2) or mu.shape[-1] != n:
            raise ValueError(f"mu: expected shape ({n},) or (batch, {n}), got {tuple(mu.shape)}")
        _check_risk(n, R, F, d)
        if layer.kappa > 0 and w_prev is None:
            raise ValueError(f"w_prev: required when kappa > 0 (kappa={layer.kappa}), got None")
        for name in ("w_prev", "upper", "lower"):
            tensor = given[name]
            if tensor is not None and (tensor.ndim not in (1, 2) or tensor.shape[-1] != n):
                raise ValueError(
                    f"{name}: expected shape ({n},) or (batch, {n}), got {tuple(tensor.shape)}"
                )
        if upper is not None and layer.w_min >= 0 and lower is None and bool((upper < 0).any()):
            raise ValueError("upper: expected caps >= 0 (inf for none), got a negative value")
        rows = {}
        for matrix, rhs in (("A_eq", "b_eq"), ("A_ub", "b_ub")):
            rows[matrix] = _check_rows(n, matrix, given[matrix], rhs, given[rhs])
        present = [name for name, t in given.items() if t is not None]
        sizes = {given[nm].shape[0] for nm in present if given[nm].ndim > FLAT_DIMS[nm]}  # type: ignore[union-attr]
        if len(sizes) > 1:
            raise ValueError(f"{', '.join(present)}: expected one batch size, got {sorted(sizes)}")
        batched = bool(sizes)
        batch = sizes.pop() if sizes else 1

        def expand(tensor: torch.Tensor | None, *shape: int) -> torch.Tensor | None:
            if tensor is None:
                return None
            return tensor.to(torch.float64).expand(batch, *shape)

        caps = _caps(layer, expand(upper, n), batch, device)
        floors = _floors(layer, expand(lower, n), batch, device)
        _check_bounds(layer, caps, floors)
        m = R.shape[-2] if R is not None else 0
        k_f = F.shape[-1] if F is not None else 0
        m_eq, m_ub = rows["A_eq"], rows["A_ub"]
        return cls(
            mu=expand(mu, n),  # type: ignore[arg-type]
            R=expand(R, m, n),
            F=expand(F, n, k_f),
            d=expand(d, n),
            w_prev=expand(w_prev, n) if layer.kappa > 0 else None,
            caps=caps,
            batched=batched,
            upper_given=upper is not None,
            floors=floors,
            A_eq=expand(A_eq, m_eq, n),
            b_eq=expand(b_eq, m_eq),
            A_ub=expand(A_ub, m_ub, n),
            b_ub=expand(b_ub, m_ub),
        )


def _check_risk(
    n: int, R: torch.Tensor | None, F: torch.Tensor | None, d: torch.Tensor | None
) -> None:
    if R is not None and (F is not None or d is not None):
        raise ValueError("R, F, d: expected either R or F and d, got both forms")
    if R is None and (F is None or d is None):
        missing = "d" if F is not None else "F" if d is not None else "R"
        raise ValueError(f"{missing}: required, expected R or both F and d, got None")
    if R is not None:
        if R.ndim not in (2, 3) or R.shape[-1] != n:
            raise ValueError(f"R: expected shape (k, {n}) or (batch, k, {n}), got {tuple(R.shape)}")
        return
    assert F is not None and d is not None
    if F.ndim not in (2, 3) or F.shape[-2] != n:
        raise ValueError(f"F: expected shape ({n}, k) or (batch, {n}, k), got {tuple(F.shape)}")
    if d.ndim not in (1, 2) or d.shape[-1] != n:
        raise ValueError(f"d: expected shape ({n},) or (batch, {n}), got {tuple(d.shape)}")
    if bool((d < 0).any()):
        raise ValueError("d: expected idiosyncratic variances >= 0, got a negative value")


def _check_rows(
    n: int, name: str, matrix: torch.Tensor | None, rhs_name: str, rhs: torch.Tensor | None
) -> int:
    """Check ``A`` (m, n) or (batch, m, n) with ``b`` (m,) or (batch, m); return m."""
    if (matrix is None) != (rhs is None):
        missing, other = (rhs_name, name) if rhs is None else (name, rhs_name)
        raise ValueError(f"{missing}: required with {other}, got None")
    if matrix is None or rhs is None:
        return 0
    if matrix.ndim not in (2, 3) or matrix.shape[-1] != n or matrix.shape[-2] < 1:
        raise ValueError(
            f"{name}: expected shape (m, {n}) or (batch, m, {n}) with m >= 1, got "
            f"{tuple(matrix.shape)}"
        )
    m = matrix.shape[-2]
    if rhs.ndim not in (1, 2) or rhs.shape[-1] != m:
        raise ValueError(
            f"{rhs_name}: expected shape ({m},) or (batch, {m}) to match {name}, got "
            f"{tuple(rhs.shape)}"
        )
    return m


def _caps(
    layer: MeanVarianceQP, upper: torch.Tensor | None, batch: int, device: torch.device
) -> torch.Tensor | None:
    """``min(upper, w_max)`` (batch, n), ``inf`` for none; None without caps."""
    if upper is None and layer.w_max is None:
        return None
    caps = (
        torch.full((batch, layer.n), torch.inf, dtype=torch.float64, device=device)
        if upper is None
        else upper
    )
    if layer.w_max is not None:
        caps = caps.clamp(max=layer.w_max)
    return caps


def _floors(
    layer: MeanVarianceQP, lower: torch.Tensor | None, batch: int, device: torch.device
) -> torch.Tensor | None:
    """The floors (batch, n), ``-inf`` for none; None for the long-only floor 0.

    ``lower`` where given (with ``w_min`` other than 0, ``max(lower, w_min)``), else ``w_min``.
    """
    if lower is None and layer.w_min == 0:
        return None
    if lower is None:
        floors = torch.full((batch, layer.n), layer.w_min, dtype=torch.float64, device=device)
    else:  # per-asset floors replace the default floor 0; another w_min bounds them below
        floors = lower if layer.w_min == 0 else lower.clamp(min=layer.w_min)
    if bool((floors == -torch.inf).any()) and layer.leverage is None:
        raise ValueError(
            "lower: expected finite floors unless the layer has a leverage bound, got -inf "
            "(shorts without a floor need leverage=...)"
        )
    return floors


def _check_bounds(
    layer: MeanVarianceQP, caps: torch.Tensor | None, floors: torch.Tensor | None
) -> None:
    """Refuse problems whose bounds cannot hold the budget or the leverage bound."""
    floor = floors if floors is not None else torch.zeros(1, dtype=torch.float64)
    if caps is not None:
        if bool((caps < floor).any()):
            raise ValueError(
                "upper: expected caps at or above the floors (lower, w_min), got a cap below "
                "its floor"
            )
        pinned = (caps == floor) & (caps != 0)
        if bool(pinned.any()):
            raise ValueError(
                "upper, lower: equal bounds are allowed only at 0 (an excluded asset), got "
                "equal non-zero bounds"
            )
    budget = layer.budget
    if caps is not None:
        room = caps.sum(dim=1) if floors is not None else caps.clamp(max=abs(budget)).sum(dim=1)
        short = (room < budget - CAP_TOLERANCE).nonzero().squeeze(1).tolist()
        if short:
            if floors is None and layer.budget == 1.0:
                shown = ", ".join(f"{i} (sum {float(room[i]):.4g})" for i in short[:10])
                raise ValueError(
                    "upper: infeasible caps, expected min(upper, w_max, 1) to sum to >= 1 in "
                    f"every problem, got less in problem {shown}"
                )
            raise _infeasible(f"the caps sum to less than the budget {budget}", short, room)
    if floors is not None:
        least = floors.sum(dim=1)
        over = (least > budget + CAP_TOLERANCE).nonzero().squeeze(1).tolist()
        if over:
            raise _infeasible(f"the floors sum to more than the budget {budget}", over, least)
        if layer.leverage is not None:
            cap = caps if caps is not None else torch.full_like(floors, torch.inf)
            gross = floors.clamp(min=0).sum(dim=1) + (-cap).clamp(min=0).sum(dim=1)
            over = (gross > layer.leverage + CAP_TOLERANCE).nonzero().squeeze(1).tolist()
            if over:
                raise _infeasible(
                    f"the bounds force a gross exposure above the leverage {layer.leverage}",
                    over,
                    gross,
                )
