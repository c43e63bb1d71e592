"""The market_data DAG's form: source, symbols, dates, file options and validation thresholds.

Kept beside ``market_data.py`` so the DAG file shows the pipeline; the values become an
``IngestRequest`` (``trading_core.data.request.request_from_params``), which validates them again.
Options and rules: docs/ingest.md.
"""

from __future__ import annotations

from airflow.sdk import Param

SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.\-_=/:^]{0,39}$"
"""A ticker as the lake accepts it (``trading_core.data.schema.SYMBOL_RE``; tests/test_security.py checks)."""


def market_data_params() -> dict[str, Param]:
    """The market_data DAG's Params, fresh on each call (a DAG owns its Param objects)."""
    return {
        "source": Param(
            "synthetic",
            type="string",
            enum=["synthetic", "csv", "yfinance", "polygon"],
            description="Where the bars come from.",
        ),
        "symbols": Param(
            [],
            type="array",
            items={"type": "string", "pattern": SYMBOL_PATTERN},
            description="Tickers, one per line; empty = all the source has (synthetic: SYN000..).",
        ),
        "start": Param(None, type=["null", "string"], format="date", description="First date (YYYY-MM-DD)."),
        "end": Param(None, type=["null", "string"], format="date", description="Last date; empty = run date."),
        "lookback_days": Param(
            5, type="integer", minimum=1, maximum=3650, description="Days before the run date when start is empty."
        ),
        "interval": Param(
            None,
            type=["null", "string"],
            enum=[None, "1d", "1h", "30m", "15m", "5m", "1m"],
            description="Bar interval; empty = inferred from a file's timestamps (1d for the other sources).",
        ),
        "path": Param(None, type=["null", "string"], description="File for source=csv (CSV, CSV.gz, Parquet)."),
        "layout": Param("auto", type="string", description="File layout for source=csv (auto-detected by default)."),
        "columns": Param(
            None,
            type=["null", "object"],
            description='Column mapping for source=csv completing the auto-detection, e.g. {"timestamp": "Date/Time"}.',
        ),
        "calendar": Param(
            None, type=["null", "string"], description="Session calendar (XNYS, 24/7, weekdays); empty = the source's."
        ),
        "tz": Param(
            None,
            type=["null", "string"],
            description="Time zone of a file's naive timestamps (e.g. America/New_York); empty = the calendar's.",
        ),
        "session": Param(
            None,
            type=["null", "string"],
            enum=[None, "regular", "extended"],
            description="Intraday exchange bars: regular (default) filters pre/after-market bars, extended keeps them.",
        ),
        "adj_close": Param(
            "ignore",
            type="string",
            enum=["ignore", "use"],
            description="A file's adjusted close: ignore (raw prices) or use (prices scaled, feed csv-<layout>-adj).",
        ),
        "n_assets": Param(20, type="integer", minimum=1, maximum=2000, description="Synthetic universe size."),
        "seed": Param(None, type=["null", "integer"], description="Synthetic market seed (default: settings)."),
        "signal_strength": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=0.99,
            description="Synthetic predictable component (corr. of momentum with next return).",
        ),
        "defect_rate": Param(
            0.0,
            type="number",
            minimum=0,
            maximum=0.49,
            description="Share of synthetic bars damaged like a bad vendor feed.",
        ),
        "max_bad_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail the run when quarantined rows exceed this share.",
        ),
    }
