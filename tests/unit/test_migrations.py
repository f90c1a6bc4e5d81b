"""Migrations build exactly the schema the models describe, for every service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from onestack.common import migrate
from onestack.common.db import Base, Database
from onestack.common.models_registry import import_all_models


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """Each test on SQLite and on PostgreSQL."""
    database = Database(database_url)
    yield database
    database.dispose()


def test_upgrade_empty_database_to_heads(db: Database) -> None:
    assert migrate.current(db) == set()
    assert migrate.upgrade(db) is True
    assert migrate.current(db) == migrate.heads()
    tables = set(inspect(db.engine).get_table_names())
    assert {"task", "alembic_version"} <= tables


def test_migrated_schema_matches_models(db: Database) -> None:
    migrate.run_alembic(db)
    import_all_models()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(repr, diff))


def test_comparison_notices_a_difference(db: Database) -> None:
    """The check above can fail: a table missing from the database is reported."""
    migrate.run_alembic(db)
    import_all_models()
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE task")
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert any(d[0] == "add_table" and d[1].name == "task" for d in diff)


def test_every_model_table_is_created(db: Database) -> None:
    migrate.run_alembic(db)
    import_all_models()
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_second_upgrade_is_a_noop(db: Database) -> None:
    assert migrate.upgrade(db) is True
    before = set(inspect(db.engine).get_table_names())
    assert migrate.upgrade(db) is False
    assert set(inspect(db.engine).get_table_names()) == before
    assert migrate.current(db) == migrate.heads()


def test_each_branch_has_one_head_and_a_label() -> None:
    script = ScriptDirectory.from_config(migrate._config())
    for head in script.get_heads():
        labels: set[str] = set()
        for rev in script.iterate_revisions(head, "base"):
            labels |= set(rev.branch_labels)
        assert labels, f"branch ending in {head} has no branch label"
    bases = script.get_bases()
    assert len(bases) == len(script.get_heads()), "a branch forks or merges"
    for path in (Path(migrate.MIGRATIONS) / "versions").glob("*.py"):
        if path.name == "__init__.py":
            continue
        assert "_" in path.stem, f"{path.name} is not named <service>_NNNN_<what>.py"
