"""image metadata definitions catalog (metadefs namespaces)

Revision ID: image_0003
Revises: image_0002
Create Date: 2026-11-21 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "image_0003"
down_revision = "image_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metadef_namespace",
        sa.Column("namespace", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=80), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("visibility", sa.String(length=32), nullable=False),
        sa.Column("protected", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("resource_types", sa.JSON(), nullable=False),
        sa.Column("objects", sa.JSON(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", name=op.f("pk_metadef_namespace")),
    )


def downgrade() -> None:
    op.drop_table("metadef_namespace")
