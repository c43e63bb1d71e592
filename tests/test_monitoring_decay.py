"""Performance decay of paper returns against the validation Sharpe (rolling window, Sharpe-drop and hit-rate
rules, too few days), and the ``drift_checks`` store (record, list newest first, the cooldown's last trigger) on
SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading_core.db import upgrade_database
from trading_core.errors import ConfigError, DataQualityError
from trading_core.monitoring import (
    ColumnDrift,
    DriftResult,
    last_trigger,
    list_checks,
    performance_decay,
    record_check,
    set_triggered_run,
)


def _returns(sharpe: float, n: int, seed: int = 0, vol: float = 0.01) -> pd.Series:
    """Daily returns whose annualised Sharpe over all ``n`` days is exactly ``sharpe``."""
    z = np.random.default_rng(seed).normal(size=n)
    z = (z - z.mean()) / z.std(ddof=1)
    days = pd.bdate_range("2026-01-05", periods=n, tz="UTC")
    return pd.Series(vol * (z + sharpe / math.sqrt(252)), index=days)


def test_stream_like_validation_is_not_decayed() -> None:
    result = performance_decay(_returns(2.0, 63), validation_sharpe=2.0)
    assert result.sharpe == pytest.approx(2.0) and result.sharpe_drop == pytest.approx(0.0, abs=1e-9)
    assert result.hit_rate is not None and result.hit_rate >= 0.45
    assert not result.decayed and result.window == 63
    assert result.reasons[0].startswith("Sharpe drop 0.00 <= 1.00: Sharpe 2.00 over the last 63 days vs 2.00")


def test_negative_stream_is_decayed_on_the_sharpe_drop() -> None:
    result = performance_decay(_returns(-1.5, 63), validation_sharpe=2.0)
    assert result.decayed and result.sharpe_drop == pytest.approx(3.5)
    assert result.reasons[0] == (
        "Sharpe drop 3.50 > 1.00: Sharpe -1.50 over the last 63 days vs 2.00 in validation: decayed"
    )
    assert result.as_dict()["decayed"] is True


def test_only_the_last_window_counts() -> None:
    good, bad = _returns(3.0, 200, seed=1), _returns(-2.0, 63, seed=2)
    stream = pd.concat([good, bad.set_axis(pd.bdate_range(good.index[-1] + timedelta(days=1), periods=63, tz="UTC"))])
    shuffled = stream.sample(frac=1.0, random_state=0)  # a DatetimeIndex is put in time order first
    result = performance_decay(shuffled, validation_sharpe=2.5)
    assert result.sharpe == pytest.approx(-2.0) and result.decayed


def test_too_few_days_is_no_verdict() -> None:
    result = performance_decay(_returns(-5.0, 40), validation_sharpe=2.0)
    assert not result.decayed and result.sharpe is None and result.hit_rate is None
    assert result.reasons == ["not enough paper-trading days (40 < 63): no decay verdict yet"]
    with_nan = _returns(1.0, 63)
    with_nan.iloc[5] = np.nan
    result = performance_decay(with_nan, validation_sharpe=1.0)
    assert not result.decayed and result.reasons == [
        "1 day(s) without a return (NaN) ignored", "not enough paper-trading days (62 < 63): no decay verdict yet",
    ]  # fmt: skip


def test_hit_rate_rule_and_no_validation_sharpe() -> None:
    # 20 wins of +3%, 30 losses of -0.5%, 13 flat days: profitable, but right on only 40% of the days it moved.
    values = [0.03] * 20 + [-0.005] * 30 + [0.0] * 13
    returns = pd.Series(np.random.default_rng(3).permutation(values))
    result = performance_decay(returns, validation_sharpe=None)
    assert result.hit_rate == pytest.approx(0.4) and result.sharpe is not None and result.sharpe > 2
    assert result.decayed and result.sharpe_drop is None
    assert result.reasons == [
        "no validation Sharpe: only the hit-rate rule applies",
        "hit rate 0.400 < 0.450 (20 of 50 non-zero days positive): decayed",
    ]
    assert not performance_decay(returns, validation_sharpe=None, min_hit_rate=0.4).decayed  # 0.4 is not < 0.4

    flat = performance_decay(pd.Series(np.zeros(63)), validation_sharpe=1.0)
    assert not flat.decayed and flat.sharpe is None and flat.hit_rate is None
    assert any("zero volatility" in r for r in flat.reasons)
    assert any("no day with a non-zero" in r for r in flat.reasons)


def test_bad_arguments_are_refused() -> None:
    returns = _returns(1.0, 63)
    with pytest.raises(ConfigError, match="window must be an int >= 2"):
        performance_decay(returns, validation_sharpe=1.0, window=1)
    with pytest.raises(ConfigError, match="validation_sharpe must be finite"):
        performance_decay(returns, validation_sharpe=float("nan"))
    with pytest.raises(ConfigError, match="min_hit_rate"):
        performance_decay(returns, validation_sharpe=1.0, min_hit_rate=1.5)
    returns.iloc[3] = np.inf
    with pytest.raises(DataQualityError, match="is infinite"):
        performance_decay(returns, validation_sharpe=1.0)


# ------------------------------------------------------------------------------------------ store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_database(url)
    return url


def _drift(share: float, drifted: list[str]) -> DriftResult:
    columns = [ColumnDrift(c, "ks", 0.001 if c in drifted else float("nan"), 0.05, c in drifted) for c in ["a", "b"]]
    return DriftResult(share, share >= 0.3, drifted, columns, 250, 63, 0.3)


def test_checks_round_trip_newest_first_and_last_trigger(db_url: str) -> None:
    start, end = datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 5, 29, tzinfo=UTC)
    decay = performance_decay(_returns(-1.5, 63), validation_sharpe=2.0)
    first = record_check(
        db_url, model_name="hybrid", version="3", window_start=start, window_end=end,
        drift=_drift(0.5, ["a"]), prediction=_drift(0.25, []), decay=decay, decision="drift+decay",
        reason="1 of 2 features drifted; Sharpe drop 3.50 > 1.00", mlflow_run_id="a" * 32,
        details={"n_bars": np.int64(63), "ratio": np.float32(float("nan"))},
    )  # fmt: skip
    second = record_check(db_url, model_name="hybrid", version=None, window_start=None, window_end=None, drift=None,
                          prediction=None, decay=None, decision="error", reason="no recent bars")  # fmt: skip
    other = record_check(db_url, model_name="other", version="1", window_start=None, window_end=None, drift=None,
                         prediction=None, decay=None, decision="ok", reason="nothing to report")  # fmt: skip
    assert first < second < other

    assert last_trigger(db_url, "hybrid") is None
    set_triggered_run(db_url, first, "drift_monitor__manual__2026-05-29")
    set_triggered_run(db_url, first, "drift_monitor__manual__2026-05-29")  # a retried task: no-op
    with pytest.raises(ValueError, match="already triggered"):
        set_triggered_run(db_url, first, "another")
    with pytest.raises(LookupError, match="no drift check with id 999"):
        set_triggered_run(db_url, 999, "x")

    checks = list_checks(db_url, model_name="hybrid")
    assert [c.id for c in checks] == [second, first]
    row = checks[1]
    assert (row.drift_share, row.drifted_columns, row.prediction_drift_share) == (0.5, ["a"], 0.25)
    assert (row.window_start, row.window_end) == (start, end) and row.at.tzinfo is not None
    assert row.decision == "drift+decay" and row.mlflow_run_id == "a" * 32
    assert row.decay is not None and row.decay["decayed"] is True and row.decay["sharpe_drop"] == pytest.approx(3.5)
    assert row.details["n_bars"] == 63 and row.details["ratio"] is None  # NaN -> None
    assert row.details["drift"]["columns"][1] == {"column": "b", "stattest": "ks", "score": None, "threshold": 0.05,
                                                  "drifted": False}  # fmt: skip
    assert row.details["prediction"]["drift_share"] == 0.25
    assert checks[0].drift_share is None and checks[0].decay is None and checks[0].drifted_columns == []
    assert checks[0].details == {"drift": None, "prediction": None}
    assert [c.id for c in list_checks(db_url)] == [other, second, first]
    assert [c.id for c in list_checks(db_url, limit=1)] == [other]

    trigger = last_trigger(db_url, "hybrid")
    assert trigger is not None and trigger.id == first and trigger.triggered_run == "drift_monitor__manual__2026-05-29"
    assert last_trigger(db_url, "other") is None


def test_bad_checks_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(url)
    ok: dict[str, Any] = dict(model_name="hybrid", version="3", window_start=None, window_end=None, drift=None,
                              prediction=None, decay=None, decision="ok", reason="fine")  # fmt: skip
    naive = datetime(2026, 1, 1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"decision": "drifted"}, "decision must be one of"),
        ({"model_name": "x" * 201}, "model_name is 201 characters, at most 200"),
        ({"version": "v" * 33}, "version is 33 characters"),
        ({"window_start": naive}, "window_start must be timezone-aware"),
        ({"window_start": datetime(2026, 2, 1, tzinfo=UTC), "window_end": datetime(2026, 1, 1, tzinfo=UTC)},
         "is after window_end"),
    ]  # fmt: skip
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            record_check(url, **{**ok, **change})
    assert list_checks(url) == []
