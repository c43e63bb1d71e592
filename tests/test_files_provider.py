"""The file provider reads every vendor layout in ../shared/data, filters while reading, and keeps line numbers."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from trading_core.data.providers.files import FileProvider, detect_layout
from trading_core.errors import ConfigError, SchemaError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

LAYOUTS = {
    "sp500.csv.gz": (
        "date,open,high,low,close,volume,Name",
        [
            "2013-02-08,15.07,15.12,14.63,14.75,8407500,AAL",
            "2013-02-08,67.71,68.4,66.89,67.95,5140000,AAPL",
            "2013-02-11,14.89,15.01,14.26,14.46,8882000,AAL",
        ],
        "sp500_all_stocks",
        "AAL",
    ),
    "etfs.csv.gz": (
        "date,ticker,open,high,low,close,volume,dividends,stock_splits,capital_gains",
        [
            "1993-01-29,SPY,24.25,24.25,24.13,24.24,1003200,0.0,0.0,0.0",
            "1993-02-01,SPY,24.25,24.41,24.25,24.41,480500,0.0,0.0,0.0",
        ],
        "etf_daily",
        "SPY",
    ),
    "crypto_d.csv.gz": (
        "date,exchange,symbol,open,high,low,close,volume_base,volume_quote,tradecount,volume_cols_swapped_in_source",
        [
            "2014-11-28,Bitstamp,BTC/USD,363.59,381.34,360.57,376.28,8617.15,3220878.18,,1",
            "2014-11-28,Bitfinex,BTC/USD,363.0,381.0,360.0,376.0,100.0,36000.0,,0",
        ],
        "cryptodatadownload_daily",
        "Bitstamp:BTC/USD",
    ),
    "crypto_h.csv.gz": (
        "timestamp_utc,exchange,symbol,open,high,low,close,volume_base,volume_quote,tradecount,volume_cols_swapped_in_source",
        ["2017-08-17 04:00:00,Binance,BTC/USDT,4261.48,4313.62,4261.32,4308.83,44.51,190952.85,,0"],
        "cryptodatadownload_hourly",
        "Binance:BTC/USDT",
    ),
}


def write(tmp_path: Path, name: str, header: str, lines: list[str]) -> Path:
    path = tmp_path / name
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join([header, *lines]) + "\n")
    return path


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_vendor_layout_is_recognised(tmp_path: Path, name: str) -> None:
    header, lines, layout, symbol = LAYOUTS[name]
    path = write(tmp_path, name, header, lines)
    provider = FileProvider(path)
    assert provider.layout.name == layout
    interval = "1h" if "hourly" in layout else "1d"
    frame = provider.fetch([symbol], None, None, interval)  # type: ignore[arg-type]
    assert set(frame.symbol) == {symbol}
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert frame["source_row"].iloc[0] == 2


def test_symbol_and_date_filters_with_small_chunks(tmp_path: Path) -> None:
    lines = [
        f"2024-01-{d:02d},{10 + d},{11 + d},{9 + d},{10 + d},100,{s}"
        for d in range(1, 29)
        for s in ("AAA", "BBB", "CCC")
    ]
    path = write(tmp_path, "p.csv.gz", "date,open,high,low,close,volume,Name", lines)
    whole = FileProvider(path).fetch(["BBB"], date(2024, 1, 10), date(2024, 1, 12))
    chunked = FileProvider(path, chunk_rows=7).fetch(["BBB"], date(2024, 1, 10), date(2024, 1, 12))
    pd.testing.assert_frame_equal(whole, chunked)
    assert whole["timestamp"].dt.day.tolist() == [10, 11, 12]
    assert whole["source_row"].tolist() == [
        lines.index(f"2024-01-{d},{10 + d},{11 + d},{9 + d},{10 + d},100,BBB") + 2 for d in (10, 11, 12)
    ]
    assert FileProvider(path).available_symbols() == ["AAA", "BBB", "CCC"]


def test_parquet_and_a_custom_column_mapping(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "Date": ["2024-01-02", "2024-01-03"],
            "Ticker": ["X", "Y"],
            "O": [1.0, 2.0],
            "H": [1.5, 2.5],
            "L": [0.5, 1.5],
            "C": [1.2, 2.2],
            "V": [10, 20],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    mapping = {
        "timestamp": "Date",
        "symbol": "Ticker",
        "open": "O",
        "high": "H",
        "low": "L",
        "close": "C",
        "volume": "V",
    }
    out = FileProvider(path, columns=mapping).fetch(["Y"], None, None)  # type: ignore[arg-type]
    assert out[["symbol", "open", "close"]].values.tolist() == [["Y", 2.0, 2.2]]


def test_bad_files_give_errors_that_name_the_file(tmp_path: Path) -> None:
    unknown = write(tmp_path, "u.csv.gz", "when,what,price", ["1,2,3"])
    with pytest.raises(SchemaError, match="u.csv.gz: unknown file layout"):
        FileProvider(unknown)
    with pytest.raises(SchemaError, match="needs column"):
        FileProvider(unknown, columns={"timestamp": "when", "symbol": "what"})
    with pytest.raises(ConfigError, match="not found"):
        FileProvider(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SchemaError, match="empty"):
        FileProvider(empty)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not on this machine")
def test_the_real_files_headers_match_a_known_layout() -> None:
    names = {p.name: detect_layout(p).name for p in SHARED.glob("*.csv.gz")}
    assert set(names.values()) == {
        "sp500_all_stocks",
        "etf_daily",
        "cryptodatadownload_daily",
        "cryptodatadownload_hourly",
    }
