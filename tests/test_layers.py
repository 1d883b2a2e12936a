"""Imports go down the pipeline only: a module never imports from a layer above its own."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "e2e_portfolio"
LAYERS = {
    # the ground floor: no pipeline imports at all
    "_lazy": 0, "_typing": 0, "exceptions": 0, "annualisation": 0, "significance": 0, "config": 0,
    "turnover": 0, "seeds": 0, "slugs": 0,
    "data": 1, "models": 2, "backtest": 3, "experiments": 4, "attribution": 5, "report": 5,
    "apps": 6,
}  # fmt: skip


def _layer(relative: Path) -> int:
    top = relative.parts[0].removesuffix(".py")
    return LAYERS.get(top, len(LAYERS))


def test_no_module_imports_from_a_higher_layer():
    offences = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.name in {"__init__.py", "__main__.py"} and len(relative.parts) == 1:
            continue  # the package's own front door re-exports from every layer
        own = _layer(relative)
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"^\s*(?:from|import) e2e_portfolio\.(\w+)", text, re.M):
            if LAYERS.get(target, len(LAYERS)) > own:
                offences.append(f"{relative} imports e2e_portfolio.{target}")
    assert not offences, offences
