"""``network-ip-availabilities`` (used and total addresses, admin) and
``availability_zones`` (the zones of the hosts' agents, from the agent source)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from onestack.common.errors import NotFound
from onestack.network.dataplane import AgentInfo
from onestack.network.models import IPAllocation, Network, Subnet
from onestack.network.service import ipam
from onestack.network.service.attributes import Attr, Resource
from onestack.network.service.common import owner
from onestack.network.service.errors import HTTPBadRequest, NetworkNotFound, _Templated
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, project

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

IP_AVAILABILITIES = Resource(
    "network_ip_availability",
    "network_ip_availabilities",
    {
        "network_id": Attr(filter=True),
        "network_name": Attr(filter=True),
        "ip_version": Attr(filter=True),
        "subnet_ip_availability": Attr(),
        "used_ips": Attr(),
        "total_ips": Attr(),
        "ip_availability_details": Attr(),
    },
    path="network-ip-availabilities",
)

AVAILABILITY_ZONES = Resource(
    "availability_zone",
    "availability_zones",
    {"name": Attr(filter=True), "resource": Attr(filter=True), "state": Attr(filter=True)},
    has_project=False,
    path="availability_zones",
)

_DETAIL_KEYS = ("total_ips_in_subnet", "total_ips_in_allocation_pool", "used_ips_in_subnet",
                "used_ips_in_allocation_pool")


def _network_item(network: Network, subnets: Sequence[Subnet], session: Any) -> dict[str, Any]:
    entries = []
    totals = dict.fromkeys(_DETAIL_KEYS, 0)
    for subnet in subnets:
        detail = ipam.availability(session, subnet)
        for k in _DETAIL_KEYS:
            totals[k] += detail[k]
        entries.append({
            "subnet_id": subnet.id,
            "ip_version": subnet.ip_version,
            "cidr": subnet.cidr,
            "subnet_name": subnet.name,
            "used_ips": detail["used_ips_in_subnet"],
            "total_ips": detail["total_ips_in_allocation_pool"],
            "ip_availability_details": detail,
        })
    return {
        "network_id": network.id,
        "network_name": network.name,
        **owner(network.project_id),
        "subnet_ip_availability": entries,
        "used_ips": totals["used_ips_in_subnet"],
        "total_ips": totals["total_ips_in_allocation_pool"],
        "ip_availability_details": totals,
    }


def list_availabilities(net: Net, caller: Caller, q: ListQuery) -> list[dict[str, Any]]:
    caller.enforce("get_network_ip_availability", {"project_id": caller.project_id,
                                                   "tenant_id": caller.project_id})
    with net.db.read() as s:
        stmt = select(Network)
        f = q.filters
        if "network_id" in f:
            stmt = stmt.where(Network.id.in_(f["network_id"]))
        if "network_name" in f:
            stmt = stmt.where(Network.name.in_(f["network_name"]))
        for key in ("project_id", "tenant_id"):
            if key in f:
                stmt = stmt.where(Network.project_id.in_(f[key]))
        versions: list[int] = []
        if "ip_version" in f:
            try:
                versions = [int(x) for x in f["ip_version"]]
            except ValueError:
                raise HTTPBadRequest("ip_version must be an integer") from None
            stmt = stmt.where(Network.id.in_(select(Subnet.network_id).where(Subnet.ip_version.in_(versions))))
        rows = list(s.scalars(stmt.order_by(Network.created_at, Network.id)))
        items = []
        for network in rows:
            subs = list(s.scalars(select(Subnet).where(Subnet.network_id == network.id)
                                  .order_by(Subnet.created_at, Subnet.id)))
            if versions:
                subs = [x for x in subs if x.ip_version in versions]
            items.append(_network_item(network, subs, s))
    return project(items, q.fields, set())


def show_availability(net: Net, caller: Caller, network_id: str,
                      fields: Sequence[str] = ()) -> dict[str, Any]:
    caller.enforce("get_network_ip_availability", {"project_id": caller.project_id,
                                                   "tenant_id": caller.project_id})
    with net.db.read() as s:
        network = s.get(Network, network_id)
        if network is None:
            raise NetworkNotFound(net_id=network_id)
        subs = list(s.scalars(select(Subnet).where(Subnet.network_id == network.id)
                              .order_by(Subnet.created_at, Subnet.id)))
        return project([_network_item(network, subs, s)], fields, set())[0]


def used_count(session: Any, subnet_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(IPAllocation)
                              .where(IPAllocation.subnet_id == subnet_id)) or 0)


# --- availability zones ---------------------------------------------------------------------------


def availability_zones(net: Net) -> list[dict[str, Any]]:
    """Zones of the DHCP (``network``) and L3 (``router``) agents, available if any is alive."""
    zones: dict[tuple[str, str], bool] = {}
    for agent in net.agent_source.agents():
        if not agent.availability_zone:
            continue
        resource = {"DHCP agent": "network", "L3 agent": "router"}.get(agent.agent_type)
        if resource is None:
            continue
        key = (agent.availability_zone, resource)
        zones[key] = zones.get(key, False) or (agent.alive and agent.admin_state_up)
    return [
        {"name": name, "resource": resource, "state": "available" if up else "unavailable"}
        for (name, resource), up in sorted(zones.items())
    ]


def list_zones(net: Net, caller: Caller, q: ListQuery) -> list[dict[str, Any]]:
    caller.enforce("get_availability_zone", {})
    items = availability_zones(net)
    for key, values in q.filters.items():
        items = [i for i in items if str(i.get(key)) in [str(x) for x in values]]
    return project(items, q.fields, set())


# --- agents (the seam: rendered from the agent source) ---------------------------------------------

AGENTS = Resource(
    "agent",
    "agents",
    {
        name: Attr(filter=True, sort=True)
        for name in ("id", "agent_type", "binary", "topic", "host", "admin_state_up", "alive",
                     "availability_zone", "description")
    },
    has_project=False,
)


class AgentNotFound(_Templated, NotFound):
    template = "Agent %(id)s could not be found."


def _agent_view(a: AgentInfo) -> dict[str, Any]:
    return {
        "id": a.id, "agent_type": a.agent_type, "binary": a.binary, "topic": a.topic, "host": a.host,
        "admin_state_up": a.admin_state_up, "created_at": a.created_at, "started_at": a.started_at,
        "heartbeat_timestamp": a.heartbeat_timestamp, "alive": a.alive, "description": a.description,
        "configurations": dict(a.configurations), "availability_zone": a.availability_zone,
        "resources_synced": None,
    }


def list_agents(net: Net, caller: Caller, q: ListQuery) -> list[dict[str, Any]]:
    """The hosts' agents an admin may see (a non-admin sees none, as in Neutron)."""
    items = [_agent_view(a) for a in net.agent_source.agents()]
    for key, values in q.filters.items():
        items = [i for i in items if str(i.get(key)) in [str(x) for x in values]]
    items = [i for i in items if caller.can("get_agent", i)]
    return project(items, q.fields, set())


def show_agent(net: Net, caller: Caller, agent_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    for agent in net.agent_source.agents():
        if agent.id == agent_id:
            item = _agent_view(agent)
            caller.enforce("get_agent", item)
            return project([item], fields, set())[0]
    raise AgentNotFound(id=agent_id)
