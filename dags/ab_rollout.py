"""
### A/B rollout: champion and challenger paper-trade until a sequential test decides

While a challenger is in A/B (started by the `promotion` DAG), every trading day:

1. `find_ab`: the running A/B of `model_name` (or the `ab_id` param); none -> the run skips.
2. `book`: for every bar after the last booked one up to the run's date (a missed day is caught
   up), each arm's pending order fills at the bar's open with the backtest's execution model
   (costs, slippage, square-root impact), the books are marked at the close, and the arm's policy
   decides at that close on its share of the capital (`champion_share`, set when the A/B started).
   Decisions, fills and equity are rows in the app DB; a re-run books nothing twice.
3. `ab_decision` (`ABDecisionSensor`): the mSPRT on the paired daily return differences, with the
   minimum and maximum sample and the challenger drawdown guard declared at the start. "Keep
   waiting" skips the rest of today's run; a verdict goes on.
4. `route` picks `promote` or `rollback`: **promote** = one alias call moves `champion` to the
   challenger (the old champion is tagged `previous_champion`; the `restore_champion` DAG undoes it);
   **roll back** = alias `challenger` removed and the reason tagged. Both end the A/B and are audited.

* **Schedule**: weekdays after the US close. **Replay**: backfill or `dag.test(logical_date=...)`
  over historical dates runs the whole rollout offline on the bars in the lake.
* Same functions on the command line: `trading ab step` (book bars), `trading ab status` (the
  verdict so far).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task
from trading_assets import CHAMPION_MODEL, DEFAULT_ARGS, REPLAY_START, model_name_param
from trading_context import task_settings, who
from trading_gates import ABDecisionSensor


@dag(
    dag_id="ab_rollout",
    schedule="0 22 * * 1-5",
    start_date=REPLAY_START,
    catchup=False,
    max_active_runs=1,
    tags=["trading", "rollout"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "model_name": model_name_param(),
        "ab_id": Param(None, type=["null", "string"], description="A/B to step; empty = the model's running A/B."),
        "until": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Book bars up to this date; empty = the run's date.",
        ),
        "max_bars": Param(None, type=["null", "integer"], minimum=1, description="At most this many bars per run."),
    },
)
def ab_rollout() -> None:
    @task.short_circuit
    def find_ab(**context: Any) -> dict[str, Any] | None:
        """The running A/B of the model (None: nothing to do today)."""
        from trading_core.rollout.ab import running_ab

        params = context["params"]
        settings = task_settings()
        ab_id = params.get("ab_id") or running_ab(settings, params.get("model_name") or settings.model_name)
        return {"ab_id": ab_id} if ab_id else None

    @task
    def book(ab: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Fill, mark and decide every new bar up to the run's date, for both arms."""
        from trading_core.rollout.ab import step_ab

        params = context["params"]
        until = params.get("until") or context.get("logical_date") or context["dag_run"].run_after
        return step_ab(task_settings(), ab["ab_id"], until, max_bars=params.get("max_bars")).as_dict()

    decision = ABDecisionSensor(
        task_id="ab_decision",
        ab_id="{{ ti.xcom_pull(task_ids='find_ab')['ab_id'] }}",
        mode="poke",
        poke_interval=1,
        timeout=0,  # the evidence changes once a day: no verdict today -> skip, ask again tomorrow
        soft_fail=True,
    )

    @task.branch
    def route(**context: Any) -> str:
        """The verdict picks the next task."""
        outcome = context["ti"].xcom_pull(task_ids="ab_decision")
        verdict = outcome["details"]["decision"]
        if verdict not in ("promote", "rollback"):
            raise ValueError(f"unexpected A/B verdict {verdict!r}")
        return verdict

    @task(outlets=[CHAMPION_MODEL])
    def promote(ab: dict[str, Any], *, outlet_events: Any, **context: Any) -> dict[str, Any]:
        """The challenger won: `champion` -> its version in one alias call; the A/B ends."""
        from trading_core.rollout.ab import conclude_ab

        outcome = context["ti"].xcom_pull(task_ids="ab_decision")
        change = conclude_ab(task_settings(), ab["ab_id"], outcome, **who(context)).as_dict()
        outlet_events[CHAMPION_MODEL].extra = {**change, "reason": "; ".join(outcome["reasons"])}
        return change

    @task
    def rollback(ab: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The challenger lost (or a guard fired): alias `challenger` removed, reason tagged; the A/B ends."""
        from trading_core.rollout.ab import conclude_ab

        outcome = context["ti"].xcom_pull(task_ids="ab_decision")
        return conclude_ab(task_settings(), ab["ab_id"], outcome, **who(context)).as_dict()

    ab = find_ab()
    booked = book(ab)
    booked >> decision >> route() >> [promote(ab), rollback(ab)]


ab_rollout()
