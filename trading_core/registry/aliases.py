"""The registry's life cycle of a policy version: aliases ``candidate`` -> ``challenger`` -> ``champion``.

Every move is one MLflow alias call (an alias points at exactly one version, so re-pointing
``champion`` is atomic: readers of ``models:/<name>@champion`` see the old or the new version,
never none), version tags that say what happened and why, and a row in the audit table.

* :func:`set_challenger`: the version passed the gates and enters the A/B;
* :func:`crown`: the first version to pass the gates when there is no champion yet (nothing to A/B against);
* :func:`promote`: the challenger won the A/B: ``champion`` -> its version; the replaced champion is
  tagged ``previous_champion`` and the new one ``replaced_version`` so :func:`restore_previous_champion`
  can undo it;
* :func:`rollback`: the challenger lost (or a guard fired): alias removed, reason tagged.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trading_core.config import Settings
from trading_core.db import upgrade_database
from trading_core.db.audit import record_event
from trading_core.tracking import use_tracking_store

log = logging.getLogger(__name__)

CANDIDATE, CHALLENGER, CHAMPION = "candidate", "challenger", "champion"


@dataclass(frozen=True)
class AliasChange:
    name: str
    alias: str
    version: str | None
    previous: str | None
    event: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def client_for(settings: Settings) -> MlflowClient:
    use_tracking_store(settings)
    return MlflowClient(settings.resolved_mlflow_tracking_uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, None when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _audit(settings: Settings, event: str, name: str, version: str | None, decision: str, **kw: Any) -> None:
    upgrade_database(settings.resolved_database_url)
    record_event(settings.resolved_database_url, event=event, model_name=name, version=version, decision=decision, **kw)


def set_challenger(
    settings: Settings, name: str, version: str, *, actor: str | None = None, dag_run: str | None = None
) -> AliasChange:
    client = client_for(settings)
    client.get_model_version(name, version)  # exists, or MLflow raises
    previous = alias_version(client, name, CHALLENGER)
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "stage", CHALLENGER)
    client.set_model_version_tag(name, version, "challenger_since", _now())
    reasons = [
        f"passed the gates; replaces challenger v{previous}" if previous and previous != version else "passed the gates"
    ]
    _audit(settings, "alias.challenger", name, version, "set", reasons=reasons, actor=actor, dag_run=dag_run,
           details={"previous_challenger": previous})  # fmt: skip
    log.info("%s v%s is the challenger (was %s)", name, version, previous)
    return AliasChange(name, CHALLENGER, version, previous, "alias.challenger")


def crown(
    settings: Settings, name: str, version: str, *, reason: str, actor: str | None = None, dag_run: str | None = None
) -> AliasChange:
    """``champion`` -> ``version`` directly (no A/B possible: there is no champion yet)."""
    client = client_for(settings)
    previous = alias_version(client, name, CHAMPION)
    if previous is not None:
        raise ValueError(f"{name} already has champion v{previous}: a new version must win an A/B first")
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "stage", CHAMPION)
    client.set_model_version_tag(name, version, "champion_since", _now())
    _audit(settings, "alias.champion", name, version, "crowned", reasons=[reason], actor=actor, dag_run=dag_run)
    return AliasChange(name, CHAMPION, version, None, "alias.champion")


def _challenger(settings: Settings, name: str, what: str) -> tuple[MlflowClient, str]:
    client = client_for(settings)
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no challenger to {what}")
    return client, challenger


def promote(
    settings: Settings, name: str, *, reason: str, actor: str | None = None, dag_run: str | None = None,
    details: dict[str, Any] | None = None,
) -> AliasChange:  # fmt: skip
    """The challenger becomes the champion (one alias call); the old champion is kept and tagged."""
    client, challenger = _challenger(settings, name, "promote")
    previous = alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, challenger)  # the atomic swap
    client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, challenger, "stage", CHAMPION)
    client.set_model_version_tag(name, challenger, "champion_since", _now())
    client.set_model_version_tag(name, challenger, "promotion_reason", reason)
    if previous is not None:
        client.set_model_version_tag(name, challenger, "replaced_version", previous)
        client.set_model_version_tag(name, previous, "previous_champion", "true")
        client.set_model_version_tag(name, previous, "stage", "retired")
    _audit(settings, "promote", name, challenger, "promote", reasons=[reason], actor=actor, dag_run=dag_run,
           details={"previous_champion": previous, **(details or {})})  # fmt: skip
    log.info("%s: champion v%s -> v%s (%s)", name, previous, challenger, reason)
    return AliasChange(name, CHAMPION, challenger, previous, "promote")


def rollback(
    settings: Settings, name: str, *, reason: str, actor: str | None = None, dag_run: str | None = None,
    details: dict[str, Any] | None = None,
) -> AliasChange:  # fmt: skip
    """Remove ``challenger`` and tag why; the champion stays."""
    client, challenger = _challenger(settings, name, "roll back")
    client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, challenger, "stage", "rolled_back")
    client.set_model_version_tag(name, challenger, "rollback_reason", reason)
    _audit(settings, "rollback", name, challenger, "rollback", reasons=[reason], actor=actor, dag_run=dag_run,
           details=details or {})  # fmt: skip
    log.info("%s: challenger v%s rolled back (%s)", name, challenger, reason)
    return AliasChange(name, CHALLENGER, None, challenger, "rollback")


def restore_previous_champion(
    settings: Settings, name: str, *, reason: str, actor: str | None = None, dag_run: str | None = None
) -> AliasChange:
    """Undo the last promotion: ``champion`` -> the version the current champion replaced."""
    client = client_for(settings)
    current = alias_version(client, name, CHAMPION)
    if current is None:
        raise ValueError(f"{name} has no champion")
    previous = client.get_model_version(name, current).tags.get("replaced_version")
    if not previous:
        raise ValueError(f"{name} champion v{current} replaced no earlier champion: nothing to restore")
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, previous, "stage", CHAMPION)
    client.set_model_version_tag(name, previous, "champion_since", _now())
    client.set_model_version_tag(name, current, "stage", "retired")
    client.set_model_version_tag(name, current, "restored_over", f"v{previous}: {reason}")
    _audit(settings, "restore", name, previous, "restore", reasons=[reason], actor=actor, dag_run=dag_run,
           details={"replaced": current})  # fmt: skip
    log.info("%s: champion restored v%s -> v%s (%s)", name, current, previous, reason)
    return AliasChange(name, CHAMPION, previous, current, "restore")
