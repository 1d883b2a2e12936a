"""Significance of Sharpe-ratio differences.

Paired tests across seeds; on one history the Jobson-Korkie-Memmel test and the studentised
circular block bootstrap of Ledoit & Wolf (2008); Student-t intervals; Holm's adjustment for a
family of tests. Numpy and scipy only.
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


def holm(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjustment of a family of p-values (same order as given).

    Sort ascending, ``p_(i) * (m - i)`` for ``i = 0..m-1``, running maximum, capped at 1; NaN
    p-values stay NaN and do not count in ``m``. Controls the family-wise error rate under
    any dependence between the tests.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def _sharpe_moments(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Per-period Sharpe difference, its gradient and the centred moments (T, 4).

    The gradient is in (mu_a, mu_b, E a^2, E b^2) (Ledoit & Wolf 2008, section 3.1).
    """
    mu_a, mu_b = a.mean(), b.mean()
    g_a, g_b = (a * a).mean(), (b * b).mean()
    var_a, var_b = g_a - mu_a**2, g_b - mu_b**2
    difference = mu_a / math.sqrt(var_a) - mu_b / math.sqrt(var_b)
    gradient = np.array([
        g_a / var_a**1.5, -g_b / var_b**1.5, -mu_a / (2 * var_a**1.5), mu_b / (2 * var_b**1.5)
    ])  # fmt: skip
    centred = np.stack([a - mu_a, b - mu_b, a * a - g_a, b * b - g_b], axis=1)
    return float(difference), gradient, centred


def _newey_west(centred: np.ndarray, lags: int) -> np.ndarray:
    """Bartlett-kernel (Newey-West) long-run covariance of a centred (T, k) series."""
    count = centred.shape[0]
    psi = centred.T @ centred / count
    for lag in range(1, lags + 1):
        gamma = centred[lag:].T @ centred[:-lag] / count
        psi += (1 - lag / (lags + 1)) * (gamma + gamma.T)
    return psi


def block_bootstrap_sharpe_test(
    a: np.ndarray,
    b: np.ndarray,
    block: int = 6,
    n_boot: int = 4999,
    seed: int = 42,
) -> dict[str, float]:
    """Studentised circular block bootstrap test of equal Sharpe ratios (Ledoit & Wolf, 2008).

    For two strategies on one history, robust to autocorrelation, heavy tails and
    heteroskedasticity. The statistic is the per-period Sharpe difference over its standard
    error by the delta method; the original standard error uses a Newey-West long-run
    covariance with ``block - 1`` lags, each bootstrap one the block-based estimator of Götze
    and Künsch (1996) that Ledoit and Wolf use. The p-value counts bootstrap statistics
    ``|d* - d| / se*`` at least ``|d| / se``: ``(count + 1) / (n_boot + 1)``.

    Parameters
    ----------
    a, b : ndarray, (T,)
        Per-period returns of the two strategies on the same dates.
    block : int
        Block length in periods (Ledoit and Wolf find 4-8 suitable for monthly data).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict
        ``difference`` (annualised), ``se`` (annualised), ``p_value``, ``block``, ``n_boot``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    count = a.size
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a, b: expected two series of the same length, got {a.shape}, {b.shape}")
    if not 1 <= block <= count // 2:
        raise ValueError(f"block: expected between 1 and T/2 = {count // 2}, got {block}")
    difference, gradient, centred = _sharpe_moments(a, b)
    se = math.sqrt(max(gradient @ _newey_west(centred, block - 1) @ gradient, 0.0) / count)
    if se == 0.0:
        return {"difference": 0.0, "se": 0.0, "p_value": 1.0, "block": block, "n_boot": n_boot}
    n_blocks = -(-count // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, count, size=(n_boot, n_blocks))
    index = ((starts[:, :, None] + np.arange(block)) % count).reshape(n_boot, -1)[:, :count]
    exceed = 0
    observed = abs(difference) / se
    usable = (count // block) * block  # whole blocks for the block-based covariance
    for rows in index:
        star_a, star_b = a[rows], b[rows]
        d_star, g_star, c_star = _sharpe_moments(star_a, star_b)
        sums = c_star[:usable].reshape(-1, block, 4).sum(axis=1) / math.sqrt(block)
        psi_star = sums.T @ sums / sums.shape[0]
        se_star = math.sqrt(max(g_star @ psi_star @ g_star, 1e-300) / count)
        exceed += abs(d_star - difference) / se_star >= observed
    annual = math.sqrt(PERIODS_PER_YEAR)
    return {
        "difference": annual * difference,
        "se": annual * se,
        "p_value": (exceed + 1) / (n_boot + 1),
        "block": block,
        "n_boot": n_boot,
    }
