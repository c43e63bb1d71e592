"""
### Features: lake -> causal indicators, Hold/Buy/Sell labels, leakage-safe windows

Turns a **dataset_version** into a **feature_set_version**: per-symbol indicators (market,
technical, microstructure) and volatility-scaled labels, then cross-asset regime features
(FinRL turbulence, correlations, volatility regime) over the merged universe, purged/embargoed
train/val/test splits, a scaler fitted on training rows only, and the set in the feature store
with its manifest and lineage in the app DB. Same inputs, same version: a rerun reuses the set.

* **Schedule**: on every update of Asset `ohlcv`; the dataset comes from the event's extra.
* **Manual trigger**: the form (label horizon and threshold, window length, feature groups,
  regime windows, shard size); an empty `dataset_version` means the latest recorded dataset.
* **Fan-out**: symbols are split into shards of `shard_size`; `compute_shard` is mapped over them
  (dynamic task mapping), `merge` joins them and adds the cross-asset features. LocalExecutor runs
  the shards in parallel on one machine; Celery/Kubernetes workers spread them over a cluster with
  no code change (the staging folder under `TRADING_HOME` must be shared storage there).
* **Output**: Asset `features`, event extra `{feature_set_version, dataset_version, path, rows,
  n_features, samples, majority_rate_test}`.
* Same functions on the command line: `trading features build --horizon 5 --seq-len 30`,
  `trading features list`, `trading features show fs-...`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task
from features_params import features_params
from trading_assets import DEFAULT_ARGS, FEATURES, OHLCV
from trading_context import task_settings, triggering_extras


@dag(
    dag_id="features",
    schedule=[OHLCV],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "features"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params=features_params(),  # the form: dags/features_params.py
)
def features() -> None:
    @task
    def plan(**context: Any) -> list[int]:
        """Resolve the dataset (params > triggering ohlcv event > latest), fix the version, shard the symbols.

        Pushes the plan under the XCom key ``plan``; returns the shard indices the next task maps over.
        """
        from trading_core.features.resolve import plan_from_params

        feature_plan = plan_from_params(context["params"], triggering_extras(context, OHLCV), task_settings())
        context["ti"].xcom_push(key="plan", value=feature_plan.as_dict())
        return list(range(len(feature_plan.shards)))

    @task
    def compute_shard(plan: dict[str, Any], shard: int) -> str:
        """Per-symbol features and labels of one shard -> an Arrow file in the plan's work dir."""
        from trading_core.features.pipeline import FeaturePlan
        from trading_core.features.pipeline import compute_shard as compute

        return compute(FeaturePlan(**plan), shard, task_settings())

    @task(outlets=[FEATURES])
    def merge(plan: dict[str, Any], shard_paths: list[str], *, outlet_events: Any) -> dict[str, Any]:
        """Cross-asset features over the merged universe, splits, scaler; store + DB; announce the set."""
        from trading_core.features.pipeline import FeaturePlan, merge_shards

        paths = list(shard_paths[:])  # the mapped results arrive as a lazy sequence: fetch all in one request
        result = merge_shards(FeaturePlan(**plan), paths, task_settings())
        outlet_events[FEATURES].extra = result.as_reference()
        return result.as_reference()

    shards = plan()
    shard_paths = compute_shard.partial(plan=shards["plan"]).expand(shard=shards)
    merge(shards["plan"], shard_paths)


features()
