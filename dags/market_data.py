"""
### Market data ingest: provider -> validation -> lake

Fetches OHLCV bars from a **source** (`synthetic` market, a `csv`/Parquet file, `yfinance`,
`polygon`), applies the named validation rules (bad rows go to quarantine in the app DB with rule
and reason; the run fails when the quarantined share exceeds `max_bad_share`), upserts the clean
bars into the Parquet lake and records a content-hashed **dataset_version** with its lineage.

* **Schedule**: daily; a scheduled run ingests `lookback_days` up to its run date.
* **Manual trigger**: fill the form (source, symbols, start/end, thresholds; for files the column
  mapping, calendar, time zone of naive timestamps, session filter and adjusted-close choice).
* **Output**: Asset `ohlcv`, event extra `{dataset_version, feed, interval, symbols, start, end}`.
* Same functions on the command line: `trading ingest --source synthetic --start 2024-01-01 --end 2024-06-30`.
* Ingest rules, header aliases and intraday options: docs/ingest.md.
* Polygon reads its key from the Airflow connection `polygon_default` (password) or `TRADING_POLYGON_API_KEY`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task
from market_data_params import market_data_params
from trading_assets import DEFAULT_ARGS, OHLCV
from trading_context import task_settings


@dag(
    dag_id="market_data",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "ingest"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params=market_data_params(),  # the form: dags/market_data_params.py
)
def market_data() -> None:
    @task
    def plan(**context: Any) -> dict[str, Any]:
        """Turn params (or the schedule) into a validated ingest request."""
        from trading_core.data.request import request_from_params

        run_after = context["dag_run"].run_after or context["logical_date"]
        return request_from_params(context["params"], run_after.date()).model_dump(mode="json")

    @task
    def fetch(request: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Fetch raw bars into staging; the run id is stable across retries."""
        from dataclasses import asdict

        from trading_core.data.ingest import fetch_to_staging, run_id_for
        from trading_core.data.request import IngestRequest

        overrides: dict[str, Any] = {}
        if request["source"] == "polygon":
            from contextlib import suppress

            from airflow.sdk import Connection
            from airflow.sdk.exceptions import AirflowNotFoundException

            with suppress(AirflowNotFoundException):  # no connection: TRADING_POLYGON_API_KEY applies
                overrides["polygon_api_key"] = Connection.get("polygon_default").password
        staged = fetch_to_staging(
            IngestRequest.model_validate(request),
            task_settings(**overrides),
            run_id=run_id_for(context["dag"].dag_id, context["run_id"]),
        )
        return asdict(staged)

    @task
    def validate(staged: dict[str, Any]) -> dict[str, Any]:
        """Apply the validation rules; quarantine bad rows; fail over the bad-row budget."""
        from dataclasses import asdict

        from trading_core.data.ingest import StagedBatch, validate_staged

        return asdict(validate_staged(StagedBatch(**staged), task_settings()))

    @task(outlets=[OHLCV])
    def publish(validated: dict[str, Any], *, outlet_events: Any) -> dict[str, Any]:
        """Upsert into the lake, record the dataset version, announce it on the ohlcv Asset."""
        from trading_core.data.ingest import ValidatedBatch
        from trading_core.data.ingest import publish as publish_batch

        result = publish_batch(ValidatedBatch(**validated), task_settings())
        outlet_events[OHLCV].extra = {
            key: getattr(result, key)
            for key in ("dataset_version", "feed", "interval", "symbols", "start", "end", "rows")
        }
        return result.as_reference()

    publish(validate(fetch(plan())))


market_data()
