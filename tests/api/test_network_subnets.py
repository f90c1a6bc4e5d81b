"""Networking API: subnets (IPv4, IPv6 modes, pools, gateway, validation),
subnet pools and address scopes."""

from __future__ import annotations

from tests.api._network import N, name, network, neutron_error, ok, port, subnet
from tests.api.conftest import Api


def _post(api: Api, who: str = "admin", **body: object) -> object:
    return api.post(f"{N}/subnets", who, json={"subnet": body})


def test_ipv4_defaults(api: Api) -> None:
    net = network(api, "demo")
    sub = subnet(api, net["id"], "10.20.0.5/24", "demo", dns_nameservers=["10.20.0.53"],
                 host_routes=[{"destination": "10.30.0.0/16", "nexthop": "10.20.0.254"}])
    assert sub["cidr"] == "10.20.0.0/24" and sub["gateway_ip"] == "10.20.0.1"
    assert sub["allocation_pools"] == [{"start": "10.20.0.2", "end": "10.20.0.254"}]
    assert sub["enable_dhcp"] is True and sub["ipv6_ra_mode"] is None and sub["router:external"] is False
    assert sub["dns_nameservers"] == ["10.20.0.53"]
    net_after = ok(api.get(f"{N}/networks/{net['id']}", "demo"))["network"]
    assert net_after["subnets"] == [sub["id"]] and net_after["revision_number"] == net["revision_number"] + 1


def test_gateway_and_pools(api: Api) -> None:
    net = network(api)
    nogw = subnet(api, net["id"], "10.21.0.0/29", gateway_ip=None)
    assert nogw["gateway_ip"] is None
    assert nogw["allocation_pools"] == [{"start": "10.21.0.1", "end": "10.21.0.6"}]
    mid = subnet(api, net["id"], "10.21.1.0/28", gateway_ip="10.21.1.5")
    assert mid["allocation_pools"] == [{"start": "10.21.1.1", "end": "10.21.1.4"},
                                       {"start": "10.21.1.6", "end": "10.21.1.14"}]
    cidr = "10.21.2.0/24"
    r = _post(api, network_id=net["id"], cidr=cidr, ip_version=4,
              allocation_pools=[{"start": "10.21.2.1", "end": "10.21.2.10"}])
    neutron_error(r, 409, "GatewayConflictWithAllocationPools",
                  "Gateway ip 10.21.2.1 conflicts with allocation pool 10.21.2.1-10.21.2.10.")
    r = _post(api, network_id=net["id"], cidr=cidr, ip_version=4,
              allocation_pools=[{"start": "10.21.2.10", "end": "10.21.3.10"}])
    neutron_error(r, 400, "OutOfBoundsAllocationPool",
                  "The allocation pool 10.21.2.10-10.21.3.10 spans beyond the subnet cidr 10.21.2.0/24.")
    r = _post(api, network_id=net["id"], cidr=cidr, ip_version=4,
              allocation_pools=[{"start": "10.21.2.10", "end": "10.21.2.20"},
                                {"start": "10.21.2.15", "end": "10.21.2.30"}])
    neutron_error(r, 409, "OverlappingAllocationPools",
                  "Found overlapping allocation pools: 10.21.2.10-10.21.2.20 10.21.2.15-10.21.2.30 for "
                  "subnet 10.21.2.0/24.")
    r = _post(api, network_id=net["id"], cidr=cidr, ip_version=4, gateway_ip="10.21.2.0")
    neutron_error(r, 400, "InvalidInput", "Invalid input for operation: Gateway is not valid on subnet.")
    # a gateway outside the subnet is accepted, as Neutron accepts it (an on-link router)
    off = subnet(api, net["id"], cidr, gateway_ip="10.99.0.1")
    assert off["gateway_ip"] == "10.99.0.1"
    assert off["allocation_pools"] == [{"start": "10.21.2.1", "end": "10.21.2.254"}]


