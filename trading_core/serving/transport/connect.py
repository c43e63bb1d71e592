"""Connecting to NATS at start: a clear error and a bounded, logged exponential backoff.

nats-py applies its *reconnect* loop to the first connection too (nats-io/nats.py#352): with
reconnection on forever, a wrong address or token would hang the start. So each try here is bounded:
a TCP probe that reads the server's ``INFO`` line (refused or silent: fail fast), then ``nats.connect``
under ``nats_connect_timeout_s``. Between tries the wait doubles from ``nats_connect_backoff_s`` up to
``nats_connect_backoff_max_s``; after ``nats_connect_attempts`` tries :class:`NatsUnavailable` says what
was tried and what to do. Once connected, nats-py's own reconnection takes over (``nats_reconnect_wait_s``,
``nats_max_reconnect_attempts``), and the callbacks log each disconnect and reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS

from trading_core.config import Settings
from trading_core.security import redact_url
from trading_core.serving.transport.base import TransportError

log = logging.getLogger(__name__)


class NatsUnavailable(TransportError):
    """NATS could not be reached (or refused the connection) within the configured tries."""


def backoff_delays(attempts: int, first_s: float, max_s: float) -> list[float]:
    """The waits between ``attempts`` tries: ``first_s`` doubled each time, capped at ``max_s``."""
    return [min(max_s, first_s * 2**i) for i in range(max(0, attempts - 1))]


def server_urls(url: str) -> list[str]:
    """The comma-separated server URLs of ``TRADING_NATS_URL``; each must be ``nats://`` or ``tls://`` host:port."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    for server in servers:
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        if parts.scheme not in {"nats", "tls"} or not parts.hostname:
            raise NatsUnavailable(
                f"invalid NATS URL {redact_url(server)!r}: expected nats://host:port or tls://host:port"
            )
    if not servers:
        raise NatsUnavailable("TRADING_NATS_URL is empty: unset it for the in-process transport")
    return servers


async def probe(servers: list[str], timeout: float) -> None:
    """Return when one server answers with its ``INFO`` line; raise ``OSError``/``TimeoutError`` otherwise."""
    errors = []
    for server in servers:
        parts = urlsplit(server if "://" in server else f"nats://{server}")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port or 4222), timeout
            )
        except ConnectionRefusedError:
            errors.append(f"{parts.hostname}:{parts.port or 4222}: connection refused (nothing listens there)")
            continue
        except (OSError, TimeoutError) as exc:
            errors.append(f"{parts.hostname}:{parts.port or 4222}: {exc or type(exc).__name__}")
            continue
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, TimeoutError) as exc:
            line = b""
            errors.append(f"{parts.hostname}:{parts.port or 4222}: no INFO ({exc or type(exc).__name__})")
        finally:
            writer.close()
        if line.startswith(b"INFO"):
            return
        if line:
            errors.append(f"{parts.hostname}:{parts.port or 4222}: not a NATS server (said {line[:40]!r})")
    raise OSError("; ".join(errors))


async def connect_nats(settings: Settings, *, name: str = "trading-core") -> NATS:
    """A connected nats-py client for ``settings.nats_url`` (see the module docstring)."""
    if not settings.nats_url:
        raise NatsUnavailable("TRADING_NATS_URL is not set: the in-process transport needs no connection")
    servers = server_urls(settings.nats_url)
    shown = redact_url(settings.nats_url)
    delays = backoff_delays(settings.nats_connect_attempts, settings.nats_connect_backoff_s,
                            settings.nats_connect_backoff_max_s)  # fmt: skip
    started = time.monotonic()
    last: BaseException | None = None
    for attempt in range(1, settings.nats_connect_attempts + 1):
        try:
            await probe(servers, settings.nats_connect_timeout_s)
            return await _connect_once(settings, servers, shown, name)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            last = exc
        if attempt < settings.nats_connect_attempts:
            delay = delays[attempt - 1]
            log.warning("NATS at %s: try %d/%d failed (%s); next try in %.2f s",
                        shown, attempt, settings.nats_connect_attempts, last, delay)  # fmt: skip
            await asyncio.sleep(delay)
    raise NatsUnavailable(
        f"NATS at {shown} is unreachable: {settings.nats_connect_attempts} tries over "
        f"{time.monotonic() - started:.1f} s, last error: {last or 'none'}. Start a server with JetStream "
        "(`nats-server -js`, or `docker compose up -d nats`), fix TRADING_NATS_URL / TRADING_NATS_TOKEN, "
        "or unset TRADING_NATS_URL to use the in-process transport."
    )


async def _connect_once(settings: Settings, servers: list[str], shown: str, name: str) -> NATS:
    errors: list[BaseException] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)
        log.warning("NATS %s: %s", shown, exc or type(exc).__name__)

    async def disconnected_cb() -> None:
        if client.is_closed:  # our own close(), not a lost server
            return
        log.warning("NATS %s: disconnected; reconnecting every %.1f s", shown, settings.nats_reconnect_wait_s)

    async def reconnected_cb() -> None:
        log.warning("NATS %s: reconnected", shown)

    async def closed_cb() -> None:
        log.info("NATS %s: connection closed", shown)

    client = NATS()
    try:
        await asyncio.wait_for(
            client.connect(
                servers,
                name=name,
                token=settings.nats_token.get_secret_value() if settings.nats_token else None,
                connect_timeout=max(1, round(settings.nats_connect_timeout_s)),
                allow_reconnect=True,
                reconnect_time_wait=settings.nats_reconnect_wait_s,  # type: ignore[arg-type]
                max_reconnect_attempts=settings.nats_max_reconnect_attempts,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                closed_cb=closed_cb,
            ),
            settings.nats_connect_timeout_s,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        await client.close()
        cause = errors[-1] if errors else exc
        raise nats.errors.Error(f"{type(cause).__name__}: {cause}") from exc
    return client
