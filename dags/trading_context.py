"""What a trading DAG's task reads from its Airflow context for the library: its settings, the DAG run,
who acts, and the asset events that triggered the run. Kept apart from the DAG files so each of them
shows only its pipeline; ``trading_core`` is imported when a task runs, never when a DAG is parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from trading_core.config import Settings


def task_settings(**overrides: Any) -> Settings:
    """The running task's settings (``TRADING_*`` of the worker; keyword overrides win)."""
    from trading_core.config import get_settings

    return get_settings(**overrides)


def run_key(context: Any) -> str:
    """``<dag_id>:<run_id>``: the DAG run as the library records it (MLflow tag ``airflow.dag_run``, audit rows)."""
    return f"{context['dag'].dag_id}:{context['run_id']}"


def who(context: Any) -> dict[str, str]:
    """Who acts, for the audit table: this task of this DAG run (``actor``) and the run (``dag_run``)."""
    actor = f"airflow:{context['dag'].dag_id}/{context['run_id']}/{context['ti'].task_id}"
    return {"actor": actor, "dag_run": run_key(context)}


def triggering_extras(context: Any, asset: Asset) -> list[dict[str, Any]]:
    """The extras of the ``asset`` events that triggered this run, oldest first (none for a manual run)."""
    events = (context.get("triggering_asset_events") or {}).get(asset, [])
    return [event.extra for event in sorted(events, key=lambda event: event.timestamp)]
