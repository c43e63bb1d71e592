"""``trading db|ui|info``: the app DB's migrations, the local UIs, the resolved settings.

trading db upgrade               # apply migrations to the app DB
trading ui                       # Airflow + MLflow UIs on the local stores
trading info                     # the resolved settings, secrets masked
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trading_core.config import Settings
from trading_core.security import redact_url


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database

    upgrade_database(settings.resolved_database_url)
    print(f"app DB at head: {redact_url(settings.resolved_database_url)}")
    return 0


def _ui(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.embedded import start_ui

    start_ui(settings, args.airflow_port, args.mlflow_port)
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    # Secrets masked: the app DB's password (redact_url) and the API key; a tracking URI may hold one too.
    data = settings.model_dump(mode="json")
    data["polygon_api_key"] = "***" if settings.polygon_api_key else None
    data.update(
        database_url=settings.safe_database_url,
        mlflow_tracking_uri=redact_url(settings.resolved_mlflow_tracking_uri),
        airflow_home=str(settings.resolved_airflow_home),
        lake_dir=str(settings.lake_dir),
    )
    print(json.dumps(data, indent=2))
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``db``, ``ui`` and ``info``."""
    p = sub.add_parser("db", help="app DB maintenance")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(func=_db)

    p = sub.add_parser("ui", help="start Airflow standalone and MLflow UI on the local stores")
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.set_defaults(func=_ui)

    sub.add_parser("info", help="show the resolved settings").set_defaults(func=_info)
