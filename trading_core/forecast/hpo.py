"""Hyper-parameter search for the forecaster: one Optuna study shared by several workers.

Read top to bottom: the search space (what may vary; the features are fixed by the feature set)
-> the study's storage in the app DB -> ``create_study`` (once, by whoever plans the search) ->
``run_hpo_worker`` (any number of them, in parallel: Airflow mapped tasks) -> ``best_params``
(the winner as ForecasterConfig / TrainConfig overrides) -> ``log_study`` (MLflow).

* **Sampler**: TPE, seeded per worker so parallel workers do not draw the same points; the
  constant liar keeps them apart while their trials run.
* **Pruner**: median pruner on the validation loss reported after every epoch; a trial whose loss
  is worse than the median of finished trials at the same epoch stops early.
* **Storage**: Optuna's RDB storage on the app DB server. Optuna keeps its own Alembic history
  (table ``alembic_version``, as the app DB does), so its tables live apart: in the schema
  ``optuna`` of the app DB on PostgreSQL, in the file ``<app db>-optuna.db`` beside it on SQLite.
* **Objective**: the best validation cross-entropy of the trial (mean over members when a trial
  trains more than one); each trial trains ``ensemble_size`` members (1 by default, for speed).
* A sampler or pruner is not stored by Optuna: ``create_study`` writes their settings and the
  search space into the study's user attributes and every worker reads them back from there.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.pruners import MedianPruner
from optuna.samplers import TPESampler
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy import text
from sqlalchemy.engine import make_url

from trading_core import tracking
from trading_core.config import Settings
from trading_core.db.session import make_engine
from trading_core.errors import ConfigError, TradingError
from trading_core.features.pipeline import feature_store
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.train import TrainConfig, train_ensemble
from trading_core.security import redact_url

log = logging.getLogger(__name__)

OPTUNA_SCHEMA = "optuna"
"""PostgreSQL schema of Optuna's tables in the app DB."""
HPO_EXPERIMENT = "forecaster-hpo"
STUDY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")


class StudyNotFound(TradingError, LookupError):
    """No study with the requested name is in the Optuna storage."""


class NoCompletedTrial(TradingError, LookupError):
    """The study has no completed trial, so there is no best one."""


# ----------------------------------------------------------------------------------- search space


@dataclass(frozen=True)
class SearchSpace:
    """What a trial may vary. Ranges are (low, high); choices are tuples. A one-element choice, or
    a range with low == high, pins the knob."""

    lr: tuple[float, float] = (1e-4, 1e-2)
    """AdamW learning rate, sampled on a log scale."""
    weight_decay: tuple[float, float] = (1e-6, 1e-2)
    """AdamW weight decay, log scale."""
    batch_size: tuple[int, ...] = (128, 256, 512)
    loss: tuple[str, ...] = ("weighted_ce", "focal")
    """Imbalance handling (see TrainConfig.loss)."""
    dropout: tuple[float, float] = (0.0, 0.4)
    lstm_units: tuple[int, ...] = (16, 32, 48, 64)
    cnn_width: tuple[int, ...] = (16, 32, 64)
    """Channels of every Conv1d block."""
    cnn_depth: tuple[int, ...] = (1, 2)
    """Number of Conv1d blocks."""
    kernel_size: tuple[int, ...] = (3, 5)

    def __post_init__(self) -> None:
        for name, low_bound in (("lr", 0.0), ("weight_decay", 0.0), ("dropout", -1.0)):
            low, high = getattr(self, name)
            if not (low_bound < low <= high):
                raise ConfigError(f"SearchSpace.{name} must be a range (low, high) with {low_bound} < low <= high")
        if self.dropout[1] >= 1:
            raise ConfigError(f"SearchSpace.dropout must stay below 1, got {self.dropout}")
        for f in fields(self):
            if f.name in ("lr", "weight_decay", "dropout"):
                continue
            choices = getattr(self, f.name)
            if not choices:
                raise ConfigError(f"SearchSpace.{f.name} needs at least one choice")
            if f.name != "loss" and any(not isinstance(c, int) or c < 1 for c in choices):
                raise ConfigError(f"SearchSpace.{f.name} choices must be positive integers, got {choices}")
        if bad := set(self.loss) - {"weighted_ce", "focal"}:
            raise ConfigError(f"SearchSpace.loss: unknown losses {sorted(bad)} (expected weighted_ce, focal)")

    def suggest(self, trial: Trial) -> dict[str, Any]:
        """Draw one point: flat parameters, named as in the study (see :func:`overrides_from_params`)."""
        return {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "batch_size": trial.suggest_categorical("batch_size", list(self.batch_size)),
            "loss": trial.suggest_categorical("loss", list(self.loss)),
            "dropout": trial.suggest_float("dropout", *self.dropout),
            "lstm_units": trial.suggest_categorical("lstm_units", list(self.lstm_units)),
            "cnn_width": trial.suggest_categorical("cnn_width", list(self.cnn_width)),
            "cnn_depth": trial.suggest_categorical("cnn_depth", list(self.cnn_depth)),
            "kernel_size": trial.suggest_categorical("kernel_size", list(self.kernel_size)),
        }

    def as_dict(self) -> dict[str, list[Any]]:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchSpace:
        return cls(**{key: tuple(value) for key, value in values.items()})


