from __future__ import annotations

import pytest
import torch

from e2e_portfolio.models.risk import DenseRisk, FactorRisk, as_risk_operator, risk_matrix


def test_risk_matrix_reproduces_covariance():
    g = torch.Generator().manual_seed(42)
    loadings = torch.randn(7, 3, dtype=torch.float64, generator=g)
    idiosyncratic = torch.rand(7, dtype=torch.float64, generator=g) + 0.1
    risk = risk_matrix(loadings, idiosyncratic)
    assert risk.shape == (10, 7)
    expected = loadings @ loadings.T + torch.diag(idiosyncratic)
    torch.testing.assert_close(risk.T @ risk, expected, rtol=1e-12, atol=1e-14)


def test_risk_matrix_batched_and_differentiable():
    loadings = torch.randn(4, 6, 2, dtype=torch.float64, requires_grad=True)
    idiosyncratic = (torch.rand(4, 6, dtype=torch.float64) + 0.1).requires_grad_()
    risk = risk_matrix(loadings, idiosyncratic)
    assert risk.shape == (4, 8, 6)
    (risk.transpose(-1, -2) @ risk).sum().backward()
    assert loadings.grad is not None and idiosyncratic.grad is not None


@pytest.mark.parametrize(
    ("loadings", "idiosyncratic", "match"),
    [
        (torch.ones(5, 2), torch.ones(4), r"idiosyncratic: expected shape \(5,\)"),
        (torch.ones(5, 2), torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]), "expected positive"),
    ],
    ids=["shape", "non-positive"],
)
def test_risk_matrix_bad_input(loadings, idiosyncratic, match):
    with pytest.raises(ValueError, match=match):
        risk_matrix(loadings, idiosyncratic)


def test_operators_agree_with_dense_products(problems):
    _, risk, _ = problems(3, 9, 2)
    operator = as_risk_operator(risk)
    assert isinstance(operator, FactorRisk)
    dense = DenseRisk(risk)
    v = torch.randn(3, 9, dtype=torch.float64)
    torch.testing.assert_close(operator.matvec(v), dense.matvec(v))
    diagonal = torch.rand(3, 9, dtype=torch.float64) + 0.5
    mask = (torch.rand(3, 9) > 0.3).to(torch.float64)
    rhs = torch.randn(3, 9, 2, dtype=torch.float64)
    torch.testing.assert_close(
        operator.solver(2.0, diagonal, mask)(rhs), dense.solver(2.0, diagonal, mask)(rhs)
    )
    # no mask: the whole of Q
    torch.testing.assert_close(
        operator.solver(2.0, diagonal)(rhs), dense.solver(2.0, diagonal)(rhs)
    )
    system = torch.diag_embed(diagonal) + 2.0 * dense.matrix
    torch.testing.assert_close(system @ dense.solver(2.0, diagonal)(rhs), rhs)


def test_unstructured_risk_is_dense(problems):
    _, risk, _ = problems(2, 6, 2, dense=True)
    assert isinstance(as_risk_operator(risk), DenseRisk)


@pytest.mark.parametrize("n", [1, 4])
def test_any_off_diagonal_entry_makes_the_risk_dense(problems, n):
    _, risk, _ = problems(2, n, 2)
    assert isinstance(as_risk_operator(risk), FactorRisk)
    for i in range(n):
        for j in range(n):
            if i != j:
                perturbed = risk.clone()
                perturbed[1, 2 + i, j] = 1e-3
                assert isinstance(as_risk_operator(perturbed), DenseRisk), (i, j)


def test_root_matvec_is_the_risk_matrix_product(problems):
    _, risk, _ = problems(3, 7, 2)
    operator = as_risk_operator(risk)
    assert isinstance(operator, FactorRisk)
    v = torch.randn(3, 7, 2, dtype=torch.float64)
    torch.testing.assert_close(operator.root_matvec(v), risk @ v, rtol=1e-13, atol=1e-15)
