"""Which feature set the forecaster trains on, and the plan of a training run, from DAG params.

The training DAG and the CLI take the same inputs: an optional explicit ``feature_set_version``,
the ``features`` asset events that triggered the run (DAG only) and flat params (HPO workers and
trials, epochs, ensemble size, device, seed). This module turns them into a :class:`TrainingPlan`
without Airflow, so it is tested directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

from trading_core.config import Settings
from trading_core.db import lineage, upgrade_database
from trading_core.errors import ConfigError, DatasetNotFound
from trading_core.security import redact_url
from trading_core.training_config import TRAINING_DEFAULTS as DEFAULTS

log = logging.getLogger(__name__)


def resolve_feature_set_version(
    param: str | None, triggering_extras: Sequence[Mapping[str, Any]], settings: Settings
) -> str:
    """The feature set to train on, by precedence:

    1. ``param``: an explicit ``feature_set_version`` (DAG param, CLI flag);
    2. the newest of ``triggering_extras`` that carries a ``feature_set_version`` (the extras of the
       ``features`` asset events that triggered the run, oldest first);
    3. the latest feature set recorded in the app DB.

    :raises DatasetNotFound: when none gives a version, or the version is not recorded.
    """
    url = settings.resolved_database_url
    upgrade_database(url)  # a fresh app DB answers "no feature set" instead of "no such table"
    version, source = param or None, "the params"
    if version is None:
        version = next(
            (str(e["feature_set_version"]) for e in reversed(triggering_extras) if e and e.get("feature_set_version")),
            None,
        )
        source = "the triggering features asset event"
    if version is None:
        latest = lineage.latest_feature_set(url)
        if latest is None:
            raise DatasetNotFound(
                f"no feature_set_version to train on: none was given (param feature_set_version), no triggering "
                f"features asset event carried one ({len(triggering_extras)} events), and the app DB at "
                f"{redact_url(url)} records no feature set; run the features DAG or `trading features build` first"
            )
        version, source = latest.version, "the latest recorded feature set"
    lineage.get_feature_set(url, version)  # raises DatasetNotFound naming the recorded ones
    log.info("feature_set_version %s from %s", version, source)
    return version


@dataclass(frozen=True)
class TrainingPlan:
    """One training run: the feature set, the HPO study (None = no search) and the final training
    (defaults: :class:`~trading_core.training_config.TrainingConfig`, the DAG form's)."""

    feature_set_version: str
    study_name: str | None
    """Optuna study shared by the HPO workers; None when hpo_workers is 0."""
    hpo_workers: int = DEFAULTS.hpo_workers
    hpo_trials_per_worker: int = DEFAULTS.hpo_trials_per_worker
    hpo_epochs: int = DEFAULTS.hpo_epochs
    """Epochs of each HPO trial (one member per trial)."""
    epochs: int = DEFAULTS.epochs
    """Epochs of each member of the final ensemble."""
    ensemble_size: int = DEFAULTS.ensemble_size
    max_train_samples: int | None = DEFAULTS.max_train_samples
    device: str = DEFAULTS.device
    cpu_threads: int = DEFAULTS.cpu_threads
    seed: int = DEFAULTS.seed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overrides(self, best: Mapping[str, Mapping[str, Any]] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(ForecasterConfig, TrainConfig) overrides of the final training: the HPO's best parameters
        (none: the library defaults) under this plan's epochs, ensemble size, sample cap, device and seed."""
        best = best or {}
        model = {**best.get("model", {}), "ensemble_size": self.ensemble_size}
        train = {
            **best.get("train", {}),
            "epochs": self.epochs,
            "max_train_samples": self.max_train_samples,
            "device": self.device,
            "cpu_threads": self.cpu_threads,
            "seed": self.seed,
        }
        return model, train


def plan_training(
    params: Mapping[str, Any], triggering_extras: Sequence[Mapping[str, Any]], settings: Settings, run_key: str
) -> TrainingPlan:
    """Resolve the feature set, validate the params and, when HPO is asked for, create its study
    (named after the feature set and ``run_key``, e.g. the DAG run id: a rerun of the run resumes it).

    ``params`` holds the training DAG's params; missing or None values take the defaults."""
    values: dict[str, Any] = {}
    for field in fields(TrainingPlan):
        if field.default is not MISSING:  # all but feature_set_version and study_name
            value = params.get(field.name)
            values[field.name] = field.default if value is None else value
    if int(values["hpo_workers"]) < 0:
        raise ConfigError(f"hpo_workers must be >= 0, got {values['hpo_workers']}")
    for key in ("hpo_trials_per_worker", "hpo_epochs", "epochs", "ensemble_size"):
        if int(values[key]) < 1:
            raise ConfigError(f"{key} must be >= 1, got {values[key]}")
    if values["max_train_samples"] is not None and int(values["max_train_samples"]) < 1:
        raise ConfigError(f"max_train_samples must be >= 1 or empty, got {values['max_train_samples']}")
    version = resolve_feature_set_version(params.get("feature_set_version"), triggering_extras, settings)
    study_name = None
    if int(values["hpo_workers"]) > 0:
        from trading_core.forecast.hpo import create_study, study_name_for

        study_name = create_study(
            study_name_for(version, run_key), settings, feature_set_version=version, seed=int(values["seed"])
        )
    return TrainingPlan(feature_set_version=version, study_name=study_name, **values)
