"""A real Airflow 3 stack for tests: api-server, scheduler, dag-processor and triggerer as subprocesses.

``dag.test()`` runs tasks in-process and cannot answer a human-in-the-loop request (the task stays
parked in ``awaiting_input``), nor does it exercise the scheduler, pools or the REST API. This harness
starts the components the way a deployment does (LocalExecutor), on a free port, with a metadata DB
given by URL (a SQLite file by default, PostgreSQL when a URL is passed), and drives it only through
the authenticated REST API (``/auth/token`` -> bearer JWT -> ``/api/v2``).

Every wait is bounded; when one fails (or a component dies), the error carries the tails of every
component's log (kept in ``home/stack-logs``), the run's task states and the tails of its task logs
(``home/logs``). Stopping sends SIGTERM to each component, then after a grace period SIGKILLs its
process group and every descendant seen (task processes move to process groups of their own).

    with AirflowStack(dags_folder, tmp_path / "airflow") as stack:
        stack.wait_for_dag("hitl_probe")
        stack.unpause("hitl_probe")
        run_id = stack.trigger("hitl_probe", {"model_version": "7"})
        stack.wait_for_hitl("hitl_probe", run_id, "approve")
        stack.answer_hitl("hitl_probe", run_id, "approve", ["Approve"])
        assert stack.wait_for_run("hitl_probe", run_id) == "success"
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar
from urllib.parse import quote

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMPONENTS: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
_T = TypeVar("_T")


class AirflowStackError(RuntimeError):
    """A stack that did not start, or a wait that ran out of time (the message carries log tails)."""


class AirflowApiError(AirflowStackError):
    """An HTTP error from the REST API; ``status`` and ``body`` are the response's."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def temporary_postgres_database(base_url: str, prefix: str = "airflow_test") -> Iterator[str]:
    """A throw-away database on the PostgreSQL server of ``base_url`` (e.g. TEST_DATABASE_URL), dropped after.

    Yields its URL, usable as ``AirflowStack(db_url=...)`` (Airflow uses psycopg2 for ``postgresql://``).
    ``prefix`` starts the database's name (then a random suffix): it tells a leftover's owner."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class _Component:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    pids: set[int] = field(default_factory=set)


class AirflowStack:
    """Airflow's api-server, scheduler, dag-processor and triggerer as subprocesses (LocalExecutor).

    ``home`` becomes AIRFLOW_HOME (config, SQLite DB unless ``db_url`` is given, logs). ``env`` adds
    variables for every component and task (e.g. selected ``TRADING_*``); the parent's ``AIRFLOW*`` and
    ``TRADING_*`` variables are not inherited. ``dags_folder`` is put on PYTHONPATH, as Airflow does
    for DAG files that import their siblings."""

    username = "stack-tester"

    def __init__(
        self,
        dags_folder: Path,
        home: Path,
        *,
        db_url: str | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        plugins_folder: Path | None = None,
        components: Collection[str] = COMPONENTS,
        parallelism: int = 4,
        startup_timeout: float = 120.0,
    ) -> None:
        unknown = set(components) - set(COMPONENTS)
        if unknown or "api-server" not in components:
            raise ValueError(f"components must include api-server and be among {COMPONENTS}: {sorted(components)}")
        self.dags_folder = Path(dags_folder).resolve()
        self.home = Path(home).resolve()
        self.db_url = db_url or f"sqlite:///{self.home / 'airflow.db'}"
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.plugins_folder = Path(plugins_folder or ROOT / "plugins").resolve()
        self.components = tuple(c for c in COMPONENTS if c in components)
        self.parallelism = parallelism
        self.startup_timeout = startup_timeout
        self.log_dir = self.home / "stack-logs"
        self.password = secrets.token_urlsafe(18)
        self._extra_env = dict(env or {})
        self._procs: dict[str, _Component] = {}
        self._token: str | None = None
        self._http = requests.Session()
        self.env = self._build_env()

    # ------------------------------------------------------------------ lifecycle
    def _build_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TRADING_"))}
        pythonpath = [str(self.dags_folder), *filter(None, [os.environ.get("PYTHONPATH")])]
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join(pythonpath),
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                # The scheduler and triggerer serve task logs on fixed ports by default (8793, 8794).
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                # One secret for every component: the scheduler signs task tokens the api-server checks.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                # New and changed DAG files are picked up within seconds (defaults: 300 s / 30 s).
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # Deferral and human-response timeouts are swept every 5 s instead of 15 s.
                "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            }
        )
        extra = dict(self._extra_env)
        if "PYTHONPATH" in extra:  # the caller's entries come after the DAG folder
            env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], extra.pop("PYTHONPATH")])
        env.update(extra)
        # Airflow also opens an async engine (the Execution API uses it), on PostgreSQL with asyncpg by
        # default; psycopg 3 serves when asyncpg is missing.
        use_psycopg3 = (
            self.db_url.startswith("postgresql")
            and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC" not in env
            and not _importable("asyncpg", env)
            and _importable("psycopg", env)
        )
        if use_psycopg3:
            rest = self.db_url.split(":", 1)[1]
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = f"postgresql+psycopg_async:{rest}"
        return env

    def __enter__(self) -> AirflowStack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Migrate the DB, start the components, wait until the API answers and every component is healthy."""
        async_url = self.env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", "")
        if self.db_url.startswith("postgresql") and not async_url and not _importable("asyncpg", self.env):
            raise AirflowStackError(
                "Airflow on PostgreSQL needs an async driver for its Execution API: install asyncpg "
                "(or psycopg 3), or set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC in env"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The SimpleAuthManager generates passwords only for users missing from this file.
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}))
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._migrate(timeout=max(deadline - time.monotonic(), 1.0))
            for name in self.components:
                self._spawn(name)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def _migrate(self, timeout: float) -> None:
        log_path = self.log_dir / "db-migrate.log"
        with log_path.open("wb") as log:
            try:
                proc = subprocess.run(
                    [str(VENV_BIN / "airflow"), "db", "migrate"],
                    env=self.env,
                    cwd=self.home,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired as exc:
                raise AirflowStackError(f"airflow db migrate timed out:\n{_tail(log_path)}") from exc
        if proc.returncode != 0:
            raise AirflowStackError(f"airflow db migrate failed ({proc.returncode}):\n{_tail(log_path)}")

    def _spawn(self, name: str) -> None:
        argv = [str(VENV_BIN / "airflow"), name]
        if name == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        proc = subprocess.Popen(
            argv,
            env=self.env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() signals the whole tree
        )
        self._procs[name] = _Component(name, proc, log_path, log_file, {proc.pid})

    def _wait_healthy(self, deadline: float) -> None:
        expected = {"metadatabase", *(c.replace("-", "_") for c in self.components if c != "api-server")}
        last: Any = None
        warmed = False
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                resp = self._http.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                if resp.ok and not warmed:
                    # The Execution API (Cadwyn) builds its versioned routes on its first request, which
                    # takes seconds of CPU and blocks the api-server; pay that now, not in the first task.
                    self._http.get(f"{self.base_url}/execution/health", timeout=max(deadline - time.monotonic(), 1))
                    warmed = True
                    continue
                if resp.ok:
                    last = resp.json()
                    if all((last.get(k) or {}).get("status") == "healthy" for k in expected):
                        self.token()
                        return
                else:
                    last = f"HTTP {resp.status_code}: {resp.text[:300]}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(1.0)
        raise AirflowStackError(self._report(f"stack not healthy within {self.startup_timeout:.0f} s; last: {last}"))

    def _check_alive(self) -> None:
        dead = {c.name: c.proc.returncode for c in self._procs.values() if c.proc.poll() is not None}
        if dead:
            raise AirflowStackError(self._report(f"component(s) exited: {dead}"))

    def _remember_descendants(self) -> None:
        for comp in self._procs.values():
            with contextlib.suppress(psutil.Error):
                comp.pids.update(p.pid for p in psutil.Process(comp.proc.pid).children(recursive=True))

    def stop(self, grace: float = 5.0) -> None:
        """Terminate every component and its descendants (task processes included); kill what outlives ``grace``."""
        if not self._procs:
            return
        self._http.close()  # uvicorn's graceful shutdown waits for open keep-alive connections
        self._remember_descendants()
        procs: list[psutil.Process] = []
        for comp in self._procs.values():
            for pid in comp.pids:
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(pid))
            # SIGTERM to the component only: it shuts its own children down (signalling the LocalExecutor
            # workers directly leaves the scheduler waiting for them).
            if comp.proc.poll() is None:
                comp.proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for comp in self._procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.proc.pid, signal.SIGKILL)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for comp in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.proc.wait(timeout=5)
            comp.log_file.close()
        self._procs.clear()

    # ------------------------------------------------------------------ diagnostics
    def logs(self, lines: int = 40) -> str:
        """The tails of every component's log."""
        paths = sorted(self.log_dir.glob("*.log"))
        return "\n".join(f"----- {p.name} (last {lines} lines) -----\n{_tail(p, lines)}" for p in paths)

    def task_logs(self, dag_id: str, run_id: str, lines: int = 40) -> str:
        """The tails of the task logs of one run (``home/logs/dag_id=.../run_id=...``)."""
        run_dir = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        paths = sorted(p for p in run_dir.rglob("*") if p.is_file())
        return "\n".join(f"----- {p.relative_to(run_dir)} -----\n{_tail(p, lines)}" for p in paths)

    def _report(self, message: str, dag_id: str | None = None, run_id: str | None = None) -> str:
        parts = [message, self.logs()]
        if dag_id and run_id:
            with contextlib.suppress(Exception):
                tis = self.api("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances")
                states = {ti["task_id"]: ti["state"] for ti in tis["task_instances"]}
                parts.insert(1, f"task states: {states}")
            parts.append(self.task_logs(dag_id, run_id))
        return "\n".join(parts)

    # ------------------------------------------------------------------ REST
    def token(self) -> str:
        """A bearer JWT for the generated user (``POST /auth/token``), cached."""
        if self._token is None:
            resp = self._http.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            if not resp.ok:
                raise AirflowApiError("POST", "/auth/token", resp.status_code, resp.text)
            self._token = str(resp.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Call the REST API (``path`` from the root, e.g. ``/api/v2/dags``); the decoded JSON, or
        :class:`AirflowApiError` with the response body. A rejected token is renewed once."""
        for attempt in range(2):
            resp = self._http.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
            )
            if resp.status_code == 401 and attempt == 0:
                self._token = None
                continue
            break
        if not resp.ok:
            raise AirflowApiError(method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else None

    def _wait(
        self,
        what: str,
        probe: Callable[[], _T | None],
        timeout: float,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> _T:
        """Poll ``probe`` every second until it returns something; fail with the logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            result = probe()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                message = f"timed out after {timeout:.0f} s waiting for {what}"
                raise AirflowStackError(self._report(message, dag_id, run_id))
            time.sleep(1.0)

    def wait_until(
        self,
        what: str,
        probe: Callable[[], _T | None],
        timeout: float = 60.0,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> _T:
        """Poll ``probe`` every second until it returns something other than None; that value. After
        ``timeout`` (or when a component dies) fail with the logs (and the run's task states and logs)."""
        return self._wait(what, probe, timeout, dag_id, run_id)

    def create_pool(self, name: str, slots: int, description: str = "") -> dict[str, Any]:
        """Create a pool (``POST /api/v2/pools``): the scheduler never queues a task whose pool is missing."""
        return dict(self.api("POST", "/api/v2/pools", json={"name": name, "slots": slots, "description": description}))

    def wait_for_dag(self, dag_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` and the API lists it; its DAG record."""

        def probe() -> dict[str, Any] | None:
            try:
                return dict(self.api("GET", f"/api/v2/dags/{_q(dag_id)}"))
            except AirflowApiError as exc:
                if exc.status == 404:
                    return None
                raise

        try:
            return self._wait(f"DAG {dag_id} to be parsed", probe, timeout)
        except AirflowStackError as exc:
            errors = self.api("GET", "/api/v2/importErrors")
            raise AirflowStackError(f"{exc}\nimport errors: {errors}") from None

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Start a manual run now (no logical date); its run id."""
        run = self.api(
            "POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})}
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")["state"])

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Collection[str] = TERMINAL_RUN_STATES,
        timeout: float = 60.0,
    ) -> str:
        """Wait until the run is in one of ``states``; that state."""

        def probe() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in states else None

        return self._wait(f"run {dag_id}/{run_id} in {sorted(states)}", probe, timeout, dag_id, run_id)

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self.api("GET", path))

    def task_state(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        """The task instance's state (None before the scheduler set one)."""
        state = self.task_instance(dag_id, run_id, task_id, map_index)["state"]
        return None if state is None else str(state)

    def _hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        return f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}/hitlDetails"

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """``GET .../taskInstances/{task_id}/{map_index}/hitlDetails`` (404 until the task wrote its request)."""
        return dict(self.api("GET", self._hitl_path(dag_id, run_id, task_id, map_index)))

    def wait_for_hitl(
        self, dag_id: str, run_id: str, task_id: str, timeout: float = 60.0, map_index: int = -1
    ) -> dict[str, Any]:
        """Wait until the task waits for a human (state ``awaiting_input``, request written); the HITL detail."""

        def probe() -> dict[str, Any] | None:
            try:
                detail = self.hitl_detail(dag_id, run_id, task_id, map_index)
            except AirflowApiError as exc:
                if exc.status == 404:
                    return None
                raise
            if detail["response_received"] or detail["task_instance"]["state"] not in {"awaiting_input", "deferred"}:
                return None
            # Airflow 3.3.2 race: an answer that resumes the task before the scheduler has drained the
            # executor's "success" event of the parked attempt (the worker exits after parking) gets the
            # resumed try marked failed ("state mismatch", cf. apache/airflow#66374, #72716). A human is
            # never that fast; a test is, so it answers only once the scheduler logged that event.
            return detail if self._parked_attempt_drained(str(detail["task_instance"]["id"])) else None

        return self._wait(f"HITL request of {dag_id}/{run_id}/{task_id}", probe, timeout, dag_id, run_id)

    def _parked_attempt_drained(self, ti_id: str) -> bool:
        """Whether the scheduler processed the executor event of the attempt that parked ``ti_id``."""
        if "scheduler" not in self._procs:
            return True
        log = self._procs["scheduler"].log_path.read_text(errors="replace")
        return any(
            "TaskInstance Finished:" in line
            and f"ti_id={ti_id}," in line
            and ("state=awaiting_input," in line or "state=deferred," in line)
            for line in log.splitlines()
        )

    def answer_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: Mapping[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Respond as the stack's user: ``PATCH .../hitlDetails`` with ``{chosen_options, params_input}``."""
        body = {"chosen_options": list(chosen_options), "params_input": dict(params_input or {})}
        return dict(self.api("PATCH", self._hitl_path(dag_id, run_id, task_id, map_index), json=body))


def _importable(module: str, env: Mapping[str, str]) -> bool:
    """Whether the components' interpreter (this venv, with ``env``'s PYTHONPATH) can import ``module``."""
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", probe], env=dict(env), capture_output=True).returncode == 0


def _q(part: str) -> str:
    """A path segment, percent-encoded (run ids contain ':' and '+')."""
    return quote(part, safe="")
