from __future__ import annotations

import numpy as np
import pytest
import torch

from e2e_portfolio.data.synthetic import simulate_arrays
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import LedoitWolf
from e2e_portfolio.models.losses import (
    MeanVarianceUtility,
    mean_variance_utility_loss,
    mse_loss,
    negative_sharpe_loss,
    net_portfolio_returns,
)
from e2e_portfolio.models.portfolio import PortfolioConfig, solve_path
from e2e_portfolio.models.predictor import ReturnPredictor
from e2e_portfolio.models.qp_layer import MeanVarianceQP
from e2e_portfolio.models.train import (
    TrainConfig,
    gaussian_nll,
    train_decoupled,
    train_e2e,
    train_risk_nll,
)

CAPPED = PortfolioConfig(w_max=0.25)


def _network_path(model, layer, x, y, upper=None):
    """The QP's weights for a network's own mu, F and d on exposures x (T, n, k)."""
    mu, loadings, idiosyncratic = model(x)
    risk = {"F": loadings, "d": idiosyncratic, **({} if upper is None else {"upper": upper})}
    return solve_path(layer, mu, risk, y)


@pytest.fixture(scope="module")
def pairs():
    exposures, returns = simulate_arrays(n_assets=12, n_months=60, seed=42)
    return exposures[:-1], returns[1:]


def test_predictor_shapes_and_risk_matrix():
    torch.manual_seed(42)
    model = ReturnPredictor(n_features=6, n_risk_factors=3).double()
    x = torch.randn(5, 10, 6, dtype=torch.float64)
    mu, loadings, idiosyncratic = model(x)
    assert mu.shape == (5, 10) and loadings.shape == (5, 10, 3) and idiosyncratic.shape == (5, 10)
    assert (idiosyncratic > 0).all()
    risk = model.risk_matrix(loadings, idiosyncratic)
    expected = loadings @ loadings.transpose(-1, -2) + torch.diag_embed(idiosyncratic)
    torch.testing.assert_close(risk.transpose(-1, -2) @ risk, expected)
    with pytest.raises(ValueError, match=r"exposures: expected last dimension 6, got \(10, 4\)"):
        model(torch.zeros(10, 4, dtype=torch.float64))


def test_losses_closed_form():
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    realised = torch.tensor([[0.02, 0.0], [0.01, -0.01], [0.03, 0.02]], dtype=torch.float64)
    net = net_portfolio_returns(weights, realised, tc=0.01)
    # gross 0.01, 0.01, 0.02. The first book drifts to (0.51, 0.50) / 1.01, so moving to
    # (1, 0) trades 2 * 0.50 / 1.01; the second drifts to (1, 0) itself and trades 2.
    first_trade = 1.0 / 1.01
    expected = torch.tensor([0.01, 0.01 - 0.01 * first_trade, 0.0], dtype=torch.float64)
    torch.testing.assert_close(net, expected)
    gross = net_portfolio_returns(weights, realised)
    sharpe = np.sqrt(12) * gross.mean() / gross.std()
    torch.testing.assert_close(negative_sharpe_loss(weights, realised), -sharpe)
    utility = gross.mean() - 2.0 * gross.var()
    torch.testing.assert_close(mean_variance_utility_loss(weights, realised, gamma=2.0), -utility)
    assert mse_loss(torch.ones(3), torch.zeros(3)) == 1.0


def test_utility_loss_is_minus_the_realised_utility():
    weights = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    realised = torch.tensor([[0.02, 0.0], [0.01, -0.01], [0.03, 0.02]], dtype=torch.float64)
    net = net_portfolio_returns(weights, realised, tc=0.01)
    loss = MeanVarianceUtility(gamma=3.0)(weights, realised, 0.01)
    torch.testing.assert_close(loss, -(net.mean() - 3.0 * net.var()))


def test_mse_decreases(pairs):
    result = train_decoupled(*pairs, TrainConfig(epochs=30, patience=30))
    train = result.history["train"]
    assert train[-1] < train[0]
    assert result.best_epoch > 0


