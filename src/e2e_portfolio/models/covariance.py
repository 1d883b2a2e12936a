r"""Risk models in factor form: every estimate is :math:`\Sigma = F F^\top + \mathrm{diag}(d)`.

A covariance estimated from ``W`` months of ``n`` assets is low rank plus a multiple of the
identity, so it is exactly a :class:`FactorCovariance` with at most ``min(W, n)`` factors
(plus, rarely, see :class:`NonlinearShrinkage`): nothing of size ``n x n`` is ever formed,
whatever ``n`` is, and the QP layer solves it on its factor path in :math:`O(n k)` per step.

Every estimator is a :class:`RiskModel`: a callable from the ``(W, n)`` returns of a window to
a :class:`FactorCovariance`. The built-ins, by name in :data:`RISK_MODELS`:

.. list-table::
   :header-rows: 1

   * - name
     - estimate
     - factor form
   * - ``sample``
     - :math:`S = X^\top X / (W - 1)` (``numpy.cov``)
     - :math:`F = V s / \sqrt{W-1}`, :math:`d = 0`
   * - ``ledoit_wolf``
     - :math:`(1-\delta) S_{ML} + \delta\,m I` (scikit-learn's ``LedoitWolf``;
       :math:`S_{ML} = X^\top X / W`, :math:`m = \mathrm{tr}(S_{ML}) / n`)
     - :math:`F = V s \sqrt{(1-\delta)/W}`, :math:`d = \delta m`
   * - ``oas``
     - the same with the OAS intensity (Chen et al. 2010)
     - as Ledoit-Wolf
   * - ``nonlinear``
     - Ledoit & Wolf (2020): sample eigenvectors, shrunk eigenvalues :math:`\tilde d` on the
       sample's span and one constant :math:`c` off it
     - :math:`F = V\sqrt{\tilde d - c}`, :math:`d = c`

where :math:`X` are the window's demeaned returns and :math:`X = U s V^\top` its thin SVD. A
user's own risk model is any callable with the same signature (the network of
:class:`~e2e_portfolio.models.predictor.ReturnPredictor` gives ``F`` and ``d`` directly).

The shrinkage intensities are computed from the ``W x W`` Gram matrix :math:`X X^\top`
(scikit-learn's formulas, rewritten so that no ``n x n`` product is formed). Numpy only: the
in-browser demo runs this module too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "OAS",
    "RISK_MODELS",
    "FactorCovariance",
    "LedoitWolf",
    "NonlinearShrinkage",
    "RiskModel",
    "SampleCovariance",
    "Spectrum",
    "ledoit_wolf_delta",
    "oas_delta",
    "spectrum",
]


@dataclass(frozen=True)
class FactorCovariance:
    r"""A covariance :math:`\Sigma = F F^\top + \mathrm{diag}(d)`.

    Parameters
    ----------
    loadings : ndarray, (n_assets, n_factors)
        ``F``.
    idiosyncratic : ndarray, (n_assets,)
        ``d >= 0``.
    """

    loadings: np.ndarray
    idiosyncratic: np.ndarray

    def __post_init__(self) -> None:
        loadings = np.asarray(self.loadings, dtype=np.float64)
        idiosyncratic = np.asarray(self.idiosyncratic, dtype=np.float64)
        if loadings.ndim != 2 or idiosyncratic.shape != loadings.shape[:1]:
            raise ValueError(
                f"loadings, idiosyncratic: expected shapes (n, k) and (n,), got "
                f"{loadings.shape} and {idiosyncratic.shape}"
            )
        if not (np.isfinite(loadings).all() and np.isfinite(idiosyncratic).all()):
            raise ValueError("loadings, idiosyncratic: expected finite values, got NaN or inf")
        if (idiosyncratic < 0).any():
            raise ValueError(
                f"idiosyncratic: expected variances >= 0, got {idiosyncratic.min():.3g}"
            )
        object.__setattr__(self, "loadings", loadings)
        object.__setattr__(self, "idiosyncratic", idiosyncratic)

    @property
    def n_assets(self) -> int:
        """Rows of ``F``."""
        return self.loadings.shape[0]

    @property
    def n_factors(self) -> int:
        """Columns of ``F``."""
        return self.loadings.shape[1]

    def dense(self) -> np.ndarray:
        """The covariance itself, (n, n): for checks and small ``n`` only."""
        return self.loadings @ self.loadings.T + np.diag(self.idiosyncratic)

    def variances(self) -> np.ndarray:
        """The diagonal of the covariance, (n,)."""
        return np.square(self.loadings).sum(axis=1) + self.idiosyncratic

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        r""":math:`\Sigma^{-1} b` for ``rhs`` (n,), in :math:`O(n k^2)`.

        By Woodbury when every ``d > 0``; when ``d = 0`` the minimum-norm solution
        :math:`(F F^\top)^{+} b` (the inverse if ``F`` is square and invertible).

        Raises
        ------
        ValueError
            Some but not all of ``d`` are zero: neither form applies.
        """
        b = np.asarray(rhs, dtype=np.float64)
        d, loadings = self.idiosyncratic, self.loadings
        if (d > 0).all():
            scaled = loadings / d[:, None]  # D^-1 F
            capacitance = np.eye(self.n_factors) + loadings.T @ scaled
            return b / d - scaled @ np.linalg.solve(capacitance, scaled.T @ b)
        if (d == 0).all():
            left, singular, _ = np.linalg.svd(loadings, full_matrices=False)
            tol = singular[:1] * max(loadings.shape) * np.finfo(float).eps
            inverse = np.divide(1.0, singular**2, out=np.zeros_like(singular),
                                where=singular > tol)  # fmt: skip
            return left @ (inverse * (left.T @ b))
        raise ValueError("idiosyncratic: expected all > 0 or all 0 to solve, got a mix")

    def embedded(self, mask: np.ndarray, variance: float) -> FactorCovariance:
        """The covariance of these assets placed at ``mask`` (n,) bool among ``n`` assets.

        The other assets get no loadings and ``variance`` alone (they are not held anyway).
        """
        mask = np.asarray(mask, dtype=bool)
        if int(mask.sum()) != self.n_assets:
            raise ValueError(
                f"mask: expected {self.n_assets} selected assets, got {int(mask.sum())}"
            )
        loadings = np.zeros((mask.size, self.n_factors))
        loadings[mask] = self.loadings
        idiosyncratic = np.full(mask.size, float(variance))
        idiosyncratic[mask] = self.idiosyncratic
        return FactorCovariance(loadings, idiosyncratic)

    def padded(self, n_factors: int) -> FactorCovariance:
        """The same covariance with zero columns appended to ``F`` up to ``n_factors``."""
        if n_factors < self.n_factors:
            raise ValueError(f"n_factors: expected at least {self.n_factors}, got {n_factors}")
        extra = np.zeros((self.n_assets, n_factors - self.n_factors))
        return FactorCovariance(np.hstack([self.loadings, extra]), self.idiosyncratic)


class RiskModel(Protocol):
    """A covariance estimator: the returns of a window to a :class:`FactorCovariance`."""

    def __call__(self, window_returns: np.ndarray, /) -> FactorCovariance:
        """The estimate from ``window_returns`` (W, n), finite."""
        ...


@dataclass(frozen=True)
class Spectrum:
    r"""The sample covariance of a window on its own span.

    ``vectors`` (n, r) orthonormal, ``values`` (r,) descending, with :math:`X^\top X / W =
    V\,\mathrm{diag}(\text{values})\,V^\top` for the window's demeaned returns ``X`` (W, n)
    and ``r = min(W, n)``; ``centred`` is ``X``.
    """

    vectors: np.ndarray
    values: np.ndarray
    centred: np.ndarray

    @property
    def n_observations(self) -> int:
        """``W``."""
        return self.centred.shape[0]

    @property
    def mean_variance(self) -> float:
        r""":math:`m = \mathrm{tr}(X^\top X / W) / n`, the level of the identity target."""
        return float(self.values.sum() / self.centred.shape[1])


def spectrum(window_returns: np.ndarray) -> Spectrum:
    r"""The thin SVD of the demeaned ``window_returns`` (W, n): :math:`O(W n \min(W, n))`."""
    returns = np.asarray(window_returns, dtype=np.float64)
    if returns.ndim != 2 or min(returns.shape) < 1:
        raise ValueError(f"window_returns: expected shape (W, n), got {returns.shape}")
    if not np.isfinite(returns).all():
        raise ValueError("window_returns: expected finite returns, got NaN or inf")
    centred = returns - returns.mean(axis=0)
    _, singular, rows = np.linalg.svd(centred, full_matrices=False)
    return Spectrum(rows.T, singular**2 / returns.shape[0], centred)


def _gram_squares(centred: np.ndarray) -> float:
    r""":math:`\lVert X^\top X\rVert_F^2 = \lVert X X^\top\rVert_F^2`, from the (W, W) side."""
    gram = centred @ centred.T
    return float(np.sum(gram**2))


def ledoit_wolf_delta(window_returns: np.ndarray) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity toward the scaled identity, in [0, 1].

    The formula of ``sklearn.covariance.ledoit_wolf_shrinkage`` (data centred first), with
    its two ``n x n`` sums taken on the ``W x W`` side.
    """
    x = np.asarray(window_returns, dtype=np.float64)
    x = x - x.mean(axis=0)
    n_samples, n_features = x.shape
    if n_features == 1:
        return 0.0
    squares = x**2
    emp_cov_trace = squares.sum(axis=0) / n_samples
    mu = emp_cov_trace.sum() / n_features
    beta_ = float(np.sum(squares.sum(axis=1) ** 2))  # sum of (X**2)' (X**2)
    delta_ = _gram_squares(x) / n_samples**2
    beta = (beta_ / n_samples - delta_) / (n_features * n_samples)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + n_features * mu**2) / n_features
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def oas_delta(window_returns: np.ndarray) -> float:
    """Oracle-approximating shrinkage intensity toward the scaled identity (Chen et al. 2010).

    The formula of ``sklearn.covariance.oas`` (data centred first), in [0, 1].
    """
    x = np.asarray(window_returns, dtype=np.float64)
    x = x - x.mean(axis=0)
    n_samples, n_features = x.shape
    if n_features == 1:
        return 0.0
    alpha = _gram_squares(x) / (n_samples**2 * n_features**2)  # mean of S**2
    mu = float(np.sum(x**2)) / n_samples / n_features
    mu_squared = mu**2
    numerator = alpha + mu_squared
    denominator = (n_samples + 1.0) * (alpha - mu_squared / n_features)
    return 1.0 if denominator == 0 else float(min(numerator / denominator, 1.0))


