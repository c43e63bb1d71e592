"""Small builders shared by test modules (pytest puts tests/ on sys.path: ``from builders import ...``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.features import DatasetConfig, FeatureSetConfig, IndicatorConfig, LabelConfig

TINY = FeatureSetConfig(
    indicators=IndicatorConfig(
        vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30), return_horizons=(1, 5, 21)
    ),
    labels=LabelConfig(horizon=3, threshold_k=0.5),
    dataset=DatasetConfig(seq_len=8, embargo=2),
)
"""A feature recipe with short warm-ups: a year or two of synthetic bars gives a full feature set."""

TINY_RUN: dict[str, Any] = {
    "hpo_workers": 2,
    "hpo_trials_per_worker": 1,
    "hpo_epochs": 1,
    "epochs": 1,
    "ensemble_size": 2,
    "max_train_samples": 256,
    "device": "cpu",
    # the agent and the walk-forward, as small as they get
    "timesteps": 256,
    "n_envs": 2,
    "folds": 2,
    "test_size": 30,
    "seeds": [0],
    "wf_timesteps": 256,
    "wf_epochs": 1,
}
"""Training DAG params for the smallest real run: two HPO workers of one trial, one epoch, 256 agent steps."""


def asset_events(asset: Any, events: list[tuple[dict[str, Any], int]], source_dag: str, source_task: str) -> Any:
    """Airflow's ``triggering_asset_events`` accessor for ``asset``: one event per (extra, day of Jan 2026)."""
    from airflow.sdk.api.datamodels._generated import AssetReferenceAssetEventDagRun
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    return TriggeringAssetEventsAccessor.build(
        [
            AssetEventDagRunReferenceResult(
                asset=AssetReferenceAssetEventDagRun(name=asset.name, uri=asset.uri, extra={}),
                extra=extra,
                source_task_id=source_task,
                source_dag_id=source_dag,
                source_run_id=f"run__{day}",
                source_map_index=-1,
                source_aliases=[],
                timestamp=datetime(2026, 1, day, tzinfo=UTC),
            )
            for extra, day in events
        ]
    )


class TaskInstanceStub:
    """Collects what a task pushes to XCom."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def trending_market(path: Path, days: int = 520, drift: float = 0.004, vol: float = 0.008, seed: int = 7) -> Path:
    """Three symbols on business days with a strong planted drift (daily Sharpe ~0.5 per symbol)."""
    rng = np.random.default_rng(seed)
    stamps = pd.bdate_range("2022-01-03", periods=days)
    frames = []
    for k, symbol in enumerate(("AAA", "BBB", "CCC")):
        log_close = np.log(50.0 + 10 * k) + np.cumsum(drift + vol * rng.standard_normal(days))
        close = np.exp(log_close)
        open_ = close * np.exp(0.002 * rng.standard_normal(days))
        high = np.maximum(open_, close) * (1 + 0.004 * rng.random(days))
        low = np.minimum(open_, close) * (1 - 0.004 * rng.random(days))
        volume = rng.uniform(2e7, 9e7, days) / close  # a stationary dollar volume: liquidity does not drift
        frames.append(pd.DataFrame({"timestamp": stamps, "symbol": symbol, "open": open_, "high": high, "low": low,
                                    "close": close, "volume": volume}))  # fmt: skip
    pd.concat(frames).to_csv(path, index=False)
    return path


GOOD_METRICS = {
    "wf_hybrid_rl_sharpe_mean": 1.2,
    "wf_hybrid_rl_sharpe_ci_low": 0.3,
    "wf_hybrid_rl_max_drawdown_mean": 0.08,
    "wf_hybrid_rl_fold0_sharpe": 1.1,
    "wf_hybrid_rl_fold1_sharpe": 0.7,
    "wf_hybrid_rl_fold2_sharpe": 1.6,
}
"""Walk-forward metrics that pass config/governance.yaml (registered by the tests with a baseline policy)."""


def register_baseline(
    settings: Any, fsv: str, workdir: Path, actions: list[float] | None, metrics: dict[str, float], tag: str,
    name: str = "trading-policy",
) -> str:  # fmt: skip
    """Log a constant-mix policy on feature set ``fsv`` and register it as a candidate; returns its version."""
    from trading_core.registry.bundle import baseline_policy, log_policy_run
    from trading_core.registry.candidate import register_candidate

    policy = baseline_policy(settings, feature_set_version=fsv, kind="constant_mix", constant_actions=actions,
                             workdir=workdir / f"build-{tag}")  # fmt: skip
    run_id, uri = log_policy_run(settings, policy, tags={"test": tag})
    version = register_candidate(
        settings, model_uri=uri, lineage={"feature_set_version": fsv}, metrics=metrics,
        links={"policy_run": run_id}, dag_run=f"test:{tag}", name=name,
    )  # fmt: skip
    return version.version


def trending_feature_set(settings: Any, home: Path) -> tuple[Path, str]:
    """Ingest :func:`trending_market` (written to ``home/trend.csv``) and build its TINY feature set:
    returns (csv path, feature_set_version)."""
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest
    from trading_core.features import build_feature_set

    csv = trending_market(home / "trend.csv")
    dataset = ingest(IngestRequest(source="csv", path=str(csv)), settings).dataset_version
    return csv, build_feature_set(dataset, TINY, settings).feature_set_version


def planted_break(path: Path, start: str, days: int = 130, seed: int = 11) -> Path:
    """After ``start``: volatility x4, a falling market and thin volume (a regime the model never saw)."""
    rng = np.random.default_rng(seed)
    old = pd.read_csv(path, parse_dates=["timestamp"])
    stamps = pd.bdate_range(start, periods=days)
    frames = [old]
    for symbol, group in old.groupby("symbol"):
        last = float(group["close"].iloc[-1])
        close = last * np.exp(np.cumsum(-0.004 + 0.032 * rng.standard_normal(days)))
        open_ = close * np.exp(0.01 * rng.standard_normal(days))
        high = np.maximum(open_, close) * (1 + 0.02 * rng.random(days))
        low = np.minimum(open_, close) * (1 - 0.02 * rng.random(days))
        frames.append(pd.DataFrame({"timestamp": stamps, "symbol": symbol, "open": open_, "high": high, "low": low,
                                    "close": close, "volume": rng.uniform(2e6, 9e6, days) / close}))  # fmt: skip
    pd.concat(frames).to_csv(path, index=False)
    return path
