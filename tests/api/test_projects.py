"""Keystone v3 projects: CRUD, hierarchy, tags, filters, policy."""

from __future__ import annotations

from typing import Any

from onestack.common.ids import new_id
from tests.api._auth_helpers import keystone_error as _error

P = "/identity/v3/projects"


def _create(api: Any, who: str = "admin", **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", "p-" + new_id()[:8]), **fields}
    r = api.post(P, who, json={"project": body})
    assert r.status_code == 201, r.text
    return r.json()["project"]


def test_create_show_update_delete(api: Any) -> None:
    p = _create(api, description="first", enabled=True, tags=["a", "b"], color="blue")
    assert p["domain_id"] == "default" and p["parent_id"] == "default"
    assert p["is_domain"] is False and p["enabled"] is True
    assert p["tags"] == ["a", "b"] and p["options"] == {} and p["color"] == "blue"
    assert p["links"]["self"].endswith(f"/identity/v3/projects/{p['id']}")

    r = api.get(f"{P}/{p['id']}")
    assert r.status_code == 200 and r.json()["project"]["description"] == "first"

    r = api.patch(f"{P}/{p['id']}", json={"project": {"description": "second", "name": "renamed-" + p["id"][:6]}})
    assert r.status_code == 200, r.text
    assert r.json()["project"]["description"] == "second"
    assert r.json()["project"]["name"].startswith("renamed-")

    assert api.delete(f"{P}/{p['id']}").status_code == 204
    err = _error(api.get(f"{P}/{p['id']}"), 404)
    assert err["message"] == f"Could not find project: {p['id']}."


def test_duplicate_name_in_domain_conflicts(api: Any) -> None:
    p = _create(api)
    err = _error(api.post(P, json={"project": {"name": p["name"]}}), 409)
    assert err["message"].startswith("Conflict occurred attempting to store project")
    # the same name in another domain is fine
    d = api.post("/identity/v3/domains", json={"domain": {"name": "d-" + new_id()[:8]}}).json()["domain"]
    other = _create(api, name=p["name"], domain_id=d["id"])
    assert other["domain_id"] == d["id"]


def test_rename_to_existing_name_conflicts(api: Any) -> None:
    a, b = _create(api), _create(api)
    _error(api.patch(f"{P}/{b['id']}", json={"project": {"name": a["name"]}}), 409)
    assert api.get(f"{P}/{b['id']}").json()["project"]["name"] == b["name"]


def test_hierarchy(api: Any) -> None:
    root = _create(api)
    child = _create(api, parent_id=root["id"])
    grandchild = _create(api, parent_id=child["id"])
    assert child["parent_id"] == root["id"] and child["domain_id"] == "default"

    r = api.get(f"{P}/{grandchild['id']}?parents_as_ids")
    assert r.json()["project"]["parents"] == {child["id"]: {root["id"]: {"default": None}}}
    r = api.get(f"{P}/{root['id']}?subtree_as_ids")
    assert r.json()["project"]["subtree"] == {child["id"]: {grandchild["id"]: None}}
    r = api.get(f"{P}/{root['id']}?subtree_as_list")
    assert r.json()["project"]["subtree"] == []  # admin holds no role on them
    _error(api.get(f"{P}/{root['id']}?subtree_as_list&subtree_as_ids"), 400)

    r = api.get(P, params={"parent_id": root["id"]})
    assert [p["id"] for p in r.json()["projects"]] == [child["id"]]

    # a parent with children cannot be deleted
    err = _error(api.delete(f"{P}/{root['id']}"), 403)
    assert "not a leaf" in err["message"]
    # a parent cannot be disabled while its subtree is enabled
    _error(api.patch(f"{P}/{child['id']}", json={"project": {"enabled": False}}), 403)
    # parent_id cannot change
    _error(api.patch(f"{P}/{child['id']}", json={"project": {"parent_id": None}}), 403)

    assert api.patch(f"{P}/{grandchild['id']}", json={"project": {"enabled": False}}).status_code == 200
    assert api.patch(f"{P}/{child['id']}", json={"project": {"enabled": False}}).status_code == 200
    # no child under a disabled parent; no enabling under a disabled parent
    _error(api.post(P, json={"project": {"name": "x" + new_id()[:6], "parent_id": child["id"]}}), 400)
    _error(api.patch(f"{P}/{grandchild['id']}", json={"project": {"enabled": True}}), 403)

    for p in (grandchild, child, root):
        assert api.delete(f"{P}/{p['id']}").status_code == 204


def test_parent_in_other_domain_rejected(api: Any) -> None:
    d = api.post("/identity/v3/domains", json={"domain": {"name": "d-" + new_id()[:8]}}).json()["domain"]
    parent = _create(api)
    r = api.post(P, json={"project": {"name": "c" + new_id()[:6], "parent_id": parent["id"], "domain_id": d["id"]}})
    _error(r, 400)


def test_max_depth(api: Any) -> None:
    parent = _create(api)
    for _ in range(4):
        parent = _create(api, parent_id=parent["id"])
    _error(api.post(P, json={"project": {"name": "deep" + new_id()[:6], "parent_id": parent["id"]}}), 403)


def test_list_filters(api: Any) -> None:
    tag = "t" + new_id()[:6]
    a = _create(api, tags=[tag, "x"], enabled=False)
    b = _create(api, tags=[tag])
    names = lambda r: {p["name"] for p in r.json()["projects"]}  # noqa: E731
    assert names(api.get(P, params={"name": a["name"]})) == {a["name"]}
    assert names(api.get(P, params={"tags": tag})) == {a["name"], b["name"]}
    assert names(api.get(P, params={"tags": f"{tag},x"})) == {a["name"]}
    assert a["name"] not in names(api.get(P, params={"not-tags-any": "x"}))
    assert b["name"] in names(api.get(P, params={"not-tags": f"{tag},x"}))
    assert names(api.get(P, params={"tags-any": f"{tag},zzz"})) == {a["name"], b["name"]}
    disabled = names(api.get(P, params={"enabled": "false"}))
    assert a["name"] in disabled and b["name"] not in disabled
    r = api.get(P)
    assert "links" in r.json() and r.json()["links"]["self"].endswith("/v3/projects")
    assert all(not p["is_domain"] for p in r.json()["projects"])
    domains = api.get(P, params={"is_domain": "true"}).json()["projects"]
    assert "default" in {p["id"] for p in domains} and all(p["is_domain"] for p in domains)
    assert names(api.get(P, params={"domain_id": "nope"})) == set()


def test_tags_api(api: Any) -> None:
    p = _create(api)
    base = f"{P}/{p['id']}/tags"
    r = api.put(f"{base}/one")
    assert r.status_code == 201 and r.headers["Location"].endswith(f"/v3/projects/{p['id']}/tags/one")
    assert api.get(f"{base}/one").status_code == 204
    _error(api.get(f"{base}/two"), 404)
    r = api.put(base, json={"tags": ["x", "y"]})
    assert r.status_code == 200 and sorted(r.json()["tags"]) == ["x", "y"]
    assert sorted(api.get(base).json()["tags"]) == ["x", "y"]
    assert api.delete(f"{base}/x").status_code == 204
    _error(api.delete(f"{base}/x"), 404)
    assert api.delete(base).status_code == 204
    assert api.get(base).json()["tags"] == []
    _error(api.put(base, json={"tags": ["a,b"]}), 400)
    _error(api.put(base, json={"tags": [str(i) for i in range(81)]}), 400)
    _error(api.put(base, json={"tags": "x"}), 400)
    _error(api.get(f"{P}/{new_id()}/tags"), 404)


def test_disable_revokes_scoped_tokens(fresh_api: Any) -> None:
    api = fresh_api
    token = api.token("demo")
    me = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token}).json()["token"]
    pid = me["project"]["id"]
    assert api.patch(f"{P}/{pid}", json={"project": {"enabled": False}}).status_code == 200
    r = api.client.get(f"{P}/{pid}", headers={"X-Auth-Token": token})
    assert r.status_code == 401, r.text


