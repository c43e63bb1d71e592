"""The embedded mode: Airflow and MLflow on local files, started as subprocesses (no airflow import).

Used by ``trading demo`` (runs a DAG end to end with ``airflow dags test``) and ``trading ui``
(``airflow standalone`` + ``mlflow ui``). Airflow reads its configuration from ``AIRFLOW__*``
variables, which :func:`airflow_env` derives from :class:`~trading_core.config.Settings`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess  # nosec B404
import sys
from pathlib import Path
from typing import Any

from trading_core.config import Settings

log = logging.getLogger(__name__)

# Every subprocess below runs an argv list (never a shell) whose executable comes from _bin() (the
# venv's own airflow/mlflow) and whose other items are settings, ports and DAG ids, so bandit's
# B404/B603 (subprocess use) are reviewed and marked `nosec` line by line.

LOCALHOST = "127.0.0.1"
"""Interface the embedded UIs bind to: never all interfaces (no TLS, and the MLflow UI has no auth)."""


def _bin(name: str) -> str:
    """The executable beside the running interpreter (the venv), else from PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else (shutil.which(name) or name)


def airflow_env(settings: Settings, api_port: int = 8080) -> dict[str, str]:
    """Environment for an embedded Airflow on SQLite with LocalExecutor, and for its tasks."""
    env = dict(os.environ)
    home = settings.resolved_airflow_home
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.plugins_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API__PORT": str(api_port),
            # The api-server binds 0.0.0.0 by default; the embedded one stays on this machine.
            "AIRFLOW__API__HOST": LOCALHOST,
            # Auth on, whatever the calling shell says: users need the generated password.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # Tasks must see the same platform home as the process that started Airflow.
            "TRADING_HOME": str(settings.home),
            "MLFLOW_DISABLE_TELEMETRY": env.get("MLFLOW_DISABLE_TELEMETRY", "true"),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": env.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    if settings.database_url:
        # The tasks' own Settings read it: passed in the environment, never on a command line.
        env["TRADING_DATABASE_URL"] = settings.database_url.get_secret_value()
    return env


GPU_POOL = "gpu"
"""Airflow pool of the tasks that train models (HPO workers, the forecaster): one slot per GPU."""
GPU_POOL_SLOTS = 1


def migrate_airflow(settings: Settings) -> None:
    """Create or upgrade the embedded Airflow metadata DB and its pools (idempotent)."""
    settings.resolved_airflow_home.mkdir(parents=True, exist_ok=True)
    env = airflow_env(settings)
    argv = [_bin("airflow"), "db", "migrate"]
    subprocess.run(argv, env=env, check=True, capture_output=True, text=True)  # nosec B603
    ensure_pool(env, GPU_POOL, GPU_POOL_SLOTS, "Model training (HPO workers, forecaster): one slot per GPU")


def ensure_pool(env: dict[str, str], name: str, slots: int, description: str) -> bool:
    """Create the Airflow pool when it is missing; an existing one keeps the slots an operator gave it.

    The scheduler never queues a task whose pool does not exist (``airflow dags test`` and
    ``dag.test()`` ignore pools). Returns True when the pool was created."""
    airflow = _bin("airflow")
    exists = subprocess.run([airflow, "pools", "get", name], env=env, capture_output=True, text=True)  # nosec B603
    if exists.returncode == 0:
        return False
    subprocess.run(  # nosec B603
        [airflow, "pools", "set", name, str(slots), description],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    log.info("created the Airflow pool %s with %d slot(s)", name, slots)
    return True


def run_dag_test(settings: Settings, dag_id: str, conf: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``airflow dags test`` one DAG run in-process of a fresh ``airflow`` command; raises on failure."""
    migrate_airflow(settings)
    cmd = [_bin("airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)]
    log.info("running %s", " ".join(cmd))
    env = airflow_env(settings)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)  # nosec B603
    log_path = settings.resolved_airflow_home / f"dags-test-{dag_id}.log"
    log_path.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "state=failed" in proc.stdout + proc.stderr:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"airflow dags test {dag_id} failed (full log: {log_path}):\n{tail}")
    return proc


def mlflow_ui_command(settings: Settings, port: int = 5000) -> list[str]:
    """argv of the embedded MLflow UI: the local stores, bound to 127.0.0.1 only."""
    return [
        _bin("mlflow"),
        "ui",
        "--backend-store-uri",
        settings.resolved_mlflow_tracking_uri,
        "--default-artifact-root",
        str(settings.resolved_mlflow_artifact_root),
        "--host",
        LOCALHOST,
        "--port",
        str(port),
    ]


def start_ui(settings: Settings, airflow_port: int = 8080, mlflow_port: int = 5000) -> None:
    """Start ``airflow standalone`` and ``mlflow ui`` on the local stores; blocks until Ctrl-C."""
    migrate_airflow(settings)
    settings.resolved_mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
    airflow_cmd, env = [_bin("airflow"), "standalone"], airflow_env(settings, airflow_port)
    mlflow_cmd = mlflow_ui_command(settings, mlflow_port)
    procs = [
        subprocess.Popen(airflow_cmd, env=env),  # nosec B603
        subprocess.Popen(mlflow_cmd),  # nosec B603
    ]
    password_file = settings.resolved_airflow_home / "simple_auth_manager_passwords.json.generated"
    print(f"Airflow UI: http://{LOCALHOST}:{airflow_port}  (user 'admin', password in {password_file})")
    print(f"MLflow UI:  http://{LOCALHOST}:{mlflow_port}")
    try:
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            proc.terminate()
