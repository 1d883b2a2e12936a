"""The mean-variance layer against independent references.

Tolerances: the native solver is exact up to rounding (it solves the KKT system of the
identified active set), so feasibility is checked to 1e-9 and agreement with a tightly
solved Clarabel problem (gap and feasibility tolerances 1e-10) to 1e-6, the accuracy of that
reference. Finite differences use a step of 1e-6 on problems whose active set does not change
within the step, so central differences are accurate to ~1e-8 and 1e-4 relative is loose.
cvxpylayers runs Clarabel with its default tolerances (~1e-8 gap), which leaves ~1e-4 in
its weights; its gradients are compared at 2e-3 relative.
"""

from __future__ import annotations

import pytest
import torch

from e2e_portfolio.exceptions import SolverError
from e2e_portfolio.models import qp_native
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.qp_native import SolverOptions
from e2e_portfolio.models.risk import as_risk_operator, risk_matrix

CASES = [(None, 0.0), (0.25, 0.0), (0.25, 0.01), (None, 0.005)]
CASE_IDS = ["simplex", "capped", "capped-turnover", "turnover"]


def _layers(n, m, w_max, kappa, gamma=4.0):
    return (
        MeanVarianceQP(n, gamma=gamma, w_max=w_max, kappa=kappa),
        MeanVarianceQP(n, gamma=gamma, w_max=w_max, kappa=kappa, backend="cvxpy"),
    )


def _objective(w, mu, risk, previous, gamma, kappa):
    risk_term = ((risk @ w.unsqueeze(-1)).squeeze(-1) ** 2).sum(-1)
    return -(mu * w).sum(-1) + gamma * risk_term + kappa * (w - previous).abs().sum(-1)


@pytest.mark.parametrize("dense", [False, True], ids=["factor-R", "dense-R"])
@pytest.mark.parametrize(("w_max", "kappa"), CASES, ids=CASE_IDS)
def test_native_matches_clarabel(problems, w_max, kappa, dense):
    mu, risk, previous = problems(12, 15, 3, dense=dense)
    native, reference = _layers(15, risk.shape[1], w_max, kappa)
    w = native(mu, risk, previous)
    w_ref = reference(mu, risk, previous)
    torch.testing.assert_close(w, w_ref, rtol=0, atol=1e-6)
    # and it is at least as good: its objective is not above Clarabel's
    gap = _objective(w, mu, risk, previous, 4.0, kappa) - _objective(
        w_ref, mu, risk, previous, 4.0, kappa
    )
    assert (gap <= 1e-12).all()


def test_tight_cap_with_turnover_matches_clarabel():
    # every asset can end up held (at 0, at the cap or at its previous weight): such a polish
    # once passed the KKT check with sum(w) = 0.989 (found by a 1,080-configuration sweep)
    g = torch.Generator().manual_seed(2)
    kw = {"dtype": torch.float64, "generator": g}
    mu = 0.01 + 0.03 * torch.randn(8, 12, **kw)
    risk = risk_matrix(0.06 * torch.randn(8, 12, 4, **kw), 0.002 + 0.01 * torch.rand(8, 12, **kw))
    previous = torch.rand(8, 12, **kw)
    previous = previous / previous.sum(dim=1, keepdim=True)
    native, reference = _layers(12, 16, 0.3, 0.001, gamma=0.5)
    torch.testing.assert_close(
        native(mu, risk, previous), reference(mu, risk, previous), rtol=0, atol=1e-6
    )


def _problem(mu, risk, gamma, w_max, kappa, previous):
    caps = None if w_max is None else torch.full_like(mu, w_max)
    prev = previous if kappa else None
    return qp_native.build_problem(mu, as_risk_operator(risk), gamma, kappa, prev, caps)


def test_polish_with_every_asset_held_off_budget_fails_the_check(problems):
    mu, risk, previous = problems(1, 5, 2)
    problem = _problem(mu, risk, 4.0, 0.3, 0.01, previous)
    at_previous = torch.tensor([[False, False, True, False, False]])
    at_upper = torch.tensor([[False, True, False, False, False]])
    fixed = torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.0]], dtype=torch.float64)
    fixed = torch.where(at_previous, previous, fixed)
    held = qp_native.ActiveSet(
        torch.zeros_like(at_previous), fixed, at_upper, at_previous, torch.zeros_like(fixed)
    )
    w, nu, _ = qp_native.solve_active_set(problem, held, torch.zeros(1, 1, dtype=torch.float64))
    assert (w.sum() - 1).abs() > 1e-3
    check = qp_native.certify(problem, w, nu, held)
    assert (check.primal > 1e-3).all() and check.failing.all()


