r"""Synthetic factor universe: a known data-generating process for controlled experiments.

Assets :math:`i = 1..N` sit in industry blocks :math:`b(i)`. Each carries ``K`` exposures
(characteristics): four priced ones — value, quality, momentum, low volatility — and
``n_diversifying`` unpriced "diversifier" exposures whose factor returns have zero premium and
are independent of everything else. Exposures follow stationary AR(1) processes with unit
variance,

.. math::

    x_{i,t,k} = \phi_k\, x_{i,t-1,k} + \sqrt{1 - \phi_k^2}\;\eta_{i,t,k},
    \qquad \eta_{i,t,k} \sim \mathcal N(0, 1),

and the return over the month after :math:`t` is

.. math::

    r_{i,t+1} = \beta_i\, m_{t+1}
        + \sum_k x_{i,t,k}\,(\lambda_k + f_{k,t+1})
        + c\; x_{i,t,\mathrm{quality}}\, x_{i,t,\mathrm{value}}
        + g_{b(i),t+1}
        + \sigma_i\, e^{-\ell\, x_{i,t,\mathrm{lowvol}}}\; \varepsilon_{i,t+1},

with market return :math:`m_{t+1} \sim \mathcal N(\mu_m, \sigma_m^2)`, market betas
:math:`\beta_i = 1 + s_\beta z_i`, factor return shocks :math:`f_{k,t+1} \sim \mathcal N(0,
\sigma_f^2)`, block (industry) shocks :math:`g_{b,t+1} \sim \mathcal N(0, \sigma_b^2)` that make
assets within a block correlated, and idiosyncratic noise :math:`\varepsilon \sim \mathcal N(0,1)`
scaled by a per-asset volatility :math:`\sigma_i \sim U(\sigma_{lo}, \sigma_{hi})` that falls with
the low-volatility exposure. The premia :math:`\lambda_k` are positive for the four priced
exposures and zero for the diversifiers; :math:`c` is the quality x value interaction premium.
All shocks are independent. Every draw comes from one ``numpy.random.Generator`` seeded by
``seed``, so the universe is a deterministic function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from e2e_portfolio.exceptions import DataError

if TYPE_CHECKING:  # the simulation itself needs numpy only (it also runs in the browser)
    from e2e_portfolio.data.panel import FactorPanel

PRICED_FACTORS = ("value", "quality", "momentum", "low_volatility")


@dataclass(frozen=True)
class DGPParams:
    """Monthly parameters of the synthetic universe (see the module docstring)."""

    premia: tuple[float, float, float, float] = (0.004, 0.003, 0.004, 0.003)
    """:math:`\\lambda_k` of value, quality, momentum, low volatility."""
    persistence: tuple[float, float, float, float] = (0.97, 0.97, 0.80, 0.95)
    """AR(1) coefficients :math:`\\phi_k` of the priced exposures."""
    diversifier_persistence: float = 0.90
    interaction_premium: float = 0.003
    """:math:`c`, premium on quality x value."""
    factor_volatility: float = 0.015
    """:math:`\\sigma_f`, volatility of every factor return shock."""
    market_mean: float = 0.006
    market_volatility: float = 0.045
    beta_dispersion: float = 0.2
    block_volatility: float = 0.03
    assets_per_block: int = 8
    idiosyncratic_volatility: tuple[float, float] = (0.05, 0.09)
    low_volatility_loading: float = 0.2
    """:math:`\\ell`: how strongly the low-volatility exposure lowers idiosyncratic risk."""
    start: str = "2000-01-31"


def simulate_arrays(
    n_assets: int = 40,
    n_months: int = 96,
    seed: int = 42,
    n_diversifying: int = 2,
    params: DGPParams | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the universe of the module docstring as plain arrays (numpy only).

    Returns
    -------
    exposures : ndarray, (n_months, n_assets, 4 + n_diversifying)
        Exposures known at each month end, priced ones first.
    returns : ndarray, (n_months, n_assets)
        Simple returns realised over each month.
    """
    _check_int("n_assets", n_assets, minimum=2)
    _check_int("n_months", n_months, minimum=2)
    _check_int("n_diversifying", n_diversifying, minimum=0)
    p = params or DGPParams()
    rng = np.random.default_rng(seed)
    n_factors = len(PRICED_FACTORS) + n_diversifying
    phi = np.array([*p.persistence, *([p.diversifier_persistence] * n_diversifying)])
    premia = np.array([*p.premia, *([0.0] * n_diversifying)])

    betas, idio_vol, block_of = _asset_draws(rng, n_assets, p)
    n_blocks = int(block_of.max()) + 1

    # x[0] is the state before the first month; x[t + 1] is known at the end of month t.
    exposures = np.empty((n_months + 1, n_assets, n_factors))
    exposures[0] = rng.standard_normal((n_assets, n_factors))
    innovation_scale = np.sqrt(1.0 - phi**2)
    for t in range(n_months):
        shocks = rng.standard_normal((n_assets, n_factors))
        exposures[t + 1] = phi * exposures[t] + innovation_scale * shocks

    market = rng.normal(p.market_mean, p.market_volatility, size=n_months)
    factor_shocks = rng.normal(0.0, p.factor_volatility, size=(n_months, n_factors))
    block_shocks = rng.normal(0.0, p.block_volatility, size=(n_months, n_blocks))
    noise = rng.standard_normal((n_months, n_assets))

    known = exposures[:-1]  # exposures at the start of each month, (T, N, K)
    value, quality, low_vol = known[..., 0], known[..., 1], known[..., 3]
    returns = (
        market[:, None] * betas[None, :]
        + np.einsum("tik,tk->ti", known, premia[None, :] + factor_shocks)
        + p.interaction_premium * quality * value
        + block_shocks[:, block_of]
        + idio_vol[None, :] * np.exp(-p.low_volatility_loading * low_vol) * noise
    )
    return exposures[1:], returns


