"""The compose stack's ``nats`` service: JetStream on a volume, token auth without a secret on a command line,
a health check on the monitoring port, published on BIND_ADDRESS; and its exact command run here against the
machine's nats-server binary, so the config file it writes is valid and the token and /healthz work."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from serving_nats import NATS_SERVER, free_port, isolated, missing, run

from trading_core.serving.transport import open_transport
from trading_core.serving.transport.connect import NatsUnavailable

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_nats_service(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert nats["image"] == "${NATS_IMAGE:-nats:2.10-alpine}"
    script = nats["command"][2]
    assert nats["command"][:2] == ["sh", "-c"]
    assert "exec nats-server -c /tmp/nats.conf -js -sd /data -m 8222" in script and "umask 077" in script
    assert "$${NATS_TOKEN}" in script and "${NATS_TOKEN" not in script.replace("$${NATS_TOKEN}", "")
    assert nats["environment"]["NATS_TOKEN"].startswith("${NATS_TOKEN:?")
    assert nats["volumes"] == ["nats-data:/data"] and "nats-data" in compose["volumes"]
    assert nats["ports"] == ["${BIND_ADDRESS:-127.0.0.1}:${NATS_PORT:-4223}:4222"]
    check = nats["healthcheck"]["test"]
    assert check[0] == "CMD" and check[-1] == "http://127.0.0.1:8222/healthz?js-enabled-only=true"
    assert nats["restart"] == "unless-stopped"
    worker = compose["services"]["airflow-worker"]["environment"]
    assert worker["TRADING_NATS_URL"] == "${TRADING_NATS_URL:-nats://nats:4222}"
    assert worker["TRADING_NATS_TOKEN"].startswith("${NATS_TOKEN:?")


def test_the_compose_command_runs_nats_with_the_token(compose: dict[str, Any], tmp_path: Path) -> None:
    if not Path(NATS_SERVER).exists():
        missing(f"nats-server binary not found ({NATS_SERVER})")
    port, monitor = free_port(), free_port()
    script = compose["services"]["nats"]["command"][2].replace("$$", "$")  # compose's escape of a shell variable
    script = script.replace("/tmp/nats.conf", str(tmp_path / "nats.conf")).replace("/data", str(tmp_path / "js"))
    script = script.replace("-m 8222", f"-m {monitor} -a 127.0.0.1 -p {port}")
    env = {**os.environ, "NATS_TOKEN": "tok-123_abc", "PATH": f"{Path(NATS_SERVER).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "nats did not become healthy"
                time.sleep(0.1)
        assert oct((tmp_path / "nats.conf").stat().st_mode & 0o777) == "0o600"
        url = f"nats://127.0.0.1:{port}"

        async def publish() -> int:
            async with open_transport(isolated(url, nats_token="tok-123_abc")) as transport:
                return len(await transport.publish_bars([]))

        assert run(publish()) == 0  # connected and created the streams with the token
        with pytest.raises(NatsUnavailable, match="Authorization"):
            run(open_transport(isolated(url, nats_connect_attempts=1, nats_connect_timeout_s=1.0)).start())
    finally:
        proc.kill()  # sh exec'd nats-server: this PID is the server
        proc.wait(timeout=10)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
