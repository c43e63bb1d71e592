"""The messages on the wire: a bar in, a decision out, a dead letter for what could not be used.

All three are versioned JSON (pydantic models, ``extra="forbid"``): a message of another schema version
is refused and dead-lettered, never half-read. ``BarMessage.model_json_schema()`` exports the contract for
publishers in other languages; docs/serving.md has the table (a test keeps it equal to the model).

* :class:`BarMessage` on ``bars.<interval>.<symbol token>`` (stream ``BARS``): one OHLCV bar, its
  ``timestamp`` the bar's start in UTC, as in the lake. Construction checks what a bar must satisfy on
  its own (finite, positive prices, non-negative volume, the OHLC order with the ingest's tolerance).
* :class:`DecisionMessage` on ``decisions.<policy token>`` (stream ``DECISIONS``): what a policy decided
  for one bar time, with a free-form ``payload`` the decision loop fills (target weights, risk decision,
  reasons) and ``flags`` (e.g. symbols missing from the slice).
* :class:`DeadLetter` on ``dlq.bars`` (stream ``DLQ``): the original bytes, where they came from, a
  reason code (:class:`DeadLetterReason`) and a sentence for people.

Each has an ``idempotency_id``, sent as the ``Nats-Msg-Id`` header, so a message published twice inside
the stream's duplicate window is stored once (a retried replay, a decision re-published after a restart).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import INTERVALS, SYMBOL_RE

BAR_SCHEMA_VERSION: Final = 1
DECISION_SCHEMA_VERSION: Final = 1
DEAD_LETTER_SCHEMA_VERSION: Final = 1

OHLC_TOLERANCE = ValidationPolicy.model_fields["ohlc_tolerance"].default
"""Relative tolerance of the OHLC order check: the ingest's (``ValidationPolicy.ohlc_tolerance``)."""

_Price = Field(strict=True, allow_inf_nan=False, gt=0.0)
_NAME = r"^[A-Za-z0-9_.:@-]{1,100}$"


def _utc(value: datetime) -> datetime:
    """``value`` in UTC as a plain ``datetime`` (a pandas Timestamp is converted: one type on every path)."""
    value = value.astimezone(UTC)
    to_pydatetime = getattr(value, "to_pydatetime", None)
    return to_pydatetime() if callable(to_pydatetime) else value


class BarMessage(BaseModel):
    """One OHLCV bar as published on ``bars.<interval>.<symbol token>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = BAR_SCHEMA_VERSION
    """Version of this layout; a consumer refuses (dead-letters) any other (``true`` or ``1.0`` included)."""
    symbol: str
    """Ticker, as in the lake (``trading_core.data.schema.SYMBOL_RE``: e.g. ``BRK.B``, ``BTC/USD``, ``^GSPC``)."""
    interval: str
    """Bar interval, one of ``trading_core.data.schema.INTERVALS`` (``1d``, ``1h``, ``5m``...)."""
    timestamp: AwareDatetime
    """Bar start, ISO 8601 with a UTC offset (normalised to UTC); a naive time is refused."""
    open: float = _Price
    high: float = _Price
    low: float = _Price
    close: float = _Price
    volume: float = Field(strict=True, allow_inf_nan=False, ge=0.0)
    """Traded volume (0 allowed: a halted or illiquid bar; the ingest flags it, it does not refuse it)."""

    @field_validator("schema_version", mode="before")
    @classmethod
    def _version_is_an_integer(cls, value: Any) -> Any:
        if type(value) is not int:  # Literal[1] alone would take true and 1.0
            raise PydanticCustomError("literal_error", "schema_version must be the integer 1, got {value!r}",
                                      {"value": value})  # fmt: skip
        return value

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        if not SYMBOL_RE.fullmatch(value) or ".." in value:
            raise PydanticCustomError(
                "invalid_symbol",
                "invalid symbol '{symbol}': expected 1-40 letters, digits and . - _ = / : ^ (no '..')",
                {"symbol": value},
            )
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if value not in INTERVALS:
            raise PydanticCustomError(
                "invalid_interval", "invalid interval '{interval}': expected one of {known}",
                {"interval": value, "known": ", ".join(sorted(INTERVALS))},
            )  # fmt: skip
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ohlc_order(self, info: ValidationInfo) -> BarMessage:
        # The ingest's rule (trading_core.data.validation, rule ohlc_order), with its tolerance.
        tol = float((info.context or {}).get("ohlc_tolerance", OHLC_TOLERANCE))
        body_hi, body_lo = max(self.open, self.close), min(self.open, self.close)
        problems = []
        if self.high < body_hi * (1 - tol):
            problems.append(f"high {self.high:.6g} < max(open, close) {body_hi:.6g}")
        if self.low > body_lo * (1 + tol):
            problems.append(f"low {self.low:.6g} > min(open, close) {body_lo:.6g}")
        if self.low > self.high:
            problems.append(f"low {self.low:.6g} > high {self.high:.6g}")
        if problems:
            raise PydanticCustomError("ohlc_order", "{problems}", {"problems": "; ".join(problems)})
        return self

    @property
    def idempotency_id(self) -> str:
        """``bar:<interval>:<symbol>:<bar start>``: the ``Nats-Msg-Id`` of this bar."""
        return f"bar:{self.interval}:{self.symbol}:{self.timestamp.isoformat()}"

    @property
    def key(self) -> tuple[str, datetime]:
        """``(symbol, bar start)``: what makes two bars the same bar."""
        return self.symbol, self.timestamp


class DecisionMessage(BaseModel):
    """What one policy decided for one bar time, as published on ``decisions.<policy token>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = DECISION_SCHEMA_VERSION
    policy: str = Field(pattern=_NAME)
    """Policy (registered model) name; its token is the subject's last level."""
    model_version: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Registry version that decided."""
    account: str = Field(pattern=_NAME)
    """Paper account the decision is booked on."""
    bar_time: AwareDatetime
    """Start (UTC) of the bar time decided at."""
    decided_at: AwareDatetime | None = None
    """When the decision was made (wall clock, UTC); not part of the idempotency id."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """What the loop decided: per-symbol target weights, the risk decision, reasons (JSON values)."""
    flags: list[str] = Field(default_factory=list)
    """Conditions a reader must know, e.g. ``missing:BRK.B`` for a symbol absent at the deadline."""

    @field_validator("bar_time", "decided_at")
    @classmethod
    def _times(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @property
    def idempotency_id(self) -> str:
        """``decision:<policy>:<version>:<account>:<bar time>``: one decision per (policy version, account, bar)."""
        return f"decision:{self.policy}:{self.model_version}:{self.account}:{self.bar_time.isoformat()}"


class DeadLetterReason(StrEnum):
    """Why a bar message was dead-lettered. The first group is checked by the transport on every message;
    the second needs the service's state and is applied by the decision loop through the same path."""

    MALFORMED_JSON = "malformed_json"
    """Not UTF-8 JSON, not a JSON object, or larger than a bar can be."""
    SCHEMA_VERSION = "schema_version"
    """``schema_version`` is not one this service reads."""
    MISSING_FIELD = "missing_field"
    EXTRA_FIELD = "extra_field"
    INVALID_FIELD = "invalid_field"
    """Wrong type (a price as a string, a naive or unparseable timestamp...)."""
    INVALID_SYMBOL = "invalid_symbol"
    INVALID_INTERVAL = "invalid_interval"
    NON_FINITE_VALUE = "non_finite_value"
    """NaN or infinity in a price or the volume."""
    NON_POSITIVE_PRICE = "non_positive_price"
    NEGATIVE_VOLUME = "negative_volume"
    OHLC_ORDER = "ohlc_order"
    """high < low, or high/low not bracketing open and close."""
    INVALID_SUBJECT = "invalid_subject"
    """The subject is not ``bars.<interval>.<symbol token>``."""
    SUBJECT_MISMATCH = "subject_mismatch"
    """The subject's interval or symbol disagrees with the body's."""
    # Applied by the decision loop (it knows the universe and what it has decided):
    UNKNOWN_SYMBOL = "unknown_symbol"
    STALE_BAR = "stale_bar"
    """Older than (or at) the last bar time decided."""
    DUPLICATE_BAR = "duplicate_bar"
    """A second bar for a (symbol, bar time) already in the slice."""


