"""Register what a training run produced as a new model version with alias ``candidate``.

Until the full ``TradingPolicy`` pyfunc exists (the registry issue), the registered artifact is the
forecaster's logged pyfunc; the version's tags point at everything else the policy is made of
(the agent run and its artifacts, the walk-forward run) and carry the lineage and the walk-forward
metrics, so a reviewer sees in the registry what the candidate is and how it was validated.
Registering is idempotent per Airflow DAG run: a retried task finds the version it created.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trading_core.config import Settings
from trading_core.tracking import git_sha, use_tracking_store

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "trading-policy"
CANDIDATE = "candidate"


@dataclass(frozen=True)
class CandidateVersion:
    name: str
    version: str
    alias: str
    source: str
    reused: bool

    def as_reference(self) -> dict[str, Any]:
        return asdict(self)


def find_finished_run(settings: Settings, experiment: str, tags: Mapping[str, str]) -> str | None:
    """The id of a FINISHED run of ``experiment`` carrying all ``tags`` (newest first), else None:
    how a retried Airflow task reuses the work its previous try completed."""
    use_tracking_store(settings)
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"]
    runs = client.search_runs(
        [found.experiment_id], " and ".join(clauses), order_by=["attributes.start_time DESC"], max_results=1
    )
    return runs[0].info.run_id if runs else None


HEADLINES = ("sharpe_mean", "sharpe_ci_low", "max_drawdown_mean", "total_return_mean")


def describe_version(
    lineage: Mapping[str, str], metrics: Mapping[str, float], links: Mapping[str, str], dag_run: str | None
) -> str:
    """The version's description in the MLflow UI (Markdown): what it is, where it came from, how it did."""
    lines = [
        "**Candidate trading policy** (CNN+LSTM forecaster + RL agent + risk manager), awaiting the promotion gates.",
        "",
        f"* data: `{lineage.get('dataset_version', '?')}` -> features `{lineage.get('feature_set_version', '?')}`",
        f"* registered by: `{dag_run or 'a direct call'}`, code `{git_sha()[:10]}`",
    ]
    strategies = sorted(
        {k[3:].rsplit("_sharpe_mean", 1)[0] for k in metrics if k.startswith("wf_") and k.endswith("_sharpe_mean")}
    )
    if strategies:
        lines += ["", "| walk-forward strategy | Sharpe | CI low | max DD | return |", "|---|---|---|---|---|"]
        for strategy in strategies:
            cells = [metrics.get(f"wf_{strategy}_{h}") for h in HEADLINES]
            lines.append(f"| {strategy} | " + " | ".join("-" if v is None else f"{float(v):.3f}" for v in cells) + " |")
    if links:
        lines += ["", "runs: " + ", ".join(f"{k} `{v}`" for k, v in links.items())]
    lines += ["", "Approve: tag `approval=approved` (or `rejected` with `approval_comment`)."]
    return "\n".join(lines)


def register_candidate(
    settings: Settings,
    *,
    model_uri: str,
    lineage: Mapping[str, str],
    metrics: Mapping[str, float],
    links: Mapping[str, str],
    dag_run: str | None = None,
    name: str = DEFAULT_MODEL_NAME,
) -> CandidateVersion:
    """Register ``model_uri`` under ``name``, tag it, and point the ``candidate`` alias at it.

    ``lineage``: dataset_version, feature_set_version (git_sha is added); ``metrics``: validation
    figures (tags ``metric.<name>``); ``links``: run ids / URIs of the parts (forecaster, agent, walk-forward).
    """
    use_tracking_store(settings)
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    try:
        client.create_registered_model(name, description="Hybrid CNN+LSTM forecaster + RL agent + risk manager")
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    if dag_run:
        for mv in client.search_model_versions(f"name = '{name}'"):
            if mv.tags.get("airflow.dag_run") == dag_run:
                client.set_registered_model_alias(name, CANDIDATE, mv.version)
                log.info("reusing %s version %s registered by %s", name, mv.version, dag_run)
                return CandidateVersion(name, str(mv.version), CANDIDATE, str(mv.source or ""), True)
    tags = {
        **{k: str(v) for k, v in lineage.items()},
        "git_sha": git_sha(),
        **{f"link.{k}": str(v) for k, v in links.items()},
    }
    tags |= {f"metric.{k}": f"{float(v):.6g}" for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    tags |= {"approval": "pending", "stage": CANDIDATE}
    if dag_run:
        tags["airflow.dag_run"] = dag_run
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.update_model_version(name, version.version, description=describe_version(lineage, metrics, links, dag_run))
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    log.info("registered %s version %s from %s as %r", name, version.version, model_uri, CANDIDATE)
    return CandidateVersion(name, str(version.version), CANDIDATE, model_uri, False)
