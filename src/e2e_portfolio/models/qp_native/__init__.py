"""Native batched solver of the mean-variance QP, with an exact implicit-KKT backward pass.

The package reads in the order of the algorithm:

- :mod:`.options`: :class:`SolverOptions`, the tolerances and limits;
- :mod:`.problem`: the batch in scale-free form, general rows, active sets;
- :mod:`.operators`: risk operators (dense ``R``, factor ``F, d``), regularised factorisations;
- :mod:`.epigraph`: the epigraph form's constraints, iterates and start;
- :mod:`.interior_point`: Mehrotra predictor-corrector on the epigraph form;
- :mod:`.kkt`: the bordered KKT solve on an active set (polish and backward);
- :mod:`.certificate`: the KKT certificate that accepts a solution;
- :mod:`.polish`: exact solve on a guessed active set, exchanges;
- :mod:`.solver`: the loop, per-problem statuses;
- :mod:`.backward`: implicit differentiation at the certified active set;
- :mod:`.function`: the autograd function, diagnostics and failure handling (raise or
  fallback; :mod:`.feasibility` tells infeasible problems from solver failures).
"""

from e2e_portfolio.models.qp_native.certificate import certify
from e2e_portfolio.models.qp_native.function import (
    NativeMeanVarianceFunction,
    OnFailure,
    QPFallbackWarning,
    QPInfo,
    Settings,
    WarmStart,
)
from e2e_portfolio.models.qp_native.operators import (
    DenseRisk,
    FactorRisk,
    as_risk_operator,
    factor_operator,
)
from e2e_portfolio.models.qp_native.options import SolverOptions
from e2e_portfolio.models.qp_native.polish import solve_active_set
from e2e_portfolio.models.qp_native.problem import ActiveSet, LinearRows, Problem, build_problem
from e2e_portfolio.models.qp_native.solver import STATUSES, Solution, solve

__all__ = [
    "STATUSES",
    "ActiveSet",
    "DenseRisk",
    "FactorRisk",
    "LinearRows",
    "NativeMeanVarianceFunction",
    "OnFailure",
    "Problem",
    "QPFallbackWarning",
    "QPInfo",
    "Settings",
    "Solution",
    "SolverOptions",
    "WarmStart",
    "as_risk_operator",
    "build_problem",
    "certify",
    "factor_operator",
    "solve",
    "solve_active_set",
]
