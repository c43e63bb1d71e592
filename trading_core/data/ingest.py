"""The ingest stage: ``(source, symbols, start, end) -> dataset_version``.

Three steps, each a plain function the DAG runs as its own task (they hand each other small
references, never frames) and :func:`ingest` composes for the CLI and tests:

1. :func:`fetch_to_staging`: the provider's raw bars to ``<staging>/<run>/raw.parquet``;
2. :func:`validate_staged`: rules -> quarantine in the DB, clean bars to ``clean.parquet``; fails the
   run (lake untouched) when the bad share exceeds the policy;
3. :func:`publish`: upsert into the lake, hash the resulting slice into ``dataset_version``, record
   lineage, clear staging.

Every step is idempotent by ``run_id``: a retried task overwrites what its last attempt wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trading_core.config import Settings
from trading_core.data.lake import Lake, UpsertStats, content_hash
from trading_core.data.providers import OHLCVProvider, build_provider
from trading_core.data.providers.files import FileProvider
from trading_core.data.providers.synthetic import SyntheticProvider
from trading_core.data.request import IngestRequest
from trading_core.data.schema import NUMERIC_COLUMNS, SCHEMA_ERROR
from trading_core.data.validation import validate_bars
from trading_core.db import lineage, upgrade_database
from trading_core.errors import ConfigError, DataQualityError, DatasetIntegrityError, ProviderError

log = logging.getLogger(__name__)
# First character alphanumeric: '.' and '..' would make the run's staging folder the staging root
# or the platform home, which publish() then deletes.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,63}$")


@dataclass(frozen=True)
class StagedBatch:
    """Reference to fetched, not yet validated bars."""

    run_id: str
    request: dict[str, Any]
    feed: str
    interval: str
    calendar: str
    raw_path: str
    rows: int


@dataclass(frozen=True)
class ValidatedBatch:
    """Reference to validated bars waiting to be published."""

    run_id: str
    request: dict[str, Any]
    feed: str
    interval: str
    clean_path: str
    rows_read: int
    rows_clean: int
    rows_quarantined: int
    quarantined_by_rule: dict[str, int]
    flagged_by_rule: dict[str, int]
    bad_share: float
    rows_outside_session: int = 0
    """Bars outside the exchange's regular session, filtered (not quarantined, not in bad_share):
    rows_read == rows_clean + rows_quarantined + rows_outside_session."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingest produced: the dataset version and enough lineage to find everything again."""

    run_id: str
    dataset_version: str
    new_dataset: bool
    feed: str
    interval: str
    symbols: list[str]
    start: str
    end: str
    rows: int
    rows_read: int
    rows_quarantined: int
    quarantined_by_rule: dict[str, int]
    flagged_by_rule: dict[str, int]
    upsert: dict[str, int]
    lake_dir: str
    rows_clean: int = 0
    rows_outside_session: int = 0
    """rows_read == rows_clean + rows_quarantined + rows_outside_session (see ValidatedBatch)."""

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and Asset-event extras."""
        return asdict(self)


def new_run_id() -> str:
    return uuid.uuid4().hex


def run_id_for(*parts: str) -> str:
    """A DB-safe run id from an external identity (e.g. Airflow dag_id + run_id), stable across retries."""
    text = ":".join(parts)
    clean = re.sub(r"[^A-Za-z0-9_.:+\-]", "_", text)
    return clean if len(clean) <= 64 else clean[:47] + "-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def feed_name(request: IngestRequest, provider: OHLCVProvider) -> str:
    """The lake feed the request's bars belong to (see trading_core.data.lake)."""
    if isinstance(provider, SyntheticProvider):
        return "synthetic-" + hashlib.sha256(repr(provider.config).encode()).hexdigest()[:10]
    if isinstance(provider, FileProvider):
        # Adjusted prices are another series than raw ones: they never share a lake partition.
        return f"csv-{provider.layout.name}" + ("-adj" if provider.adjusted else "")
    return request.source


