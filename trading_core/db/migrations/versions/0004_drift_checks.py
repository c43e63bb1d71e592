"""drift checks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Autoincrement ids: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there)."""


def upgrade() -> None:
    op.create_table(
        "drift_checks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("drifted_columns", sa.JSON(), nullable=False),
        sa.Column("prediction_drift_share", sa.Float(), nullable=True),
        sa.Column("decay", sa.JSON(), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("triggered_run", sa.String(length=250), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_checks_model_name", "drift_checks", ["model_name"])


def downgrade() -> None:
    op.drop_index("ix_drift_checks_model_name", table_name="drift_checks")
    op.drop_table("drift_checks")
