"""The production configuration, run natively and driven only through its REST APIs and UIs.

Every store is PostgreSQL, as in ``docker-compose.yml`` (deploy/README.md, "The same configuration
without Docker"): Airflow's metadata DB (api-server, scheduler, dag-processor, triggerer; LocalExecutor;
the Execution API's async engine on asyncpg), an MLflow tracking server (``mlflow server``, PostgreSQL
backend store, proxied artifacts in a folder standing in for the bucket) and the app DB (lineage, the
Optuna study of the HPO workers, audit). Each gets a throw-away database on the server of
``TEST_DATABASE_URL``; the module skips without it.

The test then does what an operator does, through the APIs only (``POST /auth/token`` -> bearer JWT ->
``/api/v2``; MLflow's ``/api/2.0/mlflow``):

1. trigger the ``training`` DAG with a tiny configuration on a seeded feature set, and wait for it;
2. its ``register`` task announces Asset ``candidate_model``, which starts the ``promotion`` DAG by
   itself; a reviewer approves the version in the registry (tag ``approval=approved``), the gates
   pass and, with no champion yet, the version is crowned ``champion``;
3. check the run and task states in Airflow and the version and its aliases in MLflow.

A second test drives the two UIs in headless Chromium (the system's ``/usr/bin/chromium`` through
Playwright; ``.ci/run`` and ``make browser`` install it): log into Airflow, open the training DAG's
grid, trigger a run from the form with a param changed (its conf is checked through the REST API),
and open the registered model's page in MLflow, which shows the aliases. Screenshots go to
``$TEST_ARTIFACTS_DIR`` (default ``test-artifacts/``), with the wall time of each phase
(``phases.json``).

The governance policy is ``tests/fixtures/governance_smoke.yaml``: a model trained for seconds on
a few hundred bars cannot be expected to meet the production thresholds (config/governance.yaml),
and this test is about the stack, not the model; the gates still evaluate every check.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow_stack import AirflowStack, AirflowStackError, free_port, temporary_postgres_database
from builders import TINY_RUN

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MODEL = "trading-policy"
POLICY = Path(__file__).parent / "fixtures" / "governance_smoke.yaml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TINY_TRAINING = {**TINY_RUN, "hpo_workers": 1, "seeds": [0, 1]}  # two seeds: the Sharpe CI the governance gate requires
"""The training DAG's params for a run of seconds per task (cf. tests/test_training_dag.py)."""
TRAINING_TASKS = {
    "prepare",
    "resolve",
    "hpo_worker",
    "select_params",
    "train_forecaster",
    "train_agent",
    "walk_forward",
    "register",
}


def _artifacts_dir() -> Path:
    root = Path(os.environ.get("TEST_ARTIFACTS_DIR") or REPO / "test-artifacts")
    path = root / "production_stack"
    path.mkdir(parents=True, exist_ok=True)
    return path


class Phases:
    """Wall time of each phase: printed as it ends (past pytest's capture) and kept in ``phases.json``."""

    def __init__(self, config: pytest.Config, out: Path) -> None:
        self._capture = config.pluginmanager.getplugin("capturemanager")
        self.out = out
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 1)
            self.say(f"[production stack] {name}: {self.seconds[name]:.1f} s")
            (self.out / "phases.json").write_text(json.dumps(self.seconds, indent=2))

    def say(self, line: str) -> None:
        disabled = self._capture.global_and_fixture_disabled() if self._capture else contextlib.nullcontext()
        with disabled:
            print(line, flush=True)


