"""What the metadefs modules share: wire views, access checks, input checks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden, NotFound
from onestack.common.ids import isotime
from onestack.image.metadef_schemas import PROPERTY_TYPES
from onestack.image.models import MetadefNamespace
from onestack.image.service._access import is_admin

if TYPE_CHECKING:
    from onestack.image.core import ImageService

RESOURCE_TYPES = (
    "OS::Glance::Image",
    "OS::Cinder::Volume",
    "OS::Nova::Flavor",
    "OS::Nova::Aggregate",
    "OS::Nova::Server",
    "OS::Glance::Snapshot",
)
RESOURCE_TYPES_CREATED = "2014-08-28T17:13:04Z"
NAME_RE = re.compile(r"^[^\s/][^/]{0,79}$")


# --------------------------------------------------------------------------- views


def _ts(value: Any) -> str | None:
    return isotime(value) if value is not None else None


def namespace_view(ns: MetadefNamespace, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "namespace": ns.namespace,
        "display_name": ns.display_name,
        "description": ns.description,
        "visibility": ns.visibility,
        "protected": bool(ns.protected),
        "owner": ns.owner,
        "created_at": _ts(ns.created_at),
        "updated_at": _ts(ns.updated_at),
        "schema": "/v2/schemas/metadefs/namespace",
        "self": f"/v2/metadefs/namespaces/{ns.namespace}",
    }
    body = {k: v for k, v in body.items() if v is not None}
    if ns.resource_types:
        body["resource_type_associations"] = list(ns.resource_types)
    if full:
        if ns.properties:
            body["properties"] = dict(ns.properties)
        if ns.objects:
            body["objects"] = [_object_view(ns, o) for o in ns.objects.values()]
        if ns.tags:
            body["tags"] = [{"name": name} for name in ns.tags]
    return body


def _object_view(ns: MetadefNamespace, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        **obj,
        "schema": "/v2/schemas/metadefs/object",
        "self": f"/v2/metadefs/namespaces/{ns.namespace}/objects/{obj['name']}",
    }


# --------------------------------------------------------------------------- access


def _authorize(svc: ImageService, ctx: AuthContext, rule: str) -> None:
    if not svc.enforcer.check(rule, ctx, {"project_id": ctx.project_id}):
        raise Forbidden(f"You are not authorized to complete {rule} action.")


def _readable(svc: ImageService, ctx: AuthContext, ns: MetadefNamespace) -> bool:
    return ns.visibility == "public" or ns.owner == ctx.project_id or is_admin(svc, ctx)


def _load(svc: ImageService, s: Session, ctx: AuthContext, name: str) -> MetadefNamespace:
    ns = s.get(MetadefNamespace, name)
    if ns is None or not _readable(svc, ctx, ns):
        raise NotFound(f"Metadata definition namespace={name} was not found.")
    return ns


# --------------------------------------------------------------------------- validation


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise BadRequest(f"Invalid {what} name {value!r}: 1 to 80 characters, no '/'.")
    return value


def _opt_str(body: dict[str, Any], key: str, max_len: int) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > max_len):
        raise BadRequest(f"Invalid value for '{key}': a string of at most {max_len} characters.")
    return value


def _namespace_fields(body: Any, ns: MetadefNamespace) -> None:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    ns.namespace = _name(body.get("namespace"), "namespace")
    ns.display_name = _opt_str(body, "display_name", 80)
    ns.description = _opt_str(body, "description", 500)
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise BadRequest(f"Invalid value for 'visibility': {visibility!r}.")
    ns.visibility = visibility
    protected = body.get("protected", False)
    if not isinstance(protected, bool):
        raise BadRequest("Invalid value for 'protected': must be a boolean.")
    ns.protected = protected


def _property(body: Any, name_key: str = "name") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("A property must be a JSON object.")
    prop = dict(body)
    _name(prop.get(name_key), "property")
    if not isinstance(prop.get("title"), str):
        raise BadRequest("A property needs a 'title' string.")
    if prop.get("type") not in PROPERTY_TYPES:
        raise BadRequest(f"A property needs a 'type', one of {list(PROPERTY_TYPES)}.")
    if "enum" in prop and not isinstance(prop["enum"], list):
        raise BadRequest("'enum' must be a list.")
    return prop


def _object(body: Any, now: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("An object must be a JSON object.")
    obj: dict[str, Any] = {"name": _name(body.get("name"), "object")}
    if body.get("description") is not None:
        obj["description"] = _opt_str(body, "description", 500)
    required = body.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise BadRequest("'required' must be a list of property names.")
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise BadRequest("'properties' must be an object of property definitions.")
    obj["required"] = required
    obj["properties"] = {k: _property({**v, "name": k}) if isinstance(v, dict) else _property(v)
                         for k, v in props.items()}
    for p in obj["properties"].values():
        p.pop("name", None)
    obj["created_at"] = now
    obj["updated_at"] = now
    return obj


def _rta(body: Any, now: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("A resource type association must be a JSON object.")
    rta: dict[str, Any] = {"name": _name(body.get("name"), "resource type")}
    for key in ("prefix", "properties_target"):
        if body.get(key) is not None:
            rta[key] = _opt_str(body, key, 80)
    rta["created_at"] = now
    rta["updated_at"] = now
    return rta



def _strip_name(prop: dict[str, Any]) -> dict[str, Any]:
    prop = dict(prop)
    prop.pop("name", None)
    return prop
