"""Features and labels: causal indicators, Hold/Buy/Sell labels, leakage-safe training sets.

The stage turns a ``dataset_version`` into a ``feature_set_version`` (see :mod:`.pipeline`).
"""

from trading_core.features.config import (
    FEATURE_GROUPS,
    LABEL_NAMES,
    DatasetConfig,
    FeatureSetConfig,
    IndicatorConfig,
    LabelConfig,
)
from trading_core.features.pipeline import (
    FeaturePlan,
    FeatureSetResult,
    build_feature_set,
    compute_features,
    compute_shard,
    feature_store,
    merge_shards,
    plan_feature_set,
)
from trading_core.features.store import FeatureSet, FeatureStore

__all__ = [
    "FEATURE_GROUPS",
    "LABEL_NAMES",
    "DatasetConfig",
    "FeatureSet",
    "FeatureSetConfig",
    "FeaturePlan",
    "FeatureSetResult",
    "FeatureStore",
    "IndicatorConfig",
    "LabelConfig",
    "build_feature_set",
    "compute_features",
    "compute_shard",
    "feature_store",
    "merge_shards",
    "plan_feature_set",
]
