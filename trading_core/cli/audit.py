"""``trading audit``: the governance decisions (gates, approvals, alias moves, A/B verdicts), newest first.

trading audit --limit 20                      # the audit table, newest first
"""

from __future__ import annotations

import argparse
from typing import Any

from trading_core.cli.common import model_command
from trading_core.config import Settings


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database
    from trading_core.db.audit import list_events

    upgrade_database(settings.resolved_database_url)
    for e in list_events(settings.resolved_database_url, model_name=args.model, event=args.event, limit=args.limit):
        reasons = "; ".join(e.reasons or [])
        version = f"v{e.version}" if e.version else "-"
        print(f"{e.at:%Y-%m-%d %H:%M:%S}  {e.event:<16} {version:<5} {e.decision:<9} {e.actor or '':<30} {reasons}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``audit``."""
    audit = model_command(sub, "audit", "governance decisions, newest first", _audit)
    audit.add_argument("--event", help="e.g. gate.governance, promote, rollback")
    audit.add_argument("--limit", type=int, default=50)
