"""Shrinkage families in factor form against the dense matrices they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.shrinkage_windows import ShrinkageWindows


def _dense_family(windows: np.ndarray, target: str, delta: float) -> np.ndarray:
    """(1 - delta) S + delta T per window, formed densely (S: ``1/W`` sample covariance)."""
    centred = windows - windows.mean(axis=1, keepdims=True)
    sample = np.einsum("swi,swj->sij", centred, centred) / windows.shape[1]
    variances = np.diagonal(sample, axis1=1, axis2=2)
    if target == "identity":
        level = variances.mean(axis=1)[:, None, None] * np.eye(windows.shape[2])
    else:
        level = variances[:, :, None] * np.eye(windows.shape[2])
    return (1 - delta) * sample + delta * level


@pytest.mark.parametrize("target", ["identity", "diagonal"])
@pytest.mark.parametrize("n_assets", [6, 30], ids=["N<W", "N>W"])
@pytest.mark.parametrize("delta", [0.0, 0.3, 1.0])
def test_factor_form_solves_equal_the_dense_ones(target, n_assets, delta):
    """Sigma(delta)^-1 b from the thin SVD against numpy on the dense matrix: its inverse, or
    at delta = 0 with more assets than months its pseudo-inverse (the sample covariance of
    W = 20 months has rank 19). Tolerance 1e-9 relative to the largest entry: the dense
    solves' rounding at condition numbers up to about 1e4."""
    rng = np.random.default_rng(42)
    windows = rng.standard_normal((3, 20, n_assets)) * rng.uniform(0.02, 0.1, n_assets)
    rhs = rng.standard_normal((3, n_assets))
    got = ShrinkageWindows.of(windows, target).solve(delta, rhs)  # type: ignore[arg-type]
    dense = _dense_family(windows, target, delta)
    solve = np.linalg.pinv if delta == 0 else np.linalg.inv
    expected = np.einsum("sij,sj->si", solve(dense), rhs)
    np.testing.assert_allclose(got, expected, atol=1e-9 * np.abs(expected).max())


def test_the_diagonal_target_needs_every_asset_to_vary():
    windows = np.random.default_rng(42).standard_normal((2, 20, 4))
    windows[1, :, 2] = 0.0
    with pytest.raises(DataError, match="target: 'diagonal' needs every asset to vary"):
        ShrinkageWindows.of(windows, "diagonal")
