from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.backtest.arm_specs import Arm
from e2e_portfolio.backtest.arms import ArmSet
from e2e_portfolio.backtest.strategies import MinimumVariance, equal_weight
from e2e_portfolio.backtest.walkforward import backtest, declare, past_view, run_comparison
from e2e_portfolio.data.datasets import french_excess_returns
from e2e_portfolio.data.features import build_features
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.exceptions import DataError, StrategyError
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.train import TrainConfig


def test_dgu_table_3_monthly_sharpe():
    """DeMiguel, Garlappi & Uppal (2009, RFS) Table 3, MKT/SMB/HML excess returns.

    120-month rolling window, out of sample 1973-07 .. 2004-11: 1/N 0.2240 and (sample)
    minimum variance 0.2493, monthly Sharpe ratios. Our French data is a later vintage of
    the same series, hence the tolerance of 0.015 (we measure 0.2351 and 0.2551).
    """
    returns = french_excess_returns("factors")
    panel = FactorPanel(
        name="ff3", dates=returns.index, assets=tuple(returns.columns), features=("none",),
        exposures=np.zeros((len(returns), 3, 1)), returns=returns.to_numpy(),
    )  # fmt: skip
    start = panel.dates.get_loc(pd.Timestamp("1973-06-30"))  # decides for 1973-07
    end = panel.dates.get_loc(pd.Timestamp("2004-11-30"))
    sub = panel.window(0, end + 1)
    results = run_comparison(
        sub, {"1/N": equal_weight, "min variance": MinimumVariance(window=120)}, start=start
    ).results
    assert results["1/N"].dates[0] == pd.Timestamp("1973-07-31")
    assert results["1/N"].dates[-1] == pd.Timestamp("2004-11-30")
    monthly = {k: r.net_returns.mean() / r.net_returns.std(ddof=1) for k, r in results.items()}
    assert monthly["1/N"] == pytest.approx(0.2240, abs=0.015)
    assert monthly["min variance"] == pytest.approx(0.2493, abs=0.015)


def test_views_hold_only_the_past(small_panel):
    view = past_view(small_panel, 10)
    assert view.returns.shape == (11, 12) and view.dates[-1] == small_panel.dates[10]
    with pytest.raises(ValueError, match="read-only"):
        view.returns[-1, 0] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        view.exposures[0, 0, 0] = 0.0


def test_look_ahead_is_impossible(small_panel):
    """A strategy's decisions up to t are unchanged when everything after t changes."""
    seen = []

    def spy(view):
        seen.append(len(view.returns))
        return np.argsort(np.argsort(view.returns[-3:].sum(0))) / 66.0

    first = backtest(small_panel, spy, start=5)
    changed_returns = small_panel.returns.copy()
    changed_returns[20:] = -changed_returns[20:]
    changed = FactorPanel(
        small_panel.name, small_panel.dates, small_panel.assets, small_panel.features,
        small_panel.exposures, changed_returns,
    )  # fmt: skip
    second = backtest(changed, spy, start=5)
    decided_before = 20 - 5  # decisions at t = 5 .. 19 saw only months <= 19
    np.testing.assert_array_equal(first.weights[:decided_before], second.weights[:decided_before])
    assert seen[0] == 6 and max(seen) == small_panel.n_dates - 1


def test_costs_and_drift(small_panel):
    result = backtest(small_panel, equal_weight, start=3, tc=0.01)
    gross = small_panel.returns[4:].mean(axis=1)
    # first decision trades from cash: turnover 1
    assert result.turnover[0] == pytest.approx(1.0)
    np.testing.assert_allclose(result.net_returns, gross - 0.01 * result.turnover)
    # rebalancing 1/N after drift costs something every month
    assert (result.turnover[1:] > 0).all()


