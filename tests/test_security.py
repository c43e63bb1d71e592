"""Security and robustness defaults (docs/security.md): the bandit gate, pickle-free model loading,
untrusted symbols / version ids / paths refused, no passwords in logs or messages, the embedded UIs on
127.0.0.1 with authentication on.

The bandit gate fails ``make test`` on any finding of **High** severity, and on **Medium** severity
reported with **High** confidence. High severity is always a real risk class (shell injection,
unsafe deserialisation, disabled TLS checks...). Medium findings are gated only at High confidence:
at Medium/Low confidence bandit's medium checks are mostly heuristics (e.g. B108 "hard-coded /tmp",
B608 "string-built SQL" on any f-string that contains SELECT) whose false positives would make the
suite flaky to edit; they, and every Low finding, are shown by ``make security``, which exits non-zero
on any finding, so each is either fixed or marked ``# nosec BXXX`` with its reason.
"""

from __future__ import annotations

import ast
import builtins
import json
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import ValidationError

from trading_core.errors import ConfigError, DatasetNotFound
from trading_core.security import redact_url, resolve_input_file

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("trading_core", "dags", "plugins")
SECRET = "S3cr3t-pw"
DB_URL = f"postgresql+psycopg2://trading:{SECRET}@db.internal:5432/trading"


def _python_files() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*.py"))


# ------------------------------------------------------------------------------------------- bandit


def _gated(issue: dict) -> bool:
    severity, confidence = issue["issue_severity"], issue["issue_confidence"]
    return severity == "HIGH" or (severity == "MEDIUM" and confidence == "HIGH")


def test_bandit_finds_no_high_severity_issue() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", *SCANNED, "-c", "pyproject.toml", "-f", "json", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 1), f"bandit did not run (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    assert not report["errors"], f"bandit could not scan: {report['errors']}"
    assert report["metrics"]["_totals"]["loc"] > 1000, "bandit scanned (almost) nothing: wrong targets?"
    gated = [
        f"{i['filename']}:{i['line_number']} {i['test_id']} {i['issue_severity']}/{i['issue_confidence']}: "
        f"{i['issue_text']}"
        for i in report["results"]
        if _gated(i)
    ]
    assert not gated, "bandit findings (fix them, or `# nosec BXXX` with the reason):\n" + "\n".join(gated)


def test_the_gate_rule() -> None:
    issue = {"issue_severity": "LOW", "issue_confidence": "HIGH"}
    assert not _gated(issue)
    assert _gated({**issue, "issue_severity": "HIGH", "issue_confidence": "LOW"})
    assert _gated({**issue, "issue_severity": "MEDIUM"})
    assert not _gated({"issue_severity": "MEDIUM", "issue_confidence": "MEDIUM"})


# ------------------------------------------------------------------------------- model loading


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return None


UNPICKLERS = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def test_every_torch_load_is_weights_only_and_nothing_unpickles() -> None:
    bad: list[str] = []
    torch_loads = 0
    for path in _python_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] in UNPICKLERS:
                        bad.append(f"{where}:{node.lineno} imports {name}")
        for call in _calls(tree):
            name = _dotted(call.func)
            if name == "torch.load" or name.endswith(".torch.load"):
                torch_loads += 1
                if _keyword(call, "weights_only") is not True:
                    bad.append(f"{where}:{call.lineno} torch.load without weights_only=True")
            if name in {"np.load", "numpy.load"} and _keyword(call, "allow_pickle") not in (None, False):
                bad.append(f"{where}:{call.lineno} np.load with allow_pickle")
    assert torch_loads >= 3, "the scan found no torch.load at all: has the loading code moved?"
    assert not bad, "\n".join(bad)


def test_a_plain_text_grep_agrees() -> None:
    """Belt and braces for the AST scan: every line with ``torch.load(`` says ``weights_only=True``."""
    pattern = re.compile(r"torch\.load\(")
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in _python_files()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and "weights_only=True" not in line
    ]
    assert not offenders, offenders


