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
        from trading_core.config import get_settings
        from trading_core.registry.aliases import restore_previous_champion

        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        params, settings = context["params"], get_settings()
        change = restore_previous_champion(
            settings, params.get("model_name") or settings.model_name, reason=params["reason"],
            actor=f"airflow:{dag_id}/{run_id}/restore", dag_run=f"{dag_id}:{run_id}",
        )  # fmt: skip
        outlet_events[CHAMPION_MODEL].extra = {**change.as_dict(), "reason": params["reason"]}
        return change.as_dict()

    restore()


restore_champion()
