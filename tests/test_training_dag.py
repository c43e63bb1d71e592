"""The training DAG: scheduled on the features asset, HPO mapped over workers in pool ``gpu``, the
final training in pool ``gpu`` with retries and a timeout; a real dag.test() run on a tiny feature
set with two HPO workers, and one with the search skipped (hpo_workers = 0).

dag.test() ignores pools (it runs every task itself), so these runs pass whether or not the pool
exists; the scheduler does not: a task in a missing pool is never queued. The setup creates it
(trading_core.embedded.migrate_airflow, docker-compose's airflow-init)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from builders import TINY, TINY_RUN

from trading_core.config import Settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.features import build_feature_set
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.resolve import TrainingPlan
from trading_core.forecast.train import TrainConfig

DAGS = Path(__file__).resolve().parents[1] / "dags"

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dagbag(airflow_db: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def _feature_set(settings: Settings) -> str:
    request = IngestRequest(source="synthetic", n_assets=3, start="2022-01-03", end="2023-12-29")
    return build_feature_set(ingest(request, settings).dataset_version, TINY, settings).feature_set_version


def test_dag_is_scheduled_on_features_and_trains_in_the_gpu_pool(dagbag) -> None:  # type: ignore[no-untyped-def]
    from trading_assets import FEATURES, FORECASTER

    dag = dagbag.get_dag("training")
    assert dagbag.import_errors == {} and dag is not None
    assert list(dag.timetable.asset_condition.objects) == [FEATURES]
    hpo, select, train = dag.get_task("hpo_worker"), dag.get_task("select_params"), dag.get_task("train_forecaster")
    assert hpo.is_mapped and hpo.pool == "gpu" and train.pool == "gpu"
    assert dag.get_task("resolve").pool == select.pool == "default_pool"
    for task in (hpo, train):
        assert task.retries >= 2 and task.execution_timeout == timedelta(hours=2)
    assert select.trigger_rule == "none_failed"  # runs when the mapped search was skipped (0 workers)
    assert select.upstream_task_ids == {"resolve", "hpo_worker"}
    assert train.upstream_task_ids == {"resolve", "select_params"} and train.outlets == [FORECASTER]
    agent, validation, register = dag.get_task("train_agent"), dag.get_task("walk_forward"), dag.get_task("register")
    assert agent.pool == validation.pool == "gpu" and agent.upstream_task_ids == {"resolve", "train_forecaster"}
    assert validation.upstream_task_ids == {"resolve", "train_forecaster"}
    assert register.upstream_task_ids == {"train_forecaster", "train_agent", "walk_forward"}
    gpu_tasks = (hpo, train, agent, validation)
    assert {t.queue for t in gpu_tasks} == {"default"} and register.queue == "default"  # TRADING_GPU_QUEUE unset
    assert [a.name for a in register.outlets] == ["candidate_model"]
    assert dag.get_task("resolve").upstream_task_ids == {"prepare"}


def test_the_gpu_tasks_go_to_the_queue_of_trading_gpu_queue(airflow_db: Path) -> None:
    """docker compose's gpu profile sets TRADING_GPU_QUEUE=gpu: the DAG processor then routes the four
    GPU tasks (and only those) to the GPU worker's queue. A fresh process, as the DAG processor parses."""
    import json
    import os
    import subprocess
    import sys

    code = (
        f"import json, sys; sys.path.insert(0, {str(DAGS)!r}); from airflow.dag_processing.dagbag import DagBag; "
        f"dag = DagBag({str(DAGS)!r}).get_dag('training'); "
        "print(json.dumps({t.task_id: t.queue for t in dag.tasks}))"
    )
    env = {**os.environ, "TRADING_GPU_QUEUE": "gpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    queues = json.loads(out.stdout.strip().splitlines()[-1])
    gpu = {"hpo_worker", "train_forecaster", "train_agent", "walk_forward"}
    assert {t for t, q in queues.items() if q == "gpu"} == gpu, queues
    assert {q for t, q in queues.items() if t not in gpu} == {"default"}


def test_param_defaults_are_the_library_defaults(dagbag) -> None:  # type: ignore[no-untyped-def]
    params = dagbag.get_dag("training").params
    plan = TrainingPlan(feature_set_version="fs-0", study_name=None)
    for key in ("hpo_workers", "hpo_trials_per_worker", "hpo_epochs", "epochs", "ensemble_size", "device", "seed"):
        assert params[key] == getattr(plan, key), key
    assert params["epochs"] == TrainConfig().epochs and params["ensemble_size"] == ForecasterConfig(1).ensemble_size
    assert params["feature_set_version"] is None and params["max_train_samples"] is None


@pytest.mark.parametrize(
    ("key", "value"), [("feature_set_version", "../etc"), ("hpo_workers", -1), ("device", "tpu"), ("epochs", 0)]
)
def test_params_reject_bad_values_before_anything_runs(dagbag, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dagbag.get_dag("training").params)
    with pytest.raises(Exception, match=key):
        params.update({key: value})
        params.validate()


def test_the_setup_creates_a_missing_pool_and_keeps_an_existing_one(airflow_db: Path) -> None:
    """migrate_airflow (embedded) and airflow-init (compose) create pool gpu this way."""
    import os

    from airflow.models.pool import Pool

    from trading_core.embedded import ensure_pool

    env = os.environ.copy()  # the test AIRFLOW_HOME
    assert ensure_pool(env, "gpu-setup-test", 1, "training") is True
    assert Pool.get_pool("gpu-setup-test").slots == 1
    Pool.create_or_update_pool("gpu-setup-test", 3, "an operator gave it 3 GPUs", False)
    assert ensure_pool(env, "gpu-setup-test", 1, "training") is False
    assert Pool.get_pool("gpu-setup-test").slots == 3


def test_resolve_task_reads_the_newest_triggering_features_event(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """An asset-triggered run: the newest features event's set wins; the study exists only with workers."""
    from builders import TaskInstanceStub, asset_events
    from trading_assets import FEATURES

    from trading_core.forecast import hpo

    version = _feature_set(settings)
    dag = dagbag.get_dag("training")
    resolve = dag.get_task("resolve").python_callable
    extras = [({"feature_set_version": version}, 2), ({"feature_set_version": "fs-0ld"}, 1)]  # not in time order
    events = asset_events(FEATURES, extras, "features", "merge")
    ti = TaskInstanceStub()
    context = {"triggering_asset_events": events, "ti": ti, "dag": dag, "run_id": "asset_triggered__x"}
    assert resolve(None, params={**dag.params, "hpo_workers": 3}, **context) == [0, 1, 2]
    assert ti.pushed["plan"]["feature_set_version"] == version
    assert ti.pushed["plan"]["study_name"] == hpo.study_name_for(version, "training:asset_triggered__x")
    with hpo.open_storage(settings) as storage:
        assert storage.get_study_id_from_name(str(ti.pushed["plan"]["study_name"])) is not None
    assert resolve(None, params={**dag.params, "hpo_workers": 0}, **context) == []
    assert ti.pushed["plan"]["study_name"] is None


def _latest_event(asset: str):  # type: ignore[no-untyped-def]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset)
            .order_by(AssetEvent.id.desc())
        ).first()
        assert event is not None, asset
        return event


def _task_states(run_id: str) -> list[tuple[str, int, str]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == "training", TaskInstance.run_id == run_id)
        ).all()
        return sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in tis)


