"""Unified limits: /v3/registered_limits, /v3/limits, /v3/limits/model."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"


def _service(api: Any) -> str:
    r = api.post(f"{V3}/services", json={"service": {"type": f"t-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    return str(r.json()["service"]["id"])


def _project_id(api: Any, who: str) -> str:
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token(who)})
    return str(r.json()["token"]["project"]["id"])


def _register(api: Any, service: str, resource: str, default: int = 10, **extra: Any) -> dict[str, Any]:
    item = {"service_id": service, "resource_name": resource, "default_limit": default, **extra}
    r = api.post(f"{V3}/registered_limits", json={"registered_limits": [item]})
    assert r.status_code == 201, r.text
    return dict(r.json()["registered_limits"][0])


def test_model_is_flat(api: Any) -> None:
    r = api.get(f"{V3}/limits/model", who="demo")
    assert r.status_code == 200
    assert r.json()["model"]["name"] == "flat"


def test_registered_limit_lifecycle(api: Any) -> None:
    service = _service(api)
    items = [
        {"service_id": service, "resource_name": "cores", "default_limit": 10, "description": "d"},
        {"service_id": service, "region_id": "RegionOne", "resource_name": "ram", "default_limit": -1},
    ]
    r = api.post(f"{V3}/registered_limits", json={"registered_limits": items})
    assert r.status_code == 201, r.text
    cores, ram = r.json()["registered_limits"]
    assert cores["region_id"] is None and cores["default_limit"] == 10
    assert ram["region_id"] == "RegionOne"
    assert cores["links"]["self"].endswith(f"/v3/registered_limits/{cores['id']}")
    assert api.get(f"{V3}/registered_limits/{cores['id']}", who="demo").json()["registered_limit"] == cores
    listed = api.get(f"{V3}/registered_limits", params={"service_id": service}).json()["registered_limits"]
    assert {x["id"] for x in listed} == {cores["id"], ram["id"]}
    only_ram = api.get(f"{V3}/registered_limits", params={"service_id": service, "resource_name": "ram"})
    assert [x["id"] for x in only_ram.json()["registered_limits"]] == [ram["id"]]
    r = api.patch(f"{V3}/registered_limits/{cores['id']}", json={"registered_limit": {"default_limit": 20}})
    assert r.status_code == 200 and r.json()["registered_limit"]["default_limit"] == 20
    assert api.delete(f"{V3}/registered_limits/{cores['id']}").status_code == 204
    _error(api.get(f"{V3}/registered_limits/{cores['id']}"), 404)


def test_registered_limit_duplicate_is_409_and_nothing_written(api: Any) -> None:
    service = _service(api)
    _register(api, service, "cores")
    item = {"service_id": service, "resource_name": "cores", "default_limit": 5}
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": [item]}), 409)
    fresh = {"service_id": service, "resource_name": "fresh", "default_limit": 5}
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": [fresh, fresh]}), 409)
    listed = api.get(f"{V3}/registered_limits", params={"service_id": service}).json()["registered_limits"]
    assert [x["resource_name"] for x in listed] == ["cores"]


@pytest.mark.parametrize(
    "item",
    [
        {"resource_name": "x", "default_limit": 1},
        {"service_id": "SERVICE", "default_limit": 1},
        {"service_id": "SERVICE", "resource_name": "x"},
        {"service_id": "SERVICE", "resource_name": "x", "default_limit": "1"},
        {"service_id": "SERVICE", "resource_name": "x", "default_limit": -2},
        {"service_id": "SERVICE", "resource_name": "x", "default_limit": True},
        {"service_id": "SERVICE", "resource_name": "", "default_limit": 1},
        {"service_id": "SERVICE", "resource_name": "x", "default_limit": 1, "bogus": 1},
        {"service_id": "unknown", "resource_name": "x", "default_limit": 1},
        {"service_id": "SERVICE", "region_id": "nowhere", "resource_name": "x", "default_limit": 1},
    ],
)
def test_bad_registered_limit_is_400(api: Any, item: dict[str, Any]) -> None:
    service = _service(api)
    item = {k: (service if v == "SERVICE" else v) for k, v in item.items()}
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": [item]}), 400)
    assert api.get(f"{V3}/registered_limits", params={"service_id": service}).json()["registered_limits"] == []


def test_registered_limit_body_shape(api: Any) -> None:
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": []}), 400)
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": {"a": 1}}), 400)
    _error(api.post(f"{V3}/registered_limits", json={}), 400)


def test_limits_lifecycle(api: Any) -> None:
    service = _service(api)
    registered = _register(api, service, "cores")
    project = _project_id(api, "demo")
    item = {"service_id": service, "project_id": project, "resource_name": "cores", "resource_limit": 5}
    r = api.post(f"{V3}/limits", json={"limits": [item]})
    assert r.status_code == 201, r.text
    limit = r.json()["limits"][0]
    assert limit["project_id"] == project and limit["domain_id"] is None and limit["resource_limit"] == 5
    _error(api.post(f"{V3}/limits", json={"limits": [item]}), 409)
    domain_item = {"service_id": service, "domain_id": "default", "resource_name": "cores", "resource_limit": 7}
    r = api.post(f"{V3}/limits", json={"limits": [domain_item]})
    assert r.status_code == 201, r.text
    domain_limit = r.json()["limits"][0]
    listed = api.get(f"{V3}/limits", params={"service_id": service}).json()["limits"]
    assert {x["id"] for x in listed} == {limit["id"], domain_limit["id"]}
    by_project = api.get(f"{V3}/limits", params={"project_id": project, "service_id": service}).json()["limits"]
    assert [x["id"] for x in by_project] == [limit["id"]]
    r = api.patch(f"{V3}/limits/{limit['id']}", json={"limit": {"resource_limit": 9, "description": "n"}})
    assert r.status_code == 200 and r.json()["limit"]["resource_limit"] == 9
    _error(api.patch(f"{V3}/limits/{limit['id']}", json={"limit": {"project_id": "x"}}), 400)
    # A registered limit in use cannot be deleted nor re-keyed, but its default can change.
    _error(api.delete(f"{V3}/registered_limits/{registered['id']}"), 403)
    _error(api.patch(f"{V3}/registered_limits/{registered['id']}",
                     json={"registered_limit": {"resource_name": "other"}}), 403)
    r = api.patch(f"{V3}/registered_limits/{registered['id']}", json={"registered_limit": {"default_limit": 3}})
    assert r.status_code == 200
    assert api.delete(f"{V3}/limits/{limit['id']}").status_code == 204
    assert api.delete(f"{V3}/limits/{domain_limit['id']}").status_code == 204
    _error(api.get(f"{V3}/limits/{limit['id']}"), 404)
    assert api.delete(f"{V3}/registered_limits/{registered['id']}").status_code == 204


def test_limit_needs_registered_limit_and_one_owner(api: Any) -> None:
    service = _service(api)
    project = _project_id(api, "demo")
    item = {"service_id": service, "project_id": project, "resource_name": "cores", "resource_limit": 5}
    _error(api.post(f"{V3}/limits", json={"limits": [item]}), 403)
    _register(api, service, "cores")
    both = {**item, "domain_id": "default"}
    _error(api.post(f"{V3}/limits", json={"limits": [both]}), 400)
    neither = {k: v for k, v in item.items() if k != "project_id"}
    _error(api.post(f"{V3}/limits", json={"limits": [neither]}), 400)
    _error(api.post(f"{V3}/limits", json={"limits": [{**item, "project_id": uuid.uuid4().hex}]}), 400)
    _error(api.post(f"{V3}/limits", json={"limits": [{**item, "resource_limit": "5"}]}), 400)
    assert api.get(f"{V3}/limits", params={"service_id": service}).json()["limits"] == []


def test_demo_user_sees_own_project_limits_only_and_cannot_write(api: Any) -> None:
    service = _service(api)
    _register(api, service, "cores")
    demo_project, admin_project = _project_id(api, "demo"), _project_id(api, "admin")
    mine = {"service_id": service, "project_id": demo_project, "resource_name": "cores", "resource_limit": 1}
    theirs = {**mine, "project_id": admin_project}
    created = api.post(f"{V3}/limits", json={"limits": [mine, theirs]}).json()["limits"]
    listed = api.get(f"{V3}/limits", params={"service_id": service}, who="demo").json()["limits"]
    assert [x["project_id"] for x in listed] == [demo_project]
    by_id = {x["project_id"]: x["id"] for x in created}
    assert api.get(f"{V3}/limits/{by_id[demo_project]}", who="demo").status_code == 200
    _error(api.get(f"{V3}/limits/{by_id[admin_project]}", who="demo"), 403)
    _error(api.post(f"{V3}/limits", json={"limits": [mine]}, who="demo"), 403)
    _error(api.patch(f"{V3}/limits/{by_id[demo_project]}", json={"limit": {"resource_limit": 99}}, who="demo"), 403)
    _error(api.delete(f"{V3}/limits/{by_id[demo_project]}", who="demo"), 403)
    item = {"service_id": service, "resource_name": "ram", "default_limit": 1}
    _error(api.post(f"{V3}/registered_limits", json={"registered_limits": [item]}, who="demo"), 403)
