r"""Factor importance of a predictor's expected returns: gradient saliency and SHAP.

Gradient saliency of feature ``k`` is the mean absolute sensitivity of the forecast,

.. math::

    I_k = \frac{1}{T N} \sum_{t, i}
        \left| \frac{\partial \hat\mu_{t,i}}{\partial x_{t,i,k}} \right|,

over the months and assets of an exposure panel (each asset's forecast depends on its own
exposures only, so one backward pass of :math:`\sum \hat\mu` gives all of them). SHAP values
come from ``shap.GradientExplainer`` (the optional ``shap`` extra), averaged in absolute value.

:func:`attribution_across_seeds` asks whether the end-to-end predictor up-weights the
unpriced, low-correlation diversifier exposures relative to the MSE-trained one, seed by seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from e2e_portfolio.data.synthetic import PRICED_FACTORS, simulate_universe
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.train import TrainConfig, train_decoupled, train_e2e

Forecaster = Callable[[torch.Tensor], Any]
"""A model mapping exposures (..., n, k) to mu (..., n), or to a tuple whose first item is mu."""


def _mu(model: Forecaster, exposures: torch.Tensor) -> torch.Tensor:
    out = model(exposures)
    return out[0] if isinstance(out, tuple) else out


def gradient_saliency(model: Forecaster, exposures) -> np.ndarray:
    """Mean ``|d mu / d x_k|`` over months and assets; exposures (T, n, k) -> (k,)."""
    x = torch.tensor(np.array(exposures, dtype=np.float64), requires_grad=True)
    if x.ndim != 3:
        raise ValueError(f"exposures: expected shape (T, n, k), got {tuple(x.shape)}")
    (grad,) = torch.autograd.grad(_mu(model, x).sum(), x)
    return grad.abs().mean(dim=(0, 1)).numpy()


class _MuOnly(nn.Module):
    """(rows, k) -> (rows, 1) forecast, in the dtype shap sends."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return _mu(self.model, rows.to(torch.float64)).unsqueeze(-1).to(rows.dtype)


def shap_importance(
    model: nn.Module, exposures, n_background: int = 200, n_explained: int = 200, seed: int = 42
) -> np.ndarray:
    """Mean ``|SHAP value|`` per feature from ``shap.GradientExplainer``, (k,).

    Rows (one asset on one month) are drawn at random from ``exposures`` (T, n, k): a
    background sample and a disjoint sample to explain.
    """
    try:
        import shap
    except ImportError as exc:
        raise ImportError(
            "SHAP values need the optional shap package: pip install 'e2e-portfolio[shap]' "
            "(gradient_saliency works without it)"
        ) from exc
    rows = np.array(exposures, dtype=np.float64).reshape(-1, np.shape(exposures)[-1])
    order = np.random.default_rng(seed).permutation(len(rows))
    background = torch.tensor(rows[order[:n_background]])
    explained = torch.tensor(rows[order[n_background : n_background + n_explained]])
    explainer = shap.GradientExplainer(_MuOnly(model), background)
    values = np.asarray(explainer.shap_values(explained, rseed=seed))
    return np.abs(values.reshape(len(explained), -1)).mean(axis=0)


def importance_shares(importance: np.ndarray) -> np.ndarray:
    """Importances normalised to sum to one (a model's scale cancels)."""
    total = float(np.sum(importance))
    return np.asarray(importance) / total if total > 0 else np.zeros_like(importance)


def attribution_across_seeds(
    seeds: Iterable[int],
    n_assets: int = 40,
    n_months: int = 96,
    config: TrainConfig | None = None,
    on_seed: Callable[[dict], None] | None = None,
    with_shap: bool = False,
    portfolio: PortfolioConfig | None = None,
) -> dict:
    """Train both predictors on each seed's synthetic universe and compare their saliency.

    Returns ``features``, per-seed ``rows`` (saliency shares of both models and the
    diversifier share of each) and ``fraction_e2e_upweights_diversifiers``: the share of
    seeds where the end-to-end model puts more weight on the diversifier exposures. With
    ``with_shap`` each row also holds both models' SHAP shares (needs shap). The end-to-end
    model trains through the QP of ``portfolio`` (a cap of 0.1 per asset by default).
    """
    config = config or TrainConfig()
    portfolio = portfolio or PortfolioConfig(w_max=0.1)
    n_priced = len(PRICED_FACTORS)
    rows = []
    features: list[str] = []
    for seed in seeds:
        panel = simulate_universe(n_assets=n_assets, n_months=n_months, seed=int(seed))
        x, y = panel.supervised_pairs()
        seed_config = replace(config, seed=int(seed))
        decoupled = train_decoupled(x, y, seed_config).model
        end_to_end = train_e2e(x, y, seed_config, portfolio=portfolio).model
        models = {"decoupled": decoupled, "e2e": end_to_end}
        shares = {m: importance_shares(gradient_saliency(model, x)) for m, model in models.items()}
        features = list(panel.features)
        row = {
            "seed": int(seed),
            **{f"{m}_shares": s.tolist() for m, s in shares.items()},
            **{f"{m}_diversifier_share": float(s[n_priced:].sum()) for m, s in shares.items()},
        }
        if with_shap:
            for m, model in models.items():
                row[f"{m}_shap_shares"] = importance_shares(shap_importance(model, x)).tolist()
        rows.append(row)
        if on_seed is not None:
            on_seed(row)
    holds = [r["e2e_diversifier_share"] > r["decoupled_diversifier_share"] for r in rows]
    names = ("decoupled", "e2e")
    shap_shares = (
        {m: np.mean([r[f"{m}_shap_shares"] for r in rows], axis=0).tolist() for m in names}
        if with_shap
        else {}
    )
    return {
        "features": features,
        "rows": rows,
        "fraction_e2e_upweights_diversifiers": float(np.mean(holds)),
        "mean_shares": {
            m: np.mean([r[f"{m}_shares"] for r in rows], axis=0).tolist() for m in models
        },
        **({"mean_shap_shares": shap_shares} if with_shap else {}),
    }
