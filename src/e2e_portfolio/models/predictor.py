r"""Return-and-risk prediction head.

One MLP maps each asset's exposures to the two moments the QP needs: the expected return
:math:`\hat\mu_i` and a row of a low-rank-plus-diagonal risk model
:math:`\hat\Sigma = F F^\top + \mathrm{diag}(d)`, loadings :math:`F_i \in \mathbb R^{k_f}` and an
idiosyncratic variance :math:`d_i > 0`. :func:`~e2e_portfolio.models.risk.risk_matrix` stacks
:math:`R = [F^\top; \mathrm{diag}(\sqrt d)]` with :math:`R^\top R = \hat\Sigma`, so no Cholesky
factorisation is needed.

Outputs are scaled to monthly magnitudes (returns ~1%, volatilities ~5-10%) so that an
untrained network already produces a well-conditioned QP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from e2e_portfolio.models.risk import risk_matrix

MU_SCALE = 0.01
LOADING_SCALE = 0.05
IDIOSYNCRATIC_SCALE = 0.005
IDIOSYNCRATIC_FLOOR = 1e-4


class ReturnPredictor(nn.Module):
    """MLP from exposures (..., n, n_features) to mu (..., n), F (..., n, k_f), d (..., n).

    Parameters
    ----------
    n_features : int
        Exposures per asset.
    n_risk_factors : int
        Columns ``k_f`` of the loadings ``F``.
    hidden : int
        Width of the two hidden layers.
    """

    def __init__(self, n_features: int, n_risk_factors: int = 3, hidden: int = 32) -> None:
        super().__init__()
        for argument, value in (
            ("n_features", n_features), ("n_risk_factors", n_risk_factors), ("hidden", hidden)
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{argument}: expected a positive integer, got {value!r}")
        self.n_features, self.n_risk_factors = n_features, n_risk_factors
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.mu_head = nn.Linear(hidden, 1)
        self.load_head = nn.Linear(hidden, n_risk_factors)
        self.idio_head = nn.Linear(hidden, 1)

    def forward(self, exposures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``mu`` (..., n), ``F`` (..., n, k_f) and ``d`` (..., n) > 0 from the exposures."""
        if exposures.shape[-1] != self.n_features:
            shape = tuple(exposures.shape)
            raise ValueError(f"exposures: expected last dimension {self.n_features}, got {shape}")
        hidden = self.body(exposures)
        mu = MU_SCALE * self.mu_head(hidden).squeeze(-1)
        loadings = LOADING_SCALE * self.load_head(hidden)
        idiosyncratic = IDIOSYNCRATIC_SCALE * F.softplus(self.idio_head(hidden)).squeeze(-1)
        return mu, loadings, idiosyncratic + IDIOSYNCRATIC_FLOOR

    @staticmethod
    def risk_matrix(loadings: torch.Tensor, idiosyncratic: torch.Tensor) -> torch.Tensor:
        """``R = [F'; diag(sqrt d)]`` with ``R'R = F F' + diag(d)``."""
        return risk_matrix(loadings, idiosyncratic)
