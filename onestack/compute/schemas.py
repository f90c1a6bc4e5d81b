"""Request schemas: the shapes Nova's API accepts, with its parameter types.

Used with :func:`onestack.compute.validation.validate`, which answers a
body that does not match with Nova's 400 and message.
"""

from __future__ import annotations

import copy
from typing import Any

from onestack.common.microversions import APIVersion

Schema = dict[str, Any]

# --- parameter types (Nova's nova/api/validation/parameter_types) ---------------------

BOOLEAN: Schema = {
    "type": ["boolean", "string"],
    "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
             False, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"],
}
TRUE_STRINGS = {"true", "1", "on", "yes"}

NAME: Schema = {"type": "string", "format": "name", "minLength": 1, "maxLength": 255}
NAME_WITH_SPACES: Schema = {"type": "string", "format": "name_with_leading_trailing_spaces",
                            "minLength": 1, "maxLength": 255}
AZ_NAME: Schema = {"type": "string", "format": "az_name", "minLength": 1, "maxLength": 255}
DESCRIPTION: Schema = {"type": ["string", "null"], "minLength": 0, "maxLength": 255}
POSITIVE_INTEGER: Schema = {"type": ["integer", "string"], "pattern": "^[0-9]*$",
                            "minimum": 1, "minLength": 1}
NON_NEGATIVE_INTEGER: Schema = {"type": ["integer", "string"], "pattern": "^[0-9]*$",
                                "minimum": 0, "minLength": 1}
UUID: Schema = {"type": "string", "format": "uuid"}
PROJECT_ID: Schema = {"type": "string", "pattern": "^[a-zA-Z0-9-]*$",
                      "minLength": 1, "maxLength": 255}
HOSTNAME: Schema = {"type": "string", "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
                    "minLength": 2, "maxLength": 63}
FQDN_HOSTNAME: Schema = {"type": "string",
                         "pattern": r"^[a-zA-Z0-9]+[a-zA-Z0-9-.]*[a-zA-Z0-9]+$",
                         "minLength": 2, "maxLength": 255}
