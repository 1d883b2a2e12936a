"""
The layer in your own training loop
===================================

:class:`~e2e_portfolio.models.qp_layer.MeanVarianceQP` is a ``torch.nn.Module``: put it after
any network and train through it. Here a linear forecast of next month's returns is trained
for the realised mean-variance utility of the portfolio the QP holds, on a small simulated
panel; the same problem through cvxpylayers (``backend="cvxpylayers"``) gives the same
weights, more slowly.
"""

import time

import plotly.graph_objects as go
import torch

from e2e_portfolio import MeanVarianceQP, simulate_universe
from e2e_portfolio.models.qp_native import SolverOptions

torch.manual_seed(42)
panel = simulate_universe(n_assets=12, n_months=96, seed=42)
x, y = panel.supervised_pairs()  # exposures (T, n, k) and next returns (T, n)
x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
n, k = panel.n_assets, x.shape[-1]

# a fixed risk model (the sample covariance's root), a learned forecast
returns = y[:48]
root = torch.linalg.cholesky(torch.cov(returns.T) + 1e-6 * torch.eye(n)).T  # Sigma = R'R
head = torch.nn.Linear(k, 1, dtype=torch.float64)
layer = MeanVarianceQP(n, gamma=8.0, w_max=0.3)
optimiser = torch.optim.Adam(head.parameters(), lr=0.01)

losses = []
for _ in range(40):
    mu = head(x[:48]).squeeze(-1) * 0.01  # (T, n) monthly forecasts
    weights = layer(mu, root.expand(48, n, n))  # (T, n), one QP per month
    realised = (weights * y[:48]).sum(-1)
    loss = -(realised.mean() - 4.0 * realised.var())  # minus the realised utility
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    losses.append(float(loss))
print(f"utility on the training months: {-losses[0]:.5f} -> {-losses[-1]:.5f}")

# %%
# The same problem through cvxpylayers
# ------------------------------------
# cvxpylayers canonicalises the QP into a cone program and differentiates it with diffcp:
# the same weights to the tolerance Clarabel is given inside it (its default, 1e-8, leaves
# them about 1e-5 apart; here 1e-10), an order of magnitude slower.
mu = (head(x[48:60]).squeeze(-1) * 0.01).detach()
timings, answers = {}, {}
tight = SolverOptions(cvxpylayers_tolerance=1e-10)
for backend in ("native", "cvxpylayers"):
    qp = MeanVarianceQP(n, gamma=8.0, w_max=0.3, backend=backend, options=tight)
    start = time.perf_counter()
    answers[backend] = qp(mu, root.expand(12, n, n))
    timings[backend] = time.perf_counter() - start
difference = (answers["native"] - answers["cvxpylayers"]).abs().max()
print(f"largest weight difference: {difference:.1e}")
print({b: f"{t * 1000:.0f} ms" for b, t in timings.items()})

figure = go.Figure(go.Scatter(y=[-v for v in losses], mode="lines+markers"))
figure.update_layout(
    title="Realised utility on the training months, per epoch",
    xaxis_title="epoch",
    yaxis_title="utility",
    height=380,
)
figure
