"""The arms of the central comparison: what each shares, and gamma chosen on validation only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from e2e_portfolio.backtest.arm_specs import ARMS, BUILTIN_ARMS, GAMMA_GRID, Arm, resolve_arms
from e2e_portfolio.backtest.arms import MIN_HISTORY, ArmSet
from e2e_portfolio.backtest.walkforward import past_view, run_comparison
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.compare import CompareOptions, compare_arms
from e2e_portfolio.models.covariance import FactorCovariance
from e2e_portfolio.models.losses import net_portfolio_returns
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.qp_reference import solve_with_cvxpy
from e2e_portfolio.models.train import TrainConfig

START, WINDOW = 30, 24


@pytest.fixture(scope="module")
def walked(small_panel):
    """All arms on the seed-42 panel (12 assets, 36 months), two epochs per refit."""
    arms = ArmSet(PortfolioConfig(w_max=0.3), TrainConfig(epochs=2, seed=42),
                  first_decision=START, window=WINDOW, refit_every=3)  # fmt: skip
    comparison = run_comparison(small_panel, arms.strategies(), START, tc=0.005)
    return arms, comparison


def test_every_arm_runs_and_qp_arms_record_their_gamma(walked):
    arms, comparison = walked
    assert tuple(comparison.results) == ARMS
    for result in comparison.results.values():
        np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-8)
        assert (result.weights >= -1e-9).all() and (result.weights <= 0.3 + 1e-9).all()
    for arm in ("plug_in", "decoupled", "decoupled_nll", "e2e", "e2e_risk", "e2e_return"):
        assert len(arms.tuning[arm]) == 2  # refits at positions 30 and 33
        assert all(t["gamma"] in GAMMA_GRID for t in arms.tuning[arm])
    assert "mivariance" not in arms.tuning and "equal_weight" not in arms.tuning


def test_the_ablations_share_what_they_should(walked):
    """decoupled, decoupled_nll and e2e_risk use the one MSE forecast; e2e uses one network
    for both moments; e2e_risk and decoupled_nll learn their own risk networks."""
    arms, _ = walked
    mse = arms.models("decoupled")["mu"]
    assert arms.models("decoupled_nll")["mu"] is mse and arms.models("e2e_risk")["mu"] is mse
    assert arms.models("e2e")["mu"] is arms.models("e2e")["risk"]
    assert arms.models("e2e_risk")["risk"] is not arms.models("decoupled_nll")["risk"]
    assert set(arms.models("decoupled")) == {"mu"} and set(arms.models("e2e_return")) == {"mu"}


def test_gamma_is_chosen_on_the_validation_months_only(small_panel):
    """Plug-in arm, one refit at position 30: the validation months are the last quarter of
    the training pairs (positions 12..29, so 25..29 after rounding 0.25 * 18 = 4.5 to 4:
    26..29); each gamma's validation Sharpe is recomputed here with cvxpy from the returns of
    those months only, and the chosen gamma is the grid's best. Tolerance 1e-6 on Sharpe
    ratios: cvxpy's Clarabel solves to 1e-10."""
    arms = ArmSet(PortfolioConfig(), TrainConfig(epochs=1, seed=42), first_decision=START,
                  window=WINDOW, refit_every=100)  # fmt: skip
    view = past_view(small_panel, START)
    arms.weights("plug_in", view)
    positions = np.arange(MIN_HISTORY - 1, START)
    n_validation = max(2, round(0.25 * len(positions)))
    validation = positions[-n_validation:]
    assert (validation + 1 <= START).all()  # every scored return is known at the refit
    returns = small_panel.returns
    scores = {}
    for gamma in GAMMA_GRID:
        weights = []
        for s in validation:
            past = returns[max(0, s - WINDOW + 1) : s + 1]
            root = torch.linalg.cholesky(torch.as_tensor(np.cov(past, rowvar=False))).T
            mu = torch.as_tensor(past.mean(axis=0))
            weights.append(
                solve_with_cvxpy(mu[None], root[None], None, gamma, None, 0.0)[0].numpy()
            )
        weights = np.array(weights)
        realised = returns[validation + 1]
        held = weights[:-1] * (1 + realised[:-1])
        held /= held.sum(axis=1, keepdims=True)
        turnover = np.r_[0.0, np.abs(weights[1:] - held).sum(axis=1)]
        net = (weights * realised).sum(axis=1) - 0.005 * turnover
        scores[gamma] = np.sqrt(12) * net.mean() / net.std(ddof=1)
    recorded = arms.tuning["plug_in"][0]
    got = {float(g): s for g, s in recorded["validation_sharpe"].items()}
    for gamma in GAMMA_GRID:
        assert got[gamma] == pytest.approx(scores[gamma], abs=1e-6)
    assert recorded["gamma"] == max(GAMMA_GRID, key=lambda g: scores[g])
    assert recorded["date"] == f"{small_panel.dates[START]:%Y-%m}"


