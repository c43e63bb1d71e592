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

from airflow.sdk import Param, dag, task
from trading_assets import DEFAULT_ARGS, FEATURES, OHLCV

# Defaults equal the library's (trading_core.features.config); tests/test_features_dag.py checks it.
FEATURE_GROUPS = ["market", "technical", "regime", "microstructure"]


@dag(
    dag_id="features",
    schedule=[OHLCV],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "features"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "dataset_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^ds-[0-9a-f]{1,64}$",
            description="Dataset to read; empty = the triggering ohlcv event's, else the latest recorded.",
        ),
        "history": Param(
            "full",
            type="string",
            enum=["full", "dataset"],
            description="full: the lake's whole history of the dataset's symbols up to its end (a daily ingest "
            "announces a few days; the warm-ups need years); dataset: exactly the dataset.",
        ),
        "horizon": Param(5, type="integer", minimum=1, maximum=252, description="Label horizon h in bars."),
        "threshold_k": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=10,
            description="Buy/Sell threshold k in units of the horizon's volatility (k * sigma * sqrt(h)).",
        ),
        "entry": Param(
            "next_open",
            type="string",
            enum=["next_open", "close"],
            description="Label entry price: the next bar's open (the platform's execution) or this close.",
        ),
        "vol_window": Param(21, type="integer", minimum=2, description="Bars of the label's volatility estimate."),
        "seq_len": Param(30, type="integer", minimum=1, maximum=1024, description="Bars per forecaster window."),
        "val_fraction": Param(0.15, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5),
        "test_fraction": Param(0.15, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5),
        "embargo": Param(5, type="integer", minimum=0, description="Bars skipped after each split boundary."),
        "groups": Param(
            FEATURE_GROUPS,
            type="array",
            items={"type": "string", "enum": FEATURE_GROUPS},
            minItems=1,
            uniqueItems=True,
            description="Feature groups to compute.",
        ),
        "turbulence_window": Param(
            252, type="integer", minimum=20, description="History of the turbulence index (bars)."
        ),
        "vol_regime_window": Param(
            252, type="integer", minimum=20, description="Window over which volatility is z-scored (regime)."
        ),
        "corr_window": Param(63, type="integer", minimum=5, description="Window of the rolling correlations."),
        "shard_size": Param(
            100, type="integer", minimum=1, maximum=10000, description="Symbols per mapped compute_shard task."
        ),
    },
)
def features() -> None:
    @task
    def plan(**context: Any) -> list[int]:
        """Resolve the dataset (params > triggering ohlcv event > latest), fix the version, shard the symbols.

        Pushes the plan under the XCom key ``plan``; returns the shard indices the next task maps over.
        """
        from trading_core.config import get_settings
        from trading_core.features.resolve import plan_from_params

        events = (context.get("triggering_asset_events") or {}).get(OHLCV, [])
        extras = [event.extra for event in sorted(events, key=lambda event: event.timestamp)]
        feature_plan = plan_from_params(context["params"], extras, get_settings())
        context["ti"].xcom_push(key="plan", value=feature_plan.as_dict())
        return list(range(len(feature_plan.shards)))

    @task
    def compute_shard(plan: dict[str, Any], shard: int) -> str:
        """Per-symbol features and labels of one shard -> an Arrow file in the plan's work dir."""
        from trading_core.config import get_settings
        from trading_core.features.pipeline import FeaturePlan
        from trading_core.features.pipeline import compute_shard as compute

        return compute(FeaturePlan(**plan), shard, get_settings())

    @task(outlets=[FEATURES])
    def merge(plan: dict[str, Any], shard_paths: list[str], *, outlet_events: Any) -> dict[str, Any]:
        """Cross-asset features over the merged universe, splits, scaler; store + DB; announce the set."""
        from trading_core.config import get_settings
        from trading_core.features.pipeline import FeaturePlan, merge_shards

        paths = list(shard_paths[:])  # the mapped results arrive as a lazy sequence: fetch all in one request
        result = merge_shards(FeaturePlan(**plan), paths, get_settings())
        outlet_events[FEATURES].extra = result.as_reference()
        return result.as_reference()

    shards = plan()
    shard_paths = compute_shard.partial(plan=shards["plan"]).expand(shard=shards)
    merge(shards["plan"], shard_paths)


features()
