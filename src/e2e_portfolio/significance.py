"""Significance of Sharpe-ratio differences.

Paired tests across seeds, the Jobson-Korkie-Memmel test on one history, Student-t
intervals; numpy and scipy only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from e2e_portfolio.annualisation import PERIODS_PER_YEAR


def t_half_width(values: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean; NaN below two values."""
    values = np.asarray(values, dtype=np.float64)
    count = values.size
    if count < 2:
        return float("nan")
    quantile = stats.t.ppf(0.5 + confidence / 2, count - 1)
    return float(quantile * values.std(ddof=1) / math.sqrt(count))


def paired_comparison(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Paired statistics of ``a - b`` across seeds.

    Returns the mean difference, its t-interval, the win rate (share of ``a > b``), and two
    two-sided p-values: Wilcoxon signed-rank and the exact sign test.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    count = diff.size
    mean = float(diff.mean())
    if count > 1 and diff.std(ddof=1) > 0:
        half = t_half_width(diff, confidence)
        wilcoxon = float(stats.wilcoxon(diff).pvalue)
    else:
        half, wilcoxon = float("nan"), float("nan")
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    sign = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {
        "mean": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "win_rate": wins / count,
        "p_wilcoxon": wilcoxon,
        "p_sign": sign,
    }


def sharpe_difference_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Jobson-Korkie test with Memmel's (2003) correction, for two strategies on one history.

    Works on per-period (not annualised) Sharpe ratios; returns the annualised difference,
    the z statistic and its two-sided p-value.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    count = a.size
    sr_a, sr_b = a.mean() / a.std(ddof=1), b.mean() / b.std(ddof=1)
    rho = float(np.corrcoef(a, b)[0, 1])
    variance = (2 - 2 * rho + 0.5 * (sr_a**2 + sr_b**2 - 2 * sr_a * sr_b * rho**2)) / count
    z = (sr_a - sr_b) / math.sqrt(max(variance, 1e-300))
    return {
        "difference": math.sqrt(PERIODS_PER_YEAR) * (sr_a - sr_b),
        "z": float(z),
        "p_value": float(2 * stats.norm.sf(abs(z))),
    }
