"""JSON schemas of the metadata definitions catalog (``/v2/schemas/metadefs/*``)."""

from __future__ import annotations

from typing import Any

PROPERTY_TYPES = ("array", "boolean", "integer", "number", "object", "string", "null")

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
