"""Timestamps as vendors write them: every offset honoured, naive values in the documented zone,
bad values quarantined per row with a reason (never a traceback), and the interval inferred."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trading_core.config import Settings
from trading_core.data.ingest import ingest, load_dataset
from trading_core.data.intervals import infer_interval
from trading_core.data.request import IngestRequest, ValidationPolicy
from trading_core.data.schema import to_utc
from trading_core.data.timestamps import parse_timestamps
from trading_core.db import lineage
from trading_core.errors import SchemaError


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-08 09:30:00+09:00", "2024-03-08 00:30"),  # each value its own offset...
        ("2024-03-08 00:30:00+00:00", "2024-03-08 00:30"),
        ("2024-03-08T05:30:00-0500", "2024-03-08 10:30"),
        ("2024-03-08T10:30:00.000Z", "2024-03-08 10:30"),
        ("2024-03-08 10:30 UTC", "2024-03-08 10:30"),
        ("2024-03-08 09:30", "2024-03-08 14:30"),  # ...naive values in the given zone (EST here)
        ("2024-07-08 09:30", "2024-07-08 13:30"),  # (EDT)
        ("20240308 09:30:00 US/Eastern", "2024-03-08 14:30"),  # IBKR
        ("2024-03-08 09:30 EST", "2024-03-08 14:30"),
        ("1709908200000", "2024-03-08 14:30"),  # Polygon epoch ms
        ("1709908200", "2024-03-08 14:30"),
        ("1709908200000000000", "2024-03-08 14:30"),  # flat files' window_start, ns, exact
        ("03/08/2024 9:30 AM", "2024-03-08 14:30"),
    ],
)
def test_each_value_is_read_on_its_own_terms(raw: str, expected: str) -> None:
    mixed = pd.Series([raw, "2024-03-08 00:30:00+00:00", "2024-03-08 09:30"])  # never a homogeneous column
    parsed = parse_timestamps(mixed, "America/New_York")
    assert parsed.utc.iloc[0] == utc(expected) and parsed.error.iloc[0] is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("garbage", "field 'timestamp' = 'garbage' is not a date/time"),
        ("2024-13-45", "is not a date/time"),
        ("", "field 'timestamp' is missing"),
        ("2024-03-10 02:30", "is not a valid America/New_York time (skipped or repeated by a daylight-saving"),
        ("2024-11-03 01:30", "is not a valid America/New_York time"),  # the hour that happens twice
        ("2024-03-08 09:30 IST", "ambiguous zone abbreviation 'IST'"),
        ("2024-03-08 09:30 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("2024-03-08 09:30+15:00", "offset beyond ±14:00"),
        ("42", "is not a date/time"),
    ],
)
def test_bad_values_become_nat_with_a_reason(raw: str, reason: str) -> None:
    parsed = parse_timestamps(pd.Series(["2024-03-08 09:30", raw]), "America/New_York")
    assert parsed.utc.iloc[0] == utc("2024-03-08 14:30")
    assert pd.isna(parsed.utc.iloc[1]) and reason in parsed.error.iloc[1]


def test_datetime_columns_and_python_objects() -> None:
    aware = pd.Series(pd.date_range("2024-01-02 09:00", periods=2, freq="h", tz="Asia/Tokyo"))
    assert parse_timestamps(aware, "UTC").utc.tolist() == [utc("2024-01-02 00:00"), utc("2024-01-02 01:00")]
    naive = pd.Series(pd.to_datetime(["2024-01-02 09:30"]))
    assert parse_timestamps(naive, "America/New_York").utc.iloc[0] == utc("2024-01-02 14:30")
    objects = pd.Series([pd.Timestamp("2024-01-02 09:30", tz="Europe/Berlin"), "2024-01-02 09:30", 1704205800, None])
    parsed = parse_timestamps(objects, "UTC")
    assert parsed.utc.iloc[:3].tolist() == [utc("2024-01-02 08:30"), utc("2024-01-02 09:30"), utc("2024-01-02 14:30")]
    assert parsed.error.iloc[3] == "field 'timestamp' is missing"


def test_to_utc_raises_only_for_a_wholly_unreadable_column() -> None:
    parsed = to_utc(pd.Series(["2024-01-02 10:00+01:00", "x"]), "f")
    assert parsed.iloc[0] == utc("2024-01-02 09:00") and pd.isna(parsed.iloc[1])
    with pytest.raises(SchemaError, match="no value of the timestamp column"):
        to_utc(pd.Series(["x", "y"]), "f")


def test_interval_inference() -> None:
    five = pd.Series(pd.date_range("2024-01-02 14:30", periods=12, freq="5min", tz="UTC"))
    assert infer_interval(five, pd.Series(["A"] * 12))[0] == "5m"
    days = pd.Series(pd.bdate_range("2024-01-01", periods=10, tz="UTC"))
    assert infer_interval(days, pd.Series(["A"] * 10))[0] == "1d"
    assert infer_interval(days[:1], pd.Series(["A"]))[0] is None
    with pytest.raises(SchemaError, match="7 days .* not a supported interval"):
        infer_interval(pd.Series(pd.date_range("2024-01-07", periods=5, freq="W", tz="UTC")), pd.Series(["A"] * 5))
    both = pd.concat([five[:5], days[:5]], ignore_index=True)
    with pytest.raises(SchemaError, match=r"different intervals \(A 5m, B 1d\)"):
        infer_interval(both, pd.Series(["A"] * 5 + ["B"] * 5))


def test_a_merged_export_with_mixed_offsets_ingests(settings: Settings, tmp_path: Path) -> None:
    """The traceback of issue 16: offsets +09:00 and +00:00, naive and aware values, one bad value."""
    path = tmp_path / "merged.csv"
    path.write_text(
        "Datetime,Ticker,Open,High,Low,Close,Volume\n"
        "2024-01-02 09:00:00+09:00,T,10,11,9,10.5,100\n"  # 00:00 UTC
        "2024-01-02 01:00:00+00:00,T,10.5,11,10,10.8,100\n"
        "2024-01-02 02:00:00,T,10.8,11,10,10.9,100\n"  # naive: UTC (weekdays calendar)
        "2024-01-02 12:00:00+09:00,T,10.9,11.5,10.5,11,100\n"  # 03:00 UTC
        "not a time,T,11,11.5,10.5,11.2,100\n"
        "2024-01-02 04:00:00Z,T,11.2,11.5,11,11.3,100\n"
    )
    result = ingest(IngestRequest(source="csv", path=path, policy=ValidationPolicy(max_bad_share=0.5)), settings)
    assert (result.interval, result.rows, result.rows_quarantined) == ("1h", 5, 1)
    bars = load_dataset(result.dataset_version, settings)
    assert bars.timestamp.tolist() == [utc(f"2024-01-02 0{h}:00") for h in range(5)]
    (row,) = lineage.quarantined_rows(settings.resolved_database_url, result.run_id)
    assert row.rule == "schema" and row.source_row == 6
    assert row.reason == "schema: field 'timestamp' = 'not a time' is not a date/time"


def test_daily_bars_are_the_date_as_written(tmp_path: Path) -> None:
    """Yahoo's daily export carries the exchange's offset: the session is the date, not 05:00 UTC."""
    from trading_core.data.providers.files import FileProvider

    path = tmp_path / "daily.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-03-08 00:00:00-05:00,1,2,0.5,1.5,10\n"
        "2024-03-11 00:00:00-04:00,1,2,0.5,1.5,10\n"
        "2024-03-12 00:00:00+09:00,1,2,0.5,1.5,10\n"
    )
    frame = FileProvider(path, symbol="SPY", calendar="XNYS").fetch([], None, None)
    assert frame.timestamp.tolist() == [utc("2024-03-08"), utc("2024-03-11"), utc("2024-03-12")]
    assert frame.symbol.tolist() == ["SPY"] * 3
