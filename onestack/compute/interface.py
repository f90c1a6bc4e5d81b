"""What other services may ask of Compute in-process.

* Networking's metadata proxy signs the instance headers it forwards with
  ``metadata_proxy_secret`` (the shared secret of Nova's
  ``metadata_proxy_shared_secret``) and forwards to
  ``<base_url>/compute/metadata/<path>``; or answers in-process with
  ``metadata_lookup``.
* Networking tells Compute that a server's ports changed (a floating IP
  associated, an address added) with ``network_changed`` - Neutron's
  ``network-changed`` external event - so the server's addresses are current;
  ``network_events`` takes the events Networking publishes (subscribed by
  ``ComputeApp``: a port deleted, its addresses or floating IPs changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onestack.common.cloud import Cloud
    from onestack.compute.core import ComputeService


def _compute(cloud: Cloud) -> ComputeService | None:
    return cloud.services.get("compute")


def metadata_proxy_secret(cloud: Cloud) -> bytes:
    """The secret the proxy signs ``X-Instance-ID`` with (HMAC-SHA256, hex)."""
    svc = _compute(cloud)
    if svc is None:
        raise LookupError("Compute does not run in this process")
    return svc.metadata_secret


def sign_instance_id(cloud: Cloud, instance_id: str) -> str:
    """``X-Instance-ID-Signature`` for ``instance_id``."""
    from onestack.compute.service.metadata_service import sign

    return sign(metadata_proxy_secret(cloud), instance_id)


def metadata_lookup(cloud: Cloud, instance_id: str, project_id: str,
                    path: str) -> bytes | list[str] | None:
    """The metadata at ``path`` for a guest (blocking: call from a thread);
    None if there is none. Raises Compute's errors (404 for an unknown
    instance or a project that is not the instance's)."""
    from onestack.compute.service import metadata_service

    svc = _compute(cloud)
    if svc is None:
        return None
    caller = metadata_service.Caller(instance_id, project_id,
                                     metadata_service.sign(svc.metadata_secret, instance_id))
    return metadata_service.lookup(svc, caller, path)


def network_events(cloud: Cloud, events: Sequence[tuple[str, str, str]]) -> None:
    """Networking's events of servers' ports, ``(name, server_id, port_id)``, as
    ``os-server-external-events`` brings them to Nova (blocking): a server whose
    port changed (``network-changed``) or was deleted (``network-vif-deleted``)
    has its addresses read again, once per batch, and a deleted port's NIC
    leaves the guest; ``network-vif-plugged`` and ``-unplugged`` need nothing
    here (no boot waits for them)."""
    servers: dict[str, set[str]] = {}
    for name, server, port in events:
        if name in ("network-changed", "network-vif-deleted"):
            deleted = servers.setdefault(server, set())
            if name == "network-vif-deleted":
                deleted.add(port)
    for server_id, ports in servers.items():
        network_changed(cloud, server_id, frozenset(ports))


def network_changed(cloud: Cloud, server_id: str, deleted: frozenset[str] = frozenset()) -> bool:
    """Refresh the server's addresses from Networking (blocking), and unplug
    from its guest the ports of ``deleted`` it had; False if there is no such
    server."""
    from onestack.compute.service import interfaces

    svc = _compute(cloud)
    if svc is None:
        return False
    return interfaces.network_changed(svc, server_id, deleted)
