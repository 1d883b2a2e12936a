"""Experiments run end to end, and sweeps of them.

:mod:`.shrinkage` walks the three covariance shrinkage methods forward on the backtest engine
and pairs them across seeds; :mod:`.runs` runs the shrinkage and compare experiments on a panel
and builds the stored run record; :mod:`.sweep` runs grids of them over seeds and
configurations, locally or on Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from e2e_portfolio._lazy import lazy_exports

if TYPE_CHECKING:  # the real names, for type checkers and IDEs
    from e2e_portfolio.experiments.runs import (
        COMPARED_STRATEGIES,
        compare_strategies,
        resolve_panel,
        shrink_history,
        shrink_synthetic,
        walk_forward_frames,
    )
    from e2e_portfolio.experiments.shrinkage import (
        WalkForwardResult,
        edge_across_seeds,
        walk_forward,
    )
    from e2e_portfolio.experiments.sweep import expand_grid, read_grid, run_sweep, summarise

_EXPORTS = {
    "COMPARED_STRATEGIES": "runs",
    "compare_strategies": "runs",
    "resolve_panel": "runs",
    "shrink_history": "runs",
    "shrink_synthetic": "runs",
    "walk_forward_frames": "runs",
    "WalkForwardResult": "shrinkage",
    "edge_across_seeds": "shrinkage",
    "walk_forward": "shrinkage",
    "expand_grid": "sweep",
    "read_grid": "sweep",
    "run_sweep": "sweep",
    "summarise": "sweep",
}
__all__ = [
    "COMPARED_STRATEGIES",
    "WalkForwardResult",
    "compare_strategies",
    "edge_across_seeds",
    "expand_grid",
    "read_grid",
    "resolve_panel",
    "run_sweep",
    "shrink_history",
    "shrink_synthetic",
    "summarise",
    "walk_forward",
    "walk_forward_frames",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