def test_gradients_reach_every_parameter(pairs):
    x, y = pairs
    torch.manual_seed(42)
    model = ReturnPredictor(x.shape[-1]).double()
    layer = MeanVarianceQP(12, gamma=8.0, w_max=0.2)
    weights = _network_path(model, layer, torch.tensor(x[:20]), torch.tensor(y[:20]))
    negative_sharpe_loss(weights, torch.tensor(y[:20]), tc=0.005).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_e2e_training_raises_in_sample_sharpe(pairs):
    result = train_e2e(*pairs, TrainConfig(epochs=15, patience=15), portfolio=CAPPED)
    train = result.history["train"]
    assert max(train[1:]) > train[0] + 0.1


def test_e2e_with_turnover_coupling_runs_month_by_month(pairs):
    x, y = pairs
    portfolio = PortfolioConfig(w_max=0.25, kappa=0.0005)
    result = train_e2e(x[:24], y[:24], TrainConfig(epochs=2), portfolio=portfolio)
    layer = portfolio.layer(12)
    with torch.no_grad():
        path = _network_path(result.model, layer, torch.tensor(x[:6]), torch.tensor(y[:6]))
    assert torch.allclose(path.sum(dim=1), torch.ones(6, dtype=torch.float64))


def test_same_seed_same_numbers(pairs):
    a = train_e2e(*pairs, TrainConfig(epochs=3))
    b = train_e2e(*pairs, TrainConfig(epochs=3))
    assert a.history == b.history
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"tc": -0.01}, r"tc: expected a cost >= 0, got -0.01"),
        ({"portfolio": PortfolioConfig(w_max=0.05)},
         r"w_max: infeasible for 12 assets, expected w_max >= 1/12"),
        ({"config": TrainConfig(epochs=0)}, r"epochs: expected at least 1, got 0"),
        ({"fixed_mu": np.zeros((5, 12))}, r"fixed_mu: expected a leading shape \(59, 12\)"),
    ],
    ids=["negative-tc", "infeasible-cap", "no-epochs", "fixed-mu-shape"],
)  # fmt: skip
def test_bad_training_options(pairs, options, match):
    with pytest.raises(DataError, match=match):
        train_e2e(*pairs, **options)


def test_bad_training_data(pairs):
    x, y = pairs
    with pytest.raises(DataError, match="expected shapes"):
        train_decoupled(x, y[:, :3])
    bad = x.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(DataError, match="expected finite values or NaN, got inf"):
        train_decoupled(bad, y)


def test_gaussian_nll_matches_torch_distributions():
    torch.manual_seed(42)
    loadings = 0.05 * torch.randn(5, 7, 2, dtype=torch.float64)
    idiosyncratic = 1e-3 + 0.01 * torch.rand(5, 7, dtype=torch.float64)
    residuals = 0.05 * torch.randn(5, 7, dtype=torch.float64)
    covariance = loadings @ loadings.transpose(-1, -2) + torch.diag_embed(idiosyncratic)
    normal = torch.distributions.MultivariateNormal(torch.zeros(7, dtype=torch.float64), covariance)
    constant = 0.5 * 7 * np.log(2 * np.pi)
    expected = -(normal.log_prob(residuals) + constant).mean()
    torch.testing.assert_close(gaussian_nll(residuals, loadings, idiosyncratic), expected)


def test_risk_model_by_likelihood_fits_better_than_untrained(pairs):
    x, y = pairs
    config = TrainConfig(epochs=30, patience=30)
    mse = train_decoupled(x, y, config)
    with torch.no_grad():
        forecast = mse.model(torch.tensor(x))[0].numpy()
    result = train_risk_nll(x, y, forecast, config)
    assert result.history["train"][-1] < result.history["train"][0]
    assert result.best_epoch > 0