class _Payload:
    """Unpickling this runs ``exec``: it writes ``marker``. A weights-only loader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _write_payload(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weights": _Payload(marker)}, path)
    return path


def test_the_payload_really_executes_when_unpickled(tmp_path: Path) -> None:
    """The payload is live: a plain ``pickle``-based load runs it (so the refusals below mean something)."""
    marker = tmp_path / "marker"
    torch.load(_write_payload(tmp_path / "evil.pt", marker), weights_only=False)  # the control experiment
    assert marker.read_text() == "pwned"


def test_the_forecaster_loader_refuses_a_pickle_payload(tmp_path: Path) -> None:
    from trading_core.forecast.model import ForecasterConfig
    from trading_core.forecast.pyfunc_model import load_ensemble

    marker = tmp_path / "marker"
    config = tmp_path / "forecaster_config.json"
    config.write_text(json.dumps(ForecasterConfig(input_dim=4, seq_len=8, ensemble_size=1).as_dict()))
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        load_ensemble(config, _write_payload(tmp_path / "ensemble.pt", marker))
    assert not marker.exists()


def test_the_training_checkpoint_refuses_a_pickle_payload(tmp_path: Path) -> None:
    from trading_core.forecast.train import Checkpoint

    marker = tmp_path / "marker"
    checkpoint = Checkpoint(tmp_path / "ckpt", "fingerprint")
    _write_payload(checkpoint.path, marker)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        checkpoint.load()
    assert not marker.exists()


def test_the_agent_loader_refuses_a_pickle_payload(tmp_path: Path) -> None:
    from trading_core.registry.actors import MEMBERS_FILE, AgentActor

    marker = tmp_path / "marker"
    actor = tmp_path / "actor"
    _write_payload(actor / "ppo.pt", marker)
    (actor / MEMBERS_FILE).write_text(json.dumps([{"name": "ppo", "algo": "ppo", "weight": 1.0, "policy_kwargs": {}}]))
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        AgentActor.load(actor, obs_dim=6, n_assets=2)
    assert not marker.exists()


# --------------------------------------------------------------------- symbols, versions, paths

LEGIT_SYMBOLS = ["AAPL", "BRK.B", "BF-B", "^GSPC", "^VIX", "BTC-USD", "ES=F", "EURUSD=X", "SYN000", "Bitstamp:BTC/USD"]
ATTACKS = [
    "",
    ".",
    "..",
    "../etc/passwd",
    "../../.trading/trading.db",
    "/etc/passwd",
    "/",
    "a/../b",
    "a\\b",
    "..\\..\\x",
    "C:\\Windows",
    "a\x00b",
    "AAPL\x00",
    "~root",
    " AAPL",
    "AAPL\n",
    "a b",
    "%2e%2e%2f",
    "$(id)",
    "x" * 41,
]


@pytest.mark.parametrize("symbol", LEGIT_SYMBOLS)
def test_real_symbols_are_accepted(symbol: str) -> None:
    from trading_core.data.request import IngestRequest
    from trading_core.data.schema import validate_symbol

    assert validate_symbol(symbol) == symbol
    assert IngestRequest(symbols=(symbol,), start="2024-01-01", end="2024-01-31").symbols == (symbol,)


@pytest.mark.parametrize("attack", ATTACKS)
def test_traversal_symbols_are_refused_everywhere(attack: str, tmp_path: Path) -> None:
    from trading_core.data.lake import Lake
    from trading_core.data.request import IngestRequest
    from trading_core.data.schema import validate_symbol

    with pytest.raises(ConfigError, match="invalid symbol"):
        validate_symbol(attack)
    with pytest.raises(ConfigError, match="invalid symbol"):
        Lake(tmp_path).partition_dir("feed", "1d", attack)
    with pytest.raises(ValidationError, match="invalid symbol"):
        IngestRequest(symbols=(attack, "AAPL"), start="2024-01-01", end="2024-01-31")


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09./\\:^=-_ ~%\x00\n")), min_size=0, max_size=12))
def test_any_accepted_symbol_is_one_folder_inside_the_lake(text: str) -> None:
    """Whatever the text: refused with ConfigError, or exactly one path component under its interval.

    Symbols may hold '/' and ':' because real pairs do (``Bitstamp:BTC/USD`` in the crypto files); the
    lake percent-encodes them, so they never act as separators."""
    from urllib.parse import unquote

    from trading_core.data.lake import Lake

    root = Path("/lake-root")
    try:
        directory = Lake(root).partition_dir("feed", "1d", text)
    except ConfigError:
        return
    parent = root / "ohlcv" / "feed=feed" / "interval=1d"
    assert directory.parent == parent
    assert ".." not in directory.parts and "/" not in directory.name and "\x00" not in directory.name
    assert unquote(directory.name.removeprefix("symbol=")) == text


def test_the_dag_forms_use_the_librarys_symbol_pattern() -> None:
    """The UI forms validate symbols with the same pattern as the library (no drift between the two)."""
    from trading_core.data.schema import SYMBOL_RE

    for dag in ("dags/market_data_params.py", "trading_core/training_config.py"):  # the two forms' sources
        source = (ROOT / dag).read_text()
        assert SYMBOL_RE.pattern in source, dag


@pytest.mark.parametrize(
    "version", ["fs-../x", "../fs-1", "fs-1/..", "fs-", "fs-a/b", "fs-a\x00", "fs-\u0661\u0662", "ds-abc", "/fs-1", 7]
)
def test_feature_set_ids_that_are_not_one_plain_folder_are_refused(version: object, tmp_path: Path) -> None:
    from trading_core.features.store import FeatureStore

    with pytest.raises(DatasetNotFound, match="not a feature set version"):
        FeatureStore(tmp_path).path(version)  # type: ignore[arg-type]


def test_a_real_feature_set_id_is_a_folder_of_the_store(tmp_path: Path) -> None:
    from trading_core.features.store import FeatureStore

    assert FeatureStore(tmp_path).path("fs-0123456789abcdef0123") == tmp_path / "fs-0123456789abcdef0123"


@pytest.mark.parametrize("run_id", [".", "..", "../x", "a/b", "/tmp", ".hidden", "", "a\x00"])
def test_ingest_run_ids_cannot_leave_staging(run_id: str, settings) -> None:  # type: ignore[no-untyped-def]
    from trading_core.data import ingest

    with pytest.raises(ConfigError, match="invalid run id"):
        ingest._run_dir(settings, run_id)


@given(st.lists(st.text(max_size=80), min_size=1, max_size=3))
def test_derived_run_ids_are_always_one_staging_folder(parts: list[str]) -> None:
    from trading_core.data.ingest import _RUN_ID, run_id_for

    assert _RUN_ID.match(run_id_for("market_data", *parts))


def test_publish_refuses_a_batch_pointing_outside_staging(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A batch reference comes through XCom; publish deletes its folder, so it must be a staging run."""
    from trading_core.data.ingest import ValidatedBatch, publish

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "clean.parquet").write_text("not bars")
    batch = ValidatedBatch("run", {}, "feed", "1d", str(victim / "clean.parquet"), 1, 1, 0, {}, {}, 0.0)
    with pytest.raises(ConfigError, match="clean_path"):
        publish(batch, settings)
    assert (victim / "clean.parquet").exists()


