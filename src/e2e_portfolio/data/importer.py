"""Your own return history as a :class:`~e2e_portfolio.data.panel.FactorPanel`.

:func:`import_returns` reads a CSV or Parquet file in one of two layouts:

- **wide**: one row per date, the first column the date (any name), one column per asset;
- **long**: columns ``date``, ``asset``, ``return`` (any case), and optionally further numeric
  columns: per-asset characteristics, used as the panel's exposures.

Returns are simple returns as decimals (``0.012``), or in percent with ``percent=True``.
Daily or weekly data are compounded to calendar months, ``prod(1 + r) - 1`` over the
periods of each month, dated at the month end (characteristics: their last value in the
month); the import notes say so. Without characteristics the exposures are the past-only
features of :mod:`e2e_portfolio.data.features`.

Missing values (an empty cell, or a date and asset absent from a long file) mean the asset is
not listed then: a late listing or a delisting. Each asset's listing must be unbroken, and
after a delisting the asset is out (see :mod:`e2e_portfolio.backtest.walkforward`). Daily or
weekly data with missing days are compounded over the days present.

Checks, each an error naming the row (1-based, as a spreadsheet shows it, counting the
header) and column, or the date and asset: a date that does not parse, a duplicate date (or
date and asset), dates out of order, irregular spacing (a gap of more than one period), a
cell that is not a number, a return of -100% or less, and a gap inside an asset's listing.
A monthly return beyond +-100% is accepted with a note (returns in percent without
``percent=True`` look like this).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from e2e_portfolio.data.features import MONTHLY_SPACING, build_features, spacing_days
from e2e_portfolio.data.panel import FactorPanel
from e2e_portfolio.exceptions import DataError

LONG_COLUMNS = ("date", "asset", "return")
FREQUENCIES = {"daily": (1, 4), "weekly": (5, 9), "monthly": MONTHLY_SPACING}
"""Median spacing of the dates in days that identifies each frequency (inclusive bounds)."""
MAX_GAP = {"daily": 10, "weekly": 15, "monthly": 45}
"""The largest gap in days between consecutive dates that is still regular."""
IMPLAUSIBLE = 1.0
"""A monthly return beyond this (100%) gets a note: returns in percent, or a data error."""
PLAUSIBLE_YEARS = (1800, 2200)
"""Dates outside these years are not dates of a return history (``-1.5`` parses as year -1)."""
IMPOSSIBLE = 1000.0
"""A return beyond this (100,000% in one period) is an error: no asset does that."""


@dataclass
class ImportResult:
    """The panel and what the import did (``notes``: one line each)."""

    panel: FactorPanel
    frequency: str
    layout: str
    notes: list[str] = field(default_factory=list)


def read_table(path: Path) -> pd.DataFrame:
    """The file as a frame of strings and numbers (CSV, or Parquet with pyarrow).

    CSV is read as UTF-8 (a byte-order mark is dropped), every cell as text. Whatever the
    reader cannot take (no header, ragged rows, another encoding, a damaged Parquet file) and
    repeated column names are errors naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"path: no such file {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = _read_csv(path)
    elif suffix in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise DataError("path: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        except Exception as exc:  # pyarrow's ArrowInvalid, OSError, ... on a damaged file
            raise DataError(f"{path.name}: cannot read as Parquet: {_first_line(exc)}") from None
    else:
        raise DataError(f"path: expected a .csv or .parquet file, got {path.name}")
    names = [str(c).strip() for c in table.columns]
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise DataError(f"{path.name}: columns {repeated}: expected each column name once")
    return table.set_axis(names, axis=1)


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text; the header's names kept as written (pandas would rename repeats)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=None,
                          encoding="utf-8-sig")  # fmt: skip
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name}: the file is empty; expected a header and rows") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: expected UTF-8 text, got byte 0x{exc.object[exc.start]:02x} "
                        f"at offset {exc.start}; save the file as UTF-8") from None  # fmt: skip
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{path.name}: cannot read as CSV: {_first_line(exc)}") from None
    header, body = raw.iloc[0], raw.iloc[1:].reset_index(drop=True)
    return body.set_axis(list(header), axis=1)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_sectors(path: Path, assets: tuple[str, ...]) -> tuple[str, ...]:
    """One sector label per asset of ``assets`` from a CSV or Parquet of ``asset,sector``.

    Every asset must have exactly one non-empty sector; rows for other assets are refused
    (a misspelt asset would otherwise go unnoticed).
    """
    table = read_table(path)
    lower = {str(c).strip().lower(): c for c in table.columns}
    if "asset" not in lower or "sector" not in lower:
        raise DataError(
            f"{Path(path).name}: expected columns asset and sector, got {list(table.columns)}"
        )
    names = table[lower["asset"]].astype(str).str.strip()
    labels = table[lower["sector"]].astype(str).str.strip()
    repeated = sorted(set(names[names.duplicated()]))
    if repeated:
        raise DataError(
            f"{Path(path).name}: expected one row per asset, got repeats {repeated[:5]}"
        )
    empty = sorted(names[labels == ""])
    if empty:
        raise DataError(
            f"{Path(path).name}: expected a sector for every asset, none for {empty[:5]}"
        )
    mapping = dict(zip(names, labels, strict=True))
    missing = [a for a in assets if a not in mapping]
    unknown = sorted(set(mapping) - set(assets))
    if missing or unknown:
        raise DataError(
            f"{Path(path).name}: expected the panel's {len(assets)} assets, got "
            + "; ".join(part for part in (
                f"no sector for {missing[:5]}" if missing else "",
                f"assets not in the panel {unknown[:5]}" if unknown else "") if part)
        )  # fmt: skip
    return tuple(mapping[a] for a in assets)


