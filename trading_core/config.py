"""One configuration object for the whole platform.

Every path, URL and secret the code needs comes from :class:`Settings`; nothing else reads
environment variables or builds paths by hand. Values come from ``TRADING_*`` environment
variables or an optional ``.env`` file in the working directory, in that order of precedence.

Everything the embedded default needs lives under one home directory (``./.trading``): the
Parquet lake, staging files, the SQLite app DB, the MLflow store and the embedded Airflow home.
"""

from __future__ import annotations

from datetime import datetime
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

    # --- live service transport (trading_core/serving/transport; docs/serving.md) ---------------------
    nats_url: str | None = None
    """NATS server(s) with JetStream, e.g. ``nats://127.0.0.1:4222`` (comma-separated for a cluster). None: the
    in-process transport (embedded demo, one process), which emulates the stream and consumer settings below."""

    nats_token: SecretStr | None = None
    """Token of a NATS server started with token auth (the compose stack's ``NATS_TOKEN``)."""

    nats_subject_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3})?$")
    """Prefix of every subject (``<prefix>.bars.>``...), so deployments or test runs can share one NATS account."""

    nats_bars_stream: str = Field(default="BARS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """JetStream stream of the bars (subjects ``bars.>``)."""

    nats_decisions_stream: str = Field(default="DECISIONS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Stream of the decisions (``decisions.>``)."""

    nats_dlq_stream: str = Field(default="DLQ", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Stream of the dead letters (``dlq.>``: outside ``bars.>``, so a dead letter is never consumed as a bar)."""

    nats_consumer: str = Field(default="decision-service", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """Durable pull consumer of the bars; replicas sharing it split the bars, a restart resumes from it."""

    nats_consume_from: datetime | None = None
    """Where a new consumer starts: None = every bar in the stream, else the bars stored from this time on
    (deliver policy by start time). An existing consumer keeps its position."""

    nats_max_ack_pending: int = Field(default=2048, ge=1)
    """Bars delivered but not yet acknowledged, at most; must exceed the universe size (a whole bar slice is
    held until its decision is booked) or the loop stalls."""

    nats_ack_wait_s: float = Field(default=30.0, gt=0)
    """A delivered bar not acknowledged within this is redelivered (to this or another replica)."""

    nats_max_age_days: float = Field(default=30.0, gt=0)
    """Retention of each stream (bars, decisions, dead letters): older messages are discarded."""

    nats_max_bytes: int = Field(default=1 << 30, ge=-1)
    """Size limit of each stream in bytes, oldest discarded first (-1: no limit)."""

    nats_duplicate_window_s: float = Field(default=3600.0, gt=0)
    """A publish with a Nats-Msg-Id seen within this window is stored once (replay retries, re-published
    decisions after a restart)."""

    nats_connect_attempts: int = Field(default=5, ge=1)
    """Tries to reach NATS at start before giving up with an error."""

    nats_connect_backoff_s: float = Field(default=0.5, gt=0)
    """Wait after the first failed try; doubled after each one, up to ``nats_connect_backoff_max_s``."""

    nats_connect_backoff_max_s: float = Field(default=8.0, gt=0)
    """Longest wait between two tries to connect."""

    nats_connect_timeout_s: float = Field(default=5.0, gt=0)
    """Time one connection try may take."""

    nats_reconnect_wait_s: float = Field(default=1.0, gt=0)
    """Pause between reconnection tries after a connected server went away."""

    nats_max_reconnect_attempts: int = Field(default=-1, ge=-1)
    """Reconnection tries after a connected server went away (-1: forever; the stream keeps the bars meanwhile)."""

    nats_publish_timeout_s: float = Field(default=30.0, gt=0)
    """How long one publish keeps retrying (through a reconnect) before it fails."""

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
