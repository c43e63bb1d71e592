"""``trading stream replay|tail``: feed bars to the live service and watch what comes out (over NATS).

trading stream replay --dataset ds-... [--from 2024-01-02] [--to 2024-03-28] [--speed 0|100x]
trading stream tail decisions [--policy trading-policy] [--count 10] [--timeout 30] [--all]
trading stream tail dlq [--count 10] [--timeout 30] [--all]

Both need TRADING_NATS_URL: the in-process transport lives inside one process (the embedded demo runs the
replay and the service together). ``tail`` prints one JSON document per line as messages arrive (``--all``:
the stored ones first); it stops after ``--count`` messages or ``--timeout`` seconds, else on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from trading_core.config import Settings
from trading_core.errors import ConfigError


def _need_nats(settings: Settings, what: str) -> None:
    if not settings.nats_url:
        raise ConfigError(
            f"trading stream {what} needs TRADING_NATS_URL (e.g. nats://127.0.0.1:4222): the in-process "
            "transport only lives inside one process"
        )


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database
    from trading_core.serving.replay import parse_speed, replay_dataset
    from trading_core.serving.transport import open_transport

    _need_nats(settings, "replay")
    speed = parse_speed(args.speed)
    upgrade_database(settings.resolved_database_url)

    async def run() -> dict[str, Any]:
        async with open_transport(settings) as transport:
            result = await replay_dataset(args.dataset, settings, transport, start=args.start, end=args.end,
                                          speed=speed, interval=args.interval)  # fmt: skip
            return result.as_dict()

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.serving.transport import open_transport

    _need_nats(settings, "tail")
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be >= 1, got {args.count}")

    async def run() -> int:
        seen = 0
        async with open_transport(settings) as transport:
            messages = (
                transport.tail_decisions(args.policy, from_start=args.all)
                if args.what == "decisions"
                else transport.tail_dead_letters(from_start=args.all)
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.timeout):
                    async for message in messages:
                        print(message.model_dump_json(), flush=True)
                        seen += 1
                        if args.count is not None and seen >= args.count:
                            break
        return seen

    started = time.monotonic()
    try:
        seen = asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    if args.count is not None and seen < args.count:
        print(f"{seen} of {args.count} {args.what} message(s) within {time.monotonic() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``trading stream`` on the main parser's subparsers."""
    stream = sub.add_parser("stream", help="live bar stream (NATS): replay a dataset, tail decisions / dead letters")
    actions = stream.add_subparsers(dest="action", required=True)

    p = actions.add_parser("replay", help="publish a dataset's lake bars in bar-time order, one slice at a time")
    p.add_argument("--dataset", required=True, help="recorded dataset version (trading datasets)")
    p.add_argument("--from", dest="start", help="first bar date or time (UTC)")
    p.add_argument("--to", dest="end", help="last bar date (inclusive) or time (UTC)")
    p.add_argument("--speed", default="0", help="0: as fast as possible; Nx: one bar interval / N between slices")
    p.add_argument("--interval", help="expected bar interval (default: the dataset's)")
    p.set_defaults(func=_replay)

    p = actions.add_parser("tail", help="print decisions or dead letters as they arrive, one JSON per line")
    p.add_argument("what", choices=["decisions", "dlq"])
    p.add_argument("--policy", help="decisions of this policy only (decisions)")
    p.add_argument("--count", type=int, help="stop after this many messages (exit 1 if fewer came)")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    p.add_argument("--all", action="store_true", help="the stored messages first, then new ones")
    p.set_defaults(func=_tail)
