from __future__ import annotations

from pathlib import Path

import pytest

from trading_core.config import Settings


def test_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.home == (tmp_path / ".trading").resolve()
    assert s.lake_dir == s.home / "lake"
    assert s.resolved_database_url == f"sqlite:///{s.home / 'trading.db'}"
    assert s.resolved_mlflow_tracking_uri == f"sqlite:///{s.home / 'mlflow.db'}"
    assert s.resolved_airflow_home == s.home / "airflow"
    assert s.resolved_mlflow_artifact_root == s.home / "mlartifacts"


def test_env_vars_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("TRADING_SEED=7\nTRADING_DATABASE_URL=postgresql://x@h/db\n")
    monkeypatch.setenv("TRADING_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("TRADING_SEED", "9")  # the environment beats .env
    s = Settings()
    assert s.home == tmp_path / "elsewhere"
    assert s.seed == 9
    assert s.resolved_database_url == "postgresql://x@h/db"


def test_secret_is_not_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings(polygon_api_key="sekret")
    assert "sekret" not in repr(s)
    assert s.polygon_api_key is not None and s.polygon_api_key.get_secret_value() == "sekret"
