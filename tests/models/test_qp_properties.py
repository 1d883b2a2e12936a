"""Property-based tests of the native layer over random problems of every regime.

Each example draws one batch (see ``tests/models/qp_cases.py``): a regime, a size, a
turnover kind (none, moderate, dominant), a cap kind (none, loose, exactly 1/n, per asset with
exclusions), an input form (``R`` or ``F, d``) and an objective scale from 1e-8 to 1e2.
Properties checked on every problem:

- the solver certifies it (stationarity on the free assets, feasibility, multiplier signs;
  tolerance 1e-9 on the unit scale) and the returned weights are feasible to rounding;
- its objective is not above Clarabel's (tolerance 1e-10, unit-scale copy) by more than 1e-9
  of the objective's scale, and where the optimum is unique its weights match to 1e-5
  (Clarabel leaves weakly active weights at ~1e-6);
- gradients match central finite differences (step 1e-6 on the unit scale) on draws whose
  active set does not change within the step, to 1e-4 relative.

The default profile runs a few dozen examples; ``-m slow`` runs the heavy profile (thousands of
problems). Run with ``--hypothesis-show-statistics`` for the counts per regime.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from e2e_portfolio.models import qp_native
from e2e_portfolio.models.qp_native.operators import as_risk_operator, factor_operator
from tests.models.qp_cases import CAPS, KAPPAS, REGIMES, Case, draw_case

UNIQUE = {"factor", "dense", "cash", "tiny_d"}


@st.composite
def cases(draw) -> Case:
    regime = draw(st.sampled_from(REGIMES))
    n = draw(st.integers(min_value=2, max_value=24))
    cap_kind = draw(st.sampled_from(CAPS))
    case = draw_case(
        regime,
        n,
        batch=draw(st.integers(min_value=1, max_value=6)),
        seed=draw(st.integers(min_value=0, max_value=2**31)),
        kappa_kind=draw(st.sampled_from(KAPPAS)),
        cap_kind=cap_kind,
        form=draw(st.sampled_from(["F", "R"])),
        scale=10.0 ** draw(st.integers(min_value=-8, max_value=2)),
    )
    event(f"regime={regime}")
    kappa = "dominant" if case.kappa > 10 * float(case.mu.abs().max()) else case.kappa > 0
    event(f"caps={cap_kind}, kappa={kappa}")
    return case


def _native_solution(case: Case) -> qp_native.Solution:
    risk = as_risk_operator(case.R) if case.R is not None else factor_operator(case.F, case.d)
    caps = case.upper
    if case.w_max is not None:
        full = torch.full_like(case.mu, case.w_max)
        caps = full if caps is None else caps.clamp(max=case.w_max)
    problem = qp_native.build_problem(
        case.mu, risk, case.gamma, case.kappa, case.w_prev if case.kappa else None, caps
    )
    return problem, qp_native.solve(problem)


def check_case(case: Case) -> None:
    problem, solution = _native_solution(case)
    assert not bool(solution.failed.any()), solution.failures()
    certificate = qp_native.certify(problem, solution.weights, solution.duals, solution.active)
    assert not bool(certificate.failing.any())
    w = case.solve(case.layer())
    torch.testing.assert_close(w, solution.weights, rtol=0, atol=0)
    assert (w.sum(-1) - 1).abs().max() < 1e-12 and w.min() >= 0
    unit = case.scaled(1.0 / float(case.objective_scale().max()))
    reference = unit.solve(unit.layer("cvxpy"))
    excess = unit.objective(w) - unit.objective(reference)
    assert (excess <= 1e-9 * unit.objective_scale()).all(), excess
    # a dominant turnover penalty makes Clarabel's weights inexact (flat objective), and caps
    # of exactly 1/n leave a single point: compare objectives only there
    dominant = case.kappa > 10 * float(case.mu.abs().max())
    unique = case.regime in UNIQUE and not dominant and case.w_max != 1.0 / case.n
    if unique:
        torch.testing.assert_close(w, reference, rtol=0, atol=1e-5)


FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
HEAVY = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FAST
@given(cases())
def test_certified_and_as_good_as_clarabel(case):
    check_case(case)


@pytest.mark.slow
@HEAVY
@given(cases())
def test_certified_and_as_good_as_clarabel_heavy(case):
    check_case(case)


def _directional_check(case: Case) -> bool:
    """Compare the backward with central differences along one random direction of every
    input; False where the active set changes within the step (a kink: skipped)."""
    eps = 1e-6
    unit = case.scaled(1.0 / float(case.objective_scale().max()))
    layer = unit.layer()
    g = torch.Generator().manual_seed(0)
    upstream = torch.randn(unit.mu.shape, dtype=torch.float64, generator=g)
    names = ["mu", "F", "d", "w_prev"] if unit.F is not None else ["mu", "R", "w_prev"]
    inputs = {name: getattr(unit, name).clone().requires_grad_() for name in names}

    def value(**values) -> torch.Tensor:
        merged = {name: getattr(unit, name) for name in names} | values
        w = layer(merged["mu"], merged.get("R"), merged["w_prev"], F=merged.get("F"),
                  d=merged.get("d"), upper=unit.upper)  # fmt: skip
        return w

    w = value(**inputs)
    grads = torch.autograd.grad((w * upstream).sum(), list(inputs.values()), allow_unused=True)
    for (name, tensor), grad in zip(inputs.items(), grads, strict=True):
        direction = torch.randn(tensor.shape, dtype=torch.float64, generator=g)
        if name == "d":
            direction = direction.abs() * tensor.detach()  # stay >= 0
        plus = value(**{name: tensor.detach() + eps * direction})
        minus = value(**{name: tensor.detach() - eps * direction})
        if not torch.equal(plus > 0, minus > 0) or not torch.equal(plus > 0, w > 0):
            return False
        numeric = ((plus - minus) * upstream).sum() / (2 * eps)
        analytic = (
            torch.tensor(0.0, dtype=torch.float64) if grad is None else (grad * direction).sum()
        )
        scale = max(abs(float(numeric)), 1e-6)
        assert abs(float(analytic - numeric)) <= 1e-4 * scale + 1e-7, name
    return True


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    n=st.integers(min_value=3, max_value=12),
    kappa=st.sampled_from(["none", "moderate"]),
    caps=st.sampled_from(["none", "loose"]),
    form=st.sampled_from(["F", "R"]),
)
def test_gradients_match_finite_differences(seed, n, kappa, caps, form):
    case = draw_case("factor", n, 2, seed, kappa_kind=kappa, cap_kind=caps, form=form)
    event("checked" if _directional_check(case) else "skipped: active set changes")
