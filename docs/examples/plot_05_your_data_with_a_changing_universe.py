"""
Your own data, with a changing universe
=======================================

A CSV of monthly returns where one asset lists late and another delists: the importer keeps
the gaps as *not listed* (never as zero returns), builds past-only exposures, and every
strategy only ever holds what is listed. The panel is stored in a local DuckDB file and read
back, as ``e2e data import`` does.
"""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from e2e_portfolio import MinimumVariance, Store, equal_weight, run_comparison
from e2e_portfolio.data.importer import import_returns
from e2e_portfolio.report import plots

rng = np.random.default_rng(42)
dates = pd.date_range("2005-01-31", periods=120, freq="ME")
returns = pd.DataFrame(rng.normal(0.007, 0.05, (120, 6)), index=dates,
                       columns=["A", "B", "C", "D", "LATE", "GONE"])  # fmt: skip
returns.loc[:"2008-12-31", "LATE"] = np.nan  # lists in 2009
returns.loc["2012-07-01":, "GONE"] = np.nan  # delists mid-2012

folder = Path(tempfile.mkdtemp())
returns.to_csv(folder / "returns.csv", index_label="date")
result = import_returns(folder / "returns.csv", "mine")
for note in result.notes:
    print(note)

store = Store(folder / "e2e.duckdb")
store.write_panel(result.panel)
panel = store.read_panel("mine")
listed = pd.DataFrame(np.isfinite(panel.returns), index=panel.dates, columns=panel.assets)
print(listed.resample("YE").mean().loc[:, ["LATE", "GONE"]].round(2).T.to_string())

# %%
# Both strategies hold only what is listed and has known exposures: LATE once it has the
# history its features need, GONE until it delists.
comparison = run_comparison(panel, {"equal_weight": equal_weight,
                                    "min_variance": MinimumVariance(window=24)},
                            start=24, tc=0.001)  # fmt: skip
weights = comparison.weights_frame()
held = weights[(weights["asset"].isin(["LATE", "GONE"])) & (weights["weight"].abs() > 0)]
print(held.groupby(["strategy", "asset"])["date"].agg(["min", "max"]))
plots.weights_over_time(weights, "min_variance")
