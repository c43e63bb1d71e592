"""The transport interface of the live service: bars in, decisions and dead letters out.

The decision loop sees four small roles, each a :class:`typing.Protocol`, all implemented by a
:class:`Transport` (:class:`~trading_core.serving.transport.jetstream.NatsTransport` or
:class:`~trading_core.serving.transport.memory.InProcessTransport`):

* :class:`BarSource`: ``await source.receive(max_bars, timeout)`` returns the validated bars that arrived
  (``[]`` at the timeout: the loop keeps its own deadlines), ``async for bar in source`` waits forever.
  Each :class:`ReceivedBar` carries its :class:`~trading_core.serving.messages.Delivery` (stream sequence,
  number of deliveries, original bytes) and is settled once: ``ack()`` **after** the decision is durably
  booked, ``nak(delay)`` to have it redelivered, ``term()`` to drop it, ``reject(reason, detail)`` to
  dead-letter it (the loop's own checks: unknown symbol, stale or duplicate bar). A bar neither acked nor
  nak'd is redelivered after the ack wait: nothing is lost when the process dies.
* :class:`BarPublisher`: ``publish_bars`` (the replay feed, a market adapter), ``Nats-Msg-Id`` = the bar's
  ``(interval, symbol, bar start)``.
* :class:`DecisionSink`: ``publish_decision``, ``Nats-Msg-Id`` = ``(policy, version, account, bar time)``.
* :class:`DeadLetterSink`: ``publish_dead_letter`` on ``dlq.bars``, ``Nats-Msg-Id`` = the stream position.

Messages that fail :func:`~trading_core.serving.validation.validate_bar` never reach the loop: the
transport publishes their dead letter, terminates them and counts them (:class:`TransportStats`).
Both implementations share this class's code for everything but moving bytes, so they behave alike.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from pydantic import ValidationError

from trading_core.data.request import ValidationPolicy
from trading_core.errors import TradingError
from trading_core.serving.messages import (
    BarMessage,
    DeadLetter,
    DeadLetterReason,
    DecisionMessage,
    Delivery,
    bar_json,
)
from trading_core.serving.subjects import Subjects
from trading_core.serving.validation import dead_letter, validate_bar

log = logging.getLogger(__name__)

StreamKind = Literal["bars", "decisions", "dlq"]
PUBLISH_CONCURRENCY = 256
"""Bars of one slice published at once (each still acknowledged by the stream before the call returns)."""


class TransportError(TradingError):
    """The broker cannot be used: unreachable, misconfigured stream, publish not acknowledged in time."""


@dataclass(frozen=True)
class PublishAck:
    """The stream's acknowledgement of a publish: stored at ``seq``, or a ``duplicate`` of an earlier one."""

    stream: str
    seq: int
    duplicate: bool


class AckHandle(Protocol):
    """How a transport settles one delivered message (NATS: the message's reply subject)."""

    async def ack(self) -> None: ...
    async def nak(self, delay: float | None) -> None: ...
    async def term(self) -> None: ...
    async def in_progress(self) -> None: ...


class RawDelivery(NamedTuple):
    delivery: Delivery
    handle: AckHandle


