"""The native solver's tolerances and limits, as one frozen value given to the layer.

Every number is on the unit scale of :mod:`~e2e_portfolio.models.qp_native.problem` (the
objective divided by its own size), so one set of defaults serves problems of any scale.
The defaults are the values the solver was measured and tested with; change them to trade
time against robustness (e.g. ``max_ipm_iterations``) or to test failure handling.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SolverOptions:
    """Tolerances, iteration limits and polish rounds of the native solver.

    Parameters
    ----------
    kkt_tolerance : float
        Largest accepted KKT residual (stationarity, feasibility, multiplier signs).
    max_ipm_iterations : int
        Most float64 interior-point iterations.
    low_precision_iterations : int
        Most float32 interior-point iterations before the float64 ones (0 turns them off).
    low_precision_gap : float
        Mean gap at which an uncertified problem leaves float32 for float64.
    polish_gap : float
        Mean complementarity gap below which the exact polish is first tried.
    turnover_polish_gap : float
        The same with the turnover term, whose kink needs the interior point closer.
    exchanges_per_trial : int
        Active-set exchanges after a failed polish inside the loop (none with turnover).
    hint_exchanges : int
        Exchanges from a warm start's active set before the interior point takes over.
    max_polish_rounds : int
        Exchanges of the last resort, after the interior point's iterations ran out.
    max_refinements : int
        Most iterative-refinement steps after a regularised solve.
    refinement_tolerance : float
        A problem stops refining once its KKT residual is below this.
    regularisation : float
        Proximal term of the interior point's Newton systems.
    polish_regularisation : float
        Proximal term of the polish and backward solves (removed by refinement).
    retry_factor : float
        After a failed polish, the next waits for the problem's gap to fall by this factor.
    divergence_factor : float
        A gap this many times above the smallest one reached means the iterates diverge.
    compact_fraction : float
        The working set is cut down to its running problems once they are at most this share.
    cvxpylayers_tolerance : float
        Clarabel's gap and feasibility tolerances inside cvxpylayers (``backend="cvxpylayers"``
        only); its own default, 1e-8, leaves weights about 1e-5 from the optimum on weakly
        curved problems: tighten it where that backend is the reference.
    """

    kkt_tolerance: float = 1e-9
    max_ipm_iterations: int = 60
    low_precision_iterations: int = 30
    low_precision_gap: float = 1e-10
    polish_gap: float = 1e-6
    turnover_polish_gap: float = 1e-8
    exchanges_per_trial: int = 2
    hint_exchanges: int = 6
    max_polish_rounds: int = 20
    max_refinements: int = 30
    refinement_tolerance: float = 1e-12
    regularisation: float = 1e-9
    polish_regularisation: float = 1e-12
    retry_factor: float = 1e-2
    divergence_factor: float = 1e6
    compact_fraction: float = 0.5
    cvxpylayers_tolerance: float = 1e-8

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{field.name}: expected an integer >= 0, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{field.name}: expected a number > 0, got {value!r}")
        if not self.compact_fraction <= 1:
            raise ValueError(f"compact_fraction: expected at most 1, got {self.compact_fraction}")
        if not self.retry_factor < 1:
            raise ValueError(f"retry_factor: expected below 1, got {self.retry_factor}")


DEFAULT_OPTIONS = SolverOptions()
