"""Static checks of the production-like stack (docker-compose.yml, .env.example, the Dockerfiles).

CI has no Docker engine, so `docker compose config` cannot run here: these tests parse the files
instead (YAML anchors and `<<:` merges resolved by yaml.safe_load) and check the deployment's
contracts: services, health checks, the CeleryExecutor and its GPU queue, secrets without defaults,
every variable documented, ports on a bind address, pinned images and installs under the lock.
Pure Python, no network.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_DOCKERFILE = ROOT / "deploy" / "airflow" / "Dockerfile"
MLFLOW_DOCKERFILE = ROOT / "mlflow" / "Dockerfile"
CELERY_REQUIREMENTS = ROOT / "deploy" / "airflow" / "requirements-celery.txt"
AUTH_SCRIPT = ROOT / "deploy" / "airflow" / "write_simple_auth_passwords.py"

ONE_SHOTS = {"minio-create-bucket", "airflow-init"}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
    "flower",
}
LONG_RUNNING = {"postgres", "redis", "nats", "minio", "mlflow"} | (AIRFLOW_SERVICES - ONE_SHOTS)
SECRETS = {
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "NATS_TOKEN",
}
"""Required by every `docker compose up`: written `${NAME:?message}`."""
PROFILE_SECRETS = {"FLOWER_BASIC_AUTH": "flower"}
"""Required only with a profile (secret -> profile): checked by the profile's container when it starts,
because compose interpolates (and so enforces `:?` in) the whole file whatever the active profiles."""

# `${NAME`, `${NAME:-default}`, `${NAME:?message}`...; `$${NAME}` is compose's escape for a shell variable.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
# "${BIND_ADDRESS:-127.0.0.1}:${AIRFLOW_PORT:-8080}:8080": host address, host port, container port.
PORT = re.compile(r"\$\{BIND_ADDRESS:-127\.0\.0\.1\}:\$\{[A-Z_]+_PORT:-\d+\}:(\d+)")
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][0-9A-Za-z.+!-]*$")


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(raw: str) -> dict[str, Any]:
    loaded = yaml.safe_load(raw)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_example_entries() -> dict[str, str]:
    """NAME=value lines of .env.example (comments, including commented-out examples, are not entries)."""
    entries: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        assert name not in entries, f".env.example: {name} twice"
        entries[name] = value
    return entries


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(arg) for arg in command]


def test_required_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == LONG_RUNNING | ONE_SHOTS
    assert services["redis"]["image"].startswith("redis:")
    assert services["postgres"]["image"].startswith("postgres:")
    for name in AIRFLOW_SERVICES:
        assert services[name]["build"]["dockerfile"] == "deploy/airflow/Dockerfile", name
    assert command_args(services["airflow-apiserver"]) == ["api-server"]
    assert command_args(services["airflow-scheduler"]) == ["scheduler"]
    assert command_args(services["airflow-dag-processor"]) == ["dag-processor"]
    assert command_args(services["airflow-triggerer"]) == ["triggerer"]
    flower = command_args(services["flower"])
    assert flower[:2] == ["bash", "-c"] and flower[2].endswith("exec airflow celery flower")  # after its auth check
    init = " ".join(command_args(services["airflow-init"]))
    assert "airflow db migrate" in init and "trading db upgrade" in init
    assert "airflow pools set gpu" in init


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert services[name]["restart"] in {"unless-stopped", "always"}, name
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("airflow-worker", "airflow-worker-gpu"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping" in test
        assert '-d "celery@$${HOSTNAME}"' in test  # `$$`: the container's shell expands it, not compose
    flower = services["flower"]["healthcheck"]["test"]
    assert flower[0] == "CMD" and flower[1] == "curl" and flower[-1].startswith("http://localhost:5555/")


def test_one_shots_do_not_restart(services: dict[str, dict[str, Any]]) -> None:
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name
        assert "healthcheck" not in services[name], name
    # Services that wait for a one-shot wait for its successful exit, not for it to be "started".
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            if target in ONE_SHOTS:
                assert spec["condition"] == "service_completed_successfully", (name, target)


def test_celery_executor_with_redis_broker(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", env["AIRFLOW__CELERY__BROKER_URL"])
        backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+postgresql+psycopg2://") and backend.endswith("@postgres:5432/airflow")
        # The components share one configuration: the same secrets in every Airflow container.
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?"), name
        assert env["AIRFLOW__CORE__FERNET_KEY"].startswith("${AIRFLOW_FERNET_KEY:?"), name
    worker = services["airflow-worker"]
    assert command_args(worker)[:2] == ["celery", "worker"]
    args = command_args(worker)
    assert args[args.index("--queues") + 1] == "default"
    assert environment(worker)["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
    assert "profiles" not in worker  # the default worker always runs
    for name in ("airflow-worker", "airflow-worker-gpu", "airflow-scheduler", "airflow-apiserver"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_gpu_worker(services: dict[str, dict[str, Any]]) -> None:
    gpu = services["airflow-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    args = command_args(gpu)
    assert args[:2] == ["celery", "worker"]
    assert args[args.index("--queues") + 1] == "gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1
    assert devices[0]["driver"] == "nvidia"
    assert devices[0]["capabilities"] == ["gpu"]
    assert devices[0].get("count", "all") == "all" or int(devices[0]["count"]) >= 1
    # Its own image: the same Dockerfile with a CUDA build of torch.
    assert gpu["build"]["args"]["TORCH_CUDA"] == "true"
    assert gpu["image"] != services["airflow-worker"]["image"]
    assert services["flower"]["profiles"] == ["flower"]
    # Nothing else needs a GPU or sits behind a profile.
    for name, service in services.items():
        if name not in {"airflow-worker-gpu", "flower"}:
            assert "profiles" not in service, name
            assert "deploy" not in service, name


def test_every_variable_is_documented_in_env_example(raw: str) -> None:
    used = {match.group(1) for match in VARIABLE.finditer(raw)}
    documented = set(env_example_entries())
    assert used - documented == set(), "used in docker-compose.yml, missing from .env.example"
    assert documented - used == set(), "stale in .env.example: not used by docker-compose.yml"
    assert used >= SECRETS | set(PROFILE_SECRETS)
    # Each entry carries a comment on the line above it.
    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[index - 1].startswith("# ") and len(lines[index - 1]) > 10, f"no comment above {line!r}"


def test_secrets_are_required_and_have_no_default(raw: str) -> None:
    forms: dict[str, set[str]] = {}
    for match in VARIABLE.finditer(raw):
        forms.setdefault(match.group(1), set()).add(match.group(2))
    for name in SECRETS:
        assert forms[name], name
        for form in forms[name]:
            assert form.startswith(":?"), f"{name} used as ${{{name}{form}}}: secrets must use the :? form"
            assert ".env" in form, f"{name}: the error message should point at .env"
    # The placeholders in .env.example are not real secrets.
    entries = env_example_entries()
    for name in SECRETS:
        assert "change-me" in entries[name], name
    # A profile's secret: no `:?` (that would be enforced without the profile too) and no default value
    # (a default would be a known credential); only its profile's services see it.
    for name, profile in PROFILE_SECRETS.items():
        assert forms[name] <= {"", ":-"}, f"{name} used as {forms[name]}: no :? and no default"
        users = {s for s, service in services_of(raw).items() if any(name in v for v in environment(service).values())}
        assert users and all(services_of(raw)[user].get("profiles") == [profile] for user in users), users
        assert entries[name] == "", f".env.example: {name} must be empty (its container refuses an empty value)"


def services_of(raw: str) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(raw)["services"]


# `$$`, or `${NAME...}` with an operator: the subset of compose's interpolation this file uses.
_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class ComposeRefused(Exception):
    """What `docker compose` reports for an unset `${NAME:?message}`."""


def interpolate(value: str, env: dict[str, str]) -> str:
    """``value`` as compose interpolates it from the host environment / .env ``env`` (compose spec:
    ``${X}``, ``${X:-default}``, ``${X-default}``, ``${X:?err}``, ``${X?err}``; ``$$`` is a literal ``$``)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        present, current = name in env, env.get(name, "")
        if op in (":-", ":?"):
            present = bool(current)
        if op and op.endswith("?") and not present:
            raise ComposeRefused(f"required variable {name} is missing a value: {arg}")
        if op and op.endswith("-") and not present:
            return arg
        return current

    return _INTERPOLATION.sub(one, value)