# --------------------------------------------------------------------------------- ingest files


def test_an_input_file_is_resolved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "sub").mkdir()
    (data / "bars.csv").write_text("x")
    (data / "link.csv").symlink_to(data / "bars.csv")
    assert resolve_input_file(data / "bars.csv") == (data / "bars.csv").resolve()
    assert resolve_input_file(str(data / "sub" / ".." / "link.csv"), roots=[data]) == (data / "bars.csv").resolve()


def test_input_files_that_are_not_plain_files_inside_the_roots_are_refused(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text("password")
    (data / "escape.csv").symlink_to(outside / "secret.csv")
    (data / "loop").symlink_to(data / "loop")
    os.mkfifo(data / "fifo.csv")
    cases = {
        str(outside / "secret.csv"): "outside the allowed ingest roots",
        str(data / ".." / "outside" / "secret.csv"): "outside the allowed ingest roots",
        str(data / "escape.csv"): "outside the allowed ingest roots",  # the link is inside, its target is not
        "/etc/passwd": "outside the allowed ingest roots",
        str(data / "missing.csv"): "not found",
        str(data / "loop"): "not found",
        str(data): "not a regular file",
        str(data / "fifo.csv"): "not a regular file",
        "": "NUL byte",
        f"{data}/bars.csv\x00.png": "NUL byte",
    }
    for value, reason in cases.items():
        with pytest.raises(ConfigError, match=re.escape(reason)) as info:
            resolve_input_file(value, field="path", roots=[data])
        assert f"invalid path {value!r}" in str(info.value)


def test_the_csv_ingest_checks_its_path_against_the_allowed_roots(tmp_path: Path) -> None:
    from trading_core.config import get_settings
    from trading_core.data.providers import build_provider
    from trading_core.data.request import IngestRequest, request_from_params

    data = tmp_path / "data"
    data.mkdir()
    settings = get_settings(home=tmp_path / "home", ingest_roots=(data,))
    for path in ("/etc/passwd", str(data / ".." / "home" / "trading.db"), "../../../../etc/shadow"):
        request = request_from_params({"source": "csv", "path": path}, run_date=None)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=re.escape(f"invalid path {path!r}")):
            build_provider(request, settings)
    with pytest.raises(ValidationError, match="NUL byte"):
        IngestRequest(source="csv", path="/data/bars.csv\x00")
    # Without an allow-list (the local default) a real file is read, a device or folder never.
    unrestricted = get_settings(home=tmp_path / "home")
    with pytest.raises(ConfigError, match="not a regular file"):
        build_provider(IngestRequest(source="csv", path="/dev/zero"), unrestricted)


