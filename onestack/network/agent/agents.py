"""The network agents of each host, as ``/v2.0/agents`` shows them.

An agent is alive while its host heartbeats it into the foundation's host
table (``cloud.hosts``): the all-in-one cloud's agent reports the four that
Neutron would run on a DevStack host - the Linux bridge, DHCP, L3 and metadata
agents - every ``[hosts] report_interval``; alive means a heartbeat within
``[hosts] agent_down_time`` by the database's clock.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from onestack.network.dataplane import AgentInfo

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.common.db import Database

# binary -> (agent_type, topic, has an availability zone)
AGENTS: dict[str, tuple[str, str, bool]] = {
    "neutron-linuxbridge-agent": ("Linux bridge agent", "N/A", False),
    "neutron-dhcp-agent": ("DHCP agent", "dhcp_agent", True),
    "neutron-l3-agent": ("L3 agent", "l3_agent", True),
    "neutron-metadata-agent": ("Metadata agent", "N/A", False),
}
CACHE_SECONDS = 1.0


def configurations(binary: str, counts: dict[str, int], extra: dict[str, Any]) -> dict[str, Any]:
    """What each agent reports about itself (Neutron's ``configurations``)."""
    if binary == "neutron-linuxbridge-agent":
        return {"devices": counts.get("ports", 0), "interface_mappings": {"public": extra.get("external", "")},
                "bridge_mappings": {}, "tunnel_types": [], "extensions": []}
    if binary == "neutron-dhcp-agent":
        return {"dhcp_driver": "neutron.agent.linux.dhcp.Dnsmasq", "dhcp_lease_duration": 86400,
                "networks": counts.get("dhcp_networks", 0), "ports": counts.get("ports", 0),
                "subnets": counts.get("subnets", 0), "log_agent_heartbeats": False}
    if binary == "neutron-l3-agent":
        return {"agent_mode": "legacy", "routers": counts.get("routers", 0),
                "floating_ips": counts.get("floating_ips", 0), "interfaces": counts.get("interfaces", 0),
                "ex_gw_ports": counts.get("gateways", 0), "handle_internal_only_routers": True,
                "log_agent_heartbeats": False}
    return {"metadata_proxy_socket": "in-process", "log_agent_heartbeats": False,
            "nova_metadata_host": extra.get("metadata", ""), "nova_metadata_port": 0}


def resource_counts(db: Database) -> dict[str, int]:
    """What the agents' configurations report: the cloud's ports, DHCP
    networks, routers and associated floating IPs (blocking)."""
    from sqlalchemy import func, select

    from onestack.network.agent.reader import DHCP_OWNER
    from onestack.network.models import FloatingIP, Port, Router

    with db.read() as s:
        def count(stmt: Any) -> int:
            return int(s.scalar(stmt) or 0)

        return {
            "ports": count(select(func.count()).select_from(Port)),
            "dhcp_networks": count(select(func.count()).select_from(Port)
                                   .where(Port.device_owner == DHCP_OWNER)),
            "routers": count(select(func.count()).select_from(Router)),
            "floating_ips": count(select(func.count()).select_from(FloatingIP)
                                  .where(FloatingIP.router_id.is_not(None))),
        }


def heartbeat(cloud: Cloud, host: str, zone: str, counts: dict[str, int], extra: dict[str, Any],
              started: bool) -> None:
    """Report this host's network agents alive (blocking)."""
    from onestack import __version__

    for binary, (agent_type, topic, zoned) in AGENTS.items():
        cloud.hosts.heartbeat(host, binary, topic=topic, agent_type=agent_type,
                              availability_zone=zone if zoned else None, version=__version__,
                              configuration=configurations(binary, counts, extra), started=started)


class HostAgents:
    """The ``AgentSource``: the network agents in the host table (cached a second)."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._lock = threading.Lock()
        self._cached: tuple[float, list[AgentInfo]] | None = None

    def invalidate(self) -> None:
        self._cached = None

    def agents(self) -> list[AgentInfo]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        with self._lock:
            down_after = self.cloud.settings.hosts.agent_down_time
            found = []
            for view in self.cloud.hosts.services(down_after):
                if view.binary not in AGENTS:
                    continue
                row = view.as_neutron_agent()
                found.append(AgentInfo(
                    id=row["id"], agent_type=row["agent_type"] or AGENTS[view.binary][0],
                    binary=view.binary, host=view.host, availability_zone=row["availability_zone"],
                    alive=view.alive, admin_state_up=row["admin_state_up"], topic=row["topic"] or "",
                    configurations=row["configurations"], heartbeat_timestamp=row["heartbeat_timestamp"],
                    started_at=row["started_at"], created_at=row["created_at"],
                    description=row["description"],
                ))
            self._cached = (time.monotonic(), found)
            return found
