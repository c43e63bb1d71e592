"""Walk-forward validation: every strategy retrained on each fold's past, judged on the next window.

:func:`run_walk_forward` is what ``trading walk-forward``, the training DAG and the tests call. Read
top to bottom: open the feature set -> the market panel of its dataset (bars where every symbol
trades) -> folds over those bars (:func:`~trading_core.backtest.folds.make_folds`, purge defaults to
the label horizon) -> one MLflow run -> per fold, per seed:

1. the fold's view of the feature set (:class:`~trading_core.backtest.fold_data.FoldFeatureSet`):
   splits and the scaler recomputed from the fold's training bars only;
2. a forecaster ensemble trained on it, scored on the fold's test samples against the majority class
   (binomial p-value), and its forecasts at every bar up to the end of the test window
   (:mod:`~trading_core.backtest.fold_forecaster`, which says why the agents train on in-sample
   forecasts);
3. the market panel of the fold (features scaled by the fold's scaler, the fold's forecasts), the
   agents trained on the fold's training bars only, and every strategy back-tested on the fold's test
   window, once per cost multiplier (:mod:`~trading_core.backtest.fold_strategies`).

Then the table (strategy x seed x fold x cost multiplier -> metrics), the summary (mean and 95%
confidence interval over folds and seeds), the deflated Sharpe ratio of the selected strategy (the
best mean Sharpe; the other strategies' Sharpe ratios are the trials;
:mod:`~trading_core.backtest.selection`), and the report, all logged to the one run with lineage
tags (dataset_version, feature_set_version, git sha; :mod:`~trading_core.backtest.mlflow_log`).
The configuration is :class:`~trading_core.backtest.config.WalkForwardConfig`.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from trading_core import tracking
from trading_core.backtest.config import WalkForwardConfig
from trading_core.backtest.fold_data import FoldFeatureSet
from trading_core.backtest.fold_forecaster import train_fold_forecaster
from trading_core.backtest.fold_strategies import (
    FoldResult,
    StrategyPlan,
    base_market,
    evaluate_strategies,
    fold_panel,
)
from trading_core.backtest.folds import make_folds
from trading_core.backtest.metrics import summarize
from trading_core.backtest.mlflow_log import log_forecaster_scores, log_results, log_setup
from trading_core.backtest.report import log_report_to_mlflow, write_report
from trading_core.backtest.selection import select_and_deflate, tabulate
from trading_core.backtest.strategies import NEEDS_FORECASTER
from trading_core.config import Settings
from trading_core.errors import ConfigError
from trading_core.features import feature_store
from trading_core.rl.agents import ALGORITHMS
from trading_core.rl.pipeline import torch_threads

# The stage's API: callers (the CLI, the training DAG's steps) build the config and run the stage from here.
__all__ = ["WalkForwardConfig", "WalkForwardResult", "run_walk_forward"]

log = logging.getLogger(__name__)

STAGE = "walk_forward"


@dataclass
class WalkForwardResult:
    run_id: str
    feature_set_version: str
    dataset_version: str
    table: pd.DataFrame
    """One row per strategy x seed x fold x cost multiplier: the back-test metrics of the test window."""
    summary: pd.DataFrame
    """Per strategy (cost multiplier 1): mean and 95% CI of the metrics over folds and seeds."""
    forecaster: pd.DataFrame
    """Per fold x seed: test accuracy, majority rate, binomial p-value, n, log-loss (model and majority)."""
    selected: str
    deflated_sharpe: float
    report: dict[str, Path] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and the CLI."""
        acc = self.forecaster
        return {
            "run_id": self.run_id,
            "feature_set_version": self.feature_set_version,
            "dataset_version": self.dataset_version,
            "selected_strategy": self.selected,
            "deflated_sharpe": _finite(self.deflated_sharpe),
            "forecaster_accuracy": _finite(float(acc["accuracy"].mean())) if len(acc) else None,
            "majority_rate": _finite(float(acc["majority_rate"].mean())) if len(acc) else None,
            "report": {k: str(v) for k, v in self.report.items()},
            "folds": self.folds,
            "seconds": round(self.seconds, 3),
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_walk_forward(
    feature_set_version: str,
    settings: Settings,
    config: WalkForwardConfig | None = None,
    experiment: str = "walk_forward",
    tags: Mapping[str, str] | None = None,
    *,
    run_name: str | None = None,
    report_dir: Path | None = None,
) -> WalkForwardResult:
    """Walk-forward validation of every strategy of ``config`` on a stored feature set (see the module
    docstring); one MLflow run in ``experiment`` holds the table, the summary and the report."""
    t0 = time.perf_counter()
    cfg = config or WalkForwardConfig()
    algos = [a.lower() for a in cfg.members]
    if cfg.algo.lower() not in ALGORITHMS or set(algos) - set(ALGORITHMS):
        raise ConfigError(f"algo and members must be some of {list(ALGORITHMS)}, got {cfg.algo!r}, {list(cfg.members)}")
    fs = feature_store(settings).open(feature_set_version)
    dataset_version = str(fs.manifest["dataset_version"])
    horizon = int(fs.manifest["config"]["labels"]["horizon"])
    purge = horizon if cfg.purge is None else cfg.purge
    base, bars = base_market(fs, settings, cfg.symbols)
    symbols = list(base.symbols)
    folds = make_folds(
        base.n_steps, n_folds=cfg.n_folds, test_size=cfg.test_size, mode=cfg.mode, train_size=cfg.train_size,
        purge=purge, embargo=cfg.embargo, first_bar=base.first_valid,
    )  # fmt: skip
    plan = StrategyPlan.from_config(cfg)
    wanted = list(cfg.strategies)
    fold_info = [
        {"fold": f.index, "train": list(f.train), "test": list(f.test),
         "train_first": str(base.timestamps[f.train[0]])[:10], "train_last": str(base.timestamps[f.train[1] - 1])[:10],
         "test_first": str(base.timestamps[f.test[0]])[:10], "test_last": str(base.timestamps[f.test[1] - 1])[:10]}
        for f in folds
    ]  # fmt: skip
    lineage = {
        "dataset_version": dataset_version,
        "feature_set_version": fs.version,
        "git_sha": tracking.git_sha(),
        "trading.stage": STAGE,
    }

    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(experiment, settings)
    results: list[FoldResult] = []
    accuracy_rows: list[dict[str, Any]] = []
    with (
        torch_threads(cfg.threads),
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name or f"{STAGE}-{fs.version[3:11]}",
            tags={**dict(tags or {}), **lineage},
            nested=mlflow.active_run() is not None,
        ) as run,
    ):
        run_id = run.info.run_id
        log_setup(cfg, n_folds=len(folds), purge=purge, members=plan.members, symbols=symbols, folds=fold_info)
        work = settings.home / "checkpoints" / STAGE / run_id
        try:
            for fold in folds:
                view = FoldFeatureSet(
                    fs, base.timestamps, fold.train, fold.test, val_fraction=cfg.val_fraction,
                    embargo=cfg.embargo, name=f"wf{fold.index}",
                )  # fmt: skip
                for seed in cfg.seeds:
                    tf = time.perf_counter()
                    checkpoints = work / f"fold{fold.index}-seed{seed}"
                    model = None
                    if NEEDS_FORECASTER & set(wanted):
                        trained = train_fold_forecaster(view, settings, cfg, seed, checkpoints)
                        accuracy_rows.append({"fold": fold.index, "seed": seed, **trained.scores})
                        log_forecaster_scores(fold.index, seed, trained.scores)
                        model = trained.model
                    data = fold_panel(view, base, bars, model, wanted)
                    results += evaluate_strategies(plan, data, fold, view, seed)
                    log.info("fold %d seed %d done in %.1fs", fold.index, seed, time.perf_counter() - tf)
                    shutil.rmtree(checkpoints, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

        table, overall = tabulate(results)
        forecaster = pd.DataFrame(accuracy_rows)
        summary = summarize(table[table["cost_multiplier"] == 1.0].drop(columns=["cost_multiplier"]))
        selected, dsr = select_and_deflate(summary, overall, cfg.seeds[0])
        curves = {strategy: overall[(strategy, cfg.seeds[0])] for strategy in wanted}
        report_lineage = {**lineage, "run_id": run_id, "selected_strategy": selected}
        out_dir = report_dir or settings.home / "reports" / STAGE / run_id
        paths = write_report(
            table, summary, curves, out_dir, f"Walk-forward validation of {fs.version}", report_lineage
        )
        log_report_to_mlflow(paths, summary, report_lineage)
        log_results(table, forecaster, dsr, selected)

    seconds = time.perf_counter() - t0
    log.info("walk-forward run %s: %d folds x %d seeds in %.1fs; selected %s (DSR %.3f)", run_id, len(folds),
             len(cfg.seeds), seconds, selected, dsr)  # fmt: skip
    return WalkForwardResult(
        run_id=run_id,
        feature_set_version=fs.version,
        dataset_version=dataset_version,
        table=table,
        summary=summary,
        forecaster=forecaster,
        selected=selected,
        deflated_sharpe=dsr,
        report=paths,
        folds=fold_info,
        seconds=seconds,
    )