def test_bad_subnets(api: Api) -> None:
    net = network(api)
    subnet(api, net["id"], "10.22.0.0/24")
    nid = net["id"]
    neutron_error(_post(api, network_id=nid, cidr="10.22.0.0/25", ip_version=4), 400, "InvalidInput",
                  f"Invalid input for operation: Requested subnet with cidr: 10.22.0.0/25 for network: "
                  f"{nid} overlaps with another subnet.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.1.300/24", ip_version=4), 400, "InvalidInput",
                  "Invalid input for operation: 10.22.1.300/24 is not in a CIDR format.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.2.0/24", ip_version=6), 400, "InvalidInput",
                  "Invalid input for operation: cidr '10.22.2.0/24' does not match the ip_version '6'.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.3.0/32", ip_version=4), 400, "InvalidInput",
                  "Invalid input for operation: Subnet has a prefix length that is incompatible with DHCP "
                  "service enabled.")
    neutron_error(_post(api, network_id=nid, ip_version=4), 400, "BadRequest",
                  "Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.4.0/24"), 400, "HTTPBadRequest",
                  "Failed to parse request. Required attribute 'ip_version' not specified")
    neutron_error(_post(api, network_id=nid, cidr="10.22.4.0/24", ip_version=5), 400, "HTTPBadRequest",
                  "Invalid input for ip_version. Reason: 5 is not in valid_values.")
    neutron_error(_post(api, network_id=nid, cidr="0.0.0.0/0", ip_version=4, enable_dhcp=False), 400,
                  "InvalidInput", "Invalid input for operation: 0 is not allowed as CIDR prefix length.")
    missing = "00000000-0000-0000-0000-000000000000"
    neutron_error(_post(api, network_id=missing, cidr="10.22.5.0/24", ip_version=4), 404,
                  "NetworkNotFound", f"Network {missing} could not be found.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.6.0/24", ip_version=4,
                        dns_nameservers=["1.1.1.1"] * 2), 400, "HTTPBadRequest",
                  "Invalid input for dns_nameservers. Reason: Duplicate nameserver '1.1.1.1'.")
    neutron_error(_post(api, network_id=nid, cidr="10.22.6.0/24", ip_version=4, gateway_ip="010.22.6.1"),
                  400, "HTTPBadRequest", "Invalid input for gateway_ip. Reason: '010.22.6.1' is not an "
                  "accepted IP address, '10.22.6.1' is recommended.")
    # nothing half-written
    assert len(ok(api.get(f"{N}/subnets?network_id={nid}"))["subnets"]) == 1


def test_demo_cannot_use_others_networks(api: Api) -> None:
    admin_net = network(api)
    neutron_error(_post(api, "demo", network_id=admin_net["id"], cidr="10.23.0.0/24", ip_version=4), 404,
                  "NetworkNotFound")
    shared = network(api, shared=True)
    neutron_error(_post(api, "demo", network_id=shared["id"], cidr="10.23.1.0/24", ip_version=4), 403,
                  "PolicyNotAuthorized", "rule:create_subnet is disallowed by policy")
    public = ok(api.get(f"{N}/networks?name=public", "demo"))["networks"][0]
    neutron_error(_post(api, "demo", network_id=public["id"], cidr="10.23.2.0/24", ip_version=4), 404,
                  "HTTPNotFound", "The resource could not be found.")


