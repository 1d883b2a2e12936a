"""
The factor path at 1,000 assets
===============================

With the risk model as loadings ``F`` (n, k) and idiosyncratic variances ``d``, the layer
never forms an ``n x n`` matrix: time and memory grow as ``B n (k + m)``. A batch of 32
problems of 1,000 assets and 10 factors, forward and backward.
"""

import time

import plotly.graph_objects as go
import torch

from e2e_portfolio import MeanVarianceQP

generator = torch.Generator().manual_seed(42)
batch, n, k = 32, 1000, 10
loadings = 0.05 * torch.randn(batch, n, k, generator=generator, dtype=torch.float64)
variances = 0.002 + 0.004 * torch.rand(batch, n, generator=generator, dtype=torch.float64)
mu = (0.01 * torch.randn(batch, n, generator=generator, dtype=torch.float64)).requires_grad_()
layer = MeanVarianceQP(n, gamma=8.0, w_max=0.02)

start = time.perf_counter()
weights, info = layer(mu, F=loadings, d=variances, return_info=True)
forward = time.perf_counter() - start
start = time.perf_counter()
(weights * torch.linspace(-1, 1, n, dtype=torch.float64)).sum().backward()
backward = time.perf_counter() - start
print(f"forward {forward * 1000:.0f} ms, backward {backward * 1000:.0f} ms for {batch} problems")
print(f"statuses: {sorted(set(info.status))}; largest KKT residual {info.kkt_residual.max():.1e}")
held = (weights.detach() > 1e-9).sum(-1).float()
print(
    f"assets held per problem: {held.mean():.0f} on average; every budget "
    f"{weights.detach().sum(-1).min():.6f} .. {weights.detach().sum(-1).max():.6f}"
)

figure = go.Figure(go.Histogram(x=weights.detach()[0][weights.detach()[0] > 1e-9].tolist()))
figure.update_layout(
    title="Weights held by the first problem (cap 2%)",
    height=380,
    xaxis_title="weight",
    yaxis_title="assets",
)
figure
