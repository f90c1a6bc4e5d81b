"""The network agent against the real API and database, on an in-memory host
(``FakeHost``): what each write enqueues, what the handlers make of it, the
DHCP port, port status, ``binding:vif_details`` and the agents list."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from onestack.common.models import Task
from onestack.network.agent import notifier
from tests.api._agent import Rig, agent_rig, count_netlink
from tests.api._network import N, neutron_error, ok
from tests.api.conftest import Api


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Rig]:
    yield from agent_rig(tmp_path)


def queued(api: Api) -> set[tuple[str, str | None]]:
    with api.cloud.db.read() as s:
        return {(t.kind, t.resource_key) for t in s.scalars(select(Task).where(Task.state == "queued"))}


def clear(api: Api) -> None:
    with api.cloud.db.write() as s:
        for t in s.scalars(select(Task)):
            s.delete(t)
    known = getattr(api.cloud.services["network"].notifier, "known", None)
    if known is not None:  # the tasks it saw enqueued are gone
        known.forget()


def test_writes_enqueue_one_task_per_thing_to_apply(agent: Rig) -> None:
    api, _dp, _host = agent
    clear(api)
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n1"}}), 201)["network"]
    assert queued(api) == {(notifier.L2, f"network:{net['id']}")}
    sub = ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                        "cidr": "10.5.0.0/24"}}), 201)["subnet"]
    for _ in range(3):  # a burst collapses: one queued task per key and kind
        ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)
    assert queued(api) == {(notifier.L2, f"network:{net['id']}"), (notifier.FIREWALL, "firewall")}
    clear(api)
    router = ok(api.post(f"{N}/routers", json={"router": {"name": "r"}}), 201)["router"]
    ok(api.put(f"{N}/routers/{router['id']}/add_router_interface", json={"subnet_id": sub["id"]}))
    assert (notifier.ROUTER, f"router:{router['id']}") in queued(api)
    clear(api)
    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": "g"}}), 201)
    ok(api.post(f"{N}/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["security_group"]["id"], "direction": "ingress", "protocol": "icmp"}}), 201)
    assert queued(api) == {(notifier.FIREWALL, "firewall")}
    # a refused write enqueues nothing
    clear(api)
    r = api.post(f"{N}/ports", json={"port": {"network_id": net["id"],
                                                "fixed_ips": [{"ip_address": "10.6.0.9"}]}})
    assert r.status_code == 400
    assert queued(api) == set()


def test_a_task_waits_longer_when_its_key_was_slow_to_apply_but_a_rule_change_does_not(
        agent: Rig) -> None:
    """With the agent's pace: ports of a network whose L2 and firewall tasks took
    0.3 s and 2 s wait 0.6 s and 0.5 s (the firewall's bound); a security group
    rule waits only the firewall's 0.2 s debounce."""
    from sqlalchemy import func

    api, dp, _host = agent
    api.cloud.services["network"].notifier = notifier.TaskNotifier(api.cloud, dp.pace)
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "paced"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.7.0.0/24"}}), 201)
    dp.pace.record(notifier.L2, net["id"], 0.3)
    dp.pace.record(notifier.FIREWALL, "", 2.0)

    def waits() -> dict[str, float]:
        with api.cloud.db.read() as s:
            rows = s.execute(select(Task.kind, func.julianday(Task.run_after) - func.julianday(Task.created_at))
                             .where(Task.state == "queued")).all()
        return {kind: round(days * 86400, 1) for kind, days in rows}

    clear(api)
    ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)
    assert waits() == {notifier.L2: 0.6, notifier.FIREWALL: 0.5}
    clear(api)
    group = ok(api.post(f"{N}/security-groups", json={"security_group": {"name": "g"}}), 201)
    ok(api.post(f"{N}/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["security_group"]["id"], "direction": "ingress", "protocol": "icmp"}}), 201)
    assert waits() == {notifier.FIREWALL: 0.2}


def test_a_burst_does_not_look_for_the_task_it_knows_is_still_queued(
        agent: Rig) -> None:
    """SQLite: a write right after the one that enqueued its key's tasks skips the
    look (no worker can have claimed them before they are due); once they are due
    it looks again, finds them still queued and adds none."""
    import time

    from sqlalchemy import event

    api, _dp, _host = agent
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "burst"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                  "cidr": "10.8.0.0/24"}}), 201)
    looks: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM task" in statement:
            looks.append(statement)

    clear(api)
    event.listen(api.cloud.db.write_engine, "before_cursor_execute", seen)
    try:
        other = ok(api.post(f"{N}/networks", json={"network": {"name": "new"}}), 201)["network"]
        assert looks == []  # a network just created: no task can be queued for it yet
        assert (notifier.L2, f"network:{other['id']}") in queued(api)
        clear(api)
        looks.clear()
        ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)
        assert len(looks) == 2  # the network's L2 task and the firewall's: none queued, both added
        looks.clear()
        ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)
        assert looks == []
        time.sleep(notifier.DEBOUNCE[notifier.FIREWALL] + 0.05)  # both due: maybe claimed
        ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)
        assert len(looks) == 2
    finally:
        event.remove(api.cloud.db.write_engine, "before_cursor_execute", seen)
    assert queued(api) == {(notifier.L2, f"network:{net['id']}"), (notifier.FIREWALL, "firewall")}
    with api.cloud.db.read() as s:
        assert len(s.scalars(select(Task.id)).all()) == 2


