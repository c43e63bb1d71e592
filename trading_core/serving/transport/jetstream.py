"""``NatsTransport``: the transport interface on NATS JetStream (nats-py).

Streams (created when missing, limits updated when changed, file storage, limits retention, discard old):

=========== ==================== ==========================================================
stream      subjects             holds
=========== ==================== ==========================================================
BARS        ``bars.>``           bars from the replay or a market adapter (Nats-Msg-Id: bar)
DECISIONS   ``decisions.>``      decisions (Nats-Msg-Id: policy, version, account, bar time)
DLQ         ``dlq.>``            dead letters (``dlq.bars``; Nats-Msg-Id: the bar's stream position)
=========== ==================== ==========================================================

Bars are consumed by a **durable pull consumer** (``nats_consumer``) with explicit acks, at most
``nats_max_ack_pending`` unacknowledged bars and a redelivery after ``nats_ack_wait_s``; it starts at the
first bar or at ``nats_consume_from``. The consumer lives in the server (file storage): a restarted service,
or a second replica bound to the same name, continues where the consumer is, and the bars it had not
acknowledged are redelivered. A NATS restart is ridden out by nats-py's reconnection; a publish that is not
acknowledged meanwhile is retried with the same Nats-Msg-Id (stored once) for ``nats_publish_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from trading_core.config import Settings
from trading_core.data.request import ValidationPolicy
from trading_core.errors import ConfigError
from trading_core.security import redact_url
from trading_core.serving.messages import Delivery
from trading_core.serving.subjects import Subjects
from trading_core.serving.transport.base import PublishAck, RawDelivery, StreamKind, Transport, TransportError
from trading_core.serving.transport.connect import connect_nats

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
OVERLAP_ERR_CODE = 10065
"""JetStream's error code for 'subjects overlap with an existing stream'."""
TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,  # nats.errors.TimeoutError is one; fetch also raises the builtin
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    ServiceUnavailableError,
)
"""Errors while the server restarts or JetStream recovers: retried (publish) or waited out (fetch)."""


class _NatsHandle:
    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    async def ack(self) -> None:
        await self._msg.ack()

    async def nak(self, delay: float | None) -> None:
        await self._msg.nak(delay=delay)

    async def term(self) -> None:
        await self._msg.term()

    async def in_progress(self) -> None:
        await self._msg.in_progress()