def test_bad_arm_options():
    config, portfolio = TrainConfig(epochs=1), PortfolioConfig()
    with pytest.raises(DataError, match=r"arms: expected some of equal_weight, .* got 'magic'"):
        ArmSet(portfolio, config, first_decision=30).strategies(["magic"])
    with pytest.raises(DataError, match=r"covariance: expected one of"):
        ArmSet(portfolio, config, first_decision=30, covariance="sample")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"gamma_grid: expected positive risk aversions"):
        ArmSet(portfolio, config, first_decision=30, gamma_grid=(1.0, 0.0))
    with pytest.raises(DataError, match=r"tc: expected a finite cost >= 0, got -1"):
        ArmSet(portfolio, config, first_decision=30, tc=-1)


def test_progress_hears_of_every_training(small_panel):
    calls = []
    arms = ArmSet(PortfolioConfig(), TrainConfig(epochs=1, seed=42), first_decision=START,
                  window=WINDOW, refit_every=3,
                  on_refit=lambda arm, date: calls.append((arm, date)))  # fmt: skip
    run_comparison(small_panel, arms.strategies(["plug_in", "e2e"]), START, tc=0.005)
    dates = [f"{small_panel.dates[t]:%Y-%m}" for t in (START, START + 3)]
    assert calls == [("plug_in", d) for d in dates] + [("e2e", d) for d in dates]


def test_a_widening_grid_grows_at_the_end_where_the_best_sits(small_panel):
    """Plug-in on a grid of two gammas: the fixed grid's scores are kept, and the widened
    grid grows by the grid's ratio (2) at the end where the best sat, until the best is
    inside or 6 steps were taken."""
    view = past_view(small_panel, START)
    tuned = {}
    for widen in (False, True):
        arms = ArmSet(PortfolioConfig(), TrainConfig(epochs=1), first_decision=START,
                      window=WINDOW, gamma_grid=(4.0, 8.0), widen_gamma_grid=widen)  # fmt: skip
        arms.weights("plug_in", view)
        tuned[widen] = arms.tuning["plug_in"][0]
    fixed, widened = tuned[False], tuned[True]
    assert fixed["edge"] in ("low", "high")
    for gamma, score in fixed["validation_sharpe"].items():
        assert widened["validation_sharpe"][gamma] == score
    tried = sorted(float(g) for g in widened["validation_sharpe"])
    assert len(tried) > 2 and np.allclose(np.diff(np.log2(tried)), 1.0)
    assert (tried[0] < 4.0) if fixed["edge"] == "low" else (tried[-1] > 8.0)
    scores = {float(g): s for g, s in widened["validation_sharpe"].items()}
    assert widened["gamma"] == max(tried, key=lambda g: scores[g])
    assert widened["edge"] is None or len(tried) == 2 + 6


