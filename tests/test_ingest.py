"""The ingest stage end to end on the synthetic market and on files, with quarantine and lineage."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from trading_core.config import Settings
from trading_core.data.ingest import fetch_to_staging, ingest, load_dataset, publish, validate_staged
from trading_core.data.lake import Lake
from trading_core.data.request import IngestRequest, ValidationPolicy, request_from_params
from trading_core.db import lineage
from trading_core.errors import DataQualityError, DatasetIntegrityError

SYN = dict(source="synthetic", symbols=("SYN000", "SYN003"), start="2023-01-02", end="2023-06-30", n_assets=5)


def test_synthetic_ingest_records_a_reproducible_dataset(settings: Settings) -> None:
    result = ingest(IngestRequest(**SYN), settings)
    assert result.dataset_version.startswith("ds-") and result.new_dataset
    assert result.symbols == ["SYN000", "SYN003"] and result.rows == result.rows_read == 2 * 124
    frame = load_dataset(result.dataset_version, settings)
    assert len(frame) == result.rows and set(frame.symbol) == {"SYN000", "SYN003"}
    again = ingest(IngestRequest(**SYN), settings)
    assert again.dataset_version == result.dataset_version and not again.new_dataset
    assert again.upsert == {"inserted": 0, "updated": 0, "unchanged": 248, "partitions_written": 0}
    assert not any(settings.staging_dir.iterdir()), "staging is cleared after publishing"


def test_defects_are_quarantined_with_reasons_and_kept_out_of_the_lake(settings: Settings) -> None:
    result = ingest(IngestRequest(**SYN, defect_rate=0.03, policy=ValidationPolicy(max_bad_share=0.5)), settings)
    assert result.rows_quarantined > 0
    assert {"missing_values", "duplicate", "ohlc_order"} & set(result.quarantined_by_rule)
    rows = lineage.quarantined_rows(settings.resolved_database_url, result.run_id, limit=500)
    assert len(rows) == result.rows_quarantined
    assert all(r.reason.startswith(r.rule) and r.source_row for r in rows)
    lake = load_dataset(result.dataset_version, settings)
    assert lake[["open", "high", "low", "close", "volume"]].notna().all().all()
    assert (lake["volume"] >= 0).all() and not lake.duplicated(["symbol", "timestamp"]).any()


def test_over_budget_run_fails_keeps_quarantine_and_leaves_the_lake_alone(settings: Settings) -> None:
    good = ingest(IngestRequest(**SYN), settings)
    before = load_dataset(good.dataset_version, settings)
    request = IngestRequest(**SYN, defect_rate=0.2, policy=ValidationPolicy(max_bad_share=0.05))
    with pytest.raises(DataQualityError, match="Nothing was written to the lake"):
        ingest(request, settings, run_id="bad-run")
    run = lineage.get_run(settings.resolved_database_url, "bad-run")
    assert run is not None and run.status == "failed" and "quarantined" in (run.error or "")
    assert (
        sum(lineage.quarantine_counts(settings.resolved_database_url, "bad-run").values()) == run.rows_quarantined > 0
    )
    pd.testing.assert_frame_equal(load_dataset(good.dataset_version, settings), before)


def test_retried_steps_are_idempotent_by_run_id(settings: Settings) -> None:
    request = IngestRequest(**SYN, defect_rate=0.03, policy=ValidationPolicy(max_bad_share=0.5))
    staged = fetch_to_staging(request, settings, run_id="dag:run1")
    validate_staged(staged, settings)
    staged = fetch_to_staging(request, settings, run_id="dag:run1")  # the task is retried
    validated = validate_staged(staged, settings)
    result = publish(validated, settings)
    counts = lineage.quarantine_counts(settings.resolved_database_url, "dag:run1")
    assert sum(counts.values()) == result.rows_quarantined  # not doubled by the retry


def test_changed_lake_is_detected_when_loading_an_old_version(settings: Settings) -> None:
    first = ingest(IngestRequest(**SYN), settings)
    frame = load_dataset(first.dataset_version, settings)
    altered = (
        frame[frame.symbol == "SYN000"].head(3).assign(close=lambda d: d.close * 1.01, high=lambda d: d.high * 1.02)
    )
    Lake(settings.lake_dir).upsert(first.feed, "1d", altered)
    with pytest.raises(DatasetIntegrityError, match=first.dataset_version):
        load_dataset(first.dataset_version, settings)


def test_csv_ingest_names_the_bad_line(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("date,open,high,low,close,volume,Name\n")
        handle.write("2024-01-02,10,11,9,10.5,100,AAA\n")
        handle.write("2024-01-03,10.5,11,9,oops,100,AAA\n")
        handle.write("2024-01-04,10.5,11,10,10.8,100,AAA\n")
        handle.write("2024-01-02,20,21,19,20.5,100,BBB\n")
    request = IngestRequest(source="csv", path=path, symbols=("AAA",), policy=ValidationPolicy(max_bad_share=0.5))
    result = ingest(request, settings)
    assert result.feed == "csv-sp500_all_stocks" and result.rows == 2
    (row,) = lineage.quarantined_rows(settings.resolved_database_url, result.run_id)
    assert row.source_row == 3 and row.rule == "schema" and "field 'close' = oops" in row.reason


def test_request_from_params_uses_a_lookback_for_scheduled_runs() -> None:
    from datetime import date

    request = request_from_params(
        {
            "source": "synthetic",
            "symbols": [],
            "start": None,
            "end": None,
            "lookback_days": 7,
            "max_bad_share": 0.2,
            "path": None,
        },
        date(2024, 3, 15),
    )
    assert (request.start, request.end) == (date(2024, 3, 8), date(2024, 3, 15))
    assert request.policy.max_bad_share == 0.2
    with pytest.raises(ValueError, match="symbol"):
        request_from_params({"symbols": ["../x"]}, date(2024, 3, 15))


def test_bad_values_reach_the_postgresql_quarantine_intact(postgres_url: str, tmp_path: Path) -> None:
    """NUL bytes, unreadable and DST-skipped timestamps, absurd magnitudes: PostgreSQL stores every reason."""
    from trading_core.config import get_settings

    settings = get_settings(home=str(tmp_path / "home"), database_url=postgres_url)
    path = tmp_path / "dirty.csv"
    hours = [f"2024-03-10 {h:02d}:00" for h in (0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]
    path.write_bytes(
        b"timestamp,symbol,open,high,low,close,volume\n"
        + b"".join(f"{h},AAA,10,11,9,10.5,100\n".encode() for h in hours)  # lines 2-13
        + b"2024-03-10 01:00-05:00,AAA,10,11,9,10.5,100\n"  # line 14: 06:00 UTC, as line 3
        b"2024-03-10 02:00,AAA,10,11,9,10.5,100\n"  # line 15: skipped by the switch to daylight saving
        b"2024-03-10 13:00,A\x00A,10,11,9,10.5,100\n"
        b"2024-03-10 14:00,AAA,10,1e30,9,10.5,100\n"
        b"not-a-time,AAA,10,11,9,10.5,1e25\n"
    )
    request = IngestRequest(source="csv", path=path, tz="America/New_York", policy=ValidationPolicy(max_bad_share=0.5))
    result = ingest(request, settings)
    rows = {r.source_row: r for r in lineage.quarantined_rows(postgres_url, result.run_id)}
    assert set(rows) == {14, 15, 16, 17, 18} and result.rows_read == result.rows_clean + result.rows_quarantined
    assert rows[14].rule == "duplicate" and "same symbol and timestamp as source row 3" in rows[14].reason
    assert rows[15].rule == "schema" and "daylight-saving" in rows[15].reason
    assert rows[16].symbol == "A\\x00A" and "not a valid ticker" in rows[16].reason  # NUL kept, escaped
    assert rows[17].rule == "implausible_value" and "high 1e+30 > max_price" in rows[17].reason
    assert "'not-a-time' is not a date/time" in rows[18].reason and result.interval == "1h"