class NatsTransport(Transport):
    """The transport interface on NATS JetStream (see the module docstring)."""

    kind = "nats"

    def __init__(
        self, settings: Settings, *, consumer: str | None = None, policy: ValidationPolicy | None = None
    ) -> None:
        if not settings.nats_url:
            raise ConfigError("NatsTransport needs TRADING_NATS_URL (without it the in-process transport is used)")
        super().__init__(Subjects(settings.nats_subject_prefix), settings.nats_max_ack_pending, policy)
        self.settings = settings
        self.url = redact_url(settings.nats_url)
        self.consumer_name = consumer or settings.nats_consumer
        self._names: dict[StreamKind, str] = {
            "bars": settings.nats_bars_stream,
            "decisions": settings.nats_decisions_stream,
            "dlq": settings.nats_dlq_stream,
        }
        self._filters: dict[StreamKind, str] = {
            "bars": self.subjects.bars_filter,
            "decisions": self.subjects.decisions_filter,
            "dlq": self.subjects.dlq_filter,
        }
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return
        self._nc = await connect_nats(self.settings)
        self._js = self._nc.jetstream()
        try:
            for kind in self._names:
                await self._ensure_stream(kind)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        if nc is None or nc.is_closed:
            return
        if nc.is_connected:
            try:
                await nc.flush(timeout=2)  # acks and naks still buffered reach the server
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("NATS %s: flush before close failed (%s): unacked bars will be redelivered", self.url, exc)
        await nc.close()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def _jetstream(self) -> JetStreamContext:
        if self._js is None or self._nc is None:
            raise TransportError("NatsTransport is not started: use `async with transport:` or await start()")
        if self._nc.is_closed:
            raise TransportError(f"the connection to NATS at {self.url} is closed (reconnection tries exhausted)")
        return self._js

    # -- streams and the consumer --------------------------------------------------------------------
    def stream_config(self, kind: StreamKind) -> StreamConfig:
        s = self.settings
        return StreamConfig(
            name=self._names[kind],
            subjects=[self._filters[kind]],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            max_age=s.nats_max_age_days * 86400.0,
            max_bytes=s.nats_max_bytes,
            duplicate_window=s.nats_duplicate_window_s,
            num_replicas=1,
        )

    async def _ensure_stream(self, kind: StreamKind) -> None:
        js = self._jetstream()
        want = self.stream_config(kind)
        try:
            have = (await js.stream_info(want.name)).config  # type: ignore[arg-type]
        except NotFoundError:
            try:
                await js.add_stream(want)
            except APIError as exc:
                hint = (
                    " (another stream already takes these subjects: remove it, or give this deployment its own "
                    "TRADING_NATS_SUBJECT_PREFIX)"
                    if exc.err_code == OVERLAP_ERR_CODE
                    else ""
                )
                raise TransportError(
                    f"cannot create stream {want.name} for {want.subjects}: {exc.description}{hint}"
                ) from None
            log.info("NATS %s: created stream %s (%s)", self.url, want.name, want.subjects)
            return
        except (nats.errors.NoRespondersError, ServiceUnavailableError, nats.errors.TimeoutError) as exc:
            raise TransportError(
                f"NATS at {self.url} does not answer JetStream requests ({exc}): start nats-server with -js"
            ) from None
        if list(have.subjects or []) != want.subjects:
            raise TransportError(
                f"stream {want.name} exists with subjects {have.subjects}, expected {want.subjects}: "
                "remove it or name another stream (TRADING_NATS_*_STREAM)"
            )
        if have.storage != StorageType.FILE:
            raise TransportError(f"stream {want.name} uses {have.storage} storage, expected file: recreate it")
        changed = [
            f"{field} {getattr(have, field)} -> {getattr(want, field)}"
            for field in ("max_age", "max_bytes", "duplicate_window")
            if abs(float(getattr(have, field) or 0) - float(getattr(want, field) or 0)) > 1e-6
        ]
        if changed:
            await js.update_stream(want)
            log.warning("NATS %s: stream %s limits updated: %s", self.url, want.name, ", ".join(changed))

    def consumer_config(self) -> ConsumerConfig:
        s = self.settings
        start = s.nats_consume_from
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return ConsumerConfig(
            name=self.consumer_name,
            durable_name=self.consumer_name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL if start is None else DeliverPolicy.BY_START_TIME,
            opt_start_time=start,
            max_ack_pending=s.nats_max_ack_pending,
            ack_wait=s.nats_ack_wait_s,
            filter_subject=self._filters["bars"],
            max_deliver=-1,
        )

    async def _subscription(self) -> JetStreamContext.PullSubscription:
        if self._sub is not None:
            return self._sub
        js = self._jetstream()
        stream, want = self._names["bars"], self.consumer_config()
        try:
            have = (await js.consumer_info(stream, self.consumer_name)).config
        except NotFoundError:
            await js.add_consumer(stream, want)
            log.info("NATS %s: created durable consumer %s on %s", self.url, self.consumer_name, stream)
        else:
            if have.filter_subject != want.filter_subject:
                raise TransportError(
                    f"consumer {self.consumer_name} of {stream} filters {have.filter_subject!r}, expected "
                    f"{want.filter_subject!r}: remove it (nats consumer rm) or name another (TRADING_NATS_CONSUMER)"
                )
            if (have.max_ack_pending, float(have.ack_wait or 0)) != (want.max_ack_pending, float(want.ack_wait or 0)):
                # Editable fields; the position and the deliver policy stay as the consumer has them.
                want.deliver_policy, want.opt_start_time = have.deliver_policy, have.opt_start_time
                await js.add_consumer(stream, want)
                log.warning("NATS %s: consumer %s now max_ack_pending=%s ack_wait=%ss", self.url,
                            self.consumer_name, want.max_ack_pending, want.ack_wait)  # fmt: skip
        self._sub = await js.pull_subscribe_bind(durable=self.consumer_name, stream=stream)
        return self._sub

    # -- moving bytes ---------------------------------------------------------------------------------
    async def _fetch(self, max_msgs: int, timeout: float) -> list[RawDelivery]:
        try:
            sub = await self._subscription()
            msgs = await sub.fetch(batch=max_msgs, timeout=timeout)
        except TRANSIENT as exc:
            if not isinstance(exc, TimeoutError):
                log.info("NATS %s: fetch interrupted (%s); the consumer keeps the bars", self.url, exc)
                await asyncio.sleep(min(timeout, 0.25))
            return []
        except NotFoundError:
            log.warning("NATS %s: consumer %s disappeared; recreating it", self.url, self.consumer_name)
            self._sub = None
            return []
        received_at = datetime.now(UTC)
        out = []
        for msg in msgs:
            md = msg.metadata
            delivery = Delivery(msg.subject, msg.data, md.stream or "", md.sequence.stream, md.num_delivered or 1,
                                received_at)  # fmt: skip
            out.append(RawDelivery(delivery, _NatsHandle(msg)))
        return out

    async def _publish(self, kind: StreamKind, subject: str, data: bytes, msg_id: str) -> PublishAck:
        s = self.settings
        stream = self._names[kind]
        deadline = time.monotonic() + s.nats_publish_timeout_s
        tries = 0
        while True:
            js = self._jetstream()
            remaining = deadline - time.monotonic()
            try:
                ack = await js.publish(subject, data, timeout=max(0.05, min(5.0, remaining)), stream=stream,
                                       headers={MSG_ID: msg_id})  # fmt: skip
                return PublishAck(ack.stream, ack.seq, bool(ack.duplicate))
            except TRANSIENT as exc:
                wait = min(s.nats_connect_backoff_max_s, s.nats_connect_backoff_s * 2 ** min(tries, 30))
                tries += 1
                if time.monotonic() + wait > deadline:
                    raise TransportError(
                        f"publish to {subject} (stream {stream}) not acknowledged within {s.nats_publish_timeout_s} s "
                        f"by NATS at {self.url}: {exc}"
                    ) from None
                log.warning("NATS %s: publish to %s not acknowledged (%s); retrying in %.1f s", self.url, subject,
                            exc, wait)  # fmt: skip
                await asyncio.sleep(wait)
            except APIError as exc:
                raise TransportError(f"publish to {subject} (stream {stream}) refused: {exc.description}") from None

    async def _tail(self, kind: StreamKind, subject_filter: str, from_start: bool) -> AsyncIterator[tuple[str, bytes]]:
        js = self._jetstream()
        sub = await js.subscribe(
            subject_filter,
            stream=self._names[kind],
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                yield msg.subject, msg.data
        finally:
            if self._nc is not None and not self._nc.is_closed:
                await sub.unsubscribe()