def test_user_strategy_is_a_plain_callable(small_panel):
    def momentum(view):
        score = view.trailing_returns(3).sum(axis=0)
        w = np.maximum(score, 0)
        return w / w.sum() if w.sum() > 0 else np.full(view.n_assets, 1 / view.n_assets)

    result = backtest(small_panel, momentum, start=6, tc=0.001, name="momentum")
    assert result.stats.n_periods == small_panel.n_dates - 7
    assert result.name == "momentum"


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.ones(3), r"expected weights of shape \(12,\), got shape \(3,\)"),
        (np.r_[np.nan, np.full(11, 1 / 11)], r"expected finite weights, got nan for asset 0"),
        (np.r_[-0.1, np.full(11, 1.1 / 11)], r"expected weights >= 0 .* got -0.1 for asset 0"),
        (np.full(12, 0.25), r"expected weights summing to 1 .* got 3"),
        (np.zeros(12), r"expected weights summing to 1 .* got 0"),
    ],
    ids=["shape", "nan", "short", "sum-3", "sum-0"],
)
def test_bad_strategy_output_is_named_with_its_date(small_panel, weights, match):
    with pytest.raises(StrategyError, match=r"broken: at 2000-06: " + match):
        backtest(small_panel, lambda view: weights, start=5, name="broken")


def test_declared_shorts_and_leverage_pass(small_panel):
    long_short = np.r_[0.6, -0.4, np.zeros(10)]  # unit gross, sum 0.2
    result = backtest(small_panel, declare(lambda view: long_short, short=True, leverage=True),
                      start=5)  # fmt: skip
    np.testing.assert_array_equal(result.weights[0], long_short)


def test_a_failing_strategy_is_reported_and_the_others_kept(small_panel):
    def fragile(view):
        if len(view.dates) > 8:
            raise RuntimeError("no data for this month")
        return equal_weight(view)

    comparison = run_comparison(small_panel, {"1/N": equal_weight, "fragile": fragile}, start=5)
    assert set(comparison.results) == {"1/N"}
    error = comparison.failures["fragile"]
    assert "fragile: at 2000-09: RuntimeError: no data for this month" in str(error)
    with pytest.raises(StrategyError, match="every strategy failed"):
        run_comparison(small_panel, {"fragile": fragile}, start=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tc": -0.1}, r"tc: expected a finite cost >= 0, got -0.1"),
     ({"start": 0}, r"start: expected in \[1, 34\], got 0")],
    ids=["negative-tc", "start"],
)  # fmt: skip
def test_bad_backtest_options(small_panel, kwargs, match):
    arguments = {"start": 5, **kwargs}
    with pytest.raises(DataError, match=match):
        backtest(small_panel, equal_weight, **arguments)


def test_comparison_frames_and_e2e_weights_respect_cap(small_panel):
    arms = ArmSet(PortfolioConfig(w_max=0.2), TrainConfig(epochs=3), first_decision=24,
                  window=24, refit_every=12)  # fmt: skip
    comparison = run_comparison(
        small_panel, {"1/N": equal_weight, **arms.strategies(["plug_in", "e2e"])},
        start=24, tc=0.005,
    )  # fmt: skip
    weights = comparison.results["e2e"].weights
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-9)
    assert weights.min() >= -1e-9 and weights.max() <= 0.2 + 1e-9
    stats = comparison.stats_frame()
    assert list(stats.index) == ["1/N", "plug_in", "e2e"]
    assert len(comparison.series_frame()) == 3 * 11
    long = comparison.weights_frame()
    assert len(long) == 3 * 11 * 12 and set(long.columns) == {"strategy", "date", "asset", "weight"}


def test_minimum_variance_closed_form_and_the_long_only_arm(small_panel):
    """The closed form equals Sigma^-1 1 / 1' Sigma^-1 1 for the sample and Ledoit-Wolf
    covariances (scikit-learn's); the long-only arm is long only."""
    from sklearn.covariance import LedoitWolf

    view = past_view(small_panel, 30)
    past = small_panel.returns[7:31]
    for estimator, sigma in (("sample", np.cov(past, rowvar=False)),
                             ("ledoit_wolf", LedoitWolf().fit(past).covariance_)):  # fmt: skip
        direction = np.linalg.solve(sigma, np.ones(12))
        closed = MinimumVariance(window=24, estimator=estimator)(view)
        np.testing.assert_allclose(closed, direction / direction.sum(), rtol=1e-9)
    arms = ArmSet(PortfolioConfig(), TrainConfig(), first_decision=30, window=24)
    long_only = arms.weights("min_variance", view)
    assert long_only.min() >= -1e-9 and long_only.sum() == pytest.approx(1.0)


