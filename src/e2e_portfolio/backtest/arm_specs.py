"""Arms as specifications: a forecast source x a risk model x a trainer and loss x tuning.

An :class:`Arm` says where each of the QP's two inputs comes from and how anything learned is
trained; :class:`~e2e_portfolio.backtest.arms.ArmSet` runs any set of them under one protocol.
The eight arms of ``e2e compare`` are entries of :data:`BUILTIN_ARMS`, by slug; a new arm is
written, not added to the package::

    Arm("e2e_utility", forecast="decision", risk="decision", loss="utility")
    Arm("mine", forecast="mse", risk=MyRiskModel(), network=my_network_factory)

Forecast sources (``mu``):

- ``"zero"``: no forecast (minimum variance);
- ``"trailing_mean"``: the sample mean of the covariance window;
- ``"mse"``: the network trained by MSE on the refit's pairs (shared by the arms that use the
  same network);
- ``"decision"``: the network trained through the QP for the arm's ``loss``.

Risk sources (``Sigma``, always in factor form ``F F' + diag(d)``):

- a :class:`~e2e_portfolio.models.covariance.RiskModel` of the window's returns, by name
  (``"sample"``, ``"ledoit_wolf"``, ``"oas"``, ``"nonlinear"``, or ``"shrunk"``: the run's
  ``--covariance``) or as any callable from (W, n) returns to a
  :class:`~e2e_portfolio.models.covariance.FactorCovariance`;
- ``"nll"``: the network's ``F``, ``d`` fitted by Gaussian likelihood around the MSE forecast;
- ``"decision"``: the network's ``F``, ``d`` trained through the QP for the arm's ``loss``.

When either source is ``"decision"`` one network is trained for the decision loss with the
other input held fixed (both learn when both are ``"decision"``). Arms without a forecast and a
risk model hold equal weights. Nothing here imports torch: the command line's help reads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.models.covariance import RISK_MODELS, RiskModel
from e2e_portfolio.slugs import canonical

if TYPE_CHECKING:
    from e2e_portfolio.models.losses import DecisionLoss
    from e2e_portfolio.models.train import NetworkFactory

Forecast = Literal["zero", "trailing_mean", "mse", "decision"]
FORECASTS: tuple[Forecast, ...] = get_args(Forecast)
LEARNED_RISKS = ("nll", "decision")
"""Risk sources that are networks rather than estimators of the window."""
SHRUNK = "shrunk"
"""The risk source that stands for the run's own shrinkage estimator (``--covariance``)."""
Covariance = Literal["ledoit_wolf", "oas", "nonlinear"]
COVARIANCES: tuple[Covariance, ...] = get_args(Covariance)


def check_covariance(name: str) -> Covariance:
    """The shrunk covariance of the covariance arms by its slug (earlier spellings read)."""
    slug = canonical(name)
    if slug not in COVARIANCES:
        raise DataError(f"covariance: expected one of {COVARIANCES}, got {name!r}")
    return cast(Covariance, slug)


def check_gamma_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """The risk aversions a tuned arm chooses from: positive and finite, sorted, once each."""
    values = [float(g) for g in grid]
    if not values or any(not math.isfinite(g) or g <= 0 for g in values):
        raise DataError(f"gamma_grid: expected positive risk aversions, got {values}")
    return tuple(sorted(set(values)))


