"""Both transports, driven through the interface the decision loop uses, on the machine's NATS.

Every behaviour is checked on the in-process transport and on NATS JetStream alike (parametrized), and one
test runs the same traffic through both and compares what comes out: the in-process transport must be a
faithful stand-in. NATS tests use their own subjects, streams and consumer, and delete them afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from serving_nats import drop_streams, isolated, require_nats, run

from trading_core.config import Settings
from trading_core.serving.messages import BarMessage, DeadLetterReason, DecisionMessage
from trading_core.serving.replay import bar_slices, replay_frame
from trading_core.serving.slices import SliceBuffer
from trading_core.serving.transport import InProcessBroker, PublishAck, ReceivedBar, Transport, open_transport

SYMBOLS = ["AAPL", "BRK.B", "BTC/USD", "^GSPC"]
T0 = datetime(2024, 1, 2, tzinfo=UTC)

Make = Callable[..., Transport]


def bars_at(day: int, symbols: list[str] = SYMBOLS) -> list[BarMessage]:
    stamp = T0 + timedelta(days=day)
    return [
        BarMessage(
            symbol=s,
            interval="1d",
            timestamp=stamp,
            open=100 + i + day,
            high=102 + i + day,
            low=99 + i + day,
            close=101 + i + day + 0.125,
            volume=1000.0 * (i + 1),
        )  # fmt: skip
        for i, s in enumerate(symbols)
    ]


@pytest.fixture(params=["in-process", "nats"])
def make(request: pytest.FixtureRequest) -> Iterator[Make]:
    """``make(**settings overrides)``: a transport (not started) on this test's broker or NATS streams."""
    url = require_nats() if request.param == "nats" else None
    base = isolated(url, nats_ack_wait_s=30.0)
    broker = InProcessBroker(base.nats_duplicate_window_s)

    def factory(**overrides: Any) -> Transport:
        return open_transport(base.model_copy(update=overrides), broker=broker)

    factory.settings = base  # type: ignore[attr-defined]
    yield factory
    drop_streams(base)


async def publish_raw(transport: Transport, subject: str, data: bytes, msg_id: str) -> PublishAck:
    """A message straight onto the bars stream, as a foreign or broken publisher would send it."""
    return await transport._publish("bars", subject, data, msg_id)


async def drain(transport: Transport, n: int, timeout: float = 10.0, ack: bool = True) -> list[ReceivedBar]:
    """Receive until ``n`` bars came (or fail at the timeout)."""
    got: list[ReceivedBar] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} bars within {timeout} s: {got}"
        for received in await transport.receive(max_bars=n - len(got), timeout=0.5):
            got.append(received)
            if ack:
                await received.ack()
    return got


def test_bars_flow_with_metadata_and_dedup(make: Make) -> None:
    async def scenario() -> None:
        async with make() as transport:
            acks = await transport.publish_bars(bars_at(0) + bars_at(1))
            assert [a.seq for a in acks] == list(range(1, 9)) and not any(a.duplicate for a in acks)
            again = await transport.publish_bars(bars_at(1))  # a retried replay: stored once
            assert all(a.duplicate for a in again) and [a.seq for a in again] == [5, 6, 7, 8]
            got = await drain(transport, 8)
            assert [(r.bar.symbol, r.bar.timestamp) for r in got] == [b.key for b in bars_at(0) + bars_at(1)]
            assert [r.bar for r in got] == bars_at(0) + bars_at(1)  # exact floats, UTC times
            assert [r.delivery.stream_seq for r in got] == list(range(1, 9))
            assert {r.delivery.deliveries for r in got} == {1} and {r.settled for r in got} == {"ack"}
            assert got[1].delivery.subject.endswith(".bars.1d.BRK~2EB")
            assert await transport.receive(max_bars=5, timeout=0.3) == []
            assert transport.stats.as_dict()["published"] == {"bars": 8}
            assert transport.stats.duplicates["bars"] == 4 and transport.connected

    run(scenario())


def test_unacked_bars_go_to_the_next_consumer_with_the_same_name(make: Make) -> None:
    """The consumer process goes away holding unacked bars: its successor gets them again, and the rest."""

    async def scenario() -> None:
        async with make(nats_ack_wait_s=1.0) as publisher:
            await publisher.publish_bars(bars_at(0) + bars_at(1) + bars_at(2)[:2])  # 10 bars
        first = make(nats_ack_wait_s=1.0)
        await first.start()
        taken = await drain(first, 6, ack=False)
        for received in taken[:3]:
            await received.ack()
        await first.close()  # gone with 3 bars delivered and never acknowledged
        async with make(nats_ack_wait_s=1.0) as second:
            rest = await drain(second, 7)
        done = [r.delivery.stream_seq for r in taken[:3]] + [r.delivery.stream_seq for r in rest]
        assert sorted(done) == list(range(1, 11))  # nothing lost, nothing twice
        redelivered = {r.delivery.stream_seq: r.delivery.deliveries for r in rest if r.delivery.deliveries > 1}
        assert redelivered == {4: 2, 5: 2, 6: 2}

    run(scenario())


