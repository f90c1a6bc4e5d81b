"""``/v3/policies`` (opaque policy blobs) and OS-ENDPOINT-POLICY associations.

A policy is associated with an endpoint, a service, or a service in a region;
the policy of an endpoint is resolved as Keystone does: its own association,
else its region's (walking up parent regions) for its service, else its
service's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import NotFound, ValidationError
from onestack.common.ids import new_id
from onestack.identity.models import Endpoint, Policy, PolicyAssociation, Region, Service
from onestack.identity.service._resources import authorize_action, get_row, merge_extra

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:get_policy": ADMIN_OR_SYSTEM_READER,
    "identity:list_policies": ADMIN_OR_SYSTEM_READER,
    "identity:create_policy": ADMIN,
    "identity:update_policy": ADMIN,
    "identity:delete_policy": ADMIN,
    "identity:create_policy_association_for_endpoint": ADMIN,
    "identity:check_policy_association_for_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:delete_policy_association_for_endpoint": ADMIN,
    "identity:create_policy_association_for_service": ADMIN,
    "identity:check_policy_association_for_service": ADMIN_OR_SYSTEM_READER,
    "identity:delete_policy_association_for_service": ADMIN,
    "identity:create_policy_association_for_region_and_service": ADMIN,
    "identity:check_policy_association_for_region_and_service": ADMIN_OR_SYSTEM_READER,
    "identity:delete_policy_association_for_region_and_service": ADMIN,
    "identity:get_policy_for_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints_for_policy": ADMIN_OR_SYSTEM_READER,
}

# Keystone assigns the id and the links itself: a body's are ignored.
_IGNORED = ("id", "links")


def policy_dict(p: Policy) -> dict[str, Any]:
    body: dict[str, Any] = dict(p.extra or {})
    body.update(id=p.id, type=p.type, blob=p.blob)
    return body




def _check(body: Any, *, create: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("Invalid input for field 'policy': it must be an object.")
    if create:
        for required in ("type", "blob"):
            if required not in body:
                raise ValidationError(f"'{required}' is a required property.")
    if "type" in body:
        if not isinstance(body["type"], str) or not body["type"]:
            raise ValidationError("Invalid input for field 'type': it must be a non-empty string.")
        if len(body["type"]) > 255:
            raise ValidationError("Invalid input for field 'type': it is too long (255 characters at most).")
    if "blob" in body and not isinstance(body["blob"], str):
        raise ValidationError("Invalid input for field 'blob': it must be a string.")
    return body


def _policy(session: Session, policy_id: str) -> Policy:
    return get_row(session, Policy, policy_id, "policy")


def create_policy(identity: Identity, ctx: AuthContext, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "create_policy")
    fields = _check(body, create=True)
    extra = {k: v for k, v in fields.items() if k not in ("type", "blob", *_IGNORED)}
    with identity.db.write() as s:
        p = Policy(id=new_id(), type=fields["type"], blob=fields["blob"], extra=extra)
        s.add(p)
        s.flush()
        return policy_dict(p)


def get_policy(identity: Identity, ctx: AuthContext, policy_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_policy")
    with identity.db.read() as s:
        return policy_dict(_policy(s, policy_id))


def list_policies(identity: Identity, ctx: AuthContext, type_: str | None = None) -> list[dict[str, Any]]:
    authorize_action(identity, ctx, "list_policies")
    with identity.db.read() as s:
        query = select(Policy).order_by(Policy.id)
        if type_ is not None:
            query = query.where(Policy.type == type_)
        return [policy_dict(p) for p in s.scalars(query)]


def update_policy(identity: Identity, ctx: AuthContext, policy_id: str, body: Any) -> dict[str, Any]:
    authorize_action(identity, ctx, "update_policy")
    fields = _check(body, create=False)
    if "id" in fields and fields["id"] != policy_id:  # Keystone's policy manager
        raise ValidationError("Cannot change policy ID")
    with identity.db.write() as s:
        p = _policy(s, policy_id)
        if "type" in fields:
            p.type = fields["type"]
        if "blob" in fields:
            p.blob = fields["blob"]
        merge_extra(p, fields, ("type", "blob", *_IGNORED))
        s.flush()
        return policy_dict(p)


def delete_policy(identity: Identity, ctx: AuthContext, policy_id: str) -> None:
    authorize_action(identity, ctx, "delete_policy")
    with identity.db.write() as s:
        p = _policy(s, policy_id)
        for assoc in s.scalars(select(PolicyAssociation).where(PolicyAssociation.policy_id == policy_id)):
            s.delete(assoc)
        s.delete(p)


# --- OS-ENDPOINT-POLICY ------------------------------------------------------------


def _target(session: Session, endpoint_id: str | None, service_id: str | None,
            region_id: str | None) -> None:
    if endpoint_id is not None:
        get_row(session, Endpoint, endpoint_id, "endpoint")
    if service_id is not None:
        get_row(session, Service, service_id, "service")
    if region_id is not None:
        get_row(session, Region, region_id, "region")


def _find(session: Session, endpoint_id: str | None, service_id: str | None,
          region_id: str | None) -> PolicyAssociation | None:
    return session.scalars(
        select(PolicyAssociation).where(
            PolicyAssociation.endpoint_id.is_(None) if endpoint_id is None
            else PolicyAssociation.endpoint_id == endpoint_id,
            PolicyAssociation.service_id.is_(None) if service_id is None
            else PolicyAssociation.service_id == service_id,
            PolicyAssociation.region_id.is_(None) if region_id is None
            else PolicyAssociation.region_id == region_id,
        )
    ).first()


def _kind(endpoint_id: str | None, region_id: str | None) -> str:
    if endpoint_id is not None:
        return "endpoint"
    return "region_and_service" if region_id is not None else "service"


def create_association(identity: Identity, ctx: AuthContext, policy_id: str, *, endpoint_id: str | None = None,
                       service_id: str | None = None, region_id: str | None = None) -> None:
    """Associate; an existing association of the same target moves to this policy."""
    authorize_action(identity, ctx, f"create_policy_association_for_{_kind(endpoint_id, region_id)}")
    with identity.db.write() as s:
        db.lock(s, "policy-association")  # one association per target, found by a query
        _policy(s, policy_id)
        _target(s, endpoint_id, service_id, region_id)
        row = _find(s, endpoint_id, service_id, region_id)
        if row is None:
            s.add(PolicyAssociation(id=new_id(), policy_id=policy_id, endpoint_id=endpoint_id,
                                    service_id=service_id, region_id=region_id))
        else:
            row.policy_id = policy_id


def _association(s: Session, policy_id: str, endpoint_id: str | None, service_id: str | None,
                 region_id: str | None) -> PolicyAssociation:
    """The policy's association with the endpoint/service/region (each must exist), or 404."""
    _policy(s, policy_id)
    _target(s, endpoint_id, service_id, region_id)
    row = _find(s, endpoint_id, service_id, region_id)
    if row is None or row.policy_id != policy_id:
        raise NotFound(f"Could not find policy association for policy {policy_id}.")
    return row


