from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.features import FEATURES, build_features
from e2e_portfolio.exceptions import DataError, NaNError


@pytest.fixture
def history() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    dates = pd.date_range("2000-01-31", periods=80, freq="ME")
    return pd.DataFrame(rng.normal(0.01, 0.05, (80, 6)), index=dates, columns=list("ABCDEF"))


def test_shapes_and_warm_up(history):
    panel = build_features(history, name="h", window=12, beta_window=24)
    assert panel.features == FEATURES
    assert panel.n_dates == 80 - 23 and panel.dates[0] == history.index[23]
    np.testing.assert_array_equal(panel.returns, history.iloc[23:].to_numpy())


def test_features_are_cross_sectional_z_scores(history):
    panel = build_features(history, name="h")
    np.testing.assert_allclose(panel.exposures.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(panel.exposures.std(axis=1), 1.0, atol=1e-12)


def test_definitions_match_direct_computation(history):
    """Raw features before z-scoring, recomputed by hand at one date."""
    panel = build_features(history, name="h", window=12, beta_window=24)
    t = history.index.get_loc(panel.dates[10])
    r = history.to_numpy()
    momentum = np.prod(1 + r[t - 11 : t], axis=0) - 1
    volatility = r[t - 11 : t + 1].std(axis=0, ddof=1)
    market = r[t - 23 : t + 1].mean(axis=1)
    beta = [np.cov(r[t - 23 : t + 1, j], market)[0, 1] / market.var(ddof=1) for j in range(6)]

    def z(v):
        v = np.asarray(v)
        return (v - v.mean()) / v.std()

    for k, raw in enumerate([momentum, r[t], volatility, beta]):
        np.testing.assert_allclose(panel.exposures[10, :, k], z(raw), atol=1e-10)


@pytest.mark.parametrize("cut", [40, 60, 78])
def test_features_at_t_use_nothing_after_t(history, cut):
    """Changing every return after date `cut` leaves all exposures up to `cut` unchanged."""
    original = build_features(history, name="h")
    future_changed = history.copy()
    future_changed.iloc[cut + 1 :] = np.random.default_rng(0).normal(0, 0.1, size=(79 - cut, 6))
    changed = build_features(future_changed, name="h")
    upto = original.dates.get_loc(history.index[cut]) + 1
    np.testing.assert_array_equal(original.exposures[:upto], changed.exposures[:upto])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda h: h.iloc[::-1], DataError, "returns: expected strictly increasing dates"),
        (
            lambda h: h.assign(A=h["A"].where(h.index != h.index[5])),
            NaNError,
            "returns: asset 'A' has no return at .* between its first",
        ),
        (lambda h: h.assign(B=-1.5), DataError, r"returns: expected simple returns > -1"),
        (lambda h: h.iloc[:, :1], DataError, "returns: expected at least 2 assets, got 1"),
        (lambda h: h.iloc[:20], DataError, r"returns: expected more than 37 dates"),
        (lambda h: h.reset_index(drop=True), DataError, "returns: expected a DatetimeIndex"),
        (
            lambda h: h.set_axis(pd.bdate_range("2000-01-03", periods=len(h))),
            DataError,
            r"returns: expected monthly dates, got a median spacing of 1.0 days",
        ),
    ],
    ids=["unsorted", "nan", "below-minus-one", "one-asset", "too-short", "no-dates", "daily"],
)
def test_bad_histories_raise(history, change, error, match):
    with pytest.raises(error, match=match):
        build_features(change(history), name="h")


def test_bad_window_raises(history):
    with pytest.raises(DataError, match=r"window: expected an integer >= 3, got 2"):
        build_features(history, name="h", window=2)


def test_a_changing_universe_gets_features_once_it_has_the_history(history):
    """Asset A lists 20 months late and B delists 15 months early: their features are NaN
    until the windows fill (and after B leaves), z-scores run over the others."""
    changing = history.copy()
    changing.iloc[:20, 0] = np.nan
    changing.iloc[-15:, 1] = np.nan
    panel = build_features(changing, name="h")
    a = panel.exposures[:, 0, :]
    first_full = changing.index[20 + 36 - 1]  # 36-month beta window after listing
    assert np.isnan(a[panel.dates < first_full]).any(axis=1).all()
    assert np.isfinite(a[panel.dates >= first_full]).all()
    assert np.isnan(panel.returns[-15:, 1]).all() and np.isnan(panel.exposures[-15:, 1]).all()
    listed = panel.listed[:, 2:]
    z = panel.exposures[:, 2:, 0][listed.all(axis=1)]
    assert np.isfinite(z).all()
