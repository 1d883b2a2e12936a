"""Streamlit dashboard: ``e2e dashboard``, or ``streamlit run`` on this file.

Three tabs: the eight-arm comparison (run on demand for one seed, or paired across seeds for
a verdict; cached, kept in the session state), the
decision-aware shrinkage experiment for one synthetic universe at a time (seed slider), and
the runs stored in the DuckDB file with any one's report (its verdict first). All computation
is the library's; this script only lays out widgets, tables and figures.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from e2e_portfolio.attribution.saliency import gradient_saliency, importance_shares
from e2e_portfolio.backtest.arm_specs import LEARNED
from e2e_portfolio.config import configure_threads, get_settings
from e2e_portfolio.data.store import Store
from e2e_portfolio.data.synthetic import simulate_universe
from e2e_portfolio.experiments import compare_strategies, resolve_panel, walk_forward_frames
from e2e_portfolio.experiments.compare import CompareOptions
from e2e_portfolio.experiments.shrinkage import METHODS, ShrinkageConfig, walk_forward
from e2e_portfolio.models.portfolio import PortfolioConfig
from e2e_portfolio.models.train import TrainConfig
from e2e_portfolio.report import plots
from e2e_portfolio.report.html import build_report, formatted_stats
from e2e_portfolio.report.verdict import verdict_of
from e2e_portfolio.seeds import parse_seeds

# most seeds the compare form runs in the page (longer runs belong to the CLI); a comment,
# not a docstring: Streamlit's "magic" would draw a bare string on the page
MAX_APP_SEEDS = 20


def _store() -> Store:
    return Store(get_settings().db_path)


def _stored_panel_names() -> list[str]:
    store = _store()
    if not store.path.exists():
        return []
    try:
        return store.list_panels()["name"].tolist()
    except Exception:  # a foreign or corrupt file: the app still works on built-in data
        return []


class _Progress:
    """A progress bar the cached runs report to (arm and date, as the CLI's)."""

    def __init__(self, total_text: str) -> None:
        self.bar = st.progress(0.0, text=total_text)
        self.done, self.total = 0, 1

    def start(self, total: int) -> None:
        self.total = max(total, 1)

    def step(self, arm: str) -> None:
        self.done += 1
        self._show(f"{arm}: deciding month by month ({self.done}/{self.total})")

    def refit(self, arm: str, date: str) -> None:
        work = "training and choosing gamma" if arm in LEARNED else "choosing gamma"
        self._show(f"{arm}: {work} at {date}")

    def seed(self, result: dict) -> None:
        self.done += 1
        self._show(f"seed {result['seed']} done ({self.done}/{self.total})")

    def _show(self, text: str) -> None:
        self.bar.progress(min(self.done / self.total, 1.0), text=text)


def _options(
    gamma: float, w_max: float | None, kappa: float, tc: float, epochs: int, window: int,
    seed: int = 42,
) -> CompareOptions:  # fmt: skip
    """The compare form's options (refits every 12 months, all arms)."""
    return CompareOptions(train=TrainConfig(epochs=epochs, seed=seed),
                          portfolio=PortfolioConfig(gamma=gamma, w_max=w_max, kappa=kappa),
                          tc=tc, window=window, refit_every=12)  # fmt: skip


@st.cache_data(show_spinner=False)
def run_compare(
    data: str, seed: int, n_assets: int, n_months: int, gamma: float, w_max: float | None,
    kappa: float, tc: float, epochs: int, _progress: _Progress | None = None,
) -> dict:  # fmt: skip
    """Walk-forward comparison; returns picklable frames for the page."""
    panel = resolve_panel(data, _store(), n_assets=n_assets, n_months=n_months, seed=seed)
    window = min(48, panel.n_dates // 2)
    options = _options(gamma, w_max, kappa, tc, epochs, window, seed)
    if _progress is not None:
        _progress.start(len(options.arms) * (panel.n_dates - 1 - window))
    on_step = None if _progress is None else _progress.step
    on_refit = None if _progress is None else _progress.refit
    comparison, record, models = compare_strategies(panel, options, on_step, on_refit)
    x, _ = panel.supervised_pairs()
    importance = {
        name: importance_shares(gradient_saliency(model, x[-window:])).tolist()
        for name, model in models.items()
    }
    return {
        "stats": comparison.stats_frame(),
        "series": comparison.series_frame(),
        "weights": comparison.weights_frame(),
        "features": list(panel.features),
        "importance": importance,
        "record": record,
    }


@st.cache_data(show_spinner=False)
def run_compare_seeds(
    seeds: tuple[int, ...], n_assets: int, n_months: int, gamma: float, w_max: float | None,
    kappa: float, tc: float, epochs: int, _progress: _Progress | None = None,
) -> dict:  # fmt: skip
    """The arms on one synthetic universe per seed, paired over seeds (as e2e compare --seeds)."""
    from e2e_portfolio.experiments.compare import compare_across_seeds

    options = _options(gamma, w_max, kappa, tc, epochs, min(48, n_months // 2))
    if _progress is not None:
        _progress.start(len(seeds))
    summary, record = compare_across_seeds(
        seeds,
        lambda seed: simulate_universe(n_assets=n_assets, n_months=n_months, seed=seed),
        options,
        on_seed=None if _progress is None else _progress.seed,
    )
    about = {"data": "synthetic", "seeds": list(seeds), "n_assets": n_assets,
             "n_months": n_months}  # fmt: skip
    record = replace(record, config={**about, **record.config})
    return {"record": record, "summary": summary}


@st.cache_data(show_spinner=False)
def run_shrinkage(seed: int, n_assets: int, n_months: int, window: int, tc: float) -> dict:
    """One synthetic universe through the shrinkage walk-forward."""
    panel = simulate_universe(n_assets=n_assets, n_months=n_months, seed=seed)
    result = walk_forward(panel, ShrinkageConfig(window=window, tc=tc))
    _, series = walk_forward_frames(result, panel.dates)
    sharpe = result.sharpe()
    table = pd.DataFrame(
        {
            "out-of-sample Sharpe": [sharpe[m] for m in METHODS],
            "mean delta": [float(result.delta[m].mean()) for m in METHODS],
            "mean turnover": [float(result.turnover[m].mean()) for m in METHODS],
        },
        index=list(METHODS),
    )
    return {"table": table, "series": series, "delta": result.delta["decision_aware"]}


def compare_tab() -> None:
    """The compare tab: the eight arms on one panel, with the CLI's defaults.

    The result lives in the session state: any later click (another tab, the weights
    select, storing) keeps it until the next run.
    """
    with st.form("compare"):
        left, middle, right = st.columns(3)
        names = ["synthetic", "french", "sp500", *_stored_panel_names()]
        data = left.selectbox("data", list(dict.fromkeys(names)))  # a stored french: once
        seeds = left.text_input("seeds (one, or e.g. 0-9 for a verdict across seeds)", "42")
        n_assets = middle.number_input("synthetic assets", value=40, min_value=2, max_value=200)
        n_months = middle.number_input("synthetic months", value=96, min_value=40, max_value=600)
        gamma = right.slider("gamma (risk aversion)", 0.5, 20.0, 8.0, 0.5)
        w_max = right.slider("w_max (0 = no cap)", 0.0, 1.0, 0.0, 0.01)
        kappa = left.slider("kappa (turnover penalty)", 0.0, 0.01, 0.0, 0.0005, format="%.4f")
        tc = middle.slider("tc (cost per turnover)", 0.0, 0.02, 0.005, 0.001, format="%.3f")
        epochs = right.slider("epochs per refit", 1, 80, 40)
        submitted = st.form_submit_button("Run comparison")
    if submitted:
        cap = w_max if w_max > 0 else None
        try:
            seed_list = parse_seeds(seeds)
            if len(seed_list) > 1 and data != "synthetic":
                raise ValueError(
                    f"seeds: a verdict across seeds runs on synthetic data, got data {data!r}; "
                    f"use e2e compare --data {data} --seeds"
                )
            if len(seed_list) > MAX_APP_SEEDS:
                raise ValueError(
                    f"seeds: expected at most {MAX_APP_SEEDS} here, got "
                    f"{len(seed_list)}; for more run e2e compare --seeds {seeds} --workers 2 "
                    "and open the run under Stored runs"
                )
            options: dict[str, Any] = {"n_assets": int(n_assets), "n_months": int(n_months),
                       "gamma": float(gamma), "w_max": cap, "kappa": float(kappa),
                       "tc": float(tc), "epochs": int(epochs)}  # fmt: skip
            progress = _Progress(f"training every arm on {len(seed_list)} seed(s)")
            if len(seed_list) == 1:
                result = run_compare(data, seed_list[0], **options, _progress=progress)
            else:
                result = run_compare_seeds(tuple(seed_list), **options, _progress=progress)
            progress.bar.empty()
            st.session_state["compare_result"] = result
            st.session_state.pop("stored_as", None)
        except ValueError as exc:  # the previous result stays on the page below the error
            st.error(str(exc))
    out = st.session_state.get("compare_result")
    if out is None:
        st.info("Choose the options and press **Run comparison** (a walk-forward with refits; "
                "the defaults are those of `e2e compare`). Several seeds (e.g. 0-9) give the "
                "paired verdict across seeds of `e2e compare --seeds`.")  # fmt: skip
        return
    if "summary" in out:
        _seeds_verdict(out)
    else:
        _one_run(out)
    if st.button("Store this run"):
        st.session_state["stored_as"] = _store().save_run(out["record"])
    if "stored_as" in st.session_state:
        st.success(f"Stored as {st.session_state['stored_as']} in {_store().path}")


def _seeds_verdict(out: dict) -> None:
    """The verdict across seeds: headline, paired differences, per-seed edges, equity curves."""
    verdict = verdict_of(out["record"])
    st.subheader("Verdict across seeds")
    for sentence in verdict.sentences:
        st.markdown(sentence)
    st.dataframe(pd.DataFrame(verdict.rows, columns=list(verdict.columns)), hide_index=True)
    if verdict.figure is not None:
        st.plotly_chart(verdict.figure)
    st.plotly_chart(plots.equity_curves(out["record"].series))


def _one_run(out: dict) -> None:
    """One walk-forward: statistics, equity, weights of a chosen arm, factor importance."""
    st.subheader("Out-of-sample statistics (one run: no paired test)")
    st.dataframe(formatted_stats(out["stats"]))
    st.plotly_chart(plots.equity_curves(out["series"]))
    strategy = st.selectbox("weights of", ["e2e", "decoupled", "plug_in", "e2e_risk", "e2e_return"])
    st.plotly_chart(plots.weights_over_time(out["weights"], strategy))
    st.plotly_chart(plots.factor_importance(out["features"], out["importance"]))


def shrinkage_tab() -> None:
    """The shrinkage tab: decision-aware shrinkage against plug-in and Ledoit-Wolf."""
    st.markdown(
        "Plug-in sample covariance, Ledoit-Wolf, and the shrinkage chosen for realised net "
        "Sharpe on the 24 months before each decision, on one simulated universe."
    )
    left, right = st.columns(2)
    seed = left.slider("seed", 0, 49, 0)
    n_assets = right.select_slider("assets (N; window 48)", [10, 20, 30, 40], value=40)
    tc = left.slider("tc", 0.0, 0.01, 0.001, 0.001, format="%.3f", key="shrink_tc")
    out = run_shrinkage(int(seed), int(n_assets), 96, 48, float(tc))
    st.dataframe(out["table"].style.format("{:.3f}"))
    st.plotly_chart(plots.equity_curves(out["series"]))
    st.caption(f"delta* per month: {np.round(out['delta'], 2).tolist()}")


def runs_tab() -> None:
    """The stored-runs tab: the runs in the DuckDB file, and any one's report."""
    store = _store()
    if not store.path.exists():
        st.info(f"No store at {store.path} yet: run e2e shrink or e2e compare.")
        return
    runs = store.list_runs()
    if runs.empty:
        st.info("No stored runs yet.")
        return
    runs["data"] = [json.loads(c).get("data", "") for c in runs["config"]]
    st.dataframe(runs[["run_id", "kind", "created_at", "data"]], hide_index=True)
    chosen = st.selectbox("report of", list(runs["run_id"]), key="report_of")
    if chosen:
        st.iframe(build_report(store.load_run(chosen)), height=900)


def main() -> None:
    """Draw the dashboard (Streamlit runs this module top to bottom)."""
    configure_threads()
    st.set_page_config(page_title="e2e-portfolio", layout="wide", menu_items={})
    st.title("e2e-portfolio: does training for decisions beat training for accuracy?")
    compare, shrink, stored = st.tabs(["Compare", "Decision-aware shrinkage", "Stored runs"])
    with compare:
        compare_tab()
    with shrink:
        shrinkage_tab()
    with stored:
        runs_tab()


if __name__ == "__main__":  # streamlit runs the script as __main__; importing it draws nothing
    main()
