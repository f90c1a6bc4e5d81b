"""Keystone v3 groups: CRUD, membership, filters, revocation, policy."""

from __future__ import annotations

from typing import Any

from onestack.common.ids import new_id
from tests.api._auth_helpers import keystone_error as _error

G = "/identity/v3/groups"


def _group(api: Any, **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", "g-" + new_id()[:8]), **fields}
    r = api.post(G, json={"group": body})
    assert r.status_code == 201, r.text
    return r.json()["group"]


def _user(api: Any, password: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "gu-" + new_id()[:8]}
    if password:
        body["password"] = password
    r = api.post("/identity/v3/users", json={"user": body})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def test_crud(api: Any) -> None:
    g = _group(api, description="team", extra_field=1)
    assert g["domain_id"] == "default" and g["description"] == "team" and g["extra_field"] == 1
    assert g["links"]["self"].endswith(f"/identity/v3/groups/{g['id']}")
    assert api.get(f"{G}/{g['id']}").json()["group"]["name"] == g["name"]
    r = api.patch(f"{G}/{g['id']}", json={"group": {"description": "other"}})
    assert r.status_code == 200 and r.json()["group"]["description"] == "other"
    assert api.delete(f"{G}/{g['id']}").status_code == 204
    err = _error(api.get(f"{G}/{g['id']}"), 404)
    assert err["message"] == f"Could not find group: {g['id']}."


def test_duplicate_and_rename_conflict(api: Any) -> None:
    a, b = _group(api), _group(api)
    err = _error(api.post(G, json={"group": {"name": a["name"]}}), 409)
    assert "Duplicate entry" in err["message"]
    _error(api.patch(f"{G}/{b['id']}", json={"group": {"name": a["name"]}}), 409)


def test_list_filters(api: Any) -> None:
    a = _group(api)
    r = api.get(G)
    assert r.status_code == 200 and a["id"] in {g["id"] for g in r.json()["groups"]}
    assert [g["id"] for g in api.get(G, params={"name": a["name"]}).json()["groups"]] == [a["id"]]
    assert api.get(G, params={"domain_id": "nowhere"}).json()["groups"] == []


def test_membership(api: Any) -> None:
    g = _group(api)
    u = _user(api)
    member = f"{G}/{g['id']}/users/{u['id']}"
    r = api.request("HEAD", member)
    assert r.status_code == 404
    err = _error(api.get(member), 404)
    assert err["message"] == f"User '{u['id']}' not found in group '{g['id']}'"
    assert api.put(member).status_code == 204
    assert api.put(member).status_code == 204  # idempotent
    assert api.request("HEAD", member).status_code == 204
    assert api.get(member).status_code == 204
    users = api.get(f"{G}/{g['id']}/users").json()
    assert [x["id"] for x in users["users"]] == [u["id"]] and "links" in users
    assert [x["id"] for x in api.get(f"/identity/v3/users/{u['id']}/groups").json()["groups"]] == [g["id"]]
    assert api.delete(member).status_code == 204
    _error(api.delete(member), 404)
    assert api.get(f"{G}/{g['id']}/users").json()["users"] == []
    _error(api.put(f"{G}/{g['id']}/users/{new_id()}"), 404)
    _error(api.put(f"{G}/{new_id()}/users/{u['id']}"), 404)


def test_group_users_password_expires_filter(api: Any) -> None:
    g = _group(api)
    u = _user(api, password="pw-group-1")
    assert api.put(f"{G}/{g['id']}/users/{u['id']}").status_code == 204
    r = api.get(f"{G}/{g['id']}/users", params={"password_expires_at": "lt:2000-01-01T00:00:00Z"})
    assert r.status_code == 200 and r.json()["users"] == []  # no expiry configured
    _error(api.get(f"{G}/{g['id']}/users", params={"password_expires_at": "gt:not-a-time"}), 400)


def test_removal_revokes_user_tokens(api: Any) -> None:
    g = _group(api)
    u = _user(api, password="pw-group-2")
    assert api.put(f"{G}/{g['id']}/users/{u['id']}").status_code == 204
    r = api.client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": u["id"], "password": "pw-group-2"}}}}})
    token = r.headers["X-Subject-Token"]
    check = {"X-Auth-Token": api.token(), "X-Subject-Token": token}
    assert api.client.get("/identity/v3/auth/tokens", headers=check).status_code == 200
    assert api.delete(f"{G}/{g['id']}/users/{u['id']}").status_code == 204
    assert api.client.get("/identity/v3/auth/tokens", headers=check).status_code == 404


def test_delete_group_removes_memberships_and_assignments(api: Any) -> None:
    g = _group(api)
    u = _user(api)
    p = api.post("/identity/v3/projects", json={"project": {"name": "gp-" + new_id()[:8]}}).json()["project"]
    rid = api.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    assert api.put(f"/identity/v3/projects/{p['id']}/groups/{g['id']}/roles/{rid}").status_code == 204
    assert api.put(f"{G}/{g['id']}/users/{u['id']}").status_code == 204
    assert api.delete(f"{G}/{g['id']}").status_code == 204
    assert api.get(f"/identity/v3/users/{u['id']}/groups").json()["groups"] == []
    assert api.get(f"/identity/v3/users/{u['id']}/projects").json()["projects"] == []
    r = api.get("/identity/v3/role_assignments", params={"group.id": g["id"]})
    assert r.status_code == 200 and r.json()["role_assignments"] == []


def test_demo_user_policy(api: Any) -> None:
    g = _group(api)
    u = _user(api)
    _error(api.get(G, "demo"), 403)
    _error(api.get(f"{G}/{g['id']}", "demo"), 403)
    _error(api.post(G, "demo", json={"group": {"name": "x" + new_id()[:6]}}), 403)
    _error(api.patch(f"{G}/{g['id']}", "demo", json={"group": {"description": "x"}}), 403)
    _error(api.delete(f"{G}/{g['id']}", "demo"), 403)
    _error(api.put(f"{G}/{g['id']}/users/{u['id']}", "demo"), 403)
    _error(api.get(f"{G}/{g['id']}/users", "demo"), 403)
    assert api.get(f"{G}/{g['id']}/users").json()["users"] == []
