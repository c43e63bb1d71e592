"""The forecaster's Optuna search: a study in the app DB shared by workers (SQLite here, PostgreSQL
with TEST_DATABASE_URL), pruning on the per-epoch validation loss, resumable workers, the best
trial as config overrides, the MLflow log, and how the training run resolves its feature set.

Pruning and sharing are checked with a stand-in trainer whose validation loss is a known function
of the learning rate (deterministic); one test trains real (tiny) models end to end."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from builders import TINY
from optuna.trial import TrialState

from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.errors import ConfigError, DatasetNotFound
from trading_core.features import build_feature_set
from trading_core.forecast import hpo
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.resolve import TrainingPlan, plan_training, resolve_feature_set_version
from trading_core.forecast.train import TrainConfig

SURE_PRUNING = hpo.StudyStrategy(sampler_startup_trials=10, pruner_startup_trials=1, pruner_warmup_steps=0)


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home with a tiny feature set (3 synthetic symbols, two years; ~900 training windows)."""
    home = tmp_path_factory.mktemp("hpo-home")
    settings = get_settings(home=home)
    request = IngestRequest(source="synthetic", n_assets=3, start="2022-01-03", end="2023-12-29")
    return home, build_feature_set(ingest(request, settings).dataset_version, TINY, settings).feature_set_version