"""The estimators ``shrunk`` may stand for."""
LOSS_NAMES = ("sharpe", "utility")
"""Names of :data:`~e2e_portfolio.models.losses.DECISION_LOSSES` (kept here torch-free)."""
GAMMA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Risk aversions each tuned arm chooses from on its validation months."""


def _name(thing: object) -> str:
    """A readable name for a callable in a stored configuration."""
    if isinstance(thing, str):
        return thing
    kind = thing if isinstance(thing, type) else type(thing)
    if callable(thing) and hasattr(thing, "__qualname__"):
        return f"{thing.__module__}.{thing.__qualname__}"
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclass(frozen=True)
class Arm:
    """One arm of a comparison: where ``mu`` and ``Sigma`` come from, and how it learns.

    Parameters
    ----------
    slug : str
        Its name in every table, JSON document and stored run.
    forecast : {"zero", "trailing_mean", "mse", "decision"}, optional
        Where ``mu`` comes from; None (with ``risk`` None) for equal weights.
    risk : str or RiskModel, optional
        Where ``Sigma`` comes from: a name of
        :data:`~e2e_portfolio.models.covariance.RISK_MODELS`, ``"shrunk"``, ``"nll"``,
        ``"decision"``, or a risk model callable.
    loss : str or DecisionLoss
        The decision loss of a ``"decision"`` source: ``"sharpe"``, ``"utility"`` or
        ``loss(weights, realised, tc) -> scalar``.
    network : NetworkFactory, optional
        The network of the learned sources (``ReturnPredictor`` when None).
    tune_gamma : bool
        Choose gamma on the validation months from the run's grid.
    gamma : float, optional
        The risk aversion when gamma is not tuned (the portfolio's when None).
    description : str
        One line for tables and help.
    """

    slug: str
    forecast: Forecast | None = None
    risk: str | RiskModel | None = None
    loss: str | DecisionLoss = "sharpe"
    network: NetworkFactory | None = None
    tune_gamma: bool = True
    gamma: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.slug, str) or not self.slug.strip() or "/" in self.slug:
            raise DataError(f"slug: expected a non-empty name without '/', got {self.slug!r}")
        if (self.forecast is None) != (self.risk is None):
            raise DataError(
                f"{self.slug}: expected a forecast and a risk model, or neither (equal "
                f"weights), got forecast {self.forecast!r} and risk {self.risk!r}"
            )
        if self.forecast is not None and self.forecast not in FORECASTS:
            raise DataError(f"{self.slug}: forecast: expected one of {', '.join(FORECASTS)}, "
                            f"got {self.forecast!r}")  # fmt: skip
        if isinstance(self.risk, str):  # an earlier spelling (ledoit-wolf) still works
            object.__setattr__(self, "risk", canonical(self.risk))
        known = (SHRUNK, *RISK_MODELS, *LEARNED_RISKS)
        if isinstance(self.risk, str) and self.risk not in known:
            raise DataError(f"{self.slug}: risk: expected one of {', '.join(known)} or a risk "
                            f"model, got {self.risk!r}")  # fmt: skip
        if self.risk is not None and not isinstance(self.risk, str) and not callable(self.risk):
            raise DataError(f"{self.slug}: risk: expected a name or a callable, got "
                            f"{type(self.risk).__name__}")  # fmt: skip
        if isinstance(self.loss, str) and self.loss not in LOSS_NAMES:
            raise DataError(f"{self.slug}: loss: expected one of {', '.join(LOSS_NAMES)} or a "
                            f"callable, got {self.loss!r}")  # fmt: skip
        if self.forecast is None and self.tune_gamma:
            object.__setattr__(self, "tune_gamma", False)  # equal weights: nothing to tune

    @property
    def holds_equal_weights(self) -> bool:
        """No forecast and no risk model: 1/N on the listed assets."""
        return self.forecast is None

    @property
    def learns_for_decisions(self) -> bool:
        """A network of this arm is trained through the QP."""
        return self.forecast == "decision" or self.risk == "decision"

    @property
    def uses_network(self) -> bool:
        """A network gives ``mu`` or ``Sigma`` (so its exposures must be known)."""
        return self.forecast in ("mse", "decision") or self.risk in LEARNED_RISKS

    @property
    def window_risk(self) -> bool:
        """``Sigma`` is estimated from the returns of the trailing window."""
        return self.risk is not None and self.risk not in LEARNED_RISKS

    def describe(self) -> dict[str, Any]:
        """The specification as JSON-ready data (callables by their qualified names)."""
        return {
            "slug": self.slug,
            "forecast": self.forecast,
            "risk": None if self.risk is None else _name(self.risk),
            "loss": _name(self.loss) if self.learns_for_decisions else None,
            "network": None if self.network is None else _name(self.network),
            "tune_gamma": self.tune_gamma,
            "gamma": self.gamma,
        }


BUILTIN_ARMS: dict[str, Arm] = {
    arm.slug: arm
    for arm in (
        Arm("equal_weight", description="1/N on the listed assets"),
        Arm("min_variance", "zero", SHRUNK, tune_gamma=False, gamma=1.0,
            description="long-only minimum variance, shrunk covariance"),
        Arm("plug_in", "trailing_mean", "sample",
            description="trailing sample mean and sample covariance"),
        Arm("decoupled", "mse", SHRUNK, description="MSE forecast + shrunk covariance"),
        Arm("decoupled_nll", "mse", "nll",
            description="MSE forecast + the network's F F' + diag(d) fitted by likelihood"),
        Arm("e2e", "decision", "decision",
            description="forecast and covariance trained for net Sharpe through the QP"),
        Arm("e2e_risk", "mse", "decision",
            description="MSE forecast frozen, covariance trained for net Sharpe"),
        Arm("e2e_return", "decision", SHRUNK,
            description="forecast trained for net Sharpe, shrunk covariance"),
    )
}  # fmt: skip
"""The eight arms of ``e2e compare``, by slug."""
ARMS = tuple(BUILTIN_ARMS)
"""The built-in arms' stable slugs, in the order of every table."""
LEARNED = tuple(s for s, a in BUILTIN_ARMS.items() if a.uses_network)
TUNED = tuple(s for s, a in BUILTIN_ARMS.items() if a.tune_gamma)


def resolve_arms(arms: tuple[Arm | str, ...] | list[Arm | str]) -> tuple[Arm, ...]:
    """The arms named or given, in order: slugs of :data:`BUILTIN_ARMS` or :class:`Arm` s."""
    resolved = []
    for arm in arms:
        if isinstance(arm, str):
            if arm not in BUILTIN_ARMS:
                raise DataError(f"arms: expected some of {', '.join(ARMS)} (or Arm objects), "
                                f"got {arm!r}")  # fmt: skip
            arm = BUILTIN_ARMS[arm]
        elif not isinstance(arm, Arm):
            raise DataError(f"arms: expected slugs or Arm objects, got {type(arm).__name__}")
        resolved.append(arm)
    if not resolved:
        raise DataError("arms: expected at least one arm, got none")
    slugs = [a.slug for a in resolved]
    if len(set(slugs)) != len(slugs):
        raise DataError(f"arms: expected distinct slugs, got {slugs}")
    return tuple(resolved)
