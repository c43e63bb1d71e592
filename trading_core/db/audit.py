"""The audit trail: one ``audit_events`` row per governance decision.

Gates, alias moves, A/B verdicts, promotions and rollbacks each leave a row saying what was decided
about which model version, why (human-readable reasons), on what evidence (``details``) and by whom
(an Airflow task or a reviewer). Rows are only added, never updated: the table answers "why is this
version champion?" long after the DAG runs are gone. Functions take the DB URL and open their own
session, like :mod:`trading_core.db.lineage`; callers run ``upgrade_database(url)`` first.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from trading_core.db.models import AuditEvent
from trading_core.db.session import session_scope

__all__ = ["AuditEvent", "as_utc", "jsonable", "list_events", "record_event"]

_LIMITS: dict[str, int] = {"event": 64, "model_name": 200, "version": 32, "decision": 32, "actor": 200, "dag_run": 250}
"""Column lengths, checked here so SQLite (which ignores them) fails like PostgreSQL would."""


def _default(obj: Any) -> Any:
    """JSON encoding of the values evidence is made of (numpy, pandas, dates, paths, models)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (datetime, date, pd.Timestamp)):
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    raise TypeError(f"a value of type {type(obj).__name__} is not JSON-serialisable: {obj!r:.80}")


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value`` for a JSON column: numpy scalars and arrays as Python numbers and lists,
    dates as ISO strings, NaN and +-inf as None (JSON has no NaN, and PostgreSQL rejects it).

    Raises TypeError naming the type of anything else that is not plainly JSON (no silent ``str()``).
    """
    text = json.dumps(value, default=_default, allow_nan=True)
    return json.loads(text, parse_constant=lambda _: None)


def as_utc(value: datetime) -> datetime:
    """The instant as an aware UTC datetime (SQLite hands back naive UTC; PostgreSQL the session's zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _checked(field: str, value: str | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"audit event {field} is required, got None")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"audit event {field} must be a non-empty string, got {value!r}")
    if len(value) > _LIMITS[field]:
        raise ValueError(f"audit event {field} is {len(value)} characters, at most {_LIMITS[field]}: {value[:60]!r}...")
    return value


def record_event(
    url: str,
    *,
    event: str,
    model_name: str,
    version: str | None,
    decision: str,
    reasons: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    dag_run: str | None = None,
) -> int:
    """Add one governance decision to the audit trail and return its id.

    :param event: what kind of decision (``gate.governance``, ``alias.champion``, ``ab.decision``, ``promote``...).
    :param decision: its outcome (``passed``, ``failed``, ``approved``, ``promote``, ``rollback``, ``wait``...).
    :param reasons: human-readable reasons, one string each (a bare string is refused: it is not a list of reasons).
    :param details: the evidence (metrics, thresholds, test statistics); numpy values are converted, NaN -> None.
    :param actor: who or what decided, e.g. ``airflow:promotion/<run_id>/governance_gate`` or a reviewer.
    """
    if isinstance(reasons, (str, bytes)) or not all(isinstance(r, str) for r in reasons):
        raise ValueError(f"audit event reasons must be a sequence of strings, got {reasons!r:.120}")
    if details is not None and not isinstance(details, Mapping):
        raise ValueError(f"audit event details must be a mapping, got {type(details).__name__}")
    row = AuditEvent(
        event=_checked("event", event, required=True),
        model_name=_checked("model_name", model_name, required=True),
        version=_checked("version", None if version is None else str(version), required=False),
        decision=_checked("decision", decision, required=True),
        reasons=list(reasons),
        details=jsonable(dict(details or {})),
        actor=_checked("actor", actor, required=False),
        dag_run=_checked("dag_run", dag_run, required=False),
    )
    with session_scope(url) as session:
        session.add(row)
        session.flush()
        return int(row.id)


def list_events(
    url: str,
    *,
    model_name: str | None = None,
    version: str | None = None,
    event: str | None = None,
    limit: int = 100,
) -> list[AuditEvent]:
    """The latest ``limit`` events matching every given filter, newest first (``at`` as aware UTC)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if model_name is not None:
        query = query.where(AuditEvent.model_name == model_name)
    if version is not None:
        query = query.where(AuditEvent.version == str(version))
    if event is not None:
        query = query.where(AuditEvent.event == event)
    with session_scope(url) as session:
        rows = list(session.scalars(query))
        for row in rows:
            set_committed_value(row, "at", as_utc(row.at))  # no UPDATE: not a change, a normalisation
        return rows
