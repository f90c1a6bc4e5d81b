"""/v3/roles, implied roles and /v3/role_inferences."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api

V3 = "/identity/v3"


def _name(prefix: str = "role") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_role(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": _name(), **fields}
    r = api.post(f"{V3}/roles", json={"role": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["role"])


def error(r: Any, code: int) -> dict[str, Any]:
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["title"] and err["message"]
    return dict(err)


def role_names(api: Api, query: str = "") -> list[str]:
    r = api.get(f"{V3}/roles{query}")
    assert r.status_code == 200, r.text
    return [x["name"] for x in r.json()["roles"]]


def test_bootstrap_roles_and_shape(api: Api) -> None:
    r = api.get(f"{V3}/roles")
    body = r.json()
    assert {"admin", "member", "reader"} <= {x["name"] for x in body["roles"]}
    assert body["links"]["self"].endswith("/identity/v3/roles")
    role = body["roles"][0]
    assert set(role) >= {"id", "name", "domain_id", "description", "options", "links"}
    assert role["links"]["self"].endswith(f"/v3/roles/{role['id']}")


def test_create_get_update_delete(api: Api) -> None:
    role = make_role(api, description="d1", color="blue")
    assert role["domain_id"] is None and role["description"] == "d1" and role["color"] == "blue"
    assert api.get(f"{V3}/roles/{role['id']}").json()["role"]["name"] == role["name"]
    new = _name()
    r = api.patch(f"{V3}/roles/{role['id']}", json={"role": {"name": new, "description": "d2"}})
    assert r.status_code == 200 and r.json()["role"]["name"] == new
    assert r.json()["role"]["description"] == "d2"
    assert role_names(api, f"?name={new}") == [new]
    assert api.delete(f"{V3}/roles/{role['id']}").status_code == 204
    error(api.get(f"{V3}/roles/{role['id']}"), 404)
    error(api.delete(f"{V3}/roles/{role['id']}"), 404)


def test_bad_input(api: Api) -> None:
    error(api.post(f"{V3}/roles", json={"role": {}}), 400)
    error(api.post(f"{V3}/roles", json={"role": {"name": ""}}), 400)
    error(api.post(f"{V3}/roles", json={"role": {"name": "   "}}), 400)
    error(api.post(f"{V3}/roles", json={"role": {"name": 5}}), 400)
    error(api.post(f"{V3}/roles", json={"role": {"name": "x" * 256}}), 400)
    error(api.post(f"{V3}/roles", json={"role": "admin"}), 400)
    error(api.post(f"{V3}/roles", json={"name": "x"}), 400)
    error(
        api.post(f"{V3}/roles", json={"role": {"name": _name(), "options": {"bogus": True}}}), 400
    )
    error(
        api.post(f"{V3}/roles", json={"role": {"name": _name(), "options": {"immutable": "y"}}}),
        400,
    )
    r = api.post(f"{V3}/roles", content=b"{not json", headers={"Content-Type": "application/json"})
    error(r, 400)
    error(api.post(f"{V3}/roles", json={"role": {"name": _name(), "domain_id": "nope"}}), 404)
    role = make_role(api)
    error(api.patch(f"{V3}/roles/{role['id']}", json={"role": {"name": ""}}), 400)
    error(api.patch(f"{V3}/roles/{role['id']}", json={"role": {"domain_id": "default"}}), 400)
    error(api.patch(f"{V3}/roles/nope", json={"role": {"name": "x"}}), 404)
    # nothing half-made
    assert "x" * 256 not in role_names(api)


def test_names_unique_per_domain(api: Api) -> None:
    role = make_role(api)
    error(api.post(f"{V3}/roles", json={"role": {"name": role["name"]}}), 409)
    scoped = make_role(api, name=role["name"], domain_id="default")
    assert scoped["domain_id"] == "default"
    error(
        api.post(f"{V3}/roles", json={"role": {"name": role["name"], "domain_id": "default"}}), 409
    )
    other = make_role(api)
    error(api.patch(f"{V3}/roles/{other['id']}", json={"role": {"name": role["name"]}}), 409)
    # list without domain_id shows global roles only; with it, that domain's
    assert role_names(api, f"?name={role['name']}") == [role["name"]]
    r = api.get(f"{V3}/roles?domain_id=default")
    assert [x["id"] for x in r.json()["roles"] if x["name"] == role["name"]] == [scoped["id"]]
    assert scoped["id"] not in [x["id"] for x in api.get(f"{V3}/roles").json()["roles"]]


def test_immutable_option(api: Api) -> None:
    role = make_role(api, options={"immutable": True})
    assert role["options"] == {"immutable": True}
    rid = role["id"]
    error(api.patch(f"{V3}/roles/{rid}", json={"role": {"name": _name()}}), 403)
    error(api.delete(f"{V3}/roles/{rid}"), 403)
    r = api.patch(f"{V3}/roles/{rid}", json={"role": {"options": {"immutable": False}}})
    assert r.status_code == 200 and r.json()["role"]["options"] == {"immutable": False}
    assert api.delete(f"{V3}/roles/{rid}").status_code == 204


def test_implied_roles(api: Api) -> None:
    prior, a, b = make_role(api), make_role(api), make_role(api)
    p = prior["id"]
    r = api.put(f"{V3}/roles/{p}/implies/{a['id']}")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["role_inference"]["prior_role"]["id"] == p
    assert body["role_inference"]["prior_role"]["name"] == prior["name"]
    assert body["role_inference"]["implies"]["id"] == a["id"]
    assert body["role_inference"]["implies"]["links"]["self"].endswith(f"/v3/roles/{a['id']}")
    assert body["links"]["self"].endswith(f"/v3/roles/{p}/implies/{a['id']}")
    assert api.put(f"{V3}/roles/{p}/implies/{b['id']}").status_code == 201
    error(api.put(f"{V3}/roles/{p}/implies/{b['id']}"), 409)
    assert api.get(f"{V3}/roles/{p}/implies/{a['id']}").json() == body
    assert api.request("HEAD", f"{V3}/roles/{p}/implies/{a['id']}").status_code == 204
    listed = api.get(f"{V3}/roles/{p}/implies").json()
    assert listed["role_inference"]["prior_role"]["id"] == p
    assert sorted(x["id"] for x in listed["role_inference"]["implies"]) == sorted(
        [a["id"], b["id"]]
    )
    assert listed["links"]["self"].endswith(f"/v3/roles/{p}/implies")
    inferences = api.get(f"{V3}/role_inferences").json()
    mine = [i for i in inferences["role_inferences"] if i["prior_role"]["id"] == p]
    assert len(mine) == 1 and len(mine[0]["implies"]) == 2
    assert api.delete(f"{V3}/roles/{p}/implies/{a['id']}").status_code == 204
    error(api.get(f"{V3}/roles/{p}/implies/{a['id']}"), 404)
    error(api.delete(f"{V3}/roles/{p}/implies/{a['id']}"), 404)
    assert api.request("HEAD", f"{V3}/roles/{p}/implies/{a['id']}").status_code == 404
    error(api.put(f"{V3}/roles/{p}/implies/nope"), 404)
    error(api.put(f"{V3}/roles/nope/implies/{a['id']}"), 404)
    error(api.get(f"{V3}/roles/nope/implies"), 404)
    # deleting a role drops its rules
    assert api.delete(f"{V3}/roles/{b['id']}").status_code == 204
    assert api.get(f"{V3}/roles/{p}/implies").json()["role_inference"]["implies"] == []


def test_forbidden_implications(api: Api) -> None:
    prior = make_role(api)
    admin = next(x for x in api.get(f"{V3}/roles?name=admin").json()["roles"])
    error(api.put(f"{V3}/roles/{prior['id']}/implies/{admin['id']}"), 403)
    domain_role = make_role(api, domain_id="default")
    error(api.put(f"{V3}/roles/{prior['id']}/implies/{domain_role['id']}"), 403)
    # a domain-specific role may imply a global one, or another domain's role
    r = api.put(f"{V3}/roles/{domain_role['id']}/implies/{prior['id']}")
    assert r.status_code == 201, r.text
    dom = api.post(f"{V3}/domains", json={"domain": {"name": f"d-{uuid.uuid4().hex[:8]}"}}).json()[
        "domain"
    ]
    elsewhere = make_role(api, domain_id=dom["id"])
    r = api.put(f"{V3}/roles/{domain_role['id']}/implies/{elsewhere['id']}")
    assert r.status_code == 201, r.text


def test_demo_user_cannot_manage_or_list_roles(api: Api) -> None:
    role = make_role(api)
    error(api.post(f"{V3}/roles", who="demo", json={"role": {"name": _name()}}), 403)
    error(api.get(f"{V3}/roles", who="demo"), 403)
    error(api.get(f"{V3}/roles/{role['id']}", who="demo"), 403)
    error(api.patch(f"{V3}/roles/{role['id']}", who="demo", json={"role": {"name": "x"}}), 403)
    error(api.delete(f"{V3}/roles/{role['id']}", who="demo"), 403)
    other = make_role(api)
    error(api.put(f"{V3}/roles/{role['id']}/implies/{other['id']}", who="demo"), 403)
    error(api.get(f"{V3}/role_inferences", who="demo"), 403)
    error(api.get(f"{V3}/roles", who=None), 401)


def test_system_reader_reads_but_cannot_write(api: Api) -> None:
    name, password = _name("reader"), "Reader-pass-1"
    r = api.post(
        f"{V3}/users", json={"user": {"name": name, "password": password, "domain_id": "default"}}
    )
    assert r.status_code == 201, r.text
    user_id = r.json()["user"]["id"]
    reader = api.get(f"{V3}/roles?name=reader").json()["roles"][0]["id"]
    assert api.put(f"{V3}/system/users/{user_id}/roles/{reader}").status_code == 204
    tok = api.password_token(name, password, system=True)
    h = {"X-Auth-Token": tok}
    assert api.client.get(f"{V3}/roles", headers=h).status_code == 200
    assert api.client.get(f"{V3}/role_inferences", headers=h).status_code == 200
    assert api.client.get(f"{V3}/role_assignments", headers=h).status_code == 200
    error(api.client.post(f"{V3}/roles", headers=h, json={"role": {"name": _name()}}), 403)


def test_malformed_role_bodies(api: Api) -> None:
    role = make_role(api)
    raw = {"content": b"[1,", "headers": {"Content-Type": "application/json"}}
    for method, path in (("POST", f"{V3}/roles"), ("PATCH", f"{V3}/roles/{role['id']}")):
        error(api.request(method, path, **raw), 400)
        error(api.request(method, path), 400)
        error(api.request(method, path, json={"role": None}), 400)
        error(api.request(method, path, json={"role": {"description": 7}}), 400)
    assert api.get(f"{V3}/roles/{role['id']}").json()["role"]["name"] == role["name"]
