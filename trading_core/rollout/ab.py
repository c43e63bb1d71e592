"""The A/B rollout: champion and challenger paper-trade side by side until the sequential rule decides.

* :func:`start_ab` opens one paper account per arm, with ``champion_share`` of the capital for the
  champion and the rest for the challenger, and records the test (``ab_tests``) with its
  pre-declared decision rule; idempotent per (model, champion, challenger).
* :func:`step_ab` books every bar after the last one booked, up to ``until``: per arm, the pending
  decision fills at the bar's open (:mod:`.broker`, the backtest's execution model), the books are
  marked at its close, and the arm's policy decides at that close on the bars known then. A re-run
  books nothing twice (the broker is idempotent per account and bar).
* :func:`ab_evidence` pairs the arms' daily returns; :func:`evaluate_ab` runs the sequential rule
  (:mod:`.sequential`) on the differences, with the challenger's drawdown as a hard guard;
  :func:`ab_gate` is that rule as a governance gate (audited), what the ``ABDecisionSensor`` calls.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from trading_core.config import Settings
from trading_core.db import session_scope, upgrade_database
from trading_core.db.audit import record_event
from trading_core.db.models import ABTest
from trading_core.errors import DataQualityError, TradingError
from trading_core.registry.gates import GateOutcome, Status
from trading_core.registry.policy import tail_bars
from trading_core.rollout import broker
from trading_core.rollout.sequential import SequentialConfig, SequentialResult, decide

log = logging.getLogger(__name__)

ARMS = ("champion", "challenger")


class ABConfig(BaseModel):
    """How capital is split and when the test decides (pre-declared at the start, stored with it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    champion_share: float = Field(default=0.8, gt=0, lt=1)
    capital: float = Field(default=1_000_000.0, gt=0)
    rule: SequentialConfig = SequentialConfig()


@dataclass(frozen=True)
class ABStep:
    ab_id: str
    bars: list[str]
    """Bars booked by this call (ISO dates); empty when nothing new."""
    equity: dict[str, float]
    decisions: dict[str, str]
    """Per arm, the risk decision at the last bar booked."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ab_id_for(name: str, champion: str, challenger: str) -> str:
    return f"{name}:v{champion}-vs-v{challenger}"


def _ts(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def start_ab(
    settings: Settings, name: str, champion: str, challenger: str, config: ABConfig | None = None, *,
    start_after: Any = None, actor: str | None = None, dag_run: str | None = None,
) -> str:  # fmt: skip
    """Open the A/B of ``challenger`` against ``champion``; bars after ``start_after`` (default: the
    newest bar in the lake for the policies' universe) are traded. Returns the A/B id."""
    from trading_core.registry.evidence import load_version_policy, recent_bars

    config = config or ABConfig()
    url = settings.resolved_database_url
    upgrade_database(url)
    ab_id = ab_id_for(name, champion, challenger)
    with session_scope(url) as session:
        if session.get(ABTest, ab_id) is not None:
            log.info("A/B %s already started", ab_id)
            return ab_id
    with tempfile.TemporaryDirectory(prefix="ab-start-") as tmp:
        policies = {
            "champion": load_version_policy(settings, name, champion, Path(tmp) / "champion"),
            "challenger": load_version_policy(settings, name, challenger, Path(tmp) / "challenger"),
        }
    shares = {"champion": config.champion_share, "challenger": 1.0 - config.champion_share}
    for arm, policy in policies.items():
        broker.open_account(
            url, ab_id=ab_id, arm=arm, model_name=name, model_version=champion if arm == "champion" else challenger,
            symbols=policy.symbols, initial_cash=config.capital * shares[arm], execution=policy.spec.env,
        )  # fmt: skip
    if start_after is None:
        lineage = policies["challenger"].spec.lineage
        latest = recent_bars(settings, lineage.get("feed", ""), lineage.get("interval", "1d"),
                             policies["challenger"].universe, 1)  # fmt: skip
        if latest.empty:
            raise DataQualityError(f"no bars in the lake for {policies['challenger'].universe}: cannot start the A/B")
        start_after = latest["timestamp"].max()
    with session_scope(url) as session:
        # One challenger at a time: a new one (the alias moved) ends the model's running A/B.
        superseded = session.scalars(
            select(ABTest).where(ABTest.model_name == name, ABTest.status == "running", ABTest.id != ab_id)
        ).all()
        replaced = f"challenger v{challenger} replaced it ({ab_id})"
        for old in superseded:
            old.status, old.decided_at = "superseded", datetime.now(UTC)
            old.result = {"decision": "superseded", "reason": replaced}
        session.add(
            ABTest(
                id=ab_id, model_name=name, champion_version=str(champion), challenger_version=str(challenger),
                config=config.model_dump(mode="json"), status="running", start_after=_ts(start_after).to_pydatetime(),
            )
        )  # fmt: skip
    for old in superseded:
        record_event(url, event="ab.superseded", model_name=name, version=old.challenger_version,
                     decision="superseded", reasons=[replaced], details={"ab_id": old.id},
                     actor=actor, dag_run=dag_run)  # fmt: skip
    split = f"{config.champion_share:.0%}/{1 - config.champion_share:.0%}"
    reason = f"challenger v{challenger} vs champion v{champion}, split {split}, bars after {_ts(start_after).date()}"
    details = {"ab_id": ab_id, "config": config.model_dump(mode="json")}
    record_event(url, event="ab.start", model_name=name, version=str(challenger), decision="start",
                 reasons=[reason], details=details, actor=actor, dag_run=dag_run)  # fmt: skip
    return ab_id


def get_ab(settings: Settings, ab_id: str) -> ABTest:
    upgrade_database(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as session:
        test = session.get(ABTest, ab_id)
        if test is None:
            raise TradingError(f"no A/B test {ab_id!r}")
        session.expunge(test)
        return test


def running_ab(settings: Settings, name: str) -> str | None:
    """The id of ``name``'s running A/B (newest), or None."""
    upgrade_database(settings.resolved_database_url)
    with session_scope(settings.resolved_database_url) as session:
        row = session.scalars(
            select(ABTest)
            .where(ABTest.model_name == name, ABTest.status == "running")
            .order_by(ABTest.started_at.desc())
        ).first()
        return row.id if row is not None else None


def _policy_state(state: broker.AccountState, symbols: list[str]) -> Any:
    from trading_core.registry.decision import PolicyState

    risk = state.risk_state or {}
    return PolicyState(
        equity=state.equity,
        weights=tuple(float(state.weights.get(s, 0.0)) for s in symbols),
        entry_prices=tuple(float(state.entry_price.get(s, 0.0)) for s in symbols),  # 0 where flat (ignored there)
        peak_equity=float(risk.get("peak_equity", state.peak_equity)),
        cooldown_left=int(risk.get("cooldown_left", 0)),
        halted=bool(risk.get("halted", False)),
        last_var=float(risk.get("var", 0.0)),
    )


def step_ab(settings: Settings, ab_id: str, until: Any, *, max_bars: int | None = None) -> ABStep:
    """Book every bar after the last booked one up to ``until`` (inclusive), for both arms."""
    from trading_core.registry.evidence import load_version_policy, recent_bars

    test = get_ab(settings, ab_id)
    url = settings.resolved_database_url
    until_ts = _ts(until)
    booked: list[str] = []
    equity: dict[str, float] = {}
    verdicts: dict[str, str] = {}
    if test.status != "running":
        log.info("A/B %s is %s: nothing to book", ab_id, test.status)
        return ABStep(ab_id, booked, equity, verdicts)
    with tempfile.TemporaryDirectory(prefix="ab-step-") as tmp:
        versions = {"champion": test.champion_version, "challenger": test.challenger_version}
        policies = {
            arm: load_version_policy(settings, test.model_name, v, Path(tmp) / arm) for arm, v in versions.items()
        }
    lineage = policies["challenger"].spec.lineage
    universe = sorted(set(policies["champion"].universe) | set(policies["challenger"].universe))
    history = max(p.min_history for p in policies.values())
    accounts = {arm: f"{ab_id}:{arm}" for arm in ARMS}
    last = [broker.account_state(url, a).last_bar for a in accounts.values()]
    after = max([_ts(test.start_after), *[b for b in last if b is not None]])
    window = recent_bars(settings, lineage.get("feed", ""), lineage.get("interval", "1d"), universe, 10_000, until_ts)
    stamps = sorted(t for t in pd.to_datetime(window["timestamp"], utc=True).unique() if after < t <= until_ts)
    if max_bars is not None:
        stamps = stamps[:max_bars]
    all_stamps = pd.to_datetime(window["timestamp"], utc=True)
    for bar in stamps:
        known = window[all_stamps <= bar]
        for arm, policy in policies.items():
            row, out = book_bar(url, accounts[arm], bar, known, policy, history)
            equity[arm] = row.equity
            verdicts[arm] = str(out["risk_decision"].iloc[0])
        booked.append(str(bar.date()))
    log.info("A/B %s: booked %d bar(s) up to %s", ab_id, len(booked), booked[-1] if booked else "-")
    return ABStep(ab_id, booked, equity, verdicts)


def book_bar(
    url: str, account: str, bar: pd.Timestamp, known: pd.DataFrame, policy: Any, history: int
) -> tuple[broker.EquityRow, pd.DataFrame]:
    """One arm at one bar: fill the pending order at the bar's open and mark the close (broker), then
    the policy decides at that close on the last ``history`` bars of ``known`` (bars up to ``bar``)."""
    today = known[pd.to_datetime(known["timestamp"], utc=True) == bar]
    row = broker.mark_bar(url, account, bar, today[today["symbol"].isin(policy.symbols)])
    state = broker.account_state(url, account)
    bars = tail_bars(known, policy.universe, max(history, policy.min_history))
    out = policy.decide(bars, _policy_state(state, policy.symbols))
    broker.record_decision(
        url, account, bar,
        target_weights=dict(zip(out["symbol"], out["target_weight"].astype(float), strict=True)),
        sigma=dict(zip(out["symbol"], out["sigma"].astype(float), strict=True)),
        adv_value=dict(zip(out["symbol"], out["adv_value"].astype(float), strict=True)),
        policy_output=_output_record(out),
        risk_state=_risk_state(out),
    )  # fmt: skip
    return row, out


def _risk_state(out: pd.DataFrame) -> dict[str, Any]:
    """The breaker state after a decision (portfolio-level: the same on every row)."""
    first = out.iloc[0]
    return {
        "peak_equity": float(first["peak_equity"]),
        "cooldown_left": int(first["cooldown_left"]),
        "halted": first["risk_decision"] == "halted",
        "var": float(first["var"]),
    }


def _output_record(out: pd.DataFrame) -> dict[str, Any]:
    keep = ["prob_hold", "prob_buy", "prob_sell", "confidence", "entropy", "action", "action_scaled", "target_weight"]
    record: dict[str, Any] = {
        str(r["symbol"]): {k: (None if pd.isna(r[k]) else float(r[k])) for k in keep} for _, r in out.iterrows()
    }
    record["_risk"] = {"decision": str(out["risk_decision"].iloc[0]), "reasons": str(out["risk_reasons"].iloc[0])}
    return record


def ab_evidence(settings: Settings, ab_id: str) -> pd.DataFrame:
    """Paired daily returns of the arms over the bars both booked, from the second bar on (the first mark
    has no return): bar, champion, challenger, difference (challenger - champion), challenger_drawdown."""
    url = settings.resolved_database_url
    curves = {arm: broker.equity_curve(url, f"{ab_id}:{arm}").set_index("bar") for arm in ARMS}
    paired = pd.concat({arm: c["portfolio_return"] for arm, c in curves.items()}, axis=1, join="inner").iloc[1:]
    paired["difference"] = paired["challenger"] - paired["champion"]
    paired["challenger_drawdown"] = curves["challenger"]["drawdown"].reindex(paired.index)
    return paired.reset_index()


def evaluate_ab(settings: Settings, ab_id: str) -> SequentialResult:
    """The sequential rule replayed day by day over the evidence booked so far: the verdict of the first
    day that had one (so a run that catches up several days decides as daily runs would have), else wait."""
    test = get_ab(settings, ab_id)
    config = ABConfig.model_validate(test.config)
    paired = ab_evidence(settings, ab_id)
    differences = paired["difference"].to_numpy(np.float64)
    drawdowns = paired["challenger_drawdown"].to_numpy(np.float64)
    for k in range(1, len(differences) + 1):
        result = decide(differences[:k], config.rule, challenger_drawdown=float(drawdowns[k - 1]))
        if result.decision != "wait":
            return result
    return decide(differences, config.rule, challenger_drawdown=float(drawdowns[-1]) if len(drawdowns) else None)


def ab_gate(settings: Settings, ab_id: str, *, actor: str | None = None, dag_run: str | None = None) -> GateOutcome:
    """The A/B's sequential rule on the paired daily returns booked so far: ``waiting`` (keep trading)
    or ``passed`` with ``details["decision"]`` = promote | rollback. Every evaluation is audited.

    The ``ABDecisionSensor``'s library call; it answers like the registry's gates
    (:class:`~trading_core.registry.gates.GateOutcome`) but lives here, with the A/B it evaluates."""
    test = get_ab(settings, ab_id)
    if test.status != "running":
        return GateOutcome("ab", "failed", [f"A/B {ab_id} is already {test.status}"], {"ab_id": ab_id})
    result = evaluate_ab(settings, ab_id)
    upgrade_database(settings.resolved_database_url)
    record_event(
        settings.resolved_database_url, event="ab.decision", model_name=test.model_name,
        version=test.challenger_version, decision=result.decision, reasons=[result.reason],
        details={"ab_id": ab_id, **result.as_dict()}, actor=actor, dag_run=dag_run,
    )  # fmt: skip
    status: Status = "waiting" if result.decision == "wait" else "passed"
    return GateOutcome("ab", status, [result.reason], {"ab_id": ab_id, **result.as_dict()})


def close_ab(settings: Settings, ab_id: str, status: str, result: dict[str, Any]) -> None:
    """Mark the test decided (``promoted`` / ``rolled_back``); later steps book nothing. (A test whose
    challenger is replaced before a verdict ends as ``superseded``, see :func:`start_ab`.)"""
    with session_scope(settings.resolved_database_url) as session:
        test = session.get(ABTest, ab_id)
        if test is None:
            raise TradingError(f"no A/B test {ab_id!r}")
        test.status = status
        test.decided_at = datetime.now(UTC)
        test.result = result


def conclude_ab(
    settings: Settings, ab_id: str, outcome: dict[str, Any], *, actor: str | None = None, dag_run: str | None = None
) -> Any:
    """Act on the decision sensor's ``outcome``: promote (alias swap) or roll back, then end the A/B.
    Returns the :class:`~trading_core.registry.aliases.AliasChange`."""
    from trading_core.registry import aliases

    verdict = outcome["details"]["decision"]
    act = {"promote": (aliases.promote, "promoted"), "rollback": (aliases.rollback, "rolled_back")}.get(verdict)
    if act is None:
        raise ValueError(f"A/B {ab_id}: unexpected verdict {verdict!r}")
    move, status = act
    test = get_ab(settings, ab_id)
    reason = "; ".join(outcome["reasons"])
    change = move(settings, test.model_name, reason=reason, details=outcome["details"], actor=actor, dag_run=dag_run)
    close_ab(settings, ab_id, status, outcome["details"])
    return change
