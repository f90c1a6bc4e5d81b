"""`onestack up` on PostgreSQL instead of SQLite (`database_url`): the real CLI
works, and a restart keeps the data, the token keys and the tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.test_identity_cli import osc, osc_json, unique
from tests.conftest import start_cloud, stop_cloud

pytestmark = pytest.mark.clients


def test_cloud_on_postgresql(tmp_path: Path, pg_server: Any) -> None:
    url = pg_server.new_database()
    state = tmp_path / "state"
    env = {"ONESTACK_DATABASE_URL": url}
    info = start_cloud(state, env)
    try:
        assert not (state / "onestack.db").exists()  # nothing went to SQLite
        name = unique("pg")
        created = osc_json(info, "project", "create", name)
        token = osc_json(info, "token", "issue")["id"]
        image = osc_json(info, "image", "create", "--disk-format", "raw", "--container-format",
                         "bare", "--file", str(Path(__file__)), unique("img"))
        assert image["status"] == "active"
    finally:
        stop_cloud(info)
    info = start_cloud(state, env)  # a restart: the bootstrap only checks, on PostgreSQL too
    try:
        assert created["id"] in osc(info, "project", "list", "-f", "value", "-c", "ID").stdout
        r = httpx.get(info.url + "/identity/v3/auth/tokens",
                      headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert r.status_code == 200, r.text  # signed before the restart, keys kept in the database
        shown = osc_json(info, "image", "show", image["id"])
        assert shown["checksum"] == image["checksum"]
    finally:
        stop_cloud(info)
