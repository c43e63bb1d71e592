"""The ingest request: what to fetch, from where, and how strict validation is.

It is the one input of the ingest stage, built the same way by the CLI, the DAG (from its
params) and the tests; pydantic validates it, so a bad symbol, path or date range fails before
anything is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trading_core.data.schema import validate_interval, validate_symbol
from trading_core.data.timestamps import check_tz


class ValidationPolicy(BaseModel):
    """Thresholds of the validation rules and the bad-row budget of a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bad_share: float = Field(default=0.05, ge=0.0, le=1.0)
    """The run fails (nothing reaches the lake) when quarantined rows / rows read exceeds this."""
    jump_threshold: float = Field(default=0.4, gt=0.0)
    """|log return| between consecutive closes above which a move is 'extreme' (0.4 ≈ +49% / -33%)."""
    reversal_share: float = Field(default=0.7, gt=0.0, le=1.0)
    """An extreme move undone by at least this share on the next bar is a bad print (quarantined);
    one that persists is flagged as split-like (kept, reported)."""
    stale_run: int = Field(default=5, ge=2)
    """This many consecutive bars with an identical close and a zero range are flagged stale."""
    stale_ohlc_run: int = Field(default=3, ge=2)
    """This many consecutive bars with a bit-identical (open, high, low, close) tuple and high > low
    are flagged stale (a frozen feed whose volume keeps printing). On the real files in
    ../shared/data no tuple repeats on 4 bars; one ETF repeats one for 3 bars."""
    ohlc_tolerance: float = Field(default=1e-9, ge=0.0)
    """Relative tolerance of the OHLC order check (float rounding in vendor files)."""
    min_price: float = Field(default=1e-10, gt=0.0)
    """Absolute floor of every price field: below it a price is implausible (quarantined). Under
    the smallest quotable crypto price (1 satoshi = 1e-8 BTC) with margin."""
    max_price: float = Field(default=1e9, gt=0.0)
    """Absolute ceiling of every price field (BRK.A trades near 7e5; the real files stay under 7e4)."""
    max_volume: float = Field(default=1e17, gt=0.0)
    """Absolute ceiling of the volume (meme-coin base volumes reach ~1e15 a day)."""
    magnitude_window: int = Field(default=20, ge=2)
    """Bars of the symbol's own recent history the relative checks compare with (rolling median of
    the previous closes and of the previous positive volumes; the current bar is never included)."""
    magnitude_min_history: int = Field(default=5, ge=1)
    """Bars of history needed before the relative checks apply (earlier bars: absolute bounds only)."""
    max_price_ratio: float = Field(default=100.0, gt=1.0)
    """A price field more than this many times above (or below 1/this of) the median of the previous
    ``magnitude_window`` closes is implausible. Real files: at most 8.7x (crypto), 7.2x (S&P 500).
    A persisting level change beyond it (a 1:200 reverse split) is quarantined until the median
    catches up (half the window)."""
    max_intrabar_ratio: float = Field(default=20.0, gt=1.0)
    """Open, high or low more than this many times away from the same bar's close is implausible
    (needs no history, so it also guards a symbol's first bars). Real files: at most 8.2x."""
    max_volume_ratio: float = Field(default=1e4, gt=1.0)
    """A volume more than this many times the median of the previous positive volumes is
    implausible. Real files: at most 3,343x (a crypto day), 971x (an ETF), 489x (S&P 500)."""


