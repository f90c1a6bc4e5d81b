"""Alembic environment: runs on the connection handed over by onestack."""

from __future__ import annotations

from alembic import context

from onestack.common.db import Base
from onestack.common.models_registry import import_all_models

import_all_models()
target_metadata = Base.metadata
config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` run by hand: use the configured URL
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
