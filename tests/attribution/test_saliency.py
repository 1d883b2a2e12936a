from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from e2e_portfolio.attribution.saliency import (
    attribution_across_seeds,
    gradient_saliency,
    importance_shares,
    shap_importance,
)


class LinearForecast(nn.Module):
    """mu = x @ w: the saliency of feature k is |w_k| exactly."""

    def __init__(self, weights):
        super().__init__()
        self.weights = nn.Parameter(torch.tensor(weights, dtype=torch.float64))

    def forward(self, x):
        return x @ self.weights, None


WEIGHTS = [0.5, -2.0, 0.0, 1.25]


def test_saliency_of_linear_model_is_weight_magnitudes():
    x = np.random.default_rng(42).standard_normal((10, 7, 4))
    np.testing.assert_allclose(gradient_saliency(LinearForecast(WEIGHTS), x), np.abs(WEIGHTS))
    shares = importance_shares(np.abs(WEIGHTS))
    assert shares.sum() == pytest.approx(1.0) and shares[1] == pytest.approx(2.0 / 3.75)


@pytest.mark.slow
def test_shap_of_linear_model_is_proportional_to_weight_magnitudes():
    pytest.importorskip("shap")
    x = np.random.default_rng(42).standard_normal((50, 8, 4))
    values = shap_importance(LinearForecast(WEIGHTS), x, n_background=200, n_explained=200)
    # for a linear model SHAP_k = w_k (x_k - E x_k): mean |SHAP_k| = |w_k| E|x_k - mean|
    np.testing.assert_allclose(
        importance_shares(values), importance_shares(np.abs(WEIGHTS)), atol=0.03
    )


def test_missing_shap_is_explained(without_module):
    without_module("shap")
    with pytest.raises(ImportError, match=r"pip install 'e2e-portfolio\[shap\]'"):
        shap_importance(LinearForecast(WEIGHTS), np.zeros((3, 4, 4)))


def test_attribution_across_seeds_structure():
    from e2e_portfolio.models.train import TrainConfig

    result = attribution_across_seeds(
        [0, 1], n_assets=12, n_months=40, config=TrainConfig(epochs=2)
    )
    assert result["features"][-2:] == ["diversifier_1", "diversifier_2"]
    assert len(result["rows"]) == 2
    upweights = [r["e2e_diversifier_share"] > r["decoupled_diversifier_share"]
                 for r in result["rows"]]  # fmt: skip
    assert result["fraction_e2e_upweights_diversifiers"] == np.mean(upweights)
    for row in result["rows"]:
        assert sum(row["decoupled_shares"]) == pytest.approx(1.0)
        assert row["e2e_diversifier_share"] == pytest.approx(sum(row["e2e_shares"][4:]))
