"""Ports: create (MAC, fixed IPs, security groups, binding), update, delete.

Binding follows Neutron's ML2 with the Linux bridge mechanism: a port with a
``binding:host_id`` and vNIC type ``normal`` is bound as ``vif_type``
``bridge`` with ``vif_details`` ``port_filter`` / ``connectivity`` and the
network's bridge name; other vNIC types cannot be bound here
(``binding_failed``). The status stays ``DOWN`` until the data plane reports
the port up (``set_status``).
"""

from __future__ import annotations

import secrets
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from onestack.common.errors import BadRequest, Conflict
from onestack.network import dataplane
from onestack.network.models import (
    FloatingIP,
    Network,
    Port,
    PortSecurityGroup,
    Router,
)
from onestack.network.service import fixed_ips, networks, port_list, port_views, quotas, teardown
from onestack.network.service import security_groups as groups
from onestack.network.service.attributes import NOT_SPECIFIED, Parsed
from onestack.network.service.common import (
    attr_rules,
    bump,
    check_revision,
    finish,
    new_uuid,
    now,
    one,
    parse_create,
    parse_update,
    set_tags,
    std_columns,
)
from onestack.network.service.errors import (
    AddressPairAndPortSecurityRequired,
    MacAddressInUse,
    PortNotFound,
    PortSecurityAndIPRequiredForSecurityGroups,
    PortSecurityPortHasSecurityGroup,
    _Templated,
)
from onestack.network.service.policy import Caller
from onestack.network.service.resources import PORTS
from onestack.network.service.subnets import check_network_owner

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

UNBOUND, BINDING_FAILED, BRIDGE = "unbound", "binding_failed", "bridge"
L3_OWNERS = (
    "network:router_interface",
    "network:router_gateway",
    "network:floatingip",
    "network:ha_router_replicated_interface",
    "network:router_interface_distributed",
    "network:router_centralized_snat",
)


class ServicePortInUse(_Templated, Conflict):
    template = "Port %(port_id)s cannot be deleted directly via the port API: %(reason)s."


class PortBound(_Templated, Conflict):
    template = (
        "Unable to complete operation on port %(port_id)s, port is already bound, port type: "
        "%(vif_type)s, old_mac %(old_mac)s, new_mac %(new_mac)s."
    )


def binding(network_id: str, host: str, vnic_type: str,
            netns: str | None = None) -> tuple[str, dict[str, Any] | None]:
    """(vif_type, vif_details) of a port bound to ``host`` (Linux bridge semantics):
    the bridge, and the namespace holding it where the data plane runs."""
    if not host:
        return UNBOUND, None
    if vnic_type != "normal":
        return BINDING_FAILED, None
    details: dict[str, Any] = {
        "port_filter": True,
        "connectivity": "l2",
        "bridge_name": dataplane.bridge_name(network_id),
    }
    if netns:
        details["netns"] = netns
    return BRIDGE, details


def random_mac(net: Net, session: Session, network_id: str) -> str:
    base = net.config.base_mac.split(":")
    for _ in range(16):
        tail = secrets.token_bytes(3)
        mac = ":".join([*base[:3], *(f"{b:02x}" for b in tail)])
        if not _mac_in_use(session, network_id, mac):
            return mac
    raise MacAddressInUse(net_id=network_id, mac=mac)


_MAC_IN_USE = select(Port.id).where(Port.network_id == bindparam("net"), Port.mac_address == bindparam("mac"))


def _mac_in_use(session: Session, network_id: str, mac: str) -> bool:
    return session.execute(_MAC_IN_USE, {"net": network_id, "mac": mac}).first() is not None


def _pairs(pairs: Any, mac: str) -> list[dict[str, str]] | None:
    if pairs is NOT_SPECIFIED or not pairs:
        return None
    return [{"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or mac} for p in pairs]


def _dhcp_opts(opts: Any) -> list[dict[str, Any]] | None:
    if not opts:
        return None
    out = []
    for o in opts:
        item = {"opt_name": o["opt_name"], "opt_value": o["opt_value"], "ip_version": int(o.get("ip_version", 4))}
        out.append(item)
    return out


# --- create ---------------------------------------------------------------------------------------


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, PORTS, b) for b in bodies]
    with net.writing() as s:
        made = [create_one(net, caller, s, p) for p in parsed]
    port_list.remember(net, [m.item for m in made])
    return finish(caller, PORTS, [m.item for m in made], (), [m.target for m in made])


_INSERT_PORT = cast(Table, Port.__table__).insert()
_INSERT_BINDING = cast(Table, PortSecurityGroup.__table__).insert()


class Created:
    """A port just written: its row values, and its wire shape and policy target."""

    def __init__(self, values: dict[str, Any], item: dict[str, Any], target: dict[str, Any]) -> None:
        self.values, self.item, self.target = values, item, target

    @property
    def id(self) -> str:
        return str(self.values["id"])

    @property
    def network_id(self) -> str:
        return str(self.values["network_id"])


