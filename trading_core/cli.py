"""``trading``: every stage runnable without Airflow, calling the same functions the DAGs call.

trading ingest --source synthetic --start 2024-01-01 --end 2024-06-30
trading ingest --source csv --path ../shared/data/sp500_daily_2013-02-08_2018-02-07.csv.gz --symbols AAPL,MSFT
trading datasets                 # recorded dataset versions
trading quarantine RUN_ID        # rejected rows of one ingest run, with rule and reason
trading db upgrade               # apply migrations to the app DB
trading demo                     # the ingest DAG end to end on the embedded default
trading ui                       # Airflow + MLflow UIs on the local stores
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from trading_core.config import Settings, get_settings
from trading_core.errors import TradingError

DEMO_CONF: dict[str, Any] = {
    "source": "synthetic",
    "symbols": [f"SYN{i:03d}" for i in range(8)],
    "start": "2022-01-03",
    "end": "2024-12-31",
    "defect_rate": 0.002,
}


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest, ValidationPolicy

    fields = {k: v for k, v in vars(args).items() if k in IngestRequest.model_fields and v is not None}
    if args.columns:
        fields["columns"] = json.loads(args.columns)
    request = IngestRequest(**fields, policy=ValidationPolicy(max_bad_share=args.max_bad_share))
    result = ingest(request, settings)
    print(json.dumps(result.as_reference(), indent=2, default=str))
    return 0


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
    print(f"run {run.id}: {run.status}, {run.rows_quarantined} of {run.rows_read} rows quarantined {counts}")
    if run.error:
        print(f"error: {run.error}")
    for row in lineage.quarantined_rows(url, run.id, args.limit):
        print(f"  row {row.source_row}  {row.symbol}  {row.timestamp}  [{row.rule}] {row.reason}")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage
    from trading_core.embedded import run_dag_test

    print(
        f"Running DAG market_data with airflow dags test (AIRFLOW_HOME={settings.resolved_airflow_home}) ...",
        flush=True,
    )
    run_dag_test(settings, "market_data", DEMO_CONF)
    url = settings.resolved_database_url
    dataset = lineage.latest_dataset(url)
    if dataset is None:
        raise TradingError("the demo DAG run finished but recorded no dataset")
    run = lineage.get_run(url, dataset.first_run_id)
    print("\n=== market_data: ingest finished ===")
    print(f"dataset_version : {dataset.version}")
    print(f"feed / interval : {dataset.feed} / {dataset.interval}")
    print(f"symbols         : {', '.join(dataset.symbols)}")
    print(f"range           : {dataset.start:%Y-%m-%d} .. {dataset.end:%Y-%m-%d}, {dataset.row_count} bars in the lake")
    if run is not None and run.report:
        report = run.report
        print(
            f"validation      : {report['rows_read']} read, {report['rows_quarantined']} quarantined "
            f"{report['quarantined_by_rule']}, flagged {report['flagged_by_rule']}"
        )
        print(f"quarantine      : trading quarantine {run.id}")
    print(f"lake            : {settings.lake_dir}")
    print(f"app DB          : {url}")
    print("Airflow / MLflow UIs: make ui  (Airflow http://127.0.0.1:8080, MLflow http://127.0.0.1:5000)")
    return 0


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database

    upgrade_database(settings.resolved_database_url)
    print(f"app DB at head: {settings.resolved_database_url}")
    return 0


def _ui(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.embedded import start_ui

    start_ui(settings, args.airflow_port, args.mlflow_port)
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    data = settings.model_dump(mode="json")
    data["polygon_api_key"] = "***" if settings.polygon_api_key else None
    data.update(
        database_url=settings.resolved_database_url,
        mlflow_tracking_uri=settings.resolved_mlflow_tracking_uri,
        airflow_home=str(settings.resolved_airflow_home),
        lake_dir=str(settings.lake_dir),
    )
    print(json.dumps(data, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="fetch -> validate -> lake -> dataset_version")
    p.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance", "polygon"])
    p.add_argument("--symbols", help="comma-separated tickers (default: all the source has)")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--interval", default="1d")
    p.add_argument("--path", help="file for --source csv")
    p.add_argument("--layout", default="auto")
    p.add_argument("--columns", help='JSON column mapping for --source csv, e.g. {"timestamp": "Date"}')
    p.add_argument("--calendar", help="session calendar for gap checks (XNYS, 24/7, weekdays)")
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

    p = sub.add_parser("db", help="app DB maintenance")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(func=_db)

    sub.add_parser("demo", help="run the ingest DAG end to end on the embedded default").set_defaults(func=_demo)

    p = sub.add_parser("ui", help="start Airflow standalone and MLflow UI on the local stores")
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.set_defaults(func=_ui)

    sub.add_parser("info", help="show the resolved settings").set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args, get_settings()))
    except (TradingError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
