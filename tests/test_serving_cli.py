"""``trading stream replay|tail`` against the machine's NATS: a synthetic dataset ingested into a fresh home
is replayed through the real entry point, read back in bar-time order, and the tails print what arrives."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from serving_nats import drop_streams, isolated, require_nats, run

from trading_core.cli import main
from trading_core.config import Settings
from trading_core.data.ingest import load_dataset
from trading_core.serving.messages import DecisionMessage
from trading_core.serving.transport import open_transport

TRADING = Path(sys.executable).with_name("trading")
FIELDS = ("nats_url", "nats_subject_prefix", "nats_bars_stream", "nats_decisions_stream", "nats_dlq_stream",
          "nats_consumer")  # fmt: skip


@pytest.fixture
def stream_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The home of ``settings`` plus this test's own NATS subjects and streams, also in TRADING_* for the CLI."""
    nats = isolated(require_nats(), home=settings.home)
    for field in FIELDS:
        monkeypatch.setenv(f"TRADING_{field.upper()}", str(getattr(nats, field)))
    yield nats
    drop_streams(nats)


def ingest(capsys: pytest.CaptureFixture[str]) -> str:
    args = ["ingest", "--source", "synthetic", "--n-assets", "3", "--start", "2024-01-02", "--end", "2024-01-31"]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out)["dataset_version"]


def test_replay_publishes_the_lake_bars_in_bar_time_order(
    stream_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    version = ingest(capsys)
    cmd = [str(TRADING), "stream", "replay", "--dataset", version, "--from", "2024-01-08", "--to", "2024-01-12"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    lake = load_dataset(version, stream_settings)
    window = lake[(lake["timestamp"] >= "2024-01-08") & (lake["timestamp"] < "2024-01-13")]
    assert (result["bar_times"], result["bars"], result["duplicates"]) == (5, len(window), 0) and len(window) == 15
    assert (result["dataset_version"], result["interval"]) == (version, "1d")

    async def read_back() -> list[tuple[int, str, pd.Timestamp, float]]:
        async with open_transport(stream_settings) as transport:
            rows = []
            while len(rows) < len(window):
                for r in await transport.receive(max_bars=64, timeout=2.0) or pytest.fail(f"only {len(rows)} bars"):
                    rows.append((r.delivery.stream_seq, r.bar.symbol, pd.Timestamp(r.bar.timestamp), r.bar.close))
                    await r.ack()
            return rows

    rows = sorted(run(read_back()))
    stamps = [row[2] for row in rows]
    assert stamps == sorted(stamps)  # stream order is bar-time order, each slice together
    expected = window.sort_values(["timestamp", "symbol"])
    assert [(s, t, c) for _, s, t, c in rows] == list(
        zip(expected["symbol"], expected["timestamp"], expected["close"], strict=True)
    )

    assert main(["stream", "replay", "--dataset", version, "--from", "2024-01-08", "--to", "2024-01-12"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["bars"], again["duplicates"]) == (0, 15)  # a re-run inside the duplicate window stores nothing
    assert main(["stream", "replay", "--dataset", version, "--interval", "1h"]) == 2
    assert "holds 1d bars, not 1h" in capsys.readouterr().err
    assert main(["stream", "replay", "--dataset", version, "--speed", "fast"]) == 2
    assert "invalid speed" in capsys.readouterr().err


def test_tail_decisions_prints_one_json_per_line(stream_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    stamp = pd.Timestamp("2024-01-02", tz="UTC")
    decisions = [DecisionMessage(policy=p, model_version="1", account="paper", bar_time=stamp, payload={"w": {"A": 1}})
                 for p in ("alpha", "beta.v2")]  # fmt: skip

    async def publish() -> None:
        async with open_transport(stream_settings) as transport:
            for decision in decisions:
                await transport.publish_decision(decision)

    run(publish())
    assert main(["stream", "tail", "decisions", "--all", "--policy", "beta.v2", "--count", "1", "--timeout", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [DecisionMessage.model_validate_json(line) for line in lines] == [decisions[1]]
    assert main(["stream", "tail", "decisions", "--all", "--count", "5", "--timeout", "1"]) == 1  # only 2 exist
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 2 and "2 of 5 decisions message(s)" in captured.err


def test_tail_dlq_prints_dead_letters_as_they_arrive(
    stream_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live tail (new messages only) started first; broken bars keep arriving until it has printed one."""
    codes: list[int] = []
    tail = threading.Thread(
        target=lambda: codes.append(main(["stream", "tail", "dlq", "--count", "1", "--timeout", "15"]))
    )
    tail.start()

    async def feed() -> None:
        async with open_transport(stream_settings) as transport:
            subject = transport.subjects.bar("1d", "AAPL")
            for i in range(40):
                if not tail.is_alive():
                    return
                await transport._publish("bars", subject, b'{"schema_version": 1, "symbol": "AAPL"', f"junk{i}")
                await transport.receive(max_bars=10, timeout=0.2)  # dead-letters it
                await asyncio.sleep(0.2)

    run(feed(), timeout=30)
    tail.join(timeout=20)
    assert codes == [0]
    letter = json.loads(capsys.readouterr().out.splitlines()[0])
    assert letter["reason"] == "malformed_json" and letter["raw"].startswith('{"schema_version": 1')


def test_stream_commands_need_a_nats_url(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", "tail", "decisions", "--timeout", "1"]) == 2
    assert "needs TRADING_NATS_URL" in capsys.readouterr().err
    assert main(["stream", "replay", "--dataset", "ds-x"]) == 2
    assert "needs TRADING_NATS_URL" in capsys.readouterr().err


def test_an_unreachable_nats_is_a_clear_error(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving_nats import free_port

    monkeypatch.setenv("TRADING_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv("TRADING_NATS_CONNECT_ATTEMPTS", "2")
    monkeypatch.setenv("TRADING_NATS_CONNECT_BACKOFF_S", "0.05")
    monkeypatch.setenv("TRADING_NATS_TOKEN", "tok-sekret")
    started = time.monotonic()
    assert main(["stream", "tail", "decisions", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "is unreachable: 2 tries" in err and "Traceback" not in err and time.monotonic() - started < 10
    assert main(["info"]) == 0
    assert "tok-sekret" not in capsys.readouterr().out