def test_nak_redelivers_term_and_reject_do_not(make: Make) -> None:
    async def scenario() -> None:
        async with make() as transport:
            await transport.publish_bars(bars_at(0)[:3])
            a, b, c = await drain(transport, 3, ack=False)
            await a.nak()
            await b.term()
            letter = await c.reject(DeadLetterReason.STALE_BAR, "2024-01-02 is not after the last decided bar")
            await c.ack()  # settled already: a no-op
            assert (a.settled, b.settled, c.settled) == ("nak", "term", "reject")
            again = await drain(transport, 1)
            assert again[0].delivery.stream_seq == a.delivery.stream_seq and again[0].delivery.deliveries == 2
            assert await transport.receive(max_bars=5, timeout=0.5) == []
            assert letter.reason == DeadLetterReason.STALE_BAR and letter.symbol == "BTC/USD"
            assert transport.stats.dead_lettered == {"stale_bar": 1} and transport.stats.redelivered == 1
            stored = await asyncio.wait_for(anext(transport.tail_dead_letters(from_start=True)), 5)
            assert stored == letter and stored.raw_bytes() == c.delivery.raw

    run(scenario())


def test_max_ack_pending_bounds_the_bars_in_flight(make: Make) -> None:
    async def scenario() -> None:
        async with make(nats_max_ack_pending=4) as transport:
            await transport.publish_bars(bars_at(0) + bars_at(1) + bars_at(2)[:2])
            started = time.monotonic()
            first = await transport.receive(max_bars=100, timeout=5.0)
            # At the bound the transport asks for no more than it can get: no pull request held to its timeout.
            assert len(first) == 4 and time.monotonic() - started < 2.5
            assert await transport.receive(max_bars=10, timeout=0.3) == []  # 4 in flight: nothing more
            for received in first[:2]:
                await received.ack()
            second = await drain(transport, 2, ack=False)
            assert [r.delivery.stream_seq for r in second] == [5, 6]
            assert await transport.receive(max_bars=10, timeout=0.3) == []

    run(scenario())


def test_decisions_are_stored_once_per_idempotency_id(make: Make) -> None:
    async def scenario() -> None:
        async with make() as transport:
            decision = DecisionMessage(policy="trading-policy", model_version="3", account="paper-1", bar_time=T0,
                                       decided_at=T0 + timedelta(hours=21), payload={"weights": {"AAPL": 0.25}},
                                       flags=["missing:^GSPC"])  # fmt: skip
            first = await transport.publish_decision(decision)
            # The same decision re-published after a restart (decided later): stored once.
            again = await transport.publish_decision(decision.model_copy(update={"decided_at": datetime.now(UTC)}))
            other = await transport.publish_decision(decision.model_copy(update={"model_version": "4"}))
            assert (first.duplicate, again.duplicate, other.duplicate) == (False, True, False)
            assert again.seq == first.seq and other.seq == first.seq + 1
            tail = transport.tail_decisions("trading-policy", from_start=True)
            stored = [await asyncio.wait_for(anext(tail), 5) for _ in range(2)]
            assert stored == [decision, decision.model_copy(update={"model_version": "4"})]
            await tail.aclose()
            assert transport.stats.duplicates["decisions"] == 1

    run(scenario())


def test_invalid_messages_are_dead_lettered_terminated_and_counted(make: Make) -> None:
    async def scenario() -> None:
        async with make(nats_ack_wait_s=1.0) as transport:
            prefix = transport.subjects.bars_filter[:-1]
            good = bars_at(0)[0]
            await publish_raw(transport, prefix + "1d.AAPL", b"{not json", "m1")
            nan = json.loads(good.model_dump_json()) | {"close": float("nan")}
            await publish_raw(transport, prefix + "1d.AAPL", json.dumps(nan).encode(), "m2")
            await publish_raw(transport, prefix + "1d.MSFT", good.model_dump_json().encode(), "m3")
            await transport.publish_bars([good])
            got = await drain(transport, 1)
            assert got[0].bar == good and got[0].delivery.stream_seq == 4
            await asyncio.sleep(1.2)  # past the ack wait: terminated messages do not come back
            assert await transport.receive(max_bars=10, timeout=0.5) == []
            assert transport.stats.dead_lettered == {"malformed_json": 1, "non_finite_value": 1, "subject_mismatch": 1}
            assert transport.stats.received == 4 and transport.stats.accepted == 1
            tail = transport.tail_dead_letters(from_start=True)
            letters = [await asyncio.wait_for(anext(tail), 5) for _ in range(3)]
            await tail.aclose()
            assert [x.reason.value for x in letters] == ["malformed_json", "non_finite_value", "subject_mismatch"]
            assert [x.stream_seq for x in letters] == [1, 2, 3] and letters[0].raw == "{not json"
            assert letters[2].symbol == "AAPL" and letters[2].subject == prefix + "1d.MSFT"

    run(scenario())


