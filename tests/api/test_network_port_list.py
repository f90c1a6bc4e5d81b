"""The list of ports (``network/service/port_list.py``): each port's JSON is
rendered once and reused while its revision stays. The answer must be the
very bytes the plain render gives (every port rendered, then serialised),
for admin and member, with and without ``fields``, filters, sorting and
pagination; and every write a port can see must show in the next list."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from onestack.network.core import NetworkService
from onestack.network.service import port_list, port_views, ports, query
from onestack.network.service.policy import caller_for
from onestack.network.service.resources import PORTS
from tests.api._network import N, network, ok, port, project_of, subnet
from tests.api.conftest import Api


def _net(api: Api) -> NetworkService:
    svc = api.cloud.services[NetworkService.name]
    assert isinstance(svc, NetworkService)
    return svc


def plain(api: Api, who: str, params: list[tuple[str, str]], links: Any) -> bytes:
    """The answer as every port rendered and serialised whole (the path before the cache)."""
    net = _net(api)
    ctx = api.cloud.validator.validate(api.token(who))  # type: ignore[union-attr]
    items, _page = port_views.list_ports(net, caller_for(net, ctx), query.parse(PORTS, params))
    body: dict[str, Any] = {"ports": items}
    if links is not None:
        body["ports_links"] = links
    return orjson.dumps(body)


def same_as_plain(api: Api, who: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """GET the list twice (the second from the fragments); both are the plain bytes."""
    for _ in range(2):
        r = api.get(f"{N}/ports", who, params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        links = r.json().get("ports_links")
        assert r.content == plain(api, who, params, links)
    return list(r.json()["ports"])


@pytest.fixture(scope="module")
def varied(api: Api) -> dict[str, Any]:
    """A shared network of admin's and a network of demo's, with ports of every shape."""
    shared = network(api, shared=True)
    v4 = subnet(api, shared["id"], "10.91.0.0/24")
    v4b = subnet(api, shared["id"], "10.91.1.0/24")
    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": "list-sg"}}), 201)
    made = [
        port(api, shared["id"], name="b-plain"),
        port(api, shared["id"], name="a-two-ips", fixed_ips=[{"subnet_id": v4["id"]}, {"subnet_id": v4b["id"]}],
             description="two addresses", dns_name="host-a"),
        port(api, shared["id"], name="c-groups", security_groups=[group["security_group"]["id"]],
             allowed_address_pairs=[{"ip_address": "10.91.0.200"}],
             extra_dhcp_opts=[{"opt_name": "mtu", "opt_value": "1400"}]),
        port(api, shared["id"], name="d-bound", device_owner="compute:nova", device_id="vm-1",
             **{"binding:host_id": "host-1"}),
        port(api, shared["id"], name="e-no-security", port_security_enabled=False, security_groups=[],
             admin_state_up=False),
    ]
    ok(api.put(f"{N}/ports/{made[0]['id']}/tags", json={"tags": ["red", "blue"]}))
    demo_net = network(api, "demo")
    subnet(api, demo_net["id"], "10.92.0.0/24", "demo")
    demo_ports = [port(api, demo_net["id"], "demo", name=f"demo-{i}") for i in range(3)]
    demo_ports.append(port(api, shared["id"], "demo", name="demo-on-shared"))
    ok(api.put(f"{N}/ports/{demo_ports[0]['id']}/tags/green"), 201)
    return {"shared": shared, "v4": v4, "demo_net": demo_net, "ports": made, "demo_ports": demo_ports}


QUERIES = [
    [],
    [("fields", "id"), ("fields", "name")],
    [("fields", "name"), ("fields", "binding:host_id"), ("fields", "name")],
    [("fields", "tags"), ("fields", "fixed_ips")],
    [("fields", "no-such-attribute")],
    [("sort_key", "name"), ("sort_dir", "desc")],
    [("sort_key", "name"), ("sort_dir", "asc"), ("limit", "3")],
    [("limit", "2"), ("fields", "name")],
    [("tags", "red")],
    [("device_owner", "compute:nova")],
    [("name", "no-such-port")],
]


@pytest.mark.parametrize("who", ["admin", "demo"])
@pytest.mark.parametrize("params", QUERIES, ids=lambda p: "&".join(f"{k}={v}" for k, v in p) or "all")
def test_the_list_is_the_plain_render_byte_for_byte(api: Api, varied: dict[str, Any], who: str,
                                                    params: list[tuple[str, str]]) -> None:
    same_as_plain(api, who, params)
    same_as_plain(api, who, [("network_id", varied["shared"]["id"]), *params])


def test_pages_and_filters_on_addresses(api: Api, varied: dict[str, Any]) -> None:
    shared = varied["shared"]["id"]
    first = same_as_plain(api, "admin", [("network_id", shared), ("sort_key", "name"), ("sort_dir", "asc"),
                                         ("limit", "2")])
    assert [p["name"] for p in first] == ["a-two-ips", "b-plain"]
    after = [("network_id", shared), ("sort_key", "name"), ("sort_dir", "asc"), ("limit", "2"),
             ("marker", first[-1]["id"])]
    assert [p["name"] for p in same_as_plain(api, "admin", after)] == ["c-groups", "d-bound"]
    back = [("network_id", shared), ("limit", "2"), ("marker", first[-1]["id"]), ("page_reverse", "True")]
    same_as_plain(api, "admin", back)
    by_subnet = same_as_plain(api, "admin", [("fixed_ips", f"subnet_id={varied['v4']['id']}")])
    assert "a-two-ips" in {p["name"] for p in by_subnet}


def test_a_member_sees_own_ports_and_hides_the_binding(api: Api, varied: dict[str, Any]) -> None:
    seen = same_as_plain(api, "demo", [])
    demo = project_of(api, "demo")
    assert seen and all(p["project_id"] == demo for p in seen)
    assert {p["name"] for p in varied["demo_ports"]} <= {p["name"] for p in seen}
    assert all("binding:host_id" not in p and "binding:vif_type" not in p for p in seen)
    admin_view = same_as_plain(api, "admin", [("project_id", demo)])
    assert all("binding:host_id" in p for p in admin_view)


def _listed(api: Api, network_id: str, port_id: str, who: str = "admin") -> dict[str, Any] | None:
    items = same_as_plain(api, who, [("network_id", network_id)])
    found = [p for p in items if p["id"] == port_id]
    return found[0] if found else None


def test_every_write_a_port_can_see_shows_in_the_next_list(api: Api) -> None:
    net = network(api)
    v4 = subnet(api, net["id"], "10.93.0.0/24")
    other = subnet(api, net["id"], "10.93.1.0/24")
    p = port(api, net["id"], name="watched")
    port(api, net["id"], name="bystander")
    nid, pid = net["id"], p["id"]
    assert _listed(api, nid, pid) is not None

    def put(body: dict[str, Any]) -> None:
        ok(api.put(f"{N}/ports/{pid}", json={"port": body}))

    put({"name": "renamed", "description": "now described", "admin_state_up": False})
    seen = _listed(api, nid, pid)
    assert seen is not None
    assert (seen["name"], seen["description"], seen["admin_state_up"]) == ("renamed", "now described", False)

    put({"fixed_ips": [{"subnet_id": other["id"], "ip_address": "10.93.1.77"}]})
    seen = _listed(api, nid, pid)
    assert seen is not None and seen["fixed_ips"] == [{"subnet_id": other["id"], "ip_address": "10.93.1.77"}]
    assert seen["dns_assignment"][0]["ip_address"] == "10.93.1.77"

    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": "watch-sg"}}), 201)
    put({"security_groups": [group["security_group"]["id"]]})
    seen = _listed(api, nid, pid)
    assert seen is not None and seen["security_groups"] == [group["security_group"]["id"]]

    put({"allowed_address_pairs": [{"ip_address": "10.93.0.250"}],
         "extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1300"}], "dns_name": "watched",
         "binding:host_id": "host-9", "device_owner": "compute:nova",
         "device_id": "vm-9"})
    seen = _listed(api, nid, pid)
    assert seen is not None
    assert seen["allowed_address_pairs"][0]["ip_address"] == "10.93.0.250"
    assert seen["extra_dhcp_opts"][0]["opt_value"] == "1300"
    assert (seen["binding:host_id"], seen["device_id"]) == ("host-9", "vm-9")
    assert seen["dns_assignment"][0]["hostname"] == "watched"

    ok(api.put(f"{N}/ports/{pid}/tags", json={"tags": ["one", "two"]}))
    assert (_listed(api, nid, pid) or {})["tags"] == ["one", "two"]
    ok(api.put(f"{N}/ports/{pid}/tags/three"), 201)
    assert (_listed(api, nid, pid) or {})["tags"] == ["one", "three", "two"]
    assert api.delete(f"{N}/ports/{pid}/tags/one").status_code == 204
    assert (_listed(api, nid, pid) or {})["tags"] == ["three", "two"]
    assert api.delete(f"{N}/ports/{pid}/tags").status_code == 204
    assert (_listed(api, nid, pid) or {})["tags"] == []

    assert ports.set_statuses(_net(api), {pid: "ACTIVE"}) == [pid]  # the data plane's report
    assert (_listed(api, nid, pid) or {})["status"] == "ACTIVE"

    # a SLAAC subnet gives every port an address; deleting it takes them back
    slaac = subnet(api, nid, "fd00:93::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    seen = _listed(api, nid, pid)
    assert seen is not None and slaac["id"] in {ip["subnet_id"] for ip in seen["fixed_ips"]}
    assert api.delete(f"{N}/subnets/{slaac['id']}").status_code == 204
    seen = _listed(api, nid, pid)
    assert seen is not None and slaac["id"] not in {ip["subnet_id"] for ip in seen["fixed_ips"]}

    router = ok(api.post(f"{N}/routers", json={"router": {"name": "watch-router"}}), 201)["router"]
    iface = port(api, nid, fixed_ips=[{"subnet_id": v4["id"]}])
    assert _listed(api, nid, iface["id"]) is not None
    ok(api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"port_id": iface["id"]}))
    seen = _listed(api, nid, iface["id"])
    assert seen is not None
    assert (seen["device_owner"], seen["device_id"]) == ("network:router_interface", router["id"])
    ok(api.put(f"{N}/routers/{router['id']}/remove_router_interface", json={"port_id": iface["id"]}))
    assert _listed(api, nid, iface["id"]) is None  # the interface's port goes with it

    assert api.delete(f"{N}/ports/{pid}").status_code == 204
    assert _listed(api, nid, pid) is None


def test_created_ports_are_listed_from_their_create(api: Api) -> None:
    """A create keeps each new port's JSON: the next list renders none of them,
    and answers the very bytes of the plain render (on SQLite and PostgreSQL)."""
    net = network(api)
    v4 = subnet(api, net["id"], "10.94.0.0/24")
    bodies = [{"network_id": net["id"], "name": f"bulk-{i}", "tags": ["t", f"n{i}"],
               "fixed_ips": [{"subnet_id": v4["id"], "ip_address": f"10.94.0.{10 + i}"}],
               "allowed_address_pairs": [{"ip_address": f"10.94.0.{100 + i}"}],
               "extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "1400"}],
               "binding:host_id": "host-1", "device_owner": "compute:nova", "device_id": f"vm-{i}"}
              for i in range(5)]
    made = ok(api.post(f"{N}/ports", json={"ports": bodies}), 201)["ports"]
    made.append(port(api, net["id"], name="single"))
    fragments = port_list.fragments_of(_net(api))
    whole = next(view for view in fragments._views if "binding:host_id" in view and "tags" in view)
    store = fragments.of(whole)
    assert {p["id"] for p in made} <= set(store)
    assert all(store[p["id"]][0] == p["revision_number"] == 0 for p in made)
    listed = same_as_plain(api, "admin", [("network_id", net["id"])])
    assert sorted(p["name"] for p in listed) == ["bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4", "single"]
    assert [p["id"] for p in listed if p["name"] == "single"] == [made[-1]["id"]]


def test_a_get_port_rule_on_other_attributes_is_applied_to_every_port(fresh_api: Api) -> None:
    """An operator's ``get_port`` that looks at what the narrow rows do not hold
    (``dns_name``) still decides each port, and the answer is still the plain one;
    a rule on a plain column (``name``) likewise."""
    api = fresh_api
    net = network(api, "demo")
    subnet(api, net["id"], "10.95.0.0/24", "demo")
    secret = port(api, net["id"], "demo", name="secret-port", dns_name="secret")
    shown = port(api, net["id"], "demo", name="open-port", dns_name="open")
    assert {p["id"] for p in same_as_plain(api, "demo", [])} >= {secret["id"], shown["id"]}
    path = api.cloud.service("network").policy_path
    path.parent.mkdir(parents=True, exist_ok=True)
    member = "role:reader and project_id:%(project_id)s"
    for rule in (f"role:admin or ({member} and not field:ports:dns_name=secret)",
                 f"role:admin or ({member} and not field:ports:name=secret-port)"):
        path.write_text(f'"get_port": "{rule}"\n')
        ids = {p["id"] for p in same_as_plain(api, "demo", [])}
        assert shown["id"] in ids and secret["id"] not in ids
        assert secret["id"] in {p["id"] for p in same_as_plain(api, "admin", [])}
    path.unlink()
    assert secret["id"] in {p["id"] for p in same_as_plain(api, "demo", [])}
