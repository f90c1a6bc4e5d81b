"""Nova's proxies to Networking (removed at 2.36, still called by old
clients and Tempest): ``os-security-groups``, ``os-security-group-rules``,
``os-floating-ips``, ``os-floating-ip-pools``, the ``addFloatingIp`` /
``removeFloatingIp`` and the multinic ``addFixedIp`` / ``removeFixedIp`` actions - each a call of ``onestack.network.interface``
for the caller, shaped and checked as Nova's Neutron driver does (ingress
rules only; Nova's port and protocol checks and messages)."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from onestack.compute.service import interfaces
from onestack.compute.service._common import get

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

log = logging.getLogger(__name__)

_SG = "os_compute_api:os-security-groups:"
_FIP = "os_compute_api:os-floating-ips:"


def _api() -> Any:
    from onestack.network import interface

    return interface


def _own(ctx: AuthContext) -> dict[str, Any]:
    return {"project_id": ctx.project_id}


# --- security groups ---------------------------------------------------------------------


def _check_id(group_id: Any, what: str = "Security group") -> str:
    try:
        uuid.UUID(str(group_id))
    except ValueError:
        raise BadRequest(f"{what} id should be uuid") from None
    return str(group_id)


def _check_property(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"Security group {name} is not a string or unicode")
    # Nova checks the stripped value's length but keeps the value as given
    # (leading and trailing spaces included), as Neutron stores it.
    stripped = value.strip()
    if not stripped:
        raise BadRequest(f"Invalid input received: {name} has a minimum character requirement "
                         "of 1.")
    if len(stripped) > 255:
        raise BadRequest(f"Invalid input received: {name} has more than 255 characters.")
    return value


def _group(svc: ComputeService, ctx: AuthContext, group_id: str) -> dict[str, Any]:
    try:
        return dict(_api().show_security_group(svc.cloud, ctx, group_id))
    except NotFound:
        raise NotFound(f"Security group {group_id} not found.") from None


def _rule_view(rule: dict[str, Any], names: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
    protocol = rule.get("protocol")
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    if protocol and low is None and high is None:
        low, high = (1, 65535) if str(protocol).upper() in ("TCP", "UDP") else (-1, -1)
    out: dict[str, Any] = {"id": rule["id"], "parent_group_id": rule["security_group_id"],
                           "ip_protocol": protocol, "from_port": low, "to_port": high,
                           "group": {}, "ip_range": {}}
    remote = rule.get("remote_group_id")
    if remote:
        source = names.get(remote)
        if source is None:
            return None  # the source group is gone or hidden: Nova leaves the rule out
        out["group"] = source
    else:
        out["ip_range"] = {"cidr": rule.get("remote_ip_prefix") or "0.0.0.0/0"}
    return out


def group_view(svc: ComputeService, ctx: AuthContext, group: dict[str, Any],
               known: dict[str, dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Nova's view of a Neutron group: its ingress rules, a source group by name."""
    names = known if known is not None else {}
    rules = []
    for rule in group.get("security_group_rules") or []:
        if rule.get("direction") != "ingress":
            continue
        remote = rule.get("remote_group_id")
        if remote and remote not in names:
            try:
                source = _api().show_security_group(svc.cloud, ctx, remote)
                names[remote] = {"name": source.get("name"),
                                 "tenant_id": source.get("project_id")}
            except ApiError:
                names[remote] = None
        view = _rule_view(rule, names)
        if view is not None:
            rules.append(view)
    return {"id": group["id"], "name": group.get("name"), "description": group.get("description"),
            "tenant_id": group.get("project_id") or group.get("tenant_id"), "rules": rules}


def list_groups(svc: ComputeService, ctx: AuthContext, all_tenants: bool) -> list[dict[str, Any]]:
    svc.authorize(_SG + "get", ctx, _own(ctx))
    every = all_tenants and svc.is_admin(ctx)
    filters = {} if every else {"project_id": ctx.project_id or ""}
    groups = _api().list_security_groups(svc.cloud, ctx, **filters)
    known = {g["id"]: {"name": g.get("name"), "tenant_id": g.get("project_id")} for g in groups}
    views = [group_view(svc, ctx, g, dict(known)) for g in groups]
    return sorted(views, key=lambda g: (g["tenant_id"] or "", g["name"] or ""))