def interpolate_file(services: dict[str, dict[str, Any]], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every service's environment and command interpolated, as compose does before it applies profiles."""
    return {
        name: {
            "environment": {key: interpolate(value, env) for key, value in environment(service).items()},
            "command": [interpolate(arg, env) for arg in command_args(service)],
        }
        for name, service in services.items()
    }


def test_compose_starts_without_the_flower_secret_but_not_without_a_required_one(
    services: dict[str, dict[str, Any]],
) -> None:
    """Interpolation covers inactive profiles too: a plain `docker compose up` must not need FLOWER_BASIC_AUTH."""
    host = {name: "dummy-Secret_1" for name in SECRETS}
    resolved = interpolate_file(services, host)  # FLOWER_BASIC_AUTH unset: no refusal
    assert resolved["flower"]["environment"]["FLOWER_BASIC_AUTH"] == ""
    for name in SECRETS:
        with pytest.raises(ComposeRefused, match=name):
            interpolate_file(services, {k: v for k, v in host.items() if k != name})


@pytest.mark.parametrize(
    ("value", "starts"),
    [
        (None, False),  # unset in .env
        ("", False),  # .env.example's value
        ("change-me:change-me", False),
        ("alice", False),  # no password
        (":pw", False),
        ("alice:", False),
        ("alice:s3cret-Flower_1", True),
        ("alice:s3cret-Flower_1,bob:An0ther_pw", True),  # flower takes a comma-separated list
    ],
)
def test_flower_does_not_start_without_basic_auth(
    services: dict[str, dict[str, Any]], tmp_path: Path, value: str | None, starts: bool
) -> None:
    """The flower container's command, run by bash as in the container, with `airflow` faked: it execs
    `airflow celery flower` (which reads FLOWER_BASIC_AUTH from its environment) only with credentials."""
    host = {name: "dummy-Secret_1" for name in SECRETS} | ({} if value is None else {"FLOWER_BASIC_AUTH": value})
    flower = interpolate_file(services, host)["flower"]
    fake = tmp_path / "bin" / "airflow"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGV_OUT"\nprintf "%s" "$FLOWER_BASIC_AUTH" > "$AUTH_OUT"\n')
    fake.chmod(0o755)
    env = {
        **flower["environment"],
        "PATH": f"{fake.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "ARGV_OUT": str(tmp_path / "argv"),
        "AUTH_OUT": str(tmp_path / "auth"),
    }
    done = subprocess.run(flower["command"], env=env, capture_output=True, text=True, timeout=30, check=False)
    if starts:
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "argv").read_text().split() == ["celery", "flower"]  # the secret on no command line
        assert (tmp_path / "auth").read_text() == value  # flower gets it from its environment
    else:
        assert done.returncode == 1 and not (tmp_path / "argv").exists(), "flower started without basic auth"
        assert "FLOWER_BASIC_AUTH" in done.stderr and ".env" in done.stderr
        assert not value or value not in done.stdout + done.stderr


