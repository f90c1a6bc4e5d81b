"""Catalog endpoints (``/v3/endpoints``).

``interface`` is public, internal or admin; ``service_id`` and ``region_id``
must name existing rows (400 otherwise, nothing written); the legacy
``region`` alone names a region that is created when missing (as Keystone).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest
from onestack.common.ids import new_id
from onestack.identity.models import Endpoint, PolicyAssociation, ProjectEndpoint, Region, Service
from onestack.identity.service._resources import (
    expecting,
    filter_rows,
    get_row,
    require_matching_id,
)
from onestack.identity.service.roles import check_bool, check_string, require_object

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:get_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints": ADMIN_OR_SYSTEM_READER,
    "identity:create_endpoint": ADMIN,
    "identity:update_endpoint": ADMIN,
    "identity:delete_endpoint": ADMIN,
}

INTERFACES = ("public", "internal", "admin")
_URL = re.compile(r"^[a-zA-Z0-9+.-]+:.+")
_KNOWN = (
    "id",
    "service_id",
    "interface",
    "url",
    "region_id",
    "region",
    "enabled",
    "links",
    "legacy_endpoint_id",
)


def endpoint_ref(ep: Endpoint) -> dict[str, Any]:
    ref: dict[str, Any] = dict(ep.extra or {})
    ref.update(
        {
            "id": ep.id,
            "interface": ep.interface,
            "region_id": ep.region_id,
            "region": ep.region_id,
            "service_id": ep.service_id,
            "url": ep.url,
            "enabled": bool(ep.enabled),
        }
    )
    return ref


def load_endpoint(s: Session, endpoint_id: str) -> Endpoint:
    return get_row(s, Endpoint, endpoint_id, "endpoint")


def _validate(ref: dict[str, Any], *, create: bool) -> str | None:
    """Check the fields; returns the region id the body names (None if none)."""
    check_string(ref, "service_id", required=create, max_length=64, min_length=1)
    interface = check_string(ref, "interface", required=create, max_length=8)
    if interface is not None and interface not in INTERFACES:
        raise BadRequest(
            f"Invalid input for field 'interface': {interface!r} is not one of {list(INTERFACES)!r}"
        )
    url = check_string(ref, "url", required=create, max_length=225)
    if url is not None and not _URL.match(url):
        raise BadRequest(
            f"Invalid input for field 'url': {url!r} does not match '^[a-zA-Z0-9+.-]+:.+'"
        )
    check_bool(ref, "enabled")
    region_id = check_string(ref, "region_id", nullable=True, max_length=255)
    region = check_string(ref, "region", nullable=True, max_length=255)
    return region_id if region_id is not None else region


def _legacy_region(s: Session, ref: dict[str, Any]) -> None:
    """The v2-style ``region`` (without ``region_id``) names a region that is
    created if missing, as Keystone does for backward compatibility."""
    if ref.get("region_id") is None and ref.get("region") is not None:
        if s.get(Region, ref["region"]) is None:
            s.add(Region(id=ref["region"], description="", parent_region_id=None, extra={}))
            s.flush()


def _check_refs(s: Session, service_id: str | None, region_id: str | None) -> None:
    if service_id is not None and s.get(Service, service_id) is None:
        raise expecting(f"service_id {service_id}", "service table")
    if region_id is not None and s.get(Region, region_id) is None:
        raise expecting(f"region_id {region_id}", "region table")


def create_endpoint(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    identity.enforcer.authorize("identity:create_endpoint", ctx, {})
    ref = require_object(body, "endpoint")
    region_id = _validate(ref, create=True)
    extra = {k: v for k, v in ref.items() if k not in _KNOWN}
    with identity.db.write() as s:
        _legacy_region(s, ref)
        _check_refs(s, ref["service_id"], region_id)
        ep = Endpoint(
            id=new_id(),
            service_id=ref["service_id"],
            interface=ref["interface"],
            url=ref["url"],
            region_id=region_id,
            enabled=ref.get("enabled", True),
            extra=extra,
        )
        s.add(ep)
        s.flush()
        out = endpoint_ref(ep)
    identity.touch()
    return out


def get_endpoint(identity: Identity, ctx: AuthContext, endpoint_id: str) -> dict[str, Any]:
    identity.enforcer.authorize("identity:get_endpoint", ctx, {})
    with identity.db.read() as s:
        return endpoint_ref(load_endpoint(s, endpoint_id))


def list_endpoints(
    identity: Identity, ctx: AuthContext, filters: dict[str, str]
) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:list_endpoints", ctx, {})
    query = select(Endpoint).order_by(Endpoint.id)
    query = filter_rows(query, Endpoint, filters, ("interface", "service_id", "region_id"))
    with identity.db.read() as s:
        return [endpoint_ref(e) for e in s.scalars(query)]


def update_endpoint(
    identity: Identity, ctx: AuthContext, endpoint_id: str, body: Any
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:update_endpoint", ctx, {})
    ref = require_object(body, "endpoint")
    require_matching_id(ref, endpoint_id)
    region_id = _validate(ref, create=False)
    with identity.db.write() as s:
        ep = load_endpoint(s, endpoint_id)
        _legacy_region(s, ref)
        _check_refs(s, ref.get("service_id"), region_id)
        for field in ("service_id", "interface", "url", "enabled"):
            if field in ref:
                setattr(ep, field, ref[field])
        if "region_id" in ref or "region" in ref:
            ep.region_id = region_id
        extra = dict(ep.extra or {})
        extra.update({k: v for k, v in ref.items() if k not in _KNOWN})
        ep.extra = extra
        s.flush()
        out = endpoint_ref(ep)
    identity.touch()
    return out


def delete_endpoint_rows(s: Session, endpoint_id: str) -> None:
    """Drop an endpoint and what refers to it (project filters, policy associations)."""
    s.execute(delete(ProjectEndpoint).where(ProjectEndpoint.endpoint_id == endpoint_id))
    s.execute(delete(PolicyAssociation).where(PolicyAssociation.endpoint_id == endpoint_id))
    s.execute(delete(Endpoint).where(Endpoint.id == endpoint_id))


def delete_endpoint(identity: Identity, ctx: AuthContext, endpoint_id: str) -> None:
    identity.enforcer.authorize("identity:delete_endpoint", ctx, {})
    with identity.db.write() as s:
        load_endpoint(s, endpoint_id)
        delete_endpoint_rows(s, endpoint_id)
    identity.touch()
