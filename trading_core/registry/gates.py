"""The governance gates: one function per gate, called by the Airflow sensors in ``plugins/`` (and
:func:`record_hitl_decision` by the human-in-the-loop approval operator there).

Each gate reads the evidence, decides ``passed`` / ``failed`` (or ``waiting`` while a reviewer or an
A/B has not answered yet), writes its result on the model version as tags ``gate.<name>...`` (so
the MLflow UI shows why) and, once decided, a row in the audit table. Gates **fail closed**:

* missing evidence (no metrics, no drift reference, no recent data) -> ``failed`` with the reason;
* an unreachable MLflow or app DB -> the exception propagates and the sensor task fails;
* a timeout (the sensor's) -> :func:`record_timeout`, and the task fails;
* a rejection -> ``failed`` with the reviewer's comment.

The A/B's gate (:func:`trading_core.rollout.ab.ab_gate`) answers with the same :class:`GateOutcome`;
it lives with the A/B in the rollout layer, above the registry, so that imports only point down. The
evidence the gates read (a version's policy, recent bars) comes from :mod:`.evidence`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from mlflow.tracking import MlflowClient

from trading_core.config import Settings
from trading_core.db import upgrade_database
from trading_core.db.audit import record_event
from trading_core.errors import TradingError
from trading_core.registry.aliases import CHAMPION, alias_version, client_for
from trading_core.registry.evidence import load_version_policy, recent_bars
from trading_core.registry.governance import GovernancePolicy, evaluate_policy, fold_sharpes

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "waiting"]
DRIFT_WINDOW = 126
"""Bars of recent features the drift gate compares with the training reference (half a year: shorter
windows of autocorrelated rolling features give a noisy PSI; see ``reference.PSI_THRESHOLD``)."""


@dataclass(frozen=True)
class GateOutcome:
    gate: str
    status: Status
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_version_url(settings: Settings, name: str, version: str) -> str:
    """The version's page in the MLflow UI."""
    return f"{settings.resolved_mlflow_ui_url}/#/models/{name}/versions/{version}"


