"""Bar transport of the live service: NATS JetStream, or in-process when no NATS URL is configured.

    async with open_transport(settings) as transport:        # NatsTransport or InProcessTransport
        for received in await transport.receive(max_bars=512, timeout=0.5):
            ...                                              # decide, book
            await received.ack()                             # only after the booking is durable
        await transport.publish_decision(decision)

See :mod:`trading_core.serving.transport.base` for the interface and docs/serving.md for the streams.
"""

from __future__ import annotations

from trading_core.config import Settings
from trading_core.data.request import ValidationPolicy
from trading_core.serving.transport.base import (
    BarPublisher,
    BarSource,
    DeadLetterSink,
    DecisionSink,
    PublishAck,
    ReceivedBar,
    Transport,
    TransportError,
    TransportStats,
)
from trading_core.serving.transport.memory import InProcessBroker, InProcessTransport

__all__ = [
    "BarPublisher",
    "BarSource",
    "DeadLetterSink",
    "DecisionSink",
    "InProcessBroker",
    "InProcessTransport",
    "PublishAck",
    "ReceivedBar",
    "Transport",
    "TransportError",
    "TransportStats",
    "open_transport",
]


def open_transport(
    settings: Settings,
    *,
    broker: InProcessBroker | None = None,
    consumer: str | None = None,
    policy: ValidationPolicy | None = None,
) -> Transport:
    """``NatsTransport`` when ``settings.nats_url`` is set, else ``InProcessTransport`` on ``broker``.

    Not started yet: ``async with open_transport(settings) as t:`` connects (with retries) and closes.
    """
    if settings.nats_url:
        from trading_core.serving.transport.jetstream import NatsTransport  # nats-py only where it is used

        return NatsTransport(settings, consumer=consumer, policy=policy)
    return InProcessTransport(settings, broker, consumer=consumer, policy=policy)
