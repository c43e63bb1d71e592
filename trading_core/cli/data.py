"""``trading ingest|datasets|quarantine``: bars into the lake, and what the lake and the quarantine hold.

trading ingest --source synthetic --start 2024-01-01 --end 2024-06-30
trading ingest --source csv --path data/sp500_daily_2013-02-08_2018-02-07.csv.gz --symbols AAPL,MSFT  # README: data
trading ingest --source csv --path bars_5m.csv --calendar XNYS --tz America/New_York   # intraday (docs/ingest.md)
trading datasets                 # recorded dataset versions
trading quarantine RUN_ID        # rejected rows of one ingest run, with rule and reason
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from trading_core.config import Settings
from trading_core.errors import ConfigError


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest, ValidationPolicy

    fields = {k: v for k, v in vars(args).items() if k in IngestRequest.model_fields and v is not None}
    if args.columns:
        try:
            fields["columns"] = json.loads(args.columns)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--columns is not JSON ({exc}); e.g. --columns '{COLUMNS_EXAMPLE}'") from None
        if not isinstance(fields["columns"], dict):
            raise ConfigError(f"--columns must be a JSON object, e.g. --columns '{COLUMNS_EXAMPLE}'")
    try:
        request = IngestRequest(**fields, policy=ValidationPolicy(max_bad_share=args.max_bad_share))
    except ValidationError as exc:  # one line: field and message, without pydantic's URLs
        problems = (f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        raise ConfigError("; ".join(problems)) from None
    result = ingest(request, settings)
    print(json.dumps(result.as_reference(), indent=2, default=str))
    return 0


COLUMNS_EXAMPLE = '{"timestamp": "Date/Time", "symbol": "Ticker", "adj_close": "Adj Close"}'


def _datasets(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    upgrade_database(settings.resolved_database_url)
    for d in lineage.list_datasets(settings.resolved_database_url, args.limit):
        print(
            f"{d.version}  {d.feed:<28} {d.interval:<4} {len(d.symbols):>4} symbols  "
            f"{d.start:%Y-%m-%d}..{d.end:%Y-%m-%d}  "
            f"{d.row_count:>8} rows  quarantined {d.rows_quarantined}  run {d.first_run_id}"
        )
    return 0


def _quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    url = settings.resolved_database_url
    upgrade_database(url)
    run = lineage.get_run(url, args.run_id)
    if run is None:
        print(f"no ingest run {args.run_id!r}", file=sys.stderr)
        return 1
    counts = lineage.quarantine_counts(url, run.id)
    outside = (run.report or {}).get("rows_outside_session") or 0
    filtered = f", {outside} outside the regular session (filtered)" if outside else ""
    print(f"run {run.id}: {run.status}, {run.rows_quarantined} of {run.rows_read} rows quarantined {counts}{filtered}")
    if run.error:
        print(f"error: {run.error}")
    for row in lineage.quarantined_rows(url, run.id, args.limit):
        print(f"  row {row.source_row}  {row.symbol}  {row.timestamp}  [{row.rule}] {row.reason}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``ingest``, ``datasets`` and ``quarantine``."""
    p = sub.add_parser("ingest", help="fetch -> validate -> lake -> dataset_version")
    p.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance", "polygon"])
    p.add_argument("--symbols", help="comma-separated tickers (default: all the source has)")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--interval", help="1d, 1h, 30m, 15m, 5m, 1m (default: a file's is inferred, else 1d)")
    p.add_argument("--path", help="file for --source csv")
    p.add_argument("--layout", default="auto")
    p.add_argument(
        "--columns",
        help=f"JSON column mapping for --source csv (completes the auto-detection), e.g. '{COLUMNS_EXAMPLE}'",
    )
    p.add_argument("--calendar", help="session calendar for gap checks (XNYS, 24/7, weekdays)")
    p.add_argument("--tz", help="zone of a file's naive timestamps (default: the calendar's; UTC for 24/7, weekdays)")
    p.add_argument(
        "--session",
        choices=["regular", "extended"],
        help="intraday exchange bars: regular filters pre/after-market bars (default), extended keeps them",
    )
    p.add_argument(
        "--adj-close",
        dest="adj_close",
        choices=["ignore", "use"],
        help="a file's adjusted close: ignore (default: raw prices) or use (prices scaled, feed csv-*-adj)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--n-assets", dest="n_assets", type=int)
    p.add_argument("--signal-strength", dest="signal_strength", type=float)
    p.add_argument("--defect-rate", dest="defect_rate", type=float)
    p.add_argument("--max-bad-share", dest="max_bad_share", type=float, default=0.05)
    p.set_defaults(func=_ingest)

    p = sub.add_parser("datasets", help="list recorded dataset versions")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_datasets)

    p = sub.add_parser("quarantine", help="show the rows an ingest run rejected")
    p.add_argument("run_id")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_quarantine)
