"""Request schemas: the shapes Nova's API accepts, with its parameter types.

Used with :func:`onestack.compute.validation.validate`, which answers a
body that does not match with Nova's 400 and message.
"""

from __future__ import annotations

import copy
from typing import Any

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

_QUOTA_LIMIT: Schema = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$",
                        "minimum": -1, "maximum": _MAX_INT}
QUOTA_RESOURCES_V257 = ["instances", "cores", "ram", "metadata_items", "key_pairs",
                        "server_groups", "server_group_members"]
QUOTA_RESOURCES_V236 = [*QUOTA_RESOURCES_V257, "injected_files",
                        "injected_file_content_bytes", "injected_file_path_bytes"]
QUOTA_RESOURCES_ALL = [*QUOTA_RESOURCES_V236, "fixed_ips", "floating_ips",
                       "security_groups", "security_group_rules", "networks"]


def quota_update(resources: list[str]) -> Schema:
    props: Schema = {name: _QUOTA_LIMIT for name in resources}
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