def _asset_draws(
    rng: np.random.Generator, n_assets: int, p: DGPParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Market betas, idiosyncratic volatilities and industry blocks: a generator's first draws."""
    betas = 1.0 + p.beta_dispersion * rng.standard_normal(n_assets)
    idio_vol = rng.uniform(*p.idiosyncratic_volatility, size=n_assets)
    n_blocks = max(1, -(-n_assets // p.assets_per_block))
    block_of = rng.permutation(np.arange(n_assets) % n_blocks)
    return betas, idio_vol, block_of


def industry_blocks(n_assets: int = 40, seed: int = 42, params: DGPParams | None = None):
    """The industry block of each asset (n_assets,) int, as :func:`simulate_arrays` draws it."""
    _check_int("n_assets", n_assets, minimum=2)
    return _asset_draws(np.random.default_rng(seed), n_assets, params or DGPParams())[2]


def month_ends(n_months: int, params: DGPParams | None = None):
    """The month-end dates of a simulated universe of ``n_months`` (a pandas DatetimeIndex)."""
    import pandas as pd

    return pd.date_range((params or DGPParams()).start, periods=n_months, freq="ME")


def simulate_universe(
    n_assets: int = 40,
    n_months: int = 96,
    seed: int = 42,
    n_diversifying: int = 2,
    params: DGPParams | None = None,
    name: str = "synthetic",
) -> FactorPanel:
    """Simulate the factor universe of the module docstring as a :class:`FactorPanel`.

    Parameters
    ----------
    n_assets : int
        Number of assets ``N`` (at least 2).
    n_months : int
        Number of monthly dates ``T`` (at least 2).
    seed : int
        Seed of the random generator; equal arguments give equal panels.
    n_diversifying : int
        Number of unpriced diversifier exposures.
    params : DGPParams, optional
        Parameters of the process; the defaults of :class:`DGPParams` when omitted.
    name : str
        Name of the returned panel.

    Returns
    -------
    FactorPanel
        ``exposures`` (T, N, 4 + n_diversifying) known at each month end and ``returns``
        (T, N) realised over each month, monthly, not in excess of a risk-free rate; each
        asset's industry block as its sector (``industry_0``, ...).
    """
    from e2e_portfolio.data.panel import FactorPanel

    exposures, returns = simulate_arrays(n_assets, n_months, seed, n_diversifying, params)
    width = len(str(n_assets - 1))
    blocks = industry_blocks(n_assets, seed, params)
    features = (*PRICED_FACTORS, *(f"diversifier_{j + 1}" for j in range(n_diversifying)))
    return FactorPanel(
        name=name,
        dates=month_ends(n_months, params),
        assets=tuple(f"A{i:0{width}d}" for i in range(n_assets)),
        features=features,
        exposures=exposures,
        returns=returns,
        description=(
            f"synthetic factor universe: n_assets={n_assets}, n_months={n_months}, seed={seed}, "
            "monthly simple returns (not excess)"
        ),
        sectors=tuple(f"industry_{b}" for b in blocks),
    )


def _check_int(argument: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{argument}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise DataError(f"{argument}: expected an integer >= {minimum}, got {value}")
