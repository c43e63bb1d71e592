"""MLflow plumbing every stage shares: the tracking store, experiments, the code's commit, JSON-safe metrics.

Shared infrastructure, not a stage: the forecaster, the RL agent, the walk-forward validation, the
registry and the monitor all log to MLflow through these few functions, so they live beside
:mod:`trading_core.config` at the bottom of the layers (see docs/architecture.md) and import nothing
of the stages. What one stage alone logs (e.g. the forecaster's per-epoch metrics and figures) stays
in that stage (:mod:`trading_core.forecast.reporting`).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess  # nosec B404  # one fixed argv below, no shell
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trading_core.config import Settings


def use_tracking_store(settings: Settings) -> str:
    """Point the MLflow client at the platform's tracking store (embedded default: SQLite in home)."""
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def ensure_experiment(name: str, settings: Settings) -> str:
    """The id of experiment ``name``, created when it does not exist yet: with a local store its
    artifacts go under the configured artifact root (``<root>/<name>``), with a tracking server
    wherever the server sends them. Safe when two tasks race to create it."""
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            raise MlflowException(f"MLflow experiment {name!r} is deleted; restore it or choose another name")
        return str(existing.experiment_id)
    location = None
    if not settings.resolved_mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
        # A local store (SQLite, files) writes artifacts under our artifact root; a tracking server
        # keeps its own default (e.g. S3 via --artifacts-destination), so every worker sees them.
        folder = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"
        location = (settings.resolved_mlflow_artifact_root / folder).as_uri()
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        raced = client.get_experiment_by_name(name)
        if raced is None:
            raise
        return str(raced.experiment_id)


def git_sha() -> str:
    """The commit of the code that runs (``git rev-parse HEAD`` beside this file), or 'unknown'."""
    git = shutil.which("git")  # a full path: bandit B607 (partial executable path)
    if git is None:
        return "unknown"
    try:
        proc = subprocess.run(  # nosec B603  # fixed argv, no shell, no user input
            [git, "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else "unknown"


def finite(values: Mapping[str, float]) -> dict[str, float | None]:
    """MLflow stores NaN; JSON for XCom should not carry it: None instead."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}
