"""/v3/policies and OS-ENDPOINT-POLICY associations."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"
EPP = "OS-ENDPOINT-POLICY"


def _policy(api: Any, **extra: Any) -> dict[str, Any]:
    body = {"policy": {"blob": f"blob-{uuid.uuid4().hex}", "type": "application/json", **extra}}
    r = api.post(f"{V3}/policies", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json()["policy"])


def test_create_show_list_update_delete(api: Any) -> None:
    policy = _policy(api, owner="ops")
    assert policy["owner"] == "ops"
    assert policy["links"]["self"].endswith(f"/v3/policies/{policy['id']}")
    assert api.get(f"{V3}/policies/{policy['id']}").json()["policy"] == policy
    ids = [p["id"] for p in api.get(f"{V3}/policies").json()["policies"]]
    assert policy["id"] in ids
    by_type = api.get(f"{V3}/policies", params={"type": "nothing/else"}).json()["policies"]
    assert by_type == []
    r = api.patch(f"{V3}/policies/{policy['id']}", json={"policy": {"type": "text/x-new"}})
    assert r.status_code == 200 and r.json()["policy"]["type"] == "text/x-new"
    got = api.get(f"{V3}/policies/{policy['id']}").json()["policy"]
    assert got["blob"] == policy["blob"] and got["type"] == "text/x-new"
    assert api.delete(f"{V3}/policies/{policy['id']}").status_code == 204
    _error(api.get(f"{V3}/policies/{policy['id']}"), 404)
    _error(api.delete(f"{V3}/policies/{policy['id']}"), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"policy": {"blob": "x"}},
        {"policy": {"type": "t"}},
        {"policy": {"blob": 5, "type": "t"}},
        {"policy": {"blob": "x", "type": ""}},
        {"policy": {"blob": "x", "type": "t" * 256}},
        {"policy": "x"},
        {"blob": "x", "type": "t"},
    ],
)
def test_bad_policy_is_400(api: Any, body: Any) -> None:
    before = len(api.get(f"{V3}/policies").json()["policies"])
    _error(api.post(f"{V3}/policies", json=body), 400)
    assert len(api.get(f"{V3}/policies").json()["policies"]) == before


def test_demo_user_is_forbidden(api: Any) -> None:
    policy = _policy(api)
    _error(api.post(f"{V3}/policies", json={"policy": {"blob": "x", "type": "t"}}, who="demo"), 403)
    _error(api.get(f"{V3}/policies", who="demo"), 403)
    _error(api.get(f"{V3}/policies/{policy['id']}", who="demo"), 403)
    _error(api.patch(f"{V3}/policies/{policy['id']}", json={"policy": {"type": "y"}}, who="demo"), 403)
    _error(api.delete(f"{V3}/policies/{policy['id']}", who="demo"), 403)


def _service_and_endpoint(api: Any) -> tuple[str, str]:
    r = api.post(f"{V3}/services", json={"service": {"type": f"t-{uuid.uuid4().hex[:6]}"}})
    service = r.json()["service"]["id"]
    r = api.post(f"{V3}/endpoints", json={"endpoint": {
        "service_id": service, "interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:9/"}})
    assert r.status_code == 201, r.text
    return service, r.json()["endpoint"]["id"]


def test_endpoint_policy_associations(api: Any) -> None:
    service, endpoint = _service_and_endpoint(api)
    by_service, by_region, by_endpoint = _policy(api), _policy(api), _policy(api)
    resolve = f"{V3}/endpoints/{endpoint}/{EPP}/policy"
    _error(api.get(resolve), 404)
    svc_url = f"{V3}/policies/{by_service['id']}/{EPP}/services/{service}"
    assert api.put(svc_url).status_code == 204
    assert api.request("HEAD", svc_url).status_code == 204
    assert api.get(resolve).json()["policy"]["id"] == by_service["id"]
    region_url = f"{V3}/policies/{by_region['id']}/{EPP}/services/{service}/regions/RegionOne"
    assert api.put(region_url).status_code == 204
    assert api.get(resolve).json()["policy"]["id"] == by_region["id"]
    ep_url = f"{V3}/policies/{by_endpoint['id']}/{EPP}/endpoints/{endpoint}"
    assert api.put(ep_url).status_code == 204
    assert api.get(ep_url).status_code == 204
    assert api.get(resolve).json()["policy"]["id"] == by_endpoint["id"]
    listed = api.get(f"{V3}/policies/{by_endpoint['id']}/{EPP}/endpoints").json()["endpoints"]
    assert [e["id"] for e in listed] == [endpoint]
    assert api.get(f"{V3}/policies/{by_service['id']}/{EPP}/endpoints").json()["endpoints"] == []
    assert api.delete(ep_url).status_code == 204
    _error(api.delete(ep_url), 404)
    assert api.get(resolve).json()["policy"]["id"] == by_region["id"]
    # Deleting a policy drops its associations.
    assert api.delete(f"{V3}/policies/{by_region['id']}").status_code == 204
    assert api.get(resolve).json()["policy"]["id"] == by_service["id"]


def test_association_with_unknown_ids_is_404(api: Any) -> None:
    service, endpoint = _service_and_endpoint(api)
    policy = _policy(api)
    missing = uuid.uuid4().hex
    _error(api.put(f"{V3}/policies/{missing}/{EPP}/endpoints/{endpoint}"), 404)
    _error(api.put(f"{V3}/policies/{policy['id']}/{EPP}/endpoints/{missing}"), 404)
    _error(api.put(f"{V3}/policies/{policy['id']}/{EPP}/services/{missing}"), 404)
    _error(api.put(f"{V3}/policies/{policy['id']}/{EPP}/services/{service}/regions/{missing}"), 404)
    _error(api.get(f"{V3}/endpoints/{missing}/{EPP}/policy"), 404)
    _error(api.put(f"{V3}/policies/{policy['id']}/{EPP}/endpoints/{endpoint}", who="demo"), 403)
