"""Resource attribute maps and request-body parsing, as Neutron's API layer does it.

Each resource is described by a map of attributes (``Attr``): whether it may
be given on create (POST) or update (PUT), its default, its converter and
validator, whether it is shown, filterable, sortable, and whether setting it
is checked by its own policy rule (``create_network:shared``). Parsing a body
follows ``neutron.api.v2.base.Controller.prepare_request_body``: project
fields, unknown attributes, required/allowed attributes, then conversion and
validation, each with Neutron's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from onestack.network.service import validators as v
from onestack.network.service.errors import HTTPBadRequest


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The attribute was not given and its value is computed by the service
#: (Neutron's ``ATTR_NOT_SPECIFIED``).
NOT_SPECIFIED: Any = _Sentinel("NOT_SPECIFIED")
#: The attribute has no default: it must be given on create.
REQUIRED: Any = _Sentinel("REQUIRED")


@dataclass(frozen=True)
class Attr:
    post: bool = False
    put: bool = False
    default: Any = REQUIRED
    convert: Callable[[Any], Any] | None = None
    validate: Callable[[Any], str | None] | None = None
    visible: bool = True
    filter: bool = False
    sort: bool = False
    # checked by its own rule "<action>:<attr>" when explicitly set
    policy: bool = False
    # keys of a dict / list-of-dicts value that have "<action>:<attr>:<key>" rules
    sub_keys: tuple[str, ...] = ()
    # query filters: how a list of values is converted (``fixed_ips``)
    convert_list: Callable[[list[str]], Any] | None = None

    @property
    def has_default(self) -> bool:
        return self.default is not REQUIRED


def std_name(post: bool = True) -> Attr:
    return Attr(post=post, put=post, default="", validate=v.name_string(255), filter=True, sort=True)


ID = Attr(validate=v.uuid, filter=True, sort=True)
PROJECT_ID = Attr(post=True, validate=v.string(255), filter=True, sort=True)
NAME = std_name()
DESCRIPTION = Attr(post=True, put=True, default="", validate=v.string(255), filter=True, sort=True)
STATUS = Attr(filter=True, sort=True)
ADMIN_STATE_UP = Attr(post=True, put=True, default=True, convert=v.to_bool, filter=True, sort=True)
TIMESTAMP = Attr(filter=True, sort=True)
REVISION = Attr(filter=True, sort=True)
TAGS = Attr(filter=True)


def standard() -> dict[str, Attr]:
    """Standard attributes (description, tags, timestamps, revision)."""
    return {
        "description": DESCRIPTION,
        "tags": TAGS,
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
        "revision_number": REVISION,
    }


@dataclass
class Resource:
    """One Neutron resource: its names and its attribute map."""

    name: str  # "network"
    collection: str  # "networks"
    attrs: dict[str, Attr]
    # attributes a list may filter on that are not attributes (port's "ip_address_substr")
    extra_filters: tuple[str, ...] = ()
    has_project: bool = True
    path: str = ""  # URL collection segment when it differs ("security-groups")
    policy_name: str = ""  # "network" / "floatingip_port_forwarding"
    visible_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.has_project:
            self.attrs.setdefault("tenant_id", PROJECT_ID)
            self.attrs.setdefault("project_id", PROJECT_ID)
        self.path = self.path or self.collection
        self.policy_name = self.policy_name or self.name
        self.visible_names = tuple(k for k, a in self.attrs.items() if a.visible)

    @property
    def filters(self) -> set[str]:
        return {k for k, a in self.attrs.items() if a.filter} | set(self.extra_filters)

    @property
    def sort_keys(self) -> set[str]:
        return {k for k, a in self.attrs.items() if a.sort}

    def items(self) -> Iterator[tuple[str, Attr]]:
        return iter(self.attrs.items())


@dataclass
class Parsed:
    """A validated create or update body."""

    values: dict[str, Any]
    given: set[str]  # attributes the client sent

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def specified(self, key: str) -> bool:
        """Was ``key`` given with a value (not the "compute it" sentinel)?"""
        return key in self.values and self.values[key] is not NOT_SPECIFIED


def _project_fields(body: dict[str, Any], caller_project: str | None, can_set_project: bool) -> None:
    if "tenant_id" in body and "project_id" not in body:
        body["project_id"] = body["tenant_id"]
    elif "project_id" in body and "tenant_id" not in body:
        body["tenant_id"] = body["project_id"]
    if body.get("project_id") != body.get("tenant_id"):
        raise HTTPBadRequest("'project_id' and 'tenant_id' do not match")
    if "project_id" in body and body["project_id"] != caller_project and not can_set_project:
        raise HTTPBadRequest(
            "Specifying 'project_id' other than the authenticated project in request "
            "is not allowed for the current user."
        )


def _unknown(resource: Resource, body: Mapping[str, Any]) -> None:
    extra = [k for k in body if k not in resource.attrs]
    if extra:
        raise HTTPBadRequest("Unrecognized attribute(s) '{}'".format(", ".join(extra)))


def _convert_and_validate(resource: Resource, values: dict[str, Any]) -> None:
    for name, attr in resource.items():
        if name not in values or values[name] is NOT_SPECIFIED:
            continue
        if attr.convert is not None:
            values[name] = attr.convert(values[name])
        if attr.validate is not None:
            reason = attr.validate(values[name])
            if reason:
                raise HTTPBadRequest(f"Invalid input for {name}. Reason: {reason}.")


def parse_create(
    resource: Resource,
    body: dict[str, Any],
    *,
    caller_project: str | None,
    can_set_project: bool,
) -> Parsed:
    """A create body with defaults filled in; 400 in Neutron's words otherwise."""
    values = dict(body)
    if resource.has_project:
        _project_fields(values, caller_project, can_set_project)
        if "project_id" not in values:
            if not caller_project:
                raise HTTPBadRequest(
                    "Running without keystone AuthN requires that project_id is specified"
                )
            values["project_id"] = values["tenant_id"] = caller_project
    _unknown(resource, values)
    given = set(body)
    for name, attr in resource.items():
        if attr.post:
            if name not in values:
                if not attr.has_default:
                    raise HTTPBadRequest(
                        f"Failed to parse request. Required attribute '{name}' not specified"
                    )
                values[name] = attr.default
        elif name in values:
            raise HTTPBadRequest(f"Attribute '{name}' not allowed in POST")
    _convert_and_validate(resource, values)
    return Parsed(values, given)