def test_known_queued_keys_are_recorded_at_commit_and_forgotten_when_the_clock_moves(
        agent: Rig) -> None:
    api, _dp, _host = agent
    queue = api.cloud.tasks
    known = notifier.KnownQueued(queue)
    with pytest.raises(RuntimeError), api.cloud.db.write() as s:
        notifier.enqueue(queue, s, {(notifier.FIREWALL, "")}, known=known)
        raise RuntimeError("rolled back")
    assert not known.queued(notifier.FIREWALL, "firewall")
    with api.cloud.db.write() as s:
        notifier.enqueue(queue, s, {(notifier.FIREWALL, ""), (notifier.ROUTER, "r1")}, known=known)
        assert not known.queued(notifier.FIREWALL, "firewall")  # not before the commit
    assert known.queued(notifier.FIREWALL, "firewall")
    assert not known.queued(notifier.ROUTER, "router:r1")  # no delay: it may run at once
    queue.clock.advance(1.0)
    try:
        assert not known.queued(notifier.FIREWALL, "firewall")
    finally:
        queue.clock.advance(-1.0)


def test_a_network_applied_bridge_dhcp_port_and_status(agent: Rig) -> None:
    api, dp, host = agent
    layout = dp.layout
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n2"}}), 201)["network"]
    sub = ok(api.post(f"{N}/subnets", json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.6.0.0/24",
        "dns_nameservers": ["10.6.0.53"]}}), 201)["subnet"]
    port = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    asyncio.run(dp.apply_network(net["id"]))
    ports = ok(api.get(f"{N}/ports?network_id={net['id']}&device_owner=network:dhcp"))["ports"]
    assert len(ports) == 1
    dhcp_port = ports[0]
    assert dhcp_port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.6.0.3"}]
    assert dhcp_port["status"] == "ACTIVE"  # its veth is on the bridge
    spaces = host.net.spaces
    assert {layout.root_ns, layout.dhcp_ns(net["id"])} <= set(spaces)
    root = {lk.name: lk for lk in asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.links()))}
    assert root[layout.bridge(net["id"])].kind == "bridge"
    assert root[layout.bridge(net["id"])].mtu == net["mtu"]
    assert root[layout.tap(dhcp_port["id"])].master == layout.bridge(net["id"])
    inside = asyncio.run(host.net.netlink(layout.dhcp_ns(net["id"]),
                                          lambda n: n.addresses(layout.dhcp_device(dhcp_port["id"]))))
    assert sorted(inside) == ["10.6.0.3/24", "169.254.169.254/32"]  # isolated: metadata here
    spec = host.dhcp.instances[net["id"]][0]
    assert spec.netns == layout.dhcp_ns(net["id"])
    assert [(h.mac, h.addresses) for h in spec.hosts] == [(port["mac_address"], ("10.6.0.2",))]
    assert f"tag:subnet-{sub['id']},option:dns-server,10.6.0.53" in spec.options
    # the instance's port: DOWN until its device is on the bridge
    assert ok(api.get(f"{N}/ports/{port['id']}"))["port"]["status"] == "DOWN"
    asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.ensure_tap(
        layout.tap(port["id"]), master=layout.bridge(net["id"]))))
    assert asyncio.run(dp.update_statuses()) == [port["id"]]
    assert ok(api.get(f"{N}/ports/{port['id']}"))["port"]["status"] == "ACTIVE"
    # DHCP off: the DHCP port, its namespace and dnsmasq go
    ok(api.put(f"{N}/subnets/{sub['id']}", json={"subnet": {"enable_dhcp": False}}))
    asyncio.run(dp.apply_network(net["id"]))
    assert ok(api.get(f"{N}/ports?network_id={net['id']}&device_owner=network:dhcp"))["ports"] == []
    assert layout.dhcp_ns(net["id"]) not in host.net.spaces
    assert net["id"] not in asyncio.run(host.dhcp.running())
    # the network deleted: its bridge goes
    ok(api.delete(f"{N}/ports/{port['id']}"), 204)
    ok(api.delete(f"{N}/networks/{net['id']}"), 204)
    asyncio.run(dp.apply_network(net["id"]))
    assert layout.bridge(net["id"]) not in [
        lk.name for lk in asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.links()))]


