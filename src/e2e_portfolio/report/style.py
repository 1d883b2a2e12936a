"""One visual language: a fixed colour and dash per method, and one way to write numbers.

Colours are the Okabe-Ito palette and, for the methods beyond its eight, Paul Tol's muted
scheme (both distinguishable under the common colour-vision deficiencies), one per slug; the
report, the Streamlit app and the static page all take them from here, set
explicitly on every trace, so a method has the same colour in every figure whatever the
order of the traces. Numbers: percentages as percentages, drawdowns as negative percentages,
counts as integers, p-values to two significant figures with ``< 0.001``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from e2e_portfolio.slugs import canonical

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
TOL_MUTED = {
    "indigo": "#332288",
    "wine": "#882255",
    "olive": "#999933",
    "teal": "#44AA99",
    "rose": "#CC6677",
}
"""Paul Tol's muted scheme, for the methods beyond Okabe-Ito's eight (also colour-blind safe)."""
_C = {**OKABE_ITO, **TOL_MUTED}
STYLES: dict[str, tuple[str, str]] = {
    # the arms of e2e compare
    "equal_weight": (_C["black"], "dot"),
    "min_variance": (_C["sky blue"], "dash"),
    "plug_in": (_C["olive"], "dashdot"),  # the sample covariance, in compare as in shrink
    "decoupled": (_C["blue"], "solid"),
    "decoupled_nll": (_C["bluish green"], "dash"),
    "e2e": (_C["vermillion"], "solid"),
    "e2e_risk": (_C["orange"], "solid"),
    "e2e_return": (_C["reddish purple"], "dash"),
    # the further methods of e2e shrink
    "ledoit_wolf": (_C["indigo"], "solid"),
    "decision_aware": (_C["wine"], "solid"),
    "oas": (_C["teal"], "dash"),
    "nonlinear": (_C["rose"], "dash"),
}
"""Colour and dash per slug (:mod:`e2e_portfolio.slugs`): no two methods share a colour."""
OTHER = ("#999999", "solid")
_SEED = re.compile(r"/seed=(\d+)$")


def method_of(name: str) -> str:
    """The method of a series name: ``"e2e/seed=3"`` -> ``"e2e"`` (earlier spellings read)."""
    return canonical(_SEED.sub("", name))


def seed_of(name: str) -> int | None:
    """The seed of a series name, or None."""
    match = _SEED.search(name)
    return int(match.group(1)) if match else None


def colour(name: str) -> str:
    """The method's fixed colour (grey for names it does not know)."""
    return STYLES.get(method_of(name), OTHER)[0]


def dash(name: str) -> str:
    """The method's fixed dash."""
    return STYLES.get(method_of(name), OTHER)[1]


def p_value(value: float | None) -> str:
    """Two significant figures, ``< 0.001`` below, ``n/a`` for a missing value."""
    if value is None or value != value:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def percent(value: float, signed: bool = False) -> str:
    """``0.2247`` -> ``22.47%`` (``+22.47%`` when ``signed``)."""
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def p_phrase(value: float | None) -> str:
    """``= 0.013`` or ``< 0.001``, to follow "p" in a sentence."""
    text = p_value(value)
    return text if text.startswith("<") else f"= {text}"


def interval(row: Mapping[str, float]) -> str:
    """``[-0.12, +0.34]`` from ``ci_low`` and ``ci_high``; ``n/a`` when undefined (one seed)."""
    low, high = row["ci_low"], row["ci_high"]
    if low is None or high is None or low != low or high != high:
        return "n/a"
    return f"[{low:+.2f}, {high:+.2f}]"


def mean_ci(value: float, half: float) -> str:
    """``0.291 ± 0.050``: a mean and its CI half-width (the mean alone with one seed)."""
    if value != value:
        return ""
    return f"{value:.3f}" if half != half else f"{value:.3f} ± {half:.3f}"
