"""The file provider reads every vendor layout in ../shared/data, filters while reading, and keeps line numbers."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from trading_core.data.providers.files import FileProvider, detect_layout
from trading_core.errors import ConfigError, ProviderError, SchemaError

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


ALIAS_FILES = {
    # name: (header, one line, the bar's symbol: from the file, or given for a file without a symbol column)
    "yahoo": ("Date,Open,High,Low,Close,Adj Close,Volume", "2024-01-02,10,11,9,10.5,10.2,100", "SPY"),
    "kaggle_cased": ("Date,Open,High,Low,Close,Volume,Name", "2024-01-02,10,11,9,10.5,100,AAL", "AAL"),
    "ticker": ("date,ticker,open,high,low,close,volume", "2024-01-02,AAPL,10,11,9,10.5,100", "AAPL"),
    "polygon": ("t,o,h,l,c,v,vw,n", "1704153600000,10,11,9,10.5,100,10.2,12", "SPY"),
    "polygon_flat": (
        "ticker,volume,open,close,high,low,window_start,transactions",
        "MSFT,100,10,10.5,11,9,1704153600000000000,5",
        "MSFT",
    ),
    "ibkr": ("Symbol,Date/Time,Open,High,Low,Close,Volume", "IBM,2024-01-02 00:00:00,10,11,9,10.5,100", "IBM"),
    "ibkr_camel": ("DateTime,Symbol,Open,High,Low,Close,Volume", "20240102,IBM,10,11,9,10.5,100", "IBM"),
    "datetime_adj": ("Datetime,Symbol,Open,High,Low,Close,adj_close,Volume", "2024-01-02,X,10,11,9,10.5,10,100", "X"),
    "date_time": ("Date,Time,Ticker,Open,High,Low,Close,Volume", "2024-01-02,00:00,EURUSD,10,11,9,10.5,100", "EURUSD"),
}


@pytest.mark.parametrize("name", sorted(ALIAS_FILES))
def test_vendor_headers_are_recognised_by_alias(tmp_path: Path, name: str) -> None:
    header, line, symbol = ALIAS_FILES[name]
    path = write(tmp_path, f"{name}.csv.gz", header, [line])
    provider = FileProvider(path, symbol=symbol)
    expected_name = "long"  # the exact Kaggle header is the sp500_all_stocks layout; a re-cased one is generic
    assert provider.layout.name == expected_name
    frame = provider.fetch([], None, None)
    assert frame.timestamp.tolist() == [pd.Timestamp("2024-01-02", tz="UTC")] and frame.symbol.tolist() == [symbol]
    assert frame[["open", "high", "low", "close", "volume"]].astype(float).values.tolist() == [[10, 11, 9, 10.5, 100]]


def test_adjusted_close_is_ignored_by_default_and_scales_every_price_when_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "yahoo.csv",
        "Date,Open,High,Low,Close,Adj Close,Volume",
        ["2024-01-02,10,11,9,10,5,100", "2024-01-03,10,11,9,10,n/a,100", "2024-01-04,10,11,9,10,-1,100"],
    )
    raw = FileProvider(path, symbol="SPY").fetch([], None, None)
    assert raw.close.astype(float).tolist() == [10, 10, 10] and raw.schema_error.isna().all()
    provider = FileProvider(path, symbol="SPY", adj_close="use")
    assert provider.adjusted and provider.layout.adj_close == "Adj Close"
    adjusted = provider.fetch([], None, None)
    assert adjusted.loc[0, ["open", "high", "low", "close"]].astype(float).tolist() == [5, 5.5, 4.5, 5]
    assert adjusted.loc[0, "volume"] == 100  # volume stays raw
    assert adjusted.schema_error.iloc[1] == "field 'adj_close' is missing (needed with adj_close='use')"
    assert adjusted.schema_error.iloc[2].startswith("field 'adj_close' = -1.0 is not a positive number")
    no_adj = write(tmp_path, "plain.csv", "date,symbol,open,high,low,close,volume", ["2024-01-02,A,1,2,0.5,1.5,9"])
    with pytest.raises(ConfigError, match=r"adj_close='use' but the header has no adjusted-close column"):
        FileProvider(no_adj, adj_close="use")


def test_unknown_and_ambiguous_headers_list_the_columns_and_show_the_columns_syntax(tmp_path: Path) -> None:
    unknown = write(tmp_path, "u.csv", "when,what,open,high,low,close,qty", ["1,2,3,4,5,6,7"])
    with pytest.raises(SchemaError) as info:
        FileProvider(unknown)
    message = str(info.value)
    assert "unknown file layout" in message and "needs column(s) for 'timestamp'" in message
    assert "needs column(s) for 'volume'" in message and "'when', 'what'" in message
    assert '--columns \'{"timestamp": "<column>", "symbol": "<column>", "open": "open"' in message
    assert "\n" not in message
    ambiguous = write(tmp_path, "a.csv", "Date,Datetime,Symbol,Open,High,Low,Close,Volume", ["x,y,A,1,2,0.5,1.5,9"])
    with pytest.raises(SchemaError, match=r"ambiguous file layout: 'timestamp' is ambiguous between \['Datetime', "):
        FileProvider(ambiguous)
    provider = FileProvider(ambiguous, columns={"timestamp": "Datetime"})  # a partial mapping resolves it
    assert (provider.layout.name, provider.layout.timestamp, provider.layout.symbol) == ("custom", "Datetime", "Symbol")
    no_symbol = write(tmp_path, "n.csv", "Date,Open,High,Low,Close,Volume", ["2024-01-02,1,2,0.5,1.5,9"])
    with pytest.raises(ConfigError, match=r"no symbol column .* \(--symbols AAPL\)"):
        FileProvider(no_symbol)
    assert FileProvider(no_symbol, columns={"fixed_symbol": "QQQ"}).fetch([], None, None).symbol.tolist() == ["QQQ"]


def test_encoding_delimiter_and_compression_are_sniffed(tmp_path: Path) -> None:
    rows = ["2024-01-02;1;2;0.5;1.5;9;AAA", "2024-01-03;1;2;0.5;1.5;9;AAA"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(("\ufeffdate,open,high,low,close,volume,Name\n" + "\n".join(rows).replace(";", ",")).encode())
    assert FileProvider(bom).layout.name == "sp500_all_stocks"  # the BOM no longer hides 'date'
    semicolons = tmp_path / "semi.txt"
    semicolons.write_text('"date";"open";"high";"low";"close";"volume";"Name"\n' + "\n".join(rows))
    assert len(FileProvider(semicolons).fetch([], None, None)) == 2
    gz_without_suffix = tmp_path / "export.csv"
    with gzip.open(gz_without_suffix, "wt") as handle:
        handle.write("date,open,high,low,close,volume,Name\n" + "\n".join(rows).replace(";", ","))
    assert len(FileProvider(gz_without_suffix).fetch([], None, None)) == 2
    latin = tmp_path / "latin.csv"
    latin.write_bytes("date,open,high,low,close,volume,Name\n2024-01-02,1,2,0.5,1.5,9,SOCIÉTÉ\n".encode("latin-1"))
    with pytest.raises(ProviderError, match="not UTF-8"):
        FileProvider(latin).fetch([], None, None)
    truncated = tmp_path / "cut.csv.gz"
    whole = gzip.compress(("date,open,high,low,close,volume,Name\n" + "2024-01-02,1,2,0.5,1.5,9,AAA\n" * 5000).encode())
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ProviderError, match="cut.csv.gz: unreadable"):
        FileProvider(truncated).fetch([], None, None)


def test_known_layouts_keep_their_interval_and_check_it(tmp_path: Path) -> None:
    lines = [f"2024-01-02 {h:02d}:00:00,Bitstamp,BTC/USD,1,2,0.5,1.5,9,9,,0" for h in range(4)]
    header = LAYOUTS["crypto_d.csv.gz"][0]
    path = write(tmp_path, "crypto.csv.gz", header, lines)
    with pytest.raises(SchemaError, match="layout 'cryptodatadownload_daily' holds 1d bars but the timestamps"):
        FileProvider(path).fetch([], None, None)
    hourly = write(tmp_path, "h.csv.gz", LAYOUTS["crypto_h.csv.gz"][0], [line.replace(",,0", ",,0") for line in lines])
    provider = FileProvider(hourly)
    assert len(provider.fetch([], None, None, "1h")) == 4 and provider.interval == "1h"
    with pytest.raises(ConfigError, match="interval 1d was requested"):
        provider.fetch([], None, None, "1d")
