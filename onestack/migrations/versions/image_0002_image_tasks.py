"""image tasks (interoperable import tasks shown by /v2/images/{id}/tasks)

Revision ID: image_0002
Revises: image_0001
Create Date: 2026-11-21 09:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "image_0002"
down_revision = "image_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_task",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("image_id", sa.String(length=36), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("message", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_task")),
    )
    with op.batch_alter_table("image_task", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_task_image_id"), ["image_id"], unique=False)


def downgrade() -> None:
    op.drop_table("image_task")
