"""Every exception the package defines survives pickling (workers raise, the parent reports)."""

from __future__ import annotations

import inspect
import pickle

import pytest

import e2e_portfolio.exceptions as exceptions
from e2e_portfolio.models.qp_native.function import QPFallbackWarning

EXAMPLES = {
    "E2EPortfolioError": ("something failed",),
    "DataError": ("window: expected at least 12, got 3",),
    "NaNError": ("returns: expected finite values, got NaN",),
    "StoreError": ("store.duckdb: not a DuckDB store",),
    "PanelExistsError": ("store.duckdb", "mine"),
    "StrategyError": ("e2e", "2001-01", "expected finite weights, got nan"),
    "DataSourceError": ("yfinance: no network",),
    "SolverError": ("2 problems failed", "max_iterations", [3, 7]),
}
DEFINED = sorted(
    name
    for name, value in vars(exceptions).items()
    if inspect.isclass(value)
    and issubclass(value, Exception)
    and value.__module__ == exceptions.__name__
)


def test_every_exception_has_an_example():
    assert sorted(EXAMPLES) == DEFINED


@pytest.mark.parametrize("name", DEFINED)
def test_exception_round_trips_through_pickle(name):
    error = getattr(exceptions, name)(*EXAMPLES[name])
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_qp_fallback_warning_round_trips_through_pickle():
    warning = QPFallbackWarning("problems [1] re-solved with Clarabel")
    assert str(pickle.loads(pickle.dumps(warning))) == str(warning)
