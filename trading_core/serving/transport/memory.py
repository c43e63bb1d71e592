"""``InProcessTransport``: the transport interface over asyncio, for the embedded demo (no NATS URL).

An :class:`InProcessBroker` holds the three streams and the durable consumers in memory and emulates the
JetStream semantics the service relies on, so the decision loop cannot tell the two transports apart:

* streams with a sequence from 1 and ``Nats-Msg-Id`` deduplication inside the duplicate window;
* durable consumers by name (a new :class:`InProcessTransport` on the same broker resumes where the last
  one stopped), explicit acks, at most ``max_ack_pending`` unacknowledged deliveries, redelivery of a
  nak'd bar (after its delay) and of one not acknowledged within ``ack_wait``, ``term`` never redelivered;
* tails that see every new message (or all of them).

Not emulated: retention limits (the process's life is the limit) and persistence (nothing survives the
process; that is what NATS is for). One broker serves one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from trading_core.config import Settings
from trading_core.data.request import ValidationPolicy
from trading_core.serving.messages import Delivery
from trading_core.serving.subjects import Subjects
from trading_core.serving.transport.base import PublishAck, RawDelivery, StreamKind, Transport


@dataclass
class _Stored:
    seq: int
    subject: str
    data: bytes
    published_at: datetime


class _Stream:
    def __init__(self, name: str, duplicate_window_s: float) -> None:
        self.name = name
        self.window = duplicate_window_s
        self.messages: list[_Stored] = []
        self._ids: dict[str, tuple[int, float]] = {}
        self._prune_at = 4096

    def append(self, subject: str, data: bytes, msg_id: str, now: float) -> PublishAck:
        seen = self._ids.get(msg_id)
        if seen is not None and now - seen[1] <= self.window:
            return PublishAck(self.name, seen[0], duplicate=True)
        seq = len(self.messages) + 1
        self.messages.append(_Stored(seq, subject, data, datetime.now(UTC)))
        self._ids[msg_id] = (seq, now)
        if len(self._ids) >= self._prune_at:  # forget ids older than the window, now and then (amortised O(1))
            self._ids = {k: v for k, v in self._ids.items() if now - v[1] <= self.window}
            self._prune_at = max(4096, 2 * len(self._ids))
        return PublishAck(self.name, seq, duplicate=False)


@dataclass
class _Pending:
    deliveries: int
    due: float
    """Monotonic time at which it is redelivered unless settled."""


class _Consumer:
    """A durable pull consumer: the next never-delivered sequence and the delivered, unsettled ones."""

    def __init__(self, stream: _Stream, max_ack_pending: int, ack_wait_s: float, start: datetime | None) -> None:
        self.stream = stream
        self.max_ack_pending = max_ack_pending
        self.ack_wait = ack_wait_s
        self.pending: dict[int, _Pending] = {}
        self.next_seq = 1
        if start is not None:
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            later = [m.seq for m in stream.messages if m.published_at >= start]
            self.next_seq = later[0] if later else len(stream.messages) + 1

    def take(self, max_msgs: int, now: float) -> list[tuple[_Stored, int]]:
        out: list[tuple[_Stored, int]] = []
        for seq in sorted(s for s, p in self.pending.items() if p.due <= now)[:max_msgs]:
            pending = self.pending[seq]
            pending.deliveries += 1
            pending.due = now + self.ack_wait
            out.append((self.stream.messages[seq - 1], pending.deliveries))
        while len(out) < max_msgs and len(self.pending) < self.max_ack_pending:
            if self.next_seq > len(self.stream.messages):
                break
            message = self.stream.messages[self.next_seq - 1]
            self.pending[message.seq] = _Pending(1, now + self.ack_wait)
            self.next_seq += 1
            out.append((message, 1))
        return out

    def next_due(self) -> float | None:
        return min((p.due for p in self.pending.values()), default=None)


class InProcessBroker:
    """The streams and consumers of one process (share one broker between the replay and the service)."""

    def __init__(self, duplicate_window_s: float = 3600.0) -> None:
        self.duplicate_window_s = duplicate_window_s
        self.streams: dict[str, _Stream] = {}
        self.consumers: dict[tuple[str, str], _Consumer] = {}
        self.changed = asyncio.Condition()

    def stream(self, name: str) -> _Stream:
        if name not in self.streams:
            self.streams[name] = _Stream(name, self.duplicate_window_s)
        return self.streams[name]

    def consumer(
        self, stream: str, name: str, max_ack_pending: int, ack_wait_s: float, start: datetime | None
    ) -> _Consumer:
        key = (stream, name)
        if key not in self.consumers:
            self.consumers[key] = _Consumer(self.stream(stream), max_ack_pending, ack_wait_s, start)
        consumer = self.consumers[key]
        consumer.max_ack_pending, consumer.ack_wait = max_ack_pending, ack_wait_s  # editable, as in JetStream
        return consumer

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


class _Handle:
    __slots__ = ("_broker", "_consumer", "_seq")

    def __init__(self, broker: InProcessBroker, consumer: _Consumer, seq: int) -> None:
        self._broker, self._consumer, self._seq = broker, consumer, seq

    async def ack(self) -> None:
        self._consumer.pending.pop(self._seq, None)
        await self._broker.notify()

    async def term(self) -> None:
        await self.ack()

    async def nak(self, delay: float | None) -> None:
        pending = self._consumer.pending.get(self._seq)
        if pending is not None:
            pending.due = time.monotonic() + (delay or 0.0)
            await self._broker.notify()

    async def in_progress(self) -> None:
        pending = self._consumer.pending.get(self._seq)
        if pending is not None:
            pending.due = time.monotonic() + self._consumer.ack_wait


class InProcessTransport(Transport):
    """The transport interface on an :class:`InProcessBroker` (see the module docstring)."""

    kind = "in-process"

    def __init__(
        self,
        settings: Settings,
        broker: InProcessBroker | None = None,
        *,
        consumer: str | None = None,
        policy: ValidationPolicy | None = None,
    ) -> None:
        super().__init__(Subjects(settings.nats_subject_prefix), settings.nats_max_ack_pending, policy)
        self.settings = settings
        self.broker = broker or InProcessBroker(settings.nats_duplicate_window_s)
        self.consumer_name = consumer or settings.nats_consumer
        self._names: dict[StreamKind, str] = {
            "bars": settings.nats_bars_stream,
            "decisions": settings.nats_decisions_stream,
            "dlq": settings.nats_dlq_stream,
        }
        self._open = False

    async def start(self) -> None:
        for name in self._names.values():
            self.broker.stream(name)
        self._open = True

    async def close(self) -> None:
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open

    def _consumer(self) -> _Consumer:
        s = self.settings
        return self.broker.consumer(
            s.nats_bars_stream, self.consumer_name, s.nats_max_ack_pending, s.nats_ack_wait_s, s.nats_consume_from
        )

    async def _fetch(self, max_msgs: int, timeout: float) -> list[RawDelivery]:
        consumer = self._consumer()
        deadline = time.monotonic() + timeout
        async with self.broker.changed:
            while True:
                now = time.monotonic()
                taken = consumer.take(max_msgs, now)
                if taken or now >= deadline:
                    break
                due = consumer.next_due()
                wait = deadline - now if due is None else max(0.0, min(deadline, due) - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.broker.changed.wait(), wait)
        received_at = datetime.now(UTC)
        return [
            RawDelivery(
                Delivery(m.subject, m.data, consumer.stream.name, m.seq, n, received_at),
                _Handle(self.broker, consumer, m.seq),
            )
            for m, n in taken
        ]

    async def _publish(self, kind: StreamKind, subject: str, data: bytes, msg_id: str) -> PublishAck:
        ack = self.broker.stream(self._names[kind]).append(subject, data, msg_id, time.monotonic())
        if not ack.duplicate:
            await self.broker.notify()
        return ack

    async def _tail(self, kind: StreamKind, subject_filter: str, from_start: bool) -> AsyncIterator[tuple[str, bytes]]:
        stream = self.broker.stream(self._names[kind])
        position = 0 if from_start else len(stream.messages)
        prefix = subject_filter[:-1] if subject_filter.endswith(">") else None
        while True:
            while position < len(stream.messages):
                message = stream.messages[position]
                position += 1
                if message.subject == subject_filter or (prefix is not None and message.subject.startswith(prefix)):
                    yield message.subject, message.data
            async with self.broker.changed:
                if position >= len(stream.messages):
                    await self.broker.changed.wait()