def check_association(identity: Identity, ctx: AuthContext, policy_id: str, *, endpoint_id: str | None = None,
                      service_id: str | None = None, region_id: str | None = None) -> None:
    authorize_action(identity, ctx, f"check_policy_association_for_{_kind(endpoint_id, region_id)}")
    with identity.db.read() as s:
        _association(s, policy_id, endpoint_id, service_id, region_id)


def delete_association(identity: Identity, ctx: AuthContext, policy_id: str, *, endpoint_id: str | None = None,
                       service_id: str | None = None, region_id: str | None = None) -> None:
    authorize_action(identity, ctx, f"delete_policy_association_for_{_kind(endpoint_id, region_id)}")
    with identity.db.write() as s:
        s.delete(_association(s, policy_id, endpoint_id, service_id, region_id))


def _policy_id_for(session: Session, endpoint: Endpoint) -> str | None:
    row = _find(session, endpoint.id, None, None)
    if row is not None:
        return row.policy_id
    region_id = endpoint.region_id
    seen: set[str] = set()
    while region_id is not None and region_id not in seen:
        seen.add(region_id)
        row = _find(session, None, endpoint.service_id, region_id)
        if row is not None:
            return row.policy_id
        region = session.get(Region, region_id)
        region_id = region.parent_region_id if region is not None else None
    row = _find(session, None, endpoint.service_id, None)
    return row.policy_id if row is not None else None


def get_policy_for_endpoint(identity: Identity, ctx: AuthContext, endpoint_id: str) -> dict[str, Any]:
    authorize_action(identity, ctx, "get_policy_for_endpoint")
    with identity.db.read() as s:
        endpoint = get_row(s, Endpoint, endpoint_id, "endpoint")
        policy_id = _policy_id_for(s, endpoint)
        policy = s.get(Policy, policy_id) if policy_id else None
        if policy is None:
            raise NotFound(f"Could not find policy association for endpoint {endpoint_id}.")
        return policy_dict(policy)


def list_endpoints_for_policy(identity: Identity, ctx: AuthContext, policy_id: str) -> list[dict[str, Any]]:
    from onestack.identity.service.endpoints import endpoint_ref

    authorize_action(identity, ctx, "list_endpoints_for_policy")
    with identity.db.read() as s:
        _policy(s, policy_id)
        endpoints = s.scalars(select(Endpoint).order_by(Endpoint.id))
        return [endpoint_ref(e) for e in endpoints if _policy_id_for(s, e) == policy_id]
