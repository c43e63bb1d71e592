"""A real-shaped intraday export end to end: 5-minute US stock bars -> lake -> features.

The file is what a vendor hands over: the timestamp under its own column name (``Date/Time``),
naive US/Eastern wall-clock times, pre- and after-market bars mixed in, spanning the end of
daylight saving (2024-11-03), Thanksgiving (closed) and the early close the day after (13:00).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from builders import TINY

from trading_core.cli import main
from trading_core.config import Settings
from trading_core.data.ingest import ingest, load_dataset
from trading_core.data.request import IngestRequest
from trading_core.db import lineage
from trading_core.errors import ConfigError
from trading_core.features import build_feature_set

EASTERN = "America/New_York"
FIRST, LAST = "2024-10-28", "2024-12-06"


def _sessions() -> pd.DataFrame:
    import exchange_calendars as xcals

    schedule = xcals.get_calendar("XNYS", start=FIRST, end=LAST).schedule.loc[FIRST:LAST]
    return schedule[["open", "close"]]


def write_export(path: Path, symbols: tuple[str, ...] = ("AAA", "BBB")) -> dict[str, int]:
    """Write the vendor file; returns how many regular and extended-hours bars it holds."""
    rng = np.random.default_rng(7)
    rows, counts = [], {"regular": 0, "extended": 0}
    for open_, close in _sessions().itertuples(index=False):
        local_open = open_.tz_convert(EASTERN).tz_localize(None)
        local_close = close.tz_convert(EASTERN).tz_localize(None)
        pre = pd.date_range(local_open - pd.Timedelta(minutes=90), local_open, freq="5min", inclusive="left")
        regular = pd.date_range(local_open, local_close, freq="5min", inclusive="left")
        # After-market: 16:00-18:00, and after an early close from that close on.
        after = pd.date_range(local_close, local_close + pd.Timedelta(hours=2), freq="5min", inclusive="left")
        for kind, stamps in (("extended", pre), ("regular", regular), ("extended", after)):
            for symbol in symbols:
                for stamp in stamps:
                    rows.append((stamp.strftime("%Y-%m-%d %H:%M:%S"), symbol, kind))
                counts[kind] += len(stamps)
    frame = pd.DataFrame(rows, columns=["Date/Time", "Symbol", "kind"]).sort_values(["Date/Time", "Symbol"])
    n = len(frame)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    spread = np.abs(rng.normal(0, 0.001, n)) + 0.0005
    frame = frame.assign(
        Open=np.round(close * (1 + rng.normal(0, 0.0005, n)), 4),
        Close=np.round(close, 4),
        Volume=rng.integers(100, 5000, n),
    )
    frame["High"] = np.round(frame[["Open", "Close"]].max(axis=1) * (1 + spread), 4)
    frame["Low"] = np.round(frame[["Open", "Close"]].min(axis=1) * (1 - spread), 4)
    frame[["Date/Time", "Symbol", "Open", "High", "Low", "Close", "Volume"]].to_csv(path, index=False)
    return counts


def test_intraday_export_ingests_by_session_and_builds_features(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ibkr_5min.csv"
    counts = write_export(path)
    result = ingest(IngestRequest(source="csv", path=path, calendar="XNYS"), settings)

    # Interval inferred, Eastern wall-clock read as Eastern (the calendar's zone), extended bars filtered.
    assert (result.interval, result.feed) == ("5m", "csv-long")
    assert result.rows_outside_session == counts["extended"] > 0
    assert result.rows_clean == counts["regular"] and result.rows_quarantined == 0
    assert result.rows_read == result.rows_clean + result.rows_quarantined + result.rows_outside_session
    assert not {"calendar_gap", "off_calendar"} & set(result.flagged_by_rule), result.flagged_by_rule

    bars = load_dataset(result.dataset_version, settings)
    first_bar = bars.groupby(bars.timestamp.dt.date)["timestamp"].min()
    last_bar = bars.groupby(bars.timestamp.dt.date)["timestamp"].max()
    assert first_bar[date(2024, 11, 1)] == pd.Timestamp("2024-11-01 13:30", tz="UTC")  # EDT: UTC-4
    assert first_bar[date(2024, 11, 4)] == pd.Timestamp("2024-11-04 14:30", tz="UTC")  # EST: UTC-5
    assert last_bar[date(2024, 11, 29)] == pd.Timestamp("2024-11-29 17:55", tz="UTC")  # early close 13:00 EST
    assert date(2024, 11, 28) not in first_bar.index  # Thanksgiving
    assert len(bars) == counts["regular"]

    # The counts are the same in the run's report and the dataset's lineage.
    url = settings.resolved_database_url
    run = lineage.get_run(url, result.run_id)
    assert run is not None and run.report is not None
    assert (run.report["rows_outside_session"], run.report["session"]) == (counts["extended"], "regular")
    record = lineage.get_dataset(url, result.dataset_version)
    assert record.lineage["rows_outside_session"] == counts["extended"]
    assert record.lineage["rows_clean"] + record.lineage["rows_quarantined"] + counts["extended"] == run.rows_read

    features = build_feature_set(result.dataset_version, TINY, settings)
    assert features.rows > 0 and min(features.samples.values()) > 0


def test_extended_session_keeps_the_extended_bars_without_flags(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ibkr_5min.csv"
    counts = write_export(path, symbols=("AAA",))
    request = IngestRequest(source="csv", path=path, calendar="XNYS", tz=EASTERN, session="extended", interval="5m")
    result = ingest(request, settings)
    assert result.rows_outside_session == 0 and result.rows_clean == counts["regular"] + counts["extended"]
    assert not {"calendar_gap", "off_calendar"} & set(result.flagged_by_rule), result.flagged_by_rule


def test_interval_disagreement_and_wrong_zone(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ibkr_5min.csv"
    write_export(path, symbols=("AAA",))
    with pytest.raises(ConfigError, match=r"timestamps are 5m bars .* interval 1d was requested; .*--interval 5m"):
        ingest(IngestRequest(source="csv", path=path, calendar="XNYS", interval="1d"), settings, run_id="wrong-iv")
    run = lineage.get_run(settings.resolved_database_url, "wrong-iv")
    assert run is not None and run.status == "failed" and "--interval 5m" in (run.error or "")
    # The same times read as UTC land outside the session: most bars are filtered, none are lost.
    result = ingest(IngestRequest(source="csv", path=path, calendar="XNYS", tz="UTC"), settings)
    assert result.rows_read == result.rows_clean + result.rows_quarantined + result.rows_outside_session
    assert result.rows_outside_session > result.rows_clean


def test_cli_ingest_intraday_options(settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ibkr_5min.csv"
    counts = write_export(path, symbols=("AAA",))
    args = ["ingest", "--source", "csv", "--path", str(path), "--calendar", "XNYS", "--tz", EASTERN]
    assert main([*args, "--session", "regular", "--interval", "5m"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["interval"], out["rows_outside_session"], out["rows_clean"]) == (
        "5m",
        counts["extended"],
        counts["regular"],
    )
    assert main([*args, "--tz", "Mars/Olympus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tz: ") and "unknown time zone 'Mars/Olympus'" in err and err.count("\n") == 1
    assert main([*args, "--columns", "{not json"]) == 2
    err = capsys.readouterr().err
    assert "--columns is not JSON" in err and '--columns \'{"timestamp"' in err and err.count("\n") == 1
