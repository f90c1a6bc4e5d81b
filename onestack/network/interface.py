"""What other services may ask of Networking in-process - and nothing else.

Compute reaches Networking through this module only (an import-linter
contract holds it): a port for a server on the user's behalf (the user's
policy and quota apply, as through ``POST /v2.0/ports``), bound to the host
that runs the server, unbound and deleted; the networks a user may boot on.
The data plane reports a port's status here. Compute subscribes to the
events of its servers' ports (``subscribe_server_events``). Compute's proxy APIs of
before 2.36 (``os-security-groups``, ``os-security-group-rules``,
``os-floating-ips``) go through the security group, rule and floating IP
calls at the end. Functions take the ``Cloud``,
return the resource as the API shows it to that caller (blocking: call them
in a thread), and raise the same ``ApiError`` subclasses as the API (404,
403, 409 ...). A ``ctx`` of None means the cloud's own services acting
(Neutron's ``service`` role, which sees and sets the port binding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound
from onestack.network.core import NetworkService
from onestack.network.dataplane import (  # noqa: F401 - Compute's names for the events
    NETWORK_CHANGED,
    VIF_DELETED,
    VIF_PLUGGED,
    VIF_UNPLUGGED,
    ServerEvent,
    ServerEventListener,
)
from onestack.network.service import networks, port_views, ports, query
from onestack.network.service.policy import Caller, caller_for
from onestack.network.service.resources import NETWORKS, PORTS

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud

COMPUTE_OWNER = "compute:nova"


def _network(cloud: Cloud) -> NetworkService:
    svc = cloud.services.get(NetworkService.name)
    if not isinstance(svc, NetworkService):
        raise NotFound("The network service does not run in this process.")
    return svc


def _caller(net: NetworkService, ctx: AuthContext | None) -> Caller:
    if ctx is not None:
        return caller_for(net, ctx)
    # Project-scoped, as Nova's service user in the ``service`` project
    # (Neutron's rules refuse tokens of no project).
    service = AuthContext(token="", user_id="onestack-service", project_id="onestack-service",
                          roles=("service", "admin", "member", "reader"))
    return caller_for(net, service)


def create_port(cloud: Cloud, ctx: AuthContext, network_id: str, **attrs: Any) -> dict[str, Any]:
    """A port on ``network_id`` for the caller (``fixed_ips``, ``security_groups``,
    ``device_id``, ``device_owner`` ... as in ``POST /v2.0/ports``)."""
    net = _network(cloud)
    return ports.create(net, _caller(net, ctx), [{"network_id": network_id, **attrs}])[0]


def show_port(cloud: Cloud, ctx: AuthContext | None, port_id: str) -> dict[str, Any]:
    """The port as ``ctx`` may see it (None: as the service sees it, binding included)."""
    net = _network(cloud)
    return port_views.show(net, _caller(net, ctx), port_id)


def list_ports(cloud: Cloud, ctx: AuthContext | None, **filters: str) -> list[dict[str, Any]]:
    """Ports matching API filters (``device_id=...``, ``network_id=...``)."""
    net = _network(cloud)
    q = query.parse(PORTS, list(filters.items()))
    return port_views.list_ports(net, _caller(net, ctx), q)[0]


def update_port(cloud: Cloud, ctx: AuthContext | None, port_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """As ``PUT /v2.0/ports/{id}``."""
    net = _network(cloud)
    return ports.update(net, _caller(net, ctx), port_id, changes)


def bind_port(
    cloud: Cloud,
    port_id: str,
    host: str,
    *,
    device_id: str | None = None,
    device_owner: str = COMPUTE_OWNER,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bind a port to ``host`` for a server (as Nova does with the service role):
    ``binding:vif_type`` ``bridge`` and its ``vif_details`` come back."""
    changes: dict[str, Any] = {"binding:host_id": host, "device_owner": device_owner}
    if device_id is not None:
        changes["device_id"] = device_id
    if profile is not None:
        changes["binding:profile"] = profile
    return update_port(cloud, None, port_id, changes)


def unbind_port(cloud: Cloud, port_id: str) -> dict[str, Any]:
    """Detach a port from its server and host (it stays, DOWN and unbound)."""
    changes = {"binding:host_id": "", "device_id": "", "device_owner": "", "binding:profile": None}
    return update_port(cloud, None, port_id, changes)


def delete_port(cloud: Cloud, ctx: AuthContext | None, port_id: str) -> None:
    """Delete a port (None: the service deletes a port it created for a server)."""
    net = _network(cloud)
    ports.delete(net, _caller(net, ctx), port_id)


def set_port_status(cloud: Cloud, port_id: str, status: str) -> bool:
    """The data plane reports a port ``ACTIVE`` (wired) or ``DOWN``; True if it changed."""
    return ports.set_status(_network(cloud), port_id, status)