def test_reconcile_removes_leftovers_and_queues_the_missing(agent: Rig) -> None:
    api, dp, host = agent
    layout = dp.layout
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n3"}}), 201)["network"]
    stray = "0f0f0f0f-0000-4000-8000-000000000000"

    async def leftovers() -> None:
        await host.net.ensure_netns(layout.root_ns)
        await host.net.ensure_netns(layout.dhcp_ns(stray))
        await host.net.netlink(layout.root_ns, lambda n: n.ensure_bridge(layout.bridge(stray)))

    asyncio.run(leftovers())
    clear(api)
    done = asyncio.run(dp.reconcile())
    assert layout.bridge(stray) in done["removed"] and layout.dhcp_ns(stray) in done["removed"]
    assert layout.dhcp_ns(stray) not in host.net.spaces
    assert (notifier.L2, f"network:{net['id']}") in queued(api)  # its bridge is missing


def test_vif_details_name_the_bridge_and_namespace(agent: Rig) -> None:
    api, dp, _host = agent
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n4"}}), 201)["network"]
    port = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"],
                                                     "binding:host_id": "h1"}}), 201)["port"]
    assert port["binding:vif_type"] == "bridge"
    assert port["binding:vif_details"] == {"port_filter": True, "connectivity": "l2",
                                           "bridge_name": dp.layout.bridge(net["id"]),
                                           "netns": dp.layout.root_ns}


def test_agents_listed_from_heartbeats(agent: Rig) -> None:
    api, dp, _host = agent
    assert ok(api.get(f"{N}/agents"))["agents"] == []
    dp._heartbeat(True)
    agents: list[dict[str, Any]] = ok(api.get(f"{N}/agents"))["agents"]
    assert sorted((a["binary"], a["agent_type"], a["alive"], a["availability_zone"]) for a in agents) == [
        ("neutron-dhcp-agent", "DHCP agent", True, "nova"),
        ("neutron-l3-agent", "L3 agent", True, "nova"),
        ("neutron-linuxbridge-agent", "Linux bridge agent", True, None),
        ("neutron-metadata-agent", "Metadata agent", True, None),
    ]
    assert ok(api.get(f"{N}/agents", who="demo"))["agents"] == []
    zones = ok(api.get(f"{N}/availability_zones"))["availability_zones"]
    assert {(z["name"], z["resource"], z["state"]) for z in zones} == {
        ("nova", "network", "available"), ("nova", "router", "available")}
    neutron_error(api.get(f"{N}/agents/nope"), 404, "AgentNotFound", "Agent nope could not be found.")