@dataclass(frozen=True)
class SampleCovariance:
    """The sample covariance, ``numpy.cov`` (``ddof=1``); singular when ``n >= W``."""

    ddof: int = 1

    def __call__(self, window_returns: np.ndarray) -> FactorCovariance:
        """The estimate from ``window_returns`` (W, n), W > ddof."""
        s = spectrum(window_returns)
        if s.n_observations <= self.ddof:
            raise ValueError(
                f"window_returns: expected more than ddof = {self.ddof} observations, "
                f"got {s.n_observations}"
            )
        scale = s.n_observations / (s.n_observations - self.ddof)
        loadings = s.vectors * np.sqrt(s.values * scale)
        return FactorCovariance(loadings, np.zeros(loadings.shape[0]))


def _shrunk_to_identity(s: Spectrum, delta: float) -> FactorCovariance:
    r""":math:`(1 - \delta) X^\top X / W + \delta m I` in factor form."""
    loadings = s.vectors * np.sqrt((1.0 - delta) * s.values)
    return FactorCovariance(loadings, np.full(loadings.shape[0], delta * s.mean_variance))


@dataclass(frozen=True)
class LedoitWolf:
    """Ledoit-Wolf (2004) shrinkage toward the scaled identity, as scikit-learn's."""

    def __call__(self, window_returns: np.ndarray) -> FactorCovariance:
        """The estimate from ``window_returns`` (W, n)."""
        return _shrunk_to_identity(spectrum(window_returns), ledoit_wolf_delta(window_returns))