def test_training_dag_searches_trains_and_announces_the_forecaster(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    from trading_core.forecast import hpo

    version = _feature_set(settings)
    run = dagbag.get_dag("training").test(run_conf={"feature_set_version": version, **TINY_RUN})
    assert run.state == "success"
    assert _task_states(run.run_id) == [
        ("hpo_worker", 0, "success"),
        ("hpo_worker", 1, "success"),
        ("prepare", -1, "success"),
        ("register", -1, "success"),
        ("resolve", -1, "success"),
        ("select_params", -1, "success"),
        ("train_agent", -1, "success"),
        ("train_forecaster", -1, "success"),
        ("walk_forward", -1, "success"),
    ]
    candidate = _latest_event("candidate_model").extra
    assert candidate["alias"] == "candidate" and candidate["feature_set_version"] == version
    assert candidate["validation_run"] and candidate["agent_run"]
    extra = _latest_event("forecaster").extra
    assert extra["feature_set_version"] == version and extra["run_id"] and extra["model_uri"]
    study = extra["hpo_study"]
    assert study == hpo.study_name_for(version, f"training:{run.run_id}")
    with hpo.open_storage(settings) as storage:
        trials = hpo.optuna.load_study(study_name=study, storage=storage).get_trials()
    assert sorted(t.user_attrs["worker"] for t in trials) == [0, 1]  # two workers, one trial each

    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    forecaster = client.get_run(extra["run_id"])
    assert forecaster.data.tags["hpo_study"] == study
    assert forecaster.data.params["model.ensemble_size"] == "2" and forecaster.data.params["train.epochs"] == "1"
    best = hpo.best_params(study, settings)
    assert forecaster.data.params["train.lr"] == str(best["train"]["lr"])
    assert client.get_run(forecaster.data.tags["hpo_run_id"]).data.tags["study_name"] == study


def test_training_dag_without_search_trains_with_the_defaults(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    version = _feature_set(settings)
    run = dagbag.get_dag("training").test(run_conf={**TINY_RUN, "hpo_workers": 0, "ensemble_size": 1})
    assert run.state == "success"
    assert _task_states(run.run_id) == [
        ("hpo_worker", -1, "skipped"),
        ("prepare", -1, "success"),
        ("register", -1, "success"),
        ("resolve", -1, "success"),
        ("select_params", -1, "success"),
        ("train_agent", -1, "success"),
        ("train_forecaster", -1, "success"),
        ("walk_forward", -1, "success"),
    ]
    extra = _latest_event("forecaster").extra
    assert extra["feature_set_version"] == version and extra["hpo_study"] is None

    # A retried task of this DAG run reuses the finished work instead of training again.
    from trading_core.training import register_step, train_agent_step, train_forecaster_step, walk_forward_step

    dag_run = f"training:{run.run_id}"
    forecaster = train_forecaster_step(version, settings, dag_run, model={}, train={}, tags={})
    assert forecaster["reused"] and forecaster["run_id"] == extra["run_id"]
    assert forecaster["model_uri"] == extra["model_uri"]
    agent = train_agent_step(version, forecaster["model_uri"], {**TINY_RUN}, settings, dag_run)
    validation = walk_forward_step(version, {**TINY_RUN}, settings, dag_run)
    assert agent["reused"] and validation["reused"]
    candidate = _latest_event("candidate_model").extra
    again = register_step(settings, forecaster, agent, validation, dag_run)
    assert again["reused"] and again["version"] == candidate["version"]


def test_prepare_ingests_and_builds_features_only_when_a_source_is_named(settings: Settings) -> None:
    from trading_core.db import lineage
    from trading_core.training import prepare_feature_set

    assert prepare_feature_set({"source": None}, settings) is None
    params = {
        "source": "synthetic",
        "n_assets": 2,
        "start": "2022-01-03",
        "end": "2023-06-30",
        "turbulence_window": 30,
        "vol_regime_window": 40,
        "corr_window": 20,
        "seq_len": 8,
        "horizon": 3,
    }
    version = prepare_feature_set(params, settings)
    assert version is not None and version.startswith("fs-")
    record = lineage.get_feature_set(settings.resolved_database_url, version)
    assert record.manifest["config"]["labels"]["horizon"] == 3
    assert prepare_feature_set(params, settings) == version, "same data, same recipe: the same feature set"