def test_options_immutable(api: Any) -> None:
    p = _create(api, options={"immutable": True})
    assert p["options"] == {"immutable": True}
    _error(api.patch(f"{P}/{p['id']}", json={"project": {"description": "x"}}), 403)
    _error(api.delete(f"{P}/{p['id']}"), 403)
    r = api.patch(f"{P}/{p['id']}", json={"project": {"options": {"immutable": None}}})
    assert r.status_code == 200 and r.json()["project"]["options"] == {}
    assert api.delete(f"{P}/{p['id']}").status_code == 204
    _error(api.post(P, json={"project": {"name": "o" + new_id()[:6], "options": {"bogus": True}}}), 400)


def test_domain_through_projects_api(api: Any) -> None:
    r = api.post(P, json={"project": {"name": "pd-" + new_id()[:8], "is_domain": True}})
    assert r.status_code == 201, r.text
    d = r.json()["project"]
    assert d["is_domain"] is True and d["domain_id"] is None
    assert api.get(f"/identity/v3/domains/{d['id']}").status_code == 200
    assert api.get(f"{P}/{d['id']}").json()["project"]["is_domain"] is True


def test_demo_user_policy(api: Any) -> None:
    demo = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token("demo")}).json()["token"]
    own = demo["project"]["id"]
    # a member reads its own project
    r = api.get(f"{P}/{own}", "demo")
    assert r.status_code == 200 and r.json()["project"]["id"] == own
    assert api.get(f"{P}/{own}/tags", "demo").status_code == 200
    other = _create(api)
    _error(api.get(f"{P}/{other['id']}", "demo"), 403)
    _error(api.get(P, "demo"), 403)
    _error(api.post(P, "demo", json={"project": {"name": "nope" + new_id()[:6]}}), 403)
    _error(api.patch(f"{P}/{own}", "demo", json={"project": {"description": "mine"}}), 403)
    _error(api.delete(f"{P}/{other['id']}", "demo"), 403)
    _error(api.put(f"{P}/{own}/tags/x", "demo"), 403)
    # unknown project: policy first, as Keystone
    _error(api.get(f"{P}/{new_id()}", "demo"), 403)


