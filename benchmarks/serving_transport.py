"""The bar transport's share of the live service's latency budget (issue 18's benchmark is the whole loop).

    .venv/bin/python benchmarks/serving_transport.py [--nats nats://127.0.0.1:4222] [--bar-times 300]

For synthetic universes of 30 and 500 symbols, on NATS JetStream (own streams, deleted afterwards) and on the
in-process transport (the peer, measured in the same run):

1. **Slice latency**: publish one bar time's slice (every bar stored by the stream: ``publish_bars`` returns
   after the acks), then receive and validate all of it on the durable consumer and ack it; p50 / p99 over
   ``--bar-times`` slices, one at a time (what a replay at full speed and a loop that keeps up see).
2. **Throughput at saturation**: ``--bar-times`` slices published back to back, then consumed (receive,
   validate, ack) as fast as possible: slices per second each way.
3. **Validation**: ``validate_bar`` alone per bar (JSON parse, pydantic model, subject check), microseconds.

The last line is one JSON object; ``ratio_*`` is NATS / in-process. The machine is shared (2 cores): the load
average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from trading_core.config import Settings, get_settings
from trading_core.serving.messages import BarMessage, Delivery, bar_json
from trading_core.serving.subjects import Subjects
from trading_core.serving.transport import Transport, open_transport
from trading_core.serving.validation import validate_bar

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def slices(n_symbols: int, n_times: int, seed: int = 0) -> list[list[BarMessage]]:
    rng = np.random.default_rng(seed)
    symbols = [f"S{i:03d}.X" for i in range(n_symbols)]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_times, n_symbols)), axis=0))
    out = []
    for t in range(n_times):
        stamp = T0 + timedelta(minutes=5 * t)
        out.append([BarMessage(symbol=s, interval="5m", timestamp=stamp, open=c, high=c * 1.001, low=c * 0.999,
                               close=c, volume=1000.0) for s, c in zip(symbols, close[t], strict=True)])  # fmt: skip
    return out


def settings_for(url: str | None, n_symbols: int) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return get_settings(nats_url=url, nats_subject_prefix=f"bench{tag}", nats_bars_stream=f"BENCH_BARS_{tag}",
                        nats_decisions_stream=f"BENCH_DEC_{tag}", nats_dlq_stream=f"BENCH_DLQ_{tag}",
                        nats_consumer="bench", nats_max_ack_pending=4 * n_symbols + 64)  # fmt: skip


async def consume(transport: Transport, n: int) -> None:
    got = 0
    while got < n:
        received = await transport.receive(max_bars=n - got, timeout=5.0)
        if not received:
            raise RuntimeError(f"only {got} of {n} bars arrived")
        for r in received:
            await r.ack()
        got += len(received)


async def measure(url: str | None, data: list[list[BarMessage]]) -> dict[str, float]:
    n = len(data[0])
    settings = settings_for(url, n)
    half = len(data) // 2
    async with open_transport(settings) as transport:
        await transport.publish_bars(data[0])  # warm: streams, consumer, first fetch
        await consume(transport, n)
        lat = []
        for bars in data[1:half]:
            t = time.perf_counter()
            await transport.publish_bars(bars)
            await consume(transport, n)
            lat.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        for bars in data[half:]:
            await transport.publish_bars(bars)
        publish_s = time.perf_counter() - t
        t = time.perf_counter()
        await consume(transport, n * (len(data) - half))
        consume_s = time.perf_counter() - t
        if url:
            js = transport._nc.jetstream()  # type: ignore[attr-defined]
            for name in (settings.nats_bars_stream, settings.nats_decisions_stream, settings.nats_dlq_stream):
                await js.delete_stream(name)
    return {
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "publish_slices_per_s": round((len(data) - half) / publish_s, 1),
        "consume_slices_per_s": round((len(data) - half) / consume_s, 1),
    }


def validation_us(data: list[list[BarMessage]]) -> float:
    subjects = Subjects()
    deliveries = [Delivery(subjects.bar(b.interval, b.symbol), bar_json(b), "BARS", 1, 1, T0) for b in data[0]] * 20
    t = time.perf_counter()
    for d in deliveries:
        validate_bar(d, subjects)
    return round((time.perf_counter() - t) / len(deliveries) * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--bar-times", type=int, default=300)
    args = parser.parse_args()
    out: dict[str, Any] = {"benchmark": "serving_transport", "load_avg": os.getloadavg()[0]}
    for n_symbols, n_times in ((30, args.bar_times), (500, max(20, args.bar_times // 5))):
        data = slices(n_symbols, n_times)
        nats = asyncio.run(measure(args.nats, data))
        memory = asyncio.run(measure(None, data))
        out[f"u{n_symbols}"] = {
            "bar_times": n_times,
            "nats": nats,
            "in_process": memory,
            "ratio_p50": round(nats["p50_ms"] / memory["p50_ms"], 2),
            "validate_us_per_bar": validation_us(data),
        }
        print(f"{n_symbols} symbols: NATS {nats} | in-process {memory}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
