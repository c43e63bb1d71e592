"""The audit trail: events round-trip with their evidence made JSON-safe, filters, newest first, and specific
errors for bad fields; on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading_core.db import upgrade_database
from trading_core.db.audit import jsonable, list_events, record_event


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_database(url)
    return url


def test_events_round_trip_newest_first_and_filter(db_url: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    gate = record_event(
        db_url,
        event="gate.governance",
        model_name="hybrid",
        version="3",
        decision="failed",
        reasons=["sharpe 0.41 < 0.5", "max drawdown 23% > 20%"],
        details={
            "sharpe": np.float32(0.41),
            "drawdown": np.float64(0.23),
            "folds": np.array([0.1, np.nan]),
            "trades": np.int64(12),
            "ci": (0.1, float("inf")),
            "at": pd.Timestamp("2026-01-05", tz="UTC"),
        },
        actor="airflow:promotion/manual__2026-01-05/governance_gate",
        dag_run="manual__2026-01-05",
    )
    approval = record_event(
        db_url, event="gate.approval", model_name="hybrid", version="3", decision="approved", actor="reviewer@x"
    )
    other = record_event(db_url, event="promote", model_name="other", version=None, decision="promote")
    assert gate < approval < other

    events = list_events(db_url)
    assert [e.id for e in events] == [other, approval, gate]
    first = events[-1]
    assert first.reasons == ["sharpe 0.41 < 0.5", "max drawdown 23% > 20%"]
    assert first.details == {
        "sharpe": pytest.approx(0.41, rel=1e-6),
        "drawdown": 0.23,
        "folds": [0.1, None],  # NaN -> None
        "trades": 12,
        "ci": [0.1, None],
        "at": "2026-01-05T00:00:00+00:00",
    }
    assert first.actor is not None and first.actor.endswith("governance_gate") and first.dag_run == "manual__2026-01-05"
    assert first.at.tzinfo is not None and before <= first.at <= datetime.now(UTC) + timedelta(seconds=1)
    assert events[1].details == {} and events[1].reasons == [] and events[0].version is None

    assert [e.id for e in list_events(db_url, model_name="hybrid")] == [approval, gate]
    assert [e.id for e in list_events(db_url, model_name="hybrid", event="gate.approval")] == [approval]
    assert [e.id for e in list_events(db_url, version="3", limit=1)] == [approval]
    assert list_events(db_url, model_name="nobody") == []


def test_bad_events_are_refused_with_the_field_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(url)
    ok: dict[str, Any] = dict(event="promote", model_name="hybrid", version="3", decision="promote")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"event": ""}, "event must be a non-empty string"),
        ({"model_name": "x" * 201}, "model_name is 201 characters, at most 200"),
        ({"decision": None}, "decision is required"),
        ({"reasons": "one reason"}, "reasons must be a sequence of strings"),
        ({"reasons": ["ok", 3]}, "reasons must be a sequence of strings"),
        ({"details": ["not", "a", "mapping"]}, "details must be a mapping"),
    ]
    for override, message in cases:
        with pytest.raises(ValueError, match=message):
            record_event(url, **{**ok, **override})
    with pytest.raises(TypeError, match="type object is not JSON-serialisable"):
        record_event(url, **ok, details={"what": object()})
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        list_events(url, limit=0)
    assert list_events(url) == []  # nothing half-written


def test_jsonable_converts_the_values_evidence_is_made_of() -> None:
    class Colour(enum.Enum):
        RED = "red"

    assert jsonable({"a": {"b", "a"}, "t": np.bool_(True), "p": Path("/x/y"), "e": Colour.RED, "n": np.nan}) == {
        "a": ["a", "b"],
        "t": True,
        "p": "/x/y",
        "e": "red",
        "n": None,
    }
