"""The real `openstack` CLI driving the Networking service of a running onestack.

Each `openstack` call costs about two seconds of client start-up, so each test
makes the calls a user would make and checks what the user would look at;
the details are covered by tests/api and the openstacksdk tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.clients.test_identity_cli import osc, osc_json, unique
from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients


def test_defaults_and_multi_tenancy(running_cloud: CloudInfo) -> None:
    info = running_cloud
    hidden = unique("admin-net")
    admin_net = osc_json(info, "network", "create", hidden)
    nets = {n["Name"]: n for n in osc_json(info, "network", "list", cloud="onestack")}
    assert {"public", "private"} <= set(nets) and hidden not in nets
    router = osc_json(info, "router", "show", "router1", cloud="onestack")
    assert router["external_gateway_info"]["network_id"] == nets["public"]["ID"]
    r = osc(info, "port", "create", "--network", admin_net["id"], unique("p"), cloud="onestack", check=False)
    assert r.returncode != 0 and f"No Network found for {admin_net['id']}" in r.stderr
    osc(info, "network", "delete", hidden)


def test_network_subnet_port_life_cycle(running_cloud: CloudInfo) -> None:
    info = running_cloud
    net_name, sub_name = unique("net"), unique("sub")
    osc(info, "network", "create", net_name, cloud="onestack")
    sub = osc_json(info, "subnet", "create", "--network", net_name, "--subnet-range", "10.80.0.0/24",
                   "--allocation-pool", "start=10.80.0.10,end=10.80.0.20", "--dns-nameserver", "10.80.0.2",
                   sub_name, cloud="onestack")
    assert sub["allocation_pools"] == [{"start": "10.80.0.10", "end": "10.80.0.20"}]
    port = osc_json(info, "port", "create", "--network", net_name, "--fixed-ip",
                    f"subnet={sub_name},ip-address=10.80.0.15", unique("port"), cloud="onestack")
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.80.0.15"}]
    r = osc(info, "port", "create", "--network", net_name, "--fixed-ip", "ip-address=10.80.0.15",
            unique("port"), cloud="onestack", check=False)
    assert r.returncode != 0 and "IP address 10.80.0.15 already allocated" in r.stderr
    r = osc(info, "network", "delete", net_name, cloud="onestack", check=False)
    assert r.returncode != 0 and "There are one or more ports still in use" in r.stderr
    osc(info, "port", "delete", port["id"], cloud="onestack")
    osc(info, "network", "delete", net_name, cloud="onestack")


def test_router_and_floating_ip(running_cloud: CloudInfo) -> None:
    info = running_cloud
    net, sub, router = unique("net"), unique("sub"), unique("router")
    osc(info, "network", "create", net, cloud="onestack")
    osc(info, "subnet", "create", "--network", net, "--subnet-range", "10.81.0.0/24", sub, cloud="onestack")
    osc(info, "router", "create", "--external-gateway", "public", router, cloud="onestack")
    osc(info, "router", "add", "subnet", router, sub, cloud="onestack")
    port = osc_json(info, "port", "create", "--network", net, unique("vm"), cloud="onestack")
    fip = osc_json(info, "floating", "ip", "create", "--port", port["id"], "public", cloud="onestack")
    assert fip["floating_ip_address"].startswith("172.24.4.")
    assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    r = osc(info, "router", "delete", router, cloud="onestack", check=False)
    assert r.returncode != 0 and "has ports still attached" in r.stderr
    osc(info, "floating", "ip", "delete", fip["id"], cloud="onestack")
    osc(info, "port", "delete", port["id"], cloud="onestack")
    osc(info, "router", "remove", "subnet", router, sub, cloud="onestack")
    osc(info, "router", "delete", router, cloud="onestack")


def test_security_group_and_subnet_pool(running_cloud: CloudInfo) -> None:
    info = running_cloud
    group = unique("sg")
    osc(info, "security", "group", "create", group, cloud="onestack")
    rule = osc_json(info, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
                    "--remote-ip", "10.0.0.0/8", group, cloud="onestack")
    assert rule["port_range_min"] == 22 and rule["protocol"] == "tcp"
    r = osc(info, "security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
            "--remote-ip", "10.0.0.0/8", group, cloud="onestack", check=False)
    assert r.returncode != 0 and "Security group rule already exists" in r.stderr
    osc(info, "security", "group", "delete", group, cloud="onestack")
    pool = unique("pool")
    osc(info, "subnet", "pool", "create", "--pool-prefix", "10.90.0.0/16", "--default-prefix-length", "26",
        pool, cloud="onestack")
    net = osc_json(info, "network", "create", unique("net"), cloud="onestack")
    sub = osc_json(info, "subnet", "create", "--network", net["id"], "--subnet-pool", pool, unique("sub"),
                   cloud="onestack")
    assert sub["cidr"] == "10.90.0.0/26" and sub["subnetpool_id"]
    r = osc(info, "subnet", "pool", "delete", pool, cloud="onestack", check=False)
    assert r.returncode != 0 and "Subnet pool has existing allocations" in r.stderr
    osc(info, "network", "delete", net["id"], cloud="onestack")
    osc(info, "subnet", "pool", "delete", pool, cloud="onestack")


def test_quota_enforced_and_agents(running_cloud: CloudInfo) -> None:
    info = running_cloud
    demo = osc_json(info, "token", "issue", cloud="onestack")["project_id"]
    osc(info, "quota", "set", "--routers", "1", demo)
    r = osc(info, "router", "create", unique("r"), cloud="onestack", check=False)
    assert r.returncode != 0 and "Quota exceeded for resources: ['router']" in r.stderr
    osc(info, "quota", "set", "--routers", "10", demo)
    # no host runs a network agent until the data plane exists: an empty list, not an error
    assert osc_json(info, "network", "agent", "list") == []


def test_a_servers_port_changed_through_networking_shows_in_compute(running_cloud: CloudInfo,
                                                                     tmp_path: Path) -> None:
    """As Neutron notifies Nova: a floating IP set on a server's port through
    `openstack floating ip create --port` shows among the server's addresses,
    and the port deleted with `openstack port delete` (by an admin) leaves its interfaces and
    addresses (the server list's view: Compute's cache, which only these events
    bring up to date)."""
    from onestack.compute.virt.fake import _write_qcow2
    from tests.clients.test_compute_cli import Rest

    info = running_cloud
    rest = Rest(info)
    disk = tmp_path / "disk.qcow2"
    _write_qcow2(disk, 1 << 30)
    image, name = unique("guest"), unique("vm")
    osc(info, "image", "create", "--file", str(disk), "--disk-format", "qcow2", "--container-format", "bare",
        image, cloud="onestack")
    try:
        osc(info, "server", "create", "--image", image, "--flavor", "m1.nano", "--network", "private",
            "--wait", name, cloud="onestack")
        server = rest.server(name)
        (port,) = osc_json(info, "port", "list", "--server", name, cloud="onestack")
        fip = osc_json(info, "floating", "ip", "create", "--port", port["ID"], "public", cloud="onestack")

        def addresses() -> list[tuple[str, str]]:
            return [(a["addr"], a["OS-EXT-IPS:type"]) for items in rest.server(name)["addresses"].values()
                    for a in items]

        wait_until(lambda: (fip["floating_ip_address"], "floating") in addresses())
        # (Neutron's policy lets only an admin or a service delete a server's port)
        r = osc(info, "port", "delete", port["ID"], cloud="onestack", check=False)
        assert r.returncode != 0 and "rule:delete_port is disallowed by policy" in r.stderr
        osc(info, "port", "delete", port["ID"])
        wait_until(lambda: addresses() == [])
        r = httpx.get(f"{rest.url}/servers/{server['id']}/os-interface", headers=rest.headers, timeout=30)
        assert r.status_code == 200 and r.json() == {"interfaceAttachments": []}, r.text
        osc(info, "floating", "ip", "delete", fip["id"], cloud="onestack")
    finally:
        osc(info, "server", "delete", "--wait", name, cloud="onestack", check=False)
        osc(info, "image", "delete", image, cloud="onestack", check=False)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{check} never became true"
        time.sleep(0.1)
