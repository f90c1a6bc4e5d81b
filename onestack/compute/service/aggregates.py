"""Host aggregates (``os-aggregates``) and the availability zones they make:
a host is in the zone of its aggregates' ``availability_zone`` metadata, or
in the default zone."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.compute import kinds
from onestack.compute.models import Aggregate, ComputeNode

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_ROOT = "os_compute_api:os-aggregates:"
ZONE_KEY = "availability_zone"


def host_zones(s: Session, default: str) -> dict[str, str]:
    """Each host named by an aggregate with a zone -> that zone."""
    out: dict[str, str] = {}
    for hosts, metadata in s.execute(select(Aggregate.hosts, Aggregate.metadata_)):
        zone = (metadata or {}).get(ZONE_KEY)
        if zone:
            for host in hosts or []:
                out.setdefault(str(host), str(zone))
    return out


def zone_of(svc: ComputeService, host: str) -> str:
    with svc.db.read() as s:
        return host_zones(s, svc.conf.default_availability_zone).get(
            host, svc.conf.default_availability_zone)


def _id(aggregate_id: str) -> int:
    try:
        return int(aggregate_id)
    except ValueError:
        raise BadRequest("Invalid input received: id must be an integer") from None


def _find(s: Session, aggregate_id: str) -> Aggregate:
    row = s.get(Aggregate, _id(aggregate_id))
    if row is None:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.")
    return row


def view(row: Aggregate, *, with_uuid: bool, brief: bool = False) -> dict[str, Any]:
    metadata = dict(row.metadata_ or {})
    out: dict[str, Any] = {
        "availability_zone": metadata.get(ZONE_KEY), "created_at": row.created_at,
        "deleted": False, "deleted_at": None, "id": row.id, "name": row.name,
        "updated_at": row.updated_at,
    }
    if not brief:
        out["hosts"] = list(row.hosts or [])
        out["metadata"] = metadata
    if with_uuid:
        out["uuid"] = row.uuid
    return out


def list_aggregates(svc: ComputeService, ctx: AuthContext) -> list[Aggregate]:
    svc.authorize(_ROOT + "index", ctx, {})
    with svc.db.read() as s:
        rows = list(s.execute(select(Aggregate).order_by(Aggregate.id)).scalars())
        s.expunge_all()
        return rows


def get(svc: ComputeService, ctx: AuthContext, aggregate_id: str) -> Aggregate:
    svc.authorize(_ROOT + "show", ctx, {})
    with svc.db.read() as s:
        row = _find(s, aggregate_id)
        s.expunge(row)
        return row


def _check_zone(zone: str | None) -> None:
    if zone == "internal":
        raise BadRequest("Cannot update aggregate. Reason: The availability zone 'internal' "
                         "is reserved for the cloud's own services.")


def create(svc: ComputeService, ctx: AuthContext, name: str, zone: str | None) -> Aggregate:
    svc.authorize(_ROOT + "create", ctx, {})
    _check_zone(zone)
    with svc.db.write() as s:
        if s.scalar(select(Aggregate.id).where(Aggregate.name == name)) is not None:
            raise Conflict(f"Aggregate {name} already exists.")
        row = Aggregate(uuid=str(uuid.uuid4()), name=name,
                        metadata_={ZONE_KEY: zone} if zone else {}, hosts=[],
                        created_at=utcnow())
        s.add(row)
        s.flush()
        s.expunge(row)
        return row


def _zone_conflicts(s: Session, row: Aggregate, hosts: list[str], zone: str | None) -> list[str]:
    """Zones other aggregates put any of ``hosts`` in that differ from ``zone``."""
    others = []
    for other in s.execute(select(Aggregate).where(Aggregate.id != row.id)).scalars():
        other_zone = (other.metadata_ or {}).get(ZONE_KEY)
        if other_zone and other_zone != zone and set(other.hosts or []) & set(hosts):
            others.append(str(other_zone))
    return sorted(set(others))


def update(svc: ComputeService, ctx: AuthContext, aggregate_id: str,
           changes: dict[str, Any]) -> Aggregate:
    svc.authorize(_ROOT + "update", ctx, {})
    with svc.db.write() as s:
        row = _find(s, aggregate_id)
        if "name" in changes and changes["name"] != row.name:
            if s.scalar(select(Aggregate.id).where(Aggregate.name == changes["name"])):
                raise Conflict(f"Aggregate {changes['name']} already exists.")
            row.name = changes["name"]
        if "availability_zone" in changes:
            _set_zone(s, row, changes["availability_zone"], "update")
        row.updated_at = utcnow()
        s.flush()
        s.expunge(row)
        return row


def _set_zone(s: Session, row: Aggregate, zone: str | None, action: str) -> None:
    _check_zone(zone)
    conflicts = _zone_conflicts(s, row, list(row.hosts or []), zone) if zone else []
    if conflicts:
        raise BadRequest(f"Cannot update aggregate {row.id}. Reason: One or more hosts "
                         f"contained in aggregate {row.id} are already in other availability "
                         f"zone(s): {conflicts}.")
    metadata = dict(row.metadata_ or {})
    if zone:
        metadata[ZONE_KEY] = zone
    else:
        metadata.pop(ZONE_KEY, None)
    row.metadata_ = metadata


def delete(svc: ComputeService, ctx: AuthContext, aggregate_id: str) -> None:
    svc.authorize(_ROOT + "delete", ctx, {})
    with svc.db.write() as s:
        row = _find(s, aggregate_id)
        if row.hosts:
            raise BadRequest(f"Cannot remove host from aggregate {row.id}. Reason: Host "
                             "aggregate is not empty.")
        s.delete(row)


def _host_exists(svc: ComputeService, s: Session, host: str) -> bool:
    if s.scalar(select(ComputeNode.id).where(ComputeNode.host == host)) is not None:
        return True
    return bool(svc.cloud.hosts.services(svc.settings.hosts.service_down_time, host=host,
                                         binary=kinds.COMPUTE_BINARY))


def add_host(svc: ComputeService, ctx: AuthContext, aggregate_id: str, host: str) -> Aggregate:
    svc.authorize(_ROOT + "add_host", ctx, {})
    with svc.db.write() as s:
        row = _find(s, aggregate_id)
        if not _host_exists(svc, s, host):
            raise NotFound(f"Compute host {host} could not be found.")
        if host in (row.hosts or []):
            raise Conflict(f"Aggregate {row.id} already has host {host}.")
        zone = (row.metadata_ or {}).get(ZONE_KEY)
        conflicts = _zone_conflicts(s, row, [host], zone)
        if conflicts and zone:
            raise Conflict(f"Cannot add host to aggregate {row.id}. Reason: One or more hosts "
                           f"already in availability zone(s) {conflicts}.")
        row.hosts = [*(row.hosts or []), host]
        row.updated_at = utcnow()
        s.flush()
        s.expunge(row)
        return row


def remove_host(svc: ComputeService, ctx: AuthContext, aggregate_id: str,
                host: str) -> Aggregate:
    svc.authorize(_ROOT + "remove_host", ctx, {})
    with svc.db.write() as s:
        try:
            row = _find(s, aggregate_id)
        except NotFound:
            raise NotFound(f"Cannot remove host {host} in aggregate {aggregate_id}") from None
        if host not in (row.hosts or []):
            raise NotFound(f"Cannot remove host {host} in aggregate {aggregate_id}")
        row.hosts = [h for h in row.hosts if h != host]
        row.updated_at = utcnow()
        s.flush()
        s.expunge(row)
        return row


def set_metadata(svc: ComputeService, ctx: AuthContext, aggregate_id: str,
                 metadata: dict[str, Any]) -> Aggregate:
    svc.authorize(_ROOT + "set_metadata", ctx, {})
    with svc.db.write() as s:
        row = _find(s, aggregate_id)
        current = dict(row.metadata_ or {})
        if ZONE_KEY in metadata:
            _set_zone(s, row, metadata[ZONE_KEY], "set_metadata")
            current = dict(row.metadata_ or {})
        for key, value in metadata.items():
            if key == ZONE_KEY:
                continue
            if value is None:
                current.pop(key, None)
            else:
                current[key] = str(value)
        row.metadata_ = current
        row.updated_at = utcnow()
        s.flush()
        s.expunge(row)
        return row