def create_one(net: Net, caller: Caller, s: Session, p: Parsed) -> Created:
    """Validate and write one port (plain inserts: this is the hot path of a cloud)."""
    network = networks.load(s, caller, p["network_id"])
    check_network_owner(caller, network, p["project_id"])
    target = port_views.target(p.values, network.project_id, network.shared)
    caller.enforce("create_port", target, attr_rules("create_port", PORTS, p, True))
    quotas.check(net, s, p["project_id"], {"port": 1})
    owner = p["device_owner"]
    if p.specified("mac_address"):
        mac = p["mac_address"]
        if _mac_in_use(s, network.id, mac):
            raise MacAddressInUse(net_id=network.id, mac=mac)
    else:
        mac = random_mac(net, s, network.id)
    security = p["port_security_enabled"] if p.specified("port_security_enabled") else network.port_security_enabled
    wanted = fixed_ips.plan(s, network, p["fixed_ips"], owner, mac)
    has_ip = bool(wanted)
    if p.specified("security_groups"):
        requested = p["security_groups"] or []
        if requested and (not security or not has_ip):
            raise PortSecurityAndIPRequiredForSecurityGroups()
        group_ids = groups.groups_for_port(s, caller, p["project_id"], requested)
    elif security and has_ip and not owner.startswith("network:"):
        group_ids = [groups.ensure_default(s, p["project_id"])]
    else:
        group_ids = []
    pairs = _pairs(p["allowed_address_pairs"], mac)
    if pairs and not security:
        raise AddressPairAndPortSecurityRequired()
    host = (p["binding:host_id"] if p.specified("binding:host_id") else "") or ""
    vif_type, vif_details = binding(network.id, host, p["binding:vnic_type"], net.vif_netns)
    profile = p["binding:profile"] if p.specified("binding:profile") else None
    values: dict[str, Any] = {
        "id": new_uuid(),
        "project_id": p["project_id"],
        "network_id": network.id,
        "name": p["name"],
        "mac_address": mac,
        "admin_state_up": p["admin_state_up"],
        "status": "DOWN",
        "device_id": p["device_id"],
        "device_owner": owner,
        "port_security_enabled": security,
        "dns_name": p["dns_name"],
        "host_id": host,
        "vif_type": vif_type,
        "vif_details": vif_details,
        "vnic_type": p["binding:vnic_type"],
        "profile": profile or None,
        "allowed_address_pairs": pairs,
        "extra_dhcp_opts": _dhcp_opts(p["extra_dhcp_opts"]),
        **std_columns(p["description"]),
    }
    s.execute(_INSERT_PORT, values)
    fixed = fixed_ips.assign(s, values["id"], wanted)
    if group_ids:
        s.execute(_INSERT_BINDING, [{"port_id": values["id"], "security_group_id": g} for g in group_ids])
    tags = sorted(set(p.get("tags") or []))
    if tags:
        set_tags(s, values["id"], tags)
    dataplane.record(s, dataplane.Change(dataplane.PORT, dataplane.CREATED, values["id"], network.id, host,
                                         {"device_owner": owner, "device_id": values["device_id"]}))
    if len(fixed) > 1:
        fixed.sort(key=lambda x: (x["subnet_id"], x["ip_address"]))
    item = port_views.render(SimpleNamespace(**values), fixed, sorted(group_ids), tags, net.config.dns_domain)
    return Created(values, item, port_views.target(item, network.project_id, network.shared))


# --- update ---------------------------------------------------------------------------------------


def update(net: Net, caller: Caller, port_id: str, body: dict[str, Any],
           if_match: int | None = None) -> dict[str, Any]:
    p = parse_update(caller, PORTS, body)
    with net.writing() as s:
        row = update_in(net, caller, s, port_id, p, if_match)
        items, targets = port_views.views(s, [row], net.config.dns_domain)
        return one(caller, PORTS, items[0], (), targets[0])


