"""The lake: idempotent upserts, merges, atomic writes, safe partition names, stable hashes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from trading_core.data import lake as lake_module
from trading_core.data.lake import Lake, content_hash
from trading_core.errors import ConfigError


def bars(symbol: str, start: str, n: int, price: float = 10.0) -> pd.DataFrame:
    days = pd.bdate_range(start, periods=n, tz="UTC")
    close = price + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "timestamp": days,
            "symbol": symbol,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 100.0,
        }
    )


def test_same_range_twice_changes_nothing(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    first = lake.upsert("f", "1d", bars("AAA", "2024-01-01", 5))
    target = lake.partition_dir("f", "1d", "AAA") / "bars.parquet"
    stamp = target.stat().st_mtime_ns
    second = lake.upsert("f", "1d", bars("AAA", "2024-01-01", 5))
    assert first.inserted == 5 and first.partitions_written == 1
    assert (second.inserted, second.updated, second.unchanged, second.partitions_written) == (0, 0, 5, 0)
    assert target.stat().st_mtime_ns == stamp


def test_overlapping_ranges_merge_and_new_values_win(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.upsert("f", "1d", bars("AAA", "2024-01-01", 5))
    later = bars("AAA", "2024-01-04", 5, price=20.0)
    stats = lake.upsert("f", "1d", later)
    assert (stats.inserted, stats.updated) == (3, 2)
    stored = lake.read("f", "1d", ["AAA"])
    assert len(stored) == 8 and stored["timestamp"].is_monotonic_increasing
    assert stored.set_index("timestamp").loc[later.timestamp[0], "close"] == 20.0
    window = lake.read(
        "f", "1d", ["AAA"], start=pd.Timestamp("2024-01-03", tz="UTC"), end=pd.Timestamp("2024-01-05", tz="UTC")
    )
    assert window["timestamp"].dt.day.tolist() == [3, 4, 5]


def test_a_failed_write_leaves_the_old_partition_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(tmp_path)
    lake.upsert("f", "1d", bars("AAA", "2024-01-01", 5))
    before = lake.read("f", "1d", ["AAA"])

    def half_write(table, where, **kwargs):  # type: ignore[no-untyped-def]
        Path(where).write_bytes(b"PAR1 truncated")  # what a kill mid-write leaves behind
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(lake_module.pq, "write_table", half_write)
    with pytest.raises(KeyboardInterrupt):
        lake.upsert("f", "1d", bars("AAA", "2024-01-08", 5))
    monkeypatch.undo()
    directory = lake.partition_dir("f", "1d", "AAA")
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "bars.parquet"]
    pd.testing.assert_frame_equal(lake.read("f", "1d", ["AAA"]), before)
    assert pq.read_metadata(directory / "bars.parquet").num_rows == 5


def test_symbols_become_safe_partition_names(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.upsert("f", "1d", bars("Bitstamp:BTC/USD", "2024-01-01", 3))
    assert lake.symbols("f", "1d") == ["Bitstamp:BTC/USD"]
    assert lake.partition_dir("f", "1d", "Bitstamp:BTC/USD").parent == tmp_path / "ohlcv" / "feed=f" / "interval=1d"
    for bad in ["../../etc", "/abs", "a b"]:
        with pytest.raises(ConfigError):
            lake.partition_dir("f", "1d", bad)
    with pytest.raises(ConfigError):
        lake.partition_dir("../x", "1d", "AAA")


def test_content_hash_ignores_row_order_but_not_values() -> None:
    frame = pd.concat([bars("AAA", "2024-01-01", 5), bars("BBB", "2024-01-01", 5)], ignore_index=True)
    shuffled = frame.sample(frac=1.0, random_state=0)
    changed = frame.copy()
    changed.loc[3, "close"] += 0.01
    assert content_hash(frame, "f", "1d") == content_hash(shuffled, "f", "1d")
    assert content_hash(frame, "f", "1d") != content_hash(changed, "f", "1d")
    assert content_hash(frame, "f", "1d") != content_hash(frame, "g", "1d")
