"""The decision-aware shrinkage estimator: scoring, its gradient, one decision's portfolios."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.covariance import OAS, LedoitWolf

from e2e_portfolio.data.synthetic import simulate_arrays
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import NonlinearShrinkage
from e2e_portfolio.models.decision_shrinkage import (
    METHODS,
    ScoringData,
    ShrinkageConfig,
    checked_arrays,
    scored_sharpe,
    shrinkage_portfolios,
)
from e2e_portfolio.models.shrinkage_windows import ShrinkageWindows


def _scoring_block(seed=42, months=12, n=6, k=3, window=20):
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal((months, window, n)) * rng.uniform(0.02, 0.1, n)
    design = np.concatenate([np.ones((months, n, 1)), rng.standard_normal((months, n, k))], -1)
    return ScoringData(design, ShrinkageWindows.of(windows, "diagonal"),
                       0.05 * rng.standard_normal((months, n)))  # fmt: skip


@pytest.mark.parametrize("tc", [0.0, 0.002, 0.05])
@pytest.mark.parametrize("n", [6, 30], ids=["N<W", "N>W"])
def test_scored_sharpe_gradient_matches_finite_differences(tc, n):
    data = _scoring_block(n=n)
    theta = np.array([0.001, 0.004, -0.002, 0.003])
    delta = 0.37
    _, d_theta, d_delta = scored_sharpe(theta, delta, data, tc)
    eps = 1e-7
    numeric_theta = np.array([
        (scored_sharpe(theta + eps * e, delta, data, tc)[0]
         - scored_sharpe(theta - eps * e, delta, data, tc)[0]) / (2 * eps)
        for e in np.eye(4)
    ])  # fmt: skip
    numeric_delta = (
        scored_sharpe(theta, delta + eps, data, tc)[0]
        - scored_sharpe(theta, delta - eps, data, tc)[0]
    ) / (2 * eps)
    np.testing.assert_allclose(d_theta, numeric_theta, rtol=1e-5, atol=1e-6)
    assert d_delta == pytest.approx(numeric_delta, rel=1e-5, abs=1e-6)


def test_one_decision_against_a_direct_computation():
    """The decision-aware delta is the grid point with the best scored Sharpe, recomputed
    here month by month with numpy's covariance and an explicit drift loop; Ledoit-Wolf's
    delta is scikit-learn's. Tolerances: rounding (1e-10 relative)."""
    exposures, returns = simulate_arrays(n_assets=8, n_months=50, seed=42)
    config = ShrinkageConfig(window=20, score_months=12, tc=0.01, n_deltas=11)
    t = 40
    chosen = shrinkage_portfolios(returns[: t + 1], exposures[: t + 1], config)
    design = np.concatenate([np.ones((*exposures.shape[:2], 1)), exposures], axis=-1)
    x, y = design[:t].reshape(-1, design.shape[-1]), returns[1 : t + 1].reshape(-1)
    theta = np.linalg.lstsq(x, y, rcond=None)[0]

    def portfolio(s, delta):
        sample = np.cov(returns[s - config.window + 1 : s + 1], rowvar=False, ddof=0)
        target = np.trace(sample) / sample.shape[0] * np.eye(sample.shape[0])
        v = np.linalg.solve((1 - delta) * sample + delta * target, design[s] @ theta)
        return v / np.abs(v).sum()

    def scored(delta):
        net, previous = [], None
        for s in range(t - config.score_months, t):
            w, r = portfolio(s, delta), returns[s + 1]
            cost = 0.0 if previous is None else config.tc * np.abs(w - previous).sum()
            net.append(w @ r - cost)
            previous = w * (1 + r) / (1 + w @ r)
        return np.mean(net) / np.std(net, ddof=1)

    best = config.deltas[np.argmax([scored(d) for d in config.deltas])]
    assert chosen["decision_aware"][1] == best
    np.testing.assert_allclose(chosen["decision_aware"][0], portfolio(t, best), rtol=1e-10)
    np.testing.assert_allclose(chosen["plug_in"][0], portfolio(t, 0.0), rtol=1e-10)
    lw = LedoitWolf().fit(returns[t - config.window + 1 : t + 1]).shrinkage_
    assert chosen["ledoit_wolf"][1] == pytest.approx(lw, rel=1e-10)
    np.testing.assert_allclose(chosen["ledoit_wolf"][0], portfolio(t, lw), rtol=1e-8)
    assert set(chosen) == set(METHODS)


