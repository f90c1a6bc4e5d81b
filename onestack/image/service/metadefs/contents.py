"""What a metadef namespace holds: objects, properties, tags, resource type associations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from onestack.common.ids import isotime, utcnow
from onestack.image.models import MetadefNamespace

if TYPE_CHECKING:
    from onestack.image.core import ImageService

from onestack.image.service.metadefs._common import (
    _authorize,
    _load,
    _name,
    _object,
    _object_view,
    _property,
    _rta,
    _strip_name,
)

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