def test_a_new_consumer_can_start_at_a_time(make: Make) -> None:
    async def scenario() -> None:
        async with make() as publisher:
            await publisher.publish_bars(bars_at(0))
            await asyncio.sleep(0.05)
            cut = datetime.now(UTC)
            await asyncio.sleep(0.05)
            await publisher.publish_bars(bars_at(1))
        async with make(nats_consumer="late", nats_consume_from=cut) as late:
            got = await drain(late, 4)
            assert {r.bar.timestamp for r in got} == {T0 + timedelta(days=1)}
            assert await late.receive(max_bars=5, timeout=0.3) == []

    run(scenario())


def test_async_iteration_and_the_slice_buffer(make: Make) -> None:
    async def scenario() -> None:
        async with make() as transport:
            # Interleaved bar times, a duplicate of a bar already held, a symbol missing at day 1.
            await transport.publish_bars(bars_at(0)[:2] + bars_at(1)[:1] + bars_at(0)[2:] + bars_at(1)[1:3])
            await publish_raw(transport, transport.subjects.bar("1d", "AAPL"), bars_at(0)[0].model_dump_json().encode(),
                              "republished")  # fmt: skip
            buffer, seen = SliceBuffer(), 0
            async for received in transport:
                buffer.add(received)
                seen += 1
                if seen == 8:
                    break
            assert [k.timestamp for k in buffer.slice_keys()] == [T0, T0 + timedelta(days=1)]
            assert buffer.complete(SYMBOLS) == [buffer.slice_keys()[0]]
            day0 = buffer.pop(buffer.slice_keys()[0])
            assert [d.bar.symbol for d in day0.duplicates] == ["AAPL"] and len(day0.bars) == 4
            bar_slice = day0.to_bar_slice(["^GSPC", "AAPL", "NOPE", "BTC/USD", "BRK.B"])
            assert list(bar_slice.symbols) == ["^GSPC", "AAPL", "BTC/USD", "BRK.B"]
            assert bar_slice.timestamp == pd.Timestamp(T0)
            np.testing.assert_array_equal(bar_slice.close, [bars_at(0)[i].close for i in (3, 0, 2, 1)])
            day1 = buffer.oldest()
            assert day1 is not None and day1.missing(SYMBOLS) == ["^GSPC"] and len(buffer) == 1
            await day0.ack_all()
            await day0.duplicates[0].reject(DeadLetterReason.DUPLICATE_BAR, "AAPL 2024-01-02 already in the slice")
            await day1.nak_all()
            again = await drain(transport, 3)
            assert sorted(r.delivery.deliveries for r in again) == [2, 2, 2]
            assert transport.stats.dead_lettered == {"duplicate_bar": 1}

    run(scenario())


def _frame(days: int, symbols: list[str]) -> pd.DataFrame:
    rows = [b.model_dump() for d in range(days) for b in bars_at(d, symbols)]
    frame = pd.DataFrame(rows).drop(columns=["schema_version", "interval"])
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)  # the lake's order is not bar-time order


def test_replay_publishes_slices_in_bar_time_order(make: Make) -> None:
    frame = _frame(6, SYMBOLS)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> None:
        async with make() as transport:
            result = await replay_frame(frame, transport, interval="1d", start="2024-01-03", end="2024-01-06",
                                        speed=864_000.0, sleep=fake_sleep)  # fmt: skip
            assert (result.bar_times, result.bars, result.duplicates) == (4, 16, 0)
            assert (result.first, result.last) == ("2024-01-03T00:00:00+00:00", "2024-01-06T00:00:00+00:00")
            got = await drain(transport, 16)
            times = [r.bar.timestamp for r in sorted(got, key=lambda r: r.delivery.stream_seq)]
            assert times == sorted(times)  # bar-time order, each bar time's symbols together
            assert [times[i * 4] for i in range(4)] == [T0 + timedelta(days=d) for d in range(1, 5)]
            rerun = await replay_frame(frame, transport, interval="1d", start="2024-01-03", end="2024-01-06")
            assert (rerun.bars, rerun.duplicates) == (0, 16)

    run(scenario())
    assert len(slept) == 3 and all(0 < s <= 0.1 for s in slept)  # a day / 864000