def show_group(svc: ComputeService, ctx: AuthContext, group_id: str) -> dict[str, Any]:
    svc.authorize(_SG + "show", ctx, _own(ctx))
    return group_view(svc, ctx, _group(svc, ctx, _check_id(group_id)))


def create_group(svc: ComputeService, ctx: AuthContext, name: Any,
                 description: Any) -> dict[str, Any]:
    svc.authorize(_SG + "create", ctx, _own(ctx))
    body = {"name": _check_property(name, "name"),
            "description": _check_property(description, "description")}
    try:
        group = _api().create_security_group(svc.cloud, ctx, body)
    except Conflict as exc:
        raise Forbidden(f"Quota exceeded, too many security groups. {exc.message}") from None
    return group_view(svc, ctx, group)


def update_group(svc: ComputeService, ctx: AuthContext, group_id: str, name: Any,
                 description: Any) -> dict[str, Any]:
    svc.authorize(_SG + "update", ctx, _own(ctx))
    group_id = _check_id(group_id)
    body = {"name": _check_property(name, "name"),
            "description": _check_property(description, "description")}
    _group(svc, ctx, group_id)
    try:
        group = _api().update_security_group(svc.cloud, ctx, group_id, body)
    except (BadRequest, Conflict) as exc:
        raise BadRequest(exc.message) from None
    return group_view(svc, ctx, group)


def delete_group(svc: ComputeService, ctx: AuthContext, group_id: str) -> None:
    svc.authorize(_SG + "delete", ctx, _own(ctx))
    group_id = _check_id(group_id)
    _group(svc, ctx, group_id)
    try:
        _api().delete_security_group(svc.cloud, ctx, group_id)
    except (Conflict, BadRequest) as exc:  # in use, or the default group
        raise BadRequest(exc.message) from None
    except NotFound:
        raise NotFound(f"Security group {group_id} not found.") from None


# --- rules -----------------------------------------------------------------------------------


def _ingress(protocol: Any, from_port: Any, to_port: Any, *, group_id: str | None,
             cidr: str | None) -> dict[str, Any] | None:
    """Nova's ``_new_ingress_rule``: the checked rule, or None when a CIDR
    rule lacks its protocol and ports."""
    values: dict[str, Any] = {}
    if group_id:
        values["group_id"] = group_id
        upper = str(protocol).upper() if protocol else ""
        if upper == "ICMP" and from_port is None and to_port is None:
            from_port = to_port = -1
        elif upper in ("TCP", "UDP") and from_port is None and to_port is None:
            from_port, to_port = 1, 65535
    elif cidr:
        values["cidr"] = cidr
    if protocol and from_port is not None and to_port is not None:
        protocol = str(protocol)
        upper = protocol.upper()
        try:
            low, high = int(from_port), int(to_port)
        except (TypeError, ValueError):
            if upper == "ICMP":
                raise BadRequest("Invalid input received: Type and Code must be integers for "
                                 "ICMP protocol type") from None
            raise BadRequest("Invalid input received: To and From ports must be "
                             "integers") from None
        if upper not in ("TCP", "UDP", "ICMP"):
            raise BadRequest(f"Invalid IP protocol {protocol}.")
        if upper in ("TCP", "UDP") and low > high:
            raise BadRequest(f"Invalid port range {low}:{high}. Former value cannot be greater "
                             "than the later")
        if upper in ("TCP", "UDP") and (low < 1 or high > 65535):
            raise BadRequest(f"Invalid port range {low}:{high}. Valid {upper} ports should be "
                             "between 1-65535")
        if upper == "ICMP" and not (-1 <= low <= 255 and -1 <= high <= 255):
            raise BadRequest(f"Invalid port range {low}:{high}. For ICMP, the type:code must "
                             "be valid")
        values.update(protocol=protocol, from_port=low, to_port=high)
    elif cidr:
        return None
    return values