METADATA_KEY = "^[a-zA-Z0-9-_:. ]{1,255}$"
METADATA: Schema = {
    "type": "object",
    "patternProperties": {METADATA_KEY: {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}
IPV4: Schema = {"type": "string", "format": "ipv4"}
IPV6: Schema = {"type": "string", "format": "ipv6"}
IP_ADDRESS: Schema = {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
_MAX_INT = 0x7FFFFFFF
FLAVOR_POSITIVE: Schema = {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                           "minimum": 1, "maximum": _MAX_INT}
FLAVOR_NON_NEGATIVE: Schema = {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                               "minimum": 0, "maximum": _MAX_INT}
STRING: Schema = {"type": "string"}
TAG: Schema = {"type": "string", "minLength": 1, "maxLength": 60, "pattern": "^[^,/]*$"}


def is_true(value: Any) -> bool:
    """Nova's ``bool_from_string`` on a value ``BOOLEAN`` accepted."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUE_STRINGS


# --- flavors -----------------------------------------------------------------

FLAVOR_SORT_KEYS = ["created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id",
                    "is_public", "memory_mb", "name", "root_gb", "rxtx_factor", "swap",
                    "updated_at", "vcpu_weight", "vcpus"]

FLAVOR_CREATE: Schema = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {
                "name": NAME,
                "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
                       "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
                "ram": FLAVOR_POSITIVE,
                "vcpus": FLAVOR_POSITIVE,
                "disk": FLAVOR_NON_NEGATIVE,
                "OS-FLV-EXT-DATA:ephemeral": FLAVOR_NON_NEGATIVE,
                "swap": FLAVOR_NON_NEGATIVE,
                "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                                "exclusiveMinimum": 0, "maximum": 3.40282e38},
                "os-flavor-access:is_public": BOOLEAN,
            },
            "required": ["name", "ram", "vcpus", "disk"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
_FLAVOR_DESCRIPTION: Schema = {"type": ["string", "null"], "minLength": 0, "maxLength": 65535}
FLAVOR_CREATE_V255 = copy.deepcopy(FLAVOR_CREATE)
FLAVOR_CREATE_V255["properties"]["flavor"]["properties"]["description"] = _FLAVOR_DESCRIPTION
FLAVOR_UPDATE: Schema = {
    "type": "object",
    "properties": {
        "flavor": {
            "type": "object",
            "properties": {"description": _FLAVOR_DESCRIPTION},
            "required": ["description"],
            "additionalProperties": False,
        },
    },
    "required": ["flavor"],
    "additionalProperties": False,
}
FLAVOR_QUERY: dict[str, Schema] = {
    "limit": NON_NEGATIVE_INTEGER,
    "marker": STRING,
    "is_public": STRING,
    "minRam": STRING,
    "minDisk": STRING,
    "sort_key": {"type": "string", "enum": FLAVOR_SORT_KEYS},
    "sort_dir": {"type": "string", "enum": ["asc", "desc"]},
}
_EXTRA_SPECS: Schema = {
    "type": "object",
    "patternProperties": {METADATA_KEY: {"type": ["string", "number"], "maxLength": 255}},
    "additionalProperties": False,
}
EXTRA_SPECS_CREATE: Schema = {
    "type": "object",
    "properties": {"extra_specs": _EXTRA_SPECS},
    "required": ["extra_specs"],
    "additionalProperties": False,
}
EXTRA_SPECS_UPDATE: Schema = {**copy.deepcopy(_EXTRA_SPECS), "minProperties": 1,
                              "maxProperties": 1}
FLAVOR_ACCESS_ADD: Schema = {
    "type": "object",
    "properties": {
        "addTenantAccess": {
            "type": "object",
            "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
            "required": ["tenant"],
            "additionalProperties": False,
        },
    },
    "required": ["addTenantAccess"],
    "additionalProperties": False,
}
FLAVOR_ACCESS_REMOVE: Schema = {
    "type": "object",
    "properties": {
        "removeTenantAccess": {
            "type": "object",
            "properties": {"tenant": {"type": "string", "minLength": 1, "maxLength": 255}},
            "required": ["tenant"],
            "additionalProperties": False,
        },
    },
    "required": ["removeTenantAccess"],
    "additionalProperties": False,
}

# --- key pairs ---------------------------------------------------------------

_KEYPAIR_NAME: Schema = {"allOf": [NAME, {"type": "string", "pattern": r"^[_\- a-zA-Z0-9]+$",
                                          "minLength": 1, "maxLength": 255}]}
_KEYPAIR_NAME_V292: Schema = {"allOf": [NAME, {"type": "string",
                                               "pattern": r"^[_\-\@\. a-zA-Z0-9]+$",
                                               "minLength": 1, "maxLength": 255}]}


def keypair_create(v22: bool, v210: bool, v292: bool) -> Schema:
    props: Schema = {
        "name": _KEYPAIR_NAME_V292 if v292 else _KEYPAIR_NAME,
        "public_key": {"type": "string"},
    }
    if v22:
        props["type"] = {"type": "string", "enum": ["ssh", "x509"]}
    if v210:
        props["user_id"] = {"type": "string"}
    required = ["name", "public_key"] if v292 else ["name"]
    return {
        "type": "object",
        "properties": {
            "keypair": {"type": "object", "properties": props, "required": required,
                        "additionalProperties": False},
        },
        "required": ["keypair"],
        "additionalProperties": False,
    }


# --- quota sets --------------------------------------------------------------

QUOTA_LIMIT: Schema = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
                        "minimum": -1, "maximum": _MAX_INT}
QUOTA_RESOURCES_V257 = ["instances", "cores", "ram", "metadata_items", "key_pairs",
                        "server_groups", "server_group_members"]
QUOTA_RESOURCES_V236 = [*QUOTA_RESOURCES_V257, "injected_files",
                        "injected_file_content_bytes", "injected_file_path_bytes"]
QUOTA_RESOURCES_ALL = [*QUOTA_RESOURCES_V236, "fixed_ips", "floating_ips",
                       "security_groups", "security_group_rules"]


def quota_update(resources: list[str]) -> Schema:
    props: Schema = {name: QUOTA_LIMIT for name in resources}
    props["force"] = BOOLEAN
    return {
        "type": "object",
        "properties": {
            "quota_set": {"type": "object", "properties": props,
                          "additionalProperties": False},
        },
        "required": ["quota_set"],
        "additionalProperties": False,
    }


# --- servers -----------------------------------------------------------------

DISK_CONFIG: Schema = {"type": "string", "enum": ["AUTO", "MANUAL"]}
_BDM_V2_ITEM: Schema = {
    "type": "object",
    "properties": {
        "virtual_name": {"type": "string", "maxLength": 255},
        "volume_id": UUID, "snapshot_id": UUID,
        "volume_size": {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
                        "maximum": _MAX_INT},
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255,
                        "pattern": "^[a-zA-Z0-9._/-]*$"},
        "delete_on_termination": BOOLEAN, "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
        "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255,
                 "pattern": "^[a-zA-Z0-9._-]*$"},
        "image_id": UUID,
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "guest_format": {"type": "string", "maxLength": 255},
        "device_type": {"type": "string", "maxLength": 255},
        "disk_bus": {"type": "string", "maxLength": 255},
        "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
        "tag": TAG, "volume_type": {"type": ["string", "null"], "minLength": 0,
                                    "maxLength": 255},
    },
    "additionalProperties": False,
}
_HINTS: Schema = {
    "type": "object",
    "properties": {
        "group": {"oneOf": [{"type": "array", "items": UUID}, UUID]},
        "different_host": {"oneOf": [UUID, {"type": "array", "items": UUID}]},
        "same_host": {"type": ["string", "array"], "items": UUID},
        "query": {"type": ["string", "object"]},
        "target_cell": NAME,
        "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
        "build_near_host_ip": IP_ADDRESS,
        "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
    },
    "additionalProperties": True,
}
TRUSTED_CERTS: Schema = {"type": ["array", "null"], "minItems": 1, "maxItems": 50,
                         "uniqueItems": True, "items": {"type": "string", "minLength": 1}}
FQDN: Schema = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1,
                "maxLength": 255}
PERSONALITY: Schema = {"type": "array", "items": {
    "type": "object",
    "properties": {"path": {"type": "string"}, "contents": {"type": "string", "format": "base64"}},
    "additionalProperties": False,
}}


def _networks(v: APIVersion) -> Schema:
    item: Schema = {
        "type": "object",
        "properties": {
            "fixed_ip": IP_ADDRESS,
            "port": {"type": ["string", "null"], "format": "uuid"},
            "uuid": {"type": "string", "format": "uuid"} if v.matches("2.37") else STRING,
        },
        "additionalProperties": False,
    }
    if v.matches("2.32") and (v.matches("2.42") or not v.matches("2.37")):
        item["properties"]["tag"] = TAG
    if not v.matches("2.37"):
        return {"type": "array", "items": item}
    return {"oneOf": [{"type": "array", "items": item},
                      {"type": "string", "enum": ["none", "auto"]}]}


def server_create(v: APIVersion) -> Schema:
    props: Schema = {
        "name": NAME,
        "imageRef": {"oneOf": [UUID, {"type": "string", "maxLength": 0}]},
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": STRING,
        "metadata": METADATA,
        "networks": _networks(v),
        "OS-DCF:diskConfig": DISK_CONFIG,
        "accessIPv4": IPV4,
        "accessIPv6": IPV6,
        "availability_zone": NAME,
        "block_device_mapping": {"type": "array", "items": _BDM_V2_ITEM},
        "block_device_mapping_v2": {"type": "array", "items": _BDM_V2_ITEM},
        "config_drive": BOOLEAN,
        "key_name": NAME,
        "min_count": POSITIVE_INTEGER,
        "max_count": POSITIVE_INTEGER,
        "return_reservation_id": BOOLEAN,
        "security_groups": {"type": "array", "items": {
            "type": "object", "properties": {"name": NAME}, "additionalProperties": False}},
        "user_data": {"type": "string", "format": "base64", "maxLength": 65535},
    }
    if not v.matches("2.57"):
        props["personality"] = PERSONALITY
    if v.matches("2.19"):
        props["description"] = DESCRIPTION
    if v.matches("2.52"):
        props["tags"] = {"type": "array", "items": TAG, "maxItems": 50}
    if v.matches("2.63"):
        props["trusted_image_certificates"] = TRUSTED_CERTS
    if v.matches("2.74"):
        props["host"] = FQDN
        props["hypervisor_hostname"] = FQDN
    if v.matches("2.90"):
        props["hostname"] = FQDN if v.matches("2.94") else HOSTNAME
    required = ["name", "flavorRef"] + (["networks"] if v.matches("2.37") else [])
    return {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": props, "required": required,
                       "additionalProperties": False},
            "os:scheduler_hints": _HINTS,
            "OS-SCH-HNT:scheduler_hints": _HINTS,
        },
        "required": ["server"],
        "additionalProperties": False,
    }


def server_update(v: APIVersion) -> Schema:
    props: Schema = {"name": NAME, "OS-DCF:diskConfig": DISK_CONFIG, "accessIPv4": IPV4,
                     "accessIPv6": IPV6}
    if v.matches("2.19"):
        props["description"] = DESCRIPTION
    if v.matches("2.90"):
        props["hostname"] = FQDN if v.matches("2.94") else HOSTNAME
    return {
        "type": "object",
        "properties": {"server": {"type": "object", "properties": props,
                                  "additionalProperties": False}},
        "required": ["server"],
        "additionalProperties": False,
    }
