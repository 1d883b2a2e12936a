"""Exceptions raised by e2e-portfolio.

Bad argument values raise the built-in :class:`ValueError` (or one of the subclasses
below), bad types :class:`TypeError`. Failures of data sources, of the store and of
solvers have their own small hierarchy so callers can catch them precisely.

Every exception here survives pickling (a worker process raises it, the parent re-raises
it): those whose constructor takes other arguments than the message say how to rebuild them
(``__reduce__``).
"""

from __future__ import annotations


class E2EPortfolioError(Exception):
    """Base class of every exception this package defines."""


class DataError(E2EPortfolioError, ValueError):
    """Input data are malformed: wrong shape, unsorted dates, unknown names."""


class NaNError(DataError):
    """Input data contain NaN or infinite values where finite values are required."""


class StoreError(E2EPortfolioError):
    """The DuckDB store cannot be read or written (missing, corrupt, wrong schema)."""


class PanelExistsError(StoreError):
    """A panel of that name is already stored (and replacing it was not asked for)."""

    def __init__(self, path: object, name: str) -> None:
        super().__init__(
            f"{path}: panel {name!r} is already stored; pass replace=True to overwrite it"
        )
        self.path, self.name = path, name

    def __reduce__(self) -> tuple[type[PanelExistsError], tuple[object, str]]:
        return (type(self), (self.path, self.name))


class StrategyError(E2EPortfolioError):
    """A strategy raised, or returned weights it may not, at a named date."""

    def __init__(self, name: str, date: object, message: str) -> None:
        super().__init__(f"{name}: at {date}: {message}")
        self.name, self.date, self.message = name, date, message

    def __reduce__(self) -> tuple[type[StrategyError], tuple[str, object, str]]:
        return (type(self), (self.name, self.date, self.message))


class DataSourceError(E2EPortfolioError):
    """An external data source (for example yfinance) could not deliver data."""


class SolverError(E2EPortfolioError, RuntimeError):
    """An optimisation solver failed.

    ``status`` holds the solver's own status and ``indices`` the batch indices of the
    failed problems (empty when not known).
    """

    def __init__(self, message: str, status: str, indices: list[int] | None = None) -> None:
        super().__init__(f"{message} (solver status: {status})")
        self.message, self.status = message, status
        self.indices = list(indices or [])

    def __reduce__(self) -> tuple[type[SolverError], tuple[str, str, list[int]]]:
        return (type(self), (self.message, self.status, self.indices))
