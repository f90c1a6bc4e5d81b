"""Metadata definitions catalog (Glance's ``/v2/metadefs``): namespaces and
their objects, properties, tags and resource type associations.

Reads follow namespace visibility (public, or owned by the caller's project,
or admin); every change needs the ``metadef_admin`` rule (admin), as Glance's
defaults say.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.common.ids import isotime, utcnow
from onestack.image.models import MetadefNamespace

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
PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string", "null")

KINDS = ("namespace", "object", "property", "tag", "resource_type_association")


def policy_defaults() -> dict[str, str]:
    rules = {"metadef_admin": "role:admin", "metadef_default": ""}
    for kind in KINDS:
        rules[f"get_metadef_{kind}"] = "rule:metadef_default"
        rules[f"get_metadef_{kind}s"] = "rule:metadef_default"
        rules[f"add_metadef_{kind}"] = "rule:metadef_admin"
        rules[f"modify_metadef_{kind}"] = "rule:metadef_admin"
        rules[f"delete_metadef_{kind}"] = "rule:metadef_admin"
    rules["list_metadef_resource_types"] = "rule:metadef_default"
    rules["delete_metadef_tags"] = "rule:metadef_admin"
    rules["add_metadef_tags"] = "rule:metadef_admin"
    return rules


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
    from onestack.image.service import is_admin

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


def _strip_name(prop: dict[str, Any]) -> dict[str, Any]:
    prop = dict(prop)
    prop.pop("name", None)
    return prop


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


# --------------------------------------------------------------------------- members of a namespace


def _change(
    svc: ImageService, ctx: AuthContext, name: str, rule: str, fn: Callable[[MetadefNamespace, str], Any]
) -> Any:
    with svc.db.write() as s:
        ns = _load(svc, s, ctx, name)
        _authorize(svc, ctx, rule)
        result = fn(ns, isotime(utcnow()) or "")
        ns.updated_at = utcnow()
        return result


def _read(svc: ImageService, ctx: AuthContext, name: str, rule: str, fn: Callable[[MetadefNamespace], Any]) -> Any:
    _authorize(svc, ctx, rule)
    with svc.db.read() as s:
        return fn(_load(svc, s, ctx, name))


# objects


def list_objects(svc: ImageService, ctx: AuthContext, name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_objects", lambda ns: {
        "objects": [_object_view(ns, o) for o in (ns.objects or {}).values()],
        "schema": "v2/schemas/metadefs/objects",
    })


def create_object(svc: ImageService, ctx: AuthContext, name: str, body: Any) -> dict[str, Any]:
    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        obj = _object(body, now)
        if obj["name"] in (ns.objects or {}):
            raise Conflict(f"A metadata definition object with name={obj['name']} already exists "
                           f"in namespace={ns.namespace}.")
        ns.objects = {**(ns.objects or {}), obj["name"]: obj}
        return _object_view(ns, obj)

    return _change(svc, ctx, name, "add_metadef_object", fn)  # type: ignore[no-any-return]


def _get_object(ns: MetadefNamespace, obj_name: str) -> dict[str, Any]:
    obj = (ns.objects or {}).get(obj_name)
    if obj is None:
        raise NotFound(f"Metadata definition object not found for namespace={ns.namespace} and object={obj_name}.")
    return dict(obj)


def show_object(svc: ImageService, ctx: AuthContext, name: str, obj_name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_object",  # type: ignore[no-any-return]
                 lambda ns: _object_view(ns, _get_object(ns, obj_name)))


def update_object(svc: ImageService, ctx: AuthContext, name: str, obj_name: str, body: Any) -> dict[str, Any]:
    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        old = _get_object(ns, obj_name)
        obj = _object(body, now)
        obj["created_at"] = old.get("created_at", now)
        objects = dict(ns.objects or {})
        del objects[obj_name]
        if obj["name"] in objects:
            raise Conflict(f"A metadata definition object with name={obj['name']} already exists.")
        objects[obj["name"]] = obj
        ns.objects = objects
        return _object_view(ns, obj)

    return _change(svc, ctx, name, "modify_metadef_object", fn)  # type: ignore[no-any-return]


def delete_object(svc: ImageService, ctx: AuthContext, name: str, obj_name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        _get_object(ns, obj_name)
        ns.objects = {k: v for k, v in (ns.objects or {}).items() if k != obj_name}

    _change(svc, ctx, name, "delete_metadef_object", fn)


def delete_objects(svc: ImageService, ctx: AuthContext, name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        if ns.protected:
            raise Forbidden(f"Namespace {ns.namespace} is protected and cannot be changed.")
        ns.objects = {}

    _change(svc, ctx, name, "delete_metadef_object", fn)


# properties


def list_properties(svc: ImageService, ctx: AuthContext, name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_propertys",  # type: ignore[no-any-return]
                 lambda ns: {"properties": dict(ns.properties or {})})


def _get_property(ns: MetadefNamespace, prop_name: str) -> dict[str, Any]:
    prop = (ns.properties or {}).get(prop_name)
    if prop is None:
        raise NotFound(f"Metadata definition property not found for namespace={ns.namespace} "
                       f"and property={prop_name}.")
    return {"name": prop_name, **prop}


def create_property(svc: ImageService, ctx: AuthContext, name: str, body: Any) -> dict[str, Any]:
    def fn(ns: MetadefNamespace, _now: str) -> dict[str, Any]:
        prop = _property(body)
        if prop["name"] in (ns.properties or {}):
            raise Conflict(f"A metadata definition property with name={prop['name']} already exists "
                           f"in namespace={ns.namespace}.")
        ns.properties = {**(ns.properties or {}), prop["name"]: _strip_name(prop)}
        return prop

    return _change(svc, ctx, name, "add_metadef_property", fn)  # type: ignore[no-any-return]


def show_property(svc: ImageService, ctx: AuthContext, name: str, prop_name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_property",  # type: ignore[no-any-return]
                 lambda ns: _get_property(ns, prop_name))


def update_property(svc: ImageService, ctx: AuthContext, name: str, prop_name: str, body: Any) -> dict[str, Any]:
    def fn(ns: MetadefNamespace, _now: str) -> dict[str, Any]:
        _get_property(ns, prop_name)
        prop = _property(body)
        props = dict(ns.properties or {})
        del props[prop_name]
        if prop["name"] in props:
            raise Conflict(f"A metadata definition property with name={prop['name']} already exists.")
        props[prop["name"]] = _strip_name(prop)
        ns.properties = props
        return prop

    return _change(svc, ctx, name, "modify_metadef_property", fn)  # type: ignore[no-any-return]


def delete_property(svc: ImageService, ctx: AuthContext, name: str, prop_name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        _get_property(ns, prop_name)
        ns.properties = {k: v for k, v in (ns.properties or {}).items() if k != prop_name}

    _change(svc, ctx, name, "delete_metadef_property", fn)


def delete_properties(svc: ImageService, ctx: AuthContext, name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        if ns.protected:
            raise Forbidden(f"Namespace {ns.namespace} is protected and cannot be changed.")
        ns.properties = {}

    _change(svc, ctx, name, "delete_metadef_property", fn)


# tags


def _tag_view(tag: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {"name": tag, "created_at": meta.get("created_at"), "updated_at": meta.get("updated_at",
                                                                                      meta.get("created_at"))}


def list_tags(svc: ImageService, ctx: AuthContext, name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_tags",  # type: ignore[no-any-return]
                 lambda ns: {"tags": [_tag_view(t, m) for t, m in (ns.tags or {}).items()]})


def create_tags(svc: ImageService, ctx: AuthContext, name: str, body: Any, append: bool) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise BadRequest("The request body must be {\"tags\": [{\"name\": ...}, ...]}.")
    names = [_name(t.get("name") if isinstance(t, dict) else None, "tag") for t in body["tags"]]
    if len(set(names)) != len(names):
        raise Conflict("Duplicate tags in the request.")

    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        tags = dict(ns.tags or {}) if append else {}
        for n in names:
            if n in tags:
                raise Conflict(f"A metadata tag with name={n} already exists in namespace={ns.namespace}.")
            tags[n] = {"created_at": now, "updated_at": now}
        ns.tags = tags
        return {"tags": [{"name": n} for n in names]}

    return _change(svc, ctx, name, "add_metadef_tags", fn)  # type: ignore[no-any-return]


def delete_tags(svc: ImageService, ctx: AuthContext, name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        if ns.protected:
            raise Forbidden(f"Namespace {ns.namespace} is protected and cannot be changed.")
        ns.tags = {}

    _change(svc, ctx, name, "delete_metadef_tags", fn)


def _get_tag(ns: MetadefNamespace, tag: str) -> dict[str, Any]:
    meta = (ns.tags or {}).get(tag)
    if meta is None:
        raise NotFound(f"Metadata tag not found for namespace={ns.namespace} and tag={tag}.")
    return _tag_view(tag, meta)


def create_tag(svc: ImageService, ctx: AuthContext, name: str, tag: str) -> dict[str, Any]:
    _name(tag, "tag")

    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        if tag in (ns.tags or {}):
            raise Conflict(f"A metadata tag with name={tag} already exists in namespace={ns.namespace}.")
        ns.tags = {**(ns.tags or {}), tag: {"created_at": now, "updated_at": now}}
        return _tag_view(tag, ns.tags[tag])

    return _change(svc, ctx, name, "add_metadef_tag", fn)  # type: ignore[no-any-return]


def show_tag(svc: ImageService, ctx: AuthContext, name: str, tag: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_tag", lambda ns: _get_tag(ns, tag))  # type: ignore[no-any-return]


def update_tag(svc: ImageService, ctx: AuthContext, name: str, tag: str, body: Any) -> dict[str, Any]:
    new = _name(body.get("name") if isinstance(body, dict) else None, "tag")

    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        old = _get_tag(ns, tag)
        tags = {k: v for k, v in (ns.tags or {}).items() if k != tag}
        if new in tags:
            raise Conflict(f"A metadata tag with name={new} already exists in namespace={ns.namespace}.")
        tags[new] = {"created_at": old["created_at"], "updated_at": now}
        ns.tags = tags
        return _tag_view(new, tags[new])

    return _change(svc, ctx, name, "modify_metadef_tag", fn)  # type: ignore[no-any-return]


def delete_tag(svc: ImageService, ctx: AuthContext, name: str, tag: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        _get_tag(ns, tag)
        ns.tags = {k: v for k, v in (ns.tags or {}).items() if k != tag}

    _change(svc, ctx, name, "delete_metadef_tag", fn)


# resource type associations


def list_associations(svc: ImageService, ctx: AuthContext, name: str) -> dict[str, Any]:
    return _read(svc, ctx, name, "get_metadef_resource_type_associations",  # type: ignore[no-any-return]
                 lambda ns: {"resource_type_associations": list(ns.resource_types or [])})


def create_association(svc: ImageService, ctx: AuthContext, name: str, body: Any) -> dict[str, Any]:
    def fn(ns: MetadefNamespace, now: str) -> dict[str, Any]:
        rta = _rta(body, now)
        if any(r["name"] == rta["name"] for r in ns.resource_types or []):
            raise Conflict(f"The metadata definition resource-type association of resource-type="
                           f"{rta['name']} to namespace={ns.namespace}, already exists.")
        ns.resource_types = [*(ns.resource_types or []), rta]
        return rta

    return _change(svc, ctx, name, "add_metadef_resource_type_association", fn)  # type: ignore[no-any-return]


def delete_association(svc: ImageService, ctx: AuthContext, name: str, rt_name: str) -> None:
    def fn(ns: MetadefNamespace, _now: str) -> None:
        if not any(r["name"] == rt_name for r in ns.resource_types or []):
            raise NotFound(f"The metadata definition resource-type association of resource-type={rt_name} "
                           f"to namespace={ns.namespace}, was not found.")
        ns.resource_types = [r for r in ns.resource_types or [] if r["name"] != rt_name]

    _change(svc, ctx, name, "delete_metadef_resource_type_association", fn)


# --------------------------------------------------------------------------- schemas


def _schema(name: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "properties": props, "additionalProperties": False}
    if required:
        body["required"] = required
    return body


_STAMPS = {
    "created_at": {"type": "string", "readOnly": True, "format": "date-time"},
    "updated_at": {"type": "string", "readOnly": True, "format": "date-time"},
}
_PROPERTY_DEF = {
    "name": {"type": "string", "maxLength": 80},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "operators": {"type": "array", "items": {"type": "string"}},
    "type": {"type": "string", "enum": list(PROPERTY_TYPES)},
    "readonly": {"type": "boolean"},
    "default": {},
    "maximum": {"type": "number"},
    "minimum": {"type": "number"},
    "maxLength": {"type": "integer", "minimum": 0},
    "minLength": {"type": "integer", "minimum": 0},
    "pattern": {"type": "string", "format": "regex"},
    "enum": {"type": "array"},
    "items": {"type": "object"},
    "maxItems": {"type": "integer", "minimum": 0},
    "minItems": {"type": "integer", "minimum": 0},
    "uniqueItems": {"type": "boolean", "default": False},
    "additionalItems": {"type": "boolean"},
}
_RTA = {
    "name": {"type": "string", "maxLength": 80},
    "prefix": {"type": "string", "maxLength": 80},
    "properties_target": {"type": "string", "maxLength": 80},
    **_STAMPS,
}
_OBJECT = {
    "name": {"type": "string", "maxLength": 80},
    "description": {"type": "string"},
    "required": {"type": "array", "items": {"type": "string"}},
    "properties": {"type": "object", "additionalProperties": {"type": "object"}},
    "schema": {"type": "string", "readOnly": True},
    "self": {"type": "string", "readOnly": True},
    **_STAMPS,
}
_TAG = {"name": {"type": "string", "maxLength": 255}, **_STAMPS}
_NAMESPACE = {
    "namespace": {"type": "string", "maxLength": 80},
    "display_name": {"type": "string", "maxLength": 80},
    "description": {"type": "string", "maxLength": 500},
    "visibility": {"type": "string", "enum": ["public", "private"]},
    "protected": {"type": "boolean"},
    "owner": {"type": "string", "maxLength": 255},
    "self": {"type": "string", "readOnly": True},
    "schema": {"type": "string", "readOnly": True},
    "resource_type_associations": {"type": "array", "items": {"type": "object", "properties": _RTA}},
    "properties": {"type": "object", "additionalProperties": {"type": "object", "properties": _PROPERTY_DEF}},
    "objects": {"type": "array", "items": {"type": "object", "properties": _OBJECT}},
    "tags": {"type": "array", "items": {"type": "object", "properties": _TAG}},
    **_STAMPS,
}


def _collection(name: str, key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {
            key: {"type": "array", "items": item},
            "first": {"type": "string"},
            "next": {"type": "string"},
            "schema": {"type": "string"},
        },
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    "namespace": _schema("namespace", _NAMESPACE, ["namespace"]),
    "object": _schema("object", _OBJECT, ["name"]),
    "property": _schema("property", _PROPERTY_DEF, ["name", "title", "type"]),
    "tag": _schema("tag", _TAG, ["name"]),
    "resource_type": _schema("resource_type_association", _RTA, ["name"]),
}
SCHEMAS["namespaces"] = _collection("namespaces", "namespaces", SCHEMAS["namespace"])
SCHEMAS["objects"] = _collection("objects", "objects", SCHEMAS["object"])
SCHEMAS["properties"] = {
    "name": "properties",
    "properties": {"properties": {"type": "object", "additionalProperties": SCHEMAS["property"]}},
}
SCHEMAS["tags"] = _collection("tags", "tags", SCHEMAS["tag"])
SCHEMAS["resource_types"] = _collection("resource_type_associations", "resource_type_associations",
                                        SCHEMAS["resource_type"])