def _parse_cidr(cidr: Any) -> str:
    if not cidr:
        return "0.0.0.0/0"
    try:
        ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        raise BadRequest(f"{cidr} is not a valid IP network.") from None
    if "/" not in str(cidr):
        raise BadRequest(f"{cidr} is not a valid IP network.")
    return str(cidr)


def create_rule(svc: ComputeService, ctx: AuthContext, rule: dict[str, Any]) -> dict[str, Any]:
    svc.authorize(_SG + "rule:create", ctx, _own(ctx))
    parent_id = _check_id(rule.get("parent_group_id"))
    parent = _group(svc, ctx, parent_id)
    group_id = rule.get("group_id")
    source: dict[str, Any] = {}
    cidr = None
    if group_id is not None:
        group_id = _check_id(group_id)
        source = _group(svc, ctx, group_id)
    else:
        cidr = _parse_cidr(rule.get("cidr"))
    new = _ingress(rule.get("ip_protocol"), rule.get("from_port"), rule.get("to_port"),
                   group_id=group_id, cidr=cidr)
    if new is None:
        raise BadRequest("Not enough parameters to build a valid rule.")
    if cidr is not None:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.prefixlen == 0 and str(network.network_address) not in ("0.0.0.0", "::"):
            raise BadRequest(f"Bad prefix for network in cidr {cidr}")
    body: dict[str, Any] = {
        "security_group_id": parent["id"], "direction": "ingress",
        "ethertype": "IPv6" if cidr and ":" in cidr else "IPv4",
        "protocol": new.get("protocol", "").lower() or None,
        "remote_ip_prefix": new.get("cidr"), "remote_group_id": new.get("group_id"),
    }
    if new.get("from_port", -1) != -1:
        body["port_range_min"] = new["from_port"]
    if new.get("to_port", -1) != -1:
        body["port_range_max"] = new["to_port"]
    try:
        created = _api().create_security_group_rule(svc.cloud, ctx, body)
    except Conflict as exc:
        raise BadRequest(f"Rule already exists in group: {exc.message}") from None
    except NotFound:
        raise NotFound(f"Security group {parent_id} not found.") from None
    names: dict[str, dict[str, Any] | None] = {}
    if group_id:
        names[group_id] = {"name": source.get("name"), "tenant_id": source.get("project_id")}
    view = _rule_view(dict(created), names)
    assert view is not None
    return view


def delete_rule(svc: ComputeService, ctx: AuthContext, rule_id: str) -> None:
    svc.authorize(_SG + "rule:delete", ctx, _own(ctx))
    rule_id = _check_id(rule_id, "Security group rule")
    try:
        _api().show_security_group_rule(svc.cloud, ctx, rule_id)
        _api().delete_security_group_rule(svc.cloud, ctx, rule_id)
    except NotFound:
        raise NotFound(f"Security group with rule {rule_id} not found.") from None


# --- floating IPs ----------------------------------------------------------------------------


def _pools(svc: ComputeService, ctx: AuthContext) -> list[dict[str, Any]]:
    return list(_api().list_networks(svc.cloud, ctx, **{"router:external": "True"}))


def fip_view(fip: dict[str, Any], pools: dict[str, str]) -> dict[str, Any]:
    instance_id = None
    if fip.get("port_id"):
        port = fip.get("port_details") or {}
        instance_id = port.get("device_id") or None
    network = fip.get("floating_network_id") or ""
    return {"id": fip["id"], "ip": fip.get("floating_ip_address"),
            "pool": pools.get(network) or network, "fixed_ip": fip.get("fixed_ip_address"),
            "instance_id": instance_id}


def _pool_names(svc: ComputeService, ctx: AuthContext) -> dict[str, str]:
    return {n["id"]: n.get("name") or n["id"] for n in _pools(svc, ctx)}


def list_fips(svc: ComputeService, ctx: AuthContext) -> list[dict[str, Any]]:
    svc.authorize(_FIP + "list", ctx, _own(ctx))
    pools = _pool_names(svc, ctx)
    fips = _api().list_floating_ips(svc.cloud, ctx, project_id=ctx.project_id or "")
    return [fip_view(f, pools) for f in fips]