def test_no_literal_credentials(raw: str, services: dict[str, dict[str, Any]]) -> None:
    assert "admin:admin" not in raw
    assert not re.search(r"(?i)password[\w-]*\s*[:=]\s*['\"]?(?!\$\{)\w", raw), "literal password in compose"
    # URLs carry credentials only through variables: no `user:literal@host`.
    for userinfo in re.findall(r"://([^/@\s]+)@", raw):
        user, _, password = userinfo.partition(":")
        assert password == "" or password.startswith("${"), userinfo
    for name, service in services.items():
        for key, value in environment(service).items():
            if re.search(r"PASSWORD|SECRET|FERNET|_AUTH$", key):
                assert value.startswith("${") or value.startswith("/"), (name, key, value)


def test_no_secret_on_a_command_line(services: dict[str, dict[str, Any]]) -> None:
    """Compose would write an interpolated secret into the process's argv, visible to `ps`.

    A shell builtin reading `$${VAR}` from the container's environment (redis writes its config
    file with printf) starts no process, so only compose interpolation `${SECRET...}` is refused.
    """
    for name, service in services.items():
        text = " ".join(command_args(service) + [str(arg) for arg in service.get("entrypoint") or []])
        interpolated = {match.group(1) for match in VARIABLE.finditer(text)}
        assert interpolated & (SECRETS | set(PROFILE_SECRETS)) == set(), name
        assert "--requirepass" not in text and "--basic-auth" not in text, name
        assert "mc alias set" not in text, name
    redis = " ".join(command_args(services["redis"]))
    assert "exec redis-server /tmp/redis.conf" in redis and "umask 077" in redis


