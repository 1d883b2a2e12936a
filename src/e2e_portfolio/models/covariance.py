"""Covariance estimators for the shrinkage experiment.

The sample covariance, Ledoit-Wolf's shrinkage intensity and the shrinkage targets; numpy
only, so the browser demo runs them too.
"""

from __future__ import annotations

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