def import_returns(
    path: Path,
    name: str,
    percent: bool = False,
    description: str | None = None,
    sectors: Path | None = None,
) -> ImportResult:
    """Read ``path`` (see the module docstring) into a monthly :class:`FactorPanel`.

    ``sectors``: a file of ``asset,sector`` rows (:func:`read_sectors`) for sector caps. Every
    error names the file.
    """
    try:
        return _import(Path(path), name, percent, description, sectors)
    except DataError as exc:
        message = str(exc)
        named = message.startswith((Path(path).name, "path:")) or (
            sectors is not None and message.startswith(Path(sectors).name))  # fmt: skip
        if named:
            raise
        raise DataError(f"{Path(path).name}: {message}") from None


def _import(
    path: Path, name: str, percent: bool, description: str | None, sectors: Path | None
) -> ImportResult:
    table = read_table(path)
    if table.empty or table.shape[1] < 2:
        raise DataError(f"{Path(path).name}: expected a header and at least two columns")
    lower = {str(c).strip().lower(): c for c in table.columns}
    notes: list[str] = []
    if all(c in lower for c in LONG_COLUMNS):
        layout = "long"
        returns, characteristics = _long(table, lower)
    else:
        layout = "wide"
        returns, characteristics = _wide(table), {}
    if percent:
        returns = returns / 100.0
        notes.append("returns read in percent and divided by 100")
    _check_values(returns, percent)
    frequency = _frequency(returns.index)
    if frequency != "monthly":
        periods = len(returns)
        returns, characteristics = _to_months(returns, characteristics)
        notes.append(f"{frequency} returns compounded to months: {periods} {frequency} "
                     f"periods -> {len(returns)} months (prod(1 + r) - 1 per month)")  # fmt: skip
    returns.index = returns.index + pd.offsets.MonthEnd(0)
    for frame in characteristics.values():
        frame.index = frame.index + pd.offsets.MonthEnd(0)
    big = returns.abs() > IMPLAUSIBLE
    if big.to_numpy().any():
        date, asset = _first_cell(big)
        notes.append(f"{int(big.to_numpy().sum())} monthly returns beyond +-100%, first "
                     f"{returns.loc[date, asset]:.4g} for {asset} at {date:%Y-%m} (in percent? "
                     "then import with percent)")  # fmt: skip
    text = description or f"imported from {Path(path).name} ({layout}, {frequency})"
    if characteristics:
        panel = _with_characteristics(returns, characteristics, name, text)
        notes.append(f"exposures: the file's characteristics {', '.join(characteristics)}")
    else:
        panel = build_features(returns, name, description=text)
        notes.append("exposures: past-only features (momentum, reversal, volatility, beta); "
                     f"the first {len(returns) - panel.n_dates} months only feed them")  # fmt: skip
    if sectors is not None:
        labels = read_sectors(sectors, panel.assets)
        panel = dataclasses.replace(panel, sectors=labels)
        notes.append(f"sectors: {len(set(labels))} from {Path(sectors).name}")
    return ImportResult(panel, frequency, layout, notes)


