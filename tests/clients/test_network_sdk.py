"""openstacksdk's network proxy against a running onestack: resources, errors,
pagination, tags, quotas, and what a demo user may not do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import openstack
import openstack.exceptions as exc
import pytest

from tests.clients.test_openstacksdk import unique
from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients


def _connect(info: CloudInfo, monkeypatch: pytest.MonkeyPatch, cloud: str) -> Any:
    """A connection that reads only our clouds.yaml (no OS_* of the environment)."""
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(info.clouds_yaml))
    return openstack.connect(cloud=cloud)


@pytest.fixture
def admin(running_cloud: CloudInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    conn = _connect(running_cloud, monkeypatch, "onestack-admin")
    yield conn
    conn.close()


@pytest.fixture
def demo(running_cloud: CloudInfo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    conn = _connect(running_cloud, monkeypatch, "onestack")
    yield conn
    conn.close()


def test_network_resources_with_the_sdk(demo: Any) -> None:
    net = demo.network.create_network(name=unique("sdk-net"))
    try:
        subnet = demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.82.0.0/28",
                                            name=unique("sdk-sub"))
        assert subnet.gateway_ip == "10.82.0.1"
        ports = [demo.network.create_port(network_id=net.id) for _ in range(3)]
        assert [p.fixed_ips[0]["ip_address"] for p in ports] == ["10.82.0.2", "10.82.0.3", "10.82.0.4"]
        found = list(demo.network.ports(network_id=net.id, fixed_ips=["ip_address=10.82.0.3"]))
        assert [p.id for p in found] == [ports[1].id]
        paged = list(demo.network.ports(network_id=net.id, limit=2, paginated=True))
        assert sorted(p.id for p in paged) == sorted(p.id for p in ports)
        with pytest.raises(exc.ConflictException) as err:
            demo.network.create_port(network_id=net.id, fixed_ips=[{"ip_address": "10.82.0.2"}])
        assert "already allocated" in str(err.value)
        with pytest.raises(exc.BadRequestException):
            demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.82.0.0/29")
        demo.network.set_tags(net, ["a", "b"])
        assert sorted(demo.network.get_network(net.id).tags) == ["a", "b"]
        assert [n.id for n in demo.network.networks(tags="a,b")] == [net.id]
        for p in ports:
            demo.network.delete_port(p)
    finally:
        demo.network.delete_network(net, ignore_missing=True)


def test_router_floating_ip_and_security_group_with_the_sdk(demo: Any) -> None:
    public = demo.network.find_network("public")
    net = demo.network.create_network(name=unique("sdk-net"))
    subnet = demo.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.83.0.0/24")
    router = demo.network.create_router(name=unique("sdk-r"), external_gateway_info={"network_id": public.id})
    demo.network.add_interface_to_router(router, subnet_id=subnet.id)
    group = demo.network.create_security_group(name=unique("sdk-sg"))
    rule = demo.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                   protocol="icmp")
    port = demo.network.create_port(network_id=net.id, security_group_ids=[group.id])
    fip = demo.network.create_ip(floating_network_id=public.id, port_id=port.id)
    try:
        assert fip.router_id == router.id and fip.fixed_ip_address == port.fixed_ips[0]["ip_address"]
        with pytest.raises(exc.ConflictException):
            demo.network.delete_security_group(group)
        with pytest.raises(exc.ConflictException):
            demo.network.create_security_group_rule(security_group_id=group.id, direction="ingress",
                                                    protocol="icmp")
        demo.network.update_ip(fip, port_id=None)
        assert demo.network.get_ip(fip.id).port_id is None
    finally:
        demo.network.delete_ip(fip)
        demo.network.delete_port(port)
        demo.network.delete_security_group_rule(rule)
        demo.network.delete_security_group(group)
        demo.network.remove_interface_from_router(router, subnet_id=subnet.id)
        demo.network.delete_router(router)
        demo.network.delete_network(net)


def test_demo_cannot_touch_other_projects(demo: Any, admin: Any) -> None:
    hidden = admin.network.create_network(name=unique("hidden"))
    try:
        assert hidden.id not in {n.id for n in demo.network.networks()}
        with pytest.raises(exc.NotFoundException):
            demo.network.create_port(network_id=hidden.id)
        with pytest.raises(exc.ForbiddenException):
            demo.network.create_network(name=unique("x"), is_shared=True)
        quota = admin.network.get_quota(demo.current_project_id)
        assert quota.networks == 100 and quota.ports == 500
    finally:
        admin.network.delete_network(hidden)