def test_ablations_train_only_their_half(pairs):
    """fixed_mu: the QP sees the given forecast with the network's F and d, which learn;
    fixed_risk: the given factor covariance, and only the mu head learns."""
    x, y = pairs
    config = TrainConfig(epochs=2)
    features, cut = torch.tensor(x), 44  # the last quarter of 59 months validates
    torch.manual_seed(config.seed)
    initial = ReturnPredictor(x.shape[-1], config.n_risk_factors, config.hidden).double()
    mse = train_decoupled(x, y, config).model
    with torch.no_grad():
        forecast = mse(features)[0]
        _, loadings, idiosyncratic = initial(features[:cut])
        weights = solve_path(CAPPED.layer(12), forecast[:cut],
                             {"F": loadings, "d": idiosyncratic})  # fmt: skip
        sharpe = -negative_sharpe_loss(weights, torch.tensor(y[:cut]), 0.005).item()
    risk_only = train_e2e(x, y, config, portfolio=CAPPED, fixed_mu=forecast.numpy())
    assert risk_only.history["train"][0] == pytest.approx(sharpe, rel=1e-12)
    assert risk_only.history["train"][1] != risk_only.history["train"][0]  # F, d moved
    ledoit_wolf = LedoitWolf()(y[:24])
    fixed = (np.stack([ledoit_wolf.loadings] * len(y)),
             np.stack([ledoit_wolf.idiosyncratic] * len(y)))  # fmt: skip
    return_only = train_e2e(x, y, config, portfolio=CAPPED, fixed_risk=fixed)
    assert return_only.best_epoch > 0
    for head, learned in (("mu_head", True), ("load_head", False), ("idio_head", False)):
        same = torch.equal(getattr(return_only.model, head).weight, getattr(initial, head).weight)
        assert same is not learned, head
    layer = CAPPED.layer(12)
    with torch.no_grad():  # the factor form of the fixed risk is the dense Ledoit-Wolf
        mu = return_only.model(features[:6])[0]
        risk = {"F": torch.tensor(fixed[0][:6]), "d": torch.tensor(fixed[1][:6])}
        root = torch.linalg.cholesky(torch.tensor(ledoit_wolf.dense())).mT.expand(6, 12, 12)
        torch.testing.assert_close(solve_path(layer, mu, risk), layer(mu, root))
    with pytest.raises(DataError, match=r"fixed_risk: expected a leading shape \(59, 12\)"):
        train_e2e(x, y, config, fixed_risk=(fixed[0][:5], fixed[1][:5]))


def test_unknown_pairs_are_left_out_of_every_loss(pairs):
    """An asset listed late (unknown for the first 20 months): training does not depend on
    what the unknown cells would have held, and the QP never holds it there."""
    x, y = (np.array(a) for a in pairs)
    x[:20, 0], y[:20, 0] = np.nan, np.nan
    config = TrainConfig(epochs=3)
    a = train_decoupled(x, y, config)
    # 0.5 would dominate the MSE (and the Sharpe) if the unknown cells were counted
    b = train_decoupled(x, np.where(np.isnan(y), 0.5, y), config, investable=np.isfinite(y))
    assert a.history == b.history
    a = train_e2e(x, y, config, portfolio=CAPPED)
    b = train_e2e(x, np.where(np.isnan(y), 0.5, y), config, portfolio=CAPPED,
                  investable=np.isfinite(y))  # fmt: skip
    assert a.history == b.history
    mse = train_decoupled(x, y, config).model
    with torch.no_grad():
        forecast = mse(torch.nan_to_num(torch.tensor(x)))[0].numpy()
    nll = train_risk_nll(x, y, forecast, config)
    assert np.isfinite(nll.history["train"]).all()
    result = train_e2e(x, y, config, portfolio=CAPPED)
    layer = CAPPED.layer(12)
    features = torch.nan_to_num(torch.tensor(x[:25]))
    upper = torch.where(torch.isfinite(torch.tensor(x[:25])).all(-1), 0.25, 0.0).double()
    with torch.no_grad():
        weights = _network_path(result.model, layer, features,
                                torch.tensor(np.nan_to_num(y[:25])), upper)  # fmt: skip
    assert weights[:20, 0].abs().max() < 1e-9 and weights[20:, 0].abs().max() >= 0
