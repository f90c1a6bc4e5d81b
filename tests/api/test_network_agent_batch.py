"""The networks' L2 tasks run together (``l2batch.py``), against the real API
and database on an in-memory host (``FakeHost``): networks that are only a
bridge here share one netlink conversation and one read; the others are
applied as alone; a network gone is removed; a failure is its task's alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from onestack.host.fake import FakeHost
from onestack.network.agent.runner import DataPlane
from tests.api._agent import Rig, agent_rig, count_netlink
from tests.api._network import N, ok


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Rig]:
    yield from agent_rig(tmp_path)


class Ctx:
    """What the batch handler uses of a task's context."""

    def __init__(self, network_id: str) -> None:
        self.payload = {"id": network_id}

    def check(self) -> None:
        return None


def bridges(host: FakeHost, dp: DataPlane) -> dict[str, int]:
    links = asyncio.run(host.net.netlink(dp.layout.root_ns, lambda n: n.links()))
    return {lk.name: lk.mtu for lk in links if lk.kind == "bridge"}


def test_a_batch_makes_plain_networks_in_one_conversation_and_the_others_as_alone(
        agent: Rig) -> None:
    api, dp, host = agent
    layout = dp.layout
    asyncio.run(dp.reconcile())  # the DHCP namespaces listed: none here
    plain = [ok(api.post(f"{N}/networks", json={"network": {"name": f"p{i}", "mtu": 1400 + i}}),
                201)["network"] for i in range(3)]
    served = ok(api.post(f"{N}/networks", json={"network": {"name": "dhcp"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": served["id"], "ip_version": 4,
                                                  "cidr": "10.9.0.0/24"}}), 201)
    gone = ok(api.post(f"{N}/networks", json={"network": {"name": "gone"}}), 201)["network"]
    asyncio.run(dp.apply_network(gone["id"]))
    ok(api.delete(f"{N}/networks/{gone['id']}"), 204)
    assert layout.bridge(gone["id"]) in bridges(host, dp)
    counts = count_netlink(host)
    ids = [plain[0]["id"], served["id"], gone["id"], plain[1]["id"], plain[2]["id"]]
    outcomes = asyncio.run(dp.handle_l2_batch([Ctx(i) for i in ids]))
    assert outcomes == [{}, {}, {}, {}, {}]
    made = bridges(host, dp)
    assert {layout.bridge(n["id"]): n["mtu"] for n in plain}.items() <= made.items()
    assert [n["mtu"] for n in plain] == [1400, 1401, 1402]
    assert layout.bridge(gone["id"]) not in made  # removed
    assert layout.bridge(served["id"]) in made
    # the DHCP network as alone: its DHCP port, namespace and dnsmasq
    dhcp_ports = ok(api.get(f"{N}/ports?network_id={served['id']}&device_owner=network:dhcp"))["ports"]
    assert len(dhcp_ports) == 1 and dhcp_ports[0]["status"] == "ACTIVE"
    assert served["id"] in asyncio.run(host.dhcp.running())
    # the three plain networks: one conversation in the root namespace for all
    # of them (the DHCP network and the removal have conversations of their own)
    plain_calls = [c for c in host.calls if c[:3] == ("netlink", layout.root_ns, "ensure_bridge")
                   and c[3] in {layout.bridge(n["id"]) for n in plain}]
    assert len(plain_calls) == 3
    alone = dict(counts)
    counts.clear()
    asyncio.run(dp.handle_l2_batch([Ctx(n["id"]) for n in plain]))
    assert counts == {layout.root_ns: 1}
    assert alone[layout.root_ns] >= 2


def test_a_failure_in_a_batch_fails_only_its_task(
        agent: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    api, dp, host = agent
    layout = dp.layout
    asyncio.run(dp.reconcile())
    plain = ok(api.post(f"{N}/networks", json={"network": {"name": "plain"}}), 201)["network"]
    served = ok(api.post(f"{N}/networks", json={"network": {"name": "dhcp"}}), 201)["network"]
    ok(api.post(f"{N}/subnets", json={"subnet": {"network_id": served["id"], "ip_version": 4,
                                                  "cidr": "10.10.0.0/24"}}), 201)
    real = dp.apply_network

    async def broken(network_id: str, *args: Any, **kw: Any) -> bool:
        if network_id == served["id"]:
            raise OSError("dnsmasq would not start")
        return await real(network_id, *args, **kw)

    monkeypatch.setattr(dp, "apply_network", broken)
    outcomes = asyncio.run(dp.handle_l2_batch([Ctx(served["id"]), Ctx(plain["id"])]))
    assert isinstance(outcomes[0], OSError) and str(outcomes[0]) == "dnsmasq would not start"
    assert outcomes[1] == {}
    assert layout.bridge(plain["id"]) in bridges(host, dp)
    # the bridges' conversation failing fails the plain networks' tasks, not the others
    monkeypatch.setattr(dp, "apply_network", real)

    async def no_root(*args: Any, **kw: Any) -> Any:
        raise OSError("netlink: no buffer space")

    monkeypatch.setattr("onestack.network.agent.l2.apply_bridges", no_root)
    outcomes = asyncio.run(dp.handle_l2_batch([Ctx(plain["id"]), Ctx(served["id"])]))
    assert isinstance(outcomes[0], OSError) and outcomes[1] == {}
    assert served["id"] in asyncio.run(host.dhcp.running())