def test_csv_ingests_read_only_the_read_only_incoming_mount(services: dict[str, dict[str, Any]]) -> None:
    """docs/security.md: in the stack a csv ingest may read nothing but the vendor-file mount, read-only."""
    for name in AIRFLOW_SERVICES - {"airflow-init", "airflow-apiserver"}:  # the services that run or parse tasks
        roots = json.loads(environment(services[name])["TRADING_INGEST_ROOTS"])
        assert roots, name
        read_only = {  # container path -> mounted read-only (short syntax SOURCE:TARGET[:ro])
            volume.removesuffix(":ro").rsplit(":", 1)[1]: volume.endswith(":ro") for volume in services[name]["volumes"]
        }
        for root in roots:
            assert read_only.get(root) is True, (name, root, services[name]["volumes"])


def test_published_ports_bind_to_the_bind_address(services: dict[str, dict[str, Any]]) -> None:
    published = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert isinstance(port, str), (name, port)
            match = PORT.fullmatch(port)
            assert match, f"{name}: {port!r} does not bind to ${{BIND_ADDRESS:-127.0.0.1}}"
            published[name] = published.get(name, []) + [match.group(1)]
    assert published == {
        "postgres": ["5432"],
        "nats": ["4222"],
        "minio": ["9000", "9001"],
        "mlflow": ["5000"],
        "airflow-apiserver": ["8080"],
        "flower": ["5555"],
    }
    assert "ports" not in services["redis"]
    assert env_example_entries()["BIND_ADDRESS"] == "127.0.0.1"


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in services.values():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if not volume.startswith("${") else volume.split("}", 1)[0] + "}"
            if not source.startswith((".", "/", "${")):  # a bind mount (a path, or a variable holding one)
                used.add(source)
    assert used == declared
    assert {"postgres-data", "airflow-logs", "airflow-auth", "trading-home"} <= used
    auth_users = {name for name, s in services.items() if "airflow-auth:/opt/airflow/auth" in (s.get("volumes") or [])}
    assert auth_users == {"airflow-init", "airflow-apiserver"}


def test_depends_on_targets_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), name
        for target, spec in depends.items():
            assert target in services, (name, target)
            assert target != name
            assert "profiles" not in services[target], (name, target)  # never on an optional service
            assert spec["condition"] in {"service_healthy", "service_completed_successfully"}, (name, target)