class _LinearNetwork(nn.Module):
    """A user's network: linear mu, one loading and a constant variance per asset."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.mu = nn.Linear(n_features, 1)
        self.loading = nn.Linear(n_features, 1)
        self.log_variance = nn.Parameter(torch.tensor(-6.0))

    def forward(self, x):
        variance = torch.exp(self.log_variance).expand(x.shape[:-1])
        return 0.01 * self.mu(x).squeeze(-1), 0.05 * self.loading(x), variance


def _diagonal_risk(window_returns: np.ndarray) -> FactorCovariance:
    """A user's risk model: the sample variances alone (no correlation)."""
    return FactorCovariance(np.zeros((window_returns.shape[1], 1)),
                            window_returns.var(axis=0, ddof=1))  # fmt: skip


def _minus_mean_return(weights, realised, tc):
    """A user's decision loss: minus the mean net return."""
    return -net_portfolio_returns(weights, realised, tc).mean()


def test_user_arms_run_end_to_end_beside_the_builtins(small_panel):
    """Another network, another risk model and other decision losses, composed as arms and
    walked forward with a built-in one under the same protocol; the run's configuration
    describes them."""
    arms = (
        "decoupled",
        Arm("utility_e2e", "decision", "decision", loss="utility",
            network=lambda n_features, config: _LinearNetwork(n_features)),
        Arm("mean_on_diagonal", "trailing_mean", _diagonal_risk),
        Arm("return_loss", "decision", "ledoit_wolf", loss=_minus_mean_return),
        Arm("risk_for_mean", "trailing_mean", "decision"),
    )  # fmt: skip
    options = CompareOptions(train=TrainConfig(epochs=2), window=20, refit_every=12, arms=arms)
    comparison, arm_set = compare_arms(small_panel, options)
    assert list(comparison.results) == [a if isinstance(a, str) else a.slug for a in arms]
    for result in comparison.results.values():
        np.testing.assert_allclose(result.weights.sum(axis=1), 1.0, atol=1e-8)
        assert (result.weights >= -1e-9).all()
    assert isinstance(arm_set.models("utility_e2e")["mu"], _LinearNetwork)
    assert set(arm_set.models("risk_for_mean")) == {"risk"}
    config = options.as_config()
    assert config["arms"] == list(comparison.results)
    described = {spec["slug"]: spec for spec in config["arm_specs"]}
    assert described["mean_on_diagonal"]["risk"].endswith("_diagonal_risk")
    assert described["return_loss"]["loss"].endswith("_minus_mean_return")
    assert described["utility_e2e"]["loss"] == "utility"


@pytest.mark.parametrize(
    ("arguments", "match"),
    [({"slug": "a/b", "forecast": "mse", "risk": "sample"}, r"slug: expected a non-empty name"),
     ({"slug": "x", "forecast": "mse"}, r"x: expected a forecast and a risk model, or neither"),
     ({"slug": "x", "forecast": "oracle", "risk": "sample"}, r"x: forecast: expected one of"),
     ({"slug": "x", "forecast": "mse", "risk": "magic"}, r"x: risk: expected one of .* got 'magic'"),
     ({"slug": "x", "forecast": "mse", "risk": 3}, r"x: risk: expected a name or a callable"),
     ({"slug": "x", "forecast": "decision", "risk": "decision", "loss": "hinge"},
      r"x: loss: expected one of sharpe, utility or a callable")],
    ids=["slug", "half", "forecast", "risk-name", "risk-type", "loss"],
)  # fmt: skip
def test_bad_arm_specifications(arguments, match):
    with pytest.raises(DataError, match=match):
        Arm(**arguments)


def test_repeated_and_unknown_arms_are_refused():
    with pytest.raises(DataError, match=r"arms: expected distinct slugs"):
        resolve_arms(["e2e", BUILTIN_ARMS["e2e"]])
    with pytest.raises(DataError, match=r"arms: expected slugs or Arm objects, got int"):
        resolve_arms([3])  # type: ignore[list-item]