def _fip(svc: ComputeService, ctx: AuthContext, fip_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(fip_id)
        return dict(_api().show_floating_ip(svc.cloud, ctx, fip_id))
    except (ValueError, NotFound):
        raise NotFound(f"Floating IP not found for ID {fip_id}") from None


def show_fip(svc: ComputeService, ctx: AuthContext, fip_id: str) -> dict[str, Any]:
    svc.authorize(_FIP + "show", ctx, _own(ctx))
    return fip_view(_fip(svc, ctx, fip_id), _pool_names(svc, ctx))


def create_fip(svc: ComputeService, ctx: AuthContext, pool: str | None) -> dict[str, Any]:
    svc.authorize(_FIP + "create", ctx, _own(ctx))
    pools = _pools(svc, ctx)
    if pool:
        found = [n for n in pools if pool in (n["id"], n.get("name"))]
    else:
        found = [n for n in pools if n.get("name") == "public"] or pools[:1]
    if not found:
        raise NotFound("Floating IP pool not found.")
    network = found[0]
    try:
        fip = _api().create_floating_ip(svc.cloud, ctx, {"floating_network_id": network["id"]})
    except Conflict:
        raise NotFound(f"No more floating IPs in pool {pool}." if pool
                       else "No more floating IPs available.") from None
    except Forbidden:
        raise Forbidden(f"IP allocation over quota in pool {pool}." if pool
                        else "IP allocation over quota.") from None
    return fip_view(fip, {n["id"]: n.get("name") or n["id"] for n in pools})


def delete_fip(svc: ComputeService, ctx: AuthContext, fip_id: str) -> None:
    svc.authorize(_FIP + "delete", ctx, _own(ctx))
    fip = _fip(svc, ctx, fip_id)
    server_id = (fip.get("port_details") or {}).get("device_id") if fip.get("port_id") else None
    try:
        _api().delete_floating_ip(svc.cloud, ctx, fip["id"])
    except NotFound:
        raise NotFound(f"Floating IP not found for ID {fip_id}") from None
    if server_id:
        interfaces.network_changed(svc, server_id)


def pools(svc: ComputeService, ctx: AuthContext) -> list[dict[str, str]]:
    svc.authorize("os_compute_api:os-floating-ip-pools", ctx, _own(ctx))
    return [{"name": n.get("name") or n["id"]} for n in _pools(svc, ctx)]


def _by_address(svc: ComputeService, ctx: AuthContext, address: str) -> dict[str, Any]:
    found = _api().list_floating_ips(svc.cloud, ctx, floating_ip_address=address)
    if not found:
        raise NotFound("floating IP not found")
    return dict(found[0])


def add_fip(svc: ComputeService, ctx: AuthContext, server_id: str, address: str,
            fixed_address: str | None) -> None:
    server = get(svc, ctx, server_id, _FIP + "add")
    vifs = list(server.network_info or [])
    if not vifs:
        raise BadRequest("Instance network is not ready yet")
    fixed = [(v, ip["address"]) for v in vifs for ip in v.get("ips", [])
             if ip.get("type", "fixed") == "fixed"]
    if not fixed:
        raise BadRequest("No fixed IPs associated to instance")
    if fixed_address is not None:
        chosen = [f for f in fixed if f[1] == fixed_address]
        if not chosen:
            raise BadRequest("Specified fixed address not assigned to instance")
    else:
        chosen = [f for f in fixed if ipaddress.ip_address(f[1]).version == 4]
        if not chosen:
            raise BadRequest(f"Unable to associate floating IP {address} to any fixed IPs for "
                             f"instance {server.id}. Instance has no fixed IPv4 addresses to "
                             "associate.")
    vif, fixed_ip = chosen[0]
    fip = _by_address(svc, ctx, address)
    previous = (fip.get("port_details") or {}).get("device_id") if fip.get("port_id") else None
    try:
        _api().update_floating_ip(svc.cloud, ctx, fip["id"], {"port_id": vif["port_id"],
                                                              "fixed_ip_address": fixed_ip})
    except (Conflict, BadRequest) as exc:
        raise BadRequest(f"Floating IP {address} association has failed. {exc.message}") \
            from None
    interfaces.network_changed(svc, server.id)
    if previous and previous != server.id:
        interfaces.network_changed(svc, previous)


def remove_fip(svc: ComputeService, ctx: AuthContext, server_id: str, address: str) -> None:
    server = get(svc, ctx, server_id, _FIP + "remove")
    fip = _by_address(svc, ctx, address)
    device = (fip.get("port_details") or {}).get("device_id") if fip.get("port_id") else None
    if not fip.get("port_id") or device != server.id:
        raise Conflict(f"Floating IP {address} is not associated with instance {server_id}.")
    _api().update_floating_ip(svc.cloud, ctx, fip["id"], {"port_id": None})
    interfaces.network_changed(svc, server.id)


# --- multinic: addFixedIp / removeFixedIp (2.1 - 2.43) --------------------------------------


def add_fixed_ip(svc: ComputeService, ctx: AuthContext, server_id: str, network_id: str) -> None:
    """One more fixed IP, from a subnet of ``network_id``, on the server's port on
    that network (Nova's Neutron ``add_fixed_ip_to_instance``: the first port and
    subnet Networking accepts). Nova does it after answering 202 (a cast to the
    compute host): a network the server has no port on changes nothing."""
    from onestack.compute.service._common import check_locked

    server = get(svc, ctx, server_id, "os_compute_api:os-multinic:add")
    check_locked(svc, ctx, server)
    try:
        subnets = list(_api().show_network(svc.cloud, ctx, network_id).get("subnets") or [])
    except ApiError:
        subnets = []
    for port in _api().list_ports(svc.cloud, None, device_id=server.id, network_id=network_id):
        for subnet_id in subnets:
            fixed = [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]}
                     for f in port.get("fixed_ips") or []]
            try:
                _api().update_port(svc.cloud, None, port["id"],
                                   {"fixed_ips": [*fixed, {"subnet_id": subnet_id}]})
            except ApiError as exc:
                log.debug("addFixedIp: port %s on subnet %s: %s", port["id"], subnet_id, exc)
                continue
            interfaces.network_changed(svc, server.id)
            return
    log.warning("addFixedIp: no port of server %s on network %s took a fixed IP",
                server.id, network_id)


