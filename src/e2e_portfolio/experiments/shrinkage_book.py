r"""The shrinkage experiment on a constrained book: every method's weights from the QP.

By default the shrinkage methods hold the closed-form direction at unit gross leverage
(:class:`~e2e_portfolio.models.decision_shrinkage.UnitGross`). A researcher whose book is
long-only, fully invested, leverage-bounded or sector-capped asks the question on that book
instead: :class:`QPBook` turns each method's forecast :math:`\hat\mu` and shrunk covariance into
the weights of the mean-variance QP of :class:`~e2e_portfolio.models.qp_layer.MeanVarianceQP`,

.. math::

    w = \arg\max_w\ \hat\mu^\top w - \gamma\, w^\top \Sigma(\delta)\, w
    \quad \text{s.t.}\ \mathbf 1^\top w = b,\ w_{\min} \le w \le w_{\max},\
    \lVert w\rVert_1 \le L,\ A_{\text{sector}}\, w \le s_{\max},

in the scoring of the decision-aware grid (one QP per grid delta and scored month) as in the
decision. No ``N x N`` matrix is formed: each window's family is already in factor form,
:math:`\Sigma(\delta) = F F^\top + \mathrm{diag}(d)` with
:math:`F = A V \sqrt{(1 - \delta)\Lambda}` and :math:`d = \delta\,\ell\, a^2`
(:class:`~e2e_portfolio.models.shrinkage_windows.ShrinkageWindows`), so the layer's factor
path solves every grid point in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import FactorCovariance
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.shrinkage_windows import ShrinkageWindows

__all__ = ["QPBook"]

_BATCH_ENTRIES = 4_000_000
"""Most loadings entries (problems x assets x factors) solved in one batch of the layer."""


@dataclass(frozen=True)
class QPBook:
    """Weights from the mean-variance QP with ``portfolio``'s constraints.

    Parameters
    ----------
    portfolio : PortfolioConfig
        Risk aversion, floor, cap, budget, leverage and sector cap (no turnover penalty: the
        grid's months are scored independently).
    sectors : sequence of str, optional
        Each asset's sector, needed with ``portfolio.sector_max``.
    """

    portfolio: PortfolioConfig
    sectors: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.portfolio.kappa != 0:
            raise DataError(f"kappa: expected 0 for the shrinkage book, got {self.portfolio.kappa}")

    def family(self, windows: ShrinkageWindows, deltas: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """Weights (D, S, N) for each delta on each window, forecasts mu (S, N)."""
        vectors, values = windows.vectors, windows.values  # (S, N, r), (S, r)
        n_windows, n_assets, rank = vectors.shape
        deltas = np.asarray(deltas, dtype=np.float64)
        scaled = windows.scale[:, :, None] * vectors
        kept = (1.0 - deltas)[:, None, None, None] * values[None, :, None]  # (D, S, 1, r)
        loadings = scaled[None] * np.sqrt(kept)
        specific = deltas[:, None, None] * (windows.level[:, None] * windows.scale**2)[None]
        flat_mu = np.broadcast_to(mu, (len(deltas), n_windows, n_assets))
        weights = self._solve(
            flat_mu.reshape(-1, n_assets),
            loadings.reshape(-1, n_assets, rank),
            specific.reshape(-1, n_assets),
        )
        return weights.reshape(len(deltas), n_windows, n_assets)

    def factor(self, covariance: FactorCovariance, mu: np.ndarray) -> np.ndarray:
        """Weights (N,) for one covariance in factor form."""
        return self._solve(mu[None], covariance.loadings[None], covariance.idiosyncratic[None])[0]

    def subset(self, held: np.ndarray) -> QPBook:
        """The book on the assets ``held`` (their sectors only)."""
        if self.sectors is None:
            return self
        return QPBook(self.portfolio, tuple(np.asarray(self.sectors)[held]))

    def _solve(self, mu: np.ndarray, loadings: np.ndarray, specific: np.ndarray) -> np.ndarray:
        """The QP's weights (B, N) for forecasts (B, N) and covariances ``F`` (B, N, r), ``d``."""
        n_problems, n_assets, rank = loadings.shape
        layer = self.portfolio.layer(n_assets)
        rows = self.portfolio.sector_rows(self.sectors)
        size = max(1, _BATCH_ENTRIES // max(1, n_assets * rank))
        out = []
        with torch.no_grad():
            for start in range(0, n_problems, size):
                part = slice(start, start + size)
                out.append(
                    layer(
                        torch.tensor(mu[part]),
                        F=torch.tensor(loadings[part]),
                        d=torch.tensor(specific[part]),
                        **rows,
                    ).numpy()
                )
        return np.concatenate(out)
