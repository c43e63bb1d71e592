"""The app DB on SQLite and PostgreSQL: migrations match the models, lineage round-trips."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from trading_core.db import lineage, make_engine, upgrade_database
from trading_core.db.models import Base
from trading_core.errors import DatasetNotFound


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_create_exactly_the_models(db_url: str) -> None:
    upgrade_database(db_url)
    upgrade_database(db_url)  # idempotent
    engine = make_engine(db_url)
    assert {"ingest_runs", "quarantined_rows", "datasets", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_lineage_round_trip_and_retry_replaces_quarantine(db_url: str) -> None:
    upgrade_database(db_url)
    lineage.start_run(db_url, "run-1", source="csv", feed="csv-x", interval="1d", request={"symbols": ["A"]})
    quarantine = pd.DataFrame(
        {
            "symbol": ["A", "A"],
            "timestamp": [pd.Timestamp("2024-01-02", tz="UTC"), pd.NaT],
            "rule": ["ohlc_order", "schema"],
            "reason": ["low 2 > high 1", "timestamp unparseable"],
            "source_row": [5, 9],
            "raw": [{"open": "1.5", "high": None}, {"timestamp": None}],
        }
    )
    report = {"rows_read": 10, "rows_clean": 8, "rows_quarantined": 2, "bad_share": float("nan")}
    lineage.save_validation(db_url, "run-1", quarantine, report)
    lineage.start_run(db_url, "run-1", source="csv", feed="csv-x", interval="1d", request={"symbols": ["A"]})  # retry
    lineage.save_validation(db_url, "run-1", quarantine, report)
    assert lineage.quarantine_counts(db_url, "run-1") == {"ohlc_order": 1, "schema": 1}
    rows = lineage.quarantined_rows(db_url, "run-1")
    assert rows[0].source_row == 5 and rows[0].raw == {"open": "1.5", "high": None}
    assert rows[1].timestamp is None

    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC)
    kwargs = dict(
        feed="csv-x",
        interval="1d",
        symbols=["A"],
        start=start,
        end=end,
        row_count=8,
        run_id="run-1",
        lineage={"source": "csv"},
        rows_quarantined=2,
        bad_share=0.2,
    )
    assert lineage.record_dataset(db_url, version="ds-1", **kwargs) is True
    assert lineage.record_dataset(db_url, version="ds-1", **kwargs) is False
    lineage.finish_run(db_url, "run-1", status="succeeded", dataset_version="ds-1")
    assert lineage.get_run(db_url, "run-1").status == "succeeded"  # type: ignore[union-attr]
    dataset = lineage.get_dataset(db_url, "ds-1")
    assert dataset.symbols == ["A"] and dataset.row_count == 8
    assert pd.Timestamp(dataset.start).replace(tzinfo=None) == pd.Timestamp("2024-01-01")
    with pytest.raises(DatasetNotFound, match="ds-1"):
        lineage.get_dataset(db_url, "ds-missing")
