"""Networking API: ports - IPAM (order, requested addresses, full subnets,
concurrency), MAC addresses, security groups, port security, binding."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from tests.api._network import N, network, neutron_error, ok, port, subnet
from tests.api.conftest import Api


def _post(api: Api, who: str = "admin", **body: Any) -> Any:
    return api.post(f"{N}/ports", who, json={"port": body})


def test_addresses_come_in_order_and_come_back_after_release(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.30.0.0/29")  # pool .2 - .6
    ports = [port(api, net["id"]) for _ in range(5)]
    assert [p["fixed_ips"][0]["ip_address"] for p in ports] == [f"10.30.0.{i}" for i in range(2, 7)]
    neutron_error(_post(api, network_id=net["id"]), 409, "IpAddressGenerationFailure",
                  f"No more IP addresses available on network {net['id']}.")
    assert api.delete(f"{N}/ports/{ports[2]['id']}").status_code == 204
    again = port(api, net["id"])
    assert again["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.30.0.4"}]


def test_requested_addresses(api: Api) -> None:
    net = network(api)
    sub = subnet(api, net["id"], "10.31.0.0/24")
    first = port(api, net["id"], fixed_ips=[{"ip_address": "10.31.0.50"}])
    assert first["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.31.0.50"}]
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{"ip_address": "10.31.0.50"}]), 409,
                  "IpAddressAlreadyAllocated", f"IP address 10.31.0.50 already allocated in subnet {sub['id']}")
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{"ip_address": "10.99.0.5"}]), 400,
                  "InvalidIpForNetwork",
                  "IP address 10.99.0.5 is not a valid IP for any of the subnets on the specified network.")
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{"subnet_id": sub["id"], "ip_address": "10.99.0.5"}]),
                  400, "InvalidIpForSubnet", "IP address 10.99.0.5 is not a valid IP for the specified subnet.")
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{"ip_address": "10.31.0.255"}]), 400,
                  "InvalidIpForNetwork")
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{}]), 400, "InvalidInput",
                  "Invalid input for operation: IP allocation requires subnet_id or ip_address.")
    neutron_error(_post(api, network_id=net["id"], fixed_ips=[{"ip_address": "x"}]), 400, "HTTPBadRequest",
                  "Invalid input for fixed_ips. Reason: 'x' is not a valid IP address.")
    # nothing half-written: the failed ports left no allocation behind
    used = ok(api.get(f"{N}/network-ip-availabilities/{net['id']}"))["network_ip_availability"]
    assert used["used_ips"] == 1
    moved = ok(api.put(f"{N}/ports/{first['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.31.0.60"}]}}))
    assert moved["port"]["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.31.0.60"}]
    found = ok(api.get(f"{N}/ports?fixed_ips=ip_address=10.31.0.60&fields=id"))["ports"]
    assert found == [{"id": first["id"]}]
    assert ok(api.get(f"{N}/ports?fixed_ips=ip_address_substr=31.0.6&fields=id"))["ports"] == [{"id": first["id"]}]


def test_two_ports_never_get_one_address(api: Api) -> None:
    net = network(api)
    subnet(api, net["id"], "10.32.0.0/27")  # 29 addresses in the pool
    results: list[Any] = []
    lock = threading.Lock()

    def create() -> None:
        r = api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=create) for _ in range(36)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = Counter(r.status_code for r in results)
    assert codes == {201: 29, 409: 7}, codes
    addresses = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in results if r.status_code == 201]
    assert len(set(addresses)) == 29
    for r in results:
        if r.status_code == 409:
            neutron_error(r, 409, "IpAddressGenerationFailure")


def test_mac_addresses(api: Api) -> None:
    net = network(api)
    p = port(api, net["id"])
    assert p["mac_address"].startswith("fa:16:3e:")
    neutron_error(_post(api, network_id=net["id"], mac_address=p["mac_address"]), 409, "MacAddressInUse",
                  f"Unable to complete operation for network {net['id']}. The mac address "
                  f"{p['mac_address']} is in use.")
    neutron_error(_post(api, network_id=net["id"], mac_address="zz"), 400, "HTTPBadRequest",
                  "Invalid input for mac_address. Reason: 'zz' is not a valid MAC address.")
    assert port(api, net["id"], mac_address="FA-16-3E-01-02-03")["mac_address"] == "fa:16:3e:01:02:03"


def test_security_groups_and_port_security(api: Api) -> None:
    net = network(api, "demo")
    subnet(api, net["id"], "10.33.0.0/24", "demo")
    p = port(api, net["id"], "demo")
    groups = ok(api.get(f"{N}/security-groups?name=default", "demo"))["security_groups"]
    assert p["security_groups"] == [groups[0]["id"]] and p["port_security_enabled"] is True
    r = _post(api, "demo", network_id=net["id"], port_security_enabled=False, security_groups=[groups[0]["id"]])
    neutron_error(r, 400, "PortSecurityAndIPRequiredForSecurityGroups",
                  "Port security must be enabled and port must have an IP address in order to use security "
                  "groups.")
    r = api.put(f"{N}/ports/{p['id']}", "demo", json={"port": {"port_security_enabled": False}})
    neutron_error(r, 409, "PortSecurityPortHasSecurityGroup",
                  "Port has security group associated. Cannot disable port security or IP address until "
                  "security group is removed.")
    off = ok(api.put(f"{N}/ports/{p['id']}", "demo", json={"port": {"port_security_enabled": False,
                                                                     "security_groups": []}}))["port"]
    assert off["security_groups"] == [] and off["port_security_enabled"] is False
    r = api.put(f"{N}/ports/{p['id']}", "demo", json={"port": {"allowed_address_pairs": [{"ip_address": "10.33.0.99"}]}})
    neutron_error(r, 409, "AddressPairAndPortSecurityRequired")
    pairs = port(api, net["id"], "demo", allowed_address_pairs=[{"ip_address": "10.33.0.0/28"}])
    assert pairs["allowed_address_pairs"] == [{"ip_address": "10.33.0.0/28", "mac_address": pairs["mac_address"]}]
    missing = "00000000-0000-0000-0000-000000000001"
    neutron_error(_post(api, "demo", network_id=net["id"], security_groups=[missing]), 404,
                  "SecurityGroupNotFound", f"Security group {missing} does not exist")


def test_binding_is_for_admins_and_services(api: Api) -> None:
    net = network(api, "demo")
    subnet(api, net["id"], "10.34.0.0/24", "demo")
    p = port(api, net["id"], "demo")
    assert "binding:host_id" not in p and "binding:vif_type" not in p and p["status"] == "DOWN"
    r = api.put(f"{N}/ports/{p['id']}", "demo", json={"port": {"binding:host_id": "h1"}})
    neutron_error(r, 403, "PolicyNotAuthorized",
                  "(rule:update_port and rule:update_port:binding:host_id) is disallowed by policy")
    bound = ok(api.put(f"{N}/ports/{p['id']}", json={"port": {"binding:host_id": "h1"}}))["port"]
    assert bound["binding:vif_type"] == "bridge" and bound["binding:host_id"] == "h1"
    assert bound["binding:vif_details"] == {"port_filter": True, "connectivity": "l2",
                                            "bridge_name": "brq" + net["id"][:11]}
    mac = api.put(f"{N}/ports/{p['id']}", json={"port": {"mac_address": "fa:16:3e:aa:bb:cc"}})
    neutron_error(mac, 409, "PortBound")
    unbound = ok(api.put(f"{N}/ports/{p['id']}", json={"port": {"binding:host_id": ""}}))["port"]
    assert unbound["binding:vif_type"] == "unbound"


def test_ports_on_other_projects_networks(api: Api) -> None:
    admin_net = network(api)
    subnet(api, admin_net["id"], "10.35.0.0/24")
    neutron_error(_post(api, "demo", network_id=admin_net["id"]), 404, "NetworkNotFound")
    shared = network(api, shared=True)
    subnet(api, shared["id"], "10.35.1.0/24")
    mine = port(api, shared["id"], "demo")
    assert mine["project_id"] != shared["project_id"]
    public = ok(api.get(f"{N}/networks?name=public", "demo"))["networks"][0]
    neutron_error(_post(api, "demo", network_id=public["id"]), 404, "HTTPNotFound",
                  "The resource could not be found.")
    # the network owner sees ports of others on its network; others do not see the owner's ports
    assert mine["id"] in {p["id"] for p in ok(api.get(f"{N}/ports?network_id={shared['id']}"))["ports"]}


def test_router_ports_are_not_deleted_directly(api: Api) -> None:
    router = ok(api.get(f"{N}/routers?name=router1", "demo"))["routers"][0]
    iface = ok(api.get(f"{N}/ports?device_id={router['id']}&device_owner=network:router_interface", "demo"))["ports"][0]
    neutron_error(api.delete(f"{N}/ports/{iface['id']}", "demo"), 409, "ServicePortInUse",
                  f"Port {iface['id']} cannot be deleted directly via the port API: has device owner "
                  "network:router_interface.")


def test_port_update_and_extra_attributes(api: Api) -> None:
    net = network(api)
    subnet(api, net["id"], "10.36.0.0/24")
    p = port(api, net["id"], name="p", dns_name="web1", extra_dhcp_opts=[{"opt_name": "mtu", "opt_value": "1400"}],
             tags=["a", "b"])
    assert p["dns_assignment"] == [{"ip_address": "10.36.0.2", "hostname": "web1", "fqdn": "web1.openstacklocal."}]
    assert p["extra_dhcp_opts"] == [{"opt_name": "mtu", "opt_value": "1400", "ip_version": 4}]
    assert p["tags"] == ["a", "b"]
    r = api.put(f"{N}/ports/{p['id']}", json={"port": {"name": "q", "admin_state_up": False, "device_id": "d1"}})
    q = ok(r)["port"]
    assert (q["name"], q["admin_state_up"], q["device_id"], q["revision_number"]) == ("q", False, "d1", 1)
    neutron_error(api.put(f"{N}/ports/{p['id']}", json={"port": {"network_id": net["id"]}}), 400,
                  "HTTPBadRequest", "Cannot update read-only attribute network_id")
