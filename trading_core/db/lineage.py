"""Repository functions for ingest lineage: runs, quarantined rows, datasets.

Small functions over a URL so callers never hold sessions across stages (each Airflow task is a
separate process). Writes are idempotent by run id: a retried task replaces what its previous
attempt wrote instead of adding to it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, insert, select

from trading_core.db.models import Dataset, FeatureSet, IngestRun, QuarantinedRow, utcnow
from trading_core.db.session import session_scope
from trading_core.errors import DatasetNotFound


def _jsonable(value: Any) -> Any:
    """JSON-safe copy (dates as ISO strings, NaN as None) for JSON columns."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (datetime, pd.Timestamp)):
            return obj.isoformat()
        return str(obj)

    text = json.dumps(value, default=default, allow_nan=True)
    return json.loads(text, parse_constant=lambda _: None)


def start_run(url: str, run_id: str, *, source: str, feed: str, interval: str, request: dict[str, Any]) -> None:
    """Create the run, or reset it when a retry reuses the id (its old quarantine is dropped)."""
    with session_scope(url) as session:
        run = session.get(IngestRun, run_id)
        if run is None:
            session.add(
                IngestRun(
                    id=run_id, source=source, feed=feed, interval=interval, request=_jsonable(request), status="running"
                )
            )
            return
        session.execute(delete(QuarantinedRow).where(QuarantinedRow.run_id == run_id))
        run.status, run.error, run.finished_at, run.started_at = "running", None, None, utcnow()
        run.request, run.feed = _jsonable(request), feed


def save_validation(url: str, run_id: str, quarantine: pd.DataFrame, report: dict[str, Any]) -> None:
    """Replace the run's quarantine with ``quarantine`` and store the report and counts."""
    records = [
        {
            "run_id": run_id,
            "symbol": str(row.symbol)[:64],
            "timestamp": None if pd.isna(row.timestamp) else row.timestamp.to_pydatetime(),
            "rule": row.rule,
            "reason": row.reason,
            "source_row": None if pd.isna(row.source_row) else int(row.source_row),
            "raw": _jsonable(row.raw),
        }
        for row in quarantine.itertuples(index=False)
    ]
    with session_scope(url) as session:
        session.execute(delete(QuarantinedRow).where(QuarantinedRow.run_id == run_id))
        if records:
            session.execute(insert(QuarantinedRow), records)
        run = session.get(IngestRun, run_id)
        if run is None:
            raise LookupError(f"ingest run {run_id!r} was not started")
        run.report = _jsonable(report)
        run.rows_read, run.rows_clean, run.rows_quarantined = (
            report["rows_read"],
            report["rows_clean"],
            report["rows_quarantined"],
        )


def finish_run(
    url: str, run_id: str, *, status: str, error: str | None = None, dataset_version: str | None = None
) -> None:
    with session_scope(url) as session:
        run = session.get(IngestRun, run_id)
        if run is None:
            raise LookupError(f"ingest run {run_id!r} was not started")
        run.status, run.error, run.finished_at = status, error, utcnow()
        if dataset_version:
            run.dataset_version = dataset_version


def record_dataset(
    url: str,
    *,
    version: str,
    feed: str,
    interval: str,
    symbols: list[str],
    start: datetime,
    end: datetime,
    row_count: int,
    run_id: str,
    lineage: dict[str, Any],
    rows_quarantined: int,
    bad_share: float,
) -> bool:
    """Insert the dataset unless that version exists; returns True when it was new."""
    with session_scope(url) as session:
        if session.get(Dataset, version) is not None:
            return False
        session.add(
            Dataset(
                version=version,
                feed=feed,
                interval=interval,
                symbols=symbols,
                start=start,
                end=end,
                row_count=row_count,
                first_run_id=run_id,
                lineage=_jsonable(lineage),
                rows_quarantined=rows_quarantined,
                bad_share=0.0 if math.isnan(bad_share) else bad_share,
            )
        )
        return True


def get_dataset(url: str, version: str) -> Dataset:
    with session_scope(url) as session:
        dataset = session.get(Dataset, version)
        if dataset is None:
            known = session.scalars(select(Dataset.version).order_by(Dataset.created_at.desc()).limit(5)).all()
            raise DatasetNotFound(f"dataset_version {version!r} is not recorded (latest: {list(known)})")
        return dataset


def latest_dataset(url: str, feed: str | None = None) -> Dataset | None:
    with session_scope(url) as session:
        query = select(Dataset).order_by(Dataset.created_at.desc())
        if feed:
            query = query.where(Dataset.feed == feed)
        return session.scalars(query.limit(1)).first()


def list_datasets(url: str, limit: int = 20) -> list[Dataset]:
    with session_scope(url) as session:
        return list(session.scalars(select(Dataset).order_by(Dataset.created_at.desc()).limit(limit)))


def get_run(url: str, run_id: str) -> IngestRun | None:
    with session_scope(url) as session:
        return session.get(IngestRun, run_id)


def quarantine_counts(url: str, run_id: str) -> dict[str, int]:
    with session_scope(url) as session:
        rows = session.execute(
            select(QuarantinedRow.rule, func.count())
            .where(QuarantinedRow.run_id == run_id)
            .group_by(QuarantinedRow.rule)
        ).all()
        return {rule: int(n) for rule, n in rows}


def quarantined_rows(url: str, run_id: str, limit: int = 100) -> list[QuarantinedRow]:
    with session_scope(url) as session:
        query = select(QuarantinedRow).where(QuarantinedRow.run_id == run_id).order_by(QuarantinedRow.id).limit(limit)
        return list(session.scalars(query))


def record_feature_set(
    url: str, *, version: str, dataset_version: str, path: str, manifest: dict[str, Any], summary: dict[str, Any]
) -> bool:
    """Insert the feature set unless that version exists; returns True when it was new."""
    with session_scope(url) as session:
        if session.get(FeatureSet, version) is not None:
            return False
        session.add(
            FeatureSet(
                version=version,
                dataset_version=dataset_version,
                path=path,
                n_features=len(manifest["feature_names"]),
                rows=int(summary["rows"]),
                manifest=_jsonable(manifest),
                summary=_jsonable(summary),
            )
        )
        return True


def get_feature_set(url: str, version: str) -> FeatureSet:
    with session_scope(url) as session:
        found = session.get(FeatureSet, version)
        if found is None:
            known = session.scalars(select(FeatureSet.version).order_by(FeatureSet.created_at.desc()).limit(5)).all()
            raise DatasetNotFound(f"feature_set_version {version!r} is not recorded (latest: {list(known)})")
        return found


def latest_feature_set(url: str, dataset_version: str | None = None) -> FeatureSet | None:
    with session_scope(url) as session:
        query = select(FeatureSet).order_by(FeatureSet.created_at.desc())
        if dataset_version:
            query = query.where(FeatureSet.dataset_version == dataset_version)
        return session.scalars(query.limit(1)).first()


def list_feature_sets(url: str, limit: int = 20) -> list[FeatureSet]:
    with session_scope(url) as session:
        return list(session.scalars(select(FeatureSet).order_by(FeatureSet.created_at.desc()).limit(limit)))