def test_an_instance_port_administratively_down_has_its_tap_down(
        agent: Rig) -> None:
    """As Neutron's Linux bridge agent: ``admin_state_up`` false sets the port's tap
    down (no traffic; the port DOWN), true sets it up again (ACTIVE); a tap plugged
    again while the port is down (a reboot) goes down at once."""
    api, dp, host = agent
    layout = dp.layout
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "n3"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                 "cidr": "10.8.0.0/24"}}), 201)
    port = ok(api.post(f"{N}/ports", json={"port": {
        "network_id": net["id"], "device_owner": "compute:nova", "device_id": "vm"}}), 201)["port"]
    asyncio.run(dp.apply_network(net["id"]))
    tap = layout.tap(port["id"])

    def plug() -> None:
        asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.ensure_tap(
            tap, master=layout.bridge(net["id"]))))

    def tap_up() -> bool:
        links = asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.links()))
        return next(lk.up for lk in links if lk.name == tap)

    def status() -> str:
        return str(ok(api.get(f"{N}/ports/{port['id']}"))["port"]["status"])

    plug()
    asyncio.run(dp.update_statuses())
    assert (tap_up(), status()) == (True, "ACTIVE")
    ok(api.put(f"{N}/ports/{port['id']}", json={"port": {"admin_state_up": False}}))
    asyncio.run(dp.apply_network(net["id"]))  # the L2 task the update queued
    assert (tap_up(), status()) == (False, "DOWN")
    plug()  # plugged again (up) while the port is down: the next status pass downs it
    assert tap_up()
    asyncio.run(dp.update_statuses(id_prefixes=[port["id"][:11]]))
    assert (tap_up(), status()) == (False, "DOWN")
    ok(api.put(f"{N}/ports/{port['id']}", json={"port": {"admin_state_up": True}}))
    asyncio.run(dp.apply_network(net["id"]))
    assert (tap_up(), status()) == (True, "ACTIVE")


def test_a_network_without_dhcp_costs_one_netlink_conversation(
        agent: Rig) -> None:
    """Once the reconcile has listed the DHCP namespaces, a network without DHCP is
    its bridge and nothing else: no DHCP namespace removed or looked for, no root
    namespace look (it is made if the bridge's conversation finds it missing).
    A DHCP namespace left over for a network without DHCP port is found by the
    reconcile and removed by the network's handler."""
    api, dp, host = agent
    layout = dp.layout
    asyncio.run(dp.reconcile())
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "plain"}}), 201)["network"]
    del host.calls[:]
    counts = count_netlink(host)
    asyncio.run(dp.apply_network(net["id"]))
    assert counts == {layout.root_ns: 1}
    assert host.calls[0] == ("netlink", layout.root_ns, "ensure_bridge", layout.bridge(net["id"]))
    assert {c[:2] + c[3:4] for c in host.calls} == {("netlink", layout.root_ns, layout.bridge(net["id"]))}
    # the root namespace gone (a restart of the host): made again by the same handler
    asyncio.run(host.net.delete_netns(layout.root_ns))
    asyncio.run(dp.apply_network(net["id"]))
    assert layout.bridge(net["id"]) in asyncio.run(
        host.net.netlink(layout.root_ns, lambda n: [lk.name for lk in n.links()]))
    # a DHCP namespace of this network left over: the reconcile sends it to the handler
    asyncio.run(host.net.ensure_netns(layout.dhcp_ns(net["id"])))
    clear(api)
    asyncio.run(dp.reconcile())
    assert (notifier.L2, f"network:{net['id']}") in queued(api)
    asyncio.run(dp.apply_network(net["id"]))
    assert layout.dhcp_ns(net["id"]) not in host.net.spaces


