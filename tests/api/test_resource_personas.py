"""Keystone's default personas on the identity resources: system reader and
admin, domain reader and domain manager, project member - each gets what
Keystone's default policies give, and no more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from onestack.common.ids import new_id

V3 = "/identity/v3"


def _token(api: Any, user_id: str, password: str, scope: dict[str, Any]) -> str:
    auth = {"identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": password}}},
            "scope": scope}
    r = api.client.post(f"{V3}/auth/tokens", json={"auth": auth})
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def _role(api: Any, name: str) -> str:
    found = api.get(f"{V3}/roles", params={"name": name}).json()["roles"]
    if found:
        return str(found[0]["id"])
    r = api.post(f"{V3}/roles", json={"role": {"name": name}})
    assert r.status_code == 201, r.text
    return str(r.json()["role"]["id"])


@pytest.fixture(scope="module")
def world(api: Any) -> Iterator[dict[str, Any]]:
    """Domain D with a project, and persona users with their scoped tokens."""
    d = api.post(f"{V3}/domains", json={"domain": {"name": "pd-" + new_id()[:8]}}).json()["domain"]
    proj = api.post(f"{V3}/projects", json={"project": {"name": "pp", "domain_id": d["id"]}}).json()["project"]
    tokens: dict[str, str] = {}

    def persona(name: str, grant: str, role: str, scope: dict[str, Any]) -> None:
        pw = "pw-" + new_id()
        u = api.post(f"{V3}/users", json={"user": {"name": name + new_id()[:6], "password": pw}}).json()["user"]
        r = api.put(f"{V3}/{grant}/users/{u['id']}/roles/{_role(api, role)}")
        assert r.status_code == 204, r.text
        tokens[name] = _token(api, u["id"], pw, scope)

    persona("system_reader", "system", "reader", {"system": {"all": True}})
    persona("system_admin", "system", "admin", {"system": {"all": True}})
    persona("domain_reader", f"domains/{d['id']}", "reader", {"domain": {"id": d["id"]}})
    persona("domain_manager", f"domains/{d['id']}", "manager", {"domain": {"id": d["id"]}})
    persona("project_member", f"projects/{proj['id']}", "member", {"project": {"id": proj["id"]}})
    yield {"domain": d, "project": proj, "tokens": tokens}


def _as(api: Any, world: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> Any:
    headers = {"X-Auth-Token": world["tokens"][who]}
    return api.client.request(method, V3 + path, headers=headers, **kw)


def test_system_reader_reads_but_does_not_write(api: Any, world: dict[str, Any]) -> None:
    d = world["domain"]
    for path in ("/users", "/projects", "/groups", "/domains", f"/domains/{d['id']}",
                 f"/projects/{world['project']['id']}", "/credentials"):
        assert _as(api, world, "system_reader", "GET", path).status_code == 200, path
    for path, key in (("/users", "user"), ("/projects", "project"), ("/groups", "group"), ("/domains", "domain")):
        r = _as(api, world, "system_reader", "POST", path, json={key: {"name": "x" + new_id()[:6]}})
        assert r.status_code == 403, (path, r.text)


def test_system_admin_writes(api: Any, world: dict[str, Any]) -> None:
    for path, key in (("/users", "user"), ("/projects", "project"), ("/groups", "group"), ("/domains", "domain")):
        r = _as(api, world, "system_admin", "POST", path, json={key: {"name": "sa" + new_id()[:6]}})
        assert r.status_code == 201, (path, r.text)
        # a system-scoped create lands in the default domain
        if key != "domain":
            assert r.json()[key]["domain_id"] == "default"


def test_domain_reader_sees_its_domain_only(api: Any, world: dict[str, Any]) -> None:
    d = world["domain"]
    r = _as(api, world, "domain_reader", "GET", "/projects")
    assert r.status_code == 200
    assert {p["domain_id"] for p in r.json()["projects"]} == {d["id"]}
    r = _as(api, world, "domain_reader", "GET", "/users")
    assert r.status_code == 200 and all(u["domain_id"] == d["id"] for u in r.json()["users"])
    assert _as(api, world, "domain_reader", "GET", f"/projects/{world['project']['id']}").status_code == 200
    assert _as(api, world, "domain_reader", "GET", f"/domains/{d['id']}").status_code == 200
    admin_project = api.get(f"{V3}/projects", params={"name": "admin"}).json()["projects"][0]["id"]
    assert _as(api, world, "domain_reader", "GET", f"/projects/{admin_project}").status_code == 403
    assert _as(api, world, "domain_reader", "GET", "/domains/default").status_code == 403
    r = _as(api, world, "domain_reader", "POST", "/projects", json={"project": {"name": "no"}})
    assert r.status_code == 403


def test_domain_manager_manages_its_domain(api: Any, world: dict[str, Any]) -> None:
    d = world["domain"]
    r = _as(api, world, "domain_manager", "POST", "/projects", json={"project": {"name": "dm" + new_id()[:6]}})
    assert r.status_code == 201, r.text
    assert r.json()["project"]["domain_id"] == d["id"]  # the token's domain
    r = _as(api, world, "domain_manager", "POST", "/users", json={"user": {"name": "dm" + new_id()[:6]}})
    assert r.status_code == 201 and r.json()["user"]["domain_id"] == d["id"]
    r = _as(api, world, "domain_manager", "POST", "/users",
            json={"user": {"name": "dm" + new_id()[:6], "domain_id": "default"}})
    assert r.status_code == 403
    r = _as(api, world, "domain_manager", "POST", "/domains", json={"domain": {"name": "dm" + new_id()[:6]}})
    assert r.status_code == 403


def test_project_member(api: Any, world: dict[str, Any]) -> None:
    pid = world["project"]["id"]
    assert _as(api, world, "project_member", "GET", f"/projects/{pid}").status_code == 200
    for method, path in (("GET", "/users"), ("GET", "/projects"), ("GET", "/groups"), ("GET", "/domains"),
                         ("PATCH", f"/projects/{pid}"), ("DELETE", f"/projects/{pid}")):
        kw = {"json": {"project": {"description": "x"}}} if method == "PATCH" else {}
        assert _as(api, world, "project_member", method, path, **kw).status_code == 403, (method, path)
