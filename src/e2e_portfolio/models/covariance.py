"""Covariance estimators: sample, Ledoit-Wolf, OAS and analytical nonlinear shrinkage.

The sample covariance, the Ledoit-Wolf and OAS shrinkage intensities, the shrinkage targets
and Ledoit-Wolf (2020) nonlinear shrinkage; numpy only, so the browser demo runs them too.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

Target = Literal["identity", "diagonal"]
"""Shrinkage target: the scaled identity ``tr(S)/N I`` (Ledoit-Wolf's) or ``diag(S)``."""


def sample_covariance(window_returns: np.ndarray) -> np.ndarray:
    """Maximum-likelihood (``1/W``) covariance of (W, N) returns, as scikit-learn's."""
    centred = window_returns - window_returns.mean(axis=0)
    return centred.T @ centred / window_returns.shape[0]


def ledoit_wolf_delta(window_returns: np.ndarray) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity toward the scaled identity, in [0, 1].

    The formula of ``sklearn.covariance.ledoit_wolf_shrinkage`` (data centred first).
    """
    x = window_returns - window_returns.mean(axis=0)
    n_samples, n_features = x.shape
    x2 = x**2
    emp_cov_trace = x2.sum(axis=0) / n_samples
    mu = emp_cov_trace.sum() / n_features
    beta_ = np.sum(x2.T @ x2)
    delta_ = np.sum((x.T @ x) ** 2) / n_samples**2
    beta = (beta_ / n_samples - delta_) / (n_features * n_samples)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + n_features * mu**2) / n_features
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def shrinkage_target(sample: np.ndarray, target: Target) -> np.ndarray:
    """Scaled identity ``tr(S)/N I`` or ``diag(S)``, for (..., N, N) covariances."""
    diagonal = np.diagonal(sample, axis1=-2, axis2=-1)
    n = sample.shape[-1]
    if target == "identity":
        level = diagonal.mean(axis=-1)[..., None, None]
        return level * np.eye(n)
    return diagonal[..., :, None] * np.eye(n)


def batched_sample_covariance(windows: np.ndarray) -> np.ndarray:
    """Maximum-likelihood covariances of (batch, W, N) windows, (batch, N, N)."""
    centred = windows - windows.mean(axis=1, keepdims=True)
    return np.einsum("bwi,bwj->bij", centred, centred) / windows.shape[1]


def oas_delta(window_returns: np.ndarray) -> float:
    """Oracle-approximating shrinkage intensity toward the scaled identity (Chen et al. 2010).

    The formula of ``sklearn.covariance.oas`` (data centred first), in [0, 1].
    """
    x = window_returns - window_returns.mean(axis=0)
    n_samples, n_features = x.shape
    sample = x.T @ x / n_samples
    alpha = float(np.mean(sample**2))
    mu = float(np.trace(sample)) / n_features
    mu_squared = mu**2
    numerator = alpha + mu_squared
    denominator = (n_samples + 1.0) * (alpha - mu_squared / n_features)
    return 1.0 if denominator == 0 else float(min(numerator / denominator, 1.0))


def nonlinear_shrinkage(window_returns: np.ndarray) -> np.ndarray:
    r"""Analytical nonlinear shrinkage of the covariance (Ledoit & Wolf, 2020, Ann. Statist.).

    Keeps the sample eigenvectors and replaces each sample eigenvalue :math:`\lambda_i` by

    .. math::

        \tilde d_i = \frac{\lambda_i}{\bigl(\pi c \lambda_i \tilde f(\lambda_i)\bigr)^2
            + \bigl(1 - c - \pi c \lambda_i \mathcal H_{\tilde f}(\lambda_i)\bigr)^2},
        \qquad c = p / n,

    (their eq. 4.3) where :math:`\tilde f` and its Hilbert transform
    :math:`\mathcal H_{\tilde f}` are kernel estimates of the limiting spectral density with the
    Epanechnikov kernel and the locally adaptive bandwidth :math:`h_j = n^{-1/3}\lambda_j`
    (eqs. 4.7-4.9). With more assets than observations (:math:`p > n`) the :math:`p - n` null
    eigenvalues get :math:`\tilde d_0` of eq. C.5 and the others eq. C.4. The data are
    demeaned, so the effective sample size is ``n = W - 1``.

    Parameters
    ----------
    window_returns : ndarray, (W, N)
        At least 13 observations (the authors' minimum of 12 after demeaning).

    Returns
    -------
    ndarray, (N, N)
        Symmetric positive definite.
    """
    x = window_returns - window_returns.mean(axis=0)
    n, p = x.shape[0] - 1, x.shape[1]
    if n < 12:
        raise ValueError(f"window_returns: expected at least 13 observations, got {n + 1}")
    eigenvalues, vectors = np.linalg.eigh(x.T @ x / n)
    lam = eigenvalues[max(0, p - n) :]  # the min(p, n) non-null eigenvalues, ascending
    if lam[0] <= 1e-8 * lam.sum():
        raise ValueError("window_returns: the sample covariance is singular beyond p > n")
    h = n ** (-1.0 / 3.0)
    bandwidth = h * lam[None, :]  # H[i, j] = h * lambda_j
    u = (lam[:, None] - lam[None, :]) / bandwidth
    root5 = math.sqrt(5.0)
    density = (3.0 / (4.0 * root5)) * np.mean(np.maximum(1.0 - u**2 / 5.0, 0.0) / bandwidth, 1)
    with np.errstate(divide="ignore"):
        log_term = np.log(np.abs((root5 - u) / (root5 + u)))
    hilbert_terms = np.where(
        np.abs(u) == root5,
        (-3.0 / (10.0 * math.pi)) * u,
        (-3.0 / (10.0 * math.pi)) * u
        + (3.0 / (4.0 * root5 * math.pi)) * (1.0 - u**2 / 5.0) * log_term,
    )
    hilbert = np.mean(hilbert_terms / bandwidth, 1)
    c = p / n
    if p <= n:
        shrunk = lam / (
            (math.pi * c * lam * density) ** 2 + (1.0 - c - math.pi * c * lam * hilbert) ** 2
        )
    else:
        hilbert0 = (
            (1.0 / math.pi)
            * (
                3.0 / (10.0 * h**2)
                + 3.0 / (4.0 * root5 * h) * (1.0 - 1.0 / (5.0 * h**2))
                * math.log((1.0 + root5 * h) / (1.0 - root5 * h))
            )
            * float(np.mean(1.0 / lam))
        )  # fmt: skip
        null = 1.0 / (math.pi * (p - n) / n * hilbert0)
        positive = lam / (math.pi**2 * lam**2 * (density**2 + hilbert**2))
        shrunk = np.concatenate([np.full(p - n, null), positive])
    return (vectors * shrunk) @ vectors.T
