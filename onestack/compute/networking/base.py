"""What Compute asks of Networking, and the errors it answers with.

Ports and networks are dicts in Neutron's wire shape (``id``,
``network_id``, ``mac_address``, ``fixed_ips`` [{``subnet_id``,
``ip_address``}], ``security_groups``, ``device_id``, ``device_owner``,
``binding:host_id``, ``binding:vif_type``, ``binding:vif_details``,
``status`` ...). Two implementations: :mod:`.neutron` over the Networking
service's interface in this process, and :mod:`.fake` in memory (API tests,
and a cloud that runs no Networking). Errors are raised as the classes below
with Nova's messages, so the service layer renders them without knowing
which implementation answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound

Port = dict[str, Any]
Network = dict[str, Any]


class NetworkNotFound(BadRequest):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.")


class PortNotFound(NotFound):
    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port id {port_id} could not be found.")


class PortInUse(Conflict):
    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} is still in use.")


class FixedIpInUse(BadRequest):
    def __init__(self, address: str) -> None:
        super().__init__(f"Fixed IP address {address} is already in use on instance .")


class FixedIpInvalid(BadRequest):
    def __init__(self, address: str) -> None:
        super().__init__(f"Fixed IP address {address} is invalid.")


class NoMoreFixedIps(Conflict):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"No fixed IP addresses available for network: {network_id}")


class PortLimitExceeded(Forbidden):
    def __init__(self) -> None:
        super().__init__("Maximum number of ports exceeded")


class SecurityGroupNotFound(BadRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"Security group {name} not found.")


class NetworkAmbiguous(Conflict):
    def __init__(self) -> None:
        super().__init__("Multiple possible networks found, use a Network ID to be more "
                         "specific.")


class UnableToAutoAllocate(BadRequest):
    def __init__(self, project_id: str | None) -> None:
        super().__init__(f"Unable to automatically allocate a network for project {project_id}")


@dataclass(frozen=True)
class RequestedNetwork:
    """One entry of a boot request's ``networks``."""

    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None
    tag: str | None = None


@dataclass
class Allocation:
    """The ports a server got, in NIC order, and which of them Compute created."""

    ports: list[Port] = field(default_factory=list)
    created: list[str] = field(default_factory=list)


class Networking(Protocol):
    def get_network(self, ctx: AuthContext, network_id: str) -> Network:
        """The network as ``ctx`` sees it; ``NetworkNotFound`` if it cannot."""
        ...

    def available_networks(self, ctx: AuthContext) -> list[Network]:
        """Networks a server of ``ctx`` may be put on without naming one: the
        project's own and the shared ones, not external (Nova's rule)."""
        ...

    def visible_networks(self, ctx: AuthContext) -> list[Network]:
        """Every network ``ctx`` sees (what ``os-networks`` lists)."""
        ...

    def get_port(self, ctx: AuthContext | None, port_id: str) -> Port:
        """``PortNotFound`` if ``ctx`` cannot see it (None: as the service)."""
        ...

    def create_port(self, ctx: AuthContext, network_id: str, *, device_id: str,
                    device_owner: str, fixed_ip: str | None = None,
                    security_groups: Sequence[str] | None = None) -> Port: ...

    def update_port(self, ctx: AuthContext | None, port_id: str,
                    changes: dict[str, Any]) -> Port: ...

    def bind_port(self, port_id: str, host: str, device_id: str, device_owner: str) -> Port: ...

    def unbind_port(self, port_id: str) -> Port: ...

    def delete_port(self, port_id: str) -> None: ...

    def ports_of(self, device_ids: Sequence[str]) -> list[Port]:
        """Every port whose ``device_id`` is one of ``device_ids``."""
        ...

    def floating_ips(self, port_ids: Sequence[str]) -> dict[str, list[str]]:
        """Floating addresses associated with each of the ports."""
        ...

    def security_group_ids(self, ctx: AuthContext, names: Sequence[str]) -> list[str]:
        """Ids of the caller's security groups named (or id'd) so; ``SecurityGroupNotFound``."""
        ...

    def security_group_names(self, ids: Sequence[str]) -> dict[str, str]: ...

    def auto_allocate(self, ctx: AuthContext) -> Network:
        """Get-me-a-network: a network for the project, made if needed; or
        ``UnableToAutoAllocate``."""
        ...
