"""/v3/regions, /v3/services and /v3/endpoints."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api.conftest import Api
from tests.api.test_roles import error

V3 = "/identity/v3"


def uid() -> str:
    return uuid.uuid4().hex[:10]


def make_service(api: Api, **fields: Any) -> dict[str, Any]:
    r = api.post(f"{V3}/services", json={"service": {"type": f"t-{uid()}", **fields}})
    assert r.status_code == 201, r.text
    return dict(r.json()["service"])


def make_region(api: Api, **fields: Any) -> dict[str, Any]:
    r = api.post(f"{V3}/regions", json={"region": fields})
    assert r.status_code == 201, r.text
    return dict(r.json()["region"])


def make_endpoint(api: Api, service_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "service_id": service_id,
        "interface": "public",
        "url": "http://127.0.0.1:9/x",
        **fields,
    }
    r = api.post(f"{V3}/endpoints", json={"endpoint": body})
    assert r.status_code == 201, r.text
    return dict(r.json()["endpoint"])


def catalog_urls(api: Api) -> set[str]:
    r = api.get(f"{V3}/auth/catalog")
    assert r.status_code == 200, r.text
    return {e["url"] for s in r.json()["catalog"] for e in s["endpoints"]}


# --- regions -------------------------------------------------------------------


def test_region_crud_and_ids(api: Api) -> None:
    generated = make_region(api, description="gen")
    assert len(generated["id"]) == 32 and generated["parent_region_id"] is None
    assert generated["links"]["self"].endswith(f"/v3/regions/{generated['id']}")
    chosen = make_region(api, id=f"R-{uid()}")
    error(api.post(f"{V3}/regions", json={"region": {"id": chosen["id"]}}), 409)
    rid = f"P-{uid()}"
    r = api.put(
        f"{V3}/regions/{rid}",
        json={"region": {"description": "by put", "parent_region_id": chosen["id"]}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["region"] == {**r.json()["region"], "id": rid, "parent_region_id": chosen["id"]}
    error(api.put(f"{V3}/regions/{rid}", json={"region": {}}), 409)
    error(api.put(f"{V3}/regions/{uid()}", json={"region": {"id": "other"}}), 400)
    listed = api.get(f"{V3}/regions?parent_region_id={chosen['id']}").json()["regions"]
    assert [x["id"] for x in listed] == [rid]
    r = api.patch(f"{V3}/regions/{rid}", json={"region": {"description": "new"}})
    assert r.status_code == 200 and r.json()["region"]["description"] == "new"
    assert api.get(f"{V3}/regions/{rid}").json()["region"]["description"] == "new"
    # anyone with a token may read regions (Keystone's default)
    assert api.get(f"{V3}/regions/{rid}", who="demo").status_code == 200
    # deleting a parent deletes its children
    assert api.delete(f"{V3}/regions/{chosen['id']}").status_code == 204
    error(api.get(f"{V3}/regions/{rid}"), 404)
    error(api.delete(f"{V3}/regions/{chosen['id']}"), 404)


def test_region_parent_rules(api: Api) -> None:
    error(api.post(f"{V3}/regions", json={"region": {"parent_region_id": "nope"}}), 404)
    a = make_region(api)
    b = make_region(api, parent_region_id=a["id"])
    c = make_region(api, parent_region_id=b["id"])
    error(api.patch(f"{V3}/regions/{a['id']}", json={"region": {"parent_region_id": c["id"]}}), 400)
    error(api.patch(f"{V3}/regions/{a['id']}", json={"region": {"parent_region_id": a["id"]}}), 400)
    assert api.get(f"{V3}/regions/{a['id']}").json()["region"]["parent_region_id"] is None
    error(api.patch(f"{V3}/regions/{a['id']}", json={"region": {"id": "x"}}), 400)
    error(api.post(f"{V3}/regions", json={"region": {"description": 5}}), 400)
    error(api.post(f"{V3}/regions", json={"region": {"id": "x" * 256}}), 400)
    error(api.post(f"{V3}/regions", json={"regions": {}}), 400)
    # a region (or its child) holding endpoints cannot be deleted
    svc = make_service(api)
    make_endpoint(api, svc["id"], region_id=c["id"])
    error(api.delete(f"{V3}/regions/{a['id']}"), 403)
    assert api.get(f"{V3}/regions/{c['id']}").status_code == 200


# --- services ------------------------------------------------------------------


def test_service_crud(api: Api) -> None:
    svc = make_service(api, name="thing", description="a thing", enabled=False)
    assert svc["name"] == "thing" and svc["enabled"] is False and svc["description"] == "a thing"
    assert svc["links"]["self"].endswith(f"/v3/services/{svc['id']}")
    assert [s["id"] for s in api.get(f"{V3}/services?type={svc['type']}").json()["services"]] == [
        svc["id"]
    ]
    r = api.patch(
        f"{V3}/services/{svc['id']}", json={"service": {"enabled": True, "name": "renamed"}}
    )
    assert r.status_code == 200 and r.json()["service"]["enabled"] is True
    assert api.get(f"{V3}/services/{svc['id']}").json()["service"]["name"] == "renamed"
    ep = make_endpoint(api, svc["id"])
    assert api.delete(f"{V3}/services/{svc['id']}").status_code == 204
    error(api.get(f"{V3}/services/{svc['id']}"), 404)
    error(api.get(f"{V3}/endpoints/{ep['id']}"), 404)  # its endpoints went with it


def test_service_bad_input(api: Api) -> None:
    before = len(api.get(f"{V3}/services").json()["services"])
    error(api.post(f"{V3}/services", json={"service": {"name": "no type"}}), 400)
    error(api.post(f"{V3}/services", json={"service": {"type": ""}}), 400)
    error(api.post(f"{V3}/services", json={"service": {"type": 1}}), 400)
    error(api.post(f"{V3}/services", json={"service": {"type": "x" * 256}}), 400)
    error(api.post(f"{V3}/services", json={"service": {"type": "t", "enabled": "yes"}}), 400)
    error(api.post(f"{V3}/services", json=[]), 400)
    error(api.patch(f"{V3}/services/nope", json={"service": {"type": "t"}}), 404)
    error(api.delete(f"{V3}/services/nope"), 404)
    assert len(api.get(f"{V3}/services").json()["services"]) == before


# --- endpoints -----------------------------------------------------------------


def test_endpoint_crud_and_catalog(api: Api) -> None:
    svc = make_service(api, name="svc")
    region = make_region(api)
    url = f"http://127.0.0.1:9/{uid()}"
    ep = make_endpoint(api, svc["id"], url=url, region_id=region["id"])
    assert ep["region_id"] == region["id"] and ep["region"] == region["id"]
    assert ep["interface"] == "public" and ep["enabled"] is True and ep["service_id"] == svc["id"]
    assert url in catalog_urls(api)
    legacy = make_endpoint(api, svc["id"], interface="internal", region=region["id"])
    assert legacy["region_id"] == region["id"]
    # the legacy ``region`` alone creates a missing region (Keystone's backward compatibility)
    new_region = f"legacy-{uid()}"
    auto = make_endpoint(api, svc["id"], region=new_region)
    assert auto["region_id"] == auto["region"] == new_region
    assert api.get(f"{V3}/regions/{new_region}").status_code == 200
    assert api.delete(f"{V3}/endpoints/{auto['id']}").status_code == 204
    ids = {e["id"] for e in api.get(f"{V3}/endpoints?service_id={svc['id']}").json()["endpoints"]}
    assert ids == {ep["id"], legacy["id"]}
    internal = api.get(f"{V3}/endpoints?service_id={svc['id']}&interface=internal").json()[
        "endpoints"
    ]
    assert [e["id"] for e in internal] == [legacy["id"]]
    by_region = api.get(f"{V3}/endpoints?region_id={region['id']}").json()["endpoints"]
    assert {e["id"] for e in by_region} == ids
    r = api.patch(f"{V3}/endpoints/{ep['id']}", json={"endpoint": {"enabled": False}})
    assert r.status_code == 200 and r.json()["endpoint"]["enabled"] is False
    assert url not in catalog_urls(api)
    r = api.patch(
        f"{V3}/endpoints/{ep['id']}", json={"endpoint": {"enabled": True, "interface": "admin"}}
    )
    assert r.json()["endpoint"]["interface"] == "admin"
    assert api.delete(f"{V3}/endpoints/{ep['id']}").status_code == 204
    assert url not in catalog_urls(api)
    error(api.get(f"{V3}/endpoints/{ep['id']}"), 404)


def test_endpoint_bad_input(api: Api) -> None:
    svc = make_service(api)
    before = len(api.get(f"{V3}/endpoints").json()["endpoints"])
    good = {"service_id": svc["id"], "interface": "public", "url": "http://127.0.0.1:9/"}
    for bad in (
        {**good, "interface": "private"},
        {**good, "service_id": "nope"},
        {**good, "region_id": "nope"},
        {**good, "url": "not a url"},
        {**good, "url": 5},
        {**good, "enabled": "true"},
        {k: v for k, v in good.items() if k != "url"},
        {k: v for k, v in good.items() if k != "interface"},
        {k: v for k, v in good.items() if k != "service_id"},
        {**good, "url": "http://127.0.0.1:9/" + "x" * 220},
    ):
        error(api.post(f"{V3}/endpoints", json={"endpoint": bad}), 400)
    assert len(api.get(f"{V3}/endpoints").json()["endpoints"]) == before
    error(api.get(f"{V3}/regions/nope"), 404)
    ep = make_endpoint(api, svc["id"])
    error(api.patch(f"{V3}/endpoints/{ep['id']}", json={"endpoint": {"service_id": "nope"}}), 400)
    error(api.patch(f"{V3}/endpoints/{ep['id']}", json={"endpoint": {"interface": "x"}}), 400)
    error(api.patch(f"{V3}/endpoints/nope", json={"endpoint": {"interface": "admin"}}), 404)
    assert api.get(f"{V3}/endpoints/{ep['id']}").json()["endpoint"]["service_id"] == svc["id"]


def test_demo_user_is_forbidden(api: Api) -> None:
    svc = make_service(api)
    error(api.post(f"{V3}/services", who="demo", json={"service": {"type": "x"}}), 403)
    error(api.get(f"{V3}/services", who="demo"), 403)
    error(
        api.post(
            f"{V3}/endpoints",
            who="demo",
            json={
                "endpoint": {
                    "service_id": svc["id"],
                    "interface": "public",
                    "url": "http://127.0.0.1:9/",
                }
            },
        ),
        403,
    )
    error(api.get(f"{V3}/endpoints", who="demo"), 403)
    error(api.post(f"{V3}/regions", who="demo", json={"region": {}}), 403)
    error(api.delete(f"{V3}/services/{svc['id']}", who="demo"), 403)
    assert api.get(f"{V3}/services/{svc['id']}").status_code == 200


def test_malformed_bodies(api: Api) -> None:
    svc = make_service(api)
    ep = make_endpoint(api, svc["id"])
    region = make_region(api)
    raw = {"content": b"{oops", "headers": {"Content-Type": "application/json"}}
    for method, path in (
        ("POST", f"{V3}/regions"),
        ("PUT", f"{V3}/regions/{uid()}"),
        ("PATCH", f"{V3}/regions/{region['id']}"),
        ("POST", f"{V3}/services"),
        ("PATCH", f"{V3}/services/{svc['id']}"),
        ("POST", f"{V3}/endpoints"),
        ("PATCH", f"{V3}/endpoints/{ep['id']}"),
    ):
        error(api.request(method, path, **raw), 400)
        error(api.request(method, path), 400)  # no body at all
        error(api.request(method, path, json={"wrong": {}}), 400)
    assert api.get(f"{V3}/endpoints/{ep['id']}").json()["endpoint"]["url"] == ep["url"]
