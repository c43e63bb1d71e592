"""Shared fixtures. Airflow's environment is set here, before any test imports airflow."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="trading-test-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        # No network in tests: MLflow's usage telemetry stays off, and so do download progress bars.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
)
# Airflow puts the DAG folder on sys.path in its processes (DAG files share `trading_assets`).
sys.path.insert(0, str(ROOT / "dags"))
# Tests never read a developer's .env or TRADING_* variables by accident.
for key in [k for k in os.environ if k.startswith("TRADING_")]:
    del os.environ[key]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Settings with a fresh home; TRADING_HOME is set too, for code that builds its own Settings."""
    from trading_core.config import get_settings

    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    return get_settings()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata DB (SQLite) in a temporary AIRFLOW_HOME."""
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _AIRFLOW_HOME


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL database on the server of TEST_DATABASE_URL (skips when unset)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if os.environ.get("CI") == "true":  # CI must run what the test claims to test, never skip it
            pytest.fail("TEST_DATABASE_URL is not set on CI (.ci/run sets it): the PostgreSQL tests cannot run")
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL integration tests run in CI and with .ci/run)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"trading_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from trading_core.db.session import make_engine

        make_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
