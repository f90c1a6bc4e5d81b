"""Role grants on projects, domains and the system, and their OS-INHERIT forms."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_roles import error, make_role

V3 = "/identity/v3"
PASSWORD = "secret-Pass-123"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make(api: Api, kind: str, **fields: Any) -> dict[str, Any]:
    body = {"name": _name(kind), "domain_id": "default", **fields}
    r = api.post(f"{V3}/{kind}s", json={kind: body})
    assert r.status_code == 201, r.text
    return dict(r.json()[kind])


def user(api: Api) -> dict[str, Any]:
    return make(api, "user", password=PASSWORD)


def role_id(api: Api, name: str) -> str:
    return str(api.get(f"{V3}/roles?name={name}").json()["roles"][0]["id"])


def token_roles(api: Api, username: str, project: str) -> list[str]:
    tok = api.password_token(username, PASSWORD, project=project)
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": tok})
    assert r.status_code == 200, r.text
    return sorted(x["name"] for x in r.json()["token"]["roles"])


@pytest.fixture(scope="module")
def world(api: Api) -> dict[str, Any]:
    group = make(api, "group")
    u = user(api)
    assert api.put(f"{V3}/groups/{group['id']}/users/{u['id']}").status_code == 204
    parent = make(api, "project")
    child = make(api, "project", parent_id=parent["id"])
    return {
        "group": group,
        "user": u,
        "parent": parent,
        "child": child,
        "member": role_id(api, "member"),
        "reader": role_id(api, "reader"),
    }


def test_user_project_grant_lifecycle(api: Api, world: dict[str, Any]) -> None:
    u, p, member = world["user"], world["parent"], world["member"]
    url = f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{member}"
    assert api.request("HEAD", url).status_code == 404
    assert api.put(url).status_code == 204
    assert api.put(url).status_code == 204  # idempotent
    assert api.request("HEAD", url).status_code == 204
    assert api.get(url).status_code == 204
    listed = api.get(f"{V3}/projects/{p['id']}/users/{u['id']}/roles").json()
    assert [r["id"] for r in listed["roles"]] == [member]
    assert listed["roles"][0]["links"]["self"].endswith(f"/v3/roles/{member}")
    assert token_roles(api, u["name"], p["name"]) == ["member", "reader"]
    # revoking the grant revokes the token
    tok = api.password_token(u["name"], PASSWORD, project=p["name"])
    assert api.delete(url).status_code == 204
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": tok})
    assert r.status_code == 404, r.text
    error(api.delete(url), 404)
    error(api.get(url), 404)
    assert api.get(f"{V3}/projects/{p['id']}/users/{u['id']}/roles").json()["roles"] == []


def test_group_grants_reach_members(api: Api, world: dict[str, Any]) -> None:
    g, u, p, reader = world["group"], world["user"], world["child"], world["reader"]
    url = f"{V3}/projects/{p['id']}/groups/{g['id']}/roles/{reader}"
    assert api.put(url).status_code == 204
    assert api.request("HEAD", url).status_code == 204
    assert [
        r["id"] for r in api.get(f"{V3}/projects/{p['id']}/groups/{g['id']}/roles").json()["roles"]
    ] == [reader]
    assert token_roles(api, u["name"], p["name"]) == ["reader"]
    tok = api.password_token(u["name"], PASSWORD, project=p["name"])
    assert api.delete(url).status_code == 204
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 404


def test_domain_grants(api: Api, world: dict[str, Any]) -> None:
    u, g, member = world["user"], world["group"], world["member"]
    for actor, aid in (("users", u["id"]), ("groups", g["id"])):
        url = f"{V3}/domains/default/{actor}/{aid}/roles/{member}"
        assert api.put(url).status_code == 204
        assert api.request("HEAD", url).status_code == 204
        assert member in [
            r["id"] for r in api.get(f"{V3}/domains/default/{actor}/{aid}/roles").json()["roles"]
        ]
        assert api.delete(url).status_code == 204
        assert api.request("HEAD", url).status_code == 404


def test_system_grants(api: Api, world: dict[str, Any]) -> None:
    u, g, reader = world["user"], world["group"], world["reader"]
    for actor, aid in (("users", u["id"]), ("groups", g["id"])):
        url = f"{V3}/system/{actor}/{aid}/roles/{reader}"
        assert api.request("HEAD", url).status_code == 404
        assert api.put(url).status_code == 204
        assert api.get(url).status_code == 204
        assert [r["id"] for r in api.get(f"{V3}/system/{actor}/{aid}/roles").json()["roles"]] == [
            reader
        ]
        assert api.delete(url).status_code == 204
        assert api.get(f"{V3}/system/{actor}/{aid}/roles").json()["roles"] == []
    domain_role = make_role(api, domain_id="default")
    error(api.put(f"{V3}/system/users/{u['id']}/roles/{domain_role['id']}"), 400)


def test_inherited_grants(api: Api, world: dict[str, Any]) -> None:
    u, parent, child, member = world["user"], world["parent"], world["child"], world["member"]
    base = f"{V3}/OS-INHERIT/projects/{parent['id']}/users/{u['id']}/roles"
    url = f"{base}/{member}/inherited_to_projects"
    assert api.request("HEAD", url).status_code == 404
    assert api.put(url).status_code == 204
    assert api.request("HEAD", url).status_code == 204
    listed = api.get(
        f"{V3}/OS-INHERIT/projects/{parent['id']}/users/{u['id']}/roles/inherited_to_projects"
    ).json()["roles"]
    assert [r["id"] for r in listed] == [member]
    # applies to the subtree, not to the project it is placed on
    assert api.get(f"{V3}/projects/{parent['id']}/users/{u['id']}/roles").json()["roles"] == []
    assert token_roles(api, u["name"], child["name"]) == ["member", "reader"]
    tok = api.password_token(u["name"], PASSWORD, project=child["name"])
    assert api.delete(url).status_code == 204
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 404
    # domain inherited, group variant
    g = world["group"]
    durl = f"{V3}/OS-INHERIT/domains/default/groups/{g['id']}/roles/{member}/inherited_to_projects"
    assert api.put(durl).status_code == 204
    listed = api.get(
        f"{V3}/OS-INHERIT/domains/default/groups/{g['id']}/roles/inherited_to_projects"
    ).json()
    assert [r["id"] for r in listed["roles"]] == [member]
    assert token_roles(api, u["name"], parent["name"]) == ["member", "reader"]
    assert api.delete(durl).status_code == 204


def test_unknown_ids_are_404(api: Api, world: dict[str, Any]) -> None:
    u, p, member = world["user"], world["parent"], world["member"]
    for url in (
        f"{V3}/projects/nope/users/{u['id']}/roles/{member}",
        f"{V3}/projects/{p['id']}/users/nope/roles/{member}",
        f"{V3}/projects/{p['id']}/users/{u['id']}/roles/nope",
        f"{V3}/projects/{p['id']}/groups/nope/roles/{member}",
        f"{V3}/domains/nope/users/{u['id']}/roles/{member}",
        f"{V3}/domains/{p['id']}/users/{u['id']}/roles/{member}",  # a project is not a domain
        f"{V3}/projects/default/users/{u['id']}/roles/{member}",  # a domain is not a project
        f"{V3}/system/users/nope/roles/{member}",
        f"{V3}/OS-INHERIT/domains/nope/users/{u['id']}/roles/{member}/inherited_to_projects",
    ):
        error(api.put(url), 404)
    error(api.get(f"{V3}/projects/nope/users/{u['id']}/roles"), 404)
    assert api.get(f"{V3}/projects/{p['id']}/users/{u['id']}/roles").json()["roles"] == []


def test_domain_specific_role_must_match_domain(api: Api, world: dict[str, Any]) -> None:
    other_domain = api.post(f"{V3}/domains", json={"domain": {"name": _name("dom")}})
    assert other_domain.status_code == 201, other_domain.text
    drole = make_role(api, domain_id=other_domain.json()["domain"]["id"])
    u, p = world["user"], world["parent"]
    error(api.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{drole['id']}"), 403)
    ok = make_role(api, domain_id="default")
    assert api.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{ok['id']}").status_code == 204


def test_demo_cannot_grant(api: Api, world: dict[str, Any]) -> None:
    u, p, member = world["user"], world["parent"], world["member"]
    url = f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{member}"
    error(api.put(url, who="demo"), 403)
    error(api.put(f"{V3}/system/users/{u['id']}/roles/{member}", who="demo"), 403)
    assert api.request("HEAD", url).status_code == 404  # nothing granted
    assert api.put(url).status_code == 204
    error(api.delete(url, who="demo"), 403)
    error(api.get(f"{V3}/projects/{p['id']}/users/{u['id']}/roles", who="demo"), 403)
    assert api.request("HEAD", url).status_code == 204


def test_deleting_role_removes_its_assignments(api: Api, world: dict[str, Any]) -> None:
    role = make_role(api)
    u, p = world["user"], world["child"]
    assert api.put(f"{V3}/projects/{p['id']}/users/{u['id']}/roles/{role['id']}").status_code == 204
    tok = api.password_token(u["name"], PASSWORD, project=p["name"])
    assert api.delete(f"{V3}/roles/{role['id']}").status_code == 204
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 404
    r = api.get(f"{V3}/role_assignments?role.id={role['id']}")
    assert r.status_code == 200 and r.json()["role_assignments"] == []