def _metrics(tags: dict[str, str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                out[key.removeprefix("metric.")] = float(value)
            except ValueError:
                out[key.removeprefix("metric.")] = None
    return out


def _finish(
    settings: Settings, client: MlflowClient, name: str, version: str, outcome: GateOutcome, *,
    tags: dict[str, str], actor: str | None, dag_run: str | None,
) -> GateOutcome:  # fmt: skip
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    prefix = f"gate.{outcome.gate}"
    for key, value in {
        **tags,
        prefix: outcome.status,
        f"{prefix}.at": stamp,
        f"{prefix}.by": actor or "library",
    }.items():
        client.set_model_version_tag(name, version, key, str(value)[:4900])
    upgrade_database(settings.resolved_database_url)
    record_event(
        settings.resolved_database_url, event=prefix, model_name=name, version=version, decision=outcome.status,
        reasons=outcome.reasons, details=outcome.details, actor=actor, dag_run=dag_run,
    )  # fmt: skip
    log.info("%s %s v%s: %s %s", prefix, name, version, outcome.status, "; ".join(outcome.reasons))
    return outcome


# ------------------------------------------------------------------------------------ governance


def governance_gate(
    settings: Settings, name: str, version: str, *, policy_path: Path | None = None,
    actor: str | None = None, dag_run: str | None = None,
) -> GateOutcome:  # fmt: skip
    """The version's registered walk-forward metrics (and the drift gate's share) against the policy file."""
    policy = GovernancePolicy.from_yaml(policy_path or settings.governance_policy)
    client = client_for(settings)
    mv = client.get_model_version(name, version)
    metrics = _metrics(dict(mv.tags))
    champion = alias_version(client, name, CHAMPION)
    has_champion = champion is not None and champion != str(version)
    champion_metrics: dict[str, float | None] = {}
    comparable = None
    if has_champion:
        champion_tags = dict(client.get_model_version(name, champion).tags)  # type: ignore[arg-type]
        champion_metrics = _metrics(champion_tags)
        comparable = champion_tags.get("feature_set_version") == mv.tags.get("feature_set_version")
    drift = mv.tags.get("gate.drift.share")
    result = evaluate_policy(
        policy,
        metrics,
        champion_metrics=champion_metrics,
        has_champion=has_champion,
        drift_share=float(drift) if drift not in (None, "") else None,
        fold_sharpes=fold_sharpes({k: v for k, v in metrics.items() if v is not None}, policy.strategy),
    )
    reasons = result.reasons if not result.passed else [c.reason for c in result.checks]
    if has_champion and comparable is False:
        reasons.append(
            f"note: champion v{champion} was validated on another feature set; the A/B compares them like for like"
        )
    outcome = GateOutcome(
        "governance", "passed" if result.passed else "failed", reasons,
        {**result.as_dict(), "policy": policy.model_dump(), "champion": champion if has_champion else None},
    )  # fmt: skip
    return _finish(settings, client, name, version, outcome, tags=result.as_tags(), actor=actor, dag_run=dag_run)


# ----------------------------------------------------------------------------------------- drift


def drift_gate(
    settings: Settings, name: str, version: str, *, actor: str | None = None, dag_run: str | None = None,
    window: int = DRIFT_WINDOW, end: pd.Timestamp | None = None, policy_path: Path | None = None,
) -> GateOutcome:  # fmt: skip
    """The last ``window`` bars of the policy's universe in the lake (features computed by the policy
    itself) against the training reference stored in the version; the share of drifted features must
    not exceed the governance policy's ``max_drift_share``."""
    from trading_core.registry.reference import drift_report

    policy_file = GovernancePolicy.from_yaml(policy_path or settings.governance_policy)
    client = client_for(settings)
    client.get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="drift-gate-") as tmp:
        try:
            policy = load_version_policy(settings, name, version, Path(tmp))
        except TradingError as exc:
            outcome = GateOutcome("drift", "failed", [f"{exc}: no reference, no promotion"])
            return _finish(settings, client, name, version, outcome, tags={}, actor=actor, dag_run=dag_run)
        lineage = policy.spec.lineage
        bars = recent_bars(settings, lineage.get("feed", ""), lineage.get("interval", "1d"), policy.universe,
                           policy.min_history + window, end)  # fmt: skip
        try:
            if policy.reference_dir is None:
                raise TradingError("the version stores no drift reference")
            features = policy.features(policy.validate_bars(bars))
            last = sorted(features["timestamp"].unique())[-window:]
            report = drift_report(policy.reference_dir, features[features["timestamp"].isin(last)])
        except TradingError as exc:
            outcome = GateOutcome("drift", "failed", [f"drift not measurable: {exc}: no evidence, no promotion"])
            return _finish(settings, client, name, version, outcome, tags={}, actor=actor, dag_run=dag_run)
    ok = report.drift_share <= policy_file.max_drift_share
    top = sorted(report.psi.items(), key=lambda kv: -kv[1])[:5]
    reason = (
        f"{len(report.drifted)} of {len(report.psi)} features drifted (PSI >= {report.threshold}): share "
        f"{report.drift_share:.3f} {'<=' if ok else '>'} {policy_file.max_drift_share:.3f} over the last {window} bars "
        f"up to {str(last[-1])[:10]}; largest PSI: " + ", ".join(f"{k} {v:.2f}" for k, v in top)
    )
    outcome = GateOutcome("drift", "passed" if ok else "failed", [reason], report.as_dict())
    tags = {"gate.drift.share": f"{report.drift_share:.6g}", "gate.drift.drifted": ",".join(report.drifted)}
    return _finish(settings, client, name, version, outcome, tags=tags, actor=actor, dag_run=dag_run)


# -------------------------------------------------------------------------------------- approval


def approval_gate(
    settings: Settings, name: str, version: str, *, actor: str | None = None, dag_run: str | None = None
) -> GateOutcome:
    """A reviewer's verdict in the MLflow UI: tag ``approval`` = approved | rejected (+ ``approval_comment``)."""
    client = client_for(settings)
    tags = dict(client.get_model_version(name, version).tags)
    verdict = tags.get("approval", "pending").strip().lower()
    comment = tags.get("approval_comment", "").strip()
    reviewer = tags.get("approval_by", "").strip() or "a reviewer (MLflow tag)"
    if verdict in ("pending", ""):
        return GateOutcome(
            "approval", "waiting", [f"waiting for a reviewer: set tag approval=approved|rejected on v{version}"]
        )
    if verdict == "approved":
        outcome = GateOutcome("approval", "passed", [f"approved by {reviewer}" + (f": {comment}" if comment else "")],
                              {"reviewer": reviewer, "comment": comment})  # fmt: skip
    elif verdict == "rejected":
        outcome = GateOutcome("approval", "failed", [f"rejected by {reviewer}: {comment or 'no comment given'}"],
                              {"reviewer": reviewer, "comment": comment})  # fmt: skip
    else:
        outcome = GateOutcome("approval", "failed", [f"tag approval={verdict!r} is neither approved nor rejected"])
    return _finish(settings, client, name, version, outcome, tags={}, actor=actor or reviewer, dag_run=dag_run)


def record_hitl_decision(
    settings: Settings, name: str, version: str, *, approved: bool, reviewer: str | None, comment: str | None,
    actor: str | None = None, dag_run: str | None = None,
) -> GateOutcome:  # fmt: skip
    """The Airflow human-in-the-loop answer, written like a registry approval (tags + audit)."""
    client = client_for(settings)
    who = reviewer or "an Airflow reviewer"
    status: Status = "passed" if approved else "failed"
    reason = f"{'approved' if approved else 'rejected'} by {who} in Airflow" + (f": {comment}" if comment else "")
    tags = {"approval": "approved" if approved else "rejected", "approval_by": who, "approval_comment": comment or ""}
    outcome = GateOutcome("approval", status, [reason], {"reviewer": who, "comment": comment, "path": "airflow_hitl"})
    return _finish(settings, client, name, version, outcome, tags=tags, actor=actor or who, dag_run=dag_run)


def record_timeout(
    settings: Settings, gate: str, name: str, version: str | None, *, waited_s: float,
    actor: str | None = None, dag_run: str | None = None,
) -> None:  # fmt: skip
    """A gate that timed out fails: audit row, and the tag ``gate.<gate>=timeout`` when MLflow answers."""
    reason = f"no decision within {waited_s:.0f} s: timed out, not promoted"
    upgrade_database(settings.resolved_database_url)
    record_event(settings.resolved_database_url, event=f"gate.{gate}", model_name=name, version=version,
                 decision="timeout", reasons=[reason], actor=actor, dag_run=dag_run)  # fmt: skip
    if version is None:
        return
    try:
        client_for(settings).set_model_version_tag(name, version, f"gate.{gate}", "timeout")
    except Exception:  # noqa: BLE001 - the audit row is the record; the tag is a courtesy
        log.warning("could not tag %s v%s gate.%s=timeout", name, version, gate, exc_info=True)
