"""Ingest the full S&P 500 daily file (619,040 rows, 505 symbols): time per stage, quarantine counts.

    .venv/bin/python benchmarks/ingest_sp500.py [--path ../shared/data/sp500_daily_2013-02-08_2018-02-07.csv.gz]

Prints one JSON line per figure. The peer is a plain ``pandas.read_csv`` of the same file (no
symbol/date filtering, no line numbers): the ratio shows what reading through the provider costs.
A second ingest of the same file measures the idempotent path (nothing rewritten).
Runs in a temporary home; nothing of the real data is kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from trading_core.config import get_settings
from trading_core.data.ingest import fetch_to_staging, publish, validate_staged
from trading_core.data.request import IngestRequest

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_daily_2013-02-08_2018-02-07.csv.gz"


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, default=DEFAULT)
    args = parser.parse_args()
    if not args.path.is_file():
        raise SystemExit(
            f"data file not found: {args.path} (not part of the repository: pass --path, "
            "see 'Real market data' in README.md)"
        )

    t0 = time.perf_counter()
    peer = pd.read_csv(args.path)
    peer_s = time.perf_counter() - t0
    emit(figure="peer_pandas_read_csv_s", value=round(peer_s, 3), rows=len(peer))
    del peer

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as home:
        settings = get_settings(home=home)
        request = IngestRequest(source="csv", path=args.path)
        timings: dict[str, float] = {}
        first_fetch_s = 0.0
        for attempt in ("first", "again"):
            t0 = time.perf_counter()
            staged = fetch_to_staging(request, settings)
            t1 = time.perf_counter()
            validated = validate_staged(staged, settings)
            t2 = time.perf_counter()
            result = publish(validated, settings)
            t3 = time.perf_counter()
            timings[attempt] = t3 - t0
            first_fetch_s = first_fetch_s or t1 - t0
            emit(
                figure=f"ingest_{attempt}",
                fetch_s=round(t1 - t0, 3),
                validate_s=round(t2 - t1, 3),
                publish_s=round(t3 - t2, 3),
                total_s=round(t3 - t0, 3),
                rows_read=result.rows_read,
                rows_in_dataset=result.rows,
                upsert=result.upsert,
            )
        emit(figure="fetch_vs_peer_ratio", value=round(first_fetch_s / peer_s, 2))
        emit(figure="rows_per_second_first_ingest", value=round(result.rows_read / timings["first"]))
        emit(
            figure="quarantine",
            rows_quarantined=result.rows_quarantined,
            by_rule=result.quarantined_by_rule,
            flagged_by_rule=result.flagged_by_rule,
            dataset_version=result.dataset_version,
        )
    emit(figure="peak_rss_mib", value=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