class ReceivedBar:
    """A validated bar, where it came from, and how to settle it (once; later calls do nothing)."""

    __slots__ = ("_handle", "_transport", "bar", "delivery", "settled")

    def __init__(self, bar: BarMessage, delivery: Delivery, handle: AckHandle, transport: Transport) -> None:
        self.bar = bar
        self.delivery = delivery
        self._handle = handle
        self._transport = transport
        self.settled: str | None = None
        """``ack``, ``nak``, ``term`` or ``reject`` once settled."""

    def __repr__(self) -> str:
        d = self.delivery
        return f"ReceivedBar({self.bar.symbol} {self.bar.timestamp:%Y-%m-%d %H:%M} seq={d.stream_seq} n={d.deliveries})"

    async def ack(self) -> None:
        """Done with it: call only after its effect is durable (the decision booked)."""
        if self.settled is None:
            await self._handle.ack()
            self._settle("ack")

    async def nak(self, delay: float | None = None) -> None:
        """Not now: redeliver it (after ``delay`` seconds), e.g. when booking failed for a retryable reason."""
        if self.settled is None:
            await self._handle.nak(delay)
            self._settle("nak")

    async def term(self) -> None:
        """Never redeliver it (without a dead letter: prefer :meth:`reject`)."""
        if self.settled is None:
            await self._handle.term()
            self._settle("term")

    def _settle(self, how: str) -> None:
        self.settled = how
        self._transport._outstanding -= 1

    async def in_progress(self) -> None:
        """Still working on it: restart its ack wait (a slow decision, e.g. a model loading)."""
        if self.settled is None:
            await self._handle.in_progress()

    async def reject(self, reason: DeadLetterReason | str, detail: str) -> DeadLetter:
        """Dead-letter it (published before it is terminated, so a crash in between redelivers, never loses)."""
        letter = dead_letter(self.delivery, reason, detail, symbol=self.bar.symbol, bar_time=self.bar.timestamp)
        if self.settled is None:
            await self._transport.publish_dead_letter(letter)
            await self._handle.term()
            self.settled = "reject"
        return letter


@runtime_checkable
class BarSource(Protocol):
    async def receive(self, max_bars: int = 256, timeout: float = 1.0) -> list[ReceivedBar]: ...
    def __aiter__(self) -> AsyncIterator[ReceivedBar]: ...


@runtime_checkable
class BarPublisher(Protocol):
    async def publish_bars(self, bars: Sequence[BarMessage]) -> list[PublishAck]: ...


@runtime_checkable
class DecisionSink(Protocol):
    async def publish_decision(self, decision: DecisionMessage) -> PublishAck: ...


@runtime_checkable
class DeadLetterSink(Protocol):
    async def publish_dead_letter(self, letter: DeadLetter) -> PublishAck: ...