def overrides_from_params(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A trial's flat parameters as ``{"model": ForecasterConfig overrides, "train": TrainConfig
    overrides}`` (JSON-friendly: ``cnn_filters`` is a list)."""
    return {
        "model": {
            "cnn_filters": [int(params["cnn_width"])] * int(params["cnn_depth"]),
            "kernel_size": int(params["kernel_size"]),
            "lstm_units": int(params["lstm_units"]),
            "dropout": float(params["dropout"]),
        },
        "train": {
            "lr": float(params["lr"]),
            "weight_decay": float(params["weight_decay"]),
            "batch_size": int(params["batch_size"]),
            "loss": str(params["loss"]),
        },
    }


@dataclass(frozen=True)
class StudyStrategy:
    """How the study samples and prunes; stored with the study so that every worker agrees."""

    sampler_startup_trials: int = 4
    """Random trials (over all workers) before TPE starts modelling the good region."""
    pruner_startup_trials: int = 2
    """Finished trials before any trial can be pruned."""
    pruner_warmup_steps: int = 1
    """Epochs a trial reports before it can be pruned (step = member * epochs + epoch)."""

    def sampler(self, seed: int) -> TPESampler:
        return TPESampler(seed=seed, n_startup_trials=self.sampler_startup_trials, constant_liar=True)

    def pruner(self) -> MedianPruner:
        return MedianPruner(n_startup_trials=self.pruner_startup_trials, n_warmup_steps=self.pruner_warmup_steps)


# ---------------------------------------------------------------------------------------- storage


def storage_url(database_url: str) -> str:
    """The Optuna storage URL for an app DB URL: a sibling ``-optuna`` file for SQLite, the same
    database for PostgreSQL (its tables go to the schema ``optuna``, see :func:`open_storage`)."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"an in-memory SQLite app DB ({redact_url(database_url)}) cannot hold a study shared by workers"
            )
        path = Path(url.database)
        return url.set(database=str(path.with_name(f"{path.stem}-optuna{path.suffix or '.db'}"))).render_as_string(
            hide_password=False
        )
    if backend == "postgresql":
        return database_url
    raise ConfigError(f"Optuna storage supports an app DB on SQLite or PostgreSQL, not {backend!r} ({url!r})")