def parse_update(
    resource: Resource,
    body: dict[str, Any],
    *,
    caller_project: str | None,
    can_set_project: bool,
) -> Parsed:
    """An update body: only attributes that may change; 400 otherwise."""
    values = dict(body)
    if resource.has_project and ("project_id" in values or "tenant_id" in values):
        _project_fields(values, caller_project, can_set_project)
    _unknown(resource, values)
    for name, attr in resource.items():
        if name in values and not attr.put:
            raise HTTPBadRequest(f"Cannot update read-only attribute {name}")
    _convert_and_validate(resource, values)
    return Parsed(values, set(values))


def explicitly_set(resource: Resource, parsed: Parsed, creating: bool) -> list[str]:
    """Attributes with their own policy rule that this request sets.

    On create an attribute counts when given with a value other than its
    default (Neutron's ``_is_attribute_explicitly_set``); on update when given.
    """
    names: list[str] = []
    for name, attr in resource.items():
        if not attr.policy or name not in parsed.values:
            continue
        value = parsed.values[name]
        if value is NOT_SPECIFIED:
            continue
        if creating and attr.has_default and value == attr.default:
            continue
        if not creating and name not in parsed.given:
            continue
        names.append(name)
    return names


def sub_rules(action: str, resource: Resource, name: str, value: Any) -> list[str]:
    """``<action>:<attr>:<key>`` for each known key present in a dict / list value."""
    attr = resource.attrs[name]
    if not attr.sub_keys:
        return []
    present: set[str] = set()
    if isinstance(value, dict):
        present = set(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                present |= set(item)
    return [f"{action}:{name}:{k}" for k in attr.sub_keys if k in present]