class MlflowServer:
    """``mlflow server`` on a PostgreSQL backend store with proxied artifacts, on a free port."""

    def __init__(self, backend_uri: str, artifacts: Path, log_path: Path, startup_timeout: float = 120.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        argv = [
            str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", str(artifacts), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TRADING_"))}
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                # The job runner (GenAI jobs: seven huey consumers, ~250 MB each) serves nothing here.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            }
        )
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._http = requests.Session()
        try:
            self._wait_healthy(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout: float) -> None:
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AirflowStackError(f"mlflow server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                resp = self._http.get(f"{self.url}/health", timeout=5)
                if resp.ok:
                    return
                last = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(1.0)
        raise AirflowStackError(f"mlflow server not healthy within {timeout:.0f} s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``/api/2.0/mlflow/<path>``; the decoded JSON (an HTTP error carries the body)."""
        resp = self._http.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
        if not resp.ok:
            raise AirflowStackError(f"MLflow {method} {path} -> HTTP {resp.status_code}: {resp.text[:1000]}")
        return resp.json()

    def stop(self, grace: float = 10.0) -> None:
        self._http.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the workers, whatever happened
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def postgres_base() -> str:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set: the production stack needs PostgreSQL (.ci/run sets it)")
    return base


@pytest.fixture(scope="module")
def phases(request: pytest.FixtureRequest) -> Phases:
    return Phases(request.config, _artifacts_dir())


@pytest.fixture(scope="module")
def mlflow_server(
    postgres_base: str, phases: Phases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    home = tmp_path_factory.mktemp("mlflow-server")
    with temporary_postgres_database(postgres_base, "mlflow_test") as url:
        with phases("mlflow server up (PostgreSQL store, migrations)"):
            server = MlflowServer(url, home / "artifacts", home / "mlflow-server.log")
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def trading(
    postgres_base: str, mlflow_server: MlflowServer, phases: Phases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The app DB (PostgreSQL), a trading home, and the TRADING_* variables that point the tasks at them
    and at the MLflow server; a planted-trend market and its feature set are seeded in the lake."""
    from builders import trending_feature_set

    from trading_core.config import get_settings
    from trading_core.db.session import make_engine

    home = tmp_path_factory.mktemp("trading-home")
    with temporary_postgres_database(postgres_base, "trading_test") as url:
        env = {
            "TRADING_HOME": str(home),
            "TRADING_DATABASE_URL": url,
            "TRADING_MLFLOW_TRACKING_URI": mlflow_server.url,
            "TRADING_GOVERNANCE_POLICY": str(POLICY),
        }
        try:
            with phases("seed market data and feature set (app DB on PostgreSQL)"), pytest.MonkeyPatch.context() as mp:
                for key, value in env.items():
                    mp.setenv(key, value)
                _, feature_set = trending_feature_set(get_settings(), home)
            yield {"env": env, "feature_set_version": feature_set}
        finally:
            make_engine(url).dispose()


@pytest.fixture(scope="module")
def stack(
    postgres_base: str, trading: dict[str, Any], phases: Phases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-stack")
    with temporary_postgres_database(postgres_base, "airflow_test") as url:
        with phases("airflow stack up (migrate PostgreSQL, 4 components healthy)"):
            running = AirflowStack(REPO / "dags", home, db_url=url, env=trading["env"], startup_timeout=240)
            running.start()
        try:
            with phases("DAGs parsed, unpaused, pool gpu created"):
                running.create_pool("gpu", 1, "Model training (HPO workers, forecaster): one slot per GPU")
                for dag_id in ("training", "promotion"):
                    running.wait_for_dag(dag_id, timeout=120)
                    running.unpause(dag_id)
            yield running
        finally:
            running.stop()


def _wait_or_fail(stack: AirflowStack, dag_id: str, run_id: str, timeout: float, side: Callable[[], None]) -> str:
    """Wait for a terminal state of the run, calling ``side`` every second meanwhile."""

    def probe() -> str | None:
        side()
        state = stack.run_state(dag_id, run_id)
        return state if state in {"success", "failed"} else None

    return stack.wait_until(f"run {dag_id}/{run_id} to finish", probe, timeout, dag_id, run_id)


def _tags(model_version: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in model_version.get("tags", [])}


@pytest.fixture(scope="module")
def lifecycle(
    stack: AirflowStack, mlflow_server: MlflowServer, trading: dict[str, Any], phases: Phases
) -> dict[str, Any]:
    """Training run -> candidate version (approved by a reviewer in MLflow) -> asset-triggered promotion.

    The reviewer tags the version as soon as it is registered: the promotion run reaches its approval
    sensor only after its drift and governance gates (tens of seconds later), and a sensor that found
    no review would look again only after its poke interval (10 minutes)."""
    conf = {**TINY_TRAINING, "feature_set_version": trading["feature_set_version"]}
    approved: dict[str, str] = {}

    def approve_when_registered() -> None:
        """The reviewer: tag approval=approved on the version as soon as this run registered it."""
        if approved:
            return
        found = mlflow_server.api("GET", "model-versions/search", params={"filter": f"name='{MODEL}'"})
        for version in found.get("model_versions", []):
            if _tags(version).get("airflow.dag_run") == f"training:{run_id}":
                for key, value in {"approval_by": "production-stack-test", "approval": "approved"}.items():
                    body = {"name": MODEL, "version": version["version"], "key": key, "value": value}
                    mlflow_server.api("POST", "model-versions/set-tag", json=body)
                approved["version"] = str(version["version"])

    with phases("training run (tiny) through the REST API"):
        run_id = stack.trigger("training", conf)
        training_state = _wait_or_fail(stack, "training", run_id, 420, approve_when_registered)
        approve_when_registered()  # registered between the last look and the end of the run
    result: dict[str, Any] = {"training_run": run_id, "training_state": training_state, **approved}
    if training_state != "success" or not approved:
        return result

    def promotion_run() -> str | None:
        runs = stack.api("GET", "/api/v2/dags/promotion/dagRuns", params={"order_by": "-start_date"})["dag_runs"]
        return next((str(r["dag_run_id"]) for r in runs if r["run_type"] == "asset_triggered"), None)

    with phases("asset-triggered promotion run"):
        promotion_id = stack.wait_until("the candidate_model asset to start a promotion run", promotion_run, 60)
        result["promotion_run"] = promotion_id
        result["promotion_state"] = _wait_or_fail(stack, "promotion", promotion_id, 240, lambda: None)
    return result


# ------------------------------------------------------------------------------------------------- tests


def _task_states(stack: AirflowStack, dag_id: str, run_id: str) -> dict[str, list[str]]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{requests.utils.quote(run_id, safe='')}/taskInstances"
    states: dict[str, list[str]] = {}
    for ti in stack.api("GET", path)["task_instances"]:
        states.setdefault(ti["task_id"], []).append(str(ti["state"]))
    return states


def test_training_registers_a_candidate_that_the_promotion_dag_crowns(
    lifecycle: dict[str, Any], stack: AirflowStack, mlflow_server: MlflowServer, trading: dict[str, Any]
) -> None:
    training = _task_states(stack, "training", lifecycle["training_run"])
    logs = stack.task_logs("training", lifecycle["training_run"], lines=30)
    assert lifecycle["training_state"] == "success", f"{training}\n{logs}"
    assert set(training) == TRAINING_TASKS and all(s == ["success"] for s in training.values()), training
    run = stack.api("GET", f"/api/v2/dags/training/dagRuns/{requests.utils.quote(lifecycle['training_run'], safe='')}")
    assert run["conf"]["feature_set_version"] == trading["feature_set_version"]
    assert run["run_type"] == "manual" and run["triggered_by"] == "rest_api"
    version = lifecycle["version"]

    promotion = _task_states(stack, "promotion", lifecycle["promotion_run"])
    logs = stack.task_logs("promotion", lifecycle["promotion_run"], lines=30)
    assert lifecycle["promotion_state"] == "success", f"{promotion}\n{logs}"
    passed = ("resolve_version", "drift_gate", "governance_gate", "choose_approval", "registry_approval")
    assert {task: promotion[task] for task in passed} == {task: ["success"] for task in passed}
    assert promotion["hitl_approval"] == ["skipped"] and promotion["enter_rollout"] == ["success"]
    events = stack.api("GET", "/api/v2/assets/events", params={"source_dag_id": "promotion"})["asset_events"]
    assert [(e["name"], e["extra"]["version"], e["extra"]["reason"]) for e in events] == [
        ("champion_model", version, "first champion")
    ], events

    registered = mlflow_server.api("GET", "registered-models/get", params={"name": MODEL})["registered_model"]
    aliases = {a["alias"]: a["version"] for a in registered.get("aliases", [])}
    assert aliases["champion"] == version, aliases
    detail = mlflow_server.api("GET", "model-versions/get", params={"name": MODEL, "version": version})
    model_version = detail["model_version"]
    assert model_version["status"] == "READY" and "champion" in model_version.get("aliases", [])
    tags = _tags(model_version)
    assert tags["airflow.dag_run"] == f"training:{lifecycle['training_run']}"
    assert tags["gate.governance"] == "passed" and tags["gate.approval"] == "passed" and tags["stage"] == "champion"
    assert model_version["source"].startswith(("models:/", "mlflow-artifacts:/")), model_version["source"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system's: Playwright never downloads a browser here)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":  # .ci/run installs it: a CI without it must not pass by skipping
            pytest.fail(f"{CHROMIUM} is missing on CI: .ci/run could not install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing: install it with `make browser` (CI's .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_airflow_and_mlflow_uis_in_a_browser(
    lifecycle: dict[str, Any], stack: AirflowStack, mlflow_server: MlflowServer, browser: Any, phases: Phases
) -> None:
    """Log in, open the training grid, trigger a run from the form with params changed, see the aliases."""
    from playwright.sync_api import expect

    shots = phases.out
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    try:
        with phases("browser: Airflow login and the training grid"):
            page.goto(f"{stack.base_url}/", wait_until="networkidle")
            expect(page.get_by_text("Sign into Airflow")).to_be_visible()
            page.get_by_label("Username").fill(stack.username)
            page.get_by_label("Password").fill(stack.password)
            page.screenshot(path=shots / "01-airflow-login.png")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{stack.base_url}/", wait_until="networkidle")

            page.goto(f"{stack.base_url}/dags/training", wait_until="networkidle")
            expect(page.get_by_role("heading", name="training")).to_be_visible()
            for task in sorted(TRAINING_TASKS - {"hpo_worker"}):  # the grid's task column
                expect(page.get_by_text(task, exact=True).first).to_be_visible()
            page.screenshot(path=shots / "02-airflow-training-grid.png")

        with phases("browser: trigger form with params changed"):
            before = {r["dag_run_id"] for r in stack.api("GET", "/api/v2/dags/training/dagRuns")["dag_runs"]}
            page.get_by_role("button", name="Trigger Dag", exact=True).click()
            form = page.get_by_role("dialog")
            expect(form.get_by_text("Run Parameters")).to_be_visible()
            page.wait_for_load_state("networkidle")
            # The form names each param's input element_<param> (its <label> is not tied to a text input).
            epochs = form.locator("input[name=element_epochs]")
            reason = form.locator("input[name=element_trigger_reason]")
            expect(epochs).to_have_value("20")  # the DAG's default
            epochs.fill("3")
            reason.fill("browser test: trigger form")
            reason.scroll_into_view_if_needed()
            page.screenshot(path=shots / "03-airflow-trigger-form.png")
            form.get_by_role("button", name="Trigger", exact=True).click()
            page.wait_for_url("**/dags/training/runs/**", wait_until="networkidle")
            expect(page.get_by_text("Dag Run Triggered").first).to_be_visible()  # the UI's toast
            page.screenshot(path=shots / "04-airflow-triggered-run.png")

            def new_run() -> dict[str, Any] | None:
                runs = stack.api("GET", "/api/v2/dags/training/dagRuns")["dag_runs"]
                return next((r for r in runs if r["dag_run_id"] not in before), None)

            run = stack.wait_until("the run triggered from the form", new_run, 30)
            # Only the form is under test: stop the full-size run it started (the UI unpauses on trigger).
            path = f"/api/v2/dags/training/dagRuns/{requests.utils.quote(run['dag_run_id'], safe='')}"
            stack.api("PATCH", path, json={"state": "failed"})
        assert run["run_type"] == "manual" and run["triggered_by"] == "ui", run
        assert run["conf"]["epochs"] == 3 and run["conf"]["trigger_reason"] == "browser test: trigger form"
        assert run["conf"]["hpo_workers"] == 2 and run["conf"]["seeds"] == [0, 1]  # untouched fields: defaults

        with phases("browser: MLflow registered model page"):
            version = lifecycle["version"]
            page.goto(f"{mlflow_server.url}/#/models/{MODEL}", wait_until="load")  # the MLflow UI keeps polling
            expect(page.get_by_role("heading", name=MODEL)).to_be_visible()
            expect(page.get_by_role("link", name=f"Version {version}", exact=True)).to_be_visible()
            for alias in ("champion", "candidate"):
                expect(page.get_by_text(re.compile(rf"^@\s*{alias}$"))).to_be_visible()
            page.screenshot(path=shots / "05-mlflow-registered-model.png")
    finally:
        page.screenshot(path=shots / "last-page.png")
        page.close()