def _run_dir(settings: Settings, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise ConfigError(f"invalid run id {run_id!r}")
    return settings.staging_dir / run_id


def _staged_file(settings: Settings, path: str, field: str) -> Path:
    """A staged file named by a batch reference (XCom): it must lie in a run folder under staging."""
    resolved = Path(path).resolve()
    staging = settings.staging_dir.resolve()
    if resolved.parent.parent != staging or not _RUN_ID.match(resolved.parent.name):
        raise ConfigError(f"invalid {field} {path!r}: not a file in a run folder under {staging}")
    return resolved


def fetch_to_staging(request: IngestRequest, settings: Settings, run_id: str | None = None) -> StagedBatch:
    """Fetch raw bars with the request's provider and stage them; records the run.

    A file's interval (and so the run's) is known only once its timestamps are read, so the run is
    recorded after the fetch; a fetch that fails is recorded as a failed run with its error.
    """
    run_id = run_id or new_run_id()
    run_dir = _run_dir(settings, run_id)
    settings.ensure_dirs()
    url = settings.resolved_database_url
    upgrade_database(url)
    request_json = request.model_dump(mode="json")
    feed: str = request.source
    interval = request.interval or "1d"
    try:
        provider = build_provider(request, settings)
        feed = feed_name(request, provider)
        wanted = request.interval if isinstance(provider, FileProvider) else interval
        frame = provider.fetch(list(request.symbols), request.start, request.end, wanted)  # type: ignore[arg-type]
        interval = getattr(provider, "interval", None) or interval
        if frame.empty:
            raise ProviderError(f"{request.describe()}: the provider returned no bars")
        run_dir.mkdir(parents=True, exist_ok=True)
        raw_path = run_dir / "raw.parquet"
        _stage(frame, raw_path)
    except Exception as exc:
        _fail(url, run_id, exc, dict(source=request.source, feed=feed, interval=interval, request=request_json))
        raise
    lineage.start_run(url, run_id, source=request.source, feed=feed, interval=interval, request=request_json)
    log.info("fetched %d rows for %s (%s bars) into %s", len(frame), request.describe(), interval, raw_path)
    return StagedBatch(
        run_id, request_json, feed, interval, request.calendar or provider.calendar, str(raw_path), len(frame)
    )


def _stage(frame: pd.DataFrame, path: Path) -> None:
    """Write raw bars as they came; columns with junk stay text so validation can quote them."""
    out = frame.copy()
    for col in [*NUMERIC_COLUMNS, "symbol", SCHEMA_ERROR]:
        if col in out.columns and out[col].dtype == object:
            out[col] = out[col].astype("string")
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False)
    tmp.replace(path)


def validate_staged(batch: StagedBatch, settings: Settings) -> ValidatedBatch:
    """Validate staged bars; quarantine goes to the DB even when the run then fails."""
    url = settings.resolved_database_url
    try:
        request = IngestRequest.model_validate(batch.request)
        raw = pd.read_parquet(_staged_file(settings, batch.raw_path, "raw_path"))
        for col in [*NUMERIC_COLUMNS, "symbol", SCHEMA_ERROR]:
            if col in raw.columns and isinstance(raw[col].dtype, pd.StringDtype):
                raw[col] = raw[col].astype(object).where(raw[col].notna(), None)
        result = validate_bars(raw, batch.calendar, batch.interval, request.policy, session=request.session)
        report = result.report
        lineage.save_validation(url, batch.run_id, result.quarantine, report.to_dict())
        report.raise_if_failed(f"ingest run {batch.run_id} ({request.describe()})")
        if report.rows_clean == 0:
            raise DataQualityError(f"ingest run {batch.run_id} ({request.describe()}): no clean rows left")
        clean_path = _staged_file(settings, batch.raw_path, "raw_path").with_name("clean.parquet")
        result.clean.to_parquet(clean_path.with_suffix(".tmp"), index=False)
        clean_path.with_suffix(".tmp").replace(clean_path)
    except Exception as exc:
        _fail(url, batch.run_id, exc)
        raise
    return ValidatedBatch(
        batch.run_id,
        batch.request,
        batch.feed,
        batch.interval,
        str(clean_path),
        report.rows_read,
        report.rows_clean,
        report.rows_quarantined,
        report.quarantined_by_rule,
        report.flagged_by_rule,
        report.bad_share,
        report.rows_outside_session,
    )


def _fail(url: str, run_id: str, exc: BaseException, started: dict[str, Any] | None = None) -> None:
    """Record the run as failed with its error (a DataQualityError's message stands on its own).

    ``started``: the run's fields when it is not recorded yet (a fetch that failed). A failure to
    record is logged, never raised: the caller re-raises the error that matters.
    """
    error = str(exc) if isinstance(exc, DataQualityError) else f"{type(exc).__name__}: {exc}"
    try:
        if started is not None:
            lineage.start_run(url, run_id, **started)
        lineage.finish_run(url, run_id, status="failed", error=error)
    except Exception as record_exc:  # noqa: BLE001 - the original error is re-raised by the caller
        log.warning("could not record ingest run %s as failed (%s): %s", run_id, record_exc, error)


def publish(batch: ValidatedBatch, settings: Settings) -> IngestResult:
    """Upsert clean bars into the lake and record the resulting dataset version."""
    url = settings.resolved_database_url
    try:
        return _publish(batch, settings, url)
    except Exception as exc:
        _fail(url, batch.run_id, exc)
        raise


