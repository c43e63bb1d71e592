"""Property-based fuzz of the file ingest path: CSV (plain, gzip, truncated gzip) and Parquet files
with random defects, through the library and through ``trading ingest``.

Whatever the file holds, the run ends one of two ways:

* accepted: ``rows_read == rows_clean + rows_quarantined + rows_outside_session``, every row of the
  file is read (none lost), the run record says the same and the dataset in the lake is clean;
* refused: the library raises one of the project's errors (trading_core.errors), the CLI exits 2
  with one line ``error: ...``; the lake and the datasets table are as they were, and the run is
  recorded as failed with its error.

Never a traceback. Deterministic for CI: a fixed example budget, ``derandomize=True``, no example
database; about half a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from trading_core.cli import main
from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest, load_dataset
from trading_core.data.request import IngestRequest, ValidationPolicy
from trading_core.db import lineage
from trading_core.db.models import IngestRun
from trading_core.db.session import session_scope
from trading_core.errors import TradingError

FUZZ = settings(
    max_examples=45,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""The fixed profile of this module: the same examples on every machine, bounded time."""

HEADERS = {
    "long": ["timestamp", "symbol", "open", "high", "low", "close", "volume"],
    "yahoo_like": ["Date", "Ticker", "Open", "High", "Low", "Close", "Volume"],
    "kaggle": ["date", "open", "high", "low", "close", "volume", "Name"],
    "ibkr_like": ["Date/Time", "Symbol", "Open", "High", "Low", "Close", "Volume"],
}
FIELDS = ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
JUNK = ["", "n/a", "abc", "1,5", "nan", "inf", "-inf", "1e400", "-5", "0", "1e30", "1e-30", "1e25", "é", "a\x00b", "\t"]
BAD_TIMES = ["", "2024-13-45", "yesterday", "0", "2024-03-10 02:30", "24:00", "2024-01-02 10:00 IST", "1e30"]
DEFECTS = (
    "junk_numbers",
    "bad_timestamps",
    "mixed_offsets",
    "epoch_timestamps",
    "duplicates",
    "shuffle",
    "magnitudes",
    "negative",
    "weekend_symbol",
    "intraday_symbol",
    "odd_symbols",
)


@dataclass(frozen=True)
class Case:
    """One generated input file and how to ingest it."""

    seed: int
    n_rows: int
    n_symbols: int
    defects: tuple[str, ...]
    header: str
    container: str
    encoding: str
    delimiter: str
    via_cli: bool


cases = st.builds(
    Case,
    seed=st.integers(0, 2**31 - 1),
    n_rows=st.integers(0, 60),
    n_symbols=st.integers(1, 3),
    defects=st.lists(st.sampled_from(DEFECTS), max_size=4, unique=True).map(tuple),
    header=st.sampled_from(sorted(HEADERS)),
    container=st.sampled_from(["csv", "csv.gz", "truncated.gz", "parquet", "parquet_typed", "truncated.parquet"]),
    encoding=st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]),
    delimiter=st.sampled_from([",", ",", ";", "\t"]),
    via_cli=st.booleans(),
)


