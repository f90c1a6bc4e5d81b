"""quota: per-project limits of every service's resources

Revision ID: quota_0001
Revises:
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "quota_0001"
down_revision = None
branch_labels = ("quota",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_limit",
        sa.Column("service", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("hard_limit", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("service", "project_id", "resource", name=op.f("pk_quota_limit")),
    )


def downgrade() -> None:
    op.drop_table("quota_limit")