def test_sample_covariance_with_fewer_months_than_assets_is_solved(small_panel):
    """N > T: the sample covariance is singular; in factor form (rank 7) it goes to the layer
    as is (plug-in and long-only minimum variance), and the closed form uses its span."""
    view = past_view(small_panel, 30)  # 12 assets
    arms = ArmSet(PortfolioConfig(), TrainConfig(epochs=1), first_decision=30, window=8)
    sample_min_variance = Arm("sample_min_variance", "zero", "sample", tune_gamma=False)
    for arm in ("plug_in", sample_min_variance):
        weights = arms.weights(arm, view)
        assert weights.min() >= -1e-12 and weights.sum() == pytest.approx(1.0, abs=1e-12)
    closed = MinimumVariance(window=8)(view)
    assert np.isfinite(closed).all() and closed.sum() == pytest.approx(1.0)


def test_features_of_real_history_feed_the_engine():
    returns = french_excess_returns("industries").iloc[:120]
    panel = build_features(returns, name="ind")
    result = backtest(panel, MinimumVariance(window=24), start=30)
    assert np.isfinite(result.net_returns).all()


def _changing_panel() -> FactorPanel:
    """Three assets: a0 always listed, a1 listed from 2000-04, a2 delisted after 2000-07."""
    rng = np.random.default_rng(42)
    returns = rng.normal(0.01, 0.05, (12, 3))
    returns[:3, 1] = np.nan
    returns[7:, 2] = np.nan
    return FactorPanel(name="changing", dates=pd.date_range("2000-01-31", periods=12, freq="ME"),
                       assets=("a0", "a1", "a2"), features=("x",),
                       exposures=np.zeros((12, 3, 1)), returns=returns)  # fmt: skip


def test_delisting_earns_zero_then_leaves_the_book():
    """Held over the month it delists, a2 earns 0; the next decision starts with it as cash."""
    panel = _changing_panel()
    seen = []

    def hold_a2(view):
        seen.append(view.holdings)
        return np.array([0.0, 0.0, 1.0]) if view.listed_now[2] else equal_weight(view)

    result = backtest(panel, hold_a2, start=5)
    # decision at 2000-07 (a2's last listed month) earns 2000-08, where a2 has no return
    assert result.dates[1] == pd.Timestamp("2000-08-31") and result.net_returns[1] == 0.0
    np.testing.assert_array_equal(seen[2], [0.0, 0.0, 0.0])  # a2 left the book as cash
    assert result.turnover[2] == pytest.approx(1.0)  # buying the new book from cash
    np.testing.assert_allclose(result.weights[2], [0.5, 0.5, 0.0])  # equal weight of listed


def test_weights_on_an_unlisted_asset_are_refused():
    with pytest.raises(StrategyError, match=r"expected no weight on 'a1' \(not listed then\)"):
        backtest(_changing_panel(), lambda view: np.full(3, 1 / 3), start=1, name="all")


def test_estimators_use_the_assets_with_a_full_window():
    panel = _changing_panel()
    view = past_view(panel, 8)  # a1 listed for 6 months, a2 gone
    assert view.with_history(4).tolist() == [True, True, False]
    assert view.with_history(8).tolist() == [True, False, False]
    weights = ArmSet(PortfolioConfig(), TrainConfig(), first_decision=8,
                     window=4).weights("min_variance", view)  # fmt: skip
    assert weights[2] == 0 and weights.sum() == pytest.approx(1.0)
    with pytest.raises(DataError, match=r"window: expected at least 2 assets with 8 months"):
        MinimumVariance(window=8)(view)
