"""A first start creates the schema from the models and stamps the heads
(no Alembic run); the result must be what the migrations build, and Alembic
must carry it on from there."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from onestack.common import migrate
from onestack.common.db import Base, Database
from onestack.common.models_registry import import_all_models


def _db(path: Path) -> Database:
    return Database(f"sqlite:///{path}")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Database]:
    db = _db(tmp_path / "fresh.db")
    yield db
    db.dispose()


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[Database]:
    db = _db(tmp_path / "migrated.db")
    yield db
    db.dispose()


def _alembic_heads(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def test_fresh_database_is_created_and_stamped_with_every_head(fresh: Database) -> None:
    assert migrate.upgrade(fresh) is True
    script = ScriptDirectory.from_config(migrate._config())
    assert _alembic_heads(fresh) == set(script.get_heads()) == migrate.heads()
    with fresh.engine.connect() as conn:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    assert len(rows) == len(migrate.heads())
    import_all_models()
    with fresh.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                Base.metadata)
    assert diff == []
    assert migrate.upgrade(fresh) is False


def _schema(db: Database) -> dict[str, Any]:
    insp = inspect(db.engine)
    out: dict[str, Any] = {}
    for table in insp.get_table_names():
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in insp.get_columns(table)
            ),
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"],
                 tuple(f["referred_columns"]), str(f.get("options")))
                for f in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "uniques": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(table)),
        }
    return out


def test_fresh_schema_is_the_migrated_schema(fresh: Database, migrated: Database) -> None:
    migrate.upgrade(fresh)
    migrate.run_alembic(migrated)
    a, b = _schema(fresh), _schema(migrated)
    assert set(a) == set(b)
    for table in a:
        assert a[table] == b[table], table


def test_a_later_migration_applies_to_a_fresh_database(fresh: Database, tmp_path: Path) -> None:
    migrate.upgrade(fresh)
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    parent = ScriptDirectory.from_config(cfg).get_revision("identity@head")
    assert parent is not None
    (scripts / "versions" / "identity_9999_later.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        "revision = 'identity_9999_later'\n"
        f"down_revision = {parent.revision!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        "    with op.batch_alter_table('user') as batch_op:\n"
        "        batch_op.add_column(sa.Column('later', sa.String(16), nullable=True))\n\n\n"
        "def downgrade() -> None:\n"
        "    with op.batch_alter_table('user') as batch_op:\n"
        "        batch_op.drop_column('later')\n"
    )
    with fresh.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    assert "later" in {c["name"] for c in inspect(fresh.engine).get_columns("user")}
    expected = (migrate.heads() - {parent.revision}) | {"identity_9999_later"}
    assert _alembic_heads(fresh) == expected


def test_a_database_with_tables_is_not_recreated(fresh: Database) -> None:
    with fresh.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE other (x INTEGER)")
    assert migrate.create_if_empty(fresh) is False
    assert inspect(fresh.engine).get_table_names() == ["other"]