@pytest.fixture
def home_settings(tiny_home: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TRADING_HOME", str(tiny_home[0]))
    return get_settings()


@pytest.fixture
def fs_version(tiny_home: tuple[Path, str]) -> str:
    return tiny_home[1]


def fake_train(
    fs: Any, model_cfg: ForecasterConfig, train_cfg: TrainConfig, checkpoint_dir: Path, on_epoch: Any
) -> Any:
    """Stand-in for train_ensemble: val loss 1.0 at lr=1e-2, +0.1 per decade below, -0.01 per epoch."""
    assert checkpoint_dir.is_dir()
    history = []
    for member in range(model_cfg.ensemble_size):
        for epoch in range(train_cfg.epochs):
            val = 1.0 + 0.1 * math.log10(1e-2 / train_cfg.lr) - 0.01 * epoch
            metrics = {"member": float(member), "epoch": float(epoch), "val_loss": val, "train_loss": val}
            history.append(metrics)
            on_epoch(member, epoch, metrics)
    return SimpleNamespace(history=history, seconds=0.01, device="cpu")


def _study(settings: Settings, name: str) -> optuna.Study:
    with hpo.open_storage(settings) as storage:
        study = optuna.load_study(study_name=name, storage=storage)
        study.trials  # noqa: B018 - read while the storage is open
        return study


def _trials(settings: Settings, name: str) -> list[optuna.trial.FrozenTrial]:
    with hpo.open_storage(settings) as storage:
        return optuna.load_study(study_name=name, storage=storage).get_trials()


# ---------------------------------------------------------------------------------- search space


def test_search_space_validates_and_round_trips() -> None:
    space = hpo.SearchSpace(lstm_units=(32,), lr=(1e-3, 1e-3))
    assert hpo.SearchSpace.from_dict(space.as_dict()) == space
    for bad in ({"lr": (0.0, 1e-2)}, {"dropout": (0.1, 1.0)}, {"lstm_units": ()}, {"loss": ("mse",)}):
        with pytest.raises(ConfigError):
            hpo.SearchSpace(**bad)  # type: ignore[arg-type]


def test_trial_params_map_to_valid_model_and_train_configs() -> None:
    params = {
        "lr": 3e-3,
        "weight_decay": 1e-5,
        "batch_size": 128,
        "loss": "focal",
        "dropout": 0.2,
        "lstm_units": 32,
        "cnn_width": 16,
        "cnn_depth": 2,
        "kernel_size": 5,
    }
    overrides = hpo.overrides_from_params(params)
    assert overrides["model"] == {"cnn_filters": [16, 16], "kernel_size": 5, "lstm_units": 32, "dropout": 0.2}
    assert overrides["train"] == {"lr": 3e-3, "weight_decay": 1e-5, "batch_size": 128, "loss": "focal"}
    ForecasterConfig.from_dict({"input_dim": 4, **overrides["model"]})
    TrainConfig(**overrides["train"])


def test_storage_url_keeps_optuna_apart_from_the_app_migrations() -> None:
    assert hpo.storage_url("sqlite:////data/trading.db") == "sqlite:////data/trading-optuna.db"
    pg = "postgresql+psycopg2://u:p@db:5432/trading"
    assert hpo.storage_url(pg) == pg  # same database; open_storage puts the tables in schema "optuna"
    with pytest.raises(ConfigError, match="in-memory"):
        hpo.storage_url("sqlite://")
    with pytest.raises(ConfigError, match="mysql"):
        hpo.storage_url("mysql+pymysql://u:p@db/trading")


# ------------------------------------------------------------------------------------------ study


def test_create_study_is_idempotent_and_refuses_another_recipe(settings: Settings) -> None:
    name = hpo.create_study("s-idem", settings, feature_set_version="fs-abc")
    assert hpo.create_study("s-idem", settings, feature_set_version="fs-abc") == name
    assert _study(settings, name).user_attrs["search_space"]["lstm_units"] == [16, 32, 48, 64]
    with pytest.raises(ConfigError, match="another recipe"):
        hpo.create_study(name, settings, feature_set_version="fs-abc", search=hpo.SearchSpace(lstm_units=(8,)))
    with pytest.raises(ConfigError, match="direction"):
        hpo.create_study(name, settings, "maximize", feature_set_version="fs-abc")
    with pytest.raises(ConfigError, match="study name"):
        hpo.create_study("no spaces or 'quotes'", settings)
    # the app DB's own Alembic history is untouched by Optuna's
    from trading_core.db import upgrade_database

    upgrade_database(settings.resolved_database_url)


def test_workers_train_real_trials_and_leave_no_checkpoints(
    home_settings: Settings, fs_version: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = hpo.create_study("s-real", home_settings, feature_set_version=fs_version)
    summary = hpo.run_hpo_worker(name, fs_version, home_settings, 2, epochs=2, max_train_samples=256, device="cpu")
    assert summary["trials"] == 2 and summary["completed"] + summary["pruned"] == 2
    assert 0 < summary["best_value"] < 5 and summary["best_params"]
    assert list(tmp_path.glob("hpo-trial-*")) == []
    trials = _trials(home_settings, name)
    assert {t.user_attrs["worker"] for t in trials} == {0}
    assert all(set(t.intermediate_values) <= {0, 1} for t in trials)

    from trading_core.features import feature_store
    from trading_core.forecast.pipeline import resolve_configs

    best = hpo.best_params(name, home_settings)
    model_cfg, train_cfg = resolve_configs(feature_store(home_settings).open(fs_version), home_settings, **best)
    assert list(model_cfg.cnn_filters) == best["model"]["cnn_filters"] and train_cfg.lr == best["train"]["lr"]


def test_a_trial_worse_than_the_median_is_pruned(
    home_settings: Settings, fs_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hpo, "train_ensemble", fake_train)
    name = hpo.create_study("s-prune", home_settings, feature_set_version=fs_version, strategy=SURE_PRUNING)
    with hpo.open_storage(home_settings) as storage:
        study = optuna.load_study(study_name=name, storage=storage)
        for lr in (5e-3, 1e-4, 1e-2):  # val loss at epoch 0: 1.03, 1.2 (> the median 1.03: pruned), 1.0
            study.enqueue_trial({"lr": lr})
    summary = hpo.run_hpo_worker(name, fs_version, home_settings, 3, epochs=3)
    trials = _trials(home_settings, name)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    assert list(trials[1].intermediate_values) == [0]  # stopped after its first epoch
    assert trials[0].value == pytest.approx(1.0 + 0.1 * math.log10(2) - 0.02)  # its best (last) epoch
    assert summary["pruned"] == 1 and summary["best_trial"] == 2
    assert hpo.best_params(name, home_settings)["train"]["lr"] == pytest.approx(1e-2)


def test_a_retried_worker_resumes_its_share(
    home_settings: Settings, fs_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hpo, "train_ensemble", fake_train)
    name = hpo.create_study("s-retry", home_settings, feature_set_version=fs_version)
    hpo.run_hpo_worker(name, fs_version, home_settings, 2, worker=1, epochs=1)
    with hpo.open_storage(home_settings) as storage:  # an attempt killed in the middle of a trial
        optuna.load_study(study_name=name, storage=storage).ask().set_user_attr("worker", 1)
    summary = hpo.run_hpo_worker(name, fs_version, home_settings, 3, worker=1, epochs=1)
    states = [t.state for t in _trials(home_settings, name)]
    assert states.count(TrialState.FAIL) == 1 and len(states) == 4  # 2 + the killed one + 1 more
    assert summary["trials"] == 4 and summary["completed"] + summary["pruned"] == 3


def _run_two_workers_at_once(settings: Settings, fs_version: str, name: str) -> list[dict[str, Any]]:
    hpo.create_study(name, settings, feature_set_version=fs_version)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(hpo.run_hpo_worker, name, fs_version, settings, 3, worker=w, epochs=2) for w in (0, 1)]
        return [job.result() for job in jobs]


def _assert_shared(settings: Settings, name: str, summaries: list[dict[str, Any]]) -> None:
    trials = _trials(settings, name)
    assert len(trials) == 6 and sorted(t.number for t in trials) == list(range(6))
    assert [sum(t.user_attrs["worker"] == w for t in trials) for w in (0, 1)] == [3, 3]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({t.params["lr"] for t in trials}) == 6  # differently seeded workers draw different points
    assert {s["study_trials"] for s in summaries} <= set(range(3, 7)) and summaries[0]["trials"] == 3


def test_two_workers_share_one_study_on_sqlite(
    home_settings: Settings, fs_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hpo, "train_ensemble", fake_train)
    _assert_shared(home_settings, "s-shared", _run_two_workers_at_once(home_settings, fs_version, "s-shared"))


@pytest.mark.postgres
def test_two_workers_share_one_study_on_postgresql(
    tiny_home: tuple[Path, str], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import inspect

    from trading_core.db import make_engine, upgrade_database

    monkeypatch.setattr(hpo, "train_ensemble", fake_train)
    settings = get_settings(home=tiny_home[0], database_url=postgres_url)
    upgrade_database(postgres_url)  # the app's tables and Alembic history first, as in production
    _assert_shared(settings, "s-pg", _run_two_workers_at_once(settings, tiny_home[1], "s-pg"))
    upgrade_database(postgres_url)  # still fine: Optuna's Alembic history is in its own schema
    tables = inspect(make_engine(postgres_url))
    assert {"studies", "trials", "alembic_version"} <= set(tables.get_table_names(schema=hpo.OPTUNA_SCHEMA))
    assert "studies" not in tables.get_table_names() and "feature_sets" in tables.get_table_names()


def test_no_completed_trial_and_no_study_are_clear_errors(settings: Settings) -> None:
    name = hpo.create_study("s-empty", settings)
    with pytest.raises(hpo.NoCompletedTrial, match="s-empty.*no completed trial"):
        hpo.best_params(name, settings)
    with pytest.raises(hpo.StudyNotFound, match="no study 's-missing'"):
        hpo.best_params("s-missing", settings)


def test_the_study_is_logged_to_mlflow(
    home_settings: Settings, fs_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setattr(hpo, "train_ensemble", fake_train)
    name = hpo.create_study("s-mlflow", home_settings, feature_set_version=fs_version, strategy=SURE_PRUNING)
    with hpo.open_storage(home_settings) as storage:
        study = optuna.load_study(study_name=name, storage=storage)
        for lr in (1e-2, 1e-4):
            study.enqueue_trial({"lr": lr})
    hpo.run_hpo_worker(name, fs_version, home_settings, 2, epochs=2)
    hpo.log_study(name, home_settings)
    run_id = hpo.log_study(name, home_settings)  # a rerun replaces the first log

    client = MlflowClient(home_settings.resolved_mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(hpo.HPO_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.study_name = '{name}'")
    assert len(runs) == 3  # the study and its two trials
    parent = client.get_run(run_id)
    assert parent.data.tags["feature_set_version"] == fs_version
    assert float(parent.data.params["lr"]) == pytest.approx(1e-2)
    assert parent.data.metrics["best_value"] == pytest.approx(0.99) and parent.data.metrics["study_pruned"] == 1
    children = {r.data.tags["trial"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == run_id}
    assert children["1"].data.tags["state"] == "PRUNED" and children["0"].data.metrics["objective"] == pytest.approx(
        0.99
    )
    assert [m.step for m in client.get_metric_history(children["0"].info.run_id, "val_loss")] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"trials.csv", "best_params.json"} <= artifacts


# ------------------------------------------------------------------------- feature set, plan


def test_feature_set_resolution_precedence(home_settings: Settings, fs_version: str) -> None:
    assert resolve_feature_set_version(fs_version, [{"feature_set_version": "fs-0ther"}], home_settings) == fs_version
    extras = [{"feature_set_version": "fs-0ld"}, {"feature_set_version": fs_version}, {"rows": 3}, {}]
    assert resolve_feature_set_version(None, extras, home_settings) == fs_version
    assert resolve_feature_set_version("", [], home_settings) == fs_version  # the latest recorded
    with pytest.raises(DatasetNotFound, match="fs-0ld"):
        resolve_feature_set_version(None, extras[:1], home_settings)


def test_no_feature_set_anywhere_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(DatasetNotFound, match="no feature_set_version to train on.*trading features build"):
        resolve_feature_set_version(None, [{}], settings)


def test_plan_creates_the_study_only_when_hpo_is_asked_for(home_settings: Settings, fs_version: str) -> None:
    plan = plan_training({"hpo_workers": 0, "epochs": 3, "seed": None}, [], home_settings, "training:run-1")
    assert plan == TrainingPlan(feature_set_version=fs_version, study_name=None, hpo_workers=0, epochs=3)
    assert plan.overrides(None) == (
        {"ensemble_size": 5},
        {"epochs": 3, "max_train_samples": None, "device": "auto", "cpu_threads": 1, "seed": 42},
    )
    searched = plan_training({"hpo_workers": 2}, [], home_settings, "training:run-1")
    assert searched.study_name == hpo.study_name_for(fs_version, "training:run-1")
    assert _study(home_settings, searched.study_name).user_attrs["feature_set_version"] == fs_version
    best = {"model": {"lstm_units": 16}, "train": {"lr": 1e-3, "epochs": 99}}
    model, train = searched.overrides(best)
    assert model == {"lstm_units": 16, "ensemble_size": 5} and train["lr"] == 1e-3 and train["epochs"] == 20
    for bad in ({"hpo_workers": -1}, {"epochs": 0}, {"max_train_samples": 0}):
        with pytest.raises(ConfigError):
            plan_training(bad, [], home_settings, "training:run-2")