def subscribe_server_events(cloud: Cloud, listener: ServerEventListener) -> None:
    """``listener(events)`` is called with what happens to servers' ports, as
    Neutron notifies Nova (``os-server-external-events``): ``ServerEvent(name,
    server_id, port_id)`` with ``name`` ``network-changed`` (its fixed IPs changed,
    a floating IP came or went), ``network-vif-deleted`` (the port was deleted),
    ``network-vif-plugged`` / ``network-vif-unplugged`` (its status became
    ``ACTIVE`` / left it). Called after the change committed, from a thread of
    Networking's, a batch at a time and in order; a listener's error is logged."""
    _network(cloud).server_events.subscribe(listener)


def show_network(cloud: Cloud, ctx: AuthContext, network_id: str) -> dict[str, Any]:
    net = _network(cloud)
    return networks.show(net, _caller(net, ctx), network_id)


def list_networks(cloud: Cloud, ctx: AuthContext, **filters: str) -> list[dict[str, Any]]:
    """Networks the caller sees matching API filters (``shared=True``, ``name=...``)."""
    net = _network(cloud)
    q = query.parse(NETWORKS, list(filters.items()))
    return networks.list_networks(net, _caller(net, ctx), q)[0]


def list_floating_ips(cloud: Cloud, ctx: AuthContext | None, **filters: str) -> list[dict[str, Any]]:
    """Floating IPs matching API filters (``port_id=...``): the public addresses
    Compute shows among a server's."""
    from onestack.network.service import floatingips
    from onestack.network.service.resources import FLOATINGIPS

    net = _network(cloud)
    q = query.parse(FLOATINGIPS, list(filters.items()))
    return floatingips.list_fips(net, _caller(net, ctx), q)[0]


def list_security_groups(cloud: Cloud, ctx: AuthContext, **filters: str) -> list[dict[str, Any]]:
    """Security groups the caller sees matching API filters (``name=...``): the
    groups a server's ports are given by name."""
    from onestack.network.service import security_groups
    from onestack.network.service.resources import SECURITY_GROUPS

    net = _network(cloud)
    security_groups.ensure_default_for(net, ctx.project_id)
    q = query.parse(SECURITY_GROUPS, list(filters.items()))
    return security_groups.list_groups(net, _caller(net, ctx), q)[0]


# --- for Compute's proxy APIs (os-security-groups, os-floating-ips, to 2.35) ---------------
# Each acts as the same call of the REST API does for ``ctx`` (the body is the
# resource's, as in ``POST /v2.0/<collection>``).


def show_security_group(cloud: Cloud, ctx: AuthContext, group_id: str) -> dict[str, Any]:
    from onestack.network.service import security_groups

    net = _network(cloud)
    return security_groups.show(net, _caller(net, ctx), group_id)


def create_security_group(cloud: Cloud, ctx: AuthContext, body: dict[str, Any]) -> dict[str, Any]:
    from onestack.network.service import security_groups

    net = _network(cloud)
    return security_groups.create(net, _caller(net, ctx), [body])[0]


def update_security_group(cloud: Cloud, ctx: AuthContext, group_id: str, body: dict[str, Any]) -> dict[str, Any]:
    from onestack.network.service import security_groups

    net = _network(cloud)
    return security_groups.update(net, _caller(net, ctx), group_id, body)


def delete_security_group(cloud: Cloud, ctx: AuthContext, group_id: str) -> None:
    from onestack.network.service import security_groups

    net = _network(cloud)
    security_groups.delete(net, _caller(net, ctx), group_id)


def show_security_group_rule(cloud: Cloud, ctx: AuthContext, rule_id: str) -> dict[str, Any]:
    from onestack.network.service import sg_rules

    net = _network(cloud)
    return sg_rules.show(net, _caller(net, ctx), rule_id)


def create_security_group_rule(cloud: Cloud, ctx: AuthContext, body: dict[str, Any]) -> dict[str, Any]:
    from onestack.network.service import sg_rules

    net = _network(cloud)
    return sg_rules.create(net, _caller(net, ctx), [body])[0]


def delete_security_group_rule(cloud: Cloud, ctx: AuthContext, rule_id: str) -> None:
    from onestack.network.service import sg_rules

    net = _network(cloud)
    sg_rules.delete(net, _caller(net, ctx), rule_id)


def show_floating_ip(cloud: Cloud, ctx: AuthContext, fip_id: str) -> dict[str, Any]:
    from onestack.network.service import floatingips

    net = _network(cloud)
    return floatingips.show(net, _caller(net, ctx), fip_id)


def create_floating_ip(cloud: Cloud, ctx: AuthContext, body: dict[str, Any]) -> dict[str, Any]:
    from onestack.network.service import floatingips

    net = _network(cloud)
    return floatingips.create(net, _caller(net, ctx), [body])[0]


def update_floating_ip(cloud: Cloud, ctx: AuthContext, fip_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """As ``PUT /v2.0/floatingips/{id}``: ``{"port_id": ...}`` associates, None dissociates."""
    from onestack.network.service import floatingips

    net = _network(cloud)
    return floatingips.update(net, _caller(net, ctx), fip_id, body)


def delete_floating_ip(cloud: Cloud, ctx: AuthContext, fip_id: str) -> None:
    from onestack.network.service import floatingips

    net = _network(cloud)
    floatingips.delete(net, _caller(net, ctx), fip_id)
