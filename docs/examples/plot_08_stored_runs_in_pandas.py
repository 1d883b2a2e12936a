"""
Stored runs, read into pandas
=============================

Every experiment stores its configuration, summary, per-strategy statistics and net-return
series in one local DuckDB file. The :class:`~e2e_portfolio.data.store.Store` gives them back
as pandas frames, so your own analysis starts where the command line stopped.
"""

import tempfile
from pathlib import Path

from e2e_portfolio import ShrinkageConfig, Store
from e2e_portfolio.experiments import shrink_synthetic
from e2e_portfolio.report import plots

store = Store(Path(tempfile.mkdtemp()) / "e2e.duckdb")
for window in (24, 48):  # two runs, as `e2e shrink --window 24` and `--window 48` store them
    _, record = shrink_synthetic([0, 1, 2], 40, 96, ShrinkageConfig(window=window))
    store.save_run(record)

runs = store.list_runs("shrink")
print(runs[["run_id", "kind", "created_at"]])
run = store.load_run(runs["run_id"].iloc[0])
print(run.config["window"], run.config["seeds"])
series = run.series  # strategy ("method/seed=k"), date, net_return, turnover
print(series.groupby("strategy")["net_return"].agg(["mean", "std", "count"]).round(4).head(6))

# %%
# The stored series draw directly; per-seed curves faintly, their mean bold.
plots.equity_curves(series)