def remove_fixed_ip(svc: ComputeService, ctx: AuthContext, server_id: str, address: str) -> None:
    """The fixed IP ``address`` off the server's port holding it (Nova's Neutron
    ``remove_fixed_ip_from_instance``); after Nova's 202, an address the server
    does not hold changes nothing."""
    from onestack.compute.service._common import check_locked

    server = get(svc, ctx, server_id, "os_compute_api:os-multinic:remove")
    check_locked(svc, ctx, server)
    wanted = ipaddress.ip_address(address)
    for port in _api().list_ports(svc.cloud, None, device_id=server.id):
        fixed = [{"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]}
                 for f in port.get("fixed_ips") or []]
        kept = [f for f in fixed if ipaddress.ip_address(f["ip_address"]) != wanted]
        if len(kept) == len(fixed):
            continue
        try:
            _api().update_port(svc.cloud, None, port["id"], {"fixed_ips": kept})
        except ApiError as exc:
            log.warning("removeFixedIp: port %s: %s", port["id"], exc)
            return
        interfaces.network_changed(svc, server.id)
        return
    log.warning("removeFixedIp: server %s has no fixed IP %s", server.id, address)


def server_groups(svc: ComputeService, ctx: AuthContext, server_id: str) -> list[dict[str, Any]]:
    """``GET /servers/{id}/os-security-groups``: the server's groups in Nova's
    view, read from Networking (only their names and ids when Networking does
    not run in this process)."""
    groups = interfaces.server_security_groups(svc, ctx, server_id)
    out = []
    for group in groups:
        try:
            found = _api().show_security_group(svc.cloud, ctx, group["id"])
        except ApiError:
            out.append(group)
            continue
        out.append(group_view(svc, ctx, dict(found)))
    return out
