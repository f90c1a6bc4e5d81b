"""Taking down what other resources own: a port (its floating IPs disassociated,
its forwardings gone) and an external network's free floating IPs. Shared by
ports, networks, routers and floating IPs."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.network import dataplane
from onestack.network.models import FloatingIP, Port, PortForwarding
from onestack.network.service import fixed_ips
from onestack.network.service.common import bump, drop_tags


def remove_port(s: Session, row: Port) -> None:
    """Delete a port: its floating IPs are disassociated, its forwardings go."""
    fips = list(s.scalars(select(FloatingIP).where(FloatingIP.fixed_port_id == row.id)))
    for fip in fips:
        fip.fixed_port_id = None
        fip.fixed_ip_address = None
        fip.router_id = None
        fip.status = "DOWN"
        bump(fip)
        dataplane.record(s, dataplane.Change(dataplane.FLOATING_IP, dataplane.UPDATED, fip.id,
                                             fip.floating_network_id))
    s.execute(delete(PortForwarding).where(PortForwarding.internal_port_id == row.id))
    details = {"mac_address": row.mac_address, "fixed_ips": fixed_ips.current(s, row.id),
               "device_owner": row.device_owner}
    dataplane.server_event(s, dataplane.VIF_DELETED, row.device_owner, row.device_id, row.id)
    drop_tags(s, [row.id])
    s.delete(row)
    s.flush()
    dataplane.record(s, dataplane.Change(dataplane.PORT, dataplane.DELETED, row.id, row.network_id,
                                         row.host_id, details))


def remove_floating_ip(s: Session, fip: FloatingIP) -> None:
    """Delete a floating IP and the port that holds its address."""
    holder = s.get(Port, fip.floating_port_id)
    details = {"floating_ip_address": fip.floating_ip_address, "fixed_ip_address": fip.fixed_ip_address,
               "router_id": fip.router_id}
    fip_changed(s, fip.fixed_port_id)
    drop_tags(s, [fip.id])
    s.delete(fip)
    s.flush()
    if holder is not None:
        remove_port(s, holder)
    dataplane.record(s, dataplane.Change(dataplane.FLOATING_IP, dataplane.DELETED, fip.id,
                                         fip.floating_network_id, "", details))


def remove_free_floating_ips(s: Session, network_id: str) -> None:
    """An external network goes with its floating IPs that are not associated
    (as Neutron deletes them before the network)."""
    for fip in list(s.scalars(select(FloatingIP).where(FloatingIP.floating_network_id == network_id,
                                                        FloatingIP.fixed_port_id.is_(None)))):
        remove_floating_ip(s, fip)


def fip_changed(s: Session, port_id: str | None) -> None:
    """A floating IP came to or left this port: its server's addresses changed
    (Neutron's ``network-changed``)."""
    if port_id:
        port = s.get(Port, port_id)
        if port is not None:
            dataplane.server_event(s, dataplane.NETWORK_CHANGED, port.device_owner, port.device_id, port.id)