@contextmanager
def open_storage(settings: Settings) -> Iterator[RDBStorage]:
    """Optuna's RDB storage on the app DB server, ready for several processes at once."""
    url = storage_url(settings.resolved_database_url)
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path, timeout=60) as conn:  # WAL is a property of the file: readers never block
            conn.execute("PRAGMA journal_mode=WAL")
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
    else:
        with make_engine(url).begin() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": OPTUNA_SCHEMA}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{OPTUNA_SCHEMA}"'))
        engine_kwargs = {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True}
    storage = RDBStorage(url, engine_kwargs=engine_kwargs)
    try:
        yield storage
    finally:
        storage.engine.dispose()


def _study_attrs(storage: RDBStorage, study_name: str) -> dict[str, Any]:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        raise StudyNotFound(
            f"no study {study_name!r} in the Optuna storage {storage_url_safe(storage)}; create it first "
            f"(create_study, or the training DAG's resolve task)"
        ) from None
    return storage.get_study_user_attrs(study_id)


def storage_url_safe(storage: RDBStorage) -> str:
    return make_url(storage.url).render_as_string(hide_password=True)


def study_name_for(feature_set_version: str, run_key: str) -> str:
    """A study per feature set and run (DAG run id, CLI invocation): reruns of the run share it."""
    import hashlib

    return f"forecaster-{feature_set_version}-{hashlib.sha256(run_key.encode()).hexdigest()[:10]}"


# ------------------------------------------------------------------------------------------ study


def create_study(
    study_name: str,
    settings: Settings,
    direction: Literal["minimize", "maximize"] = "minimize",
    *,
    feature_set_version: str | None = None,
    search: SearchSpace | None = None,
    strategy: StudyStrategy | None = None,
    seed: int = 42,
) -> str:
    """Create the study (or load it: idempotent) and record its search space and strategy.

    :raises ConfigError: when a study of that name exists with another search space, strategy,
        direction or feature set.
    """
    if not STUDY_NAME_PATTERN.match(study_name):
        raise ConfigError(f"study name {study_name!r} must match {STUDY_NAME_PATTERN.pattern}")
    search, strategy = search or SearchSpace(), strategy or StudyStrategy()
    recipe = {
        "search_space": search.as_dict(),
        "strategy": asdict(strategy),
        "feature_set_version": feature_set_version,
        "seed": seed,
    }
    with open_storage(settings) as storage:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=direction,
            load_if_exists=True,
            sampler=strategy.sampler(seed),
            pruner=strategy.pruner(),
        )
        if study.direction.name.lower() != direction:
            raise ConfigError(f"study {study_name!r} exists with direction {study.direction.name.lower()}")
        stored = study.user_attrs
        if "search_space" not in stored:
            for key, value in recipe.items():
                study.set_user_attr(key, value)
        elif any(stored.get(key) != value for key, value in recipe.items()):
            raise ConfigError(
                f"study {study_name!r} exists with another recipe: {json.dumps(stored)} (asked: {json.dumps(recipe)})"
            )
        log.info("study %s ready in %s (%d trials so far)", study_name, storage_url_safe(storage), len(study.trials))
    return study_name


