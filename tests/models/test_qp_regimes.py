"""The native layer on the inputs users bring: rank-deficient and zero risk, cash and twin
assets, tiny idiosyncratic variances, tiny or huge objectives, dominant turnover penalties,
exclusions, and per-problem failures.

References: Clarabel through cvxpy at tolerance 1e-10 on the unit-scale copy of each problem.
Where the optimum is unique and well conditioned the weights agree to 1e-6 (Clarabel's
accuracy); everywhere the native objective may exceed Clarabel's by at most 1e-9 of the
objective's own scale (``max(|mu|, 2 gamma max diag Sigma, kappa)``), and its weights are
feasible to rounding (budget 1e-12, bounds exact).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from e2e_portfolio.exceptions import SolverError
from e2e_portfolio.models import qp_native
from e2e_portfolio.models.qp_native import QPFallbackWarning, SolverOptions, solver
from e2e_portfolio.models.risk import risk_matrix
from tests.models.qp_cases import Case, draw_case

HARD = [
    ("sample_root", "none", "none"),
    ("sample_root", "moderate", "loose"),
    ("cash", "none", "none"),
    ("cash", "moderate", "none"),
    ("linear", "none", "none"),
    ("linear", "none", "loose"),
    ("linear", "moderate", "loose"),
    ("twins", "none", "none"),
    ("collinear", "moderate", "none"),
    ("tiny_d", "none", "none"),
    ("tiny_d", "moderate", "loose"),
    ("factor", "dominant", "none"),
    ("factor", "moderate", "tight"),
    ("factor", "moderate", "per_asset"),
    ("dense", "none", "per_asset"),
]


def check_against_clarabel(case: Case, w: torch.Tensor, unique: bool) -> None:
    reference = case.solve(case.layer("cvxpy"))
    assert (w.sum(-1) - 1).abs().max() < 1e-12
    assert w.min() >= 0
    caps = case.upper if case.upper is not None else torch.full_like(w, torch.inf)
    if case.w_max is not None:
        caps = caps.clamp(max=case.w_max)
    assert (w <= caps).all()
    excess = case.objective(w) - case.objective(reference)
    assert (excess <= 1e-9 * case.objective_scale()).all(), excess
    if unique:
        torch.testing.assert_close(w, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("regime", "kappa", "caps"), HARD, ids=["-".join(case) for case in HARD])
@pytest.mark.parametrize("form", ["F", "R"])
def test_hard_regimes_are_solved_exactly(regime, kappa, caps, form):
    case = draw_case(regime, 12, 4, seed=42, kappa_kind=kappa, cap_kind=caps, form=form)
    w = case.solve(case.layer())
    unique = regime in {"factor", "dense", "cash", "tiny_d"} and kappa != "dominant"
    check_against_clarabel(case, w, unique=unique and caps != "tight")


@pytest.mark.parametrize("scale", [1e-8, 1e-7, 1e2])
@pytest.mark.parametrize("regime", ["factor", "linear", "tiny_d"])
def test_same_answer_at_any_objective_scale(regime, scale):
    case = draw_case(regime, 10, 3, seed=7, kappa_kind="moderate", cap_kind="loose")
    w_unit = case.solve(case.layer())
    scaled = case.scaled(scale)
    torch.testing.assert_close(scaled.solve(scaled.layer()), w_unit, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("regime", "kappa", "caps"), HARD, ids=["-".join(case) for case in HARD])
def test_float32_iterations_do_not_change_the_answer(regime, kappa, caps):
    # the float32 interior point only finds the active set: with it or without it (every
    # iteration in float64) the certified answers agree to the polish's own accuracy
    case = draw_case(regime, 12, 4, seed=42, kappa_kind=kappa, cap_kind=caps)
    mixed = case.solve(case.layer())
    exact = case.solve(case.layer(options=SolverOptions(low_precision_iterations=0)))
    unique = regime in {"factor", "dense", "cash", "tiny_d"} and kappa != "dominant"
    if unique and caps != "tight":
        torch.testing.assert_close(mixed, exact, rtol=0, atol=1e-10)
    else:  # optimal faces with more than one point: the same objective
        gap = (case.objective(mixed) - case.objective(exact)).abs()
        assert (gap <= 1e-12 * case.objective_scale()).all(), gap


def test_float32_failures_start_over_in_float64(monkeypatch):
    case = draw_case("factor", 10, 3, seed=11, kappa_kind="moderate", cap_kind="loose")
    expected = case.solve(case.layer())
    newton_system = solver.newton_system

    def failing_in_float32(problem, rows, point):
        system = newton_system(problem, rows, point)
        if point.w.dtype == torch.float32:  # every float32 factorisation "fails"
            return replace(system, failed=torch.ones_like(system.failed))
        return system

    monkeypatch.setattr(solver, "newton_system", failing_in_float32)
    torch.testing.assert_close(case.solve(case.layer()), expected, rtol=0, atol=1e-10)


def test_dominant_turnover_penalty_keeps_the_book():
    case = draw_case("factor", 15, 4, seed=3, kappa_kind="dominant")
    torch.testing.assert_close(case.solve(case.layer()), case.w_prev, rtol=0, atol=1e-12)


def test_excluded_assets_hold_nothing_and_caps_bind():
    case = draw_case("factor", 12, 4, seed=5, kappa_kind="moderate", cap_kind="per_asset")
    w = case.solve(case.layer())
    assert case.upper is not None
    assert (w[case.upper == 0] == 0).all()
    check_against_clarabel(case, w, unique=True)


def test_an_answer_does_not_depend_on_its_batch_mates():
    cases = [
        draw_case(regime, 10, 3, seed=11, kappa_kind="moderate", cap_kind="loose")
        for regime in ("factor", "cash", "linear", "twins", "tiny_d")
    ]
    mu = torch.cat([c.mu for c in cases])
    loadings = torch.cat([c.F for c in cases])
    variances = torch.cat([c.d for c in cases])
    previous = torch.cat([c.w_prev for c in cases])
    layer = cases[0].layer()
    together = layer(mu, None, previous, F=loadings, d=variances)
    for i in range(mu.shape[0]):
        alone = layer(mu[i], None, previous[i], F=loadings[i], d=variances[i])
        torch.testing.assert_close(alone, together[i], rtol=0, atol=1e-10)
        # and in a batch of copies of a different problem
        mates = torch.tensor([i, (i + 3) % mu.shape[0], (i + 7) % mu.shape[0]])
        mixed = layer(mu[mates], None, previous[mates], F=loadings[mates], d=variances[mates])
        torch.testing.assert_close(mixed[0], together[i], rtol=0, atol=1e-10)


def test_factor_inputs_match_the_stacked_root_with_gradients():
    case = draw_case("factor", 9, 3, seed=13, kappa_kind="moderate", cap_kind="loose")
    assert case.F is not None and case.d is not None
    layer = case.layer()
    direction = torch.randn(3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    loadings = case.F.clone().requires_grad_()
    variances = case.d.clone().requires_grad_()
    w_factor = layer(case.mu, None, case.w_prev, F=loadings, d=variances)
    grad_f, grad_d = torch.autograd.grad((w_factor * direction).sum(), [loadings, variances])
    loadings2 = case.F.clone().requires_grad_()
    variances2 = case.d.clone().requires_grad_()
    w_root = layer(case.mu, risk_matrix(loadings2, variances2), case.w_prev)
    ref_f, ref_d = torch.autograd.grad((w_root * direction).sum(), [loadings2, variances2])
    torch.testing.assert_close(w_factor, w_root, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_f, ref_f, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(grad_d, ref_d, rtol=1e-8, atol=1e-10)


def test_negative_root_diagonal_gives_the_right_gradient():
    """R = [F'; diag(s)] with s < 0 has the same Sigma; dL/dR must be R's own derivative."""
    case = draw_case("factor", 6, 1, seed=17, form="R")
    assert case.R is not None
    root = case.R.clone()
    root[:, -6:] = -root[:, -6:]
    layer = case.layer()
    direction = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    flipped = root.clone().requires_grad_()
    (grad,) = torch.autograd.grad((layer(case.mu, flipped) * direction).sum(), flipped)
    dense = root.clone()
    dense[0, 0, 0] += 1e-300  # any off-diagonal entry in the bottom block: the dense operator
    dense[0, -6, 1] = 1e-300
    dense = dense.requires_grad_()
    (reference,) = torch.autograd.grad((layer(case.mu, dense) * direction).sum(), dense)
    torch.testing.assert_close(grad, reference, rtol=1e-8, atol=1e-12)


def test_empty_batch_and_single_asset():
    layer = draw_case("factor", 5, 1, seed=0).layer()
    empty = layer(
        torch.zeros(0, 5, dtype=torch.float64), F=torch.zeros(0, 5, 2), d=torch.ones(0, 5)
    )
    assert empty.shape == (0, 5)
    single = type(layer)(1, gamma=3.0)
    mu = torch.tensor([0.02], dtype=torch.float64, requires_grad=True)
    w = single(mu, torch.tensor([[0.1]], dtype=torch.float64))
    assert w.tolist() == [1.0]
    (grad,) = torch.autograd.grad(w.sum(), mu)
    assert grad.tolist() == [0.0]


def test_failures_name_their_indices_and_fallback_keeps_training_alive(monkeypatch):
    case = draw_case("factor", 8, 3, seed=19, kappa_kind="moderate", cap_kind="loose")
    # a solver whose polish never certifies anything: every problem runs out of iterations
    monkeypatch.setattr(solver, "polish", lambda problem, trial, dual, verified, *_: verified)
    few = SolverOptions(max_ipm_iterations=3)
    with pytest.raises(SolverError, match=r"failed on 3 of 3 problems; batch index") as info:
        case.solve(case.layer(options=few))
    assert info.value.indices == [0, 1, 2] and info.value.status == "max_iterations"
    fallback = case.layer(on_failure="fallback", options=few)
    mu = case.mu.clone().requires_grad_()
    with pytest.warns(QPFallbackWarning, match=r"re-solved with cvxpy/Clarabel \(3 certified"):
        w = fallback(mu, None, case.w_prev, F=case.F, d=case.d)
    (grad,) = torch.autograd.grad(w[:, 0].sum(), mu)
    monkeypatch.undo()
    exact = case.layer()
    mu2 = case.mu.clone().requires_grad_()
    w_exact = exact(mu2, None, case.w_prev, F=case.F, d=case.d)
    (grad_exact,) = torch.autograd.grad(w_exact[:, 0].sum(), mu2)
    torch.testing.assert_close(w, w_exact, rtol=0, atol=1e-10)
    torch.testing.assert_close(grad, grad_exact, rtol=1e-8, atol=1e-8)


def test_divergence_is_reported_at_once():
    case = draw_case("factor", 8, 2, seed=23)
    problem = qp_native.build_problem(
        case.mu,
        qp_native.factor_operator(case.F, case.d),
        case.gamma,
        0.0,
        None,
        None,
        options=SolverOptions(divergence_factor=1e-30),  # any gap counts as growth
    )
    solution = qp_native.solve(problem)
    assert solution.failures() == {0: "diverged", 1: "diverged"}
    assert solution.iterations == 2


def test_double_backward_is_refused():
    case = draw_case("factor", 5, 1, seed=29)
    mu = case.mu.clone().requires_grad_()
    w = case.layer()(mu, None, F=case.F, d=case.d)
    with pytest.raises(
        RuntimeError, match="double backward \\(create_graph=True\\) is unsupported"
    ):
        torch.autograd.grad(w[:, 0].sum(), mu, create_graph=True)


def test_gradient_reaches_the_caps_that_bind():
    """dL/dupper is the derivative through the assets held at their cap (finite differences)."""
    case = draw_case("factor", 12, 1, seed=31)
    mu = case.mu.clone()
    mu[0, :3] += 0.2  # three assets want more than their cap
    caps = torch.full((1, 12), 0.15, dtype=torch.float64)
    layer = case.layer()
    upstream = torch.linspace(-1, 1, 12, dtype=torch.float64)
    upper = caps.clone().requires_grad_()
    w = layer(mu, None, F=case.F, d=case.d, upper=upper)
    assert (w[0, :3] == 0.15).all()
    (grad,) = torch.autograd.grad((w * upstream).sum(), upper)
    eps = 1e-7
    for i in range(12):
        bump = torch.zeros_like(caps)
        bump[0, i] = eps
        plus = layer(mu, None, F=case.F, d=case.d, upper=caps + bump)
        minus = layer(mu, None, F=case.F, d=case.d, upper=caps - bump)
        numeric = ((plus - minus) * upstream).sum() / (2 * eps)
        assert abs(float(grad[0, i] - numeric)) < 1e-6, i
    at_cap = w.detach()[0] == 0.15
    assert at_cap[:3].all() and (grad[0, ~at_cap] == 0).all() and (grad[0, at_cap] != 0).all()


@pytest.mark.parametrize(("regime", "kappa", "caps"), HARD, ids=["-".join(case) for case in HARD])
def test_warm_starts_give_the_cold_answers_and_gradients(regime, kappa, caps):
    """A WarmStart holding the active sets of nearly the same problems (mu moved by 1%, as
    a training step moves it): the answers and the gradient in mu equal the cold solve's to
    the polish's accuracy (objectives where the optimum is not unique)."""
    case = draw_case(regime, 12, 4, seed=42, kappa_kind=kappa, cap_kind=caps)
    warm = qp_native.WarmStart()
    case.layer()(case.mu, case.R, case.w_prev, F=case.F, d=case.d, upper=case.upper,
                 warm_start=warm)  # fmt: skip
    moved = replace(case, mu=(case.mu * 1.01).requires_grad_())
    weights = {}
    for name, holder in (("warm", warm), ("cold", None)):
        mu = moved.mu.detach().clone().requires_grad_()
        w = moved.layer()(mu, case.R, case.w_prev, F=case.F, d=case.d, upper=case.upper,
                          warm_start=holder)  # fmt: skip
        (w * torch.linspace(-1, 1, case.n, dtype=w.dtype)).sum().backward()
        weights[name] = (w.detach(), mu.grad)
    unique = regime in {"factor", "dense", "cash", "tiny_d"} and kappa != "dominant"
    if unique and caps != "tight":
        torch.testing.assert_close(weights["warm"][0], weights["cold"][0], rtol=0, atol=1e-10)
        torch.testing.assert_close(weights["warm"][1], weights["cold"][1], rtol=1e-6, atol=1e-8)
    else:
        gap = (moved.objective(weights["warm"][0]) - moved.objective(weights["cold"][0])).abs()
        assert (gap <= 1e-12 * moved.objective_scale()).all(), gap


def test_a_certified_warm_start_skips_the_interior_point():
    """Solving the same problems again from their own active sets: no iteration at all; a
    batch of another shape starts cold."""
    case = draw_case("factor", 12, 4, seed=42, kappa_kind="none", cap_kind="loose")
    problem = qp_native.build_problem(
        case.mu, qp_native.factor_operator(case.F, case.d), case.gamma, 0.0, None, None
    )
    first = solver.solve(problem)
    warm = qp_native.WarmStart()
    warm.remember(first.weights, first.active, first.duals)
    again = solver.solve(problem, warm.hint(problem))
    assert again.iterations == 0 and not bool(again.failed.any())
    torch.testing.assert_close(again.weights, first.weights, rtol=0, atol=1e-12)
    assert warm.hint(problem.take(torch.tensor([0, 1]))) is None
