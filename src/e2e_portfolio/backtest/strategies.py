"""Strategies that are not arms: plain callables from a :class:`PastView` to weights.

:func:`equal_weight` (1/N on the listed assets) and :class:`MinimumVariance`, the closed-form
minimum-variance portfolio with shorts of DeMiguel, Garlappi & Uppal (2009), against whose
published table the engine is validated. The QP strategies of the central comparison —
long-only minimum variance, the plug-in, the decoupled and end-to-end pipelines — are arms
(:mod:`e2e_portfolio.backtest.arms`): ``ArmSet(...).strategies(["plug_in", "e2e"])`` gives
them as strategies with the protocol of ``e2e compare``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from e2e_portfolio.backtest.walkforward import PastView, embed
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import RISK_MODELS


def equal_weight(view: PastView) -> np.ndarray:
    """Equal weights.

    Parameters
    ----------
    view : PastView
        The past (only its number of assets is used).

    Returns
    -------
    ndarray, (n_assets,)
        ``1 / k`` on each of the ``k`` assets listed now, 0 elsewhere.
    """
    listed = view.listed_now
    return np.where(listed, 1.0 / listed.sum(), 0.0)


@dataclass
class MinimumVariance:
    r"""Closed-form minimum-variance weights, shorts allowed, from the trailing ``window``.

    :math:`w = \Sigma^{-1}\mathbf 1 / \mathbf 1^\top \Sigma^{-1}\mathbf 1` on the assets
    with a return in each of the last ``window`` months. ``estimator``: a name of
    :data:`~e2e_portfolio.models.covariance.RISK_MODELS`; a singular sample covariance
    (``n >= window``) is inverted on its span (the pseudo-inverse).
    """

    window: int = 60
    estimator: str = "sample"
    allows_short = True

    def __call__(self, view: PastView) -> np.ndarray:
        """Weights (n,) for the view's last date, on the assets with a full window."""
        if self.estimator not in RISK_MODELS:
            raise DataError(f"estimator: expected one of {', '.join(RISK_MODELS)}, "
                            f"got {self.estimator!r}")  # fmt: skip
        subset = view.with_history(self.window)
        if subset.sum() < 2:
            raise DataError(
                f"window: expected at least 2 assets with {self.window} months of history at "
                f"{view.dates[-1]:%Y-%m}, got {int(subset.sum())}"
            )
        sigma = RISK_MODELS[self.estimator](view.trailing_returns(self.window)[:, subset])
        direction = sigma.solve(np.ones(int(subset.sum())))
        return embed(direction / direction.sum(), subset)