def _file_rows(count: int) -> np.ndarray:
    """The 1-based file rows of ``count`` data rows (the header is row 1)."""
    return np.arange(count) + 2


def _first_cell(mask: pd.DataFrame) -> tuple[pd.Timestamp, str]:
    """Date and asset of the first true cell of ``mask`` (date by asset)."""
    return mask.stack()[lambda s: s].index[0]


def _dates(values: pd.Series, column: str) -> pd.DatetimeIndex:
    with warnings.catch_warnings():  # "could not infer format": the error below says more
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(values, errors="coerce")
    # a number such as "-1.5" parses as a date of year -1: only calendar years of markets count
    implausible = parsed.notna() & ~parsed.dt.year.between(*PLAUSIBLE_YEARS)
    bad = np.flatnonzero((parsed.isna() | implausible).to_numpy())
    if bad.size:
        row = _file_rows(len(values))[bad[0]]
        raise DataError(f"row {row}, column {column!r}: expected a date, got "
                        f"{values.iloc[bad[0]]!r}")  # fmt: skip
    return pd.DatetimeIndex(parsed)


def _numbers(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """Finite numbers; empty cells are missing (NaN), any other text is an error."""
    out = {}
    for column in frame.columns:
        raw = frame[column]
        if pd.api.types.is_bool_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
            raise DataError(f"column {column!r}: expected numbers, got {raw.dtype} values")
        text = raw.astype(str).str.strip()
        empty = text.isin(["", "nan", "NaN", "NA", "None"]) | raw.isna()
        numbers = pd.to_numeric(raw.where(~empty), errors="coerce")
        if numbers.dtype == object:  # e.g. integers beyond int64: not a return
            numbers = pd.Series(np.nan, index=raw.index)
        finite = np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        bad = np.flatnonzero(~finite & ~empty.to_numpy())
        if bad.size:
            raise DataError(f"row {rows[bad[0]]}, column {column!r}: expected a finite number, got "
                            f"{raw.iloc[bad[0]]!r}")  # fmt: skip
        out[column] = numbers.to_numpy(dtype=np.float64)
    return pd.DataFrame(out, index=frame.index)


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    date_column = table.columns[0]
    dates = _dates(table[date_column], str(date_column))
    assets = [str(c).strip() for c in table.columns[1:]]
    if len(set(assets)) != len(assets):
        raise DataError(f"columns: expected each asset once, got {assets}")
    rows = _file_rows(len(table))
    values = _numbers(table.iloc[:, 1:].set_axis(assets, axis=1), rows)
    values.index = dates
    _check_dates(dates, rows, str(date_column))
    return values.rename_axis(index="date", columns="asset")


def _long(
    table: pd.DataFrame, lower: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    date_c, asset_c, return_c = (lower[c] for c in LONG_COLUMNS)
    rows = _file_rows(len(table))
    dates = _dates(table[date_c], str(date_c))
    assets = table[asset_c].astype(str).str.strip()
    extra = [c for c in table.columns if c not in (date_c, asset_c, return_c)]
    numbers = _numbers(table[[return_c, *extra]], rows)
    keyed = pd.DataFrame({"date": dates, "asset": assets.to_numpy(), "row": rows})
    duplicated = keyed.duplicated(["date", "asset"]).to_numpy()
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        raise DataError(f"row {rows[i]}: duplicate date and asset ({dates[i]:%Y-%m-%d}, "
                        f"{assets.iloc[i]})")  # fmt: skip
    keyed = pd.concat([keyed, numbers.reset_index(drop=True)], axis=1)
    wide = keyed.pivot(index="date", columns="asset", values=return_c).sort_index()
    first_rows = keyed.groupby("date")["row"].min().reindex(wide.index).to_numpy()
    _check_dates(pd.DatetimeIndex(wide.index), first_rows, str(date_c), long=True)
    characteristics = {
        str(c).strip(): keyed.pivot(index="date", columns="asset", values=c)
        .sort_index()
        .reindex(columns=wide.columns)
        for c in extra
    }
    return wide.rename_axis(index="date", columns="asset"), characteristics


def _check_dates(dates: pd.DatetimeIndex, rows: np.ndarray, column: str, long: bool = False):
    if not long:
        duplicated = np.flatnonzero(dates.duplicated())
        if duplicated.size:
            i = duplicated[0]
            raise DataError(f"row {rows[i]}, column {column!r}: duplicate date {dates[i]:%Y-%m-%d}")
        backwards = np.flatnonzero(spacing_days(dates) < 0)
        if backwards.size:
            i = backwards[0] + 1
            raise DataError(f"row {rows[i]}, column {column!r}: dates out of order: "
                            f"{dates[i]:%Y-%m-%d} after {dates[i - 1]:%Y-%m-%d}")  # fmt: skip
    if len(dates) < 3:
        raise DataError(f"column {column!r}: expected at least 3 dates, got {len(dates)}")
    gaps = spacing_days(dates)
    frequency = _frequency(dates)
    irregular = np.flatnonzero(gaps > MAX_GAP[frequency])
    if irregular.size:
        i = irregular[0] + 1
        raise DataError(f"row {rows[i]}, column {column!r}: irregular dates: {gaps[i - 1]:.0f} "
                        f"days from {dates[i - 1]:%Y-%m-%d} to {dates[i]:%Y-%m-%d} in "
                        f"{frequency} data")  # fmt: skip


def _frequency(dates: pd.DatetimeIndex) -> str:
    median = float(np.median(spacing_days(dates)))
    for frequency, (low, high) in FREQUENCIES.items():
        if low <= median <= high:
            return frequency
    raise DataError(f"dates: expected daily, weekly or monthly data, got a median spacing of "
                    f"{median:.1f} days")  # fmt: skip


def _check_values(returns: pd.DataFrame, percent: bool) -> None:
    huge = returns.abs() > IMPOSSIBLE
    if huge.to_numpy().any():
        date, asset = _first_cell(huge)
        raise DataError(f"date {date:%Y-%m-%d}, asset {asset!r}: a return of "
                        f"{returns.loc[date, asset]:g} (as a decimal) is not a return; expected "
                        f"at most {IMPOSSIBLE:g} in absolute value")  # fmt: skip
    low = returns <= -1.0
    if low.to_numpy().any():
        date, asset = _first_cell(low)
        shown = returns.loc[date, asset] * (100 if percent else 1)
        unit = "%" if percent else ""
        raise DataError(f"date {date:%Y-%m-%d}, asset {asset!r}: a return of {shown:g}{unit} "
                        "is a loss of 100% or more; simple returns must exceed -100%")  # fmt: skip


def _to_months(
    returns: pd.DataFrame, characteristics: dict[str, pd.DataFrame]
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    months = returns.index.to_period("M")
    grouped = (1.0 + returns).groupby(months)
    monthly = grouped.prod(min_count=1) - 1.0  # a month without a listed day stays NaN
    monthly.index = monthly.index.to_timestamp(how="end").normalize()
    sampled = {}
    for name, frame in characteristics.items():
        last = frame.groupby(frame.index.to_period("M")).last()
        last.index = last.index.to_timestamp(how="end").normalize()
        sampled[name] = last
    return monthly, sampled


def _with_characteristics(
    returns: pd.DataFrame, characteristics: dict[str, pd.DataFrame], name: str, text: str
) -> FactorPanel:
    exposures = np.stack(
        [frame.reindex(index=returns.index, columns=returns.columns).to_numpy(np.float64)
         for frame in characteristics.values()], axis=-1,
    )  # fmt: skip
    return FactorPanel(name=name, dates=pd.DatetimeIndex(returns.index),
                       assets=tuple(returns.columns), features=tuple(characteristics),
                       exposures=exposures, returns=returns.to_numpy(np.float64),
                       description=text)  # fmt: skip