def run_hpo_worker(
    study_name: str,
    feature_set_version: str,
    settings: Settings,
    n_trials: int,
    *,
    worker: int = 0,
    epochs: int = 3,
    ensemble_size: int = 1,
    seed: int = 42,
    max_train_samples: int | None = None,
    device: str = "auto",
    cpu_threads: int = 1,
) -> dict[str, Any]:
    """Run ``n_trials`` trials of the study as worker number ``worker`` (the sampler's seed is
    ``seed * 1000 + worker``), then return a summary of this worker and of the study so far.

    Idempotent under retries: trials this worker already finished count towards ``n_trials``, and
    trials it left running (a killed attempt) are marked failed.
    """
    if n_trials < 0 or epochs < 1 or ensemble_size < 1 or worker < 0:
        raise ConfigError(f"bad HPO worker arguments: {n_trials=}, {epochs=}, {ensemble_size=}, {worker=}")
    fs = feature_store(settings).open(feature_set_version)
    t0 = time.perf_counter()
    with open_storage(settings) as storage:
        attrs = _study_attrs(storage, study_name)
        if attrs.get("feature_set_version") not in (None, feature_set_version):
            raise ConfigError(
                f"study {study_name!r} searches feature set {attrs['feature_set_version']}, not {feature_set_version}"
            )
        search = SearchSpace.from_dict(attrs["search_space"]) if "search_space" in attrs else SearchSpace()
        strategy = StudyStrategy(**attrs.get("strategy", {}))
        study = optuna.load_study(
            study_name=study_name,
            storage=storage,
            sampler=strategy.sampler(seed * 1000 + worker),
            pruner=strategy.pruner(),
        )
        done = _resume(storage, study, worker)
        remaining = max(0, n_trials - done)
        log.info("worker %d: %d of %d trials already finished, running %d", worker, done, n_trials, remaining)

        def objective(trial: Trial) -> float:
            trial.set_user_attr("worker", worker)
            overrides = overrides_from_params(search.suggest(trial))
            model_cfg = ForecasterConfig.from_dict(
                {
                    "input_dim": len(fs.feature_names),
                    "seq_len": fs.seq_len,
                    "ensemble_size": ensemble_size,
                    **overrides["model"],
                }
            )
            # One member sees all the data (no bootstrap); the same seed for every trial, so trials
            # differ by their parameters only.
            train_cfg = TrainConfig(
                epochs=epochs,
                bootstrap_block=0,
                max_train_samples=max_train_samples,
                device=device,
                cpu_threads=cpu_threads,
                seed=seed,
                **overrides["train"],
            )

            def on_epoch(member: int, epoch: int, metrics: dict[str, float]) -> None:
                step = member * epochs + epoch
                trial.report(metrics["val_loss"], step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"val_loss {metrics['val_loss']:.4f} at step {step} is above the median")

            with tempfile.TemporaryDirectory(prefix=f"hpo-trial-{trial.number}-") as checkpoints:
                result = train_ensemble(fs, model_cfg, train_cfg, Path(checkpoints), on_epoch=on_epoch)
            trial.set_user_attr("seconds", round(result.seconds, 3))
            trial.set_user_attr("device", result.device)
            best: dict[int, float] = {}
            for row in result.history:
                member = int(row["member"])
                best[member] = min(best.get(member, math.inf), float(row["val_loss"]))
            return sum(best.values()) / len(best) if best else math.nan

        if remaining:
            study.optimize(objective, n_trials=remaining, gc_after_trial=True)  # frees a trial's GPU memory
        mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker]
        summary = {
            "study_name": study_name,
            "worker": worker,
            "trials": len(mine),
            "completed": sum(t.state == TrialState.COMPLETE for t in mine),
            "pruned": sum(t.state == TrialState.PRUNED for t in mine),
            "seconds": round(time.perf_counter() - t0, 3),
            **study_summary(study),
        }
    log.info("worker %d done: %s", worker, json.dumps(summary))
    return summary


def _resume(storage: RDBStorage, study: optuna.Study, worker: int) -> int:
    """Fail the trials a killed attempt of this worker left running; count those it finished."""
    done = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("worker") != worker:
            continue
        if trial.state == TrialState.RUNNING:
            log.warning(
                "trial %d was left running by an earlier attempt of worker %d: marked failed", trial.number, worker
            )
            study_id = storage.get_study_id_from_name(study.study_name)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            done += 1
    return done


def study_summary(study: optuna.Study) -> dict[str, Any]:
    """Counts by state and the best trial so far (None when no trial completed)."""
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    best = min(completed, key=lambda t: sign * float(t.value if t.value is not None else math.inf), default=None)
    return {
        "study_trials": len(trials),
        "study_completed": len(completed),
        "study_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "study_failed": sum(t.state == TrialState.FAIL for t in trials),
        "best_value": None if best is None else best.value,
        "best_trial": None if best is None else best.number,
        "best_params": None if best is None else dict(best.params),
    }


