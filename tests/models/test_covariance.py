"""Risk models in factor form against independent references (scikit-learn, nonlinshrink)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import OAS as SklearnOAS
from sklearn.covariance import LedoitWolf as SklearnLedoitWolf

from e2e_portfolio.models.covariance import (
    OAS,
    RISK_MODELS,
    FactorCovariance,
    LedoitWolf,
    NonlinearShrinkage,
    SampleCovariance,
    ledoit_wolf_delta,
    oas_delta,
)

SHAPES = [(48, 40), (120, 10), (30, 25), (48, 100), (24, 60), (13, 2)]
SHAPE_IDS = [f"W{w}-n{n}" for w, n in SHAPES]


def _returns(n_samples: int, n_assets: int, rng: np.random.Generator) -> np.ndarray:
    return (
        rng.standard_normal((n_samples, n_assets)) @ np.diag(np.linspace(0.5, 2, n_assets)) * 0.05
    )


def _factor_returns(n_samples: int, n_assets: int, seed: int = 42) -> np.ndarray:
    """Returns with a common factor (correlated assets), as real ones have."""
    rng = np.random.default_rng(seed)
    market = rng.standard_normal((n_samples, 1)) * 0.04
    return market * rng.uniform(0.5, 1.5, n_assets) + _returns(n_samples, n_assets, rng) * 0.5


@pytest.mark.parametrize(("n_samples", "n_assets"), SHAPES, ids=SHAPE_IDS)
def test_factor_forms_equal_the_references(n_samples, n_assets):
    """Implied covariances within 1e-10 (absolute; entries are about 1e-3) of numpy's sample
    covariance and scikit-learn's LedoitWolf and OAS, with at most min(W, n) factors; the
    intensities within 1e-10 relative."""
    x = _factor_returns(n_samples, n_assets)
    references = {
        "sample": np.cov(x, rowvar=False),
        "ledoit_wolf": SklearnLedoitWolf().fit(x).covariance_,
        "oas": SklearnOAS().fit(x).covariance_,
    }
    for name, expected in references.items():
        estimate = RISK_MODELS[name](x)
        assert estimate.n_factors <= min(n_samples, n_assets), name
        np.testing.assert_allclose(estimate.dense(), expected, atol=1e-10, rtol=0, err_msg=name)
    assert ledoit_wolf_delta(x) == pytest.approx(SklearnLedoitWolf().fit(x).shrinkage_, rel=1e-10)
    assert oas_delta(x) == pytest.approx(SklearnOAS().fit(x).shrinkage_, rel=1e-10)


def test_oas_matches_scikit_learn():
    rng = np.random.default_rng(42)
    for shape in ((48, 40), (120, 10), (30, 50)):
        x = _returns(*shape, rng)
        assert oas_delta(x) == pytest.approx(SklearnOAS().fit(x).shrinkage_, rel=1e-12)


def test_nonlinear_shrinkage_matches_an_independent_implementation():
    """Reference values from ``nonlinshrink`` 0.7 (``shrink_cov``, a Python port of the
    authors' Matlab code), computed once on the same seeded data: the smallest and largest
    eigenvalue, the trace and two entries. Both regimes: p < n (48 x 40) and p > n (30 x 50,
    where the p - n null eigenvalues get eq. C.5). Tolerance 5e-8 relative: the estimator
    amplifies rounding (perturbing the returns by 1e-15 relative moves the largest shrunk
    eigenvalue by 1.1e-8 at 48 x 40), and the factor form reads the sample eigenvalues off
    an SVD where the reference used a symmetric eigendecomposition (measured 1.2e-8)."""
    rng = np.random.default_rng(42)
    references = {
        (48, 40): [0.000484922220145, 0.01053097051, 0.180871570644, 0.00215613890448,
                   -0.000300079972418],
        (30, 50): [0.00299154632035, 0.0106852377159, 0.217610630984, 0.00319468726538,
                   -7.54035358648e-06],
    }  # fmt: skip
    for shape, expected in references.items():
        shrunk = NonlinearShrinkage()(_returns(*shape, rng)).dense()
        eigenvalues = np.linalg.eigvalsh(shrunk)
        got = [eigenvalues[0], eigenvalues[-1], np.trace(shrunk), shrunk[0, 0], shrunk[0, 1]]
        np.testing.assert_allclose(got, expected, rtol=5e-8)


def _dense_nonlinear(x: np.ndarray) -> np.ndarray:
    """The shrunk covariance from the dense eigendecomposition of ``X'X / n`` (p x p): the
    construction the factor form replaces, with the same shrunk eigenvalues."""
    from e2e_portfolio.models.covariance import _shrunk_spectrum

    centred = x - x.mean(axis=0)
    n, p = x.shape[0] - 1, x.shape[1]
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / n)
    shrunk, level = _shrunk_spectrum(eigenvalues[max(0, p - n) :], n, p)
    full = np.concatenate([np.full(max(0, p - n), level), shrunk])
    return (vectors * full) @ vectors.T


@pytest.mark.parametrize(("n_samples", "n_assets"), [(48, 20), (48, 100), (24, 60), (120, 30)])
def test_nonlinear_factor_form_equals_the_dense_construction(n_samples, n_assets):
    """Within 1e-10 (absolute) of the dense eigendecomposition, away from p = n - 1 where the
    estimator itself is ill-conditioned (c = 1: 1 - c vanishes in eq. 4.3); with W - 1
    factors when the off-span constant is below the shrunk eigenvalues, else p."""
    x = _factor_returns(n_samples, n_assets, seed=n_assets)
    estimate = NonlinearShrinkage()(x)
    np.testing.assert_allclose(estimate.dense(), _dense_nonlinear(x), atol=1e-10, rtol=0)
    assert estimate.n_factors in (min(n_samples - 1, n_assets), n_assets)


@pytest.mark.parametrize(("shape", "seed"), [((48, 100), 10), ((24, 60), 7)])
def test_nonlinear_adds_the_off_span_directions_when_they_are_riskier(shape, seed):
    """When the constant off the sample's span exceeds a shrunk eigenvalue on it (these
    seeds; 3 of 30 at 48 x 100), the factor form keeps the off-span directions as factors
    too: n factors, still exact."""
    x = _factor_returns(*shape, seed=seed)
    estimate = NonlinearShrinkage()(x)
    assert estimate.n_factors == shape[1]
    np.testing.assert_allclose(estimate.dense(), _dense_nonlinear(x), atol=1e-10, rtol=0)


def test_nonlinear_shrinkage_pulls_a_spread_spectrum_together():
    """Population identity, p / n = 0.5: sample eigenvalues spread over the Marchenko-Pastur
    support (about 0.09 to 2.9); the shrunk ones stay near 1, keep the eigenvectors and the
    ordering, and the matrix is symmetric positive definite."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal((201, 100))
    sample = np.linalg.eigvalsh(np.cov(x, rowvar=False, ddof=0))
    shrunk = NonlinearShrinkage()(x).dense()
    eigenvalues = np.linalg.eigvalsh(shrunk)
    np.testing.assert_allclose(shrunk, shrunk.T, atol=1e-15)
    assert sample.max() / sample.min() > 10
    assert eigenvalues.min() > 0.5 and eigenvalues.max() < 1.6
    assert np.abs(eigenvalues - 1).mean() < 0.5 * np.abs(sample - 1).mean()
    with pytest.raises(ValueError, match="window_returns: expected at least 13 observations"):
        NonlinearShrinkage()(x[:12])


