"""Request/response shapes: the constants and JSON schemas Glance publishes."""

from __future__ import annotations

from typing import Any

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
STATUSES = (
    "queued", "saving", "active", "killed", "deleted", "pending_delete",
    "deactivated", "uploading", "importing",
)
MEMBER_STATUSES = ("pending", "accepted", "rejected")

# Attributes the server sets; a create or patch naming them gets 403.
READ_ONLY = (
    "checksum", "created_at", "direct_url", "file", "id", "os_hash_algo",
    "os_hash_value", "schema", "self", "size", "status", "updated_at", "virtual_size",
)
RESERVED = ("deleted", "deleted_at", "location", "locations")
BASE_ATTRIBUTES = (
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
    "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size", "min_ram",
    "min_disk", "disk_format", "container_format", "created_at", "updated_at",
    "tags", "self", "file", "schema", "direct_url", "locations",
)
# Attributes a user may set on create / change with PATCH
WRITABLE = (
    "name", "visibility", "protected", "os_hidden", "owner", "min_ram", "min_disk",
    "disk_format", "container_format", "tags",
)

TAG_MAX = 255
PROPERTY_KEY_MAX = 255
IMAGE_TAG_QUOTA = 128
IMAGE_PROPERTY_QUOTA = 128
IMAGE_MEMBER_QUOTA = 128

IMPORT_METHODS = ("glance-direct",)
ALL_IMPORT_METHODS = ("glance-direct", "web-download", "copy-image", "glance-download")

SORT_KEYS = (
    "name", "status", "container_format", "disk_format", "size", "id", "created_at",
    "updated_at", "visibility", "owner", "min_disk", "min_ram", "virtual_size",
    "protected", "os_hidden",
)


def _nullable_string(max_length: int = 255, description: str = "") -> dict[str, Any]:
    return {"type": ["null", "string"], "maxLength": max_length, "description": description}


IMAGE_PROPERTIES: dict[str, Any] = {
    "id": {
        "type": "string",
        "description": "An identifier for the image",
        "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$",
    },
    "name": _nullable_string(255, "Descriptive name for the image"),
    "status": {
        "type": "string",
        "readOnly": True,
        "description": "Status of the image",
        "enum": list(STATUSES),
    },
    "visibility": {
        "type": "string",
        "description": "Scope of image accessibility",
        "enum": list(VISIBILITIES),
    },
    "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
    "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list response."},
    "checksum": {
        "type": ["null", "string"], "readOnly": True, "maxLength": 32,
        "description": "md5 hash of image contents.",
    },
    "os_hash_algo": {
        "type": ["null", "string"], "readOnly": True, "maxLength": 64,
        "description": "Algorithm to calculate the os_hash_value",
    },
    "os_hash_value": {
        "type": ["null", "string"], "readOnly": True, "maxLength": 128,
        "description": "Hexdigest of the image contents using the algorithm specified by the os_hash_algo",
    },
    "owner": _nullable_string(255, "Owner of the image"),
    "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
    "virtual_size": {"type": ["null", "integer"], "readOnly": True, "description": "Virtual size of image in bytes"},
    "container_format": {
        "type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS],
        "description": "Format of the container",
    },
    "disk_format": {
        "type": ["null", "string"], "enum": [None, *DISK_FORMATS],
        "description": "Format of the disk",
    },
    "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
    "updated_at": {"type": "string", "readOnly": True, "description": "Date and time of the last image modification"},
    "tags": {
        "type": "array",
        "description": "List of strings related to the image",
        "items": {"type": "string", "maxLength": TAG_MAX},
    },
    "direct_url": {"type": "string", "readOnly": True, "description": "URL to access the image file kept in external store"},
    "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
    "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
    "self": {"type": "string", "readOnly": True, "description": "An image self url"},
    "file": {"type": "string", "readOnly": True, "description": "An image file url"},
    "stores": {"type": "string", "readOnly": True, "description": "Store in which image data resides."},
    "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
    "locations": {
        "type": "array",
        "description": "A set of URLs to access the image file kept in external store",
        "items": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "maxLength": 255},
                "metadata": {"type": "object"},
                "validation_data": {"type": "object"},
            },
            "required": ["url", "metadata"],
        },
    },
}

IMAGE_SCHEMA: dict[str, Any] = {
    "name": "image",
    "properties": IMAGE_PROPERTIES,
    "additionalProperties": {"type": "string"},
    "links": [
        {"rel": "self", "href": "{self}"},
        {"rel": "enclosure", "href": "{file}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

IMAGES_SCHEMA: dict[str, Any] = {
    "name": "images",
    "properties": {
        "images": {"type": "array", "items": IMAGE_SCHEMA},
        "schema": {"type": "string"},
        "first": {"type": "string"},
        "next": {"type": "string"},
    },
    "links": [
        {"rel": "first", "href": "{first}"},
        {"rel": "next", "href": "{next}"},
        {"rel": "describedby", "href": "{schema}"},
    ],
}

MEMBER_SCHEMA: dict[str, Any] = {
    "name": "member",
    "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": IMAGE_PROPERTIES["id"]["pattern"]},
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": list(MEMBER_STATUSES)},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        "schema": {"type": "string", "readOnly": True},
    },
}

MEMBERS_SCHEMA: dict[str, Any] = {
    "name": "members",
    "properties": {
        "members": {"type": "array", "items": MEMBER_SCHEMA},
        "schema": {"type": "string"},
    },
    "links": [{"rel": "describedby", "href": "{schema}"}],
}

SCHEMAS = {
    "image": IMAGE_SCHEMA,
    "images": IMAGES_SCHEMA,
    "member": MEMBER_SCHEMA,
    "members": MEMBERS_SCHEMA,
}
