from __future__ import annotations

import pytest
import torch

from e2e_portfolio.models.risk import (
    DenseRisk,
    FactorRisk,
    as_risk_operator,
    cholesky_risk_matrix,
    covariance_root,
    risk_matrix,
)


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
    rhs = torch.randn(3, 2, 9, dtype=torch.float64)  # right-hand sides as rows
    torch.testing.assert_close(
        operator.factorise(diagonal, mask).solve(rhs), dense.factorise(diagonal, mask).solve(rhs)
    )
    # no mask: the whole of H
    torch.testing.assert_close(
        operator.factorise(diagonal).solve(rhs), dense.factorise(diagonal).solve(rhs)
    )
    system = torch.diag_embed(diagonal) + dense.matrix
    torch.testing.assert_close(system @ dense.factorise(diagonal).solve(rhs).mT, rhs.mT)
    torch.testing.assert_close(operator.diagonal(), torch.diagonal(dense.matrix, dim1=-2, dim2=-1))
    # scaling by c scales H
    c = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(operator.scaled(c).matvec(v), c.unsqueeze(1) * dense.matvec(v))
    torch.testing.assert_close(dense.scaled(c).matvec(v), c.unsqueeze(1) * dense.matvec(v))


def test_root_keeps_the_sign_of_the_diagonal(problems):
    _, risk, _ = problems(2, 5, 2)
    flipped = risk.clone()
    flipped[:, 2:] = -flipped[:, 2:]  # R = [F'; diag(-sqrt d)]: the same Sigma
    operator = as_risk_operator(flipped)
    assert isinstance(operator, FactorRisk)
    v = torch.randn(2, 5, 1, dtype=torch.float64)
    torch.testing.assert_close(operator.root_matvec(v), flipped @ v, rtol=1e-13, atol=1e-15)


def test_a_failed_factorisation_is_reported_per_problem():
    rows = torch.zeros(3, 1, 4, dtype=torch.float64)
    operator = FactorRisk(rows, torch.ones(3, 4, dtype=torch.float64))
    diagonal = torch.ones(3, 4, dtype=torch.float64)
    diagonal[1, 0] = float("nan")
    dense = DenseRisk(torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
    result = dense.factorise(diagonal)
    assert result.failed.tolist() == [False, True, False]
    rhs = torch.ones(3, 1, 4, dtype=torch.float64)
    torch.testing.assert_close(result.solve(rhs)[0], rhs[0] / 2)
    assert not operator.factorise(torch.ones(3, 4, dtype=torch.float64)).failed.any()


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


def test_covariance_root_of_a_singular_sample_covariance():
    g = torch.Generator().manual_seed(42)
    returns = 0.05 * torch.randn(10, 30, dtype=torch.float64, generator=g)  # 10 months, 30 assets
    covariance = torch.cov(returns.T)
    root = covariance_root(covariance)
    torch.testing.assert_close(root.T @ root, covariance, rtol=0, atol=1e-15)
    definite = covariance + 0.01 * torch.eye(30, dtype=torch.float64)
    torch.testing.assert_close(covariance_root(definite), cholesky_risk_matrix(definite))


def test_covariance_root_refuses_an_indefinite_matrix():
    with pytest.raises(
        ValueError,
        match=r"covariance: expected a positive semi-definite matrix, got an eigenvalue of -1",
    ):
        covariance_root(torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)))