@dataclass(frozen=True)
class Delivery:
    """Where a received message came from: the transport's delivery metadata and the original bytes."""

    subject: str
    raw: bytes
    stream: str
    stream_seq: int
    """Position in the stream (the in-process transport counts the same way, from 1)."""
    deliveries: int
    """1 on the first delivery; more after a nak, an expired ack wait or a consumer restart."""
    received_at: datetime


class DeadLetter(BaseModel):
    """A message that could not be used, with its original bytes and the reason, on ``dlq.bars``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = DEAD_LETTER_SCHEMA_VERSION
    reason: DeadLetterReason
    """Reason code (see :class:`DeadLetterReason`)."""
    detail: str
    """What was wrong, for people: the field, the value, what was expected."""
    subject: str
    """Subject the message arrived on."""
    raw: str
    """The original message: its text when it is UTF-8, else base64 (``raw_encoding``)."""
    raw_encoding: Literal["utf-8", "base64"]
    received_at: AwareDatetime
    stream: str | None = None
    stream_seq: int | None = None
    deliveries: int | None = None
    symbol: str | None = None
    """The bar's symbol when it could be read."""
    bar_time: AwareDatetime | None = None
    """The bar's start when it could be read."""

    def raw_bytes(self) -> bytes:
        """The original message, byte for byte."""
        return self.raw.encode("utf-8") if self.raw_encoding == "utf-8" else base64.b64decode(self.raw)

    @property
    def idempotency_id(self) -> str:
        """``dlq:<stream>:<seq>`` for a stream message (dead-lettered once however often it is redelivered),
        else a hash of subject and bytes."""
        if self.stream is not None and self.stream_seq is not None:
            return f"dlq:{self.stream}:{self.stream_seq}"
        digest = hashlib.sha256(self.subject.encode() + b"\0" + self.raw_bytes()).hexdigest()[:32]
        return f"dlq:{digest}"


def encode_raw(raw: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    """``(text, encoding)`` for :attr:`DeadLetter.raw`: the text when ``raw`` is UTF-8, else base64."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def bar_json(bar: BarMessage) -> bytes:
    """The wire form of a bar (compact JSON; floats round-trip exactly)."""
    return bar.model_dump_json().encode()


def message_schemas() -> dict[str, dict[str, Any]]:
    """JSON schemas of the three messages, by name (for publishers in other languages)."""
    return {m.__name__: m.model_json_schema() for m in (BarMessage, DecisionMessage, DeadLetter)}
