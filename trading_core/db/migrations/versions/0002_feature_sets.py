"""feature sets

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_sets",
        sa.Column("version", sa.String(length=80), nullable=False),
        sa.Column("dataset_version", sa.String(length=80), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_version"], ["datasets.version"]),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_index("ix_feature_sets_dataset_version", "feature_sets", ["dataset_version"])


def downgrade() -> None:
    op.drop_index("ix_feature_sets_dataset_version", table_name="feature_sets")
    op.drop_table("feature_sets")
