"""The promotion DAG's form: which version, who approves, and the terms of the A/B it starts.

Kept beside ``promotion.py`` so the DAG file shows the pipeline. The A/B terms become
``trading_core.rollout.entry.ab_config_from_params`` (ABConfig + SequentialConfig), which validates
them again when the A/B starts.
"""

from __future__ import annotations

from airflow.sdk import Param
from trading_assets import model_name_param, model_version_param


def promotion_params() -> dict[str, Param]:
    """The promotion DAG's Params, fresh on each call (a DAG owns its Param objects)."""
    return {
        "model_name": model_name_param(),
        "model_version": model_version_param(
            "Version to review; empty = the triggering event's, else alias candidate."
        ),
        "approval_path": Param(
            "mlflow_tag",
            type="string",
            enum=["mlflow_tag", "airflow_hitl"],
            description="Who approves: a reviewer's tag in MLflow, or Airflow's human-in-the-loop form.",
        ),
        "champion_share": Param(
            0.8,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            description="Champion's share of the A/B capital.",
        ),
        "ab_capital": Param(1_000_000.0, type="number", exclusiveMinimum=0, description="Paper capital of the A/B."),
        "ab_min_days": Param(20, type="integer", minimum=2, description="No A/B verdict before this many paired days."),
        "ab_max_days": Param(120, type="integer", minimum=3, description="No verdict by then: roll back."),
        "ab_alpha": Param(
            0.05, type="number", exclusiveMinimum=0, exclusiveMaximum=1, description="Always-valid type-I error."
        ),
        "ab_max_challenger_drawdown": Param(
            0.15,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="Guard: challenger drawdown beyond this rolls back at once.",
        ),
        "ab_start_after": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Trade bars after this date (replays); empty = after the newest bar in the lake.",
        ),
    }
