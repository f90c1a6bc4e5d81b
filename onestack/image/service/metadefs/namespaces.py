"""Metadef namespaces: list, create, show, update, delete; the resource types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden
from onestack.common.ids import isotime, utcnow
from onestack.image.models import MetadefNamespace

if TYPE_CHECKING:
    from onestack.image.core import ImageService

from onestack.image.service.metadefs._common import (
    RESOURCE_TYPES,
    RESOURCE_TYPES_CREATED,
    _authorize,
    _load,
    _name,
    _namespace_fields,
    _object,
    _opt_str,
    _property,
    _readable,
    _rta,
    _strip_name,
    namespace_view,
)

# --------------------------------------------------------------------------- namespaces


def list_resource_types(svc: ImageService, ctx: AuthContext) -> dict[str, Any]:
    _authorize(svc, ctx, "list_metadef_resource_types")
    names = list(RESOURCE_TYPES)
    with svc.db.read() as s:
        for ns in s.scalars(select(MetadefNamespace)):
            for rta in ns.resource_types or []:
                if rta["name"] not in names:
                    names.append(rta["name"])
    return {"resource_types": [
        {"name": n, "created_at": RESOURCE_TYPES_CREATED, "updated_at": RESOURCE_TYPES_CREATED} for n in names
    ]}


def list_namespaces(svc: ImageService, ctx: AuthContext, params: dict[str, str]) -> dict[str, Any]:
    _authorize(svc, ctx, "get_metadef_namespaces")
    with svc.db.read() as s:
        rows = [ns for ns in s.scalars(select(MetadefNamespace).order_by(MetadefNamespace.created_at))
                if _readable(svc, ctx, ns)]
        if "visibility" in params:
            rows = [ns for ns in rows if ns.visibility == params["visibility"]]
        if "resource_types" in params:
            wanted = set(params["resource_types"].split(","))
            rows = [ns for ns in rows if wanted & {r["name"] for r in ns.resource_types or []}]
        return {
            "namespaces": [namespace_view(ns) for ns in rows],
            "first": "/v2/metadefs/namespaces",
            "schema": "/v2/schemas/metadefs/namespaces",
        }


def create_namespace(svc: ImageService, ctx: AuthContext, body: Any) -> dict[str, Any]:
    _authorize(svc, ctx, "add_metadef_namespace")
    now = utcnow()
    stamp = isotime(now) or ""
    ns = MetadefNamespace(owner=ctx.project_id, created_at=now, updated_at=now,
                          resource_types=[], objects={}, properties={}, tags={})
    _namespace_fields(body, ns)
    if body.get("owner") is not None:
        ns.owner = _opt_str(body, "owner", 255)
    rtas = body.get("resource_type_associations", [])
    objs = body.get("objects", [])
    props = body.get("properties", {})
    tags = body.get("tags", [])
    if not isinstance(rtas, list) or not isinstance(objs, list) or not isinstance(props, dict) \
            or not isinstance(tags, list):
        raise BadRequest("Invalid namespace contents.")
    ns.resource_types = [_rta(r, stamp) for r in rtas]
    ns.objects = {o["name"]: o for o in (_object(x, stamp) for x in objs)}
    ns.properties = {k: _strip_name(_property({**v, "name": k})) for k, v in props.items() if isinstance(v, dict)}
    ns.tags = {_name(t.get("name") if isinstance(t, dict) else None, "tag"): {"created_at": stamp}
               for t in tags}
    with svc.db.write() as s:
        if s.get(MetadefNamespace, ns.namespace) is not None:
            raise Conflict(f"A metadata definition namespace with name={ns.namespace} already exists.")
        s.add(ns)
        s.flush()
        return namespace_view(ns, full=True)


def show_namespace(svc: ImageService, ctx: AuthContext, name: str) -> dict[str, Any]:
    _authorize(svc, ctx, "get_metadef_namespace")
    with svc.db.read() as s:
        return namespace_view(_load(svc, s, ctx, name), full=True)


def update_namespace(svc: ImageService, ctx: AuthContext, name: str, body: Any) -> dict[str, Any]:
    with svc.db.write() as s:
        ns = _load(svc, s, ctx, name)
        _authorize(svc, ctx, "modify_metadef_namespace")
        old = ns.namespace
        probe = MetadefNamespace()
        _namespace_fields(body, probe)
        if probe.namespace != old:
            if s.get(MetadefNamespace, probe.namespace) is not None:
                raise Conflict(f"A metadata definition namespace with name={probe.namespace} already exists.")
            # the key changes: replace the row
            clone = MetadefNamespace(
                namespace=probe.namespace, owner=ns.owner, created_at=ns.created_at,
                resource_types=ns.resource_types, objects=ns.objects, properties=ns.properties,
                tags=ns.tags,
            )
            s.delete(ns)
            s.flush()
            ns = clone
            s.add(ns)
        ns.display_name = probe.display_name
        ns.description = probe.description
        ns.visibility = probe.visibility
        ns.protected = probe.protected
        ns.updated_at = utcnow()
        s.flush()
        return namespace_view(ns)


def delete_namespace(svc: ImageService, ctx: AuthContext, name: str) -> None:
    with svc.db.write() as s:
        ns = _load(svc, s, ctx, name)
        _authorize(svc, ctx, "delete_metadef_namespace")
        if ns.protected:
            raise Forbidden(f"Namespace {name} is protected and cannot be deleted.")
        s.delete(ns)

