"""Paired tests across seeds and the Jobson-Korkie-Memmel test, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_portfolio.significance import (
    block_bootstrap_sharpe_test,
    holm,
    paired_comparison,
    sharpe_difference_test,
)


def test_paired_comparison_when_every_seed_wins():
    """Differences 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764; five wins of five give
    an exact two-sided sign-test and Wilcoxon p of 2 / 2^5 = 0.0625."""
    result = paired_comparison(np.arange(1.0, 6.0), np.zeros(5))
    half = 2.7764451051977987 * np.sqrt(2.5) / np.sqrt(5)
    assert result == pytest.approx({"mean": 3.0, "ci_low": 3.0 - half, "ci_high": 3.0 + half,
                                    "win_rate": 1.0, "p_wilcoxon": 0.0625, "p_sign": 0.0625})  # fmt: skip


def test_paired_comparison_closed_form():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = np.array([0.5, 2.5, 2.0, 3.0, 4.0])
    result = paired_comparison(a, b)
    diff = a - b
    assert result["mean"] == pytest.approx(diff.mean())
    assert result["win_rate"] == pytest.approx(0.8)
    half = 2.776445105 * diff.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert result["ci_high"] - result["mean"] == pytest.approx(half, rel=1e-6)
    assert result["p_sign"] == pytest.approx(0.375)  # 4 wins of 5: 2 * P(X >= 4)


def test_jobson_korkie_memmel():
    rng = np.random.default_rng(42)
    a = rng.normal(0.01, 0.04, 240)
    same = sharpe_difference_test(a, a)
    assert same["difference"] == 0 and same["p_value"] == pytest.approx(1.0)
    better = sharpe_difference_test(a + 0.01, a)
    assert better["difference"] > 0 and better["p_value"] < 0.05


def test_holm_closed_form():
    """m = 4 finite p-values: 0.01 * 4 = 0.04, 0.03 * 3 = 0.09, max(0.04 * 2, 0.09) = 0.09,
    0.5 * 1 = 0.5; NaN stays NaN and does not count."""
    adjusted = holm([0.01, 0.04, 0.03, np.nan, 0.5])
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, np.nan, 0.5])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # capped at 1
    assert holm([]).size == 0


def test_block_bootstrap_agrees_with_jkm_on_iid_data_and_is_wider_on_dependent_data():
    """On i.i.d. normal returns the bootstrap and Jobson-Korkie-Memmel p-values agree
    roughly (both test the same null; 0.1 absolute covers the bootstrap's Monte Carlo error
    with 1999 draws and the difference of the two standard errors); on returns with strongly
    autocorrelated Sharpe differences the bootstrap's standard error is larger."""
    rng = np.random.default_rng(42)
    a = rng.normal(0.01, 0.04, 360)
    b = 0.5 * a + rng.normal(0.004, 0.035, 360)
    boot = block_bootstrap_sharpe_test(a, b, n_boot=1999)
    jkm = sharpe_difference_test(a, b)
    assert boot["difference"] == pytest.approx(jkm["difference"], rel=0.01)
    assert abs(boot["p_value"] - jkm["p_value"]) < 0.1
    # identical series: no difference at all
    assert block_bootstrap_sharpe_test(a, a)["p_value"] == 1.0
    # persistent regimes in the difference: a moving average of shocks over 12 months
    shocks = rng.normal(0, 0.02, 372)
    persistent = np.convolve(shocks, np.ones(12) / np.sqrt(12), mode="valid")[:360]
    c = b + persistent
    iid_se = abs(sharpe_difference_test(a, c)["difference"] / sharpe_difference_test(a, c)["z"])
    assert block_bootstrap_sharpe_test(a, c, block=12)["se"] > 1.2 * iid_se


def test_block_bootstrap_detects_a_clear_difference_and_checks_its_input():
    rng = np.random.default_rng(42)
    a = rng.normal(0.02, 0.04, 240)
    b = rng.normal(0.0, 0.04, 240)
    assert block_bootstrap_sharpe_test(a, b, n_boot=999)["p_value"] < 0.01
    with pytest.raises(ValueError, match=r"block: expected between 1 and T/2 = 120, got 200"):
        block_bootstrap_sharpe_test(a, b, block=200)
    with pytest.raises(ValueError, match=r"a, b: expected two series of the same length"):
        block_bootstrap_sharpe_test(a, b[:10])
