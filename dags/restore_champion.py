"""
### Restore the previous champion (one click)

Undoes the last promotion of `model_name`: alias `champion` goes back to the version the current
champion replaced (tag `replaced_version`); the current one is tagged `restored_over` and retired.
The move is one alias call and a row in the audit table. Trigger it by hand with a reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param, dag, task
from trading_assets import CHAMPION_MODEL, DEFAULT_ARGS, model_name_param
from trading_context import task_settings, who


@dag(
    dag_id="restore_champion",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "governance"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "model_name": model_name_param(),
        "reason": Param("manual restore", type="string", minLength=3, description="Why (kept in the audit table)."),
    },
)
def restore_champion() -> None:
    @task(outlets=[CHAMPION_MODEL])
    def restore(*, outlet_events: Any, **context: Any) -> dict[str, Any]:
        from trading_core.registry.aliases import restore_previous_champion

        params, settings = context["params"], task_settings()
        name = params.get("model_name") or settings.model_name
        change = restore_previous_champion(settings, name, reason=params["reason"], **who(context))
        outlet_events[CHAMPION_MODEL].extra = {**change.as_dict(), "reason": params["reason"]}
        return change.as_dict()

    restore()


restore_champion()
