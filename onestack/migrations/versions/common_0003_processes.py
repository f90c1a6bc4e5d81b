"""common: the running cloud processes and their heartbeats

Revision ID: common_0003
Revises: common_0002
Create Date: 2026-12-05 10:30:00

One row per running cloud process (``host:pid:random``): what another process
checks before it recovers work this one owns in flight (an image upload, a
task's lease).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "common_0003"
down_revision = "common_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process")),
    )
    with op.batch_alter_table("process", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_process_host"), ["host"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("process", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_process_host"))
    op.drop_table("process")
