"""The manifest of a feature set, and the version derived from it.

``feature_set_version = "fs-" + sha256(dataset_version, features, config, code and TA-Lib versions)``:
the same bars and the same recipe always give the same version; any change gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd
import talib

from trading_core.features.config import LABEL_NAMES, FeatureSetConfig
from trading_core.features.labels import LABEL_COLUMNS
from trading_core.features.specs import feature_specs

FEATURES_CODE_VERSION = "1"
"""Bump when a feature's formula changes, so old feature sets are not mistaken for new ones."""


def build_manifest(dataset_version: str, config: FeatureSetConfig, n_symbols: int) -> dict[str, Any]:
    specs = feature_specs(config.indicators, n_symbols)
    identity = {
        "dataset_version": dataset_version,
        "code_version": FEATURES_CODE_VERSION,
        "talib": talib.__version__,
        "features": [s.as_dict() for s in specs],
        "config": config.model_dump(mode="json"),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return {
        "feature_set_version": f"fs-{digest}",
        **identity,
        "feature_names": [s.name for s in specs],
        "label_columns": list(LABEL_COLUMNS),
        "label_names": list(LABEL_NAMES),
        "n_symbols": n_symbols,
        "libraries": {"numpy": np.__version__, "pandas": pd.__version__},
    }
