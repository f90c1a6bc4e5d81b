"""Networking API: routers (gateway, interfaces, routes), floating IPs
(associate, re-associate, disassociate, port_details), port forwarding."""

from __future__ import annotations

from typing import Any

from tests.api._network import (
    N,
    as_token,
    name,
    network,
    neutron_error,
    ok,
    other_member,
    port,
    subnet,
)
from tests.api.conftest import Api


def _public(api: Api) -> dict[str, Any]:
    return dict(ok(api.get(f"{N}/networks?name=public"))["networks"][0])


def _router(api: Api, who: str = "admin", **body: Any) -> dict[str, Any]:
    body.setdefault("name", name("r"))
    return dict(ok(api.post(f"{N}/routers", who, json={"router": body}), 201)["router"])


def _topology(api: Api, who: str, cidr: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A network with a subnet behind a new router with a gateway on ``public``."""
    net = network(api, who)
    sub = subnet(api, net["id"], cidr, who)
    router = _router(api, who, external_gateway_info={"network_id": _public(api)["id"]})
    r = api.put(f"{N}/routers/{router['id']}/add_router_interface", who, json={"subnet_id": sub["id"]})
    ok(r)
    return net, sub, router


def test_router_gateway_and_interfaces(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.40.0.0/24")
    router = _router(api, external_gateway_info={"network_id": _public(api)["id"], "enable_snat": False})
    info = router["external_gateway_info"]
    assert info["enable_snat"] is False and info["external_fixed_ips"][0]["ip_address"].startswith("172.24.4.")
    r = api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    body = ok(r)
    assert body["subnet_id"] == sub["id"] and body["subnet_ids"] == [sub["id"]] and body["id"] == router["id"]
    iface = ok(api.get(f"{N}/ports/{body['port_id']}"))["port"]
    assert iface["device_owner"] == "network:router_interface" and iface["fixed_ips"][0]["ip_address"] == "10.40.0.1"
    r = api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]})
    neutron_error(r, 400, "BadRequest", f"Bad router request: Router already has a port on subnet {sub['id']}.")
    other = network(api)
    overlapping = subnet(api, other["id"], "10.40.0.0/25")
    r = api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": overlapping["id"]})
    neutron_error(r, 400, "BadRequest",
                  f"Bad router request: Cidr 10.40.0.0/25 of subnet {overlapping['id']} overlaps with cidr "
                  f"10.40.0.0/24 of subnet {sub['id']}.")
    neutron_error(api.delete(f"{N}/routers/{router['id']}"), 409, "RouterInUse",
                  f"Router {router['id']} has ports still attached: {body['port_id']}")
    neutron_error(api.delete(f"{N}/subnets/{sub['id']}"), 409, "SubnetInUse")
    r = api.put(f"{N}/routers/{router['id']}/add_router_interface", json={})
    neutron_error(r, 400, "BadRequest", "Bad router request: Either subnet_id or port_id must be specified.")
    r = api.put(f"{N}/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]})
    assert ok(r)["port_id"] == body["port_id"]
    neutron_error(api.get(f"{N}/ports/{body['port_id']}"), 404, "PortNotFound")
    r = api.put(f"{N}/routers/{router['id']}/remove_router_interface", json={"subnet_id": sub["id"]})
    neutron_error(r, 404, "RouterInterfaceNotFoundForSubnet",
                  f"Router {router['id']} has no interface on subnet {sub['id']}")
    gw_port = info["external_fixed_ips"][0]["ip_address"]
    cleared = ok(api.put(f"{N}/routers/{router['id']}", json={"router": {"external_gateway_info": {}}}))["router"]
    assert cleared["external_gateway_info"] is None
    assert not ok(api.get(f"{N}/ports?fixed_ips=ip_address={gw_port}"))["ports"]
    assert api.delete(f"{N}/routers/{router['id']}").status_code == 204


def test_gateway_on_a_non_external_network(api: Api) -> None:
    net = network(api)
    r = api.post(f"{N}/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}})
    neutron_error(r, 400, "BadRequest", f"Bad router request: Network {net['id']} is not an external network.")
    r = api.post(f"{N}/routers", "demo", json={"router": {"external_gateway_info": {
        "network_id": _public(api)["id"], "enable_snat": False}}})
    neutron_error(r, 403, "PolicyNotAuthorized")


def test_static_routes(api: Api) -> None:
    net, sub, router = _topology(api, "demo", "10.41.0.0/24")
    routes = [{"destination": "10.50.0.0/16", "nexthop": "10.41.0.10"}]
    done = ok(api.put(f"{N}/routers/{router['id']}", "demo", json={"router": {"routes": routes}}))["router"]
    assert done["routes"] == routes
    bad = [{"destination": "10.51.0.0/16", "nexthop": "192.168.99.1"}]
    r = api.put(f"{N}/routers/{router['id']}", "demo", json={"router": {"routes": bad}})
    neutron_error(r, 400, "InvalidRoutes",
                  f"Invalid format for routes: {bad}, the nexthop is not connected with router")
    more = ok(api.put(f"{N}/routers/{router['id']}/add_extraroutes", "demo",
                      json={"router": {"routes": [{"destination": "10.52.0.0/16", "nexthop": "10.41.0.11"}]}}))
    assert len(more["router"]["routes"]) == 2
    r = api.put(f"{N}/routers/{router['id']}/remove_router_interface", "demo", json={"subnet_id": sub["id"]})
    neutron_error(r, 409, "RouterInterfaceInUseByRoute")


def test_floating_ips(api: Api) -> None:
    net, sub, router = _topology(api, "demo", "10.42.0.0/24")
    vm = port(api, net["id"], "demo")
    public = _public(api)
    fip = ok(api.post(f"{N}/floatingips", "demo", json={"floatingip": {"floating_network_id": public["id"]}}),
             201)["floatingip"]
    assert fip["status"] == "DOWN" and fip["port_id"] is None and fip["port_details"] is None
    assert fip["floating_ip_address"].startswith("172.24.4.")
    r = api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": vm["id"]}})
    assoc = ok(r)["floatingip"]
    assert assoc["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"] and assoc["router_id"] == router["id"]
    assert assoc["port_details"]["mac_address"] == vm["mac_address"]
    second = ok(api.post(f"{N}/floatingips", "demo", json={"floatingip": {"floating_network_id": public["id"]}}),
                201)["floatingip"]
    r = api.put(f"{N}/floatingips/{second['id']}", "demo", json={"floatingip": {"port_id": vm["id"]}})
    neutron_error(r, 409, "FloatingIPPortAlreadyAssociated")
    vm2 = port(api, net["id"], "demo")
    moved = ok(api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": vm2["id"]}}))
    assert moved["floatingip"]["port_id"] == vm2["id"]
    off = ok(api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": None}}))
    assert off["floatingip"]["port_id"] is None and off["floatingip"]["router_id"] is None
    # a port on a network the router does not reach
    lonely = network(api, "demo")
    subnet(api, lonely["id"], "10.43.0.0/24", "demo")
    far = port(api, lonely["id"], "demo")
    r = api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": far["id"]}})
    lonely_sub = far["fixed_ips"][0]["subnet_id"]
    neutron_error(r, 404, "ExternalGatewayForFloatingIPNotFound",
                  f"External network {public['id']} is not reachable from subnet {lonely_sub}.  Therefore, "
                  f"cannot associate Port {far['id']} with a Floating IP.")
    r = api.post(f"{N}/floatingips", "demo", json={"floatingip": {"floating_network_id": net["id"]}})
    neutron_error(r, 400, "BadRequest", f"Bad floatingip request: Network {net['id']} is not a valid external network.")
    # deleting the port disassociates its floating IP
    api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": vm["id"]}})
    assert api.delete(f"{N}/ports/{vm['id']}", "demo").status_code == 204
    assert ok(api.get(f"{N}/floatingips/{fip['id']}", "demo"))["floatingip"]["port_id"] is None
    ok(api.put(f"{N}/floatingips/{second['id']}", "demo", json={"floatingip": {"port_id": vm2["id"]}}))
    neutron_error(api.put(f"{N}/routers/{router['id']}", "demo", json={"router": {"external_gateway_info": {}}}),
                  409, "RouterExternalGatewayInUseByFloatingIp",
                  f"Gateway cannot be updated for router {router['id']}, since a gateway to external network "
                  f"{public['id']} is required by one or more floating IPs.")
    for f in (fip, second):
        assert api.delete(f"{N}/floatingips/{f['id']}", "demo").status_code == 204


def test_floating_ip_on_another_projects_port(api: Api) -> None:
    net, _sub, _router_ = _topology(api, "demo", "10.44.0.0/24")
    theirs = port(api, net["id"], "demo")
    third = other_member(api)
    public = _public(api)
    r = as_token(api, third, "POST", f"{N}/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": theirs["id"]}})
    neutron_error(r, 404, "PortNotFound", f"Port {theirs['id']} could not be found.")


def test_port_forwarding(api: Api) -> None:
    net, _sub, _router_ = _topology(api, "demo", "10.45.0.0/24")
    vm = port(api, net["id"], "demo")
    public = _public(api)
    fip = ok(api.post(f"{N}/floatingips", "demo", json={"floatingip": {"floating_network_id": public["id"]}}),
             201)["floatingip"]
    base = f"{N}/floatingips/{fip['id']}/port_forwardings"
    body = {"protocol": "tcp", "internal_port_id": vm["id"], "internal_ip_address": vm["fixed_ips"][0]["ip_address"],
            "internal_port": 22, "external_port": 2222}
    pf = ok(api.post(base, "demo", json={"port_forwarding": body}), 201)["port_forwarding"]
    assert pf["external_port"] == 2222 and pf["internal_port_range"] == "22:22"
    neutron_error(api.post(base, "demo", json={"port_forwarding": {**body, "internal_port": 23}}), 400,
                  "BadRequest", "Bad port_forwarding request: There is a port collision with the "
                  "external_port_range. The following ranges collide: 2222:2222 and 2222:2222.")
    r = api.put(f"{N}/floatingips/{fip['id']}", "demo", json={"floatingip": {"port_id": vm["id"]}})
    neutron_error(r, 409, "FipInUseByPortForwarding",
                  f"Floating IP {fip['id']} in use by Port Forwarding resources.")
    listed = ok(api.get(base, "demo"))["port_forwardings"]
    assert [p["id"] for p in listed] == [pf["id"]]
    shown = ok(api.get(f"{N}/floatingips/{fip['id']}", "demo"))["floatingip"]
    assert shown["port_forwardings"][0]["id"] == pf["id"]
    assert api.delete(f"{base}/{pf['id']}", "demo").status_code == 204
    neutron_error(api.get(f"{base}/{pf['id']}", "demo"), 404, "PortForwardingNotFound")
