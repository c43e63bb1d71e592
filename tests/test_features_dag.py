"""The features DAG: its params mirror the library, the dataset it reads is resolved by a plain
function (params > triggering ohlcv event > latest recorded), and it runs with dag.test() after an
ingest, fanning out over symbol shards and announcing the feature set on the ``features`` Asset."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trading_core.config import Settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.db import lineage
from trading_core.errors import DatasetNotFound
from trading_core.features import FeatureSetConfig, feature_store
from trading_core.features.resolve import plan_from_params, resolve_dataset_version

DAGS = Path(__file__).resolve().parents[1] / "dags"
SMALL = {"turbulence_window": 40, "vol_regime_window": 40, "corr_window": 20, "seq_len": 10}
"""Short warm-ups so a two-year synthetic history is plenty and the build takes a fraction of a second."""


def _ingest(settings: Settings, n_assets: int = 3) -> str:
    request = IngestRequest(source="synthetic", n_assets=n_assets, start="2022-01-03", end="2023-12-29")
    return ingest(request, settings).dataset_version


# ------------------------------------------------------------------ resolution, without Airflow


def test_an_explicit_dataset_version_wins(settings: Settings) -> None:
    assert resolve_dataset_version("ds-abc", [{"dataset_version": "ds-event"}], settings) == "ds-abc"


def test_the_newest_triggering_event_with_a_version_comes_next(settings: Settings) -> None:
    extras = [{"dataset_version": "ds-old"}, {"dataset_version": "ds-new"}, {"feed": "no version here"}, {}]
    assert resolve_dataset_version(None, extras, settings) == "ds-new"
    assert resolve_dataset_version("", extras, settings) == "ds-new"


def test_then_the_latest_recorded_dataset(settings: Settings) -> None:
    version = _ingest(settings)
    assert resolve_dataset_version(None, [], settings) == version
    assert resolve_dataset_version(None, [{"dataset_version": None}], settings) == version


def test_no_dataset_anywhere_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(DatasetNotFound, match="no dataset_version to build features from.*trading ingest"):
        resolve_dataset_version(None, [{}], settings)


def test_plan_from_params_shards_the_symbols_and_validates_the_recipe(settings: Settings) -> None:
    version = _ingest(settings, n_assets=3)
    plan = plan_from_params({**SMALL, "shard_size": 2, "horizon": 3}, [], settings)
    assert plan.dataset_version == version
    assert plan.shards == [["SYN000", "SYN001"], ["SYN002"]]
    assert plan.config["labels"]["horizon"] == 3
    assert len(plan_from_params({"shard_size": None}, [], settings).shards) == 1  # fewer symbols than 100
    with pytest.raises(ValidationError, match="horizon"):
        plan_from_params({"horizon": 0}, [], settings)
    with pytest.raises(DatasetNotFound, match="ds-missing"):
        plan_from_params({"dataset_version": "ds-missing"}, [], settings)


# ------------------------------------------------------------------ the DAG


@pytest.fixture(scope="module")
def dagbag(airflow_db: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


@pytest.mark.airflow
def test_dag_is_scheduled_on_ohlcv_maps_over_shards_and_outputs_features(dagbag) -> None:  # type: ignore[no-untyped-def]
    from trading_assets import FEATURES, OHLCV

    dag = dagbag.get_dag("features")
    assert dagbag.import_errors == {} and dag is not None
    assert list(dag.timetable.asset_condition.objects) == [OHLCV]
    assert dag.get_task("compute_shard").is_mapped
    assert dag.get_task("merge").outlets == [FEATURES]
    assert dag.task_dict["plan"].downstream_task_ids == {"compute_shard", "merge"}


@pytest.mark.airflow
def test_param_defaults_are_the_library_defaults(dagbag) -> None:  # type: ignore[no-untyped-def]
    params = dagbag.get_dag("features").params
    config = FeatureSetConfig()
    library = {**config.indicators.model_dump(), **config.labels.model_dump(), **config.dataset.model_dump()}
    recipe = [key for key in params if key in library]
    assert set(recipe) >= {"horizon", "threshold_k", "entry", "seq_len", "groups", "turbulence_window"}
    for key in recipe:
        expected = list(library[key]) if isinstance(library[key], tuple) else library[key]
        assert params[key] == expected, key
    assert params["dataset_version"] is None and params["shard_size"] == 100
    assert FeatureSetConfig.from_params(dict(params)) == config


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("key", "value"), [("groups", ["market", "astrology"]), ("dataset_version", "../etc"), ("shard_size", 0)]
)
def test_params_reject_bad_values_before_anything_runs(dagbag, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dagbag.get_dag("features").params)
    with pytest.raises(Exception, match=key):
        params.update({key: value})
        params.validate()


@pytest.mark.airflow
def test_plan_task_reads_the_newest_triggering_ohlcv_event(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """An asset-triggered run: the newest ohlcv event's dataset wins over the latest recorded one."""
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor
    from builders import TaskInstanceStub, asset_events
    from trading_assets import OHLCV

    triggered = _ingest(settings, n_assets=2)
    latest = _ingest(settings, n_assets=3)
    params = {**dagbag.get_dag("features").params, **SMALL, "shard_size": 1}
    ti = TaskInstanceStub()
    plan = dagbag.get_dag("features").get_task("plan").python_callable
    extras = [({"dataset_version": triggered}, 2), ({"dataset_version": "ds-0ld"}, 1)]  # not in time order
    events = asset_events(OHLCV, extras, "market_data", "publish")
    assert plan(params=params, triggering_asset_events=events, ti=ti) == [0, 1]
    assert ti.pushed["plan"]["dataset_version"] == triggered
    assert plan(params=params, triggering_asset_events=TriggeringAssetEventsAccessor.build([]), ti=ti) == [0, 1, 2]
    assert ti.pushed["plan"]["dataset_version"] == latest


@pytest.mark.airflow
def test_features_dag_runs_after_ingest_and_announces_the_feature_set(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def latest_event(asset: str) -> AssetEvent:
        with create_session() as session:
            event = session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == asset)
                .order_by(AssetEvent.id.desc())
            ).first()
            assert event is not None, asset
            return event

    ingest_conf = {"source": "synthetic", "n_assets": 5, "start": "2022-01-03", "end": "2023-12-29"}
    assert dagbag.get_dag("market_data").test(run_conf=ingest_conf).state == "success"
    dataset_version = latest_event("ohlcv").extra["dataset_version"]  # what an asset-triggered run receives

    run = dagbag.get_dag("features").test(
        run_conf={"dataset_version": dataset_version, "shard_size": 2, "groups": ["market", "regime"], **SMALL}
    )
    assert run.state == "success"
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == "features", TaskInstance.run_id == run.run_id)
        ).all()
        assert {ti.state for ti in tis} == {"success"}
        assert sorted(ti.map_index for ti in tis if ti.task_id == "compute_shard") == [0, 1, 2]  # 5 symbols / 2

    extra = latest_event("features").extra
    version = extra["feature_set_version"]
    assert extra["dataset_version"] == dataset_version
    assert extra["n_features"] > 0 and min(extra["samples"].values()) > 0
    assert 0 < extra["majority_rate_test"] <= 1
    feature_set = feature_store(settings).open(version)
    assert feature_set.manifest["n_symbols"] == 5
    assert {spec["group"] for spec in feature_set.manifest["features"]} == {"market", "regime"}
    record = lineage.get_feature_set(settings.resolved_database_url, version)
    assert record.dataset_version == dataset_version and record.path == extra["path"]
    assert not (settings.staging_dir / "features" / version).exists()  # shard files cleaned after the merge