def test_large_universes_never_form_n_by_n():
    """n = 3000 assets from 48 months: every estimate has at most 48 factors."""
    x = _factor_returns(48, 3000)
    for name, model in RISK_MODELS.items():
        estimate = model(x)
        assert estimate.loadings.shape[0] == 3000 and estimate.n_factors <= 48, name
    assert LedoitWolf()(x).idiosyncratic.min() > 0 and OAS()(x).idiosyncratic.min() > 0


def test_solve_by_woodbury_and_on_the_span():
    """Sigma^-1 b by Woodbury (d > 0) and the minimum-norm solution when d = 0, against
    numpy's inverse and pseudo-inverse."""
    x = _factor_returns(24, 40)
    b = np.linspace(-1, 1, 40)
    for estimate, solve in (
        (LedoitWolf()(x), np.linalg.inv),
        (SampleCovariance()(x), np.linalg.pinv),
    ):
        expected = solve(estimate.dense()) @ b
        np.testing.assert_allclose(estimate.solve(b), expected, atol=1e-9 * np.abs(expected).max())
    mixed = FactorCovariance(np.ones((3, 1)), np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="idiosyncratic: expected all > 0 or all 0 to solve"):
        mixed.solve(np.ones(3))


@pytest.mark.parametrize(
    ("loadings", "idiosyncratic", "match"),
    [(np.ones((3, 2)), np.ones(2), r"loadings, idiosyncratic: expected shapes \(n, k\) and \(n,\)"),
     (np.ones((3, 2)), np.array([1.0, -1.0, 1.0]), r"idiosyncratic: expected variances >= 0"),
     (np.full((3, 2), np.nan), np.ones(3), r"expected finite values, got NaN or inf")],
    ids=["shapes", "negative", "nan"],
)  # fmt: skip
def test_bad_factor_covariances(loadings, idiosyncratic, match):
    with pytest.raises(ValueError, match=match):
        FactorCovariance(loadings, idiosyncratic)


def test_embedding_and_padding_keep_the_covariance():
    estimate = LedoitWolf()(_factor_returns(24, 5))
    mask = np.array([True, False, True, True, False, True, True])
    embedded = estimate.embedded(mask, 0.5).padded(9)
    dense = embedded.dense()
    np.testing.assert_allclose(dense[np.ix_(mask, mask)], estimate.dense(), atol=1e-15)
    np.testing.assert_allclose(dense[~mask][:, ~mask], 0.5 * np.eye(2))
    assert embedded.n_factors == 9 and np.all(dense[~mask][:, mask] == 0)