def test_oas_and_nonlinear_portfolios():
    """OAS: scikit-learn's intensity toward the same scaled identity; nonlinear: the direction
    through Ledoit-Wolf (2020)'s covariance; both with the OLS head of the other methods."""
    exposures, returns = simulate_arrays(n_assets=8, n_months=50, seed=42)
    config = ShrinkageConfig(window=20, score_months=12, baselines=("oas", "nonlinear"))
    t = 40
    chosen = shrinkage_portfolios(returns[: t + 1], exposures[: t + 1], config)
    assert tuple(chosen) == ("plug_in", "ledoit_wolf", "decision_aware", "oas", "nonlinear")
    window = returns[t - 19 : t + 1]
    assert chosen["oas"][1] == pytest.approx(OAS().fit(window).shrinkage_, rel=1e-10)
    design = np.concatenate([np.ones((8, 1)), exposures[t]], axis=-1)
    flat = np.concatenate([np.ones((*exposures.shape[:2], 1)), exposures], axis=-1)
    theta = np.linalg.lstsq(flat[:t].reshape(-1, flat.shape[-1]), returns[1 : t + 1].reshape(-1),
                            rcond=None)[0]  # fmt: skip
    direction = np.linalg.solve(NonlinearShrinkage()(window).dense(), design @ theta)
    np.testing.assert_allclose(chosen["nonlinear"][0], direction / np.abs(direction).sum(),
                               rtol=1e-8)  # fmt: skip
    assert np.isnan(chosen["nonlinear"][1])


def test_more_assets_than_months():
    """N = 30 > W = 20: the plug-in is the pseudo-inverse direction (the sample covariance
    is singular), the shrunk methods invert their full-rank covariances; every portfolio is
    finite at unit gross leverage."""
    exposures, returns = simulate_arrays(n_assets=30, n_months=50, seed=42)
    config = ShrinkageConfig(window=20, score_months=12, baselines=("oas", "nonlinear"))
    t = 40
    chosen = shrinkage_portfolios(returns[: t + 1], exposures[: t + 1], config)
    window = returns[t - 19 : t + 1]
    flat = np.concatenate([np.ones((*exposures.shape[:2], 1)), exposures], axis=-1)
    theta = np.linalg.lstsq(flat[:t].reshape(-1, flat.shape[-1]), returns[1 : t + 1].reshape(-1),
                            rcond=None)[0]  # fmt: skip
    sample = np.cov(window, rowvar=False, ddof=0)
    assert np.linalg.matrix_rank(sample) == 19
    direction = np.linalg.pinv(sample) @ (flat[t] @ theta)
    np.testing.assert_allclose(chosen["plug_in"][0], direction / np.abs(direction).sum(),
                               atol=1e-9)  # fmt: skip
    for method, (weights, _) in chosen.items():
        assert np.isfinite(weights).all() and np.abs(weights).sum() == pytest.approx(1.0), method


def test_one_decision_needs_enough_months():
    exposures, returns = simulate_arrays(n_assets=8, n_months=50, seed=42)
    config = ShrinkageConfig(window=20, score_months=12)
    with pytest.raises(DataError, match=r"returns: expected at least window \+ score_months = 32"):
        shrinkage_portfolios(returns[:31], exposures[:31], config)


def test_windows_from_twelve_months_for_any_number_of_assets():
    ShrinkageConfig(window=12).validate(n_assets=500, n_months=40)
    with pytest.raises(DataError, match=r"window: expected at least 12 months, got 11"):
        ShrinkageConfig(window=11).validate(n_assets=5, n_months=40)


def test_bad_arrays():
    exposures, returns = simulate_arrays(n_assets=5, n_months=60, seed=1)
    returns[3, 1] = np.nan
    with pytest.raises(DataError, match="expected finite values"):
        checked_arrays(returns, exposures)
    with pytest.raises(DataError, match=r"exposures: expected shape"):
        checked_arrays(returns[:, :4], exposures)


def test_module_imports_without_torch_or_pandas():
    code = (
        "import sys; import e2e_portfolio.models.decision_shrinkage as m; "
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, "
        "sorted(k for k in sys.modules if k in ('torch', 'pandas'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
