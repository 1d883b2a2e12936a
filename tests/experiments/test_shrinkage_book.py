"""The shrinkage experiment on a constrained book (seed 42 and fixed seeds: reproducible).

Each method's weights come from the mean-variance QP built from its shrunk covariance in
factor form. The reference is Clarabel through cvxpy on the same covariance formed as a dense
``N x N`` matrix from the window itself (no factor form), so a wrong loading, a wrong
idiosyncratic term or a wrong delta shows up as a different portfolio.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from e2e_portfolio.data.synthetic import simulate_universe
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.shrinkage import METHODS, ShrinkageConfig, walk_forward
from e2e_portfolio.experiments.shrinkage_book import QPBook
from e2e_portfolio.models.covariance import NonlinearShrinkage
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.shrinkage_windows import ShrinkageWindows

LONG_SHORT = PortfolioConfig(w_min=-0.05, leverage=1.6)


def _reference(mu, covariance, portfolio, sectors=None):
    """Clarabel on the dense problem."""
    n = mu.size
    w = cp.Variable(n)
    constraints = [cp.sum(w) == portfolio.budget, w >= portfolio.w_min]
    if portfolio.leverage is not None:
        constraints.append(cp.norm1(w) <= portfolio.leverage)
    if portfolio.w_max is not None:
        constraints.append(w <= portfolio.w_max)
    if portfolio.sector_max is not None:
        for sector in set(sectors):
            members = np.array([s == sector for s in sectors], dtype=float)
            constraints.append(members @ w <= portfolio.sector_max)
    psd = cp.psd_wrap((covariance + covariance.T) / 2)
    problem = cp.Problem(cp.Maximize(mu @ w - portfolio.gamma * cp.quad_form(w, psd)), constraints)
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    return w.value


def _window_covariance(window_returns, delta, target):
    """(1 - delta) S + delta T, formed densely from the returns (1/W normalised)."""
    centred = window_returns - window_returns.mean(axis=0)
    sample = centred.T @ centred / len(window_returns)
    if target == "identity":
        shrunk_to = np.trace(sample) / sample.shape[0] * np.eye(sample.shape[0])
    else:
        shrunk_to = np.diag(np.diag(sample))
    return (1 - delta) * sample + delta * shrunk_to


@pytest.mark.parametrize("target", ["identity", "diagonal"])
@pytest.mark.parametrize(
    "portfolio",
    [PortfolioConfig(), LONG_SHORT, PortfolioConfig(gamma=2.0, w_max=0.2, sector_max=0.4),
     PortfolioConfig(w_min=-0.1, budget=0.0, leverage=1.0)],
    ids=["long-only", "long-short", "caps-sectors", "dollar-neutral"],
)  # fmt: skip
def test_book_weights_match_clarabel_on_the_dense_covariance(target, portfolio):
    """An objective at least Clarabel's (1e-10) and, where the covariance is invertible
    (delta > 0), the same weights to 1e-5.

    Weights are O(0.1). Clarabel stops at a duality gap of 1e-11, which pins the weights only
    to about sqrt(1e-11 / curvature): with gamma * delta * tr(S)/N ~ 2e-3 that is ~7e-5 on
    these weakly curved problems (the dollar-neutral book differs by 2e-6 where the native
    answer has the higher objective). N = 12 > window - 1 = 9, so at delta = 0 the covariance
    is singular and the objective is flat along its null space: only the value is compared."""
    rng = np.random.default_rng(42)
    windows = rng.normal(0.01, 0.05, size=(2, 10, 12))
    sectors = tuple("abc"[i % 3] for i in range(12))
    mu = rng.normal(0.01, 0.01, size=(2, 12))
    deltas = np.array([0.0, 0.3, 1.0])
    book = QPBook(portfolio, sectors)
    weights = book.family(ShrinkageWindows.of(windows, target), deltas, mu)
    assert weights.shape == (3, 2, 12)
    for i, delta in enumerate(deltas):
        for s in range(2):
            covariance = _window_covariance(windows[s], delta, target)
            expected = _reference(mu[s], covariance, portfolio, sectors)

            def value(w, s=s, covariance=covariance):
                return mu[s] @ w - portfolio.gamma * w @ covariance @ w

            assert value(weights[i, s]) >= value(expected) - 1e-10
            if delta > 0:
                np.testing.assert_allclose(weights[i, s], expected, atol=1e-5)


def test_nonlinear_shrinkage_in_factor_form_matches_clarabel():
    rng = np.random.default_rng(42)
    window = rng.normal(0.01, 0.05, size=(20, 15))
    covariance = NonlinearShrinkage()(window)
    mu = rng.normal(0.01, 0.01, size=15)
    dense = covariance.loadings @ covariance.loadings.T + np.diag(covariance.idiosyncratic)
    weights = QPBook(LONG_SHORT).factor(covariance, mu)
    np.testing.assert_allclose(weights, _reference(mu, dense, LONG_SHORT), atol=1e-6)


@pytest.mark.parametrize(
    "portfolio", [LONG_SHORT, PortfolioConfig(sector_max=0.4)], ids=["long-short", "sectors"]
)
def test_every_method_holds_the_book(portfolio):
    """Budget, floor, leverage and sector caps hold every month for every method (1e-8)."""
    panel = simulate_universe(n_assets=20, n_months=60, seed=42)
    config = ShrinkageConfig(window=20, score_months=12, baselines=("oas", "nonlinear"))
    result = walk_forward(panel, config, portfolio=portfolio)
    _, sector_of = np.unique(panel.sectors, return_inverse=True)
    for method in (*METHODS, "oas", "nonlinear"):
        weights = result.weights[method]
        np.testing.assert_allclose(weights.sum(axis=1), portfolio.budget, atol=1e-8)
        assert weights.min() >= portfolio.w_min - 1e-8
        if portfolio.leverage is not None:
            assert np.abs(weights).sum(axis=1).max() <= portfolio.leverage + 1e-8
        if portfolio.sector_max is not None:
            exposure = np.stack([weights[:, sector_of == k].sum(axis=1)
                                 for k in range(sector_of.max() + 1)])  # fmt: skip
            assert exposure.max() <= portfolio.sector_max + 1e-8
    assert np.isfinite(result.net_returns["decision_aware"]).all()


def test_a_book_changes_the_portfolio_and_is_reproducible():
    panel = simulate_universe(n_assets=10, n_months=50, seed=42)
    config = ShrinkageConfig(window=20, score_months=12)
    unit = walk_forward(panel, config)
    first = walk_forward(panel, config, portfolio=PortfolioConfig())
    again = walk_forward(panel, config, portfolio=PortfolioConfig())
    np.testing.assert_array_equal(first.weights["decision_aware"], again.weights["decision_aware"])
    assert not np.allclose(unit.weights["plug_in"], first.weights["plug_in"])
    assert (first.weights["plug_in"] >= -1e-10).all()  # long-only by default


@pytest.mark.parametrize(
    ("config", "portfolio", "match"),
    [
        (ShrinkageConfig(window=20, score_months=12, learn_theta=True), PortfolioConfig(),
         "learn_theta: expected the unit-gross book"),
        (ShrinkageConfig(window=20, score_months=12), PortfolioConfig(kappa=0.1),
         "kappa: expected 0 for the shrinkage book"),
        (ShrinkageConfig(window=20, score_months=12), PortfolioConfig(sector_max=0.05),
         r"sector_max: infeasible for \d+ sectors"),
        (ShrinkageConfig(window=20, score_months=12), PortfolioConfig(w_min=-0.1, leverage=0.5),
         r"leverage: expected a gross-exposure bound >= \|budget\| = 1.0, got 0.5"),
    ],
    ids=["learn-theta", "kappa", "sector-cap", "leverage"],
)  # fmt: skip
def test_bad_books_are_refused_before_any_decision(config, portfolio, match):
    with pytest.raises(DataError, match=match):
        walk_forward(simulate_universe(n_assets=10, n_months=50, seed=42), config,
                     portfolio=portfolio)  # fmt: skip
