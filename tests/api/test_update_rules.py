"""Updates that Keystone refuses: another ``id`` in a PATCH body (every resource, by one
rule), a role's ``domain_id`` of the wrong type, a trust whose ``roles`` is not a list;
and an endpoint group's absent description is null. Each with Keystone 30's status and
message (checked side by side against a real Keystone), and nothing changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

V3 = "/identity/v3"
CANNOT_CHANGE_ID = {"error": {"code": 400, "title": "Bad Request", "message": "Cannot change ID"}}


def _u() -> str:
    return uuid.uuid4().hex[:8]


def _made(api: Any, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    r = api.post(f"{V3}/{path}", json=body)
    assert r.status_code == 201, r.text
    value = r.json()[key]
    return dict(value[0] if isinstance(value, list) else value)


def _me(api: Any) -> dict[str, Any]:
    return dict(api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"])


def _service(api: Any) -> dict[str, Any]:
    return _made(api, "services", {"service": {"type": "t" + _u(), "name": "svc"}}, "service")


MAKERS: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "services": ("service", _service),
    "projects": ("project", lambda api: _made(api, "projects", {"project": {"name": "p" + _u()}}, "project")),
    "users": ("user", lambda api: _made(api, "users", {"user": {"name": "u" + _u()}}, "user")),
    "groups": ("group", lambda api: _made(api, "groups", {"group": {"name": "g" + _u()}}, "group")),
    "roles": ("role", lambda api: _made(api, "roles", {"role": {"name": "r" + _u()}}, "role")),
    "domains": ("domain", lambda api: _made(api, "domains", {"domain": {"name": "d" + _u()}}, "domain")),
    "regions": ("region", lambda api: _made(api, "regions", {"region": {"description": "r"}}, "region")),
    "endpoints": ("endpoint", lambda api: _made(api, "endpoints", {"endpoint": {
        "service_id": _service(api)["id"], "interface": "public", "url": "http://127.0.0.1:9/"}}, "endpoint")),
    "OS-OAUTH1/consumers": ("consumer", lambda api: _made(
        api, "OS-OAUTH1/consumers", {"consumer": {"description": "c"}}, "consumer")),
    "policies": ("policy", lambda api: _made(
        api, "policies", {"policy": {"blob": "{}", "type": "application/json"}}, "policy")),
}


@pytest.mark.parametrize("collection", list(MAKERS))
def test_another_id_in_an_update_is_400_and_changes_nothing(api: Any, collection: str) -> None:
    key, make = MAKERS[collection]
    item = make(api)
    url = f"{V3}/{collection}/{item['id']}"
    before = api.get(url).json()[key]
    expected = CANNOT_CHANGE_ID
    if collection == "policies":  # Keystone's policy manager says it its own way
        expected = {"error": {"code": 400, "title": "Bad Request", "message": "Cannot change policy ID"}}
    # (a region's schema types its id: a number there is a type error, tested below)
    for other in ("other-id",) if collection == "regions" else ("other-id", 5, ["x"]):
        r = api.patch(url, json={key: {"id": other, "description": "changed"}})
        assert r.status_code == 400, (other, r.text)
        assert r.json() == expected
    assert api.get(url).json()[key] == before
    # the resource's own id may be repeated
    r = api.patch(url, json={key: {"id": item["id"], "description": "same id"}})
    assert r.status_code == 200, r.text
    assert r.json()[key]["id"] == item["id"]
    assert r.json()[key]["description"] == "same id"


@pytest.mark.parametrize("collection", ["services", "projects", "groups", "roles", "regions", "endpoints",
                                        "OS-OAUTH1/consumers"])
def test_a_null_id_in_an_update_is_ignored(api: Any, collection: str) -> None:
    key, make = MAKERS[collection]
    item = make(api)
    r = api.patch(f"{V3}/{collection}/{item['id']}", json={key: {"id": None, "description": "null id"}})
    assert r.status_code == 200, r.text
    assert r.json()[key]["id"] == item["id"]


@pytest.mark.parametrize(("collection", "message"), [
    ("users", "Cannot change user ID"),
    ("policies", "Cannot change policy ID"),
])
def test_a_null_id_is_refused_where_keystones_managers_refuse_it(api: Any, collection: str, message: str) -> None:
    key, make = MAKERS[collection]
    item = make(api)
    r = api.patch(f"{V3}/{collection}/{item['id']}", json={key: {"id": None}})
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request", "message": message}}


def test_a_region_id_must_be_a_string(api: Any) -> None:
    _, make = MAKERS["regions"]
    region = make(api)
    r = api.patch(f"{V3}/regions/{region['id']}", json={"region": {"id": 5}})
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request",
                                  "message": "Invalid input for field 'id': 5 is not of type 'string', 'null'"}}


def test_a_credential_update_takes_only_its_four_fields(api: Any) -> None:
    me = _me(api)
    cred = _made(api, "credentials", {"credential": {"blob": "b", "type": "cert", "user_id": me["user"]["id"]}},
                 "credential")
    url = f"{V3}/credentials/{cred['id']}"
    for key, value in (("id", cred["id"]), ("id", "other"), ("foo", 1)):
        r = api.patch(url, json={"credential": {key: value, "blob": "changed"}})
        assert r.status_code == 400
        assert r.json() == {"error": {"code": 400, "title": "Bad Request",
                                      "message": f"Additional properties are not allowed ('{key}' was unexpected)"}}
    assert api.get(url).json()["credential"]["blob"] == "b"


@pytest.mark.parametrize("value", [[], {}, 5, True])
def test_a_role_domain_id_of_the_wrong_type_is_400(api: Any, value: Any) -> None:
    _, make = MAKERS["roles"]
    role = make(api)
    r = api.patch(f"{V3}/roles/{role['id']}", json={"role": {"domain_id": value, "description": "x"}})
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request",
                                  "message": f"Invalid input for field 'domain_id': {value!r} is not of type "
                                             "'string', 'null'"}}
    after = api.get(f"{V3}/roles/{role['id']}").json()["role"]
    assert after["domain_id"] is None and after["description"] is None


@pytest.mark.parametrize("value", [{}, None, "admin", 0, {"id": "x"}])
def test_trust_roles_must_be_a_list(api: Any, value: Any) -> None:
    me = _me(api)
    before = api.get(f"{V3}/OS-TRUST/trusts").json()["trusts"]
    body = {"trust": {"trustor_user_id": me["user"]["id"], "trustee_user_id": me["user"]["id"],
                      "project_id": me["project"]["id"], "impersonation": False, "roles": value}}
    r = api.post(f"{V3}/OS-TRUST/trusts", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request",
                                  "message": f"Invalid input for field 'roles': {value!r} is not of type 'array'"}}
    assert api.get(f"{V3}/OS-TRUST/trusts").json()["trusts"] == before


def test_trust_role_references_are_strings(api: Any) -> None:
    me = _me(api)
    body = {"trust": {"trustor_user_id": me["user"]["id"], "trustee_user_id": me["user"]["id"],
                      "project_id": me["project"]["id"], "impersonation": False, "roles": [{"id": 5}]}}
    r = api.post(f"{V3}/OS-TRUST/trusts", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request",
                                  "message": "Invalid input for field 'id': 5 is not of type 'string'"}}


def test_endpoint_group_without_description_shows_null(api: Any) -> None:
    body = {"endpoint_group": {"name": "eg-" + _u(), "filters": {"interface": "public"}}}
    group = _made(api, "OS-EP-FILTER/endpoint_groups", body, "endpoint_group")
    assert group["description"] is None
    url = f"{V3}/OS-EP-FILTER/endpoint_groups/{group['id']}"
    assert api.get(url).json()["endpoint_group"]["description"] is None
    listed = api.get(f"{V3}/OS-EP-FILTER/endpoint_groups").json()["endpoint_groups"]
    assert [g["description"] for g in listed if g["id"] == group["id"]] == [None]
    r = api.patch(url, json={"endpoint_group": {"description": "now one"}})
    assert r.status_code == 200 and r.json()["endpoint_group"]["description"] == "now one"
    r = api.patch(url, json={"endpoint_group": {"description": None}})
    assert r.status_code == 200 and r.json()["endpoint_group"]["description"] is None