@pytest.mark.parametrize(("w_max", "kappa"), CASES, ids=CASE_IDS)
def test_feasible_and_kkt(problems, w_max, kappa):
    mu, risk, previous = problems(32, 40, 4)
    layer = MeanVarianceQP(40, gamma=4.0, w_max=w_max, kappa=kappa)
    w = layer(mu, risk, previous)
    assert (w.sum(dim=1) - 1).abs().max() < 1e-9
    assert w.min() >= 0
    if w_max is not None:
        assert w.max() <= w_max
    problem = _problem(mu, risk, 4.0, w_max, kappa, previous)
    solution = qp_native.solve(problem)
    assert not solution.failed.any()
    check = qp_native.certify(problem, solution.weights, solution.duals, solution.active)
    assert not check.failing.any()
    assert check.stationarity.max() < 1e-12


@pytest.mark.parametrize(("w_max", "kappa"), CASES, ids=CASE_IDS)
def test_gradcheck_float64(problems, w_max, kappa):
    mu, risk, previous = problems(2, 6, 2)
    layer = MeanVarianceQP(6, gamma=3.0, w_max=w_max, kappa=kappa)
    inputs = tuple(t.clone().requires_grad_() for t in (mu, risk, previous))
    assert torch.autograd.gradcheck(layer, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(("w_max", "kappa"), CASES, ids=CASE_IDS)
def test_gradients_match_finite_differences(problems, w_max, kappa):
    mu, risk, previous = problems(1, 10, 2, seed=7)
    layer = MeanVarianceQP(10, gamma=4.0, w_max=w_max, kappa=kappa)
    direction = torch.randn(10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss(m, r, p=None):
        return (layer(m, r, p) * direction).sum()

    used = (mu, risk, previous) if kappa > 0 else (mu, risk)
    inputs = [t[0].clone().requires_grad_() for t in used]
    grads = torch.autograd.grad(loss(*inputs), inputs)
    eps = 1e-6
    for index, (tensor, grad) in enumerate(zip(inputs, grads, strict=True)):
        numeric = torch.zeros_like(tensor)
        flat = numeric.view(-1)
        for j in range(tensor.numel()):
            plus = [t.detach().clone() for t in inputs]
            minus = [t.detach().clone() for t in inputs]
            plus[index].view(-1)[j] += eps
            minus[index].view(-1)[j] -= eps
            flat[j] = (loss(*plus) - loss(*minus)) / (2 * eps)
        scale = numeric.abs().max().clamp(min=1e-8)
        assert (grad - numeric).abs().max() / scale < 1e-4, f"input {index}"


@pytest.mark.parametrize(("w_max", "kappa"), CASES, ids=CASE_IDS)
def test_gradients_match_cvxpylayers(problems, w_max, kappa):
    pytest.importorskip("cvxpylayers")
    mu, risk, previous = problems(3, 8, 2, seed=3)
    native = MeanVarianceQP(8, gamma=3.0, w_max=w_max, kappa=kappa)
    reference = MeanVarianceQP(8, gamma=3.0, w_max=w_max, kappa=kappa, backend="cvxpylayers")
    direction = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    results = []
    for layer in (native, reference):
        inputs = [t.clone().requires_grad_() for t in (mu, risk, previous)]
        w = layer(*inputs)
        grads = torch.autograd.grad((w * direction).sum(), inputs, allow_unused=True)
        results.append((w, grads))
    (w_nat, g_nat), (w_ref, g_ref) = results
    torch.testing.assert_close(w_nat, w_ref, rtol=0, atol=5e-4)
    for name, a, b in zip(("mu", "R", "w_prev"), g_nat, g_ref, strict=True):
        if kappa == 0 and name == "w_prev":
            continue
        assert (a - b).abs().max() <= 2e-3 * b.abs().max() + 1e-8, name


def test_closed_form_when_only_the_budget_binds():
    """w = Sigma^-1 (mu - nu 1) / (2 gamma) and its Jacobian, with nu fixing sum(w) = 1."""
    g = torch.Generator().manual_seed(42)
    n, gamma = 5, 2.0
    a = torch.randn(n, n, dtype=torch.float64, generator=g)
    sigma = a @ a.T / n + 0.5 * torch.eye(n, dtype=torch.float64)
    risk = torch.linalg.cholesky(sigma).T  # R'R = Sigma
    target = torch.tensor([0.15, 0.25, 0.2, 0.3, 0.1], dtype=torch.float64)
    mu = (2 * gamma * sigma @ target + 0.01).requires_grad_()  # optimum is `target`
    layer = MeanVarianceQP(n, gamma=gamma)
    w = layer(mu, risk)
    inverse = torch.linalg.inv(sigma)
    ones = torch.ones(n, dtype=torch.float64)
    nu = (ones @ inverse @ mu - 2 * gamma) / (ones @ inverse @ ones)
    closed = inverse @ (mu - nu * ones) / (2 * gamma)
    torch.testing.assert_close(w, closed, rtol=0, atol=1e-12)
    torch.testing.assert_close(w, target, rtol=0, atol=1e-12)
    jacobian = torch.autograd.functional.jacobian(lambda m: layer(m, risk), mu)
    projector = inverse - torch.outer(inverse @ ones, inverse @ ones) / (ones @ inverse @ ones)
    torch.testing.assert_close(jacobian, projector / (2 * gamma), rtol=1e-10, atol=1e-12)


def test_gradient_flows_through_layer():
    """Implicit differentiation: dw*/dmu is non-trivial (the design document's test)."""
    torch.manual_seed(42)
    layer = MeanVarianceQP(n=6, gamma=5.0)
    mu = (torch.randn(6) * 0.02).requires_grad_()
    w = layer(mu, torch.eye(6) * 0.2)
    (w * torch.linspace(0, 1, 6)).sum().backward()
    assert mu.grad.abs().sum() > 0


def test_float32_in_float32_out_and_broadcasting(problems):
    mu, risk, previous = problems(4, 7, 2)
    layer = MeanVarianceQP(7, gamma=3.0, w_max=0.5, kappa=0.01)
    w32 = layer(mu.float(), risk[0].float(), previous.float())
    assert w32.dtype == torch.float32 and w32.shape == (4, 7)
    w64 = layer(mu, risk[0].expand(4, 9, 7), previous)
    torch.testing.assert_close(w32.double(), w64, rtol=0, atol=1e-6)
    single = layer(mu[1], risk[0], previous[1])
    assert single.shape == (7,)
    torch.testing.assert_close(single, w64[1])


def test_degenerate_points_give_finite_gradients(problems):
    mu, risk, previous = problems(3, 6, 2)
    # every asset pinned at the cap: nothing is free, the derivative is zero
    pinned = MeanVarianceQP(6, gamma=3.0, w_max=1 / 6)
    # a huge turnover penalty keeps every asset at its previous weight
    sticky = MeanVarianceQP(6, gamma=3.0, kappa=10.0)
    for layer in (pinned, sticky):
        inputs = [t.clone().requires_grad_() for t in (mu, risk, previous)]
        w = layer(*inputs)
        grads = torch.autograd.grad(w[:, 0].sum(), inputs, allow_unused=True)
        for grad in grads:
            assert grad is None or torch.isfinite(grad).all()
    torch.testing.assert_close(sticky(mu, risk, previous), previous, rtol=0, atol=1e-12)
    # inside the no-trade region the map is piecewise linear in w_prev: the backward returns
    # the piece for perturbations that raise sum(w_prev) (the asset cheapest to sell absorbs)
    jacobian = torch.autograd.functional.jacobian(lambda p: sticky(mu[0], risk[0], p), previous[0])
    g = torch.Generator().manual_seed(5)
    for shift in (0.0, 1.0):  # keeping the sum, raising it
        direction = torch.randn(6, dtype=torch.float64, generator=g)
        direction = direction - direction.mean() + shift / 6
        eps = 1e-7
        moved = sticky(mu[0], risk[0], previous[0] + eps * direction)
        one_sided = (moved - sticky(mu[0], risk[0], previous[0])) / eps
        torch.testing.assert_close(jacobian @ direction, one_sided, rtol=0, atol=1e-6)


def test_cvxpy_backend_has_no_gradient(problems):
    mu, risk, _ = problems(1, 5, 2)
    layer = MeanVarianceQP(5, gamma=3.0, backend="cvxpy")
    w = layer(mu.clone().requires_grad_(), risk)
    with pytest.raises(RuntimeError, match="backend 'cvxpy' solves the forward problem only"):
        w.sum().backward()


def test_non_convergence_raises_with_status_and_indices(problems):
    mu, risk, previous = problems(4, 20, 3)
    # two float64 iterations and no float32 ones: too few to reach the polish gap
    options = SolverOptions(low_precision_iterations=0, max_ipm_iterations=2, max_polish_rounds=0)
    layer = MeanVarianceQP(20, gamma=3.0, w_max=0.1, kappa=0.01, options=options)
    with pytest.raises(
        SolverError,
        match=r"failed on 4 of 4 problems; batch index \(status\): 0 \(max_iterations\)",
    ) as info:
        layer(mu, risk, previous)
    assert info.value.status == "max_iterations"
    assert info.value.indices == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma": -1.0}, r"gamma: expected a finite risk aversion > 0, got -1.0"),
        ({"gamma": 0.0}, r"gamma: expected a finite risk aversion > 0, got 0.0"),
        ({"kappa": -0.1}, r"kappa: expected a finite turnover penalty >= 0, got -0.1"),
        ({"w_max": 0.1}, r"w_max: infeasible, expected n \* w_max >= 1 .* got 5 \* 0.1 = 0.5"),
        ({"w_max": -0.5}, r"w_max: expected a positive cap or None, got -0.5"),
        ({"backend": "mosek"}, r"backend: expected one of .*, got 'mosek'"),
        ({"n": 0}, r"n: expected a positive integer, got 0"),
        ({"gamma": None}, r"gamma: expected a finite risk aversion > 0, got None"),
        ({"on_failure": "ignore"}, r"on_failure: expected one of \('raise', 'fallback'\), got 'ignore'"),
        ({"w_min": 0.3}, r"w_min: infeasible, expected n \* w_min <= 1 .* got 5 \* 0.3 = 1.5"),
        ({"w_min": -float("inf")}, r"w_min: expected a finite floor without a leverage bound, got -inf"),
        ({"w_min": 0.1, "w_max": 0.05}, r"w_max: expected at least w_min = 0.1, got 0.05"),
        ({"w_min": -0.1, "leverage": 0.5}, r"leverage: expected a finite gross-exposure bound >= \|budget\| = 1, got 0.5"),
        ({"budget": 0.0}, r"budget: expected > 0 for a book without shorts \(w_min >= 0\), got 0.0"),
        ({"budget": float("nan")}, r"budget: expected a finite budget, got nan"),
    ],
    ids=["negative-gamma", "zero-gamma", "negative-kappa", "infeasible-cap", "negative-cap",
         "unknown-backend", "no-assets", "missing-gamma", "unknown-on-failure", "infeasible-floor",
         "unbounded-shorts", "cap-below-floor", "leverage-below-budget", "long-only-zero-budget",
         "nan-budget"],
)  # fmt: skip
def test_bad_construction(kwargs, match):
    arguments = {"n": 5, "gamma": 3.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        MeanVarianceQP(**arguments)


def _bad_inputs():
    mu, risk, prev = torch.zeros(5), torch.eye(7, 5), torch.full((5,), 0.2)
    nan_mu = mu.clone()
    nan_mu[2] = float("nan")
    inf_risk = risk.clone()
    inf_risk[0, 0] = float("inf")
    nan_prev = prev.clone()
    nan_prev[0] = float("nan")
    return [
        ((nan_mu, risk, prev), ValueError, r"mu: expected finite values, got NaN or inf"),
        ((mu, inf_risk, prev), ValueError, r"R: expected finite values, got NaN or inf"),
        ((mu, risk, nan_prev), ValueError, r"w_prev: expected finite values, got NaN or inf"),
        ((torch.zeros(4), risk, prev), ValueError, r"mu: expected shape \(5,\) or \(batch, 5\), got \(4,\)"),
        ((mu, torch.eye(6, 4), prev), ValueError, r"R: expected shape \(k, 5\) or \(batch, k, 5\), got \(6, 4\)"),
        ((mu, risk, None), ValueError, r"w_prev: required when kappa > 0 \(kappa=0.01\), got None"),
        ((mu, risk, torch.zeros(3)), ValueError, r"w_prev: expected shape \(5,\) or \(batch, 5\), got \(3,\)"),
        ((torch.zeros(2, 5), torch.eye(7, 5).expand(3, 7, 5), prev), ValueError,
         r"mu, R, w_prev: expected one batch size, got \[2, 3\]"),
        ((mu.numpy(), risk, prev), TypeError, r"mu: expected a torch.Tensor, got ndarray"),
        ((torch.zeros(5, dtype=torch.long), risk, prev), TypeError, r"mu: expected a floating-point tensor"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    _bad_inputs(),
    ids=["nan-mu", "inf-R", "nan-w_prev", "mu-shape", "R-shape", "missing-w_prev",
         "w_prev-shape", "batch-mismatch", "numpy-mu", "integer-mu"],
)  # fmt: skip
def test_bad_forward_inputs(inputs, error, match):
    layer = MeanVarianceQP(5, gamma=3.0, kappa=0.01)
    with pytest.raises(error, match=match):
        layer(*inputs)


def _bad_factor_inputs():
    loadings, variances = torch.zeros(5, 2), torch.full((5,), 0.01)
    nan_upper = torch.full((5,), 0.5)
    nan_upper[1] = float("nan")
    return [
        ({"R": torch.eye(7, 5), "F": loadings, "d": variances}, r"R, F, d: expected either R or F and d, got both forms"),
        ({"F": loadings}, r"d: required, expected R or both F and d, got None"),
        ({"d": variances}, r"F: required, expected R or both F and d, got None"),
        ({}, r"R: required, expected R or both F and d, got None"),
        ({"F": torch.zeros(4, 2), "d": variances}, r"F: expected shape \(5, k\) or \(batch, 5, k\), got \(4, 2\)"),
        ({"F": loadings, "d": torch.zeros(4)}, r"d: expected shape \(5,\) or \(batch, 5\), got \(4,\)"),
        ({"F": loadings, "d": -variances}, r"d: expected idiosyncratic variances >= 0, got a negative value"),
        ({"F": loadings, "d": variances, "upper": torch.full((5,), -0.1)}, r"upper: expected caps >= 0 \(inf for none\), got a negative value"),
        ({"F": loadings, "d": variances, "upper": nan_upper}, r"upper: expected bounds \(inf for none\), got NaN"),
        ({"F": loadings, "d": variances, "upper": torch.full((3,), 0.5)}, r"upper: expected shape \(5,\) or \(batch, 5\), got \(3,\)"),
        ({"F": loadings.expand(3, 5, 2), "d": variances, "upper": torch.tensor([[0.5] * 5, [0.1] * 5, [0.3] * 5])},
         r"upper: infeasible caps, expected min\(upper, w_max, 1\) to sum to >= 1 in every problem, got less in problem 1 \(sum 0.5\)"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("inputs", "match"),
    _bad_factor_inputs(),
    ids=["both-forms", "F-without-d", "d-without-F", "no-risk", "F-shape", "d-shape",
         "negative-d", "negative-cap", "nan-cap", "cap-shape", "infeasible-caps"],
)  # fmt: skip
def test_bad_factor_and_cap_inputs(inputs, match):
    layer = MeanVarianceQP(5, gamma=3.0)
    with pytest.raises(ValueError, match=match):
        layer(torch.zeros(5), inputs.pop("R", None), **inputs)


def test_the_number_of_factors_is_read_off_each_call():
    layer = MeanVarianceQP(5, gamma=3.0)
    mu = torch.linspace(0.01, 0.02, 5, dtype=torch.float64)
    two = layer(
        mu, F=torch.full((5, 2), 0.1, dtype=torch.float64), d=torch.ones(5, dtype=torch.float64)
    )
    three = layer(
        mu, F=torch.full((5, 3), 0.1, dtype=torch.float64), d=torch.ones(5, dtype=torch.float64)
    )
    assert two.shape == three.shape == (5,)


def test_cvxpylayers_takes_per_asset_caps():
    pytest.importorskip("cvxpylayers")
    reference = MeanVarianceQP(5, gamma=3.0, backend="cvxpylayers")
    native = MeanVarianceQP(5, gamma=3.0)
    inputs = {"F": torch.zeros(5, 2, dtype=torch.float64), "d": torch.ones(5, dtype=torch.float64),
              "upper": torch.tensor([0.5, 0.5, 0.0, 0.1, 0.1], dtype=torch.float64)}  # fmt: skip
    mu = torch.linspace(0.01, 0.5, 5, dtype=torch.float64)
    # cvxpylayers solves to Clarabel's default tolerance inside diffcp: weights agree to ~1e-6
    torch.testing.assert_close(reference(mu, **inputs), native(mu, **inputs), rtol=0, atol=1e-5)
