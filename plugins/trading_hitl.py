"""Airflow's human-in-the-loop approval of a policy version, recorded like a registry approval.

:class:`PolicyApprovalOperator` is Airflow's ``ApprovalOperator`` (Airflow >= 3.1: the task waits
in "awaiting input" until someone answers in the Airflow UI or through the REST API) with three
additions: the answer, the reviewer and an optional comment are written on the model version
(tags ``approval``, ``approval_by``, ``approval_comment``, ``gate.approval``) and in the audit table;
a rejection **fails** the task (fail closed: nothing downstream can promote); a response timeout
(``response_timeout``) fails it too. It is the alternative to :class:`trading_gates.RegistryApprovalSensor`
(a reviewer tags the version in the MLflow UI), chosen by the promotion DAG's ``approval_path`` param.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.exceptions import HITLRejectException, HITLTriggerEventError
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException
from trading_gates import MLflowModelVersionLink


class PolicyApprovalOperator(ApprovalOperator):
    """Approve or reject ``model_name`` v``model_version``; the answer lands in MLflow and the audit table."""

    template_fields = (*ApprovalOperator.template_fields, "model_name", "model_version")
    operator_extra_links = (MLflowModelVersionLink(),)
    """The reviewer's way to the evidence: the version's page in the MLflow UI."""

    def __init__(self, *, model_name: str, model_version: str, **kwargs: Any) -> None:
        kwargs.setdefault(
            "params", {"comment": Param("", type="string", description="Why (kept with the version and in the audit).")}
        )
        super().__init__(fail_on_reject=True, **kwargs)
        self.model_name = model_name
        self.model_version = model_version

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from trading_core.config import get_settings
        from trading_core.registry.gates import record_hitl_decision, record_timeout

        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        who = {"actor": f"airflow:{dag_id}/{run_id}/{self.task_id}", "dag_run": f"{dag_id}:{run_id}"}
        settings = get_settings()
        if "error" in event:
            if event.get("error_type") == "timeout":
                waited = self.response_timeout.total_seconds() if self.response_timeout else 0.0
                record_timeout(settings, "approval", self.model_name, self.model_version, waited_s=waited, **who)
            return self._final(context, event)  # raises: no answer, no promotion
        user = event.get("responded_by_user") or {}
        reviewer = user.get("name") or user.get("id") if isinstance(user, dict) else str(user)
        comment = str((event.get("params_input") or {}).get("comment") or "")
        approved = list(event.get("chosen_options") or []) == [self.APPROVE]
        record_hitl_decision(
            settings, self.model_name, self.model_version, approved=approved, reviewer=reviewer, comment=comment,
            actor=reviewer or who["actor"], dag_run=who["dag_run"],
        )  # fmt: skip
        return self._final(context, event)  # a rejection raises (fail_on_reject=True)

    def _final(self, context: Any, event: dict[str, Any]) -> Any:
        """The base class's verdict, with a rejection or a timeout as a failure that is never retried
        (a retry would ask the reviewer again)."""
        try:
            return super().execute_complete(context, event)
        except (HITLRejectException, HITLTriggerEventError) as exc:
            raise AirflowFailException(f"{self.model_name} v{self.model_version} not approved: {exc}") from exc