def _publish(batch: ValidatedBatch, settings: Settings, url: str) -> IngestResult:
    clean_path = _staged_file(settings, batch.clean_path, "clean_path")  # its folder is deleted below
    clean = pd.read_parquet(clean_path)
    lake = Lake(settings.lake_dir)
    stats: UpsertStats = lake.upsert(batch.feed, batch.interval, clean)
    symbols = sorted(clean["symbol"].unique().tolist())
    request = IngestRequest.model_validate(batch.request)
    start = pd.Timestamp(request.start, tz="UTC") if request.start else clean["timestamp"].min()
    end = (
        (pd.Timestamp(request.end, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(1, "us"))
        if request.end
        else clean["timestamp"].max()
    )
    dataset = lake.read(batch.feed, batch.interval, symbols, start, end)
    version = "ds-" + content_hash(dataset, batch.feed, batch.interval)[:20]
    missing = sorted(set(request.symbols) - set(symbols))
    new = lineage.record_dataset(
        url,
        version=version,
        feed=batch.feed,
        interval=batch.interval,
        symbols=symbols,
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        row_count=len(dataset),
        run_id=batch.run_id,
        lineage={
            "source": request.source,
            "request": batch.request,
            "rows_read": batch.rows_read,
            "rows_clean": batch.rows_clean,
            "rows_quarantined": batch.rows_quarantined,
            "rows_outside_session": batch.rows_outside_session,
            "quarantined_by_rule": batch.quarantined_by_rule,
            "flagged_by_rule": batch.flagged_by_rule,
            "symbols_without_data": missing,
        },
        rows_quarantined=batch.rows_quarantined,
        bad_share=batch.bad_share,
    )
    lineage.finish_run(url, batch.run_id, status="succeeded", dataset_version=version)
    shutil.rmtree(clean_path.parent, ignore_errors=True)
    result = IngestResult(
        run_id=batch.run_id,
        dataset_version=version,
        new_dataset=new,
        feed=batch.feed,
        interval=batch.interval,
        symbols=symbols,
        start=start.isoformat(),
        end=end.isoformat(),
        rows=len(dataset),
        rows_read=batch.rows_read,
        rows_quarantined=batch.rows_quarantined,
        quarantined_by_rule=batch.quarantined_by_rule,
        flagged_by_rule=batch.flagged_by_rule,
        upsert=asdict(stats),
        lake_dir=str(lake.root / f"feed={batch.feed}"),
        rows_clean=batch.rows_clean,
        rows_outside_session=batch.rows_outside_session,
    )
    log.info("published %s: %d rows, %d symbols (%s)", version, len(dataset), len(symbols), json.dumps(result.upsert))
    return result


def ingest(request: IngestRequest, settings: Settings, run_id: str | None = None) -> IngestResult:
    """Fetch, validate and publish in one call (the CLI and tests; the DAG runs the steps as tasks)."""
    staged = fetch_to_staging(request, settings, run_id)
    validated = validate_staged(staged, settings)
    return publish(validated, settings)


def load_dataset(version: str, settings: Settings, verify: bool = True) -> pd.DataFrame:
    """The bars of a recorded dataset version, read from the lake (and checked against its hash)."""
    record = lineage.get_dataset(settings.resolved_database_url, version)
    start, end = pd.Timestamp(record.start), pd.Timestamp(record.end)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    frame = Lake(settings.lake_dir).read(record.feed, record.interval, list(record.symbols), start, end)
    if verify:
        actual = "ds-" + content_hash(frame, record.feed, record.interval)[:20]
        if actual != version:
            raise DatasetIntegrityError(
                f"lake content for {version} changed since it was recorded (now hashes to {actual}): "
                "a later ingest updated bars in its range; re-ingest to get a new version"
            )
    return frame


def history_dataset(version: str, settings: Settings) -> str:
    """The dataset of the lake's whole history of ``version``'s feed and symbols, up to its end.

    A scheduled ingest records the few days it fetched; indicators and models need years. The
    history slice is content-hashed and recorded like any ingest (lineage: ``derived_from``), so a
    feature set built on it is exactly as reproducible. Returns ``version`` itself when the lake
    holds nothing earlier.
    """
    url = settings.resolved_database_url
    record = lineage.get_dataset(url, version)
    end = pd.Timestamp(record.end)
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    frame = Lake(settings.lake_dir).read(record.feed, record.interval, list(record.symbols), None, end)
    derived = "ds-" + content_hash(frame, record.feed, record.interval)[:20]
    if derived == version:
        return version
    start = pd.Timestamp(frame["timestamp"].min())
    lineage.record_dataset(
        url,
        version=derived,
        feed=record.feed,
        interval=record.interval,
        symbols=list(record.symbols),
        start=start.to_pydatetime(),
        end=end.to_pydatetime(),
        row_count=len(frame),
        run_id=record.first_run_id,
        lineage={"derived_from": version, "selection": "lake history of the feed's symbols up to the dataset's end"},
        rows_quarantined=0,
        bad_share=0.0,
    )
    log.info("%s extended to the lake's history: %s (%d rows from %s)", version, derived, len(frame), start.date())
    return derived
