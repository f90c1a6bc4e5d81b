"""Networking's rules hold when requests race (on PostgreSQL, write units run
concurrently with row locks; SQLite has one writer): whatever interleaving,
the outcome is one the requests would have had one after the other."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.api._network import N, as_token, name, network, ok, other_member, port, subnet
from tests.api.conftest import Api


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once (released together); their responses in order."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _codes(results: list[Any]) -> Counter[int]:
    for r in results:
        assert r.status_code < 500, r.text
    return Counter(r.status_code for r in results)


def test_concurrent_networks_get_distinct_vnis(api: Api) -> None:
    results = together([
        lambda: api.post(f"{N}/networks", json={"network": {"name": name("vni")}}) for _ in range(12)
    ])
    assert _codes(results) == {201: 12}
    ids = [r.json()["network"]["id"] for r in results]
    vnis = [ok(api.get(f"{N}/networks/{i}"))["network"]["provider:segmentation_id"] for i in ids]
    assert len(set(vnis)) == 12, vnis


def test_overlapping_subnets_on_one_network(api: Api) -> None:
    net = network(api)
    results = together([
        lambda c=c: api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "cidr": c, "ip_version": 4}})
        for c in ("10.140.0.0/24", "10.140.0.0/25", "10.140.0.0/23", "10.140.0.0/16")
    ])
    assert _codes(results)[201] == 1
    assert len(ok(api.get(f"{N}/subnets?network_id={net['id']}"))["subnets"]) == 1


def test_the_same_rule_twice(api: Api) -> None:
    sg = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": name("sg")}}), 201)["security_group"]
    rule = {"security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp", "ethertype": "IPv4",
            "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "10.0.0.0/8"}
    results = together([
        lambda: api.post(f"{N}/security-group-rules", json={"security_group_rule": rule}) for _ in range(6)
    ])
    assert _codes(results) == {201: 1, 409: 5}
    rules = ok(api.get(f"{N}/security-group-rules?security_group_id={sg['id']}&protocol=tcp"))
    assert len(rules["security_group_rules"]) == 1


def test_two_floating_ips_for_one_fixed_address(api: Api) -> None:
    public = ok(api.get(f"{N}/networks?name=public"))["networks"][0]
    net = network(api)
    sub = subnet(api, net["id"], "10.141.0.0/24")
    router = ok(api.post(f"{N}/routers", json={"router": {
        "name": name("r"), "external_gateway_info": {"network_id": public["id"]}}}), 201)["router"]
    ok(api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]}))
    target = port(api, net["id"])
    fips = [ok(api.post(f"{N}/floatingips", json={"floatingip": {"floating_network_id": public["id"]}}),
               201)["floatingip"] for _ in range(4)]
    results = together([
        lambda f=f: api.put(f"{N}/floatingips/{f['id']}", json={"floatingip": {"port_id": target["id"]}})
        for f in fips
    ])
    assert _codes(results) == {200: 1, 409: 3}
    bound = ok(api.get(f"{N}/floatingips?port_id={target['id']}"))["floatingips"]
    assert len(bound) == 1
    for f in fips:
        api.delete(f"{N}/floatingips/{f['id']}")
    ok(api.put(f"{N}/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]}))


def test_overlapping_interfaces_on_one_router(api: Api) -> None:
    router = ok(api.post(f"{N}/routers", json={"router": {"name": name("r")}}), 201)["router"]
    subs = []
    for _i in range(4):
        net = network(api)
        subs.append(subnet(api, net["id"], "10.142.0.0/24"))
    results = together([
        lambda s=s: api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": s["id"]})
        for s in subs
    ])
    assert _codes(results) == {200: 1, 400: 3}
    ports = ok(api.get(f"{N}/ports?device_id={router['id']}"))["ports"]
    assert len(ports) == 1


def test_subnets_from_one_pool(api: Api) -> None:
    pool = ok(api.post(f"{N}/subnetpools", json={"subnetpool": {
        "name": name("pool"), "prefixes": ["10.143.0.0/22"], "default_prefixlen": 24}}), 201)["subnetpool"]
    nets = [network(api) for _ in range(6)]
    results = together([
        lambda n=n: api.post(f"{N}/subnets", json={"subnet": {
            "network_id": n["id"], "subnetpool_id": pool["id"], "ip_version": 4}})
        for n in nets
    ])
    codes = _codes(results)
    assert codes[201] == 4, codes  # four /24s in the /22
    cidrs = [r.json()["subnet"]["cidr"] for r in results if r.status_code == 201]
    assert sorted(cidrs) == [f"10.143.{i}.0/24" for i in range(4)]


def test_deleting_a_network_while_ports_are_made_on_it(api: Api) -> None:
    for _round in range(3):
        net_id = network(api)["id"]
        subnet(api, net_id, "10.144.0.0/24")
        calls: list[Callable[[], Any]] = [
            lambda n=net_id: api.post(f"{N}/ports", json={"port": {"network_id": n}}) for _ in range(4)
        ]
        calls.insert(2, lambda n=net_id: api.delete(f"{N}/networks/{n}"))
        results = together(calls)
        _codes(results)
        deleted = results[2].status_code == 204
        made = [r for i, r in enumerate(results) if i != 2 and r.status_code == 201]
        if deleted:
            # a network with ports cannot be deleted: every port create lost
            assert not made
            assert api.get(f"{N}/networks/{net_id}").status_code == 404
        else:
            assert results[2].status_code == 409 and made
            for r in made:
                assert ok(api.get(f"{N}/ports/{r.json()['port']['id']}"))["port"]["network_id"] == net_id
                api.delete(f"{N}/ports/{r.json()['port']['id']}")
            assert api.delete(f"{N}/networks/{net_id}").status_code == 204


def test_tags_replaced_together(api: Api) -> None:
    net = network(api)
    results = together([
        lambda i=i: api.put(f"{N}/networks/{net['id']}/tags", json={"tags": [f"t{i}", f"u{i}"]})
        for i in range(6)
    ])
    assert _codes(results) == {200: 6}
    tags = ok(api.get(f"{N}/networks/{net['id']}/tags"))["tags"]
    assert len(tags) == 2 and tags[0][1:] == tags[1][1:], tags


def test_default_security_group_made_once(api: Api) -> None:
    token = other_member(api)
    results = together([lambda: as_token(api, token, "GET", f"{N}/security-groups") for _ in range(6)])
    assert _codes(results) == {200: 6}
    groups = as_token(api, token, "GET", f"{N}/security-groups?name=default").json()["security_groups"]
    assert len(groups) == 1
