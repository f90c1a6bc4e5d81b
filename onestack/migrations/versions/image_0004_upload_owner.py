"""image: the process that owns an upload in flight

Revision ID: image_0004
Revises: image_0003
Create Date: 2026-12-05 10:30:00

``image.upload_owner`` names the cloud process (``process.id``) streaming the
image's data (``saving``, or ``uploading`` while staging): a process that
restarts resets only the uploads whose owner is gone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "image_0004"
down_revision = "image_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upload_owner", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_column("upload_owner")
