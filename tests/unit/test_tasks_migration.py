"""common_0002 upgrades a task table in place: existing tasks keep their
order, their resource and their state, and the queue takes them on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import text

from onestack.common import migrate
from onestack.common.db import Database
from onestack.common.models import RUNNING
from onestack.common.tasks.queue import TaskQueue


@pytest.fixture
def old_db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


def test_existing_tasks_survive_the_upgrade(old_db: Database) -> None:
    cfg = migrate._config()
    with old_db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "common_0001")
    rows = [  # id, resource, created_at: inserted out of order on purpose
        ("t-late", "server:1", datetime(2026, 1, 1, 10, 0, 2)),
        ("t-early", "server:1", datetime(2026, 1, 1, 10, 0, 1)),
        ("t-other", None, datetime(2026, 1, 1, 10, 0, 1)),
    ]
    with old_db.write_engine.begin() as conn:
        for task_id, resource, created in rows:
            conn.execute(text(
                "INSERT INTO task (id, kind, resource_id, target_host, payload, state, attempts,"
                " max_attempts, created_at, updated_at) VALUES (:id, 'boot', :r, NULL, '{}',"
                " 'queued', 0, 3, :c, :c)"), {"id": task_id, "r": resource, "c": created})
    migrate.run_alembic(old_db)
    assert migrate.current(old_db) == migrate.heads()
    queue = TaskQueue(old_db)
    tasks = queue.find()
    assert [t.id for t in tasks] == ["t-early", "t-other", "t-late"]
    assert [t.seq for t in tasks] == [1, 2, 3]
    assert all(t.run_after == t.created_at and t.claim_token == 0 for t in tasks)
    assert [t.resource_key for t in tasks] == ["server:1", None, "server:1"]
    first = queue.claim("w", None, ["boot"])
    second = queue.claim("w", None, ["boot"])
    assert first is not None and second is not None
    assert (first.id, second.id, first.state, first.claim_token) == (
        "t-early", "t-other", RUNNING, 1)
    assert queue.claim("w", None, ["boot"]) is None  # t-late waits for t-early
