"""Choosing gamma from a grid: ties to the smaller gamma, the grid's ends, widening."""

from __future__ import annotations

import numpy as np

from e2e_portfolio.backtest.gamma_grid import (
    WIDEN_STEPS,
    choose_gamma,
    gamma_edges,
    smallest_best,
)


def test_ties_in_validation_sharpe_go_to_the_smaller_gamma():
    """Two gammas giving the same corner portfolio score the same up to rounding: the
    smaller one is chosen, whichever rounding is larger."""
    grid = (0.5, 1.0, 2.0)
    assert smallest_best(grid, {0.5: 1.4185, 1.0: 1.4185 + 1e-15, 2.0: 1.1}) == 0.5
    assert smallest_best(grid, {0.5: 1.4, 1.0: 1.4185, 2.0: 1.1}) == 1.0
    assert smallest_best(grid, dict.fromkeys(grid, -np.inf)) == 0.5


def test_the_choice_says_which_end_it_sits_at():
    grid = (1.0, 2.0, 4.0)
    assert choose_gamma(grid, lambda g: -g).edge == "low"
    assert choose_gamma(grid, lambda g: g).edge == "high"
    assert choose_gamma(grid, lambda g: -((g - 2.0) ** 2)).edge is None


def test_widening_stops_inside_or_after_its_steps():
    """A score peaking at 32 on a grid 1..4: the grid doubles up to 64 and picks 32 inside;
    a score rising forever stops after WIDEN_STEPS doublings, still at the high end."""
    peaked = choose_gamma((1.0, 2.0, 4.0), lambda g: -abs(np.log2(g) - 5), widen=True)
    assert peaked.gamma == 32.0 and peaked.edge is None and max(peaked.scores) == 64.0
    rising = choose_gamma((1.0, 2.0, 4.0), lambda g: g, widen=True)
    assert rising.edge == "high" and rising.gamma == 4.0 * 2**WIDEN_STEPS
    assert list(rising.scores) == sorted(rising.scores)


def test_gamma_edges_count_each_end():
    tuning = {"plug_in": [{"edge": "low"}, {"edge": None}, {"edge": "high"}, {"edge": "high"}]}
    assert gamma_edges(tuning) == {"plug_in": {"refits": 4, "low": 1, "high": 2}}
