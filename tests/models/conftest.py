"""Random mean-variance problems (seed 42) shared by the QP tests."""

from __future__ import annotations

import pytest
import torch

from e2e_portfolio.models.risk import risk_matrix


def make_problems(
    batch: int, n: int, k: int, seed: int = 42, dense: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mu (batch, n), R (batch, m, n), w_prev (batch, n) on the simplex.

    ``dense=False``: R = [F'; diag(sqrt d)] (m = k + n); ``dense=True``: a full-rank
    unstructured R with m = n + k rows.
    """
    g = torch.Generator().manual_seed(seed)
    kw = {"dtype": torch.float64, "generator": g}
    mu = 0.01 + 0.03 * torch.randn(batch, n, **kw)
    if dense:
        risk = 0.05 * torch.randn(batch, n + k, n, **kw)
    else:
        loadings = 0.06 * torch.randn(batch, n, k, **kw)
        risk = risk_matrix(loadings, 0.002 + 0.01 * torch.rand(batch, n, **kw))
    previous = torch.rand(batch, n, **kw)
    return mu, risk, previous / previous.sum(dim=1, keepdim=True)


@pytest.fixture
def problems():
    return make_problems
