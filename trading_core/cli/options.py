"""The training flags of the CLI, derived from :class:`~trading_core.training_config.TrainingConfig`.

A flag such as ``train-agent --n-envs`` is the model's field ``n_envs``: its default, type, choices
and help text come from the field, so the CLI cannot drift from the DAG form (which is derived from
the same model). Bounds are not checked here: the library validates the values it is given, with
the same messages as before.
"""

from __future__ import annotations

import argparse
from functools import cache
from typing import Any

from trading_core.training_config import TRAINING_DEFAULTS, form_fields

_PYTHON_TYPES: dict[str, type] = {"integer": int, "number": float, "string": str}


@cache
def _fields() -> dict[str, dict[str, Any]]:
    return form_fields()


def training_option(
    parser: argparse.ArgumentParser,
    flag: str,
    field: str,
    *,
    help_text: str | None = None,
    choices: list[str] | None = None,
) -> argparse.Action:
    """Add ``flag`` for the TrainingConfig field ``field``.

    :param help_text: the flag's help when the field's docstring does not fit the command; the default is
        appended either way (an empty default is explained by the text).
    :param choices: a subset of the field's choices (e.g. no ``ensemble`` where a command cannot run one).

    A list field (``seeds``) is one comma-separated value, parsed by the command, with the default
    written the same way.
    """
    spec = _fields()[field]
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    (kind,) = [t for t in types if t != "null"]
    default: Any = getattr(TRAINING_DEFAULTS, field)
    python_type: type = str if kind == "array" else _PYTHON_TYPES[kind]
    if kind == "array":
        default = ",".join(str(v) for v in default)
    text = (help_text or spec["description"]).rstrip(".")
    if default is not None:
        text = f"{text} ({default})"
    enum = [v for v in spec.get("enum", []) if v is not None] or None
    return parser.add_argument(flag, type=python_type, default=default, choices=choices or enum, help=text)
