"""Small builders shared by test modules (pytest puts tests/ on sys.path: ``from builders import ...``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from trading_core.features import DatasetConfig, FeatureSetConfig, IndicatorConfig, LabelConfig

TINY = FeatureSetConfig(
    indicators=IndicatorConfig(
        vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30), return_horizons=(1, 5, 21)
    ),
    labels=LabelConfig(horizon=3, threshold_k=0.5),
    dataset=DatasetConfig(seq_len=8, embargo=2),
)
"""A feature recipe with short warm-ups: a year or two of synthetic bars gives a full feature set."""


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
