"""The one way seeds are written, in every command and file: ``0-9``, ``1,4,7``, ``0-4,10``.

Ranges are inclusive; each seed may appear once. :func:`parse_seeds` reads the text and
:func:`seeds_text` writes a list back in the shortest form (``0-9``, ``1,4,7``), so messages,
tables and stored runs show seeds as they would be typed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from e2e_portfolio.exceptions import DataError

__all__ = ["parse_seeds", "seeds_text"]


def parse_seeds(spec: str, option: str = "seeds") -> list[int]:
    """Seeds from ``"0-29"``, ``"1,4,7"``, ``"42"`` or ``"0-4,10"`` (ranges inclusive), in order.

    Raises
    ------
    DataError
        Naming ``option``: not that form, a range high-low, or a seed twice.
    """
    seeds: list[int] = []
    for part in str(spec).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise DataError(f"{option}: expected e.g. 0-29, 1,4,7 or 42, got {spec!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise DataError(f"{option}: expected ranges low-high, got {part.strip()!r}")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise DataError(f"{option}: expected each seed once, got {spec!r}")
    return seeds


def seeds_text(seeds: Sequence[int]) -> str:
    """The seeds as they would be typed: runs of consecutive seeds as ranges (``0-9,12``)."""
    parts: list[str] = []
    values = [int(s) for s in seeds]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if j == i else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)
