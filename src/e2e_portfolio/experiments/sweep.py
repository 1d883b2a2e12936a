"""Sweeps of ``shrink`` and ``compare`` jobs over seeds x configurations.

A grid (from CLI options or a TOML/YAML file) expands into :class:`SweepJob` s, one per seed
and configuration. Jobs run in parallel — local worker processes through joblib by default,
a Ray cluster on request — and only the driver writes to the DuckDB store (one run per job,
its config carrying a stable ``job_key``), so workers never contend for the file. A rerun
skips the jobs already stored; a job that raises is reported and the others are kept.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from e2e_portfolio.data.store import RunRecord, Store
from e2e_portfolio.exceptions import DataError
from e2e_portfolio.experiments.shrinkage import ShrinkageConfig, edge_across_seeds
from e2e_portfolio.experiments.workers import Backend, run_jobs
from e2e_portfolio.seeds import parse_seeds
from e2e_portfolio.significance import holm, t_half_width

Kind = Literal["shrink", "compare"]
SHRINK_OPTIONS = {"n_assets": 40, "n_months": 96, "window": 48, "score_months": 24, "tc": 0.001,
                  "target": "identity"}  # fmt: skip
COMPARE_OPTIONS = {"n_assets": 40, "n_months": 96, "window": 48, "gamma": 8.0, "w_max": None,
                   "kappa": 0.0, "tc": 0.005, "epochs": 40, "refit_every": 12,
                   "device": "cpu"}  # fmt: skip
DEFAULTS: dict[str, dict[str, Any]] = {"shrink": SHRINK_OPTIONS, "compare": COMPARE_OPTIONS}


@dataclass(frozen=True)
class SweepJob:
    """One experiment: a kind, a seed and the options of that kind (defaults filled in)."""

    kind: Kind
    seed: int
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def config_key(self) -> str:
        """The options as canonical JSON: jobs differing only in seed share it."""
        return json.dumps({"kind": self.kind, **self.options}, sort_keys=True)

    @property
    def job_key(self) -> str:
        """A stable hash of the kind, seed and options: the job's key in the store."""
        text = json.dumps({"seed": self.seed, "config": self.config_key}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand_grid(spec: Mapping[str, Any]) -> list[SweepJob]:
    """Jobs for every combination of the listed values.

    ``spec`` holds ``kind`` (a kind or a list), ``seeds`` (a list, text such as ``"0-9"``
    (:func:`~e2e_portfolio.seeds.parse_seeds`), or an int ``n`` for
    ``0..n-1``) and any options of the kinds, each a value or a list of values. An option
    none of the kinds takes is an error; with several kinds, each takes the options it has.
    Every configuration is validated here, before any job runs (:func:`validate_job`).
    """
    kinds = _as_list(spec.get("kind", "shrink"))
    for kind in kinds:
        if kind not in DEFAULTS:
            raise DataError(f"kind: expected one of {sorted(DEFAULTS)}, got {kind!r}")
    seeds = spec.get("seeds", 3)
    if isinstance(seeds, str):
        seeds = parse_seeds(seeds)
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    known = set().union(*DEFAULTS.values())
    unknown = set(spec) - known - {"kind", "seeds"}
    if unknown:
        raise DataError(f"grid: unknown options {sorted(unknown)}; known: {sorted(known)}")
    taken = set().union(*(DEFAULTS[kind] for kind in kinds))
    idle = sorted(set(spec) - taken - {"kind", "seeds"})
    if idle:
        raise DataError(
            f"grid: not an option of kind {', '.join(kinds)}: {', '.join(idle)} "
            f"(options of {', '.join(kinds)}: {', '.join(sorted(taken))})"
        )
    jobs: list[SweepJob] = []
    for kind in kinds:
        defaults = DEFAULTS[kind]
        axes = {name: _as_list(spec.get(name, default)) for name, default in defaults.items()}
        for values in itertools.product(*axes.values()):
            options = dict(zip(axes, values, strict=True))
            jobs.extend(SweepJob(kind, seed, options) for seed in seeds)
    if any(seed < 0 for seed in seeds):
        raise DataError(f"seeds: expected non-negative seeds, got {min(seeds)}")
    problems = {}
    for job in {j.config_key: j for j in jobs}.values():
        try:
            validate_job(job)
        except ValueError as exc:
            problems[json.dumps(dict(job.options), sort_keys=True)] = str(exc)
    if problems:
        listed = "; ".join(f"{config}: {problem}" for config, problem in problems.items())
        raise DataError(f"grid: {len(problems)} configuration(s) cannot run: {listed}")
    return jobs


def _configs(job: SweepJob):
    """What a job runs: a ShrinkageConfig (shrink) or CompareOptions (compare)."""
    o = dict(job.options)
    if job.kind == "shrink":
        return ShrinkageConfig(window=o["window"], score_months=o["score_months"], tc=o["tc"],
                               target=o["target"])  # fmt: skip
    from e2e_portfolio.experiments.compare import CompareOptions
    from e2e_portfolio.models.portfolio import PortfolioConfig
    from e2e_portfolio.models.train import TrainConfig

    return CompareOptions(
        train=TrainConfig(epochs=o["epochs"], seed=job.seed, device=o["device"]),
        portfolio=PortfolioConfig(gamma=o["gamma"], w_max=o["w_max"], kappa=o["kappa"]),
        tc=o["tc"], window=o["window"], refit_every=o["refit_every"],
    )  # fmt: skip


def validate_job(job: SweepJob) -> None:
    """Raise ``ValueError`` naming the option if ``job`` cannot run (checked before any job)."""
    o = dict(job.options)
    config = _configs(job)
    if job.kind == "shrink":
        config.validate(o["n_assets"], o["n_months"])
        return
    config.check(o["n_assets"], o["n_months"])


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def read_grid(path: Path) -> dict[str, Any]:
    """A grid spec from a ``.toml`` or ``.yaml``/``.yml`` file (table ``[grid]`` or top level)."""
    if not path.exists():
        raise DataError(f"grid file: {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise DataError(
                "grid file: YAML needs PyYAML (pip install pyyaml); or use TOML"
            ) from exc
        data = yaml.safe_load(text)
    else:
        raise DataError(f"grid file: expected .toml, .yaml or .yml, got {path.suffix!r}")
    return dict(data.get("grid", data))


def run_job(job: SweepJob) -> dict[str, Any]:
    """Run one job; returns its metrics (the function workers execute)."""
    from e2e_portfolio.config import configure_threads

    configure_threads()  # workers inherit E2E_THREADS from the command
    o = dict(job.options)
    config = _configs(job)
    if job.kind == "shrink":
        row = edge_across_seeds([job.seed], o["n_assets"], o["n_months"], config)["rows"][0]
        return {k: v for k, v in row.items() if k != "seed" and v is not None}
    from e2e_portfolio.data.synthetic import simulate_universe
    from e2e_portfolio.experiments.runs import compare_strategies

    panel = simulate_universe(n_assets=o["n_assets"], n_months=o["n_months"], seed=job.seed)
    comparison, _, _ = compare_strategies(panel, config)
    return {f"sharpe_{name}": r.stats.sharpe for name, r in comparison.results.items()}


def _guarded(job: SweepJob) -> tuple[SweepJob, dict[str, Any] | None, str | None]:
    try:
        return job, run_job(job), None
    except Exception as exc:  # a failing job must not take the sweep down
        return job, None, f"{type(exc).__name__}: {exc}"


@dataclass
class SweepOutcome:
    """What a sweep did: jobs run, skipped (already stored), failed, and interrupted.

    ``failed`` pairs each job with its error; ``interrupted`` is set by Ctrl-C, with the jobs
    that did not run in ``remaining``.
    """

    ran: list[SweepJob] = field(default_factory=list)
    skipped: list[SweepJob] = field(default_factory=list)
    failed: list[tuple[SweepJob, str]] = field(default_factory=list)
    interrupted: bool = False
    remaining: list[SweepJob] = field(default_factory=list)


def run_sweep(
    jobs: Iterable[SweepJob],
    store: Store,
    backend: Backend = "local",
    n_workers: int = 2,
    address: str | None = None,
    on_done: Callable[[SweepJob, str | None], None] | None = None,
    runner: Callable[[SweepJob], tuple] = _guarded,
) -> SweepOutcome:
    """Run the jobs not yet stored, storing each result from this (the driver) process.

    Ctrl-C stops the workers and returns what was stored so far (``interrupted``, with the
    ``remaining`` jobs); rerunning the same sweep skips what is stored.
    """
    jobs = list(jobs)
    if n_workers < 1:
        raise DataError(f"n_workers: expected at least 1, got {n_workers}")
    stored = store.job_keys() if store.path.exists() else set()
    outcome = SweepOutcome(skipped=[j for j in jobs if j.job_key in stored])
    todo = [j for j in jobs if j.job_key not in stored]
    results = run_jobs(todo, runner, backend, n_workers, address)
    try:
        for job, metrics, error in results:
            if error is None:
                assert metrics is not None
                record = RunRecord(
                    kind=f"sweep-{job.kind}",
                    config={"job_key": job.job_key, "config_key": job.config_key,
                            "seed": job.seed, "data": "synthetic", **job.options},
                    metrics=metrics,
                )  # fmt: skip
                store.save_run(record)
                outcome.ran.append(job)
            else:
                outcome.failed.append((job, error))
            if on_done is not None:
                on_done(job, error)
    except KeyboardInterrupt:
        outcome.interrupted = True
        done = {j.job_key for j in outcome.ran} | {j.job_key for j, _ in outcome.failed}
        outcome.remaining = [j for j in todo if j.job_key not in done]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joblib's notice about the interrupted pool
            close = getattr(results, "close", None)
            if close is not None:
                close()
    return outcome


def per_seed(store: Store, jobs: Iterable[SweepJob]) -> pd.DataFrame:
    """One row per stored job: ``config`` (its config key), ``seed`` and its metrics.

    Configurations in the grid's order, seeds ascending.
    """
    jobs = list(jobs)
    wanted = {j.job_key: j for j in jobs}
    position = {c: i for i, c in enumerate(dict.fromkeys(j.config_key for j in jobs))}
    rows = [{"config": wanted[key].config_key, "seed": wanted[key].seed, **metrics}
            for key, metrics in store.job_metrics(set(wanted)).items()]  # fmt: skip
    if not rows:
        return pd.DataFrame()
    rows.sort(key=lambda r: (position[r["config"]], r["seed"]))
    return pd.DataFrame(rows)


def summarise(store: Store, jobs: Iterable[SweepJob], confidence: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval half-width of every metric per configuration, over its seeds."""
    return summary_of(per_seed(store, jobs), confidence)


def summary_of(frame: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`summarise` of rows already read by :func:`per_seed`."""
    if frame.empty:
        return frame
    numeric = [c for c in frame.columns if c not in ("config", "seed")]
    out = []
    for config, group in frame.groupby("config", sort=False):
        entry: dict[str, Any] = {"config": config, "n_seeds": len(group)}
        for column in numeric:
            values = group[column].to_numpy(dtype=np.float64)
            entry[column] = float(values.mean())
            entry[f"{column}_ci"] = t_half_width(values, confidence)
        out.append(entry)
    return pd.DataFrame(out)


SWEEP_COMPARISONS: dict[str, tuple[tuple[str, str], ...]] = {
    "shrink": (("decision_aware", "plug_in"), ("decision_aware", "ledoit_wolf"),
               ("decision_aware", "oas"), ("decision_aware", "nonlinear")),
    "compare": (("e2e", "decoupled"), ("e2e_risk", "decoupled_nll"), ("e2e_return", "decoupled"),
                ("e2e", "min_variance")),
}  # fmt: skip
"""The headline comparisons of a sweep per kind (those whose two methods were run)."""


def config_labels(configs: Iterable[str]) -> dict[str, str]:
    """A short label per config key: the options that differ between the configurations."""
    parsed = {c: json.loads(c) for c in dict.fromkeys(configs)}
    kinds = {options["kind"] for options in parsed.values()}
    labels = {}
    for config, options in parsed.items():
        same_kind = [o for o in parsed.values() if o["kind"] == options["kind"]]
        shown = [f"{k}={v}" for k, v in options.items()
                 if k != "kind" and len({json.dumps(o.get(k)) for o in same_kind}) > 1]  # fmt: skip
        prefix = [options["kind"]] if len(kinds) > 1 else []
        labels[config] = " ".join(prefix + shown) or "all jobs"
    return labels


def sweep_verdicts(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Paired verdicts per configuration of a sweep (:func:`per_seed` rows).

    For each configuration and each of its :data:`SWEEP_COMPARISONS`: mean paired Sharpe
    difference over seeds, 95% t-interval, win rate and Wilcoxon p, the p-values
    Holm-adjusted over the whole sweep (every configuration and comparison). Keys: those of
    :data:`~e2e_portfolio.experiments.verdict.VERDICT_KEYS` plus ``config`` and ``label``.
    """
    from e2e_portfolio.experiments.verdict import paired_verdicts

    if frame.empty:
        return []
    labels = config_labels(frame["config"])
    rows: list[dict[str, Any]] = []
    for config, group in frame.groupby("config", sort=False):
        kind = json.loads(str(config))["kind"]
        sharpe = {c.removeprefix("sharpe_"): group[c].to_numpy(dtype=np.float64)
                  for c in group.columns if c.startswith("sharpe_")}  # fmt: skip
        pairs = [(a, b) for a, b in SWEEP_COMPARISONS[kind] if a in sharpe and b in sharpe]
        for row in paired_verdicts(sharpe, pairs):
            rows.append({"config": config, "label": labels[str(config)], **row})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = float(adjusted)
    return rows
