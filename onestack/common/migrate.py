"""Schema upgrades with Alembic, fast when there is nothing to do."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from onestack.common.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def heads() -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_config()).get_heads())


def current(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


def upgrade(db: Database) -> bool:
    """Upgrade the database to every head; returns True if anything ran."""
    if current(db) == heads():
        return False
    from alembic import command

    cfg = _config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    return True
