"""Catalog services (``/v3/services``). Deleting a service deletes its endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.ids import new_id
from onestack.identity.models import Endpoint, Service
from onestack.identity.service._resources import filter_rows, get_row, require_matching_id
from onestack.identity.service.roles import check_bool, check_string, require_object

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:get_service": ADMIN_OR_SYSTEM_READER,
    "identity:list_services": ADMIN_OR_SYSTEM_READER,
    "identity:create_service": ADMIN,
    "identity:update_service": ADMIN,
    "identity:delete_service": ADMIN,
}

_KNOWN = ("id", "type", "enabled", "links")


def service_ref(service: Service) -> dict[str, Any]:
    ref: dict[str, Any] = dict(service.extra or {})
    ref.update({"id": service.id, "type": service.type, "enabled": bool(service.enabled)})
    return ref


def load_service(s: Session, service_id: str) -> Service:
    return get_row(s, Service, service_id, "service")


def _validate(ref: dict[str, Any], *, create: bool) -> None:
    check_string(ref, "type", required=create, max_length=255, min_length=1)
    check_string(ref, "name", nullable=True, max_length=255)
    check_string(ref, "description", nullable=True, max_length=65535)
    check_bool(ref, "enabled")


def create_service(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    identity.enforcer.authorize("identity:create_service", ctx, {})
    ref = require_object(body, "service")
    _validate(ref, create=True)
    extra = {k: v for k, v in ref.items() if k not in _KNOWN}
    with identity.db.write() as s:
        service = Service(
            id=new_id(), type=ref["type"], enabled=ref.get("enabled", True), extra=extra
        )
        s.add(service)
        s.flush()
        out = service_ref(service)
    identity.touch()
    return out


def get_service(identity: Identity, ctx: AuthContext, service_id: str) -> dict[str, Any]:
    identity.enforcer.authorize("identity:get_service", ctx, {})
    with identity.db.read() as s:
        return service_ref(load_service(s, service_id))


def list_services(
    identity: Identity, ctx: AuthContext, filters: dict[str, str]
) -> list[dict[str, Any]]:
    identity.enforcer.authorize("identity:list_services", ctx, {})
    query = select(Service).order_by(Service.type, Service.id)
    query = filter_rows(query, Service, filters, ("type",))
    with identity.db.read() as s:
        refs = [service_ref(r) for r in s.scalars(query)]
    if "name" in filters:
        refs = [r for r in refs if r.get("name") == filters["name"]]
    return refs


def update_service(
    identity: Identity, ctx: AuthContext, service_id: str, body: Any
) -> dict[str, Any]:
    identity.enforcer.authorize("identity:update_service", ctx, {})
    ref = require_object(body, "service")
    _validate(ref, create=False)
    require_matching_id(ref, service_id)
    with identity.db.write() as s:
        service = load_service(s, service_id)
        if "type" in ref:
            service.type = ref["type"]
        if "enabled" in ref:
            service.enabled = ref["enabled"]
        extra = dict(service.extra or {})
        extra.update({k: v for k, v in ref.items() if k not in _KNOWN})
        service.extra = extra
        s.flush()
        out = service_ref(service)
    identity.touch()
    return out


def delete_service(identity: Identity, ctx: AuthContext, service_id: str) -> None:
    from onestack.identity.service.endpoints import delete_endpoint_rows

    identity.enforcer.authorize("identity:delete_service", ctx, {})
    with identity.db.write() as s:
        service = load_service(s, service_id)
        for endpoint_id in list(
            s.scalars(select(Endpoint.id).where(Endpoint.service_id == service_id))
        ):
            delete_endpoint_rows(s, endpoint_id)
        s.delete(service)
    identity.touch()
