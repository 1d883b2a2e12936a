"""Paired verdicts with Holm, break-even costs, seed specs and the JSON document."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.verdict import (
    COMPARISONS,
    break_even_cost,
    comparisons_for,
    mean_sharpe_edge,
    paired_verdicts,
    to_json,
)
from e2e_portfolio.seeds import parse_seeds, seeds_text
from e2e_portfolio.significance import holm, paired_comparison


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("1,4,7") == [1, 4, 7]
    assert parse_seeds("0-2, 10") == [0, 1, 2, 10]
    with pytest.raises(DataError, match=r"seeds: expected each seed once, got '1,1'"):
        parse_seeds("1,1")
    with pytest.raises(DataError, match=r"--seeds: expected e.g. 0-29, 1,4,7 or 42, got 'ten'"):
        parse_seeds("ten", "--seeds")


@given(st.lists(st.integers(0, 60), unique=True, max_size=30))
def test_seeds_text_is_read_back_as_the_same_seeds(seeds):
    assert seeds_text(seeds) == "" or parse_seeds(seeds_text(seeds)) == seeds
    assert seeds_text(list(range(10))) == "0-9" and seeds_text([1, 4, 5, 6]) == "1,4-6"


def test_comparisons_cover_the_2x2_and_skip_missing_arms():
    assert ("e2e_risk", "decoupled_nll") in COMPARISONS
    assert ("e2e_return", "decoupled") in COMPARISONS
    assert ("e2e", "min_variance") in COMPARISONS
    assert len(set(COMPARISONS)) == len(COMPARISONS) == 9
    assert comparisons_for(["decoupled", "e2e"]) == [("e2e", "decoupled")]


def test_paired_verdicts_are_paired_comparisons_with_holm():
    rng = np.random.default_rng(42)
    sharpe = {arm: rng.normal(size=12) for arm in ("decoupled", "e2e", "min_variance")}
    sharpe["e2e"] = sharpe["decoupled"] + 0.8 + 0.1 * rng.normal(size=12)
    pairs = [("e2e", "decoupled"), ("min_variance", "decoupled"), ("e2e", "min_variance")]
    rows = paired_verdicts(sharpe, pairs)
    raw = [paired_comparison(sharpe[a], sharpe[b])["p_wilcoxon"] for a, b in pairs]
    np.testing.assert_allclose([r["p_holm"] for r in rows], holm(raw))
    assert rows[0]["mean"] == pytest.approx(np.mean(sharpe["e2e"] - sharpe["decoupled"]))
    assert rows[0]["win_rate"] == 1.0 and rows[0]["n"] == 12
    assert rows[0]["p_holm"] >= rows[0]["p"]


def test_break_even_cost_is_where_the_edge_vanishes():
    """An arm that earns 1% more per month but trades 0.5 more: the edge falls with the cost
    and vanishes in between; without an edge the cost is 0; an edge that no cost up to 10%
    removes gives None."""
    rng = np.random.default_rng(42)
    base = [rng.normal(0.005, 0.04, 48) for _ in range(5)]
    better = [b + 0.01 for b in base]
    low, high = [np.full(48, 0.1) for _ in base], [np.full(48, 0.6) for _ in base]
    cost = break_even_cost(better, high, base, low)
    assert cost is not None and 0 < cost < 0.1
    assert mean_sharpe_edge(better, high, base, low, cost) == pytest.approx(0.0, abs=1e-6)
    assert mean_sharpe_edge(better, high, base, low, 0.5 * cost) > 0
    # with equal volatility the Sharpe edge is zero where the mean edge is: 0.01 = 0.5 c
    assert cost == pytest.approx(0.02, rel=0.05)
    assert break_even_cost(base, high, better, low) == 0.0
    assert break_even_cost(better, low, base, low) is None


def test_json_document_is_valid_json_with_nan_as_null():
    verdict = [{"arm": "e2e", "versus": "decoupled", "mean": 0.1, "ci_low": float("nan"),
                "ci_high": 0.2, "win_rate": 1.0, "p": float("nan"),
                "p_holm": float("nan"), "n": 1}]  # fmt: skip
    document = to_json(["decoupled", "e2e"], verdict, [{"seed": 0, "arm": "e2e",
                       "sharpe": np.float64(1.5)}], {"tc": 0.005})  # fmt: skip
    text = json.dumps(document, allow_nan=False)
    again = json.loads(text)
    assert again["verdict"][0]["p_holm"] is None and again["per_seed"][0]["sharpe"] == 1.5
    assert set(again) == {"arms", "verdict", "per_seed", "config", "break_even", "gamma_edges"}
