"""common: task fencing, ordering, dedupe, backoff and cancel; hosts; agent credentials

Revision ID: common_0002
Revises: common_0001
Create Date: 2026-11-22 07:00:00

The task table gains a claim token (lease generation), an enqueue sequence,
a resource key (``resource_id`` renamed and widened), a unique idempotency
key, ``run_after``, a cancel request, progress and a final reason. Existing
rows keep their order (``seq`` numbered by ``created_at``) and may run at once
(``run_after`` = ``created_at``). New tables: ``host_service`` (heartbeats),
``agent_credential`` (the internal API's agent secrets) and ``periodic_job``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "common_0002"
down_revision = "common_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_resource_id")
        batch_op.alter_column(
            "resource_id",
            new_column_name="resource_key",
            existing_type=sa.String(length=64),
            type_=sa.String(length=255),
            existing_nullable=True,
        )
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("claim_token", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("run_after", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    # Existing tasks keep their order and may run at once.
    op.execute(
        "UPDATE task SET run_after = created_at, seq = (SELECT COUNT(*) FROM task AS older "
        "WHERE older.created_at < task.created_at "
        "OR (older.created_at = task.created_at AND older.id <= task.id))"
    )
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), server_default=None)
        batch_op.alter_column("run_after", existing_type=sa.DateTime(), nullable=False)
        batch_op.create_index(batch_op.f("ix_task_seq"), ["seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_resource_key"), ["resource_key"], unique=False)
        batch_op.create_unique_constraint("uq_task_idempotency_key", ["idempotency_key"])

    op.create_table(
        "host_service",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("binary", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("agent_type", sa.String(length=255), nullable=True),
        sa.Column("availability_zone", sa.String(length=255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=255), nullable=True),
        sa.Column("forced_down", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("configuration", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_service")),
        sa.UniqueConstraint("host", "binary", name="uq_host_service_host_binary"),
    )
    op.create_table(
        "agent_credential",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_credential")),
    )
    with op.batch_alter_table("agent_credential", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_credential_host"), ["host"], unique=False)
    op.create_table(
        "periodic_job",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_periodic_job")),
    )


def downgrade() -> None:
    op.drop_table("periodic_job")
    with op.batch_alter_table("agent_credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_credential_host"))
    op.drop_table("agent_credential")
    op.drop_table("host_service")
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_constraint("uq_task_idempotency_key", type_="unique")
        batch_op.drop_index(batch_op.f("ix_task_resource_key"))
        batch_op.drop_index(batch_op.f("ix_task_seq"))
        batch_op.drop_column("reason")
        batch_op.drop_column("progress")
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("run_after")
        batch_op.drop_column("claim_token")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("seq")
        batch_op.alter_column(
            "resource_key",
            new_column_name="resource_id",
            existing_type=sa.String(length=255),
            type_=sa.String(length=64),
            existing_nullable=True,
        )
        batch_op.create_index("ix_task_resource_id", ["resource_id"], unique=False)
