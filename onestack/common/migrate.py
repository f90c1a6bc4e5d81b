"""Schema upgrades with Alembic, fast when there is nothing to do."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import inspect, text

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
