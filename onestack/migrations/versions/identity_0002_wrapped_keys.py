"""identity keys wrapped by the master key: room for the wrapped form

The token (Fernet) and credential-encryption keys in ``identity_key`` are
stored wrapped by the master key from now on (``common/masterkey.py``); a
wrapped key is longer than the 64 characters the column had. The keys an
existing cloud stored in the clear are wrapped in place by the identity
bootstrap at the next start (the master key is not the database's to know).

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-12-05 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0002"
down_revision = "identity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_key", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=64), type_=sa.String(length=255), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_key", schema=None) as batch_op:
        batch_op.alter_column(
            "key", existing_type=sa.String(length=255), type_=sa.String(length=64), existing_nullable=False
        )
