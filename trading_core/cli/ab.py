"""``trading ab status|step``: the A/B rollout of a challenger against the champion (what the ab_rollout DAG runs).

trading ab status                             # the running A/B: days, mean difference, the rule's verdict so far
trading ab step --until 2024-06-28            # book bars up to a date (what the ab_rollout DAG runs daily)
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trading_core.cli.common import model_command
from trading_core.config import Settings


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


def add_parsers(sub: Any) -> None:
    """Register ``ab status|step``."""
    ab = sub.add_parser("ab", help="the A/B rollout: status, book bars")
    actions = ab.add_subparsers(dest="action", required=True)
    a = model_command(actions, "status", "the running A/B and the sequential rule's verdict so far", _ab_status)
    a.add_argument("--ab-id", dest="ab_id")
    a = model_command(actions, "step", "book bars up to --until for both arms (the ab_rollout DAG's work)", _ab_step)
    a.add_argument("--ab-id", dest="ab_id")
    a.add_argument("--until", required=True, help="last bar date to book (YYYY-MM-DD)")
    a.add_argument("--max-bars", dest="max_bars", type=int)
