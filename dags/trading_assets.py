"""Assets (and task defaults) shared by the trading DAGs: the contracts between stages, in one place.

Each asset event carries references in its ``extra`` (versions, paths), never data.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param

GPU_QUEUE = os.environ.get("TRADING_GPU_QUEUE") or "default"
"""Celery queue of the GPU training tasks: ``Settings.gpu_queue``'s variable ``TRADING_GPU_QUEUE``, read
from the environment because DAG files import no trading_core at parse time (``default`` unless a GPU
worker serves ``gpu``; the tasks' own Settings validate it)."""

GPU_TASK: dict[str, Any] = {"pool": "gpu", "queue": GPU_QUEUE, "execution_timeout": timedelta(hours=2)}
"""Arguments of a task that trains on a GPU: pool ``gpu`` (its slots are the GPUs), the GPU worker's queue,
and a timeout (a hung CUDA call must not hold the pool)."""

DEFAULT_ARGS = {
    "owner": "ml-platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
}
"""Task defaults shared by the trading DAGs: two retries with exponential backoff."""

OHLCV = Asset(name="ohlcv", uri="trading://lake/ohlcv", group="trading")
"""Validated OHLCV bars in the lake; extra: dataset_version, feed, interval, symbols, range."""

FEATURES = Asset(name="features", uri="trading://features", group="trading")
"""A feature set in the feature store; extra: feature_set_version, dataset_version, path, rows,
n_features, samples (train/val/test counts), majority_rate_test (the baseline accuracy to beat)."""

FORECASTER = Asset(name="forecaster", uri="trading://models/forecaster", group="trading")
"""A trained forecaster ensemble in MLflow; extra: the run reference (run_id, model_uri,
feature_set_version, dataset_version, metrics, params, seconds, device) and the HPO study, if any."""

CANDIDATE_MODEL = Asset(name="candidate_model", uri="trading://models/candidate", group="trading")
"""A policy version registered in MLflow with alias ``candidate``; extra: name, version, alias, source
and the training DAG run's references (feature set, forecaster, agent, walk-forward run)."""

CHAMPION_MODEL = Asset(name="champion_model", uri="trading://models/champion", group="trading")
"""The registered model's ``champion`` alias moved (promotion after an A/B, first champion, restore);
extra: name, version, previous version, why. The drift monitor watches the champion."""

REPLAY_START = datetime(2000, 1, 1, tzinfo=UTC)
"""start_date of the DAGs that replay history (A/B, drift monitor): early, so backfill / dag.test can
run them on historical logical dates; their catchup stays off."""


def model_name_param() -> Param:
    """The registered model a governance DAG works on (a fresh Param per DAG)."""
    return Param(None, type=["null", "string"], pattern=r"^[A-Za-z0-9_.-]{1,100}$",
                 description="Registered model; empty = TRADING_MODEL_NAME.")  # fmt: skip


def model_version_param(description: str) -> Param:
    """A model version number, empty for the DAG's default (``description`` says which)."""
    return Param(None, type=["null", "string"], pattern=r"^[0-9]{1,9}$", description=description)
