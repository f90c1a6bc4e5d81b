"""Networking tells Compute what happens to a server's ports, as Neutron's Nova
notifier does (``os-server-external-events``): a port deleted through the
Networking API leaves the server's interfaces and addresses; a fixed IP added
or a floating IP associated through it shows in the server's addresses; a
port going ACTIVE is ``network-vif-plugged``. Compute's in-memory driver, the
real Networking service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from onestack.network import dataplane
from onestack.network.service import ports as port_service
from tests.api.compute.support import (
    Env,
    S,
    V,
    create_network,
    eventually,
    ports_of,
    show,
)

N = "/networking/v2.0"


@pytest.fixture
def heard(env: Env) -> Iterator[list[dataplane.ServerEvent]]:
    """The events Networking publishes while the test runs (besides Compute's listener)."""
    events: list[dataplane.ServerEvent] = []
    hub = env.api.cloud.service("network").server_events
    listener = events.extend
    hub.subscribe(listener)
    try:
        yield events
    finally:
        hub.listeners.remove(listener)


def settled(env: Env) -> None:
    assert env.api.cloud.service("network").server_events.wait_idle(10)


def interfaces(env: Env, server_id: str) -> list[str]:
    r = env.api.get(f"{S}/{server_id}/os-interface", headers=V)
    assert r.status_code == 200, r.text
    return [i["port_id"] for i in r.json()["interfaceAttachments"]]


def addresses(env: Env, server_id: str) -> dict[str, list[tuple[str, str]]]:
    """The server's addresses as the list view shows them: Compute's cache, which
    only Networking's events bring up to date (a show reads the ports again)."""
    r = env.api.get(f"{S}/detail", headers=V)
    assert r.status_code == 200, r.text
    (server,) = [s for s in r.json()["servers"] if s["id"] == server_id]
    return {net: [(a["addr"], a["OS-EXT-IPS:type"]) for a in items]
            for net, items in server["addresses"].items()}


def test_deleting_a_servers_port_removes_the_interface(env: Env, server: dict[str, Any],
                                                       heard: list[dataplane.ServerEvent]) -> None:
    sid = server["id"]
    other = create_network(env.api, "events-second", "10.3.0.0/24")
    r = env.api.post(f"{S}/{sid}/os-interface", headers=V, json={"interfaceAttachment": {
        "net_id": other["id"], "fixed_ips": [{"ip_address": "10.3.0.50"}]}})
    assert r.status_code == 200, r.text
    port_id = r.json()["interfaceAttachment"]["port_id"]
    eventually(lambda: port_id in interfaces(env, sid))
    eventually(lambda: "events-second" in addresses(env, sid))
    (first,) = [p["id"] for p in ports_of(env, sid) if p["id"] != port_id]
    # the user deletes the port through Networking, not Compute
    assert env.api.delete(f"{N}/ports/{port_id}").status_code == 204
    settled(env)
    assert dataplane.ServerEvent(dataplane.VIF_DELETED, sid, port_id) in heard
    assert interfaces(env, sid) == [first]
    assert "events-second" not in addresses(env, sid)  # Compute's cache was refreshed
    assert [n for n in addresses(env, sid)] == [n for n in server["addresses"]]
    # and its NIC left the guest (Nova detaches it on network-vif-deleted)
    eventually(lambda: port_id not in env.driver.instances[sid].vifs)
    assert [p for p in env.driver.instances[sid].vifs] == [first]


def test_network_vif_deleted_from_outside_unplugs_the_nic(env: Env, server: dict[str, Any]) -> None:
    """``os-server-external-events`` as real Neutron sends it: the port is gone
    from Networking first (here with Compute not listening), then the event
    names it in its tag. A port the server still has is not unplugged."""
    sid = server["id"]
    other = create_network(env.api, "events-outside", "10.4.0.0/24")
    r = env.api.post(f"{S}/{sid}/os-interface", headers=V,
                     json={"interfaceAttachment": {"net_id": other["id"]}})
    assert r.status_code == 200, r.text
    port_id = r.json()["interfaceAttachment"]["port_id"]
    eventually(lambda: port_id in env.driver.instances[sid].vifs)
    (first,) = [p["id"] for p in ports_of(env, sid) if p["id"] != port_id]
    hub = env.api.cloud.service("network").server_events
    listening = list(hub.listeners)
    hub.listeners.clear()
    try:
        assert env.api.delete(f"{N}/ports/{port_id}").status_code == 204
        settled(env)
    finally:
        hub.listeners.extend(listening)
    assert port_id in env.driver.instances[sid].vifs  # nobody told Compute yet

    def event(port: str) -> Any:
        return env.api.post("/compute/v2.1/os-server-external-events", headers=V, json={
            "events": [{"server_uuid": sid, "name": "network-vif-deleted", "tag": port}]})

    r = event(first)  # still there: the cache is read again, nothing unplugged
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [{"server_uuid": sid, "name": "network-vif-deleted",
                                   "tag": first, "status": "completed", "code": 200}]
    r = event(port_id)
    assert r.status_code == 200, r.text
    eventually(lambda: port_id not in env.driver.instances[sid].vifs)
    assert list(env.driver.instances[sid].vifs) == [first]
    assert interfaces(env, sid) == [first]
    assert env.api.delete(f"{N}/networks/{other['id']}").status_code == 204


def test_a_fixed_ip_added_through_networking_shows_in_the_server(
        env: Env, server: dict[str, Any], heard: list[dataplane.ServerEvent]) -> None:
    sid = server["id"]
    (port,) = ports_of(env, sid)
    net_name = next(iter(server["addresses"]))
    before = addresses(env, sid)[net_name]
    subnet = port["fixed_ips"][0]["subnet_id"]
    body = {"port": {"fixed_ips": [*port["fixed_ips"], {"subnet_id": subnet, "ip_address": "10.10.0.222"}]}}
    r = env.api.put(f"{N}/ports/{port['id']}", json=body)
    assert r.status_code == 200, r.text
    settled(env)
    assert heard == [dataplane.ServerEvent(dataplane.NETWORK_CHANGED, sid, port["id"])]
    assert sorted(addresses(env, sid)[net_name]) == sorted([*before, ("10.10.0.222", "fixed")])
    # a port update that changes no address is no event
    heard.clear()
    assert env.api.put(f"{N}/ports/{port['id']}", json={"port": {"name": "renamed"}}).status_code == 200
    settled(env)
    assert heard == []


def test_a_floating_ip_associated_through_networking_shows_in_the_server(
        env: Env, server: dict[str, Any], heard: list[dataplane.ServerEvent]) -> None:
    sid = server["id"]
    (port,) = ports_of(env, sid)
    api = env.api
    public = api.get(f"{N}/networks?name=public").json()["networks"][0]
    router = api.post(f"{N}/routers", json={"router": {
        "name": "events-router", "external_gateway_info": {"network_id": public["id"]}}}).json()["router"]
    subnet = port["fixed_ips"][0]["subnet_id"]
    assert api.put(f"{N}/routers/{router['id']}/add_router_interface",
                   json={"subnet_id": subnet}).status_code == 200
    fip = None
    try:
        r = api.post(f"{N}/floatingips", json={"floatingip": {
            "floating_network_id": public["id"], "port_id": port["id"]}})
        assert r.status_code == 201, r.text
        fip = r.json()["floatingip"]
        settled(env)
        assert dataplane.ServerEvent(dataplane.NETWORK_CHANGED, sid, port["id"]) in heard
        net_name = next(iter(server["addresses"]))
        assert (fip["floating_ip_address"], "floating") in addresses(env, sid)[net_name]
        # disassociated: gone from the server's addresses
        heard.clear()
        r = api.put(f"{N}/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
        assert r.status_code == 200, r.text
        settled(env)
        assert heard == [dataplane.ServerEvent(dataplane.NETWORK_CHANGED, sid, port["id"])]
        assert (fip["floating_ip_address"], "floating") not in addresses(env, sid)[net_name]
    finally:
        if fip is not None:
            api.delete(f"{N}/floatingips/{fip['id']}")
        api.put(f"{N}/routers/{router['id']}/remove_router_interface", json={"subnet_id": subnet})
        api.delete(f"{N}/routers/{router['id']}")


def test_port_status_plugged_and_unplugged_only_for_servers(env: Env, server: dict[str, Any],
                                                            heard: list[dataplane.ServerEvent]) -> None:
    sid = server["id"]
    (port,) = ports_of(env, sid)
    loose = env.api.post(f"{N}/ports", json={"port": {"network_id": env.network_id}}).json()["port"]
    net = env.api.cloud.service("network")
    try:
        port_service.set_statuses(net, {port["id"]: "DOWN", loose["id"]: "DOWN"})
        settled(env)
        heard.clear()
        port_service.set_statuses(net, {port["id"]: "ACTIVE", loose["id"]: "ACTIVE"})
        port_service.set_statuses(net, {port["id"]: "ACTIVE"})  # no change: no event
        settled(env)
        assert heard == [dataplane.ServerEvent(dataplane.VIF_PLUGGED, sid, port["id"])]
        port_service.set_statuses(net, {port["id"]: "DOWN", loose["id"]: "DOWN"})
        settled(env)
        assert heard[1:] == [dataplane.ServerEvent(dataplane.VIF_UNPLUGGED, sid, port["id"])]
        assert show(env, sid)["status"] == "ACTIVE"  # Compute needs nothing of these
    finally:
        env.api.delete(f"{N}/ports/{loose['id']}")


def test_a_refused_write_publishes_nothing(env: Env, server: dict[str, Any],
                                           heard: list[dataplane.ServerEvent]) -> None:
    (port,) = ports_of(env, server["id"])
    r = env.api.put(f"{N}/ports/{port['id']}", json={"port": {
        "fixed_ips": [{"ip_address": "10.99.0.5"}]}})  # on no subnet of its network
    assert r.status_code == 400, r.text
    settled(env)
    assert heard == []
