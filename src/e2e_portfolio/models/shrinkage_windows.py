r"""Shrinkage families of covariance windows in factor form: no ``N x N`` matrix formed.

For the decision-aware shrinkage (:mod:`e2e_portfolio.models.decision_shrinkage`): each
window's :math:`(1 - \delta) S + \delta T` for every :math:`\delta` of a grid, solved from the
window's thin SVD in :math:`O(N \min(W, N))`, so any number of assets works with any window.
Numpy only: the in-browser demo runs this module too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from e2e_portfolio.exceptions import DataError

Target = Literal["identity", "diagonal"]
"""Shrinkage target: the scaled identity ``tr(S)/N I`` (Ledoit-Wolf's) or ``diag(S)``."""


@dataclass(frozen=True)
class ShrinkageWindows:
    r"""The shrinkage family of each of ``S`` windows, never formed as ``N x N`` matrices.

    For window ``s`` and intensity :math:`\delta`,

    .. math::

        \Sigma_s(\delta) = A_s\bigl[(1 - \delta)\, V_s \Lambda_s V_s^\top
            + \delta\, \ell_s I\bigr] A_s
            = (1 - \delta)\, S_s + \delta\, T_s,

    with :math:`A_s = \mathrm{diag}(a_s)`: for the identity target :math:`a_s = 1` and
    :math:`\ell_s = \mathrm{tr}(S_s)/N`; for the diagonal target :math:`a_s` the assets'
    volatilities and :math:`\ell_s = 1` (so :math:`V_s\Lambda_s V_s^\top` is the sample
    correlation). :math:`V_s` (N, r) and :math:`\Lambda_s` come from the thin SVD of the
    window's (scaled) demeaned returns, ``r = min(W, N)``: every solve costs :math:`O(N r)`.

    scale (S, N); level (S,); vectors (S, N, r); values (S, r) descending; sample: the
    sample covariances' own spectra (the same for the identity target), vectors and values;
    n_observations: W.
    """

    scale: np.ndarray
    level: np.ndarray
    vectors: np.ndarray
    values: np.ndarray
    sample: tuple[np.ndarray, np.ndarray]
    n_observations: int

    @classmethod
    def of(cls, windows: np.ndarray, target: Target) -> ShrinkageWindows:
        """The families of (S, W, N) windows of returns toward ``target``."""
        centred = windows - windows.mean(axis=1, keepdims=True)
        n_observations, n_assets = windows.shape[1:]

        def spectra(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            _, singular, rows = np.linalg.svd(x, full_matrices=False)
            return rows.transpose(0, 2, 1), singular**2 / n_observations

        sample = spectra(centred)
        if target == "identity":
            level = sample[1].sum(axis=-1) / n_assets
            return cls(np.ones((len(windows), n_assets)), level, *sample, sample, n_observations)
        variances = np.mean(centred**2, axis=1)
        if (variances <= 0).any():
            raise DataError("target: 'diagonal' needs every asset to vary in its window, "
                            "got an asset with zero variance")  # fmt: skip
        scale = np.sqrt(variances)
        vectors, values = spectra(centred / scale[:, None, :])
        return cls(scale, np.ones(len(windows)), vectors, values, sample, n_observations)

    def take(self, index: slice | list[int]) -> ShrinkageWindows:
        """The windows at ``index``."""
        sample = (self.sample[0][index], self.sample[1][index])
        return ShrinkageWindows(self.scale[index], self.level[index], self.vectors[index],
                                self.values[index], sample, self.n_observations)  # fmt: skip

    def solve(self, delta: float, rhs: np.ndarray) -> np.ndarray:
        r""":math:`\Sigma_s(\delta)^{-1} b_s` for rhs (S, N), (S, N).

        At :math:`\delta = 0` the sample covariance alone, through its (Moore-Penrose)
        pseudo-inverse: the inverse where it exists (``N < W - 1``), the minimum-norm solution
        on the sample's span where it does not (``N >= W - 1``: the plug-in has no inverse).
        """
        if delta == 0:
            vectors, values = self.sample
            size = max(self.n_observations, rhs.shape[-1])
            tol = values[:, :1] * (size * np.finfo(float).eps) ** 2
            inverse = np.divide(1.0, values, out=np.zeros_like(values), where=values > tol)
            coords = np.einsum("sn,snr->sr", rhs, vectors)
            return np.einsum("sr,snr->sn", coords * inverse, vectors)
        b = rhs / self.scale
        coords = np.einsum("sn,snr->sr", b, self.vectors)
        level = delta * self.level[:, None]
        inverse = 1.0 / ((1.0 - delta) * self.values + level)
        on_span = np.einsum("sr,snr->sn", coords, self.vectors)
        x = np.einsum("sr,snr->sn", coords * inverse, self.vectors) + (b - on_span) / level
        return x / self.scale

    def target_minus_sample(self, u: np.ndarray, v: np.ndarray) -> float:
        r""":math:`\sum_s u_s^\top (T_s - S_s) v_s` for u, v (S, N): the derivative in delta."""
        au, av = u * self.scale, v * self.scale
        target = np.sum(self.level[:, None] * au * av)
        cu = np.einsum("sn,snr->sr", au, self.vectors)
        cv = np.einsum("sn,snr->sr", av, self.vectors)
        return float(target - np.sum(cu * self.values * cv))
