"""``trading registry gates|approve|aliases``: a policy version's gates, the reviewer's approval, the aliases
(the same functions as the promotion DAG and its sensors).

trading registry gates [--version 3]          # drift + governance gates of a version (default: alias candidate)
trading registry approve 3 --comment "ok"     # the reviewer's tag, as in the MLflow UI (--reject to reject)
trading registry aliases                      # candidate / challenger / champion
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from trading_core.cli.common import model_command
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


def add_parsers(sub: Any) -> None:
    """Register ``registry gates|approve|aliases``."""
    registry = sub.add_parser("registry", help="policy versions: gates, approval, aliases")
    actions = registry.add_subparsers(dest="action", required=True)
    model_command(actions, "gates", "run the drift and governance gates on a version", _gates).add_argument(
        "--version", help="model version (default: alias candidate)"
    )
    approve_help = "approve (or --reject) a version, as a reviewer does in the MLflow UI"
    a = model_command(actions, "approve", approve_help, _approve)
    a.add_argument("version")
    a.add_argument("--reject", action="store_true")
    a.add_argument("--comment", default="")
    a.add_argument("--reviewer", default=None, help="who (default: the OS user)")
    model_command(actions, "aliases", "which version holds candidate / challenger / champion", _aliases)