def test_unauthenticated(api: Any) -> None:
    _error(api.get(P, None), 401)
    _error(api.post(P, None, json={"project": {"name": "x"}}), 401)


def test_delete_removes_assignments(api: Any) -> None:
    p = _create(api)
    uid = api.post("/identity/v3/users", json={"user": {"name": "u-" + new_id()[:8]}}).json()["user"]["id"]
    roles = api.get("/identity/v3/roles", params={"name": "member"}).json()["roles"]
    rid = roles[0]["id"]
    assert api.put(f"{P}/{p['id']}/users/{uid}/roles/{rid}").status_code == 204
    assert [x["id"] for x in api.get(f"/identity/v3/users/{uid}/projects").json()["projects"]] == [p["id"]]
    assert api.delete(f"{P}/{p['id']}").status_code == 204
    assert api.get(f"/identity/v3/users/{uid}/projects").json()["projects"] == []
    r = api.get("/identity/v3/role_assignments", params={"user.id": uid})
    assert r.status_code == 200 and r.json()["role_assignments"] == []


def test_concurrent_creates_of_one_name(api: Any) -> None:
    """Racing creates of one name: exactly one wins, the rest get 409, never a 500."""
    from concurrent.futures import ThreadPoolExecutor

    name = "race-" + new_id()[:8]
    token = api.token()

    def create(_: int) -> int:
        r = api.client.post(P, headers={"X-Auth-Token": token}, json={"project": {"name": name}})
        return int(r.status_code)

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(16)))
    assert codes == [201] + [409] * 15
    assert len(api.get(P, params={"name": name}).json()["projects"]) == 1
