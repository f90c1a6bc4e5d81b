"""Networking through the Networking service of this cloud
(``onestack.network.interface``), with Neutron's errors turned into the
ones Nova answers (``Network X could not be found.`` is a 400 at boot, a
port Neutron does not show is ``Port id X could not be found.`` ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, Conflict, Forbidden, NotFound
from onestack.compute.networking.base import (
    FixedIpInUse,
    FixedIpInvalid,
    Network,
    NetworkNotFound,
    NoMoreFixedIps,
    Port,
    PortLimitExceeded,
    PortNotFound,
    SecurityGroupNotFound,
    UnableToAutoAllocate,
)

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud


def _api() -> Any:
    from onestack.network import interface

    return interface


class NeutronNetworking:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud

    def get_network(self, ctx: AuthContext, network_id: str) -> Network:
        try:
            return dict(_api().show_network(self.cloud, ctx, network_id))
        except NotFound:
            raise NetworkNotFound(network_id) from None

    def available_networks(self, ctx: AuthContext) -> list[Network]:
        """Nova's rule: the project's own networks and the shared ones, not external."""
        api = _api()
        own = api.list_networks(self.cloud, ctx, tenant_id=ctx.project_id or "")
        shared = api.list_networks(self.cloud, ctx, shared="True")
        found: dict[str, Network] = {}
        for net in [*own, *shared]:
            if not net.get("router:external") or net.get("shared"):
                if not net.get("router:external"):
                    found[net["id"]] = dict(net)
        return list(found.values())

    def visible_networks(self, ctx: AuthContext) -> list[Network]:
        return [dict(n) for n in _api().list_networks(self.cloud, ctx)]

    def get_port(self, ctx: AuthContext | None, port_id: str) -> Port:
        try:
            return dict(_api().show_port(self.cloud, ctx, port_id))
        except NotFound:
            raise PortNotFound(port_id) from None

    def create_port(self, ctx: AuthContext, network_id: str, *, device_id: str,
                    device_owner: str, fixed_ip: str | None = None,
                    security_groups: Sequence[str] | None = None) -> Port:
        attrs: dict[str, Any] = {"device_id": device_id, "device_owner": device_owner}
        if fixed_ip is not None:
            attrs["fixed_ips"] = [{"ip_address": fixed_ip}]
        if security_groups is not None:
            attrs["security_groups"] = list(security_groups)
        try:
            return dict(_api().create_port(self.cloud, ctx, network_id, **attrs))
        except ApiError as exc:
            raise _translate(exc, network_id, fixed_ip) from None

    def update_port(self, ctx: AuthContext | None, port_id: str, changes: dict[str, Any]) -> Port:
        try:
            return dict(_api().update_port(self.cloud, ctx, port_id, changes))
        except NotFound:
            raise PortNotFound(port_id) from None

    def bind_port(self, port_id: str, host: str, device_id: str, device_owner: str) -> Port:
        try:
            return dict(_api().bind_port(self.cloud, port_id, host, device_id=device_id,
                                         device_owner=device_owner))
        except NotFound:
            raise PortNotFound(port_id) from None

    def unbind_port(self, port_id: str) -> Port:
        try:
            return dict(_api().unbind_port(self.cloud, port_id))
        except NotFound:
            raise PortNotFound(port_id) from None

    def delete_port(self, port_id: str) -> None:
        try:
            _api().delete_port(self.cloud, None, port_id)
        except NotFound:
            raise PortNotFound(port_id) from None

    def ports_of(self, device_ids: Sequence[str]) -> list[Port]:
        api = _api()
        out: list[Port] = []
        for device_id in device_ids:
            out.extend(dict(p) for p in api.list_ports(self.cloud, None, device_id=device_id))
        return out

    def floating_ips(self, port_ids: Sequence[str]) -> dict[str, list[str]]:
        api = _api()
        out: dict[str, list[str]] = {}
        for port_id in port_ids:
            for fip in api.list_floating_ips(self.cloud, None, port_id=port_id):
                if fip.get("floating_ip_address"):
                    out.setdefault(port_id, []).append(str(fip["floating_ip_address"]))
        return out

    def security_group_ids(self, ctx: AuthContext, names: Sequence[str]) -> list[str]:
        groups = _api().list_security_groups(self.cloud, ctx)
        own = [g for g in groups if g.get("project_id") == ctx.project_id]
        out: list[str] = []
        for name in names:
            match = [g["id"] for g in own if g.get("name") == name or g.get("id") == name]
            if not match:
                match = [g["id"] for g in groups if g.get("id") == name]
            if not match:
                raise SecurityGroupNotFound(name)
            out.append(str(match[0]))
        return out

    def security_group_names(self, ids: Sequence[str]) -> dict[str, str]:
        groups = _api().list_security_groups(self.cloud, AuthContext(
            token="", user_id="onestack-service", project_id="onestack-service",
            roles=("admin", "member", "reader")))
        wanted = set(ids)
        return {g["id"]: g.get("name", "") for g in groups if g["id"] in wanted}

    def auto_allocate(self, ctx: AuthContext) -> Network:
        raise UnableToAutoAllocate(ctx.project_id)


def _translate(exc: ApiError, network_id: str, fixed_ip: str | None) -> ApiError:
    """Neutron's error of a port create, as Nova answers it."""
    kind = type(exc).__name__
    if isinstance(exc, NotFound):
        return NetworkNotFound(network_id)
    if kind == "IpAddressAlreadyAllocated" or (kind == "IpAddressInUse"):
        return FixedIpInUse(fixed_ip or "")
    if kind == "IpAddressGenerationFailure":
        return NoMoreFixedIps(network_id)
    if kind in ("InvalidIpForNetwork", "InvalidIpForSubnet", "InvalidInput") and fixed_ip:
        return FixedIpInvalid(fixed_ip)
    if kind == "OverQuota":
        return PortLimitExceeded()
    if isinstance(exc, Forbidden):
        return Forbidden(exc.message)
    if isinstance(exc, Conflict):
        return Conflict(exc.message)
    return exc