def test_ingest_roots_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from trading_core.config import get_settings

    monkeypatch.setenv("TRADING_INGEST_ROOTS", json.dumps([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert get_settings(home=tmp_path).ingest_roots == (tmp_path / "a", tmp_path / "b")


# ------------------------------------------------------------------------------ secrets in logs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (DB_URL, "postgresql+psycopg2://trading:***@db.internal:5432/trading"),
        ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p/ss@h/db", "postgresql://u:***@h/db"),
        ("https://user:tok@mlflow.example.com/api?x=1", "https://user:***@mlflow.example.com/api?x=1"),
        ("https://api.example.com/v2/aggs?apiKey=abc&limit=5", "https://api.example.com/v2/aggs?apiKey=***&limit=5"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:////home/me/.trading/trading.db", "sqlite:////home/me/.trading/trading.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("/just/a/path", "/just/a/path"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_agrees_with_sqlalchemy() -> None:
    from sqlalchemy.engine import make_url

    assert redact_url(DB_URL) == make_url(DB_URL).render_as_string(hide_password=True)


@pytest.fixture
def secret_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Settings whose app DB URL holds a password; the DB itself is stubbed (no server needed)."""
    from trading_core.config import get_settings
    from trading_core.db import lineage

    monkeypatch.setattr(lineage, "latest_dataset", lambda *a, **k: None)
    monkeypatch.setattr(lineage, "latest_feature_set", lambda *a, **k: None)
    return get_settings(home=tmp_path / "home", database_url=DB_URL)


def test_no_password_in_logs_or_errors_when_no_dataset_is_found(
    secret_settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    from trading_core.features import resolve as features_resolve
    from trading_core.forecast import resolve as forecast_resolve

    monkeypatch.setattr(features_resolve, "upgrade_database", lambda url: None)
    monkeypatch.setattr(forecast_resolve, "upgrade_database", lambda url: None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DatasetNotFound) as features_error:
        features_resolve.resolve_dataset_version(None, [], secret_settings)
    with pytest.raises(DatasetNotFound) as forecast_error:
        forecast_resolve.resolve_feature_set_version(None, [], secret_settings)
    for text in (str(features_error.value), str(forecast_error.value)):
        assert "trading:***@db.internal" in text and SECRET not in text
    assert SECRET not in caplog.text


def test_no_password_on_the_cli(secret_settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import argparse

    import trading_core.db as db
    from trading_core.cli import system as cli

    monkeypatch.setattr(db, "upgrade_database", lambda url: None)
    assert cli._db(argparse.Namespace(), secret_settings) == 0
    out = capsys.readouterr().out
    assert "trading:***@db.internal" in out and SECRET not in out


def test_secrets_are_not_in_the_settings_repr_of_the_api_key(tmp_path: Path) -> None:
    from trading_core.config import get_settings

    settings = get_settings(home=tmp_path, polygon_api_key="pk-123456")
    assert "pk-123456" not in repr(settings) and "pk-123456" not in str(settings.model_dump())


def test_the_app_db_url_is_a_secret_of_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings.database_url is a SecretStr: masked in every rendering of the object, plain only to connect."""
    from trading_core.config import Settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TRADING_DATABASE_URL", DB_URL)
    settings = Settings(home=tmp_path)
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert SECRET not in text
    assert settings.resolved_database_url == DB_URL  # what SQLAlchemy gets
    assert settings.safe_database_url == "postgresql+psycopg2://trading:***@db.internal:5432/trading"
    assert SECRET not in str(vars(settings))  # the plain URL is cached in no attribute
    monkeypatch.setenv("TRADING_DATABASE_URL", "")  # empty: the default, as before
    assert Settings(home=tmp_path).resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'trading.db'}"


def test_trading_info_masks_the_app_db_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from trading_core.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRADING_DATABASE_URL", DB_URL)
    monkeypatch.setenv("TRADING_MLFLOW_TRACKING_URI", f"https://reviewer:{SECRET}@mlflow.example.com")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    info = json.loads(out)
    assert info["database_url"] == "postgresql+psycopg2://trading:***@db.internal:5432/trading"
    assert info["mlflow_tracking_uri"] == "https://reviewer:***@mlflow.example.com"


def test_an_unreachable_app_db_is_a_message_without_the_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The real connection error (nothing listens on port 1), with debug logging: no traceback, no password."""
    from trading_core.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRADING_DATABASE_URL", f"postgresql+psycopg2://trading:{SECRET}@127.0.0.1:1/trading")
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "db", "upgrade"]) == 2
    captured = capsys.readouterr()
    assert "error: database unavailable" in captured.err and "Traceback" not in captured.err
    assert "postgresql+psycopg2://trading:***@127.0.0.1:1/trading" in captured.err
    assert SECRET not in captured.out + captured.err + caplog.text


def test_the_embedded_airflow_hands_the_app_db_url_to_its_tasks_in_the_environment(tmp_path: Path) -> None:
    from trading_core.config import get_settings
    from trading_core.embedded import airflow_env

    env = airflow_env(get_settings(home=tmp_path, database_url=DB_URL))
    assert env["TRADING_DATABASE_URL"] == DB_URL  # the tasks connect with it; the environment, not an argv
    assert "TRADING_DATABASE_URL" not in airflow_env(get_settings(home=tmp_path, database_url=None))


@pytest.mark.postgres
def test_no_password_in_output_or_logs_of_a_real_postgresql_session(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Migrate, ingest, list and show quarantine on PostgreSQL with a password in the URL (the server
    trusts local users, so the password is accepted and ignored), debug logging on: it shows up nowhere."""
    from sqlalchemy.engine import make_url

    from trading_core.cli import main

    url = make_url(postgres_url).set(password=SECRET).render_as_string(hide_password=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRADING_DATABASE_URL", url)
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "db", "upgrade"]) == 0
    upgraded = capsys.readouterr()
    assert "app DB at head: " in upgraded.out and SECRET not in upgraded.out + upgraded.err
    ingest = ["-v", "ingest", "--source", "synthetic", "--n-assets", "2", "--start", "2024-01-02"]
    assert main([*ingest, "--end", "2024-02-09", "--defect-rate", "0.05", "--max-bad-share", "0.5"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["-v", "datasets"]) == 0 and main(["-v", "quarantine", run_id]) == 0
    assert main(["-v", "quarantine", "no-such-run"]) != 0  # an error path too
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err + caplog.text
    assert "ds-" in captured.out


# ----------------------------------------------------------------------------- embedded servers


def test_the_mlflow_ui_binds_localhost_only(settings) -> None:  # type: ignore[no-untyped-def]
    from trading_core.embedded import mlflow_ui_command

    argv = mlflow_ui_command(settings, 5001)
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "5001"
    assert "0.0.0.0" not in argv


def test_the_embedded_airflow_binds_localhost_with_auth_on(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from trading_core.embedded import airflow_env

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")  # a shell that turned auth off
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")  # as if the shell asked for all interfaces
    env = airflow_env(settings, api_port=8099)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://127.0.0.1:8099/")


def test_airflow_defaults_keep_auth_on() -> None:
    """What the embedded env relies on: Airflow's own defaults do not turn authentication off."""
    import yaml

    config = yaml.safe_load(
        (Path(__import__("airflow").__file__).parent / "config_templates" / "config.yml").read_text()
    )
    core = config["core"]["options"]
    assert core["simple_auth_manager_all_admins"]["default"] == "False"
    assert core["auth_manager"]["default"].endswith("SimpleAuthManager")


def test_the_compose_stack_does_not_turn_auth_off() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"SIMPLE_AUTH_MANAGER_ALL_ADMINS\W+[\"']?true", compose, re.IGNORECASE)
