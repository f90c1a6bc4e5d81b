"""OS-EP-FILTER: project/endpoint associations, endpoint groups, catalog filtering."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"
EP = f"{V3}/OS-EP-FILTER"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _service(api: Any) -> str:
    r = api.post(f"{V3}/services", json={"service": {"type": _name("type"), "name": _name("svc")}})
    assert r.status_code == 201, r.text
    return str(r.json()["service"]["id"])


def _endpoint(api: Any, service_id: str, interface: str = "public") -> str:
    body = {"endpoint": {"service_id": service_id, "interface": interface, "region_id": "RegionOne",
                         "url": f"http://127.0.0.1:9/{uuid.uuid4().hex[:6]}"}}
    r = api.post(f"{V3}/endpoints", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["endpoint"]["id"])


def _project(api: Any) -> str:
    r = api.post(f"{V3}/projects", json={"project": {"name": _name("epf"), "domain_id": "default"}})
    assert r.status_code == 201, r.text
    return str(r.json()["project"]["id"])


@pytest.fixture(scope="module")
def world(api: Any) -> dict[str, str]:
    service = _service(api)
    return {
        "service": service,
        "public": _endpoint(api, service, "public"),
        "internal": _endpoint(api, service, "internal"),
        "project": _project(api),
    }


def test_project_endpoint_association_lifecycle(api: Any, world: dict[str, str]) -> None:
    project, endpoint = _project(api), world["public"]
    url = f"{EP}/projects/{project}/endpoints/{endpoint}"
    assert api.request("HEAD", url).status_code == 404
    assert api.put(url).status_code == 204
    assert api.request("HEAD", url).status_code == 204
    assert api.get(url).status_code == 204
    _error(api.put(url), 409)
    endpoints = api.get(f"{EP}/projects/{project}/endpoints").json()["endpoints"]
    assert [e["id"] for e in endpoints] == [endpoint]
    assert endpoints[0]["links"]["self"].endswith(f"/v3/endpoints/{endpoint}")
    projects = api.get(f"{EP}/endpoints/{endpoint}/projects").json()["projects"]
    assert project in [p["id"] for p in projects]
    assert api.delete(url).status_code == 204
    _error(api.delete(url), 404)
    assert api.get(f"{EP}/projects/{project}/endpoints").json()["endpoints"] == []


def test_association_with_unknown_ids_is_404(api: Any, world: dict[str, str]) -> None:
    missing = uuid.uuid4().hex
    _error(api.put(f"{EP}/projects/{missing}/endpoints/{world['public']}"), 404)
    _error(api.put(f"{EP}/projects/{world['project']}/endpoints/{missing}"), 404)
    _error(api.get(f"{EP}/projects/{missing}/endpoints"), 404)
    _error(api.get(f"{EP}/endpoints/{missing}/projects"), 404)


def test_endpoint_group_crud(api: Any, world: dict[str, str]) -> None:
    body = {"endpoint_group": {"name": _name("eg"), "description": "d",
                               "filters": {"service_id": world["service"]}}}
    r = api.post(f"{EP}/endpoint_groups", json=body)
    assert r.status_code == 201, r.text
    group = r.json()["endpoint_group"]
    assert group["filters"] == {"service_id": world["service"]}
    assert group["links"]["self"].endswith(f"/OS-EP-FILTER/endpoint_groups/{group['id']}")
    gurl = f"{EP}/endpoint_groups/{group['id']}"
    assert api.get(gurl).json()["endpoint_group"] == group
    assert api.request("HEAD", gurl).status_code == 200
    listed = api.get(f"{EP}/endpoint_groups").json()["endpoint_groups"]
    assert group in listed
    by_name = api.get(f"{EP}/endpoint_groups", params={"name": group["name"]}).json()["endpoint_groups"]
    assert [g["id"] for g in by_name] == [group["id"]]
    # Endpoints the group selects.
    eps = api.get(f"{gurl}/endpoints").json()["endpoints"]
    assert {e["id"] for e in eps} == {world["public"], world["internal"]}
    r = api.patch(gurl, json={"endpoint_group": {"name": "renamed", "filters": {
        "service_id": world["service"], "interface": "internal"}}})
    assert r.status_code == 200, r.text
    assert r.json()["endpoint_group"]["name"] == "renamed"
    assert [e["id"] for e in api.get(f"{gurl}/endpoints").json()["endpoints"]] == [world["internal"]]
    assert api.delete(gurl).status_code == 204
    _error(api.get(gurl), 404)
    assert api.request("HEAD", gurl).status_code == 404
    _error(api.delete(gurl), 404)


@pytest.mark.parametrize(
    "group",
    [
        {"filters": {"interface": "public"}},
        {"name": "x"},
        {"name": "x", "filters": {"bogus": "y"}},
        {"name": "x", "filters": {"interface": "sideways"}},
        {"name": "x", "filters": {}},
        {"name": "x", "filters": "service"},
        {"name": "", "filters": {"interface": "public"}},
        {"name": 5, "filters": {"interface": "public"}},
        "group",
    ],
)
def test_bad_endpoint_group_is_400(api: Any, group: Any) -> None:
    before = len(api.get(f"{EP}/endpoint_groups").json()["endpoint_groups"])
    _error(api.post(f"{EP}/endpoint_groups", json={"endpoint_group": group}), 400)
    assert len(api.get(f"{EP}/endpoint_groups").json()["endpoint_groups"]) == before


def test_endpoint_group_project_association(api: Any, world: dict[str, str]) -> None:
    project = _project(api)
    body = {"endpoint_group": {"name": _name("eg"), "filters": {"interface": "internal",
                                                                 "service_id": world["service"]}}}
    group = api.post(f"{EP}/endpoint_groups", json=body).json()["endpoint_group"]
    url = f"{EP}/endpoint_groups/{group['id']}/projects/{project}"
    _error(api.get(url), 404)
    assert api.put(url).status_code == 204
    _error(api.put(url), 409)
    assert api.request("HEAD", url).status_code == 200
    assert api.get(url).json()["project"]["id"] == project
    assert [p["id"] for p in api.get(f"{EP}/endpoint_groups/{group['id']}/projects").json()["projects"]] == [
        project]
    assert [g["id"] for g in api.get(f"{EP}/projects/{project}/endpoint_groups").json()["endpoint_groups"]] == [
        group["id"]]
    # The project's endpoints include the group's.
    eps = api.get(f"{EP}/projects/{project}/endpoints").json()["endpoints"]
    assert [e["id"] for e in eps] == [world["internal"]]
    assert api.delete(url).status_code == 204
    _error(api.delete(url), 404)
    _error(api.put(f"{EP}/endpoint_groups/{group['id']}/projects/{uuid.uuid4().hex}"), 404)


def _user_id(api: Any) -> str:
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token()})
    return str(r.json()["token"]["user"]["id"])


def _catalog_endpoint_ids(api: Any, project_id: str) -> set[str]:
    auth = api.admin_auth
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": auth["username"], "domain": {"name": "Default"}, "password": auth["password"]}}},
        "scope": {"project": {"id": project_id}},
    }}
    r = api.client.post(f"{V3}/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return {e["id"] for s in r.json()["token"]["catalog"] for e in s["endpoints"]}


def test_catalog_shows_only_associated_endpoints(api: Any, world: dict[str, str]) -> None:
    project = _project(api)
    role = api.get(f"{V3}/roles", params={"name": "member"}).json()["roles"][0]["id"]
    user = _user_id(api)
    assert api.put(f"{V3}/projects/{project}/users/{user}/roles/{role}").status_code == 204
    everything = _catalog_endpoint_ids(api, project)
    assert {world["public"], world["internal"]} <= everything
    assert api.put(f"{EP}/projects/{project}/endpoints/{world['public']}").status_code == 204
    assert _catalog_endpoint_ids(api, project) == {world["public"]}
    group = api.post(f"{EP}/endpoint_groups", json={"endpoint_group": {
        "name": _name("eg"), "filters": {"interface": "internal", "service_id": world["service"]}}}).json()
    gid = group["endpoint_group"]["id"]
    assert api.put(f"{EP}/endpoint_groups/{gid}/projects/{project}").status_code == 204
    assert _catalog_endpoint_ids(api, project) == {world["public"], world["internal"]}
    api.delete(f"{EP}/projects/{project}/endpoints/{world['public']}")
    api.delete(f"{EP}/endpoint_groups/{gid}/projects/{project}")
    assert _catalog_endpoint_ids(api, project) == everything


def test_demo_user_is_forbidden(api: Any, world: dict[str, str]) -> None:
    url = f"{EP}/projects/{world['project']}/endpoints/{world['public']}"
    _error(api.put(url, who="demo"), 403)
    _error(api.get(f"{EP}/projects/{world['project']}/endpoints", who="demo"), 403)
    _error(api.post(f"{EP}/endpoint_groups", who="demo",
                    json={"endpoint_group": {"name": "x", "filters": {"interface": "public"}}}), 403)
    _error(api.get(f"{EP}/endpoint_groups", who="demo"), 403)


def test_filter_endpoints_contract(api: Any, world: dict[str, str]) -> None:
    """``filter_endpoints(session, project_id, endpoints)`` as the catalog calls it."""
    from sqlalchemy import select

    from onestack.identity.models import Endpoint
    from onestack.identity.service.endpoint_filter import filter_endpoints

    project = _project(api)
    db = api.cloud.db
    with db.read() as s:
        rows = list(s.scalars(select(Endpoint)))
        assert filter_endpoints(s, project, rows) == rows
        assert filter_endpoints(s, None, rows) == rows
    assert api.put(f"{EP}/projects/{project}/endpoints/{world['internal']}").status_code == 204
    with db.read() as s:
        rows = list(s.scalars(select(Endpoint)))
        assert [e.id for e in filter_endpoints(s, project, rows)] == [world["internal"]]
        # The association holds even when the given list lacks that endpoint (it is disabled).
        others = [e for e in rows if e.id != world["internal"]]
        assert filter_endpoints(s, project, others) == []


def test_associated_projects_and_endpoints_have_their_own_wire_shape(
    api: Any, world: dict[str, str]
) -> None:
    """A project (or endpoint) listed through OS-EP-FILTER reads as GET /v3/projects/{id}
    (or /v3/endpoints/{id}) does: a top-level project's parent_id is its domain."""
    project, endpoint = _project(api), world["internal"]
    assert api.put(f"{V3}/projects/{project}/tags/blue").status_code == 201
    assert api.put(f"{EP}/projects/{project}/endpoints/{endpoint}").status_code == 204
    try:
        listed = api.get(f"{EP}/endpoints/{endpoint}/projects").json()["projects"]
        (got,) = [p for p in listed if p["id"] == project]
        want = api.get(f"{V3}/projects/{project}").json()["project"]
        assert want["parent_id"] == "default"
        assert {k: v for k, v in got.items() if k != "links"} == {
            k: v for k, v in want.items() if k != "links"}
        (ep,) = api.get(f"{EP}/projects/{project}/endpoints").json()["endpoints"]
        want_ep = api.get(f"{V3}/endpoints/{endpoint}").json()["endpoint"]
        assert {k: v for k, v in ep.items() if k != "links"} == {
            k: v for k, v in want_ep.items() if k != "links"}
    finally:
        api.delete(f"{EP}/projects/{project}/endpoints/{endpoint}")