def test_images_are_pinned(raw: str, services: dict[str, dict[str, Any]]) -> None:
    def resolve(image: str) -> str:  # `${VAR:-default}` -> default
        return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", image)

    for name, service in services.items():
        image = resolve(service["image"])
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (name, image)
    assert ":latest" not in raw
    for dockerfile in (AIRFLOW_DOCKERFILE, MLFLOW_DOCKERFILE):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                base = line.split()[1]
                assert ":" in base and not base.endswith(":latest"), (dockerfile, base)


def test_dockerfiles_install_under_the_lock() -> None:
    text = AIRFLOW_DOCKERFILE.read_text()
    installs = [line for line in text.replace("\\\n", " ").splitlines() if "pip install" in line]
    requirement_installs = [line for line in installs if " -r " in line or "/opt/trading-src " in line]
    assert requirement_installs
    for line in requirement_installs:
        assert "-c /opt/trading-src/requirements.txt" in line, line
    assert any("-r /opt/trading-src/requirements-celery.txt" in line for line in installs)
    assert "deploy/airflow/requirements-celery.txt" in text
    assert "FROM apache/airflow:3.3.2-" in text
    # The MLflow server uses the lock's versions of mlflow and psycopg2.
    lock = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    mlflow_text = MLFLOW_DOCKERFILE.read_text()
    assert f"ARG MLFLOW_VERSION={lock['mlflow']}" in mlflow_text
    assert f"ARG PSYCOPG2_VERSION={lock['psycopg2-binary']}" in mlflow_text


def test_celery_requirements_are_exact_pins() -> None:
    names = set()
    for line in CELERY_REQUIREMENTS.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            assert PIN.match(requirement), f"not an exact pin: {line!r}"
            names.add(re.sub(r"[-_.]+", "-", requirement.split("==")[0]).lower())
    assert {"apache-airflow-providers-celery", "celery", "kombu", "redis", "flower"} <= names
    # Only what the lock lacks: a second pin of a locked package could contradict the lock.
    locked = {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert names & locked == set()


def test_env_file_is_ignored_by_git_and_docker() -> None:
    gitignore = (ROOT / ".gitignore").read_text().splitlines()
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in gitignore
    assert ".env" in dockerignore
    assert ".env.example" not in gitignore


def test_auth_passwords_file_is_written_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "passwords.json"
    path.write_text('{"admin": "old"}\n')
    path.chmod(0o644)
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(path),
        "AIRFLOW_ADMIN_USER": "alice",
        "AIRFLOW_ADMIN_PASSWORD": "s3cret-Value_1",
    }
    done = subprocess.run([sys.executable, str(AUTH_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(path.read_text()) == {"alice": "s3cret-Value_1"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "s3cret" not in done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["passwords.json"]  # no temporary file left

    env["AIRFLOW_ADMIN_PASSWORD"] = ""
    refused = subprocess.run([sys.executable, str(AUTH_SCRIPT)], env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 2
    assert json.loads(path.read_text()) == {"alice": "s3cret-Value_1"}  # left as it was


def test_auth_passwords_file_is_configured_where_it_is_used(services: dict[str, dict[str, Any]]) -> None:
    init = services["airflow-init"]
    api = services["airflow-apiserver"]
    key = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    assert environment(init)[key] == environment(api)[key] == "/opt/airflow/auth/simple_auth_manager_passwords.json"
    assert environment(init)["AIRFLOW_ADMIN_PASSWORD"].startswith("${AIRFLOW_ADMIN_PASSWORD:?")
    assert "AIRFLOW_ADMIN_PASSWORD" not in environment(api)  # only the one-shot sees the plain password
    assert "write_simple_auth_passwords.py" in " ".join(command_args(init))
    assert "write_simple_auth_passwords.py" in AIRFLOW_DOCKERFILE.read_text()
    assert environment(api)["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "${AIRFLOW_ADMIN_USER:-admin}:admin"