def test_replay_speed_is_scaled_by_the_interval_and_bounded() -> None:
    slept: list[float] = []

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[list[BarMessage]] = []

        async def publish_bars(self, bars: list[BarMessage]) -> list[PublishAck]:
            self.calls.append(list(bars))
            await asyncio.sleep(0.01)  # publishing time is not added to the schedule
            return [PublishAck("BARS", i, False) for i in range(len(bars))]

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    recorder = Recorder()
    frame = _frame(4, ["AAPL", "MSFT"])
    result = run(replay_frame(frame, recorder, interval="1h", speed=36.0, sleep=fake_sleep))  # max_sleep_s 5
    assert result.bar_times == 4 and [len(c) for c in recorder.calls] == [2, 2, 2, 2]
    assert [[b.symbol for b in c] for c in recorder.calls] == [["AAPL", "MSFT"]] * 4
    assert len(slept) == 3 and all(4.8 < s < 5.0 for s in slept)  # 3600 s / 36 = 100 s, capped at 5 s, less publishing
    slept.clear()
    run(replay_frame(frame, recorder, interval="5m", speed=1000.0, sleep=fake_sleep))
    assert len(slept) == 3 and all(0.2 < s < 0.3 for s in slept)  # 5 minutes at 1000x: 0.3 s less publishing
    assert [stamp for stamp, _ in bar_slices(frame, "1d", end="2024-01-03")] == [
        pd.Timestamp(T0),
        pd.Timestamp(T0 + timedelta(days=1)),
    ]


def test_both_transports_give_identical_results(tmp_path: Any) -> None:
    """The same traffic (good bars, a retried publish, broken messages, a nak) through both transports:
    the bars received, their metadata, the dead letters and the stored decisions are the same."""
    url = require_nats()

    async def traffic(settings: Settings) -> dict[str, Any]:
        async with open_transport(settings) as t:
            await t.publish_bars(bars_at(0) + bars_at(1))
            await t.publish_bars(bars_at(1))
            await publish_raw(t, t.subjects.bar("1d", "AAPL"), b'{"schema_version": 2}', "x1")
            await publish_raw(t, t.subjects.bar("1d", "AAPL"), bars_at(2)[1].model_dump_json().encode(), "x2")
            await t.publish_bars(bars_at(2))
            got = await drain(t, 12, ack=False)
            for r in got[:-1]:
                await r.ack()
            await got[-1].nak()
            got += await drain(t, 1)
            decision = DecisionMessage(policy="p", model_version="1", account="a", bar_time=T0, payload={"w": 1})
            seqs = [(await t.publish_decision(decision)).seq for _ in range(2)]
            tail = t.tail_dead_letters(from_start=True)
            letters = [await asyncio.wait_for(anext(tail), 5) for _ in range(2)]
            await tail.aclose()
            return {
                "bars": [(r.bar, r.delivery.stream_seq, r.delivery.deliveries, r.delivery.subject)
                         for r in got],
                "letters": [(x.reason, x.detail, x.raw, x.stream_seq, x.subject) for x in letters],
                "decision_seqs": seqs,
                "stats": {k: v for k, v in t.stats.as_dict().items()},
            }  # fmt: skip

    nats_settings = isolated(url)
    try:
        over_nats = run(traffic(nats_settings))
    finally:
        drop_streams(nats_settings)
    in_process = run(traffic(nats_settings.model_copy(update={"nats_url": None})))  # same names, no broker
    assert over_nats == in_process
    assert len(in_process["bars"]) == 13 and in_process["bars"][-1][2] == 2
    assert [x[0].value for x in in_process["letters"]] == ["schema_version", "subject_mismatch"]


def test_in_process_dedup_forgets_ids_after_the_window() -> None:
    async def scenario() -> None:
        settings = isolated(None)
        async with open_transport(settings, broker=InProcessBroker(duplicate_window_s=0.05)) as transport:
            first = await transport.publish_bars(bars_at(0)[:1])
            inside = await transport.publish_bars(bars_at(0)[:1])
            await asyncio.sleep(0.1)
            after = await transport.publish_bars(bars_at(0)[:1])
            assert (first[0].duplicate, inside[0].duplicate, after[0].duplicate) == (False, True, False)
            assert after[0].seq == 2

    run(scenario())
