"""An incoming bar message becomes a :class:`BarMessage` or a :class:`DeadLetter`, never an exception.

:func:`validate_bar` applies, in order: the size and JSON syntax, the schema version, the model (fields
present, no extra ones, types, the symbol and interval rules, finite positive prices, non-negative volume,
the OHLC order with the ingest's tolerance), then the subject (``bars.<interval>.<symbol token>`` that
agrees with the body). The first failing check names the :class:`DeadLetterReason`; the detail lists
every problem the model found.

The checks that need the service's state (a symbol outside the universe, a bar not after the last one
decided, a duplicate bar) belong to the decision loop: it builds its dead letter with :func:`dead_letter`
(or :meth:`~trading_core.serving.transport.base.ReceivedBar.reject`), so every dead letter has one shape.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from pydantic import ValidationError

from trading_core.data.request import ValidationPolicy
from trading_core.serving.messages import (
    BAR_SCHEMA_VERSION,
    BarMessage,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    encode_raw,
)
from trading_core.serving.subjects import SubjectError, Subjects

MAX_BAR_BYTES = 4096
"""A bar is ~200 bytes of JSON; anything this large is not one (and is not parsed)."""

_PRICES = frozenset({"open", "high", "low", "close"})
# Pydantic error type -> reason, most fundamental first (the first one found names the dead letter).
_BY_TYPE: tuple[tuple[str, DeadLetterReason], ...] = (
    ("missing", DeadLetterReason.MISSING_FIELD),
    ("extra_forbidden", DeadLetterReason.EXTRA_FIELD),
    ("invalid_symbol", DeadLetterReason.INVALID_SYMBOL),
    ("invalid_interval", DeadLetterReason.INVALID_INTERVAL),
    ("finite_number", DeadLetterReason.NON_FINITE_VALUE),
    ("ohlc_order", DeadLetterReason.OHLC_ORDER),
)


class BarRejected(Exception):
    """Internal: a check failed (reason, detail); :func:`validate_bar` turns it into a dead letter."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def dead_letter(
    delivery: Delivery,
    reason: DeadLetterReason | str,
    detail: str,
    *,
    symbol: str | None = None,
    bar_time: datetime | None = None,
) -> DeadLetter:
    """The dead letter of a delivered message: original bytes, subject, stream position, reason and detail."""
    raw, encoding = encode_raw(delivery.raw)
    return DeadLetter(
        reason=DeadLetterReason(reason),
        detail=detail,
        subject=delivery.subject,
        raw=raw,
        raw_encoding=encoding,
        received_at=delivery.received_at,
        stream=delivery.stream,
        stream_seq=delivery.stream_seq,
        deliveries=delivery.deliveries,
        symbol=symbol,
        bar_time=bar_time,
    )


def validate_bar(
    delivery: Delivery, subjects: Subjects, policy: ValidationPolicy | None = None
) -> BarMessage | DeadLetter:
    """The bar in ``delivery``, or the dead letter saying why it is not one (see the module docstring)."""
    try:
        bar = _parse(delivery.raw, (policy or _DEFAULT_POLICY).ohlc_tolerance)
        _check_subject(delivery.subject, bar, subjects)
        return bar
    except BarRejected as rejected:
        symbol, bar_time = _identity(delivery.raw)
        return dead_letter(delivery, rejected.reason, rejected.detail, symbol=symbol, bar_time=bar_time)


_DEFAULT_POLICY = ValidationPolicy()


def _parse(raw: bytes, ohlc_tolerance: float) -> BarMessage:
    if len(raw) > MAX_BAR_BYTES:
        size = f"message of {len(raw)} bytes: a bar is at most {MAX_BAR_BYTES}"
        raise BarRejected(DeadLetterReason.MALFORMED_JSON, size)
    # Fast path (one parse, in pydantic's JSON parser): a good bar that states its schema version. Anything
    # else goes through the checks below, which name the reason.
    try:
        bar = BarMessage.model_validate_json(raw, context={"ohlc_tolerance": ohlc_tolerance})
    except ValidationError:
        pass
    else:
        if "schema_version" in bar.model_fields_set:
            return bar
    return _diagnose(raw, ohlc_tolerance)


def _diagnose(raw: bytes, ohlc_tolerance: float) -> BarMessage:
    if len(raw) > MAX_BAR_BYTES:
        raise BarRejected(
            DeadLetterReason.MALFORMED_JSON, f"message of {len(raw)} bytes: a bar is at most {MAX_BAR_BYTES}"
        )
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BarRejected(DeadLetterReason.MALFORMED_JSON, f"not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BarRejected(DeadLetterReason.MALFORMED_JSON, f"expected a JSON object, got {type(body).__name__}")
    if "schema_version" not in body:
        raise BarRejected(DeadLetterReason.MISSING_FIELD, "field 'schema_version' is missing")
    version = body["schema_version"]
    if type(version) is not int or version != BAR_SCHEMA_VERSION:
        raise BarRejected(
            DeadLetterReason.SCHEMA_VERSION,
            f"schema_version {version!r} is not supported: this service reads version {BAR_SCHEMA_VERSION}",
        )
    try:
        return BarMessage.model_validate(body, context={"ohlc_tolerance": ohlc_tolerance})
    except ValidationError as exc:
        raise BarRejected(_reason(exc), _describe(exc)) from None


def _reason(exc: ValidationError) -> DeadLetterReason:
    errors = exc.errors()
    types = {e["type"] for e in errors}
    for error_type, reason in _BY_TYPE:
        if error_type in types:
            return reason
    for e in errors:
        field = e["loc"][0] if e["loc"] else ""
        if e["type"] == "greater_than" and field in _PRICES:
            return DeadLetterReason.NON_POSITIVE_PRICE
        if e["type"] == "greater_than_equal" and field == "volume":
            return DeadLetterReason.NEGATIVE_VOLUME
    return DeadLetterReason.INVALID_FIELD


def _describe(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        value = "" if e["type"] in {"missing", "ohlc_order"} else f" (got {e.get('input')!r:.60})"
        parts.append(f"{'field ' + repr(where) + ': ' if where else ''}{e['msg']}{value}")
    return "; ".join(parts)


def _check_subject(subject: str, bar: BarMessage, subjects: Subjects) -> None:
    try:
        interval, symbol = subjects.parse_bar(subject)
    except SubjectError as exc:
        raise BarRejected(DeadLetterReason.INVALID_SUBJECT, str(exc)) from None
    if (interval, symbol) != (bar.interval, bar.symbol):
        raise BarRejected(
            DeadLetterReason.SUBJECT_MISMATCH,
            f"subject {subject!r} is for {symbol!r} {interval}, the body for {bar.symbol!r} {bar.interval} "
            f"(expected subject {subjects.bar(bar.interval, bar.symbol)!r})",
        )


def _identity(raw: bytes) -> tuple[str | None, datetime | None]:
    """Symbol and bar start of a rejected message when they can be read (for people reading the DLQ)."""
    try:
        body = json.loads(raw) if len(raw) <= MAX_BAR_BYTES else None
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    symbol = body.get("symbol") if isinstance(body.get("symbol"), str) else None
    try:
        stamp = datetime.fromisoformat(body["timestamp"]) if isinstance(body.get("timestamp"), str) else None
    except ValueError:
        stamp = None
    bar_time = stamp.astimezone(UTC) if stamp is not None and stamp.tzinfo is not None else None
    return (symbol[:100] if symbol else None), bar_time


def now_utc() -> datetime:
    """The wall clock in UTC (received_at of deliveries)."""
    return datetime.now(UTC)
