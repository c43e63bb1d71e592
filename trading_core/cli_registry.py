"""``trading registry|ab|audit``: the governance side of the CLI (same functions as the DAGs and sensors).

trading registry gates [--version 3]          # drift + governance gates of a version (default: alias candidate)
trading registry approve 3 --comment "ok"     # the reviewer's tag, as in the MLflow UI (--reject to reject)
trading registry aliases                      # candidate / challenger / champion
trading ab status                             # the running A/B: days, mean difference, the rule's verdict so far
trading ab step --until 2024-06-28            # book bars up to a date (what the ab_rollout DAG runs daily)
trading audit --limit 20                      # the audit table, newest first
trading monitor check [--as-of 2024-06-28]    # drift + decay of the champion (the drift_monitor DAG's check)
trading monitor list                          # recorded checks
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from trading_core.config import Settings


def _version(settings: Settings, name: str, version: str | None) -> str:
    from trading_core.registry.aliases import CANDIDATE, alias_version, client_for

    resolved = version or alias_version(client_for(settings), name, CANDIDATE)
    if not resolved:
        raise ValueError(f"{name} has no alias {CANDIDATE!r}: pass --version")
    return resolved


def _gates(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.registry.gates import drift_gate, governance_gate

    version = _version(settings, args.model, args.version)
    actor = f"cli:{getpass.getuser()}"
    failed = False
    for gate in (drift_gate, governance_gate):  # drift first: the governance policy reads its share
        outcome = gate(settings, args.model, version, actor=actor)
        failed |= outcome.status == "failed"
        print(f"{outcome.gate:<11} {outcome.status:<7} " + "\n                    ".join(outcome.reasons))
    return 1 if failed else 0


def _approve(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.registry.aliases import client_for

    client = client_for(settings)
    client.get_model_version(args.model, args.version)
    verdict = "rejected" if args.reject else "approved"
    client.set_model_version_tag(args.model, args.version, "approval", verdict)
    client.set_model_version_tag(args.model, args.version, "approval_by", args.reviewer or getpass.getuser())
    client.set_model_version_tag(args.model, args.version, "approval_comment", args.comment or "")
    print(f"{args.model} v{args.version}: approval={verdict} (the promotion DAG's approval gate reads it)")
    return 0


def _aliases(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.registry.aliases import client_for

    aliases = client_for(settings).get_registered_model(args.model).aliases
    for alias in ("candidate", "challenger", "champion"):
        print(f"{alias:<11} {('v' + str(aliases[alias])) if alias in aliases else '-'}")
    return 0


def _ab_id(args: argparse.Namespace, settings: Settings) -> str | None:
    """--ab-id, else the model's running A/B (None, said on stdout, when there is none)."""
    from trading_core.rollout.ab import running_ab

    ab_id = args.ab_id or running_ab(settings, args.model)
    if not ab_id:
        print(f"{args.model}: no running A/B")
    return ab_id


def _ab_status(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.rollout.ab import ab_evidence, evaluate_ab, get_ab

    ab_id = _ab_id(args, settings)
    if not ab_id:
        return 0
    test = get_ab(settings, ab_id)
    paired = ab_evidence(settings, ab_id)
    result = evaluate_ab(settings, ab_id) if test.status == "running" else None
    out: dict[str, Any] = {
        "ab_id": ab_id, "status": test.status, "champion": test.champion_version,
        "challenger": test.challenger_version, "paired_days": len(paired),
        "last_bar": str(paired["bar"].iloc[-1].date()) if len(paired) else None,
        "verdict_so_far": result.as_dict() if result else test.result,
    }  # fmt: skip
    print(json.dumps(out, indent=2, default=str))
    return 0


def _ab_step(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.rollout.ab import step_ab

    ab_id = _ab_id(args, settings)
    if not ab_id:
        return 0
    print(json.dumps(step_ab(settings, ab_id, args.until, max_bars=args.max_bars).as_dict(), indent=2))
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database
    from trading_core.db.audit import list_events

    upgrade_database(settings.resolved_database_url)
    for e in list_events(settings.resolved_database_url, model_name=args.model, event=args.event, limit=args.limit):
        reasons = "; ".join(e.reasons or [])
        version = f"v{e.version}" if e.version else "-"
        print(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.event:<16} {version:<5} {e.decision:<9} {e.actor or '':<30} {reasons}")
    return 0


def _monitor_check(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.monitoring.check import run_check

    outcome = run_check(settings, args.model, args.version, as_of=args.as_of, window=args.window,
                        actor=f"cli:{getpass.getuser()}")  # fmt: skip
    print(json.dumps(outcome.as_dict(), indent=2, default=str))
    return 0


def _monitor_list(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database
    from trading_core.monitoring.store import list_checks

    upgrade_database(settings.resolved_database_url)
    for c in list_checks(settings.resolved_database_url, model_name=args.model, limit=args.limit):
        share = "-" if c.drift_share is None else f"{c.drift_share:.3f}"
        print(f"{c.at:%Y-%m-%d %H:%M}  v{c.version}  {c.decision:<11} share {share}  {c.triggered_run or ''}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register the ``registry``, ``ab`` and ``audit`` commands on the main parser's subparsers."""

    def command(actions: Any, name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument("--model", default=None, help="registered model (default: settings.model_name)")
        parser.set_defaults(func=func)
        return parser

    registry = sub.add_parser("registry", help="policy versions: gates, approval, aliases")
    actions = registry.add_subparsers(dest="action", required=True)
    command(actions, "gates", "run the drift and governance gates on a version", _gates).add_argument(
        "--version", help="model version (default: alias candidate)"
    )
    a = command(actions, "approve", "approve (or --reject) a version, as a reviewer does in the MLflow UI", _approve)
    a.add_argument("version")
    a.add_argument("--reject", action="store_true")
    a.add_argument("--comment", default="")
    a.add_argument("--reviewer", default=None, help="who (default: the OS user)")
    command(actions, "aliases", "which version holds candidate / challenger / champion", _aliases)

    ab = sub.add_parser("ab", help="the A/B rollout: status, book bars")
    actions = ab.add_subparsers(dest="action", required=True)
    a = command(actions, "status", "the running A/B and the sequential rule's verdict so far", _ab_status)
    a.add_argument("--ab-id", dest="ab_id")
    a = command(actions, "step", "book bars up to --until for both arms (the ab_rollout DAG's work)", _ab_step)
    a.add_argument("--ab-id", dest="ab_id")
    a.add_argument("--until", required=True, help="last bar date to book (YYYY-MM-DD)")
    a.add_argument("--max-bars", dest="max_bars", type=int)

    monitor = sub.add_parser("monitor", help="drift and decay checks of a deployed version")
    actions = monitor.add_subparsers(dest="action", required=True)
    a = command(actions, "check", "feature/prediction drift and paper decay (what the drift_monitor DAG runs)",
                _monitor_check)  # fmt: skip
    a.add_argument("--version", help="model version (default: the champion)")
    a.add_argument("--as-of", dest="as_of", help="check as of this date (default: the newest bar)")
    a.add_argument("--window", type=int, default=63, help="recent bars compared with the reference")
    command(actions, "list", "recorded checks, newest first", _monitor_list).add_argument(
        "--limit", type=int, default=20
    )

    audit = command(sub, "audit", "governance decisions, newest first", _audit)
    audit.add_argument("--event", help="e.g. gate.governance, promote, rollback")
    audit.add_argument("--limit", type=int, default=50)
