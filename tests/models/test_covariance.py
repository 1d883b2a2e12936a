"""Covariance estimators against independent references (scikit-learn, nonlinshrink)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import OAS

from e2e_portfolio.models.covariance import nonlinear_shrinkage, oas_delta, sample_covariance


def _returns(n_samples: int, n_assets: int, rng: np.random.Generator) -> np.ndarray:
    return (
        rng.standard_normal((n_samples, n_assets)) @ np.diag(np.linspace(0.5, 2, n_assets)) * 0.05
    )


def test_oas_matches_scikit_learn():
    rng = np.random.default_rng(42)
    for shape in ((48, 40), (120, 10), (30, 50)):
        x = _returns(*shape, rng)
        assert oas_delta(x) == pytest.approx(OAS().fit(x).shrinkage_, rel=1e-12)


def test_nonlinear_shrinkage_matches_an_independent_implementation():
    """Reference values from ``nonlinshrink`` 0.7 (``shrink_cov``, a Python port of the
    authors' Matlab code), computed once on the same seeded data: the smallest and largest
    eigenvalue, the trace and two entries. Both regimes: p < n (48 x 40) and p > n (30 x 50,
    where the p - n null eigenvalues get eq. C.5). Tolerance 1e-9 relative: the two differ in
    the order of floating-point operations only (measured 3e-11)."""
    rng = np.random.default_rng(42)
    references = {
        (48, 40): [0.000484922220145, 0.01053097051, 0.180871570644, 0.00215613890448,
                   -0.000300079972418],
        (30, 50): [0.00299154632035, 0.0106852377159, 0.217610630984, 0.00319468726538,
                   -7.54035358648e-06],
    }  # fmt: skip
    for shape, expected in references.items():
        shrunk = nonlinear_shrinkage(_returns(*shape, rng))
        eigenvalues = np.linalg.eigvalsh(shrunk)
        got = [eigenvalues[0], eigenvalues[-1], np.trace(shrunk), shrunk[0, 0], shrunk[0, 1]]
        np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_nonlinear_shrinkage_pulls_a_spread_spectrum_together():
    """Population identity, p / n = 0.5: sample eigenvalues spread over the Marchenko-Pastur
    support (about 0.09 to 2.9); the shrunk ones stay near 1, keep the eigenvectors and the
    ordering, and the matrix is symmetric positive definite."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((201, 100))
    sample = np.linalg.eigvalsh(sample_covariance(x))
    shrunk = nonlinear_shrinkage(x)
    eigenvalues = np.linalg.eigvalsh(shrunk)
    np.testing.assert_allclose(shrunk, shrunk.T, atol=1e-15)
    assert sample.max() / sample.min() > 10
    assert eigenvalues.min() > 0.5 and eigenvalues.max() < 1.6
    assert np.abs(eigenvalues - 1).mean() < 0.5 * np.abs(sample - 1).mean()
    with pytest.raises(ValueError, match="window_returns: expected at least 13 observations"):
        nonlinear_shrinkage(x[:12])
