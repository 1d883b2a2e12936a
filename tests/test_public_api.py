"""The public API: every exported name resolves, lazily, to the object its module defines."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = [
    "e2e_portfolio",
    "e2e_portfolio.data",
    "e2e_portfolio.models",
    "e2e_portfolio.backtest",
    "e2e_portfolio.attribution",
    "e2e_portfolio.report",
    "e2e_portfolio.experiments",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if name != "__version__":
            origin = importlib.import_module(f"{package}.{module._EXPORTS[name]}")
            assert value is getattr(origin, name), name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_top_level_imports_are_lazy():
    """``import e2e_portfolio`` loads no torch; the first exported layer does."""
    code = (
        "import sys, e2e_portfolio; assert 'torch' not in sys.modules; "
        "from e2e_portfolio import MeanVarianceQP, PastView, run_comparison; "
        "assert 'torch' in sys.modules; print(MeanVarianceQP.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "MeanVarianceQP"