def base_frame(case: Case, rng: np.random.Generator) -> pd.DataFrame:
    """Plausible daily bars for a few stock symbols on weekdays, as text, in source order."""
    symbols = [f"S{i}" for i in range(case.n_symbols)]
    days = pd.bdate_range("2024-01-02", periods=max(1, case.n_rows // case.n_symbols + 1))
    rows = [(d, s) for d in days for s in symbols][: case.n_rows]
    n = len(rows)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    frame = pd.DataFrame(
        {
            "timestamp": [d.strftime("%Y-%m-%d") for d, _ in rows],
            "symbol": [s for _, s in rows],
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 100_000, n).astype(float),
        }
    )
    return frame.astype({c: object for c in FIELDS})


def damage(frame: pd.DataFrame, case: Case, rng: np.random.Generator) -> pd.DataFrame:
    """Apply the case's defects; returns text/number cells as a vendor file might hold them."""
    n = len(frame)
    days = [pd.Timestamp(str(t)) for t in frame["timestamp"]]  # before any defect rewrites them

    def some(k: int = 3) -> np.ndarray:
        return rng.choice(n, size=min(n, k), replace=False) if n else np.array([], dtype=int)

    for defect in case.defects:
        if defect == "junk_numbers":
            for i in some():
                frame.at[i, rng.choice(["open", "high", "low", "close", "volume"])] = rng.choice(JUNK)
        elif defect == "bad_timestamps":
            for i in some(2):
                frame.at[i, "timestamp"] = rng.choice(BAD_TIMES)
        elif defect == "mixed_offsets":
            for i in some(6):
                offset = int(rng.choice([-5, 0, 9]))
                stamp = days[i] + pd.Timedelta(hours=offset)
                frame.at[i, "timestamp"] = f"{stamp:%Y-%m-%d %H:%M:%S}{offset:+03d}:00" if offset else f"{stamp}Z"
        elif defect == "epoch_timestamps":
            for i in some(4):
                frame.at[i, "timestamp"] = str(int(days[i].tz_localize("UTC").timestamp()) * 1000)
        elif defect == "duplicates" and n:
            extra = frame.iloc[some(3)].copy()
            extra["volume"] = [v if rng.random() < 0.5 else 7 for v in extra["volume"]]
            frame = pd.concat([frame, extra], ignore_index=True)
        elif defect == "shuffle":
            frame = frame.sample(frac=1.0, random_state=int(rng.integers(1 << 30))).reset_index(drop=True)
        elif defect == "magnitudes":
            for i in some(2):
                frame.at[i, rng.choice(["open", "high", "low", "volume"])] = float(rng.choice([1e30, 1e-30, 1e25]))
        elif defect == "negative":
            for i in some(2):
                frame.at[i, rng.choice(["low", "volume"])] = -1.0
        elif defect == "weekend_symbol":  # a 24/7 symbol beside weekday stocks
            every_day = pd.date_range("2024-01-02", periods=10, freq="D")
            crypto = _symbol_rows("BTC/USD", [f"{d:%Y-%m-%d}" for d in every_day])
            frame = pd.concat([frame, crypto], ignore_index=True)
        elif defect == "intraday_symbol":  # hourly bars in a daily file
            hours = pd.date_range("2024-01-02 14:00", periods=8, freq="h")
            frame = pd.concat(
                [frame, _symbol_rows("HRLY", [f"{h:%Y-%m-%d %H:%M:%S}" for h in hours])], ignore_index=True
            )
        elif defect == "odd_symbols":
            for i in some(2):
                frame.at[i, "symbol"] = rng.choice(["../etc", "", "BAD\x00", "A B", "x" * 50, '"q"', "ÆØÅ"])
    return frame.reset_index(drop=True)


def _symbol_rows(symbol: str, stamps: list[str]) -> pd.DataFrame:
    k = len(stamps)
    close = np.linspace(100, 101, k)
    return pd.DataFrame(
        {"timestamp": stamps, "symbol": symbol, "open": close, "high": close + 1, "low": close - 1, "close": close}
        | {"volume": np.full(k, 10.0)}
    ).astype(object)


def write_file(frame: pd.DataFrame, case: Case, folder: Path) -> Path:
    columns = HEADERS[case.header]
    kaggle = case.header == "kaggle"
    order = ["timestamp", "open", "high", "low", "close", "volume", "symbol"] if kaggle else FIELDS
    out = frame[order].copy()
    out.columns = columns
    if case.container.startswith("parquet") or case.container == "truncated.parquet":
        path = folder / f"bars-{case.seed}.parquet"
        if case.container == "parquet_typed":
            for col in columns[2:] if not kaggle else columns[1:6]:
                out[col] = pd.to_numeric(out[col], errors="coerce")
        out = out.astype({c: str for c in out.columns if out[c].dtype == object})
        out.to_parquet(path, index=False)
        if case.container == "truncated.parquet":
            path.write_bytes(path.read_bytes()[: max(4, path.stat().st_size // 2)])
        return path
    text = "" if case.n_rows == 0 and case.seed % 2 else out.to_csv(index=False, sep=case.delimiter)
    try:
        data = text.encode(case.encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    path = folder / f"bars-{case.seed}.{'csv' if case.container == 'csv' else 'csv.gz'}"
    if case.container == "csv":
        path.write_bytes(data)
    else:
        packed = gzip.compress(data)
        path.write_bytes(packed[: len(packed) // 2] if case.container == "truncated.gz" else packed)
    return path


def lake_snapshot(settings: Settings) -> dict[str, str]:
    root = settings.lake_dir
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def run_ids(url: str) -> set[str]:
    with session_scope(url) as session:
        return set(session.scalars(select(IngestRun.id)))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One platform home for every example: refusals are judged against a lake that holds data."""
    root = tmp_path_factory.mktemp("fuzz")
    settings = get_settings(home=str(root / "home"))
    seed_file = root / "seed.csv"
    seed_file.write_text("timestamp,symbol,open,high,low,close,volume\n2023-12-29,S0,50,51,49,50.5,1000\n")
    ingest(IngestRequest(source="csv", path=seed_file), settings)  # the lake and datasets are not empty
    return settings


def run_case(path: Path, home: Settings, via_cli: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Ingest ``path``; returns (the result as a dict, None) or (None, the one-line error)."""
    policy = {"max_bad_share": 0.5}
    if via_cli:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["ingest", "--source", "csv", "--path", str(path), "--max-bad-share", "0.5"])
        message = err.getvalue()
        assert "Traceback" not in message
        if code == 0:
            return json.loads(out.getvalue()), None
        assert code == 2 and message.startswith("error: ") and message.count("\n") == 1, (code, message)
        return None, message
    try:
        result = ingest(IngestRequest(source="csv", path=path, policy=ValidationPolicy(**policy)), home)
    except TradingError as exc:  # any other exception fails the test with its traceback
        return None, str(exc)
    return result.as_reference(), None


def covering(container: str, encoding: str, delimiter: str, *defects: str, n_rows: int = 60, cli: bool = False) -> Case:
    """An explicit example: every container, encoding, delimiter and defect is tried on every run,
    whatever the generated examples happen to favour."""
    return Case(11, n_rows, 3, defects, "long", container, encoding, delimiter, cli)


@FUZZ
@given(case=cases)
@example(case=covering("csv.gz", "utf-8-sig", ";", "junk_numbers", "duplicates", "shuffle", "magnitudes"))
@example(case=covering("csv", "utf-8", "\t", "mixed_offsets", "epoch_timestamps", "negative", cli=True))
@example(case=covering("csv", "utf-8", ",", "weekend_symbol", "bad_timestamps", "odd_symbols"))
@example(case=covering("csv", "utf-8", ",", "intraday_symbol", cli=True))
@example(case=covering("csv", "latin-1", ",", "odd_symbols", cli=True))
@example(case=covering("csv", "utf-16", ",", "shuffle"))
@example(case=covering("truncated.gz", "utf-8", ",", "duplicates", cli=True))
@example(case=covering("parquet", "utf-8", ",", "junk_numbers", "mixed_offsets", "odd_symbols"))
@example(case=covering("parquet_typed", "utf-8", ",", "magnitudes", "duplicates", "weekend_symbol", cli=True))
@example(case=covering("truncated.parquet", "utf-8", ",", "shuffle"))
@example(case=covering("csv", "utf-8", ",", n_rows=0))  # an empty file (odd seed)
@example(case=replace(covering("csv", "utf-8", ",", n_rows=0), seed=12))  # the header only
def test_every_file_is_accepted_consistently_or_refused_cleanly(
    case: Case, home: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rng = np.random.default_rng(case.seed)
    frame = damage(base_frame(case, rng), case, rng)
    folder = tmp_path_factory.mktemp("files")
    path = write_file(frame, case, folder)
    url = home.resolved_database_url
    lake_before, datasets_before, runs_before = lake_snapshot(home), lineage.list_datasets(url, 10_000), run_ids(url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRADING_HOME", str(home.home))  # the CLI builds its own Settings
        result, error = run_case(path, home, case.via_cli)
    (run_id,) = run_ids(url) - runs_before  # every attempt is recorded, accepted or refused
    run = lineage.get_run(url, run_id)
    assert run is not None
    if error is not None:
        assert run.status == "failed" and run.error, (run.status, run.error)
        assert lake_snapshot(home) == lake_before
        assert [d.version for d in lineage.list_datasets(url, 10_000)] == [d.version for d in datasets_before]
        return
    assert result is not None and run.status == "succeeded"
    outside = result["rows_outside_session"]
    assert result["rows_read"] == result["rows_clean"] + result["rows_quarantined"] + outside
    assert result["rows_read"] == len(frame), "every row of the file is read: none lost"
    assert (run.rows_read, run.rows_clean, run.rows_quarantined) == (
        result["rows_read"],
        result["rows_clean"],
        result["rows_quarantined"],
    )
    assert run.report is not None and run.report["rows_outside_session"] == outside
    assert sum(lineage.quarantine_counts(url, run_id).values()) == result["rows_quarantined"]
    bars = load_dataset(result["dataset_version"], home)
    prices = bars[["open", "high", "low", "close"]]
    policy = ValidationPolicy()
    assert np.isfinite(prices.to_numpy()).all() and (prices > 0).all().all()
    assert (prices <= policy.max_price).all().all() and (bars["volume"].between(0, policy.max_volume)).all()
