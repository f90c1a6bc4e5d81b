"""Bad input of issue 8 not covered elsewhere (the rest: test_network_subnets,
_ports, _routers, _security_groups, _networks): Neutron's status and body
exactly, and nothing written."""

from __future__ import annotations

from typing import Any

from tests.api._network import N, name, network, neutron_error, ok, port, subnet
from tests.api.conftest import Api


def test_revision_number_mismatch_on_each_resource(api: Api) -> None:
    """``If-Match: revision_number=N`` is checked on every standard-attribute
    resource (Neutron's revision plugin): 412, and the resource unchanged."""
    net = network(api)
    sub = subnet(api, net["id"], "10.61.0.0/24")
    p = port(api, net["id"])
    router = ok(api.post(f"{N}/routers", json={"router": {"name": name("r")}}), 201)["router"]
    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": name("g")}}),
               201)["security_group"]
    pool = ok(api.post(f"{N}/subnetpools", json={"subnetpool": {
        "name": name("pool"), "prefixes": ["10.62.0.0/16"], "default_prefixlen": 24}}), 201)["subnetpool"]
    for collection, key, item in (("subnets", "subnet", sub), ("ports", "port", p),
                                  ("routers", "router", router), ("security-groups", "security_group", group),
                                  ("subnetpools", "subnetpool", pool)):
        path = f"{N}/{collection}/{item['id']}"
        revision = item["revision_number"]
        r = api.put(path, json={key: {"name": "changed"}},
                    headers={"If-Match": f"revision_number={revision + 7}"})
        neutron_error(r, 412, "RevisionNumberConstraintFailed",
                      f"Constrained to {revision + 7}, but current revision is {revision}")
        current = ok(api.get(path))[key]
        assert (current["name"], current["revision_number"]) == (item["name"], revision), collection
        changed = ok(api.put(path, json={key: {"name": "changed"}},
                             headers={"If-Match": f"revision_number={revision}"}))[key]
        assert changed["revision_number"] == revision + 1, collection
    neutron_error(api.delete(f"{N}/ports/{p['id']}", headers={"If-Match": "revision_number=0"}), 412,
                  "RevisionNumberConstraintFailed", "Constrained to 0, but current revision is 1")
    assert ok(api.get(f"{N}/ports/{p['id']}"))["port"]["id"] == p["id"]


def test_cidrs_and_prefixes(api: Api) -> None:
    net = network(api)
    nid = net["id"]

    def post(**body: Any) -> Any:
        return api.post(f"{N}/subnets", json={"subnet": {"network_id": nid, **body}})

    # neutron_lib's convert_cidr_to_canonical_format: what netaddr cannot read
    for bad in ("10.63.0.0/33", "10.63.0.0/-1", "not-a-cidr"):
        neutron_error(post(cidr=bad, ip_version=4), 400, "InvalidInput",
                      f"Invalid input for operation: {bad} is not in a CIDR format.")
    neutron_error(post(cidr="fd63::/129", ip_version=6), 400, "InvalidInput",
                  "Invalid input for operation: fd63::/129 is not in a CIDR format.")
    # host bits: the subnet is made of the network ("turn the CIDR into a proper subnet")
    made = ok(post(cidr="10.63.1.77/24", ip_version=4), 201)["subnet"]
    assert (made["cidr"], made["gateway_ip"]) == ("10.63.1.0/24", "10.63.1.1")
    made6 = ok(post(cidr="fd63::77/64", ip_version=6), 201)["subnet"]
    assert made6["cidr"] == "fd63::/64"
    assert sorted(s["cidr"] for s in ok(api.get(f"{N}/subnets?network_id={nid}"))["subnets"]) == [
        "10.63.1.0/24", "fd63::/64"]


def test_an_address_that_is_no_host_of_its_subnet(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.64.0.0/24")
    for address in ("10.64.0.0", "10.64.0.255"):  # the network and broadcast addresses
        r = api.post(f"{N}/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
            {"subnet_id": sub["id"], "ip_address": address}]}})
        neutron_error(r, 400, "InvalidIpForSubnet",
                      f"IP address {address} is not a valid IP for the specified subnet.")
    # one good address and one outside: no port, and the good one is still free
    r = api.post(f"{N}/ports", json={"port": {"network_id": net["id"], "fixed_ips": [
        {"ip_address": "10.64.0.20"}, {"ip_address": "10.65.0.20"}]}})
    neutron_error(r, 400, "InvalidIpForNetwork",
                  "IP address 10.65.0.20 is not a valid IP for any of the subnets on the specified network.")
    assert ok(api.get(f"{N}/ports?network_id={net['id']}"))["ports"] == []
    taken = port(api, net["id"], fixed_ips=[{"ip_address": "10.64.0.20"}])
    assert taken["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.64.0.20"}]
