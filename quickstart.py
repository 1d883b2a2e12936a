#!/usr/bin/env python3
"""Set up a virtual environment and run the headline experiment or the test suite.

Usage::

    python3 quickstart.py run     # set up, then run the headline experiment
    python3 quickstart.py test    # set up, then run the whole test suite

Needs nothing but Python >= 3.11. The first call creates ``.venv`` beside this file,
installs a pinned CPU build of torch first (an unpinned torch pulls a multi-GB CUDA
build on Linux), then this package with its ``dev`` extra. Later calls reuse the
environment and reinstall only when ``pyproject.toml`` changed. Extra arguments after
the command are passed on (to ``e2e`` for ``run``, to ``pytest`` for ``test``).

Environment variables:
    E2E_TORCH_SPEC   pip requirement for torch (default ``torch==2.13.0``).
    E2E_VENV         where the virtual environment lives (default ``.venv``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("E2E_VENV", ROOT / ".venv"))
TORCH_SPEC = os.environ.get("E2E_TORCH_SPEC", "torch==2.13.0")
EXTRAS = "dev"
# the main job: the headline experiment on its defaults (synthetic data, local DuckDB file)
HEADLINE = [["shrink"]]


def _venv_python() -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return VENV / sub


def _run(cmd: list[str | Path]) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def _install_fingerprint() -> str:
    text = (ROOT / "pyproject.toml").read_bytes() + TORCH_SPEC.encode() + EXTRAS.encode()
    return hashlib.sha256(text).hexdigest()


def setup() -> Path:
    """Create the environment if needed and install the package; return its python."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under the system Python
        sys.exit(f"e2e-portfolio needs Python >= 3.11, got {sys.version.split()[0]}")
    python = _venv_python()
    if not python.exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / ".e2e-install-stamp"
    fingerprint = _install_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return python
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--quiet", "--upgrade", "pip"])
    _run([*pip, "install", "--quiet", TORCH_SPEC])
    _run([*pip, "install", "--quiet", "-e", f".[{EXTRAS}]"])
    stamp.write_text(fingerprint)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = setup()
    if command == "setup":
        return 0
    if command == "run":
        for args in [rest] if rest else HEADLINE:
            cli = [str(python), "-m", "e2e_portfolio", *args]
            code = subprocess.run(cli, cwd=ROOT).returncode
            if code:
                return code
        return 0
    tests = [python, "-m", "pytest", *rest]
    return subprocess.run([str(c) for c in tests], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