def test_ipv6_modes(api: Api) -> None:
    net = network(api)
    slaac = subnet(api, net["id"], "2001:db8:1::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    assert slaac["gateway_ip"] == "2001:db8:1::1"
    assert slaac["allocation_pools"] == [{"start": "2001:db8:1::2", "end": "2001:db8:1:0:ffff:ffff:ffff:ffff"}]
    stateful = subnet(api, net["id"], "2001:db8:2::/64", ipv6_ra_mode="dhcpv6-stateful",
                      ipv6_address_mode="dhcpv6-stateful")
    p = port(api, net["id"], mac_address="fa:16:3e:00:00:01")
    addresses = {ip["subnet_id"]: ip["ip_address"] for ip in p["fixed_ips"]}
    assert addresses[slaac["id"]] == "2001:db8:1:0:f816:3eff:fe00:1"
    assert addresses[stateful["id"]] == "2001:db8:2::2"
    r = _post(api, network_id=net["id"], cidr="2001:db8:3::/64", ipv6_ra_mode="slaac",
              ipv6_address_mode="dhcpv6-stateful", ip_version=6)
    neutron_error(r, 400, "InvalidInput",
                  "Invalid input for operation: ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to "
                  "'dhcpv6-stateful' is not valid. If both attributes are set, they must be the same value.")
    r = _post(api, network_id=net["id"], cidr="2001:db8:4::/80", ipv6_address_mode="slaac", ip_version=6)
    neutron_error(r, 400, "InvalidInput",
                  "Invalid input for operation: Invalid CIDR 2001:db8:4::/80 for IPv6 address mode. OpenStack "
                  "uses the EUI-64 address format, which requires the prefix to be /64.")
    r = _post(api, network_id=net["id"], cidr="10.24.0.0/24", ip_version=4, ipv6_ra_mode="slaac")
    neutron_error(r, 400, "InvalidInput",
                  "Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4.")
    # a new SLAAC subnet gives existing ports their address on it
    later = subnet(api, net["id"], "2001:db8:5::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    again = ok(api.get(f"{N}/ports/{p['id']}"))["port"]
    assert {"subnet_id": later["id"], "ip_address": "2001:db8:5:0:f816:3eff:fe00:1"} in again["fixed_ips"]


def test_update_and_delete(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.25.0.0/24")
    r = api.put(f"{N}/subnets/{sub['id']}", json={"subnet": {"name": "s2", "gateway_ip": "10.25.0.254",
                                                              "allocation_pools": [{"start": "10.25.0.10",
                                                                                    "end": "10.25.0.20"}]}})
    updated = ok(r)["subnet"]
    assert updated["gateway_ip"] == "10.25.0.254" and updated["revision_number"] == 1
    assert updated["allocation_pools"] == [{"start": "10.25.0.10", "end": "10.25.0.20"}]
    neutron_error(api.put(f"{N}/subnets/{sub['id']}", json={"subnet": {"cidr": "10.26.0.0/24"}}), 400,
                  "HTTPBadRequest", "Cannot update read-only attribute cidr")
    neutron_error(api.put(f"{N}/subnets/{sub['id']}", json={"subnet": {"gateway_ip": "10.25.0.15"}}), 409,
                  "GatewayConflictWithAllocationPools")
    p = port(api, net["id"])
    neutron_error(api.delete(f"{N}/subnets/{sub['id']}"), 409, "SubnetInUse",
                  f"Unable to complete operation on subnet {sub['id']}: One or more ports have an IP "
                  "allocation from this subnet.")
    assert api.delete(f"{N}/ports/{p['id']}").status_code == 204
    assert api.delete(f"{N}/subnets/{sub['id']}").status_code == 204


def test_subnet_pools_and_address_scopes(api: Api) -> None:
    scope = ok(api.post(f"{N}/address-scopes", json={"address_scope": {"name": name(), "ip_version": 4}}),
               201)["address_scope"]
    assert set(scope) == {"id", "name", "tenant_id", "project_id", "shared", "ip_version"}
    r = api.post(f"{N}/subnetpools", json={"subnetpool": {
        "name": name(), "prefixes": ["10.200.0.0/16"], "default_prefixlen": 24, "address_scope_id": scope["id"]}})
    pool = ok(r, 201)["subnetpool"]
    assert pool["min_prefixlen"] == 8 and pool["max_prefixlen"] == 32 and pool["ip_version"] == 4
    net = network(api)
    first = ok(_post(api, network_id=net["id"], subnetpool_id=pool["id"], ip_version=4), 201)["subnet"]
    second = ok(_post(api, network_id=net["id"], subnetpool_id=pool["id"], ip_version=4, prefixlen=26),
                201)["subnet"]
    assert first["cidr"] == "10.200.0.0/24" and second["cidr"] == "10.200.1.0/26"
    assert first["subnetpool_id"] == pool["id"]
    assert ok(api.get(f"{N}/networks/{net['id']}"))["network"]["ipv4_address_scope"] == scope["id"]
    r = _post(api, network_id=net["id"], subnetpool_id=pool["id"], ip_version=4, prefixlen=7)
    neutron_error(r, 400, "MinPrefixSubnetAllocationError",
                  "Unable to allocate subnet with prefix length 7, minimum allowed prefix is 8.")
    r = _post(api, network_id=net["id"], subnetpool_id=pool["id"], ip_version=4, cidr="10.201.0.0/24")
    neutron_error(r, 409, "SubnetAllocationError",
                  "Failed to allocate subnet: Cannot allocate requested subnet from the available set of "
                  "prefixes.")
    r = api.post(f"{N}/subnetpools", json={"subnetpool": {"name": name(), "prefixes": ["10.0.0.0/8", "fd00::/8"]}})
    neutron_error(r, 400, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    r = api.post(f"{N}/subnetpools", json={"subnetpool": {"name": name(), "prefixes": ["10.0.0.0/8"],
                                                          "min_prefixlen": 20, "max_prefixlen": 16}})
    neutron_error(r, 400, "IllegalSubnetPoolPrefixBounds",
                  "Illegal prefix bounds: min_prefixlen=20, max_prefixlen=16.")
    neutron_error(api.delete(f"{N}/subnetpools/{pool['id']}"), 400, "SubnetPoolDeleteError",
                  "Unable to delete subnet pool: Subnet pool has existing allocations.")
    neutron_error(api.delete(f"{N}/address-scopes/{scope['id']}"), 409, "AddressScopeInUse")
    r = api.put(f"{N}/subnetpools/{pool['id']}/add_prefixes", json={"prefixes": ["10.201.0.0/16"]})
    assert ok(r) == {"prefixes": ["10.200.0.0/15"]}  # compacted, as Neutron does
