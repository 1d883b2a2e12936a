"""The calendar of the return data and the annualised Sharpe ratio.

One definition for the whole package (numpy only, so the browser demo can use it too).

Returns are monthly: a mean and a volatility per period annualise by 12 and sqrt(12).
"""

from __future__ import annotations

import math

import numpy as np

PERIODS_PER_YEAR = 12
"""Return periods per year (monthly data)."""


def annualised_sharpe(net_returns: np.ndarray, axis: int = -1) -> np.ndarray:
    r"""Annualised Sharpe ratio along ``axis``.

    .. math::

        \mathrm{SR} = \sqrt{12}\;\frac{\operatorname{mean}_t(r_t)}{\operatorname{std}_t(r_t)}

    with the sample standard deviation (``ddof=1``); a zero volatility is floored at 1e-300
    rather than dividing by zero.
    """
    mean = net_returns.mean(axis=axis)
    std = net_returns.std(axis=axis, ddof=1)
    return math.sqrt(PERIODS_PER_YEAR) * mean / np.maximum(std, 1e-300)
