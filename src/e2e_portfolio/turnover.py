r"""Two-sided turnover against drifted holdings: one definition for the whole package.

Weights :math:`w_t` chosen at the close of ``t`` earn the next period's returns :math:`r_t`
(here indexed by the decision). Over that period the book drifts to

.. math::

    h_t = \frac{w_t \odot (1 + r_t)}{1 + w_t^\top r_t},

the weights it holds at the next decision. Turning it into :math:`w_{t+1}` trades

.. math::

    \tau_{t+1} = \lVert w_{t+1} - h_t \rVert_1 \qquad\text{(buys plus sells: two-sided)},

and costs :math:`\mathrm{tc}\,\tau_{t+1}`. The backtest engine
(:mod:`e2e_portfolio.backtest.walkforward`), the decision-aware shrinkage's scoring
(:mod:`e2e_portfolio.models.decision_shrinkage`) and the training losses
(:mod:`e2e_portfolio.models.losses`, the same formula in torch) all charge this.

Numpy only (the browser demo embeds it).
"""

from __future__ import annotations

import numpy as np

RUIN = 1e-12
"""A portfolio whose gross growth ``1 + w'r`` is within this of 0 lost everything: its
weights are kept as they were rather than divided by zero."""


def drifted(weights: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """The weights ``h`` a book of ``weights`` holds after earning ``returns``.

    Parameters
    ----------
    weights : ndarray, (..., n)
    returns : ndarray, (..., n)
        Broadcast against ``weights``.

    Returns
    -------
    ndarray, (..., n)
        ``w * (1 + r) / (1 + w'r)``; ``w`` itself where ``|1 + w'r| <= RUIN``.
    """
    growth = 1.0 + (weights * returns).sum(axis=-1, keepdims=True)
    alive = np.abs(growth) > RUIN
    return np.where(alive, weights * (1.0 + returns) / np.where(alive, growth, 1.0), weights)


def path_turnover(
    weights: np.ndarray, realised: np.ndarray, initial: np.ndarray | None = None
) -> np.ndarray:
    """Two-sided turnover of a path of decisions, each against the drifted previous book.

    Parameters
    ----------
    weights : ndarray, (..., T, n)
        ``weights[..., t, :]`` chosen at decision ``t``.
    realised : ndarray, (T, n) or (..., T, n)
        The returns ``weights[..., t, :]`` earned.
    initial : ndarray, (n,), optional
        The book held before the first decision (zeros: cash). Without it the first decision
        is charged nothing (a block scored on its own).

    Returns
    -------
    ndarray, (..., T)
        ``turnover[0] = ||w_0 - initial||_1`` (or 0), ``turnover[t] = ||w_t - h_{t-1}||_1``.
    """
    held = drifted(weights[..., :-1, :], realised[..., :-1, :])
    trades = np.abs(weights[..., 1:, :] - held).sum(axis=-1)
    if initial is None:
        first = np.zeros(weights.shape[:-2])
    else:
        first = np.abs(weights[..., 0, :] - initial).sum(axis=-1)
    return np.concatenate([first[..., None], trades], axis=-1)
