"""NATS for the serving tests: the machine's server (127.0.0.1:4222, JetStream on) or a private one.

Tests on the shared server use their own subject prefix and stream / consumer names (:func:`isolated`), so
parallel workers never see each other's messages, and delete their streams afterwards (:func:`drop_streams`).
Tests that stop or restart NATS start their own ``nats-server`` (:class:`OwnNats`) on a free port with a
temporary store, and stop it by PID. With CI=true a missing binary or an unreachable server fails the test;
elsewhere it skips with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from trading_core.config import Settings, get_settings

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
T = TypeVar("T")


def missing(reason: str) -> None:
    """Fail on CI (a CI must not pass by skipping), skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the NATS tests must run)")
    pytest.skip(reason)


def _reachable(url: str) -> bool:
    host, _, port = url.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def require_nats() -> str:
    if not _reachable(NATS_URL):
        missing(f"no NATS server at {NATS_URL} (start nats-server -js, or set TEST_NATS_URL)")
    return NATS_URL


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a coroutine on a fresh event loop, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def isolated(url: str | None, **overrides: Any) -> Settings:
    """Settings whose subjects, streams and consumer no other test uses; fast retries for tests."""
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "nats_url": url,
        "nats_subject_prefix": f"t{tag}",
        "nats_bars_stream": f"BARS_{tag}",
        "nats_decisions_stream": f"DECISIONS_{tag}",
        "nats_dlq_stream": f"DLQ_{tag}",
        "nats_consumer": f"svc_{tag}",
        "nats_connect_attempts": 2,
        "nats_connect_backoff_s": 0.05,
        "nats_connect_timeout_s": 2.0,
        "nats_reconnect_wait_s": 0.1,
        "nats_publish_timeout_s": 10.0,
    }
    values.update(overrides)
    return get_settings(**values)


async def _drop(settings: Settings) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(settings.nats_url, allow_reconnect=False, connect_timeout=2)
    js = nc.jetstream()
    for name in (settings.nats_bars_stream, settings.nats_decisions_stream, settings.nats_dlq_stream):
        with contextlib.suppress(nats.js.errors.NotFoundError):  # never created by this test
            await js.delete_stream(name)
    await nc.close()


def drop_streams(settings: Settings) -> None:
    """Delete the test's streams (and with them its consumers) from the server."""
    if settings.nats_url and _reachable(settings.nats_url.split(",")[0]):
        run(_drop(settings), timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnNats:
    """A private nats-server with JetStream on a free port and a temporary store; stopped by PID."""

    def __init__(self, store: Path, *extra: str) -> None:
        if not Path(NATS_SERVER).exists():
            missing(f"nats-server binary not found ({NATS_SERVER})")
        self.store = store
        self.port = free_port()
        self.extra = extra
        self.jetstream = True
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> OwnNats:
        js = ["-js", "-sd", str(self.store)] if self.jetstream else []
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), *js, *self.extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _reachable(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start on port {self.port}: {' '.join(args)}")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        self.proc = None
