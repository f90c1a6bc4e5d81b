"""Keystone v3 domains: CRUD, delete rules and cascade, filters, policy."""

from __future__ import annotations

from typing import Any

from onestack.common.ids import new_id
from tests.api._auth_helpers import keystone_error as _error

D = "/identity/v3/domains"


def _domain(api: Any, **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", "d-" + new_id()[:8]), **fields}
    r = api.post(D, json={"domain": body})
    assert r.status_code == 201, r.text
    return r.json()["domain"]


def test_default_domain(api: Any) -> None:
    r = api.get(f"{D}/default")
    assert r.status_code == 200
    d = r.json()["domain"]
    assert d["id"] == "default" and d["name"] == "Default" and d["enabled"] is True
    assert d["links"]["self"].endswith("/identity/v3/domains/default")
    assert set(d) >= {"id", "name", "description", "enabled", "tags", "options", "links"}


def test_crud(api: Any) -> None:
    d = _domain(api, description="desc", tags=["t1"])
    assert d["enabled"] is True and d["description"] == "desc" and d["tags"] == ["t1"]
    r = api.patch(f"{D}/{d['id']}", json={"domain": {"description": "new", "name": d["name"] + "x"}})
    assert r.status_code == 200 and r.json()["domain"]["description"] == "new"
    assert api.get(f"{D}/{d['id']}").json()["domain"]["name"] == d["name"] + "x"
    assert api.patch(f"{D}/{d['id']}", json={"domain": {"enabled": False}}).status_code == 200
    assert api.delete(f"{D}/{d['id']}").status_code == 204
    err = _error(api.get(f"{D}/{d['id']}"), 404)
    assert err["message"] == f"Could not find domain: {d['id']}."


def test_explicit_id(api: Any) -> None:
    wanted = new_id()
    d = _domain(api, explicit_domain_id=wanted)
    assert d["id"] == wanted
    _error(api.post(D, json={"domain": {"name": "other" + new_id()[:6], "explicit_domain_id": wanted}}), 409)


def test_duplicate_name(api: Any) -> None:
    d = _domain(api)
    err = _error(api.post(D, json={"domain": {"name": d["name"]}}), 409)
    assert err["message"].startswith("Conflict occurred attempting to store domain")


def test_enabled_domain_cannot_be_deleted(api: Any) -> None:
    d = _domain(api)
    err = _error(api.delete(f"{D}/{d['id']}"), 403)
    assert err["message"] == "Cannot delete a domain that is enabled, please disable it first."
    assert api.get(f"{D}/{d['id']}").status_code == 200


def test_delete_cascades(api: Any) -> None:
    d = _domain(api)
    p = api.post("/identity/v3/projects", json={"project": {"name": "p", "domain_id": d["id"]}}).json()["project"]
    child = api.post(
        "/identity/v3/projects", json={"project": {"name": "c", "parent_id": p["id"], "domain_id": d["id"]}}
    ).json()["project"]
    u = api.post("/identity/v3/users", json={"user": {"name": "u", "domain_id": d["id"]}}).json()["user"]
    g = api.post("/identity/v3/groups", json={"group": {"name": "g", "domain_id": d["id"]}}).json()["group"]
    assert api.put(f"/identity/v3/groups/{g['id']}/users/{u['id']}").status_code == 204
    rid = api.get("/identity/v3/roles", params={"name": "reader"}).json()["roles"][0]["id"]
    assert api.put(f"{D}/{d['id']}/users/{u['id']}/roles/{rid}").status_code == 204
    assert api.patch(f"{D}/{d['id']}", json={"domain": {"enabled": False}}).status_code == 200
    assert api.delete(f"{D}/{d['id']}").status_code == 204
    for path in (
        f"/identity/v3/projects/{p['id']}",
        f"/identity/v3/projects/{child['id']}",
        f"/identity/v3/users/{u['id']}",
        f"/identity/v3/groups/{g['id']}",
    ):
        assert api.get(path).status_code == 404, path
    r = api.get("/identity/v3/role_assignments", params={"scope.domain.id": d["id"]})
    assert r.status_code == 200 and r.json()["role_assignments"] == []
    # the name is free again
    _domain(api, name=d["name"])


def test_list_filters(api: Any) -> None:
    a = _domain(api)
    b = _domain(api, enabled=False)
    r = api.get(D)
    assert r.status_code == 200 and r.json()["links"]["self"].endswith("/v3/domains")
    ids = {x["id"] for x in r.json()["domains"]}
    assert {"default", a["id"], b["id"]} <= ids
    assert [x["id"] for x in api.get(D, params={"name": a["name"]}).json()["domains"]] == [a["id"]]
    disabled = {x["id"] for x in api.get(D, params={"enabled": "false"}).json()["domains"]}
    assert b["id"] in disabled and a["id"] not in disabled


def test_disable_blocks_users_and_revokes(fresh_api: Any) -> None:
    api = fresh_api
    d = _domain(api)
    u = api.post("/identity/v3/users", json={"user": {"name": "du", "domain_id": d["id"], "password": "pw-123456"}})
    assert u.status_code == 201, u.text
    r = api.client.post(
        "/identity/v3/auth/tokens",
        json={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": "du", "domain": {"id": d["id"]}, "password": "pw-123456"}}}}},
    )
    assert r.status_code == 201, r.text
    token = r.headers["X-Subject-Token"]
    assert api.patch(f"{D}/{d['id']}", json={"domain": {"enabled": False}}).status_code == 200
    r = api.client.get("/identity/v3/auth/tokens", headers={"X-Auth-Token": api.token(), "X-Subject-Token": token})
    assert r.status_code == 404, r.text
    r = api.client.post(
        "/identity/v3/auth/tokens",
        json={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": "du", "domain": {"id": d["id"]}, "password": "pw-123456"}}}}},
    )
    assert r.status_code == 401, r.text


def test_policy(api: Any) -> None:
    d = _domain(api)
    # a project member may read its own project's domain, not others
    assert api.get(f"{D}/default", "demo").status_code == 200
    _error(api.get(f"{D}/{d['id']}", "demo"), 403)
    _error(api.get(D, "demo"), 403)
    _error(api.post(D, "demo", json={"domain": {"name": "x" + new_id()[:6]}}), 403)
    _error(api.patch(f"{D}/{d['id']}", "demo", json={"domain": {"description": "x"}}), 403)
    _error(api.delete(f"{D}/{d['id']}", "demo"), 403)
    _error(api.get(D, None), 401)
