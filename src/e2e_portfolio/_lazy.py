"""Exports imported on first use (PEP 562), shared by the package's ``__init__`` modules.

Importing a package then stays cheap, and its numpy-only modules keep working without torch
(the browser demo runs them under Pyodide).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package.

    The name ``n`` lives in the submodule ``exports[n]`` of ``package``; ``namespace`` is
    the package's ``globals()``.
    """

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
