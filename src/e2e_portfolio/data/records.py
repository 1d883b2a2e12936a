"""The record of one experiment run, its JSON form, and run files: nothing is lost.

:class:`RunRecord` is what every experiment returns and
:class:`~e2e_portfolio.data.store.Store` saves. When saving fails (a store that stays locked, a
full disk), :func:`write_run_file`
writes the record to a JSON file instead and :func:`read_run_file` reads it back for
``Store.save_run`` (``e2e runs import FILE``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e2e_portfolio.data.schemas import StrategyStats
from e2e_portfolio.exceptions import DataError

RUN_FILE_FORMAT = "e2e-portfolio run 1"


@dataclass(frozen=True)
class RunRecord:
    """One stored experiment run.

    Attributes
    ----------
    kind : str
        The command that made it, e.g. ``"compare"`` or ``"shrink"``.
    config : dict
        JSON-serialisable configuration (options, seeds, data name).
    metrics : dict
        JSON-serialisable summary (edges, p-values, ...).
    stats : dict of str to StrategyStats
        Out-of-sample statistics per strategy.
    series : DataFrame
        Columns ``strategy, date, net_return, turnover``; may be empty.
    weights : DataFrame
        Columns ``strategy, date, asset, weight``; may be empty.
    run_id : str
        Filled in by :meth:`Store.save_run`.
    created_at : datetime
        UTC time the run was saved.
    """

    kind: str
    config: Mapping[str, Any]
    metrics: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, StrategyStats] = field(default_factory=dict)
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    run_id: str = ""
    created_at: datetime | None = None


def to_json(argument: str, value: Mapping[str, Any]) -> str:
    """``value`` as strict JSON (finite numbers only), or :class:`DataError` naming ``argument``."""
    try:
        return json.dumps(dict(value), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{argument}: expected JSON-serialisable finite values: {exc}") from exc


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | tuple | range):
        return list(np.asarray(value).tolist())
    if isinstance(value, Path | datetime | pd.Timestamp):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def clean_json(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python ones."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, np.generic):
        return clean_json(value.item())
    return value


def write_run_file(run: RunRecord, path: Path) -> Path:
    """Write ``run`` as JSON to ``path`` (NaN as null); returns the path.

    Series and weights are kept as records with ISO dates; the file reads back with
    :func:`read_run_file`.
    """
    document = {
        "format": RUN_FILE_FORMAT,
        "kind": run.kind,
        "config": run.config,
        "metrics": run.metrics,
        "stats": {name: stats.model_dump() for name, stats in run.stats.items()},
        "series": json.loads(run.series.to_json(orient="records", date_format="iso")),
        "weights": json.loads(run.weights.to_json(orient="records", date_format="iso")),
    }
    plain = json.loads(json.dumps(document, default=_json_default))  # numpy, dates: plain JSON
    path.write_text(json.dumps(clean_json(plain), indent=1), encoding="utf-8")
    return path


def read_run_file(path: Path) -> RunRecord:
    """The run a :func:`write_run_file` file holds; raises :class:`DataError` otherwise."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"path: cannot read a run file from {path}: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != RUN_FILE_FORMAT:
        raise DataError(f"path: expected a run file written by e2e-portfolio, got {path}")

    def frame(key: str) -> pd.DataFrame:
        rows = pd.DataFrame(document[key])
        if "date" in rows:
            rows["date"] = pd.to_datetime(rows["date"]).dt.tz_localize(None)
        return rows

    return RunRecord(
        kind=document["kind"],
        config=document["config"],
        metrics=document["metrics"],
        stats={k: StrategyStats(**v) for k, v in document["stats"].items()},
        series=frame("series"),
        weights=frame("weights"),
    )
