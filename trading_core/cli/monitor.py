"""``trading monitor check|list``: drift and decay checks of a deployed version (the drift_monitor DAG's check).

trading monitor check [--as-of 2024-06-28]    # drift + decay of the champion (the drift_monitor DAG's check)
trading monitor list                          # recorded checks
"""

from __future__ import annotations

import argparse
import getpass
import json
from typing import Any

from trading_core.cli.common import model_command
from trading_core.config import Settings


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
    """Register ``monitor check|list``."""
    monitor = sub.add_parser("monitor", help="drift and decay checks of a deployed version")
    actions = monitor.add_subparsers(dest="action", required=True)
    a = model_command(actions, "check", "feature/prediction drift and paper decay (what the drift_monitor DAG runs)",
                      _monitor_check)  # fmt: skip
    a.add_argument("--version", help="model version (default: the champion)")
    a.add_argument("--as-of", dest="as_of", help="check as of this date (default: the newest bar)")
    a.add_argument("--window", type=int, default=63, help="recent bars compared with the reference")
    model_command(actions, "list", "recorded checks, newest first", _monitor_list).add_argument(
        "--limit", type=int, default=20
    )
