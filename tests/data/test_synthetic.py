from __future__ import annotations

import numpy as np
import pytest

from e2e_portfolio.data.synthetic import (
    PRICED_FACTORS,
    DGPParams,
    industry_blocks,
    simulate_universe,
)
from e2e_portfolio.exceptions import DataError


def test_shapes_and_labels():
    panel = simulate_universe(n_assets=15, n_months=30, seed=42, n_diversifying=3)
    assert panel.exposures.shape == (30, 15, 7)
    assert panel.returns.shape == (30, 15)
    assert panel.features[:4] == PRICED_FACTORS
    assert panel.features[4:] == ("diversifier_1", "diversifier_2", "diversifier_3")
    assert len(set(panel.assets)) == 15
    assert (panel.dates == panel.dates.to_period("M").to_timestamp("M")).all()
    x, y = panel.supervised_pairs()
    assert x.shape == (29, 15, 7) and y.shape == (29, 15)
    np.testing.assert_array_equal(y, panel.returns[1:])


def test_deterministic_under_seed():
    a = simulate_universe(n_assets=10, n_months=24, seed=42)
    b = simulate_universe(n_assets=10, n_months=24, seed=42)
    c = simulate_universe(n_assets=10, n_months=24, seed=43)
    assert a.equals(b)
    assert not np.array_equal(a.returns, c.returns)


def test_exposures_are_standardised_ar1():
    panel = simulate_universe(n_assets=200, n_months=240, seed=42)
    x = panel.exposures
    # unit-variance stationary AR(1): pooled mean ~ 0, variance ~ 1 (48k draws per feature,
    # but autocorrelated; 0.15 is many standard errors wide for phi <= 0.97 and T = 240)
    np.testing.assert_allclose(x.mean(axis=(0, 1)), 0.0, atol=0.15)
    np.testing.assert_allclose(x.var(axis=(0, 1)), 1.0, atol=0.15)
    lag1 = [np.corrcoef(x[1:, :, k].ravel(), x[:-1, :, k].ravel())[0, 1] for k in range(4)]
    np.testing.assert_allclose(lag1, DGPParams().persistence, atol=0.03)


def test_premia_and_interaction_recovered_by_regression():
    """Fama-MacBeth regressions of next-month returns on exposures recover the signs."""
    panel = simulate_universe(n_assets=100, n_months=480, seed=42)
    x, y = panel.supervised_pairs()
    design = np.concatenate([x, (x[..., 0] * x[..., 1])[..., None]], axis=-1)
    design = design - design.mean(axis=1, keepdims=True)  # month fixed effects
    target = y - y.mean(axis=1, keepdims=True)
    slopes = np.array(
        [np.linalg.lstsq(d, r, rcond=None)[0] for d, r in zip(design, target, strict=True)]
    )
    t_stats = slopes.mean(0) / (slopes.std(0, ddof=1) / np.sqrt(len(slopes)))
    priced, diversifiers, interaction = t_stats[:4], t_stats[4:6], t_stats[6]
    assert (priced > 2.0).all(), priced
    assert interaction > 3.0, interaction
    assert (np.abs(diversifiers) < 3.0).all(), diversifiers


def test_block_correlation():
    """Assets in one industry block co-move more than assets in different blocks."""
    params = DGPParams(assets_per_block=5, block_volatility=0.06)
    panel = simulate_universe(n_assets=20, n_months=600, seed=42, params=params)
    corr = np.corrcoef(panel.returns.T)
    off_diagonal = corr[~np.eye(20, dtype=bool)]
    # 4 blocks of 5: the top 20 % of pairs by correlation are the within-block pairs
    within = np.sort(off_diagonal)[-4 * 5 * 4 :]
    across = np.sort(off_diagonal)[: -4 * 5 * 4]
    assert within.mean() > across.mean() + 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_assets": 1}, r"n_assets: expected an integer >= 2, got 1"),
        ({"n_months": 1}, r"n_months: expected an integer >= 2, got 1"),
        ({"n_diversifying": -1}, r"n_diversifying: expected an integer >= 0, got -1"),
    ],
    ids=["one-asset", "one-month", "negative-diversifiers"],
)
def test_bad_sizes_raise(kwargs, match):
    with pytest.raises(DataError, match=match):
        simulate_universe(**kwargs)


def test_non_integer_size_raises_type_error():
    with pytest.raises(TypeError, match=r"n_assets: expected an int, got float"):
        simulate_universe(n_assets=10.0)


def test_synthetic_sectors_are_the_industry_blocks():
    panel = simulate_universe(n_assets=20, n_months=240, seed=3)
    assert panel.sectors is not None and len(set(panel.sectors)) == 3  # 8 assets per block
    blocks = industry_blocks(20, seed=3)
    assert panel.sectors == tuple(f"industry_{b}" for b in blocks)
    # assets of one block share its shocks: correlated beyond the market's common part
    residual = panel.returns - panel.returns.mean(axis=1, keepdims=True)
    corr = np.corrcoef(residual.T)
    same = blocks[:, None] == blocks[None, :]
    off = ~np.eye(20, dtype=bool)
    assert corr[same & off].mean() > corr[~same].mean() + 0.1
