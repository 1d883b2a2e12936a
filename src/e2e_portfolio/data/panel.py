"""The factor panel: per-asset exposures and realised returns through time.

Every data source (the synthetic universe, the offline real datasets, yfinance, the
store) produces a :class:`FactorPanel`, and every model and backtest consumes one.

Timing convention, the one thing to get right:

- ``exposures[t]`` is known at the close of ``dates[t]`` (built from data up to ``t``);
- ``returns[t]`` is the return realised over the period that *ends* at ``dates[t]``.

The target for the exposures at ``t`` is therefore ``returns[t + 1]``; see
:meth:`FactorPanel.supervised_pairs`.

A changing universe: ``returns[t, i]`` is NaN where asset ``i`` is not listed over the period
ending at ``t``. Each asset is listed over one unbroken span (a late listing starts it, a
delisting ends it: its last return is the last finite one, then it is out); gaps inside the
span are an error. Exposures may be NaN where they are not known (before an asset has the
history its features need). :attr:`FactorPanel.listed` is the mask; a panel with every asset
listed on every date and finite exposures is :attr:`~FactorPanel.is_complete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from e2e_portfolio._typing import FloatArray
from e2e_portfolio.exceptions import DataError, NaNError

RETURN_COLUMN = "return"


@dataclass(frozen=True, eq=False)
class FactorPanel:
    """Exposures and returns of ``n_assets`` assets on ``n_dates`` dates.

    Parameters
    ----------
    name : str
        Identifier, also the key in the store.
    dates : pandas.DatetimeIndex, (n_dates,)
        Strictly increasing period-end dates.
    assets : sequence of str, (n_assets,)
        Unique asset identifiers.
    features : sequence of str, (n_features,)
        Unique exposure names.
    exposures : ndarray, (n_dates, n_assets, n_features)
        Exposures known at the close of each date.
    returns : ndarray, (n_dates, n_assets)
        Simple returns realised over the period ending at each date.
    description : str
        Free text: source, units, whether returns are in excess of a risk-free rate.
    sectors : sequence of str, optional
        One sector (industry) label per asset, for sector caps (``e2e compare
        --sector-max``); None when unknown.
    """

    name: str
    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    features: tuple[str, ...]
    exposures: FloatArray
    returns: FloatArray
    description: str = field(default="")
    sectors: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DataError(f"name: expected a non-empty string, got {self.name!r}")
        dates = pd.DatetimeIndex(pd.DatetimeIndex(self.dates).as_unit("ns").to_numpy(), name="date")
        assets = tuple(str(a) for a in self.assets)
        features = tuple(str(f) for f in self.features)
        # the panel's own C-contiguous copies: made read-only below, whatever the source
        # (a store's pivot, a user's strided view) and wherever the panel is sent (pickling)
        exposures = np.array(self.exposures, dtype=np.float64, order="C")
        returns = np.array(self.returns, dtype=np.float64, order="C")
        _check_labels("assets", assets, minimum=2)
        _check_labels("features", features, minimum=1)
        if len(dates) < 2:
            raise DataError(f"dates: expected at least 2 dates, got {len(dates)}")
        if not dates.is_monotonic_increasing or not dates.is_unique:
            raise DataError("dates: expected strictly increasing dates, got unsorted or repeated")
        expected = (len(dates), len(assets), len(features))
        if exposures.shape != expected:
            raise DataError(f"exposures: expected shape {expected}, got {exposures.shape}")
        if returns.shape != expected[:2]:
            raise DataError(f"returns: expected shape {expected[:2]}, got {returns.shape}")
        for label, values in (("exposures", exposures), ("returns", returns)):
            if np.isinf(values).any():
                raise NaNError(f"{label}: expected finite values or NaN (unknown), got inf")
        check_listing(returns, dates, assets)
        sectors = None if self.sectors is None else tuple(str(s) for s in self.sectors)
        if sectors is not None:
            if len(sectors) != len(assets):
                raise DataError(
                    f"sectors: expected one label per asset ({len(assets)}), got {len(sectors)}"
                )
            if any(not label.strip() for label in sectors):
                raise DataError("sectors: expected non-empty labels, got an empty one")
        object.__setattr__(self, "sectors", sectors)
        exposures.setflags(write=False)
        returns.setflags(write=False)
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "assets", assets)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "exposures", exposures)
        object.__setattr__(self, "returns", returns)

    def __reduce__(self) -> tuple[type[FactorPanel], tuple]:
        """Pickle through the constructor: a copy in a worker process is read-only too."""
        return (type(self), (self.name, self.dates, self.assets, self.features,
                             self.exposures, self.returns, self.description,
                             self.sectors))  # fmt: skip

    @property
    def listed(self) -> np.ndarray:
        """(n_dates, n_assets) bool: the asset has a return over the period ending then."""
        return np.isfinite(self.returns)

    @property
    def is_complete(self) -> bool:
        """Every asset listed on every date, every exposure known."""
        return bool(self.listed.all() and np.isfinite(self.exposures).all())

    @property
    def n_dates(self) -> int:
        """Number of dates."""
        return len(self.dates)

    @property
    def n_assets(self) -> int:
        """Number of assets."""
        return len(self.assets)

    @property
    def n_features(self) -> int:
        """Number of exposures per asset."""
        return len(self.features)

    def supervised_pairs(self) -> tuple[FloatArray, FloatArray]:
        """Exposures and the returns they forecast.

        Returns
        -------
        x : ndarray, (n_dates - 1, n_assets, n_features)
            ``exposures[:-1]``.
        y : ndarray, (n_dates - 1, n_assets)
            ``returns[1:]``, the next-period returns.
        """
        return self.exposures[:-1], self.returns[1:]

    def returns_frame(self) -> pd.DataFrame:
        """Returns as a (n_dates, n_assets) frame indexed by date."""
        return pd.DataFrame(self.returns, index=self.dates, columns=list(self.assets))

    def to_frame(self) -> pd.DataFrame:
        """Long frame indexed by (date, asset) with one column per feature plus ``return``."""
        index = pd.MultiIndex.from_product([self.dates, self.assets], names=["date", "asset"])
        frame = pd.DataFrame(
            self.exposures.reshape(-1, self.n_features), index=index, columns=list(self.features)
        )
        frame[RETURN_COLUMN] = self.returns.reshape(-1)
        return frame

    @classmethod
    def from_frame(
        cls,
        name: str,
        frame: pd.DataFrame,
        description: str = "",
        sectors: Sequence[str] | None = None,
    ) -> FactorPanel:
        """Inverse of :meth:`to_frame`; the frame must hold every (date, asset) pair.

        ``sectors``: one label per asset in the frame's first-seen asset order, or None.

        Rows may come in any order: dates are sorted, assets keep their first-seen order.
        """
        if list(frame.index.names) != ["date", "asset"]:
            raise DataError(
                f"frame: expected an index named ['date', 'asset'], got {list(frame.index.names)}"
            )
        if RETURN_COLUMN not in frame.columns:
            raise DataError(
                f"frame: expected a {RETURN_COLUMN!r} column, got {list(frame.columns)}"
            )
        dates = pd.DatetimeIndex(frame.index.get_level_values("date").unique()).sort_values()
        assets = list(frame.index.get_level_values("asset").unique())
        features = [c for c in frame.columns if c != RETURN_COLUMN]
        if len(frame) != len(dates) * len(assets) or frame.index.has_duplicates:
            raise DataError(
                f"frame: expected one row per (date, asset) pair ({len(dates)} x {len(assets)}), "
                f"got {len(frame)} rows"
            )
        full = pd.MultiIndex.from_product([dates, assets], names=["date", "asset"])
        ordered = frame.reindex(full)
        return cls(
            name=name,
            dates=dates,
            assets=tuple(assets),
            features=tuple(features),
            exposures=ordered[features].to_numpy().reshape(len(dates), len(assets), -1),
            returns=ordered[RETURN_COLUMN].to_numpy().reshape(len(dates), len(assets)),
            description=description,
            sectors=None if sectors is None else tuple(sectors),
        )

    def window(self, start: int, stop: int) -> FactorPanel:
        """The sub-panel of dates ``start:stop`` (positions, end exclusive)."""
        return FactorPanel(
            name=self.name,
            dates=self.dates[start:stop],
            assets=self.assets,
            features=self.features,
            exposures=self.exposures[start:stop],
            returns=self.returns[start:stop],
            description=self.description,
            sectors=self.sectors,
        )

    def equals(self, other: FactorPanel) -> bool:
        """Exact equality of labels and values (dates, assets, features, sectors, data)."""
        return (
            self.name == other.name
            and self.dates.equals(other.dates)
            and self.assets == other.assets
            and self.features == other.features
            and self.sectors == other.sectors
            and np.array_equal(self.exposures, other.exposures)
            and np.array_equal(self.returns, other.returns)
        )


def check_listing(returns: np.ndarray, dates: pd.DatetimeIndex, assets: tuple[str, ...]) -> None:
    """Each asset is listed over one unbroken span of dates (NaN before and after only)."""
    listed = np.isfinite(returns)
    for i, asset in enumerate(assets):
        rows = np.flatnonzero(listed[:, i])
        if rows.size == 0:
            raise NaNError(f"returns: asset {asset!r} has no return on any date")
        gaps = np.flatnonzero(~listed[rows[0] : rows[-1] + 1, i])
        if gaps.size:
            date = dates[rows[0] + gaps[0]]
            raise NaNError(
                f"returns: asset {asset!r} has no return at {date:%Y-%m-%d} between its first "
                f"({dates[rows[0]]:%Y-%m-%d}) and last ({dates[rows[-1]]:%Y-%m-%d}); a listing "
                "must be unbroken (late listings and delistings are fine)"
            )


def _check_labels(argument: str, labels: Sequence[str], minimum: int) -> None:
    if len(labels) < minimum:
        raise DataError(f"{argument}: expected at least {minimum}, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise DataError(f"{argument}: expected unique names, got duplicates")
