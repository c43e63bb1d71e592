"""NATS failures, on private nats-server processes: not there at start, killed and restarted mid-stream,
token auth, no JetStream. Each server runs on a free port with its own store and is stopped by PID."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from serving_nats import OwnNats, free_port, isolated, run

from trading_core.serving.messages import BarMessage
from trading_core.serving.transport import TransportError, open_transport
from trading_core.serving.transport.connect import NatsUnavailable, backoff_delays, connect_nats

T0 = datetime(2024, 1, 2, tzinfo=UTC)
SYMBOLS = [f"S{i:02d}.X" for i in range(5)]


def slice_at(day: int) -> list[BarMessage]:
    stamp = T0 + timedelta(days=day)
    return [BarMessage(symbol=s, interval="1d", timestamp=stamp, open=10.0 + day, high=11.0 + day, low=9.0 + day,
                       close=10.5 + day, volume=100.0 + i) for i, s in enumerate(SYMBOLS)]  # fmt: skip


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff_delays(6, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_delays(1, 0.5, 3.0) == []


def test_no_server_at_start_retries_with_backoff_then_fails_clearly(caplog: pytest.LogCaptureFixture) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    settings = isolated(url, nats_connect_attempts=3, nats_connect_backoff_s=0.1, nats_connect_backoff_max_s=0.15)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(NatsUnavailable) as failure:
        run(connect_nats(settings), timeout=20)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    assert url in message and "3 tries" in message and "nats-server -js" in message and "TRADING_NATS_URL" in message
    assert "connection refused" in message
    tries = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()]
    assert len(tries) == 2 and "try 1/3" in tries[0] and "next try in 0.10 s" in tries[0]
    assert "try 2/3" in tries[1] and "next try in 0.15 s" in tries[1]  # 0.2, capped
    assert 0.25 <= elapsed < 5.0
    with pytest.raises(NatsUnavailable):  # the transport's start says the same
        run(open_transport(settings).start(), timeout=20)


def test_a_server_that_comes_up_late_is_reached_by_the_retries(tmp_path: Path) -> None:
    server = OwnNats(tmp_path / "js")
    settings = isolated(server.url, nats_connect_attempts=8, nats_connect_backoff_s=0.2, nats_connect_backoff_max_s=0.5)
    timer = threading.Timer(0.4, server.start)
    timer.start()
    try:

        async def scenario() -> int:
            async with open_transport(settings) as transport:
                return (await transport.publish_bars(slice_at(0)))[-1].seq

        assert run(scenario(), timeout=30) == len(SYMBOLS)
    finally:
        timer.join()
        server.stop()


def test_nats_killed_and_restarted_mid_stream_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SIGKILL the server between two halves of a replay while a consumer is reading: the publisher retries
    through the outage, the consumer resumes on the durable consumer, every bar is delivered and the stream
    holds each bar once (Nats-Msg-Id dedup of the retried publishes)."""
    server = OwnNats(tmp_path / "js").start()
    settings = isolated(server.url, nats_ack_wait_s=2.0, nats_reconnect_wait_s=0.1, nats_publish_timeout_s=20.0)
    days = 8
    expected = {b.key for d in range(days) for b in slice_at(d)}

    async def scenario() -> tuple[set[tuple[str, datetime]], int, int]:
        publisher, consumer = open_transport(settings), open_transport(settings)
        await publisher.start()
        await consumer.start()
        received: set[tuple[str, datetime]] = set()
        deliveries = 0

        async def consume() -> None:
            nonlocal deliveries
            deadline = time.monotonic() + 25
            while received != expected and time.monotonic() < deadline:
                for bar in await consumer.receive(max_bars=64, timeout=0.3):
                    deliveries += 1
                    received.add(bar.bar.key)
                    await bar.ack()

        reader = asyncio.create_task(consume())
        for day in range(days // 2):
            await publisher.publish_bars(slice_at(day))
        await asyncio.sleep(0.3)
        server.stop(signal.SIGKILL)
        loop = asyncio.get_running_loop()
        loop.call_later(0.8, server.start)  # back on the same port and store while the replay goes on
        for day in range(days // 2, days):
            await publisher.publish_bars(slice_at(day))  # retried through the outage
        await asyncio.wait_for(reader, 30)
        js = publisher._nc.jetstream()  # type: ignore[attr-defined]
        stored = (await js.stream_info(settings.nats_bars_stream)).state.messages
        await publisher.close()
        await consumer.close()
        return received, stored, deliveries

    try:
        with caplog.at_level(logging.WARNING):
            received, stored, deliveries = run(scenario(), timeout=60)
    finally:
        server.stop()
    logged = [r.getMessage() for r in caplog.records]
    assert any("not acknowledged" in m and "retrying" in m for m in logged), "the outage never hit a publish"
    assert sum("reconnected" in m for m in logged) >= 2  # publisher and consumer connections
    assert received == expected  # nothing lost
    assert stored == len(expected)  # no duplicate stored
    assert deliveries >= len(expected)  # redeliveries possible; the loop dedups by (symbol, bar time)


def test_token_auth(tmp_path: Path) -> None:
    server = OwnNats(tmp_path / "js", "--auth", "s3cret-token").start()
    try:
        good = isolated(server.url, nats_token="s3cret-token")

        async def publish() -> bool:
            async with open_transport(good) as transport:
                return (await transport.publish_bars(slice_at(0)))[0].duplicate

        assert run(publish()) is False
        with pytest.raises(NatsUnavailable) as refused:
            run(connect_nats(isolated(server.url, nats_token="wrong", nats_connect_attempts=1,
                                      nats_connect_timeout_s=1.0)), timeout=20)  # fmt: skip
        assert "Authorization" in str(refused.value) and "s3cret" not in str(refused.value)
    finally:
        server.stop()


def test_a_server_without_jetstream_is_named(tmp_path: Path) -> None:
    server = OwnNats(tmp_path / "js")
    server.jetstream = False
    server.start()
    try:
        with pytest.raises(TransportError, match="start nats-server with -js"):
            run(open_transport(isolated(server.url)).start(), timeout=20)
    finally:
        server.stop()
