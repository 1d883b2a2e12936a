"""Trailing-window estimates at past positions, each computed once per walk.

The arms' window risk models (in factor form, :mod:`e2e_portfolio.models.covariance`) and
trailing means come from the ``window`` months ending at a past position ``s``; only the
assets with a return in every one of those months enter (fewer months where fewer are known),
and an excluded asset gets the mean variance of the others and no loadings (it is never held).
One :class:`TrailingWindows` serves one panel, so a position's past never changes and each
window is estimated once, whichever arm, decision, tuning or training asks. Numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import FactorCovariance, RiskModel


@dataclass
class WindowRisk:
    """Window covariances in factor form at m positions, ready for the layer.

    loadings (m, n, k) (zero columns pad the windows with fewer factors), idiosyncratic
    (m, n), mask (m, n): the assets with a return in every month of their window.
    """

    loadings: np.ndarray
    idiosyncratic: np.ndarray
    mask: np.ndarray


@dataclass
class TrailingWindows:
    """Estimates from the ``window`` months ending at past positions of one panel."""

    window: int
    _estimates: dict[tuple[Any, int], FactorCovariance] = field(default_factory=dict)

    def full(self, returns: np.ndarray, s: int) -> np.ndarray:
        """(n,) bool: a return in each of the ``window`` months ending at ``s``."""
        return np.isfinite(returns[max(0, s - self.window + 1) : s + 1]).all(axis=0)

    def risk(
        self, model: RiskModel, returns: np.ndarray, positions: Sequence[int] | np.ndarray
    ) -> WindowRisk:
        """``model``'s estimate of the window ending at each position, embedded in n assets."""
        estimates = []
        for s in positions:
            key = (model, int(s))
            if key not in self._estimates:
                self._estimates[key] = self._estimate(model, returns, int(s))
            estimates.append(self._estimates[key])
        n_factors = max(e.n_factors for e in estimates)
        padded = [e.padded(n_factors) for e in estimates]
        masks = [self.full(returns, int(s)) for s in positions]
        return WindowRisk(np.array([e.loadings for e in padded]),
                          np.array([e.idiosyncratic for e in padded]), np.array(masks))  # fmt: skip

    def means(
        self, returns: np.ndarray, positions: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample means (m, n) of the windows ending at the positions, and full masks (m, n).

        An asset without a full window gets a mean of 0 (it is not held).
        """
        means = np.array([returns[max(0, s - self.window + 1) : s + 1].mean(axis=0)
                          for s in positions])  # fmt: skip
        full = np.array([self.full(returns, int(s)) for s in positions])
        return np.where(full, means, 0.0), full

    def _estimate(self, model: RiskModel, returns: np.ndarray, s: int) -> FactorCovariance:
        mask = self.full(returns, s)
        if mask.sum() < 2:
            raise DataError(f"window: expected at least 2 assets with a full window at "
                            f"position {s}, got {int(mask.sum())}")  # fmt: skip
        past = returns[max(0, s - self.window + 1) : s + 1]
        estimate = model(past[:, mask])
        if isinstance(estimate, tuple):  # a user's model may answer (F, d)
            estimate = FactorCovariance(*estimate)
        if not isinstance(estimate, FactorCovariance) or estimate.n_assets != mask.sum():
            raise DataError(
                f"risk: expected the risk model to return a FactorCovariance of "
                f"{int(mask.sum())} assets, got {estimate!r:.80}"
            )
        return estimate.embedded(mask, float(estimate.variances().mean()))
