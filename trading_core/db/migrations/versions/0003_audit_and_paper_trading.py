"""audit events, A/B tests and paper trading

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""Autoincrement ids: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there)."""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("dag_run", sa.String(length=250), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_event", "audit_events", ["event"])
    op.create_index("ix_audit_events_model_name", "audit_events", ["model_name"])

    op.create_table(
        "ab_tests",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=False),
        sa.Column("challenger_version", sa.String(length=32), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ab_tests_model_name", "ab_tests", ["model_name"])
    op.create_index("ix_ab_tests_status", "ab_tests", ["status"])

    op.create_table(
        "paper_accounts",
        sa.Column("id", sa.String(length=140), nullable=False),
        sa.Column("ab_id", sa.String(length=120), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("initial_cash", sa.Float(), nullable=False),
        sa.Column("execution", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_paper_accounts_ab_id", "paper_accounts", ["ab_id"])

    op.create_table(
        "paper_decisions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=140), nullable=False),
        sa.Column("bar", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target_weights", sa.JSON(), nullable=False),
        sa.Column("sigma", sa.JSON(), nullable=False),
        sa.Column("adv_value", sa.JSON(), nullable=False),
        sa.Column("policy_output", sa.JSON(), nullable=False),
        sa.Column("risk_state", sa.JSON(), nullable=False),
        sa.Column("filled_at_bar", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["paper_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "bar", name="uq_paper_decisions_account_bar"),
    )

    op.create_table(
        "paper_fills",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=140), nullable=False),
        sa.Column("bar", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision_bar", sa.DateTime(timezone=True), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("shares_before", sa.Float(), nullable=False),
        sa.Column("shares_after", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("traded_notional", sa.Float(), nullable=False),
        sa.Column("fees", sa.Float(), nullable=False),
        sa.Column("impact", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["paper_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "bar", "symbol", name="uq_paper_fills_account_bar_symbol"),
    )

    op.create_table(
        "paper_equity",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=140), nullable=False),
        sa.Column("bar", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("shares", sa.JSON(), nullable=False),
        sa.Column("entry_price", sa.JSON(), nullable=False),
        sa.Column("close", sa.JSON(), nullable=False),
        sa.Column("portfolio_return", sa.Float(), nullable=False),
        sa.Column("peak_equity", sa.Float(), nullable=False),
        sa.Column("drawdown", sa.Float(), nullable=False),
        sa.Column("costs", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["paper_accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "bar", name="uq_paper_equity_account_bar"),
    )


def downgrade() -> None:
    op.drop_table("paper_equity")
    op.drop_table("paper_fills")
    op.drop_table("paper_decisions")
    op.drop_index("ix_paper_accounts_ab_id", table_name="paper_accounts")
    op.drop_table("paper_accounts")
    op.drop_index("ix_ab_tests_status", table_name="ab_tests")
    op.drop_index("ix_ab_tests_model_name", table_name="ab_tests")
    op.drop_table("ab_tests")
    op.drop_index("ix_audit_events_model_name", table_name="audit_events")
    op.drop_index("ix_audit_events_event", table_name="audit_events")
    op.drop_table("audit_events")
