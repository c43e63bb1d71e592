"""``trading``: every stage runnable without Airflow, calling the same functions the DAGs call.

trading ingest --source synthetic --start 2024-01-01 --end 2024-06-30
trading ingest --source csv --path data/sp500_daily_2013-02-08_2018-02-07.csv.gz --symbols AAPL,MSFT  # README: data
trading ingest --source csv --path bars_5m.csv --calendar XNYS --tz America/New_York   # intraday (docs/ingest.md)
trading datasets                 # recorded dataset versions
trading quarantine RUN_ID        # rejected rows of one ingest run, with rule and reason
trading features build --horizon 5 --threshold-k 0.5 --seq-len 30   # latest dataset -> feature set
trading features list            # recorded feature sets: samples per split, test majority rate
trading features show fs-...     # feature names by group, splits, class balance per split
trading train-forecaster --epochs 10 --ensemble-size 3   # latest feature set -> MLflow run + pyfunc model
trading hpo-forecaster --trials 8 --epochs 3             # Optuna search; --study/--worker to share one
trading train-agent --algo ensemble --forecaster-uri models:/m-...   # RL agent(s) on the latest feature set
trading train-agent --algo ppo --pure-rl --timesteps 20000          # the same without the forecaster
trading walk-forward --folds 3 --seeds 1,2                # every strategy retrained per fold, judged out of sample
trading db upgrade               # apply migrations to the app DB
trading demo                     # ingest, features and training DAGs, then the promotion gates (embedded default)
trading ui                       # Airflow + MLflow UIs on the local stores
trading info                     # the resolved settings, secrets masked
trading registry gates|approve|aliases, trading ab status|step, trading monitor check|list, trading audit
                                 # the governance side: gates, approval, A/B, drift checks, audit table
trading stream replay|tail       # bars to the live service over NATS, decisions back (cli/stream.py)
The training flags default to the training DAG's form (trading_core/training_config.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from trading_core.cli import ab, audit, data, demo, features, monitor, registry, stream, system, training
from trading_core.config import Settings, get_settings
from trading_core.errors import TradingError

COMMAND_GROUPS = (data, features, training, demo, system, registry, ab, monitor, audit, stream)
"""The command groups, in the order ``trading --help`` lists them: one module each under
``trading_core/cli/``, with an ``add_parsers(subparsers)`` that registers its commands (each command's
``func`` takes the parsed arguments and the settings and returns the exit code). A new group is a new
module here and one entry in this tuple."""


def build_parser() -> argparse.ArgumentParser:
    """The ``trading`` parser with every command group's subcommands."""
    parser = argparse.ArgumentParser(
        prog="trading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The platform never phones home: MLflow's usage telemetry stays off unless a user turns it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    settings: Settings | None = None
    try:
        settings = get_settings()
        if getattr(args, "model", "unset") is None:
            args.model = settings.model_name
        return int(args.func(args, settings))
    except (TradingError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        # Unreachable server, unknown database, refused login: a message naming the (redacted) URL.
        reason = (str(exc.orig or exc).strip().splitlines() or ["no reason given"])[0]
        where = settings.safe_database_url if settings is not None else "?"
        print(f"error: database unavailable: {reason} (app DB {where}, TRADING_DATABASE_URL)", file=sys.stderr)
        return 2