@dataclass
class TransportStats:
    """Counters of one transport instance (the service exports them as metrics)."""

    received: int = 0
    """Deliveries fetched, redeliveries included."""
    redelivered: int = 0
    accepted: int = 0
    """Deliveries that passed validation and were handed to the loop."""
    dead_lettered: Counter[str] = field(default_factory=Counter)
    """By reason code: the transport's checks and the loop's rejects."""
    published: Counter[str] = field(default_factory=Counter)
    """Stored messages by stream kind (bars, decisions, dlq)."""
    duplicates: Counter[str] = field(default_factory=Counter)
    """Publishes the stream recognised as duplicates (same Nats-Msg-Id inside the window)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received, "redelivered": self.redelivered, "accepted": self.accepted,
            "dead_lettered": dict(self.dead_lettered), "published": dict(self.published),
            "duplicates": dict(self.duplicates),
        }  # fmt: skip


class Transport(ABC):
    """Shared behaviour of the transports; subclasses only move bytes (fetch, publish, tail)."""

    kind: str = "abstract"

    def __init__(self, subjects: Subjects, max_ack_pending: int, policy: ValidationPolicy | None = None) -> None:
        self.subjects = subjects
        self.max_ack_pending = max_ack_pending
        self.policy = policy or ValidationPolicy()
        self.stats = TransportStats()
        self._outstanding = 0
        """Bars handed to the loop and not settled yet (they count against the consumer's max_ack_pending)."""

    # -- lifecycle ------------------------------------------------------------------------------------
    @abstractmethod
    async def start(self) -> None:
        """Connect and make sure the streams exist (idempotent)."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection; unacknowledged bars are redelivered to the next consumer."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether bars can flow now (``/readyz``)."""

    async def __aenter__(self) -> Transport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what subclasses implement ---------------------------------------------------------------------
    @abstractmethod
    async def _fetch(self, max_msgs: int, timeout: float) -> list[RawDelivery]:
        """Up to ``max_msgs`` deliveries of the durable consumer; ``[]`` after ``timeout`` seconds."""

    @abstractmethod
    async def _publish(self, kind: StreamKind, subject: str, data: bytes, msg_id: str) -> PublishAck:
        """Store one message with its idempotency id; raise :class:`TransportError` when it cannot."""

    @abstractmethod
    def _tail(self, kind: StreamKind, subject_filter: str, from_start: bool) -> AsyncIterator[tuple[str, bytes]]:
        """``(subject, data)`` of the stream's messages: new ones, or all of them with ``from_start``."""

    # -- BarSource -------------------------------------------------------------------------------------
    async def receive(self, max_bars: int = 256, timeout: float = 1.0) -> list[ReceivedBar]:
        """The valid bars among the next deliveries (invalid ones are dead-lettered); ``[]`` at the timeout."""
        if max_bars < 1 or timeout <= 0:
            raise ValueError(f"receive needs max_bars >= 1 and timeout > 0, got {max_bars}, {timeout}")
        # Never ask for more than the consumer can deliver: a pull request the server cannot fill because of
        # max_ack_pending would be held until its timeout even though bars are there.
        accepted = []
        for raw in await self._fetch(min(max_bars, max(1, self.max_ack_pending - self._outstanding)), timeout):
            self.stats.received += 1
            self.stats.redelivered += raw.delivery.deliveries > 1
            result = validate_bar(raw.delivery, self.subjects, self.policy)
            if isinstance(result, DeadLetter):
                log.warning("dead letter %s on %s: %s", result.reason.value, raw.delivery.subject, result.detail)
                await self.publish_dead_letter(result)
                await raw.handle.term()
                continue
            self.stats.accepted += 1
            self._outstanding += 1
            accepted.append(ReceivedBar(result, raw.delivery, raw.handle, self))
        return accepted

    def __aiter__(self) -> AsyncIterator[ReceivedBar]:
        return self._forever()

    async def _forever(self) -> AsyncIterator[ReceivedBar]:
        while True:
            for bar in await self.receive():
                yield bar

    # -- publishers ------------------------------------------------------------------------------------
    async def publish_bars(self, bars: Sequence[BarMessage]) -> list[PublishAck]:
        """Publish bars (one bar time's slice, typically) and wait until the stream has stored each."""
        acks: list[PublishAck] = []
        for start in range(0, len(bars), PUBLISH_CONCURRENCY):
            chunk = bars[start : start + PUBLISH_CONCURRENCY]
            acks += await asyncio.gather(
                *(
                    self._store("bars", self.subjects.bar(b.interval, b.symbol), bar_json(b), b.idempotency_id)
                    for b in chunk
                )
            )
        return acks

    async def publish_decision(self, decision: DecisionMessage) -> PublishAck:
        subject = self.subjects.decisions(decision.policy)
        return await self._store("decisions", subject, decision.model_dump_json().encode(), decision.idempotency_id)

    async def publish_dead_letter(self, letter: DeadLetter) -> PublishAck:
        ack = await self._store("dlq", self.subjects.dlq_bars, letter.model_dump_json().encode(), letter.idempotency_id)
        if not ack.duplicate:
            self.stats.dead_lettered[letter.reason.value] += 1
        return ack

    async def _store(self, kind: StreamKind, subject: str, data: bytes, msg_id: str) -> PublishAck:
        ack = await self._publish(kind, subject, data, msg_id)
        (self.stats.duplicates if ack.duplicate else self.stats.published)[kind] += 1
        return ack

    # -- readers of the output streams (``trading stream tail``) -----------------------------------------
    async def tail_decisions(
        self, policy: str | None = None, from_start: bool = False
    ) -> AsyncIterator[DecisionMessage]:
        """Decisions as they are published (all stored ones first with ``from_start``), of one policy or all."""
        subject = self.subjects.decisions(policy) if policy else self.subjects.decisions_filter
        async for subject_seen, data in self._tail("decisions", subject, from_start):
            try:
                yield DecisionMessage.model_validate_json(data)
            except ValidationError as exc:
                log.warning("skipping a message on %s that is not a decision: %s", subject_seen, exc)

    async def tail_dead_letters(self, from_start: bool = False) -> AsyncIterator[DeadLetter]:
        """Dead letters as they are published (all stored ones first with ``from_start``)."""
        async for subject_seen, data in self._tail("dlq", self.subjects.dlq_filter, from_start):
            try:
                yield DeadLetter.model_validate_json(data)
            except ValidationError as exc:
                log.warning("skipping a message on %s that is not a dead letter: %s", subject_seen, exc)
