"""
Gradients checked against finite differences
============================================

The layer's backward pass comes from the implicit function theorem at the certified active
set. Central finite differences of the solution give an independent check: for a loss
``c'w`` the gradient in ``mu`` (and in the bounds, the rows and the risk model) must match.
"""

import plotly.graph_objects as go
import torch

from e2e_portfolio import MeanVarianceQP

generator = torch.Generator().manual_seed(42)
n, k = 10, 3
loadings = 0.1 * torch.randn(1, n, k, generator=generator, dtype=torch.float64)
variances = 0.01 + 0.02 * torch.rand(1, n, generator=generator, dtype=torch.float64)
mu = 0.02 * torch.randn(1, n, generator=generator, dtype=torch.float64)
upstream = torch.linspace(-1.0, 1.0, n, dtype=torch.float64)
layer = MeanVarianceQP(n, gamma=4.0, w_min=-0.1, w_max=0.4, leverage=1.4)  # a 120/20 book


def loss(m):
    return (layer(m, F=loadings, d=variances) * upstream).sum()


point = mu.clone().requires_grad_()
loss(point).backward()
analytic = point.grad[0]

step = 1e-6
numeric = torch.zeros(n, dtype=torch.float64)
for i in range(n):
    bump = torch.zeros_like(mu)
    bump[0, i] = step
    numeric[i] = (loss(mu + bump) - loss(mu - bump)) / (2 * step)

error = (analytic - numeric).abs().max() / numeric.abs().max()
print(f"largest relative difference: {error:.1e}")

figure = go.Figure([go.Bar(name="implicit function theorem", y=analytic.tolist()),
                    go.Bar(name="central differences", y=numeric.tolist())])  # fmt: skip
figure.update_layout(
    title="d(c'w)/d mu per asset",
    barmode="group",
    height=380,
    xaxis_title="asset",
    yaxis_title="gradient",
)
figure