class IngestRequest(BaseModel):
    """One ingest: source, symbols, dates, interval and the validation policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["synthetic", "csv", "yfinance", "polygon"] = "synthetic"
    symbols: tuple[str, ...] = ()
    """Symbols to ingest; empty means every symbol the source has (synthetic universe, whole file)."""
    start: date | None = None
    end: date | None = None
    interval: str | None = None
    """Bar interval; None: inferred from the timestamps for source='csv', '1d' for the other sources.
    Given for a file, it must agree with the inferred one (a clear error otherwise)."""
    path: Path | None = None
    """File for source='csv'."""
    layout: str = "auto"
    """File layout for source='csv' (see trading_core.data.providers.files.KNOWN_LAYOUTS)."""
    columns: dict[str, str] | None = None
    """Explicit column mapping for source='csv' (field -> column name)."""
    calendar: str | None = None
    """Override of the source's session calendar (gap checks, sessions, the zone of naive times)."""
    tz: str | None = None
    """Time zone of naive timestamps in a file; None: the calendar's zone (America/New_York for
    XNYS, UTC for 24/7 and weekdays). Values carrying an offset or zone name keep theirs."""
    session: Literal["regular", "extended"] | None = None
    """Intraday bars on an exchange calendar: 'regular' keeps the opening hours and filters pre-/
    after-market bars (counted as rows_outside_session, not quarantined); 'extended' keeps them.
    None: 'regular'. Daily bars and 24/7 / weekdays calendars are never filtered."""
    adj_close: Literal["ignore", "use"] = "ignore"
    """A file's adjusted-close column: 'ignore' (default) stores raw prices; 'use' scales open, high,
    low and close by adj_close / close into the separate feed ``csv-<layout>-adj``. Raw is the
    default because a vendor rewrites adjusted history after every dividend (re-ingesting would
    rewrite the lake and invalidate recorded dataset versions) and live bars arrive unadjusted."""
    seed: int | None = None
    """Seed of the synthetic market (default: Settings.seed)."""
    n_assets: int = Field(default=20, ge=1, le=2000)
    """Universe size of the synthetic market."""
    signal_strength: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Strength of the synthetic market's predictable component (see providers.synthetic)."""
    defect_rate: float = Field(default=0.0, ge=0.0, lt=0.5)
    """Share of synthetic bars damaged like a bad vendor feed (exercises quarantine)."""
    policy: ValidationPolicy = ValidationPolicy()

    @model_validator(mode="before")
    @classmethod
    def _default_interval(cls, data: Any) -> Any:
        # Only a file can say its interval; every other source is asked for daily bars by default.
        if isinstance(data, dict) and data.get("source", "synthetic") != "csv" and data.get("interval") is None:
            data = {**data, "interval": "1d"}
        return data

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [s for s in value.replace(" ", ",").split(",") if s]
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(validate_symbol(s) for s in value))

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        # Existence, type and TRADING_INGEST_ROOTS are checked where the file is opened (build_provider),
        # on the worker that reads it; here only what is never a valid path.
        if value is not None and (str(value) == "" or "\x00" in str(value)):
            raise ValueError(f"invalid path {str(value)!r}: empty or contains a NUL byte")
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        return None if value is None else validate_interval(value)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_tz(value)

    @model_validator(mode="after")
    def _consistent(self) -> IngestRequest:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.source == "csv" and self.path is None:
            raise ValueError("source 'csv' needs path")
        if self.source != "csv" and (self.path is not None or self.columns or self.tz or self.adj_close != "ignore"):
            raise ValueError(f"path/columns/tz/adj_close are only for source 'csv', not {self.source!r}")
        if self.source in {"synthetic", "yfinance", "polygon"} and (self.start is None or self.end is None):
            raise ValueError(f"source {self.source!r} needs start and end")
        return self

    def describe(self) -> str:
        syms = ",".join(self.symbols[:5]) + ("..." if len(self.symbols) > 5 else "") if self.symbols else "all"
        return f"{self.source}[{syms}] {self.start or '-'}..{self.end or '-'} {self.interval or 'auto'}"


def request_from_params(params: Mapping[str, Any], run_date: date) -> IngestRequest:
    """Build a request from the ingest DAG's params (UI form or trigger conf).

    A scheduled run has no dates in its params: it ingests ``lookback_days`` up to its run date,
    so a late or missed day is picked up by the next run (the lake upsert makes overlaps free).
    """
    values = {k: (None if v in ("", []) and k not in {"symbols"} else v) for k, v in params.items()}
    lookback = int(values.pop("lookback_days", None) or 5)
    policy_fields = set(ValidationPolicy.model_fields)
    policy = {k: values.pop(k) for k in list(values) if k in policy_fields and values[k] is not None}
    fields: dict[str, Any] = {k: v for k, v in values.items() if v is not None and k in IngestRequest.model_fields}
    if fields.get("source", "synthetic") != "csv":
        fields.setdefault("end", run_date)
        fields.setdefault("start", _as_date(fields["end"]) - timedelta(days=lookback))
    return IngestRequest.model_validate({**fields, "policy": ValidationPolicy.model_validate(policy)})


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