def best_trial(study_name: str, settings: Settings) -> FrozenTrial:
    """The best completed trial. :raises NoCompletedTrial: when none completed."""
    with open_storage(settings) as storage:
        _study_attrs(storage, study_name)
        study = optuna.load_study(study_name=study_name, storage=storage)
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            counts = {k: v for k, v in study_summary(study).items() if k.startswith("study_")}
            raise NoCompletedTrial(
                f"study {study_name!r} has no completed trial ({counts}): every trial was pruned or failed, or "
                f"no worker ran; look at the HPO workers' logs, or train with the default parameters"
            )
        return study.best_trial


def best_params(study_name: str, settings: Settings) -> dict[str, dict[str, Any]]:
    """The best trial as ``{"model": ForecasterConfig overrides, "train": TrainConfig overrides}``."""
    return overrides_from_params(best_trial(study_name, settings).params)


# ----------------------------------------------------------------------------------------- MLflow


def log_study(study_name: str, settings: Settings, *, experiment: str = HPO_EXPERIMENT) -> str:
    """Log the study to MLflow and return the run id: one run with the best trial's parameters and
    value, the counts, ``trials.csv`` and ``best_params.json``, and one nested run per finished
    trial (parameters, objective, the validation loss per step). A rerun replaces its earlier log."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    with open_storage(settings) as storage:
        attrs = _study_attrs(storage, study_name)
        study = optuna.load_study(study_name=study_name, storage=storage)
        trials = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        summary = study_summary(study)
        table = study.trials_dataframe().to_csv(index=False)

    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///"):  # the local store's folder (the home) may not exist yet
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(uri)
    experiment_id = tracking.ensure_experiment(experiment, settings)
    for old in client.search_runs([experiment_id], filter_string=f"tags.study_name = '{study_name}'"):
        client.delete_run(old.info.run_id)
    tags = {
        "study_name": study_name,
        "feature_set_version": str(attrs.get("feature_set_version")),
        "git_sha": tracking.git_sha(),
    }
    parent = client.create_run(experiment_id, run_name=study_name, tags={**tags, "hpo.role": "study"}).info.run_id
    now = int(time.time() * 1000)
    counts = {k: float(v) for k, v in summary.items() if k.startswith("study_")}
    metrics = [Metric(k, v, now, 0) for k, v in counts.items()]
    if summary["best_value"] is not None:
        metrics.append(Metric("best_value", float(summary["best_value"]), now, 0))
    params = [Param(k, str(v)) for k, v in (summary["best_params"] or {}).items()]
    client.log_batch(parent, metrics=metrics, params=params, tags=[RunTag("best_trial", str(summary["best_trial"]))])
    best = overrides_from_params(summary["best_params"]) if summary["best_params"] else None
    client.log_dict(parent, {**summary, "overrides": best, "recipe": attrs}, "best_params.json")
    client.log_text(parent, table, "trials.csv")
    for trial in trials:
        start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else now
        end = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else now
        child = client.create_run(
            experiment_id,
            run_name=f"trial-{trial.number}",
            start_time=start,
            tags={
                **tags,
                "mlflow.parentRunId": parent,
                "hpo.role": "trial",
                "trial": str(trial.number),
                "state": trial.state.name,
                "worker": str(trial.user_attrs.get("worker")),
            },
        ).info.run_id
        series = [
            Metric("val_loss", float(v), start, int(step)) for step, v in sorted(trial.intermediate_values.items())
        ]
        if trial.value is not None:
            series.append(Metric("objective", float(trial.value), end, 0))
        client.log_batch(child, metrics=series, params=[Param(k, str(v)) for k, v in trial.params.items()])
        client.set_terminated(child, "FINISHED" if trial.state == TrialState.COMPLETE else "KILLED", end_time=end)
    client.set_terminated(parent, "FINISHED")
    log.info("study %s logged to MLflow run %s (%d trials)", study_name, parent, len(trials))
    return parent
