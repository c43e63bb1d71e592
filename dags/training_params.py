"""The training DAG's form: every knob a user can set on a manual run, validated by JSON schema.

Derived from ``trading_core.training_config.TrainingConfig``, the one source of the training defaults
(the CLI's flags and the library's fallbacks read it too): each field becomes a ``Param`` with the
field's default, its docstring as description and its bounds, pattern, format and choices as JSON
schema. To change a default or a bound, change the model. tests/test_training_config.py checks the
form against it.
"""

from __future__ import annotations

from airflow.sdk import Param


def training_params() -> dict[str, Param]:
    """A fresh ``Param`` per field of the model, in the model's order (a DAG owns its Param objects)."""
    # Imported here, at parse time: the module needs only pydantic (no pandas, torch or MLflow).
    from trading_core.training_config import form_fields

    return {name: Param(**spec) for name, spec in form_fields().items()}
