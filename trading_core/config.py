"""One configuration object for the whole platform.

Every path, URL and secret the code needs comes from :class:`Settings`; nothing else reads
environment variables or builds paths by hand. Values come from ``TRADING_*`` environment
variables or an optional ``.env`` file in the working directory, in that order of precedence.

Everything the embedded default needs lives under one home directory (``./.trading``): the
Parquet lake, staging files, the SQLite app DB, the MLflow store and the embedded Airflow home.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trading_core.security import redact_url


class Settings(BaseSettings):
    """Platform settings; every field maps to ``TRADING_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TRADING_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".trading"))
    """Root of all local state: lake, staging, SQLite stores, embedded Airflow home."""

    database_url: SecretStr | None = None
    """SQLAlchemy URL of the app DB (lineage, quarantine). Default: SQLite in ``home``. A secret: it may
    hold a password, so ``repr(settings)``, ``model_dump()`` and ``trading info`` show it masked; code
    that connects reads :attr:`resolved_database_url`, code that prints or logs it :attr:`safe_database_url`."""

    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI. Default: ``sqlite:///<home>/mlflow.db``."""

    mlflow_artifact_root: Path | None = None
    """Where a local MLflow store keeps artifacts. Default: ``<home>/mlartifacts``."""

    model_name: str = Field(default="trading-policy", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """Registered model of the policy versions (aliases candidate, challenger, champion)."""

    mlflow_ui_url: str | None = None
    """Base URL of the MLflow UI for links (task extra links, notes). Default: the tracking URI when it
    is an http(s) server, else ``http://127.0.0.1:5000`` (``make ui``)."""

    governance_policy: Path = Field(default=Path("config/governance.yaml"))
    """The governance policy file (thresholds the gates check)."""

    airflow_home: Path | None = None
    """AIRFLOW_HOME of the embedded mode (demo, ``make ui``). Default: ``<home>/airflow``."""

    dags_folder: Path = Field(default=Path("dags"))
    """DAG folder handed to the embedded Airflow (relative to the working directory)."""

    plugins_folder: Path = Field(default=Path("plugins"))
    """Plugins folder handed to the embedded Airflow (relative to the working directory)."""

    gpu_queue: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """Celery queue of the training tasks that use a GPU (pool ``gpu``): ``default`` runs them on any
    worker; the compose stack's ``gpu`` profile sets ``gpu`` so they run on ``airflow-worker-gpu``.
    Read when the DAG files are parsed; ignored by the LocalExecutor."""

    ingest_roots: tuple[Path, ...] | None = None
    """Folders a ``csv`` ingest may read files from (``TRADING_INGEST_ROOTS='["/data/vendor"]'``, JSON).
    Default: any existing regular file the process can read (the local CLI); set it where untrusted
    users can trigger the ingest DAG, e.g. the production stack. See docs/security.md."""

    approval_poke_interval_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    """Seconds between two looks of the ``mlflow_tag`` approval gate (``RegistryApprovalSensor``) for the
    reviewer's tag: how long an approval may wait unnoticed. Reschedule mode, so a waiting gate holds no
    worker slot; each look is one short task try. Read when the DAG files are parsed."""

    polygon_api_key: SecretStr | None = None
    """API key for the Polygon provider (an Airflow connection may supply it instead)."""

    http_timeout_s: float = 10.0
    """Timeout of one HTTP request made by a remote data provider."""

    seed: int = 42
    """Default seed for anything random (synthetic market, model initialisation)."""

    @field_validator("home", "dags_folder", "plugins_folder", "governance_policy", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Derived locations: properties, so there is one place that says where things live.
    @cached_property
    def lake_dir(self) -> Path:
        """Parquet lake root (``<home>/lake``)."""
        return self.home / "lake"

    @cached_property
    def staging_dir(self) -> Path:
        """Hand-off files between ingest tasks (``<home>/staging``)."""
        return self.home / "staging"

    @property
    def resolved_database_url(self) -> str:
        """The app DB URL to connect with, password included: hand it to SQLAlchemy, never to a log,
        a message or an XCom (a property, not cached, so the plain text is kept in no attribute)."""
        if self.database_url:  # an empty TRADING_DATABASE_URL means the default, as unset
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.home / 'trading.db'}"

    @property
    def safe_database_url(self) -> str:
        """:attr:`resolved_database_url` with its password masked (``redact_url``): safe to print and log."""
        return redact_url(self.resolved_database_url)

    @cached_property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @cached_property
    def resolved_mlflow_artifact_root(self) -> Path:
        return (self.mlflow_artifact_root or self.home / "mlartifacts").expanduser().resolve()

    @cached_property
    def resolved_mlflow_ui_url(self) -> str:
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        uri = self.resolved_mlflow_tracking_uri
        return uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"

    @cached_property
    def resolved_airflow_home(self) -> Path:
        return (self.airflow_home or self.home / "airflow").expanduser().resolve()

    def ensure_dirs(self) -> None:
        """Create the home and its standard folders (idempotent)."""
        for path in (self.home, self.lake_dir, self.staging_dir):
            path.mkdir(parents=True, exist_ok=True)


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
