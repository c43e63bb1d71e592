"""The governed life cycle end to end, offline: promotion gates (dag.test) -> challenger -> A/B paper
trading over replayed bars (dag.test per logical date) -> promote a clearly better challenger, roll
back a clearly worse one -> restore the previous champion; every step audited, nothing booked twice.

The market is a planted up-trend (daily drift 8 bps over 1% noise... on 3 symbols), so a long
constant-mix policy is clearly better than a flat one: the A/B must find that, in both directions.
The policies are the platform's baseline kinds (constant-mix), registered like any candidate.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from builders import GOOD_METRICS as GOOD
from builders import register_baseline, trending_feature_set
from mlflow.tracking import MlflowClient

from trading_core.config import Settings, get_settings
from trading_core.db.audit import list_events

pytestmark = pytest.mark.airflow

DAGS = Path(__file__).resolve().parents[1] / "dags"
NAME = "trading-policy"
AB_START = "2023-06-30"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[dict]:
    from airflow.dag_processing.dagbag import DagBag

    home = tmp_path_factory.mktemp("rollout-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        mp.chdir(home)
        (home / "config").mkdir()
        (home / "config" / "governance.yaml").write_text((DAGS.parent / "config" / "governance.yaml").read_text())
        settings = get_settings()
        _, fsv = trending_feature_set(settings, home)
        yield {"settings": settings, "fsv": fsv, "dagbag": DagBag(str(DAGS)), "home": home}


def register(world: dict, kind: str, actions: list[float] | None, metrics: dict, tag: str) -> str:
    assert kind == "constant_mix"
    return register_baseline(world["settings"], world["fsv"], world["home"], actions, metrics, tag, NAME)


def approve(settings: Settings, version: str, verdict: str = "approved", comment: str = "") -> None:
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    client.set_model_version_tag(NAME, version, "approval", verdict)
    client.set_model_version_tag(NAME, version, "approval_by", "reviewer@test")
    if comment:
        client.set_model_version_tag(NAME, version, "approval_comment", comment)


def aliases(settings: Settings) -> dict[str, str]:
    return {
        k: str(v)
        for k, v in MlflowClient(settings.resolved_mlflow_tracking_uri).get_registered_model(NAME).aliases.items()
    }


def tags(settings: Settings, version: str) -> dict[str, str]:
    return dict(MlflowClient(settings.resolved_mlflow_tracking_uri).get_model_version(NAME, version).tags)


def states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id))
        return {ti.task_id: str(ti.state) for ti in tis}


def promote_run(world: dict, version: str, **conf: object):  # type: ignore[no-untyped-def]
    run_conf = {"model_version": version, "ab_start_after": AB_START, "ab_min_days": 5, "ab_max_days": 80, **conf}
    return world["dagbag"].get_dag("promotion").test(run_conf=run_conf)


def ab_run(world: dict, day: str):  # type: ignore[no-untyped-def]
    when = datetime.fromisoformat(day).replace(hour=22, tzinfo=UTC)
    return world["dagbag"].get_dag("ab_rollout").test(logical_date=when, run_conf={"model_name": NAME})


def test_the_whole_life_cycle_promotes_the_better_and_rolls_back_the_worse(world: dict) -> None:
    from trading_core.rollout import broker
    from trading_core.rollout.ab import get_ab, step_ab

    settings: Settings = world["settings"]
    url = settings.resolved_database_url

    # 1. A flat policy passes every gate: there is no champion yet, so it becomes the champion.
    flat = register(world, "constant_mix", [0.0, 0.0, 0.0], GOOD, "flat")
    approve(settings, flat)
    run = promote_run(world, flat)
    assert run.state == "success", states("promotion", run.run_id)
    assert aliases(settings) == {"candidate": flat, "champion": flat}
    t = tags(settings, flat)
    assert t["gate.drift"] == "passed" and t["gate.governance"] == "passed" and t["gate.approval"] == "passed"
    assert float(t["gate.drift.share"]) <= 0.3 and t["gate.governance.sharpe"].startswith("pass")
    assert states("promotion", run.run_id)["hitl_approval"] == "skipped"

    # 2. A long (buy-and-hold) policy becomes the challenger and trades against it from AB_START.
    long = register(world, "constant_mix", None, GOOD, "long")
    approve(settings, long)
    run = promote_run(world, long)
    assert run.state == "success", states("promotion", run.run_id)
    assert aliases(settings)["challenger"] == long and aliases(settings)["champion"] == flat
    ab_id = f"{NAME}:v{flat}-vs-v{long}"
    assert get_ab(settings, ab_id).status == "running"

    # A few days in: too few paired days for a verdict -> today's run skips the decision.
    run = ab_run(world, "2023-07-06")
    assert run.state == "success"
    assert states("ab_rollout", run.run_id)["ab_decision"] == "skipped", states("ab_rollout", run.run_id)
    curve = broker.equity_curve(url, f"{ab_id}:challenger")
    assert [str(b.date()) for b in curve["bar"]] == ["2023-07-03", "2023-07-04", "2023-07-05", "2023-07-06"]
    before = broker.count_rows(url, f"{ab_id}:challenger")
    again = step_ab(settings, ab_id, "2023-07-06")  # a re-run of the same day books nothing
    assert again.bars == [] and broker.count_rows(url, f"{ab_id}:challenger") == before

    # Weeks later the mSPRT has seen enough: the challenger is promoted by one alias swap.
    run = ab_run(world, "2023-08-15")
    assert run.state == "success", states("ab_rollout", run.run_id)
    assert states("ab_rollout", run.run_id)["promote"] == "success"
    assert states("ab_rollout", run.run_id)["rollback"] == "skipped"
    assert aliases(settings)["champion"] == long and "challenger" not in aliases(settings)
    assert tags(settings, flat)["previous_champion"] == "true" and tags(settings, long)["replaced_version"] == flat
    result = get_ab(settings, ab_id)
    assert result.status == "promoted" and result.result["decision"] == "promote"
    assert 5 <= result.result["n"] < 80, "decided by the test, after the minimum sample"
    champion_equity = broker.equity_curve(url, f"{ab_id}:champion")["equity"]
    assert np.allclose(champion_equity, champion_equity.iloc[0]), "the flat champion never trades"

    # 3. A flat challenger against the long champion is clearly worse: rolled back.
    worse = register(world, "constant_mix", [0.0, 0.0, 0.0], GOOD | {"wf_hybrid_rl_sharpe_mean": 1.3}, "worse")
    approve(settings, worse)
    run = promote_run(world, worse)
    assert run.state == "success", states("promotion", run.run_id)
    assert aliases(settings)["challenger"] == worse
    run = ab_run(world, "2023-08-15")
    assert run.state == "success", states("ab_rollout", run.run_id)
    assert states("ab_rollout", run.run_id)["rollback"] == "success"
    assert aliases(settings)["champion"] == long and "challenger" not in aliases(settings)
    assert "the challenger is worse" in tags(settings, worse)["rollback_reason"]

    # 4. One click restores the previous champion.
    run = world["dagbag"].get_dag("restore_champion").test(run_conf={"model_name": NAME, "reason": "test restore"})
    assert run.state == "success"
    assert aliases(settings)["champion"] == flat

    events = [e.event for e in reversed(list_events(url, model_name=NAME, limit=500))]
    for expected in ("gate.drift", "gate.governance", "gate.approval", "alias.champion", "alias.challenger",
                     "ab.start", "ab.decision", "promote", "rollback", "restore"):  # fmt: skip
        assert expected in events, (expected, events)


def test_a_rejected_version_is_never_promoted(world: dict) -> None:
    settings: Settings = world["settings"]
    before = aliases(settings)
    rejected = register(world, "constant_mix", None, GOOD, "rejected")
    approve(settings, rejected, "rejected", "too concentrated")
    run = promote_run(world, rejected)
    assert run.state == "failed"
    assert states("promotion", run.run_id)["registry_approval"] == "failed"
    assert states("promotion", run.run_id)["enter_rollout"] in ("upstream_failed", "skipped")
    assert {k: v for k, v in aliases(settings).items() if k != "candidate"} == {
        k: v for k, v in before.items() if k != "candidate"
    }
    assert tags(settings, rejected)["gate.approval"] == "failed"
    event = list_events(settings.resolved_database_url, model_name=NAME, version=rejected, event="gate.approval")[0]
    assert event.decision == "failed" and "too concentrated" in event.reasons[0]


def test_missing_metrics_fail_the_governance_gate(world: dict) -> None:
    settings: Settings = world["settings"]
    bare = register(world, "constant_mix", None, {}, "bare")
    approve(settings, bare)
    run = promote_run(world, bare)
    assert run.state == "failed"
    assert states("promotion", run.run_id)["governance_gate"] == "failed"
    assert tags(settings, bare)["gate.governance"] == "failed"
    assert "missing" in tags(settings, bare)["gate.governance.sharpe"]
    assert aliases(settings).get("challenger") != bare


def test_a_new_challenger_supersedes_the_running_ab(world: dict) -> None:
    from trading_core.registry import aliases as registry
    from trading_core.rollout.ab import ABConfig, get_ab, running_ab, start_ab

    settings: Settings = world["settings"]
    champion = registry.alias_version(registry.client_for(settings), NAME, registry.CHAMPION)
    if champion is None:  # run alone: crown one first
        champion = register(world, "constant_mix", None, GOOD, "crowned")
        registry.crown(settings, NAME, champion, reason="test")
    first = register(world, "constant_mix", None, GOOD, "first-challenger")
    second = register(world, "constant_mix", [0.0, 0.0, 0.0], GOOD, "second-challenger")
    registry.set_challenger(settings, NAME, first)
    old = start_ab(settings, NAME, champion, first, ABConfig(), start_after=AB_START)
    registry.set_challenger(settings, NAME, second)
    new = start_ab(settings, NAME, champion, second, ABConfig(), start_after=AB_START)
    assert running_ab(settings, NAME) == new
    assert get_ab(settings, old).status == "superseded" and get_ab(settings, old).result["reason"].startswith(
        f"challenger v{second}"
    )
    assert list_events(settings.resolved_database_url, model_name=NAME, event="ab.superseded")[0].version == first
