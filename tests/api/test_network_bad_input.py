"""A malformed-request sweep over the Networking API: odd bodies, values of
every wrong type for every attribute, odd ids and query strings. Nothing may
answer 5xx, every 4xx is a NeutronError, and a refused create leaves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from onestack.network.service.resources import RESOURCES
from tests.api._network import N, network, ok, port, subnet
from tests.api.conftest import Api

WEIRD: list[Any] = [None, [], {}, "", "x" * 300, -1, 2**40, 1.5, True, "\u0000", "💥", ["a", ["b"]], {"a": {}}]
PATHS = {r.collection: r.path for r in RESOURCES.values()}


def _sane(r: Any, allowed: tuple[int, ...] = ()) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400 and r.status_code not in allowed:
        body = r.json()
        assert set(body) == {"NeutronError"} and set(body["NeutronError"]) == {"type", "message", "detail"}, body


def _count(api: Api, path: str) -> int:
    """Resources in a collection, less the ``default`` security groups that a
    group created for a new project brings along."""
    items = ok(api.get(f"{N}/{path}"))[path.replace("-", "_")]
    return sum(not (path == "security-groups" and i["name"] == "default") for i in items)


@pytest.mark.parametrize("collection", sorted(RESOURCES))
def test_create_with_wrong_values_never_fails_badly(api: Api, collection: str) -> None:
    resource = RESOURCES[collection]
    path = f"{N}/{PATHS[collection]}"
    before = _count(api, PATHS[collection])
    created = 0
    for body in (None, "x", [], {resource.name: "x"}, {collection: []}, {collection: ["x"]}, {resource.name: []}):
        _sane(api.post(path, json=body))
    for attr, spec in resource.items():
        if not spec.post:
            continue
        for value in WEIRD:
            r = api.post(path, json={resource.name: {attr: value}})
            _sane(r)
            created += r.status_code == 201
    assert _count(api, PATHS[collection]) <= before + created


def test_update_with_wrong_values_never_fails_badly(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.120.0.0/24")
    p = port(api, net["id"])
    for collection, rid in (("networks", net["id"]), ("subnets", sub["id"]), ("ports", p["id"])):
        resource = RESOURCES[collection]
        for attr, spec in resource.items():
            if not spec.put:
                continue
            for value in WEIRD:
                _sane(api.put(f"{N}/{collection}/{rid}", json={resource.name: {attr: value}}))
    assert ok(api.get(f"{N}/ports/{p['id']}"))["port"]["network_id"] == net["id"]


@pytest.mark.parametrize("segment", ["%00", "%0A", "..", "💥", "a" * 500, "%25", "x%20y"])
def test_odd_ids_and_tags(api: Api, segment: str) -> None:
    for path in sorted(set(PATHS.values())):
        _sane(api.get(f"{N}/{path}/{segment}"))
        _sane(api.delete(f"{N}/{path}/{segment}"))
        _sane(api.put(f"{N}/{path}/{segment}", json={}))
    net = network(api)
    _sane(api.put(f"{N}/networks/{net['id']}/tags/{segment}"))
    _sane(api.get(f"{N}/networks/{net['id']}/tags/{segment}"))
    _sane(api.put(f"{N}/routers/{segment}/add_router_interface", json={"subnet_id": segment}))
    _sane(api.get(f"{N}/floatingips/{segment}/port_forwardings"))
    _sane(api.get(f"{N}/quotas/{segment}"))
    _sane(api.put(f"{N}/quotas/{segment}", json={"quota": {"network": 5}}))
    _sane(api.delete(f"{N}/quotas/{segment}"))
    _sane(api.get(f"{N}/network-ip-availabilities/{segment}"))


@pytest.mark.parametrize("query", [
    "limit=abc", "limit=-5", "limit=99999999999999999999", "marker=💥&limit=1", "sort_key=id&sort_dir=💥",
    "sort_key=💥&sort_dir=asc", "fields=💥", "id=%00", "admin_state_up=maybe", "tags=", "not-tags-any=a,,b",
    "page_reverse=True&limit=1", "mtu=abc", "fixed_ips=💥", "fixed_ips=ip_address_substr=%25",
    "security_groups=x", "router:external=yes", "shared=2",
])
def test_odd_queries(api: Api, query: str) -> None:
    for path in sorted(set(PATHS.values())):
        _sane(api.get(f"{N}/{path}?{query}"))


def test_actions_with_wrong_bodies(api: Api) -> None:
    router = ok(api.get(f"{N}/routers?name=router1"))["routers"][0]
    for body in (None, "x", [], {"subnet_id": None}, {"port_id": 5}, {"subnet_id": "x", "port_id": "y"},
                 {"router": {"routes": "x"}}, {"router": {"routes": [{"destination": "x"}]}}):
        for action in ("add_router_interface", "remove_router_interface", "add_extraroutes", "remove_extraroutes"):
            _sane(api.put(f"{N}/routers/{router['id']}/{action}", json=body))
    net = network(api)
    for body in (None, "x", {"tags": None}, {"tags": [1]}, {"tags": ["a"] * 2}):
        _sane(api.put(f"{N}/networks/{net['id']}/tags", json=body))
        _sane(api.post(f"{N}/networks/{net['id']}/tags", json=body))
    for body in (None, [], {"quota": []}, {"quota": {"network": None}}, {"quota": {"network": [1]}}):
        _sane(api.put(f"{N}/quotas/x", json=body))