@dataclass(frozen=True)
class OAS:
    """Oracle-approximating shrinkage (Chen et al. 2010) toward the scaled identity."""

    def __call__(self, window_returns: np.ndarray) -> FactorCovariance:
        """The estimate from ``window_returns`` (W, n)."""
        return _shrunk_to_identity(spectrum(window_returns), oas_delta(window_returns))


@dataclass(frozen=True)
class NonlinearShrinkage:
    r"""Analytical nonlinear shrinkage of the covariance (Ledoit & Wolf, 2020, Ann. Statist.).

    Keeps the sample eigenvectors and replaces each sample eigenvalue :math:`\lambda_i` by

    .. math::

        \tilde d_i = \frac{\lambda_i}{\bigl(\pi c \lambda_i \tilde f(\lambda_i)\bigr)^2
            + \bigl(1 - c - \pi c \lambda_i \mathcal H_{\tilde f}(\lambda_i)\bigr)^2},
        \qquad c = p / n,

    (their eq. 4.3) where :math:`\tilde f` and its Hilbert transform
    :math:`\mathcal H_{\tilde f}` are kernel estimates of the limiting spectral density with
    the Epanechnikov kernel and the locally adaptive bandwidth :math:`h_j = n^{-1/3}\lambda_j`
    (eqs. 4.7-4.9). With more assets than observations (:math:`p > n`) the :math:`p - n` null
    eigenvalues get :math:`\tilde d_0` of eq. C.5 and the others eq. C.4. The data are
    demeaned, so the effective sample size is ``n = W - 1``; at least 13 observations.

    In factor form the covariance is :math:`V(\tilde D - c I)V^\top + c I` with ``c`` the
    constant off the sample's span (0 when ``p <= n``). That is exact with ``n`` factors when
    ``c`` does not exceed the shrunk eigenvalues on the span, as usual when ``p >> n``;
    otherwise the off-span directions are added as factors too (``p`` factors, still exact).
    """

    def __call__(self, window_returns: np.ndarray) -> FactorCovariance:
        """The estimate from ``window_returns`` (W, p)."""
        s = spectrum(window_returns)
        n, p = s.n_observations - 1, s.centred.shape[1]
        if n < 12:
            raise ValueError(f"window_returns: expected at least 13 observations, got {n + 1}")
        keep = min(p, n)  # the non-null eigenvalues, descending
        vectors = s.vectors[:, :keep]
        lam = s.values[:keep] * (n + 1) / n  # eigenvalues of X'X / n
        if lam[-1] <= 1e-8 * lam.sum():
            raise ValueError("window_returns: the sample covariance is singular beyond p > n")
        shrunk, level = _shrunk_spectrum(lam[::-1], n, p)
        shrunk = shrunk[::-1]
        floor = min(level, float(shrunk.min())) if p > n else 0.0
        loadings = vectors * np.sqrt(shrunk - floor)
        if level > floor:  # the off-span directions need factors of their own
            complete, _ = np.linalg.qr(vectors, mode="complete")
            loadings = np.hstack([loadings, complete[:, keep:] * math.sqrt(level - floor)])
        return FactorCovariance(loadings, np.full(p, floor))


def _shrunk_spectrum(lam: np.ndarray, n: int, p: int) -> tuple[np.ndarray, float]:
    """Ledoit & Wolf's (2020) shrunk eigenvalues for ascending ``lam`` and the null level."""
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
        return shrunk, 0.0
    hilbert0 = (
        (1.0 / math.pi)
        * (
            3.0 / (10.0 * h**2)
            + 3.0 / (4.0 * root5 * h) * (1.0 - 1.0 / (5.0 * h**2))
            * math.log((1.0 + root5 * h) / (1.0 - root5 * h))
        )
        * float(np.mean(1.0 / lam))
    )  # fmt: skip
    level = 1.0 / (math.pi * (p - n) / n * hilbert0)
    return lam / (math.pi**2 * lam**2 * (density**2 + hilbert**2)), level


RISK_MODELS: dict[str, RiskModel] = {
    "sample": SampleCovariance(),
    "ledoit_wolf": LedoitWolf(),
    "oas": OAS(),
    "nonlinear": NonlinearShrinkage(),
}
"""The built-in risk models by name (``e2e compare --covariance``, arms' ``risk``)."""
