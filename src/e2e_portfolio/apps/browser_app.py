"""The in-browser demo (``dashboard.html``): Streamlit on WebAssembly via stlite.

Needs numpy and scipy only, and the package's numpy-only modules that the build embeds next
to it (:mod:`e2e_portfolio.models.decision_shrinkage`, :mod:`e2e_portfolio.data.synthetic`, and
the engine's minimal copy :mod:`e2e_portfolio.apps.browser_walkforward`).
For one simulated universe (seed slider) it contrasts training for accuracy with training for
decisions: a linear return head fitted by least squares (MSE) with the plug-in or Ledoit-Wolf
covariance, against the shrinkage (and, optionally, the head) chosen for realised net Sharpe
through the closed-form mean-variance portfolio.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from e2e_portfolio.apps.browser_walkforward import walk_forward
from e2e_portfolio.data.synthetic import simulate_arrays
from e2e_portfolio.models.decision_shrinkage import ShrinkageConfig

ROWS = {
    "MSE head + plug-in covariance": ("plug_in", False),
    "MSE head + Ledoit-Wolf": ("ledoit_wolf", False),
    "MSE head + shrinkage chosen for Sharpe": ("decision_aware", False),
    "head and shrinkage trained for Sharpe": ("decision_aware", True),
}


@st.cache_data(show_spinner=False)
def simulate(seed: int, n_assets: int, tc: float, learn_theta: bool) -> dict:
    """One simulated universe's shrinkage comparison, as plain numbers for the page."""
    exposures, returns = simulate_arrays(n_assets=n_assets, n_months=96, seed=seed)
    config = ShrinkageConfig(window=48, tc=tc, learn_theta=learn_theta)
    result = walk_forward(returns, exposures, config)
    return {
        "sharpe": result["sharpe"],
        "wealth": {m: np.cumprod(1 + r).tolist() for m, r in result["net_returns"].items()},
        "delta": float(result["delta"]["decision_aware"].mean()),
    }


def main() -> None:
    """Draw the page (stlite runs this module as the app's script)."""
    st.title("Training for accuracy or for decisions?")
    st.caption(
        "One simulated factor universe, 96 months; the last 23 are out of sample. Portfolios: "
        "the mean-variance direction at unit gross leverage, net of costs."
    )
    seed = st.slider("seed", 0, 49, 0)
    n_assets = st.select_slider("assets (N; covariance window 48)", [10, 20, 40], value=40)
    tc = st.slider("tc", 0.0, 0.01, 0.001, 0.001, format="%.3f")
    learn = st.checkbox("also train the head for Sharpe (slower)", value=False)

    with st.spinner("simulating and walking forward..."):
        runs = {False: simulate(seed, n_assets, tc, False)}
        if learn:
            runs[True] = simulate(seed, n_assets, tc, True)
    table = {
        label: round(runs[learned]["sharpe"][method], 3)
        for label, (method, learned) in ROWS.items()
        if learned in runs
    }
    st.table({"out-of-sample net Sharpe": table})
    st.write(f"Mean shrinkage chosen for Sharpe: delta* = {runs[False]['delta']:.2f}")
    st.line_chart(runs[False]["wealth"])


if __name__ == "__main__":  # importing the module (the API reference does) draws nothing
    main()
