"""DAG integrity and a real run of the ingest DAG with dag.test() on the synthetic market.

The features DAG's own run (after an ingest) is in test_features_dag.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trading_core.config import Settings
from trading_core.db import lineage

DAGS = Path(__file__).resolve().parents[1] / "dags"
HEAVY = {
    "pandas",
    "numpy",
    "torch",
    "mlflow",
    "stable_baselines3",
    "evidently",
    "optuna",
    "sklearn",
    "pyarrow",
    "trading_core",
}

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="module")
def dagbag(airflow_db: Path):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS))


def test_dagbag_has_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"market_data", "features", "training", "promotion", "ab_rollout", "restore_champion"} <= set(dagbag.dags)


def test_every_dag_is_documented_owned_tagged_and_retried(dagbag) -> None:  # type: ignore[no-untyped-def]
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        for task in dag.tasks:
            assert task.owner == "ml-platform", (dag_id, task.task_id)
            human = type(task).__name__ == "PolicyApprovalOperator"  # a retry would ask the reviewer again
            assert task.retries >= 1 or (human and task.retries == 0), (dag_id, task.task_id)


def test_dag_files_import_no_heavy_library_at_top_level() -> None:
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name} at top level"


def test_the_approval_gate_polls_at_the_setting_read_at_parse_time(dagbag) -> None:  # type: ignore[no-untyped-def]
    """promotion's mlflow_tag approval gate: reschedule mode, poke interval Settings.approval_poke_interval_s
    (<= 60 s), taken from TRADING_APPROVAL_POKE_INTERVAL_S when the DAG is parsed, with nothing heavy imported."""
    gate = dagbag.get_dag("promotion").get_task("registry_approval")
    default = Settings.model_fields["approval_poke_interval_s"].default
    assert gate.mode == "reschedule" and gate.poke_interval == default <= 60

    code = (
        f"import json, sys; sys.path.insert(0, {str(DAGS)!r}); from airflow.dag_processing.dagbag import DagBag; "
        f"gate = DagBag({str(DAGS / 'promotion.py')!r}).dags['promotion'].get_task('registry_approval'); "
        "print(json.dumps({'poke': gate.poke_interval, 'mode': gate.mode, 'modules': sorted(sys.modules)}))"
    )
    env = {**os.environ, "TRADING_APPROVAL_POKE_INTERVAL_S": "17"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert (parsed["poke"], parsed["mode"]) == (17, "reschedule")
    loaded = {name for name in parsed["modules"] if name.split(".")[0] in HEAVY}
    assert loaded <= {"trading_core", "trading_core.config", "trading_core.security", "trading_core.errors"}, loaded


def test_params_reject_a_bad_symbol_before_anything_runs(dagbag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dagbag.get_dag("market_data").params)
    with pytest.raises(Exception, match="symbols|pattern|does not match"):
        params.update({"symbols": ["../etc/passwd"]})
        params.validate()


def test_market_data_params_carry_the_file_options(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The form's file options (interval inferred when empty, tz, session, adj_close, calendar, columns)
    reach the ingest request under the same names."""
    from datetime import date

    from airflow.sdk.definitions.param import ParamsDict

    from trading_core.data.request import request_from_params

    params = ParamsDict(dagbag.get_dag("market_data").params)
    conf = {
        "source": "csv",
        "path": "/data/bars.csv",
        "interval": None,
        "tz": "America/New_York",
        "session": "extended",
        "adj_close": "use",
        "calendar": "XNYS",
        "columns": {"timestamp": "Date/Time"},
    }
    params.update(conf)
    params.validate()
    request = request_from_params(params.dump(), date(2024, 3, 1))
    assert (request.interval, request.tz, request.session) == (None, "America/New_York", "extended")
    assert (request.adj_close, request.calendar, request.columns) == ("use", "XNYS", {"timestamp": "Date/Time"})
    with pytest.raises(Exception, match="session|enum|is not one of"):
        params.update({"session": "overnight"})
        params.validate()


def test_market_data_dag_ingests_and_announces_the_dataset(dagbag, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    conf = {
        "source": "synthetic",
        "symbols": ["SYN000", "SYN001"],
        "start": "2024-01-02",
        "end": "2024-03-28",
        "n_assets": 4,
        "defect_rate": 0.01,
        "max_bad_share": 0.2,
    }
    run = dagbag.get_dag("market_data").test(run_conf=conf)
    assert run.state == "success"
    dataset = lineage.latest_dataset(settings.resolved_database_url)
    assert dataset is not None and dataset.symbols == ["SYN000", "SYN001"]
    ingest_run = lineage.get_run(settings.resolved_database_url, dataset.first_run_id)
    assert ingest_run is not None and ingest_run.status == "succeeded"
    assert ingest_run.id.startswith("market_data:")

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "ohlcv")
            .order_by(AssetEvent.id.desc())
        ).first()
        assert event is not None
        assert event.extra["dataset_version"] == dataset.version
        assert event.extra["symbols"] == ["SYN000", "SYN001"]