def update_in(net: Net, caller: Caller, s: Session, port_id: str, p: Parsed,
              if_match: int | None = None) -> Port:
    domain = net.config.dns_domain
    row, _item, target = port_views.load(s, caller, port_id, domain, lock=True)
    caller.enforce_or_hide("update_port", {**target, **p.values}, "get_port", PortNotFound(port_id=port_id),
                           attr_rules("update_port", PORTS, p, False))
    check_revision(row, if_match)
    network = s.get(Network, row.network_id)
    assert network is not None
    owner = p.get("device_owner", row.device_owner)
    if "mac_address" in p.values and p["mac_address"] != row.mac_address:
        if row.vif_type not in (UNBOUND, BINDING_FAILED):
            raise PortBound(port_id=row.id, vif_type=row.vif_type, old_mac=row.mac_address,
                            new_mac=p["mac_address"])
        if _mac_in_use(s, network.id, p["mac_address"]):
            raise MacAddressInUse(net_id=network.id, mac=p["mac_address"])
        row.mac_address = p["mac_address"]
    if "fixed_ips" in p.values:
        before = fixed_ips.current(s, row.id)
        fixed_ips.change(s, network, row.id, p["fixed_ips"] or [], owner, row.mac_address)
        if fixed_ips.current(s, row.id) != before:
            dataplane.server_event(s, dataplane.NETWORK_CHANGED, row.device_owner, row.device_id, row.id)
    has_ip = bool(fixed_ips.current(s, row.id))
    security = p.get("port_security_enabled", row.port_security_enabled)
    current_groups = list(
        s.scalars(select(PortSecurityGroup.security_group_id).where(PortSecurityGroup.port_id == row.id))
    )
    new_groups = current_groups
    if "security_groups" in p.values:
        requested = p["security_groups"] or []
        if requested and (not security or not has_ip):
            raise PortSecurityAndIPRequiredForSecurityGroups()
        new_groups = groups.groups_for_port(s, caller, row.project_id, requested)
    elif not security and current_groups:
        raise PortSecurityPortHasSecurityGroup()
    pairs = row.allowed_address_pairs
    if "allowed_address_pairs" in p.values:
        pairs = _pairs(p["allowed_address_pairs"], row.mac_address)
    if pairs and not security:
        raise AddressPairAndPortSecurityRequired()
    if new_groups != current_groups:
        s.execute(sql_delete(PortSecurityGroup).where(PortSecurityGroup.port_id == row.id))
        groups.bind(s, row.id, new_groups)
    row.allowed_address_pairs = pairs
    row.port_security_enabled = security
    if "extra_dhcp_opts" in p.values:
        row.extra_dhcp_opts = _dhcp_opts(p["extra_dhcp_opts"])
    for attr in ("name", "description", "admin_state_up", "device_id", "device_owner", "dns_name"):
        if attr in p.values:
            setattr(row, attr, p[attr])
    if "binding:profile" in p.values:
        row.profile = p["binding:profile"] or None
    rebind = "binding:host_id" in p.values or "binding:vnic_type" in p.values
    if "binding:vnic_type" in p.values:
        row.vnic_type = p["binding:vnic_type"]
    if "binding:host_id" in p.values:
        row.host_id = p["binding:host_id"] or ""
    if rebind:
        row.vif_type, row.vif_details = binding(row.network_id, row.host_id, row.vnic_type, net.vif_netns)
        if not row.host_id:
            row.status = "DOWN"
    bump(row)
    s.flush()
    dataplane.record(s, dataplane.Change(dataplane.PORT, dataplane.UPDATED, row.id, row.network_id, row.host_id))
    return row


# --- delete ---------------------------------------------------------------------------------------


def delete(net: Net, caller: Caller, port_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row, _item, target = port_views.load(s, caller, port_id, net.config.dns_domain, lock=True)
        caller.enforce_or_hide("delete_port", target, "get_port", PortNotFound(port_id=port_id))
        check_revision(row, if_match)
        if row.device_owner in L3_OWNERS:
            owner_exists = (
                s.get(FloatingIP, row.device_id) if row.device_owner == "network:floatingip"
                else s.get(Router, row.device_id)
            )
            if owner_exists is not None:
                raise ServicePortInUse(port_id=row.id, reason=f"has device owner {row.device_owner}")
        teardown.remove_port(s, row)


# --- for the data plane and other services -------------------------------------------------------


PORT_STATUSES = ("ACTIVE", "DOWN", "BUILD", "ERROR")


def set_status(net: Net, port_id: str, status: str) -> bool:
    """The data plane says a port is ``ACTIVE`` / ``DOWN`` / ``BUILD`` / ``ERROR``;
    True if that changed it (False too for a port that is gone)."""
    if status not in PORT_STATUSES:
        raise BadRequest(f"Invalid port status {status!r}")
    return bool(set_statuses(net, {port_id: status}))


def set_statuses(net: Net, statuses: dict[str, str]) -> list[str]:
    """Several ports' statuses in one transaction (the agent's scan); the ids changed."""
    changed: list[str] = []
    if not statuses:
        return changed
    if any(st not in PORT_STATUSES for st in statuses.values()):
        raise BadRequest("Invalid port status")
    events: list[dataplane.ServerEvent] = []
    with net.db.write() as s:
        for status in sorted(set(statuses.values())):
            ids = sorted(pid for pid, st in statuses.items() if st == status)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                was_active = set() if status == "ACTIVE" else set(s.scalars(
                    select(Port.id).where(Port.id.in_(chunk), Port.status == "ACTIVE")))
                rows = s.execute(
                    sql_update(Port).where(Port.id.in_(chunk), Port.status != status).values(
                        status=status, updated_at=now(), revision_number=Port.revision_number + 1
                    ).returning(Port.id, Port.device_owner, Port.device_id)
                )
                for pid, owner, device_id in rows:
                    changed.append(pid)
                    # as Neutron's notifier: plugged when ACTIVE, unplugged when no longer
                    name = (dataplane.VIF_PLUGGED if status == "ACTIVE"
                            else dataplane.VIF_UNPLUGGED if pid in was_active else None)
                    if name and dataplane.is_server_port(owner, device_id):
                        events.append(dataplane.ServerEvent(name, device_id, pid))
    net.server_events.publish(events)
    return changed
