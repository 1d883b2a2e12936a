from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.exceptions import DataError, NaNError


def _arrays(n_dates=5, n_assets=3, n_features=2):
    rng = np.random.default_rng(42)
    return dict(
        name="p",
        dates=pd.date_range("2001-01-31", periods=n_dates, freq="ME"),
        assets=tuple(f"a{i}" for i in range(n_assets)),
        features=tuple(f"f{k}" for k in range(n_features)),
        exposures=rng.standard_normal((n_dates, n_assets, n_features)),
        returns=rng.standard_normal((n_dates, n_assets)) * 0.05,
    )


def test_frame_round_trip(small_panel):
    frame = small_panel.to_frame()
    assert list(frame.columns) == [*small_panel.features, "return"]
    back = FactorPanel.from_frame(small_panel.name, frame, sectors=small_panel.sectors)
    assert back.equals(small_panel)
    # the frame holds values, not sectors: without them the panel differs in that alone
    plain = FactorPanel.from_frame(small_panel.name, frame)
    assert plain.sectors is None and not plain.equals(small_panel)
    shuffled = FactorPanel.from_frame("s", frame.sample(frac=1.0, random_state=42))
    assets = list(small_panel.assets)
    pd.testing.assert_frame_equal(shuffled.returns_frame()[assets], small_panel.returns_frame())


def test_arrays_are_read_only(small_panel):
    with pytest.raises(ValueError, match="read-only"):
        small_panel.returns[0, 0] = 1.0


def test_window(small_panel):
    sub = small_panel.window(3, 10)
    assert sub.n_dates == 7 and sub.dates[0] == small_panel.dates[3]
    np.testing.assert_array_equal(sub.exposures, small_panel.exposures[3:10])


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a: a["returns"].__setitem__((1, 1), np.nan), NaNError,
         r"returns: asset 'a1' has no return at \d{4}-\d\d-\d\d between its first"),
        (lambda a: a["returns"].__setitem__((slice(None), 2), np.nan), NaNError,
         r"returns: asset 'a2' has no return on any date"),
        (lambda a: a["exposures"].__setitem__((0, 0, 0), np.inf), NaNError,
         r"exposures: expected finite values or NaN \(unknown\), got inf"),
        (lambda a: a.update(dates=a["dates"][::-1]), DataError,
         r"dates: expected strictly increasing dates"),
        (lambda a: a.update(assets=("a0",), returns=a["returns"][:, :1],
                            exposures=a["exposures"][:, :1]), DataError,
         r"assets: expected at least 2, got 1"),
        (lambda a: a.update(assets=("x", "x", "y")), DataError,
         r"assets: expected unique names"),
        (lambda a: a.update(returns=a["returns"][:, :2]), DataError,
         r"returns: expected shape \(5, 3\), got \(5, 2\)"),
        (lambda a: a.update(name=""), DataError, r"name: expected a non-empty string"),
    ],
    ids=["gap-in-listing", "never-listed", "inf-exposure", "dates-out-of-order", "one-asset", "duplicate-assets",
         "returns-shape", "empty-name"],
)  # fmt: skip
def test_bad_panels_raise(change, error, match):
    arrays = _arrays()
    change(arrays)
    with pytest.raises(error, match=match):
        FactorPanel(**arrays)


def test_from_frame_needs_every_pair(small_panel):
    frame = small_panel.to_frame().iloc[1:]
    with pytest.raises(DataError, match=r"frame: expected one row per \(date, asset\) pair"):
        FactorPanel.from_frame("x", frame)


def test_late_listings_and_delistings_are_a_changing_universe():
    arrays = _arrays()
    arrays["returns"][:2, 0] = np.nan  # listed from the third date
    arrays["returns"][3:, 1] = np.nan  # delisted after the fourth
    panel = FactorPanel(**arrays)
    assert not panel.is_complete
    assert panel.listed[:, 0].tolist() == [False, False, True, True, True]
    assert panel.listed[:, 1].tolist() == [True, True, True, False, False]


def test_panels_own_contiguous_read_only_arrays_that_stay_so_when_pickled(small_panel):
    """A panel from a strided view (as a store's pivot gives) owns C-contiguous read-only
    arrays, and a copy sent to a worker process (pickled) is read-only too."""
    import pickle

    strided = np.asfortranarray(small_panel.returns)
    panel = FactorPanel(small_panel.name, small_panel.dates, small_panel.assets,
                        small_panel.features, small_panel.exposures[:, :, ::-1][:, :, ::-1],
                        strided)  # fmt: skip
    for copy in (panel, pickle.loads(pickle.dumps(panel))):
        for values in (copy.returns, copy.exposures):
            assert values.flags.c_contiguous and values.flags.owndata
            assert not values.flags.writeable
        assert copy.equals(panel)
    assert np.shares_memory(panel.returns, strided) is False
