"""image initial schema

Revision ID: image_0001
Revises:
Create Date: 2026-11-21 09:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "image_0001"
down_revision = None
branch_labels = ("image",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("visibility", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("disk_format", sa.String(length=20), nullable=True),
        sa.Column("container_format", sa.String(length=20), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("virtual_size", sa.BigInteger(), nullable=True),
        sa.Column("checksum", sa.String(length=32), nullable=True),
        sa.Column("os_hash_algo", sa.String(length=64), nullable=True),
        sa.Column("os_hash_value", sa.String(length=128), nullable=True),
        sa.Column("min_disk", sa.Integer(), nullable=False),
        sa.Column("min_ram", sa.Integer(), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("os_hidden", sa.Boolean(), nullable=False),
        sa.Column("location", sa.String(length=1024), nullable=True),
        sa.Column("staging", sa.String(length=1024), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image")),
    )
    with op.batch_alter_table("image", schema=None) as batch_op:
        for col in ("name", "status", "visibility", "owner", "created_at", "updated_at"):
            batch_op.create_index(batch_op.f(f"ix_image_{col}"), [col], unique=False)

    op.create_table(
        "image_member",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("member", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["image.id"], name=op.f("fk_image_member_image_id_image"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("image_id", "member", name=op.f("pk_image_member")),
    )
    with op.batch_alter_table("image_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_member_member"), ["member"], unique=False)


def downgrade() -> None:
    op.drop_table("image_member")
    op.drop_table("image")