def test_the_dhcp_namespace_is_settled_once_and_again_when_its_veth_goes(
        agent: Rig) -> None:
    """A port added to a network with DHCP does not make the agent look into the
    DHCP namespace again (its device, addresses and MTU are as last settled);
    the DHCP port's veth deleted behind its back is made and settled again; a
    port's tap and status follow its changes (only changed ports are looked at)."""
    api, dp, host = agent
    layout = dp.layout
    net = ok(api.post(f"{N}/networks", json={"network": {"name": "d"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {
        "network_id": net["id"], "ip_version": 4, "cidr": "10.8.0.0/24"}}), 201)
    asyncio.run(dp.apply_network(net["id"]))
    dhcp_port = ok(api.get(f"{N}/ports?network_id={net['id']}&device_owner=network:dhcp"))["ports"][0]
    ns, device = layout.dhcp_ns(net["id"]), layout.dhcp_device(dhcp_port["id"])
    counts = count_netlink(host)
    port = ok(api.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    asyncio.run(dp.apply_network(net["id"]))
    assert counts == {layout.root_ns: 1}
    assert [(h.mac, h.addresses) for h in host.dhcp.instances[net["id"]][0].hosts] == [
        (port["mac_address"], (port["fixed_ips"][0]["ip_address"],))]
    # the DHCP port's veth gone (either end takes the other): made and settled again
    asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.delete(layout.tap(dhcp_port["id"]))))
    asyncio.run(dp.apply_network(net["id"]))
    inside = asyncio.run(host.net.netlink(ns, lambda n: (n.link(device), n.addresses(device))))
    assert inside[0] is not None and inside[0].up and inside[0].mac == dhcp_port["mac_address"]
    assert sorted(inside[1]) == ["10.8.0.2/24", "169.254.169.254/32"]
    # the instance's tap plugged (the link watch's status pass: ACTIVE); the port
    # changed (administratively down, then up): its tap and status follow
    tap = layout.tap(port["id"])
    asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.ensure_tap(tap, master=layout.bridge(net["id"]))))
    assert asyncio.run(dp.update_statuses(id_prefixes=[port["id"][:11]])) == [port["id"]]
    for up, status in ((False, "DOWN"), (True, "ACTIVE")):
        ok(api.put(f"{N}/ports/{port['id']}", json={"port": {"admin_state_up": up}}))
        asyncio.run(dp.apply_network(net["id"]))
        assert ok(api.get(f"{N}/ports/{port['id']}"))["port"]["status"] == status
        assert asyncio.run(host.net.netlink(layout.root_ns, lambda n: n.link(tap))).up is up


def test_stop_ends_the_loop_even_when_a_cancel_is_lost(
        agent: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11's ``asyncio.wait_for`` returns instead of raising when the
    cancel meets the event it waits for (gh-86296): the agent's loop went on,
    and its process, orphaned by a dead API, never ended."""
    _api, dp, _host = agent
    real = asyncio.wait_for
    lost: list[bool] = []

    async def losing_one_cancel(aw: Any, timeout: float | None) -> Any:
        try:
            return await real(aw, timeout)
        except asyncio.CancelledError:
            if not lost:  # as 3.11 does when the waited event was set at that moment
                lost.append(True)
                return None
            raise

    async def main() -> None:
        monkeypatch.setattr(asyncio, "wait_for", losing_one_cancel)
        await dp.start()
        await asyncio.sleep(0.3)  # the first reconcile done: the loop waits
        await real(dp.stop(), 10)

    asyncio.run(main())
    assert lost == [True] and dp._loop_task is None
