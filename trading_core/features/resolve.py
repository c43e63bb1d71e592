"""Which dataset a feature build reads, and the plan for it, from DAG params or CLI flags.

The features DAG and ``trading features build`` take the same inputs: an optional explicit
``dataset_version``, the ``ohlcv`` asset events that triggered the run (DAG only) and flat recipe
params (horizon, threshold_k, seq_len, groups, ...). This module turns them into a
:class:`~trading_core.features.pipeline.FeaturePlan`, without Airflow, so it is tested directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from trading_core.config import Settings
from trading_core.db import lineage, upgrade_database
from trading_core.errors import DatasetNotFound
from trading_core.features.config import FeatureSetConfig
from trading_core.features.pipeline import FeaturePlan, plan_feature_set
from trading_core.security import redact_url

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 100
"""Symbols per shard of the per-symbol work (one mapped task each in the DAG)."""


def resolve_dataset_version(
    param: str | None, triggering_extras: Sequence[Mapping[str, Any]], settings: Settings
) -> str:
    """The dataset to build features from, by precedence:

    1. ``param``: an explicit ``dataset_version`` (DAG param, ``--dataset-version``);
    2. the newest of ``triggering_extras`` that carries a ``dataset_version`` (the extras of the
       ``ohlcv`` asset events that triggered the run, oldest first);
    3. the latest dataset recorded in the app DB.

    :raises DatasetNotFound: when none of the three gives a version.
    """
    if param:
        log.info("dataset_version %s from the params", param)
        return param
    for extra in reversed(triggering_extras):
        version = extra.get("dataset_version") if extra else None
        if version:
            log.info("dataset_version %s from the triggering ohlcv asset event", version)
            return str(version)
    url = settings.resolved_database_url
    upgrade_database(url)  # a fresh app DB answers "no dataset" instead of "no such table"
    latest = lineage.latest_dataset(url)
    if latest is None:
        raise DatasetNotFound(
            f"no dataset_version to build features from: none was given (param dataset_version / "
            f"--dataset-version), no triggering ohlcv asset event carried one ({len(triggering_extras)} events), "
            f"and the app DB at {redact_url(url)} records no dataset; run the market_data DAG or `trading ingest` first"
        )
    log.info("dataset_version %s: the latest recorded dataset", latest.version)
    return latest.version


def plan_from_params(
    params: Mapping[str, Any], triggering_extras: Sequence[Mapping[str, Any]], settings: Settings
) -> FeaturePlan:
    """Resolve the dataset, build the recipe from flat params and plan the sharded build.

    ``params`` holds ``dataset_version``, ``shard_size`` and ``history`` (None = default) besides the keys
    :meth:`FeatureSetConfig.from_params` reads; unknown keys are ignored.
    """
    config = FeatureSetConfig.from_params(params)  # a bad recipe fails before anything is read
    upgrade_database(settings.resolved_database_url)  # the feature_sets table exists before the merge writes
    version = resolve_dataset_version(params.get("dataset_version"), triggering_extras, settings)
    shard_size = params.get("shard_size")
    history: Literal["full", "dataset"] = "dataset" if params.get("history") == "dataset" else "full"
    if params.get("history") not in (None, "full", "dataset"):
        raise ValueError(f"history must be 'full' or 'dataset', got {params.get('history')!r}")
    return plan_feature_set(
        version, config, settings, DEFAULT_SHARD_SIZE if shard_size is None else int(shard_size), history
    )
