"""One slug per method, in every table, JSON document, stored run and colour.

Slugs are lower case with underscores: the arms of ``e2e compare`` (``e2e``, ``decoupled``,
``plug_in``, ...), the methods of ``e2e shrink`` (``plug_in``, ``ledoit_wolf``,
``decision_aware``, ``oas``, ``nonlinear``) and the risk models (``sample``, ``ledoit_wolf``,
...). Runs stored before this spelling used hyphens; :func:`canonical` reads them, so an old
run keeps its colours and an old option value still works.
"""

from __future__ import annotations

__all__ = ["LEGACY", "canonical"]

LEGACY = {
    "plug-in": "plug_in",
    "ledoit-wolf": "ledoit_wolf",
    "decision-aware": "decision_aware",
    "end-to-end": "e2e",
}
"""Earlier spellings and the slug each now is."""


def canonical(name: str) -> str:
    """The slug of ``name``: itself, or what an earlier spelling now is."""
    return LEGACY.get(name, name)
