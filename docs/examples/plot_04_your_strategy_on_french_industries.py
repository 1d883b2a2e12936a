"""
Your own strategy on the French industries
==========================================

A strategy is any function from what is known at a decision date (a
:class:`~e2e_portfolio.backtest.walkforward.PastView`) to weights. The walk-forward engine runs
it beside the built-ins on the same months, seeing only the past, and charges the same
turnover. Here: inverse-volatility weights on the ten Fama-French industry portfolios (shipped
offline), against equal weights and minimum variance, 1958 to 2017, net of 10 bp.
"""

from e2e_portfolio import MinimumVariance, equal_weight, load_french, run_comparison
from e2e_portfolio.backtest.walkforward import embed
from e2e_portfolio.report import plots

panel = load_french("industries")
WINDOW = 36


def inverse_volatility(view):
    """1/vol of the last 36 months, on the assets listed over all of them."""
    held = view.with_history(WINDOW)
    volatility = view.trailing_returns(WINDOW)[:, held].std(axis=0, ddof=1)
    weights = 1.0 / volatility
    return embed(weights / weights.sum(), held)


comparison = run_comparison(
    panel,
    {"inverse_volatility": inverse_volatility, "equal_weight": equal_weight,
     "min_variance": MinimumVariance(window=WINDOW, estimator="ledoit_wolf")},
    start=WINDOW,
    tc=0.001,
)  # fmt: skip
print(comparison.stats_frame()[["sharpe", "annualised_volatility", "max_drawdown", "turnover"]])
first = panel.dates[WINDOW + 1]
print(f"{panel.n_dates - WINDOW - 1} out-of-sample months from {first:%Y-%m}")

# %%
# Sixty years of wealth are drawn on a log scale, where equal growth rates are equal slopes.
plots.equity_curves(comparison.series_frame())
