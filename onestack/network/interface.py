"""The Networking service interface: what other services call in-process.

Compute asks for ports here instead of over HTTP (``cloud.service("network")``
is the ``NetworkService``): create a port for a server on the user's behalf
(the user's policy and quota apply), bind it to the host that runs the
server, unbind and delete it. The data plane reports a port's status here.
Every function returns the port as the API shows it to that caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext

if TYPE_CHECKING:
    from onestack.network.core import NetworkService
    from onestack.network.service.policy import Caller

COMPUTE_OWNER = "compute:nova"


def _service(net: NetworkService, project_id: str | None) -> Caller:
    """The cloud's own services acting (Neutron's ``service`` role)."""
    ctx = AuthContext(token="", user_id="onestack-service", project_id=project_id or "",
                      roles=("service", "admin", "member", "reader"))
    return net.caller(ctx)


def create_port(net: NetworkService, ctx: AuthContext, network_id: str, **attrs: Any) -> dict[str, Any]:
    """A port on ``network_id`` for the caller (``fixed_ips``, ``security_groups``,
    ``device_id``, ``device_owner`` ... as in ``POST /v2.0/ports``)."""
    from onestack.network.service import ports

    body = {"network_id": network_id, **attrs}
    return ports.create(net, net.caller(ctx), [body])[0]


def show_port(net: NetworkService, ctx: AuthContext | None, port_id: str) -> dict[str, Any]:
    """The port as ``ctx`` may see it (``None``: as the service sees it, binding included)."""
    from onestack.network.service import port_views

    caller = net.caller(ctx) if ctx is not None else _service(net, None)
    return port_views.show(net, caller, port_id)


def list_ports(net: NetworkService, ctx: AuthContext | None, **filters: str) -> list[dict[str, Any]]:
    """Ports matching API filters (``device_id=...``, ``network_id=...``)."""
    from onestack.network.service import port_views, query
    from onestack.network.service.resources import PORTS

    caller = net.caller(ctx) if ctx is not None else _service(net, None)
    q = query.parse(PORTS, list(filters.items()))
    return port_views.list_ports(net, caller, q)[0]


def update_port(net: NetworkService, ctx: AuthContext, port_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    from onestack.network.service import ports

    return ports.update(net, net.caller(ctx), port_id, changes)


def bind_port(
    net: NetworkService,
    port_id: str,
    host: str,
    *,
    device_id: str | None = None,
    device_owner: str = COMPUTE_OWNER,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bind a port to ``host`` for a server (as Nova does with the service role):
    ``binding:vif_type`` ``bridge`` and its ``vif_details`` come back."""
    from onestack.network.service import ports

    changes: dict[str, Any] = {"binding:host_id": host, "device_owner": device_owner}
    if device_id is not None:
        changes["device_id"] = device_id
    if profile is not None:
        changes["binding:profile"] = profile
    return ports.update(net, _service(net, None), port_id, changes)


def unbind_port(net: NetworkService, port_id: str) -> dict[str, Any]:
    """Detach a port from its server and host (it stays, DOWN and unbound)."""
    from onestack.network.service import ports

    changes = {"binding:host_id": "", "device_id": "", "device_owner": "", "binding:profile": None}
    return ports.update(net, _service(net, None), port_id, changes)


def delete_port(net: NetworkService, ctx: AuthContext | None, port_id: str) -> None:
    """Delete a port (``ctx`` None: the service deletes a port it created for a server)."""
    from onestack.network.service import ports

    caller = net.caller(ctx) if ctx is not None else _service(net, None)
    ports.delete(net, caller, port_id)


def set_port_status(net: NetworkService, port_id: str, status: str) -> bool:
    """The data plane reports a port ``ACTIVE`` (wired) or ``DOWN``; True if it changed."""
    from onestack.network.service import ports

    return ports.set_status(net, port_id, status)


def show_network(net: NetworkService, ctx: AuthContext, network_id: str) -> dict[str, Any]:
    from onestack.network.service import networks

    return networks.show(net, net.caller(ctx), network_id)


def list_networks(net: NetworkService, ctx: AuthContext, **filters: str) -> list[dict[str, Any]]:
    from onestack.network.service import networks, query
    from onestack.network.service.resources import NETWORKS

    q = query.parse(NETWORKS, list(filters.items()))
    return networks.list_networks(net, net.caller(ctx), q)[0]
