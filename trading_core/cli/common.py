"""Small helpers shared by the command groups of the ``trading`` CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from trading_core.config import Settings
from trading_core.errors import ConfigError

Handler = Callable[[argparse.Namespace, Settings], int]
"""What a command runs: the parsed arguments and the settings in, the exit code out."""


def items(text: str | None) -> list[str]:
    """The non-empty, stripped items of a comma-separated flag value."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def json_object(text: str | None, flag: str) -> dict[str, Any]:
    """A flag's JSON object (``{}`` when the flag is absent); anything else is a ConfigError naming the flag."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}")
    return value


def pct(value: Any) -> str:
    """A share as a percentage with one decimal; ``-`` for None or NaN."""
    return "-" if value is None or value != value else f"{100 * float(value):.1f}%"  # value != value: NaN


def model_command(actions: Any, name: str, help_text: str, func: Handler) -> argparse.ArgumentParser:
    """A subcommand working on a registered model: ``--model`` (default: ``settings.model_name``, filled in
    by :func:`trading_core.cli.main`) and the handler."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
    parser.add_argument("--model", default=None, help="registered model (default: settings.model_name)")
    parser.set_defaults(func=func)
    return parser
