"""The ``drift_checks`` table: one row per drift / decay check, and the training run it triggered.

The drift monitor records every check (decision ``ok``, ``drift``, ``decay``, ``drift+decay`` or
``error``) with its evidence, then, if it starts the training DAG, :func:`set_triggered_run` on that
row; :func:`last_trigger` answers the cooldown's question "when did a check last start a retraining?".
Functions take the DB URL and open their own session, like :mod:`trading_core.db.audit`; callers run
``upgrade_database(url)`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from trading_core.db.audit import as_utc, jsonable
from trading_core.db.models import DriftCheck
from trading_core.db.session import session_scope
from trading_core.monitoring.decay import DecayResult
from trading_core.monitoring.drift import DriftResult

__all__ = ["DECISIONS", "DriftCheck", "last_trigger", "list_checks", "record_check", "set_triggered_run"]

DECISIONS: tuple[str, ...] = ("ok", "drift", "decay", "drift+decay", "error")
"""The verdicts a check may record."""
_LIMITS: dict[str, int] = {"model_name": 200, "version": 32, "triggered_run": 250, "mlflow_run_id": 64}
"""Column lengths, checked here so SQLite (which ignores them) fails like PostgreSQL would."""


def _checked(field: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"drift check {field} is required, got None")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"drift check {field} must be a non-empty string, got {value!r}")
    if len(value) > _LIMITS[field]:
        raise ValueError(f"drift check {field} is {len(value)} characters, at most {_LIMITS[field]}: {value[:60]!r}...")
    return value


def _instant(field: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValueError(f"drift check {field} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError(f"drift check {field} must be timezone-aware (UTC), got naive {value.isoformat()}")
    return as_utc(value)


def record_check(
    url: str,
    *,
    model_name: str,
    version: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
    drift: DriftResult | None,
    prediction: DriftResult | None,
    decay: DecayResult | None,
    decision: str,
    reason: str,
    mlflow_run_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Add one check and return its id.

    ``drift`` and ``prediction`` fill ``drift_share``, ``drifted_columns`` and ``prediction_drift_share``
    and go whole (per-column scores) into ``details["drift"]`` / ``details["prediction"]``; ``decay`` is
    stored as its dict. Values are made JSON-safe (numpy -> Python, NaN -> None).

    :param decision: one of :data:`DECISIONS`.
    :param reason: a human-readable sentence: why this decision.
    """
    if decision not in DECISIONS:
        raise ValueError(f"drift check decision must be one of {DECISIONS}, got {decision!r}")
    if not isinstance(reason, str):
        raise ValueError(f"drift check reason must be a string, got {type(reason).__name__}")
    if details is not None and not isinstance(details, Mapping):
        raise ValueError(f"drift check details must be a mapping, got {type(details).__name__}")
    start, end = _instant("window_start", window_start), _instant("window_end", window_end)
    if start is not None and end is not None and start > end:
        raise ValueError(f"drift check window_start {start.isoformat()} is after window_end {end.isoformat()}")
    evidence = {
        **dict(details or {}),
        "drift": None if drift is None else drift.as_dict(),
        "prediction": None if prediction is None else prediction.as_dict(),
    }
    row = DriftCheck(
        model_name=_checked("model_name", model_name, required=True),
        version=_checked("version", None if version is None else str(version)),
        window_start=start,
        window_end=end,
        drift_share=None if drift is None else jsonable(drift.drift_share),
        drifted_columns=[] if drift is None else list(drift.drifted_columns),
        prediction_drift_share=None if prediction is None else jsonable(prediction.drift_share),
        decay=None if decay is None else jsonable(decay.as_dict()),
        decision=decision,
        reason=reason,
        mlflow_run_id=_checked("mlflow_run_id", mlflow_run_id),
        details=jsonable(evidence),
    )
    with session_scope(url) as session:
        session.add(row)
        session.flush()
        return int(row.id)


def set_triggered_run(url: str, check_id: int, dag_run: str) -> None:
    """Note on check ``check_id`` the training DAG run it started. Setting the same run again is a no-op
    (a retried task); a different one is refused: one check starts at most one retraining."""
    run = _checked("triggered_run", dag_run, required=True)
    with session_scope(url) as session:
        row = session.get(DriftCheck, check_id)
        if row is None:
            raise LookupError(f"no drift check with id {check_id}")
        if row.triggered_run not in (None, run):
            raise ValueError(f"drift check {check_id} already triggered {row.triggered_run!r}, not {run!r}")
        row.triggered_run = run


def _normalised(rows: list[DriftCheck]) -> list[DriftCheck]:
    for row in rows:  # no UPDATE: not a change, a normalisation (SQLite hands back naive UTC)
        set_committed_value(row, "at", as_utc(row.at))
        for field in ("window_start", "window_end"):
            value = getattr(row, field)
            if value is not None:
                set_committed_value(row, field, as_utc(value))
    return rows


def list_checks(url: str, *, model_name: str | None = None, limit: int = 100) -> list[DriftCheck]:
    """The latest ``limit`` checks (of ``model_name``, if given), newest first; datetimes as aware UTC."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    query = select(DriftCheck).order_by(DriftCheck.at.desc(), DriftCheck.id.desc()).limit(limit)
    if model_name is not None:
        query = query.where(DriftCheck.model_name == model_name)
    with session_scope(url) as session:
        return _normalised(list(session.scalars(query)))


def last_trigger(url: str, model_name: str) -> DriftCheck | None:
    """The newest check of ``model_name`` that started a training run (None if none did): the cooldown's clock."""
    query = (
        select(DriftCheck)
        .where(DriftCheck.model_name == model_name, DriftCheck.triggered_run.is_not(None))
        .order_by(DriftCheck.at.desc(), DriftCheck.id.desc())
        .limit(1)
    )
    with session_scope(url) as session:
        rows = _normalised(list(session.scalars(query)))
    return rows[0] if rows else None
