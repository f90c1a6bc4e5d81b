"""Schema upgrades with Alembic, fast when there is nothing to do.

An empty database is not migrated step by step: the schema is created from
the models and every head is stamped (Alembic's recipe for new databases),
which skips importing Alembic and replaying each migration on a first start.
The unit tests prove the models and the migrations build the same schema.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from onestack.common.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config():  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


def heads() -> set[str]:
    """The head revisions, read from the version files without importing Alembic
    (which costs more than the rest of a warm start); a test checks this
    against Alembic's own answer."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_ASSIGN.findall(path.read_text()))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"].strip()))
        down = ast.literal_eval(found.get("down_revision", "None").strip())
        if isinstance(down, str):
            parents.add(down)
        elif down:
            parents.update(down)
    return revisions - parents


def current(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


# Alembic's own version table, as ``alembic stamp`` creates it.
_VERSION_TABLE = (
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


def _create_fresh(conn: Connection, revisions: set[str]) -> None:
    from onestack.common.db import Base
    from onestack.common.models_registry import import_all_models

    import_all_models()
    Base.metadata.create_all(conn, checkfirst=False)
    conn.exec_driver_sql(_VERSION_TABLE)
    for rev in sorted(revisions):
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": rev})


def create_if_empty(db: Database, revisions: set[str] | None = None) -> bool:
    """On a database without any table: create the schema from the models and
    stamp every head. Returns False (touching nothing) if any table exists."""
    with db.write_engine.begin() as conn:
        if inspect(conn).get_table_names():
            return False
        _create_fresh(conn, heads() if revisions is None else revisions)
    return True


def upgrade(db: Database) -> bool:
    """Upgrade the database to every head; returns True if anything ran."""
    have, target = current(db), heads()
    if have == target:
        return False
    if not have and create_if_empty(db, target):
        return True
    run_alembic(db)
    return True


def run_alembic(db: Database) -> None:
    """Upgrade to every head through the migrations themselves."""
    from alembic import command

    cfg = _config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
