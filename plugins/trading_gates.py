"""Governance gates as Airflow sensors, and a link from their task instances to the MLflow model version.

Each sensor is a thin wrapper over one function of :mod:`trading_core.registry.gates` (the A/B's:
:mod:`trading_core.rollout.ab`), which holds the logic and the audit trail (tested without Airflow);
the sensor only maps its verdict to Airflow:

==========================  ===============  =============================================================
sensor                      library call     done when
==========================  ===============  =============================================================
``GovernanceGateSensor``    governance_gate  the version's metrics meet the policy file
``DriftGateSensor``         drift_gate       drift against the training reference is acceptable
``RegistryApprovalSensor``  approval_gate    a reviewer tagged the version ``approval=approved``
``ABDecisionSensor``        ab.ab_gate       the A/B test's sequential rule decided (promote or roll back)
==========================  ===============  =============================================================

A gate returns ``passed`` (the task succeeds; its XCom is the outcome dict, references only),
``waiting`` (poke again: metrics not written yet, no review yet, too few A/B samples) or
``failed``.

**Gates fail closed.** Nothing but an explicit ``passed`` lets the DAG go on:

* ``failed`` (a threshold missed, a rejection, whose message carries the reviewer's comment) fails
  the task at once with :class:`~airflow.sdk.exceptions.AirflowFailException`: no retry, a retry
  would give the same verdict.
* Waiting past ``timeout`` fails the task with ``AirflowSensorTimeout``, which Airflow never retries
  either; the timeout is recorded first (``record_timeout``: an audit row and the MLflow tag
  ``gate.<gate>=timeout``).
* An error of the library (MLflow or the database unreachable) fails the try like any task error
  (retried per the task's ``retries``, a transient outage heals); the sensors refuse ``never_fail``
  and ``silent_fail``, which would turn such errors into skips or more waiting.
* ``soft_fail=True`` is a DAG's explicit choice (the daily A/B check: "no verdict today" is not an
  error): a timeout or a ``failed`` verdict then *skips* the task, so everything downstream is skipped
  under the default trigger rule and nothing is promoted; no timeout is recorded in that case.
* A status the sensor does not know, or an A/B ``passed`` without a ``promote``/``rollback``
  decision, fails without retry.

The sensors run in ``reschedule`` mode (a waiting gate holds no worker slot); ``poke_interval`` and
``timeout`` are constructor arguments with per-gate defaults (the approval gate's poke interval is the
setting ``approval_poke_interval_s``, read when the DAG is parsed). Every call carries the audit actor
``airflow:<dag_id>/<run_id>/<task_id>`` and the DAG run key ``<dag_id>:<run_id>``.

The :class:`MLflowModelVersionLink` button ("MLflow model version") of the three model-version
sensors opens the version's page in the MLflow UI. Airflow 3 evaluates extra links on the worker,
after the templates are rendered, and stores the URL as an XCom that the UI reads, so the link
points at the version resolved at run time (e.g. templated from the registering task's XCom).

Nothing heavy is imported at module level: ``trading_core`` is imported inside the methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from airflow.sdk import BaseOperatorLink, BaseSensorOperator, PokeReturnValue, timezone
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout
from airflow.sdk.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

    from trading_core.registry.gates import GateOutcome

_FAIL_OPEN_FLAGS = ("never_fail", "silent_fail")
"""Sensor flags that would hide a library error (skip, or keep waiting): refused."""
AB_DECISIONS = frozenset({"promote", "rollback"})
"""The decisions a passed A/B gate may carry."""


class Audit(TypedDict):
    """Who calls the gate, for the audit table: ``airflow:<dag>/<run>/<task>`` and the run ``<dag>:<run>``."""

    actor: str
    dag_run: str


class MLflowModelVersionLink(BaseOperatorLink):
    """Button "MLflow model version": the MLflow UI page of the task's (rendered) model version.

    Computed on the worker when the try ends (the operator's templates are rendered by then) and
    stored under :attr:`xcom_key`; the API server reads it back from there.
    """

    name = "MLflow model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from trading_core.config import get_settings
        from trading_core.registry import gates

        name, version = str(getattr(operator, "model_name", "")), str(getattr(operator, "model_version", ""))
        if not name or not version or "{{" in name + version:  # templates not rendered: no link
            return ""
        return gates.model_version_url(get_settings(), name, version)


class _GateSensor(BaseSensorOperator):
    """A gate sensor: one library call per poke, its status mapped to Airflow; fails closed (see module)."""

    gate: ClassVar[str]
    """The gate's name in the library, the audit table and the MLflow tag ``gate.<gate>``."""
    default_poke_interval: ClassVar[timedelta]
    default_timeout: ClassVar[timedelta]

    def __init__(
        self,
        *,
        poke_interval: timedelta | float | None = None,
        timeout: timedelta | float | None = None,
        mode: str = "reschedule",
        **kwargs: Any,
    ) -> None:
        for flag in _FAIL_OPEN_FLAGS:
            if kwargs.get(flag):
                raise ValueError(f"{type(self).__name__}: gates fail closed, {flag}=True is not allowed")
        super().__init__(
            poke_interval=self.default_poke_interval if poke_interval is None else poke_interval,
            timeout=self.default_timeout if timeout is None else timeout,
            mode=mode,
            **kwargs,
        )

    # ------------------------------------------------------------------ what a subclass says

    def check(self, settings: Any, audit: Audit) -> GateOutcome:
        """Call the library gate once."""
        raise NotImplementedError

    def subject(self) -> tuple[str, str | None]:
        """What the gate is about, for logs and ``record_timeout``: (model name or A/B id, version)."""
        raise NotImplementedError

    def accept(self, outcome: GateOutcome) -> None:
        """Last check of a ``passed`` outcome; raise AirflowFailException to refuse it."""

    def failure_reasons(self, outcome: GateOutcome) -> list[str]:
        """What the failure message of a ``failed`` outcome says."""
        return list(outcome.reasons)

    # ------------------------------------------------------------------ the mapping to Airflow

    def poke(self, context: Context) -> PokeReturnValue:
        from trading_core.config import get_settings

        outcome = self.check(get_settings(), _audit(context))
        name, version = self.subject()
        what = f"{self.gate} gate for {name}" + (f" version {version}" if version else "")
        self.log.info("%s: %s %s", what, outcome.status, "; ".join(outcome.reasons))
        if outcome.status == "passed":
            self.accept(outcome)
            return PokeReturnValue(is_done=True, xcom_value=outcome.as_dict())
        if outcome.status == "waiting":
            return PokeReturnValue(is_done=False)
        if outcome.status == "failed":
            raise AirflowFailException(f"{what} failed: " + ("; ".join(self.failure_reasons(outcome)) or "no reason"))
        raise AirflowFailException(f"{what} returned unknown status {outcome.status!r}; failing closed")

    def execute(self, context: Context) -> Any:
        started = timezone.utcnow()
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            self._record_timeout(context, started)
            raise  # AirflowSensorTimeout: failed, never retried

    def _record_timeout(self, context: Context, started: Any) -> None:
        """Audit the timeout; a failure to record is logged, the task fails on the timeout all the same."""
        try:
            from trading_core.config import get_settings
            from trading_core.registry import gates

            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            waited = (timezone.utcnow() - (first or started)).total_seconds()
            name, version = self.subject()
            gates.record_timeout(get_settings(), self.gate, name, version, waited_s=waited, **_audit(context))
        except Exception:
            self.log.exception("could not record the timeout of the %s gate", self.gate)


class _ModelVersionGate(_GateSensor):
    """A gate on one registered model version; carries the MLflow model-version link."""

    template_fields: Sequence[str] = ("model_name", "model_version")
    operator_extra_links = (MLflowModelVersionLink(),)

    def __init__(self, *, model_name: str, model_version: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_version = model_version

    def subject(self) -> tuple[str, str | None]:
        return str(self.model_name), str(self.model_version)


class GovernanceGateSensor(_ModelVersionGate):
    """Wait until the version's metrics are written, then check them against the governance policy.

    :param model_name: registered model name (templated).
    :param model_version: its version (templated, e.g. from the registering task's XCom).
    :param policy_path: the policy YAML (templated); ``None``: the library's default file.
    :param poke_interval: seconds (or timedelta) between pokes; default 1 minute.
    :param timeout: how long to wait for the metrics before failing closed; default 1 hour.
    """

    gate = "governance"
    default_poke_interval = timedelta(minutes=1)
    default_timeout = timedelta(hours=1)
    template_fields = ("model_name", "model_version", "policy_path")

    def __init__(self, *, model_name: str, model_version: str, policy_path: str | Path | None = None, **kwargs: Any):
        super().__init__(model_name=model_name, model_version=model_version, **kwargs)
        self.policy_path = policy_path

    def check(self, settings: Any, audit: Audit) -> GateOutcome:
        from trading_core.registry import gates

        policy = None if self.policy_path in (None, "", "None") else Path(self.policy_path)
        name, version = self.subject()
        return gates.governance_gate(settings, name, str(version), policy_path=policy, **audit)


class DriftGateSensor(_ModelVersionGate):
    """Wait for the version's drift evaluation; fail closed when drift is not acceptable.

    :param model_name: registered model name (templated).
    :param model_version: its version (templated).
    :param poke_interval: default 1 minute. :param timeout: default 1 hour.
    """

    gate = "drift"
    default_poke_interval = timedelta(minutes=1)
    default_timeout = timedelta(hours=1)

    def check(self, settings: Any, audit: Audit) -> GateOutcome:
        from trading_core.registry import gates

        name, version = self.subject()
        return gates.drift_gate(settings, name, str(version), **audit)


class RegistryApprovalSensor(_ModelVersionGate):
    """Wait for a reviewer's verdict on the version (MLflow tag ``approval``); a rejection fails the task.

    :param model_name: registered model name (templated).
    :param model_version: its version (templated).
    :param poke_interval: default ``Settings.approval_poke_interval_s`` (``TRADING_APPROVAL_POKE_INTERVAL_S``,
        60 s), read when the DAG is parsed. :param timeout: how long a review may take; default 3 days.
    """

    gate = "approval"
    default_timeout = timedelta(days=3)

    def __init__(self, *, poke_interval: timedelta | float | None = None, **kwargs: Any) -> None:
        if poke_interval is None:
            # trading_core.config imports only pydantic(-settings) and the stdlib: cheap at parse time.
            from trading_core.config import get_settings

            poke_interval = get_settings().approval_poke_interval_s
        super().__init__(poke_interval=poke_interval, **kwargs)

    def check(self, settings: Any, audit: Audit) -> GateOutcome:
        from trading_core.registry import gates

        name, version = self.subject()
        return gates.approval_gate(settings, name, str(version), **audit)

    def failure_reasons(self, outcome: GateOutcome) -> list[str]:
        """The reasons, and the reviewer's comment when the reasons do not quote it already."""
        details = outcome.details
        reasons, comment = list(outcome.reasons), details.get("comment") or details.get("approval_comment")
        if comment and not any(str(comment) in reason for reason in reasons):
            reasons.append(f"reviewer comment: {comment}")
        return reasons


class ABDecisionSensor(_GateSensor):
    """Wait for the A/B test's sequential rule; the XCom's ``details["decision"]`` is promote or rollback.

    :param ab_id: the A/B test (templated).
    :param poke_interval: default 1 hour. :param timeout: the longest an A/B test may run; default 30 days.
    """

    gate = "ab"
    default_poke_interval = timedelta(hours=1)
    default_timeout = timedelta(days=30)
    template_fields: Sequence[str] = ("ab_id",)

    def __init__(self, *, ab_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ab_id = ab_id

    def subject(self) -> tuple[str, str | None]:
        return str(self.ab_id), None

    def check(self, settings: Any, audit: Audit) -> GateOutcome:
        from trading_core.rollout import ab

        return ab.ab_gate(settings, str(self.ab_id), **audit)

    def accept(self, outcome: GateOutcome) -> None:
        decision = outcome.details.get("decision")
        if decision not in AB_DECISIONS:
            raise AirflowFailException(
                f"ab gate for {self.ab_id} passed without a decision in {sorted(AB_DECISIONS)} "
                f"(got {decision!r}); failing closed"
            )


def _audit(context: Context) -> Audit:
    """The gate's audit keywords for this task instance."""
    dag_id, run_id, task_id = context["dag"].dag_id, context["run_id"], context["ti"].task_id
    return {"actor": f"airflow:{dag_id}/{run_id}/{task_id}", "dag_run": f"{dag_id}:{run_id}"}


class TradingGatesPlugin(AirflowPlugin):
    """Registers the MLflow model-version link with Airflow (listed by ``airflow plugins``).

    The sensors declare the link themselves (``operator_extra_links``), which is what makes the worker
    store it and the UI show it. The link's ``operators`` stays empty on purpose: a plugin link bound
    to operators takes precedence on the API server and would be re-evaluated there, against the
    unrendered templates, instead of read from the stored XCom.
    """

    name = "trading_gates"
    operator_extra_links = [MLflowModelVersionLink()]
