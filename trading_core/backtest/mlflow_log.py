"""What a walk-forward run records in its MLflow run (the caller opens it): the configuration and
the folds up front, each fold's forecaster scores as they come, the tables and the verdict at the end.
The report files (plots, CSV, HTML) and the summary metrics are logged by
:func:`~trading_core.backtest.report.log_report_to_mlflow`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mlflow
import pandas as pd

from trading_core.backtest.config import WalkForwardConfig
from trading_core.backtest.fold_forecaster import forecaster_pooled


def log_setup(
    cfg: WalkForwardConfig,
    *,
    n_folds: int,
    purge: int,
    members: Sequence[str],
    symbols: Sequence[str],
    folds: list[dict[str, Any]],
) -> None:
    """The run's parameters (``purge`` resolved, ``members`` named) and its folds' bars and dates."""
    mlflow.log_params(
        {
            "n_folds": n_folds, "test_size": cfg.test_size, "mode": cfg.mode, "train_size": cfg.train_size,
            "purge": purge, "embargo": cfg.embargo, "seeds": ",".join(map(str, cfg.seeds)), "algo": cfg.algo,
            "timesteps": cfg.timesteps, "members": ",".join(members), "n_envs": cfg.n_envs,
            "strategies": ",".join(cfg.strategies), "symbols": ",".join(symbols),
            "cost_multipliers": ",".join(map(str, cfg.cost_multipliers)), "val_fraction": cfg.val_fraction,
            "forecaster": str(cfg.forecaster), "forecaster_train": str(cfg.forecaster_train),
            "env": str(cfg.env), "agent": str(cfg.agent),
        }
    )  # fmt: skip
    mlflow.log_dict({"folds": folds}, "walk_forward/folds.json")


def log_forecaster_scores(fold: int, seed: int, scores: dict[str, float]) -> None:
    """A fold's forecaster scores (:func:`~trading_core.backtest.fold_forecaster.forecaster_report`), finite ones."""
    prefix = f"forecaster/fold{fold}_seed{seed}"
    mlflow.log_metrics({f"{prefix}/{k}": v for k, v in scores.items() if math.isfinite(v)})


def log_results(table: pd.DataFrame, forecaster: pd.DataFrame, deflated_sharpe: float, selected: str) -> None:
    """The table, the forecaster's scores per fold and pooled, the deflated Sharpe ratio and the selection."""
    mlflow.log_table(table, "walk_forward/table.json")
    if len(forecaster):
        mlflow.log_table(forecaster, "walk_forward/forecaster.json")
        pooled = forecaster_pooled(forecaster)
        mlflow.log_metrics({f"forecaster_pooled/{k}": v for k, v in pooled.items() if math.isfinite(v)})
    if math.isfinite(deflated_sharpe):
        mlflow.log_metric("deflated_sharpe", deflated_sharpe)
    mlflow.set_tag("selected_strategy", selected)
