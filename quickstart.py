#!/usr/bin/env python3
"""Set up a virtual environment and run the headline experiment or the test suite.

Usage::

    python3 quickstart.py run     # set up (light), then run the headline experiment
    python3 quickstart.py test    # set up (with the dev extra), then run the whole test suite
    python3 quickstart.py docs    # set up (with the docs extra), then build docs/_build/html
    python3 quickstart.py lock    # regenerate requirements/*.lock from pyproject.toml
                                  # (or only some: python3 quickstart.py lock docs)

Needs nothing but Python >= 3.11. The first call creates ``.venv`` beside this file,
installs a pinned CPU build of torch first (an unpinned torch pulls a multi-GB CUDA
build on Linux), then the exact versions of ``requirements/run.lock`` (what the main job
needs), ``requirements/dev.lock`` (everything the tests need) or ``requirements/docs.lock``
(the tests' and Sphinx's), then this package itself without touching those pins. Later calls
reuse the environment and reinstall only when ``pyproject.toml`` or a lock file changed; a
``docs`` environment also serves ``test``, and a ``test`` one ``run``. ``docs`` builds the
site offline with warnings as errors, executing the examples gallery
(``docs/_build/html/index.html``).
Extra arguments after the command are passed on (to ``e2e`` for ``run``, to ``pytest``
for ``test``).

Environment variables:
    E2E_TORCH_SPEC   pip requirement for torch (default ``torch==2.13.0``).
    E2E_VENV         where the virtual environment lives (default ``.venv``).
    E2E_UNLOCKED     set to 1 to install the newest versions ``pyproject.toml`` allows
                     instead of the lock files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("E2E_VENV", ROOT / ".venv"))
TORCH_SPEC = os.environ.get("E2E_TORCH_SPEC", "torch==2.13.0")
UNLOCKED = os.environ.get("E2E_UNLOCKED", "") == "1"
LOCKS = ROOT / "requirements"
PROFILES = {"run": "", "test": "dev", "docs": "docs"}
"""Which extra each command installs: the main job needs only the base dependencies."""
SERVES = {"run": ("run", "test", "docs"), "test": ("test", "docs"), "docs": ("docs",)}
"""The environments that already hold what each command needs."""
UNLOCKED_NAMES = ("torch", "triton", "nvidia-", "e2e-portfolio")
"""Left out of the lock files: torch comes from ``E2E_TORCH_SPEC`` (its CPU build), and the
package itself is installed from the working tree."""
# the main job: the headline experiment on its defaults (synthetic data, local DuckDB file)
HEADLINE = [["shrink"]]


def _venv_python(where: Path = VENV) -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return where / sub


def _run(cmd: list[str | Path]) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def _lock_file(profile: str) -> Path:
    return LOCKS / f"{PROFILES[profile] or 'run'}.lock"


def _fingerprint(profile: str) -> str:
    text = (ROOT / "pyproject.toml").read_bytes() + TORCH_SPEC.encode() + profile.encode()
    lock = _lock_file(profile)
    if not UNLOCKED and lock.exists():
        text += lock.read_bytes()
    return hashlib.sha256(text + str(UNLOCKED).encode()).hexdigest()


def _pip(python: Path) -> list[str | Path]:
    return [python, "-m", "pip", "--disable-pip-version-check"]


def _install(python: Path, profile: str, locked: bool) -> None:
    pip = _pip(python)
    _run([*pip, "install", "--quiet", "--upgrade", "pip"])
    _run([*pip, "install", "--quiet", TORCH_SPEC])
    extra = PROFILES[profile]
    target = f".[{extra}]" if extra else "."
    if locked:
        _run([*pip, "install", "--quiet", "-r", _lock_file(profile)])
        _run([*pip, "install", "--quiet", "--no-deps", "-e", target])
    else:
        _run([*pip, "install", "--quiet", "-e", target])


def setup(profile: str = "test") -> Path:
    """Create the environment if needed and install the package; return its python."""
    if sys.version_info < (3, 11):  # noqa: UP036 - runs under the system Python
        sys.exit(f"e2e-portfolio needs Python >= 3.11, got {sys.version.split()[0]}")
    python = _venv_python()
    if not python.exists():
        print(f"Creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    stamp = VENV / ".e2e-install-stamp"
    done = stamp.read_text().splitlines() if stamp.exists() else []
    # a docs environment holds everything the tests need, a test one the main job's
    if any(_fingerprint(other) in done for other in SERVES[profile]):
        return python
    locked = not UNLOCKED and _lock_file(profile).exists()
    _install(python, profile, locked)
    stamp.write_text(_fingerprint(profile) + "\n")
    return python


def lock(profiles: list[str]) -> int:
    """Resolve each profile (all by default) in a fresh environment; write its exact versions."""
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        print(f"lock: expected profiles from {', '.join(PROFILES)}, got {unknown}")
        return 2
    LOCKS.mkdir(exist_ok=True)
    for profile in profiles or PROFILES:
        with tempfile.TemporaryDirectory() as folder:
            where = Path(folder) / "venv"
            venv.EnvBuilder(with_pip=True, clear=True).create(where)
            python = _venv_python(where)
            _install(python, profile, locked=False)
            frozen = subprocess.run(
                [str(python), "-m", "pip", "freeze", "--exclude-editable"],
                check=True, capture_output=True, text=True,
            ).stdout.splitlines()  # fmt: skip
        pins = sorted(
            (line for line in frozen if not line.lower().startswith(UNLOCKED_NAMES)),
            key=str.lower,
        )
        header = (
            f"# exact versions for `python3 quickstart.py {profile}` (torch comes from "
            f"E2E_TORCH_SPEC);\n# generated from pyproject.toml by `python3 quickstart.py "
            f"lock`, with {sys.version.split()[0]} on {sys.platform}\n"
        )
        _lock_file(profile).write_text(header + "\n".join(pins) + "\n")
        print(f"wrote {_lock_file(profile).relative_to(ROOT)} ({len(pins)} packages)")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "docs", "setup", "lock"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "lock":
        return lock(rest)
    python = setup(command if command in PROFILES else "test")
    if command == "setup":
        return 0
    if command == "docs":
        build = [python, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs",
                 "docs/_build/html", *rest]  # fmt: skip
        return subprocess.run([str(c) for c in build], cwd=ROOT).returncode
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
