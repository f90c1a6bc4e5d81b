"""Bootstrap: first start, cheap idempotent later starts, catalog reconciliation, clouds.yaml."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from onestack.app import build_cloud, prepare
from onestack.common.masterkey import new_key_text
from onestack.config import load_settings
from onestack.identity.models import Endpoint, Project, Role, Service, User
from tests.api.conftest import Api
from tests.conftest import TEST_ENV


def test_clouds_yaml(api: Api) -> None:
    path = api.cloud.state_dir / "clouds.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    clouds = yaml.safe_load(path.read_text())["clouds"]
    admin, demo = clouds["onestack-admin"], clouds["onestack"]
    assert admin["auth"]["username"] == "admin" and admin["auth"]["project_name"] == "admin"
    assert demo["auth"]["username"] == "demo" and demo["auth"]["project_name"] == "demo"
    for c in (admin, demo):
        assert c["auth"]["auth_url"].endswith("/identity/v3")
        assert c["auth"]["user_domain_name"] == "Default" and c["auth"]["project_domain_name"] == "Default"
        assert c["identity_api_version"] == 3 and c["interface"] == "public"
        assert c["region_name"] == "RegionOne"
    assert admin["auth"]["password"] != demo["auth"]["password"]


def test_bootstrap_contents(api: Api) -> None:
    d = api.get("/identity/v3/domains/default").json()["domain"]
    assert d["name"] == "Default"
    roles = {r["name"] for r in api.get("/identity/v3/roles").json()["roles"]}
    assert {"admin", "member", "reader"} <= roles
    tok = api.client.get("/identity/v3/auth/tokens", headers={
        "X-Auth-Token": api.token(), "X-Subject-Token": api.token("demo")}).json()["token"]
    assert {r["name"] for r in tok["roles"]} == {"member", "reader"}
    assert tok["project"]["name"] == "demo"
    system = api.get("/identity/v3/auth/system").json()["system"]
    assert system == [{"all": True}]


def _start(state: Path, port: int, database_url: str = "", *, public_url: str | None = None,
           modules: tuple[str, ...] = ("onestack.identity",), master_key: str | None = None) -> float:
    env = dict(TEST_ENV, **({"ONESTACK_DATABASE_URL": database_url} if database_url else {}))
    if master_key:
        env["ONESTACK_MASTER_KEY"] = master_key
    settings = load_settings(state, overrides={"port": port, "public_url": public_url}, env=env)
    cloud = build_cloud(settings, modules)
    started = time.perf_counter()
    prepare(cloud)
    elapsed = time.perf_counter() - started
    cloud.db.dispose()
    return elapsed


def test_second_start_keeps_everything_and_moves_endpoints(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _start(state, 8800)
    first = yaml.safe_load((state / "clouds.yaml").read_text())
    settings = load_settings(state, env=dict(TEST_ENV))
    cloud = build_cloud(settings, ("onestack.identity",))
    with cloud.db.read() as s:
        counts = [s.scalar(select(func.count()).select_from(m)) for m in (Project, User, Role, Service)]
    cloud.db.dispose()
    elapsed = _start(state, 8899)
    assert elapsed < 2.0
    again = yaml.safe_load((state / "clouds.yaml").read_text())
    assert again["clouds"]["onestack-admin"]["auth"]["password"] == first["clouds"]["onestack-admin"]["auth"]["password"]
    assert again["clouds"]["onestack"]["auth"]["auth_url"] == "http://127.0.0.1:8899/identity/v3"
    cloud = build_cloud(settings, ("onestack.identity",))
    with cloud.db.read() as s:
        assert [s.scalar(select(func.count()).select_from(m)) for m in (Project, User, Role, Service)] == counts
        urls = {e.url for e in s.scalars(select(Endpoint))}
    cloud.db.dispose()
    assert urls == {"http://127.0.0.1:8899/identity"}


def test_lost_clouds_yaml_gets_new_passwords(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _start(state, 8800)
    old = yaml.safe_load((state / "clouds.yaml").read_text())["clouds"]["onestack-admin"]["auth"]["password"]
    (state / "clouds.yaml").unlink()
    _start(state, 8800)
    new = yaml.safe_load((state / "clouds.yaml").read_text())["clouds"]["onestack-admin"]["auth"]["password"]
    assert new != old


def test_new_services_join_the_catalog(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _start(state, 8800)  # identity only
    settings = load_settings(state, env=dict(TEST_ENV))
    cloud = build_cloud(settings)  # every service of the all-in-one cloud
    prepare(cloud)
    with cloud.db.read() as s:
        types = {svc.type for svc in s.scalars(select(Service))}
        n_endpoints = s.scalar(select(func.count()).select_from(Endpoint))
    cloud.db.dispose()
    expected = {e.service_type for e in cloud.catalog()}
    assert types == expected and "identity" in types
    assert n_endpoints == 3 * len(expected)


def _no_reconcile(monkeypatch: pytest.MonkeyPatch) -> None:
    from onestack.identity import bootstrap

    def fail(identity: object) -> None:
        raise AssertionError("a plain restart must not take the reconcile path")

    monkeypatch.setattr(bootstrap, "_reconcile", fail)


def test_plain_restart_only_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   database_url: str) -> None:
    """On SQLite and on PostgreSQL (the check's SQL runs on both)."""
    state = tmp_path / "state"
    _start(state, 8800, database_url)
    path = state / "clouds.yaml"
    before = path.read_text()
    assert before.startswith("# Written by onestack up")
    mtime = path.stat().st_mtime_ns
    with monkeypatch.context() as m:
        _no_reconcile(m)
        _start(state, 8800, database_url)
    assert path.read_text() == before and path.stat().st_mtime_ns == mtime


def test_restart_restores_a_deleted_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    _start(state, 8800)
    settings = load_settings(state, env=dict(TEST_ENV))
    cloud = build_cloud(settings, ("onestack.identity",))
    with cloud.db.write() as s:
        ep = s.scalars(select(Endpoint).where(Endpoint.interface == "internal")).one()
        s.delete(ep)
    cloud.db.dispose()
    _start(state, 8800)
    cloud = build_cloud(settings, ("onestack.identity",))
    with cloud.db.read() as s:
        assert sorted(e.interface for e in s.scalars(select(Endpoint))) == ["admin", "internal", "public"]
    cloud.db.dispose()
    with monkeypatch.context() as m:  # and now all is in place again
        _no_reconcile(m)
        _start(state, 8800)


def test_edited_clouds_yaml_is_reread_not_trusted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _start(state, 8800)
    path = state / "clouds.yaml"
    data = yaml.safe_load(path.read_text())
    password = data["clouds"]["onestack-admin"]["auth"]["password"]
    data["clouds"]["onestack"]["region_name"] = "Elsewhere"  # an edit by hand
    path.write_text(yaml.safe_dump(data))
    _start(state, 8800)
    again = yaml.safe_load(path.read_text())["clouds"]
    assert again["onestack-admin"]["auth"]["password"] == password  # kept, not re-generated
    assert again["onestack"]["region_name"] == "RegionOne"  # rewritten for this cloud
    assert path.read_text().startswith("# Written by onestack up")


# --- several nodes on one PostgreSQL database ------------------------------------------

# Nodes on one database share its master key (given by configuration here).
KEY = new_key_text()


def _catalog(database_url: str) -> dict[tuple[str, str], str]:
    """(service type, interface) -> URL, read straight from the database."""
    from onestack.common.db import Database

    db = Database(database_url)
    try:
        with db.read() as s:
            types = {svc.id: svc.type for svc in s.scalars(select(Service))}
            return {(types[e.service_id], e.interface): e.url for e in s.scalars(select(Endpoint))}
    finally:
        db.dispose()


def _admin_password_works(database_url: str, password: str) -> bool:
    from onestack.common.db import Database
    from onestack.identity.passwords import check_password, current_password

    db = Database(database_url)
    try:
        with db.read() as s:
            admin = s.scalars(select(User).where(User.name == "admin", User.domain_id == "default")).one()
            pw = current_password(s, admin.id)
            return check_password(pw.password_hash if pw else None, password)
    finally:
        db.dispose()


def test_a_second_node_joins_without_taking_over(tmp_path: Path, pg_server: object) -> None:
    """Node B, with its own state directory and no clouds.yaml, starts on the
    database node A bootstrapped: the bootstrap passwords stay A's, the catalog
    keeps A's URLs, B writes no clouds.yaml; B's restart only checks."""
    url = pg_server.new_database()  # type: ignore[attr-defined]
    a, b = tmp_path / "a", tmp_path / "b"
    _start(a, 8800, url, master_key=KEY)
    password = yaml.safe_load((a / "clouds.yaml").read_text())["clouds"]["onestack-admin"]["auth"]["password"]
    marker_a = json.loads((a / "bootstrap.json").read_text())
    assert marker_a["bootstrapped_here"] is True
    _start(b, 8801, url, master_key=KEY)
    assert not (b / "clouds.yaml").exists()
    marker_b = json.loads((b / "bootstrap.json").read_text())
    assert marker_b["cloud"] == marker_a["cloud"] and marker_b["bootstrapped_here"] is False
    assert _admin_password_works(url, password)
    assert set(_catalog(url).values()) == {"http://127.0.0.1:8800/identity"}
    with pytest.MonkeyPatch.context() as m:  # B's restart: nothing to do
        _no_reconcile(m)
        _start(b, 8801, url, master_key=KEY)
    _start(a, 8800, url, master_key=KEY)  # and A's restart is still A's
    assert _admin_password_works(url, password)


def test_nodes_sharing_a_public_url_keep_the_catalog_there(tmp_path: Path, pg_server: object) -> None:
    url = pg_server.new_database()  # type: ignore[attr-defined]
    public = "http://cloud.example.test:5000"
    _start(tmp_path / "a", 8800, url, public_url=public, master_key=KEY)
    _start(tmp_path / "b", 8801, url, public_url=public, master_key=KEY)
    assert set(_catalog(url).values()) == {public + "/identity"}
    clouds = yaml.safe_load((tmp_path / "a" / "clouds.yaml").read_text())["clouds"]
    assert clouds["onestack-admin"]["auth"]["auth_url"] == public + "/identity/v3"


def test_a_member_adds_the_services_missing_from_the_catalog(tmp_path: Path, pg_server: object) -> None:
    """A runs identity only; B runs identity and image: image's endpoints are
    added at B's URL, identity's stay at A's."""
    url = pg_server.new_database()  # type: ignore[attr-defined]
    _start(tmp_path / "a", 8800, url, master_key=KEY)
    _start(tmp_path / "b", 8801, url, modules=("onestack.identity", "onestack.image"),
           master_key=KEY)
    catalog = _catalog(url)
    assert catalog[("identity", "public")] == "http://127.0.0.1:8800/identity"
    assert catalog[("image", "public")] == "http://127.0.0.1:8801/image"
    assert len(catalog) == 6


def test_the_owner_still_follows_its_own_port_on_postgresql(tmp_path: Path, pg_server: object) -> None:
    url = pg_server.new_database()  # type: ignore[attr-defined]
    _start(tmp_path / "a", 8800, url, master_key=KEY)
    _start(tmp_path / "a", 8802, url, master_key=KEY)
    assert set(_catalog(url).values()) == {"http://127.0.0.1:8802/identity"}


def test_the_owner_that_lost_clouds_yaml_gets_new_passwords_on_postgresql(
    tmp_path: Path, pg_server: object
) -> None:
    url = pg_server.new_database()  # type: ignore[attr-defined]
    a = tmp_path / "a"
    _start(a, 8800, url, master_key=KEY)
    old = yaml.safe_load((a / "clouds.yaml").read_text())["clouds"]["onestack-admin"]["auth"]["password"]
    (a / "clouds.yaml").unlink()
    _start(a, 8800, url, master_key=KEY)
    new = yaml.safe_load((a / "clouds.yaml").read_text())["clouds"]["onestack-admin"]["auth"]["password"]
    assert new != old and _admin_password_works(url, new) and not _admin_password_works(url, old)
