"""Tags on every resource with standard attributes (``/v2.0/{collection}/{id}/tags``).

Checked by the resource's own tag rules (``get_network:tags``,
``update_port:tags``, ...); a resource the caller cannot see is not found.
A change of tags is a change of the resource (its revision moves on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.network.models import NetworkTag
from onestack.network.service import (
    floatingips,
    networks,
    port_views,
    routers,
    security_groups,
    subnetpools,
    subnets,
)
from onestack.network.service import validators as v
from onestack.network.service.common import bump
from onestack.network.service.errors import (
    InvalidInput,
    NetworkNotFound,
    PortNotFound,
    RouterNotFound,
    TagNotFound,
    bad_request,
)
from onestack.network.service.policy import Caller

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

MAX_TAG_LEN = 255
MAX_TAGS = 50

Loader = Callable[[Any, Session, Caller, str], tuple[Any, dict[str, Any]]]


def _network(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row = networks.load(s, caller, rid)
    return row, networks.target_of(row)


def _subnet(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    return subnets.load(s, caller, rid)


def _port(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row, _item, target = port_views.load(s, caller, rid, net.config.dns_domain)
    return row, target


def _pool(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row = subnetpools.load_pool(s, caller, rid)
    return row, subnetpools.pool_view(row, [])


def _router(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row = routers.load(s, caller, rid)
    return row, routers.target_of(row)


def _fip(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row = floatingips.load(s, caller, rid)
    return row, floatingips.target_of(row)


def _group(net: Any, s: Session, caller: Caller, rid: str) -> tuple[Any, dict[str, Any]]:
    row = security_groups.load(s, caller, rid)
    return row, security_groups.target_of(row)


# URL collection -> (policy resource name, the loader that also hides what the caller cannot see)
TAGGABLE: dict[str, tuple[str, Loader]] = {
    "networks": ("network", _network),
    "subnets": ("subnet", _subnet),
    "ports": ("port", _port),
    "subnetpools": ("subnetpool", _pool),
    "routers": ("router", _router),
    "floatingips": ("floatingip", _fip),
    "security-groups": ("security_group", _group),
}

__all__ = ["NetworkNotFound", "PortNotFound", "RouterNotFound"]


def _check_tag(tag: str) -> None:
    msg = v.string(MAX_TAG_LEN)(tag)
    if msg:
        raise InvalidInput(msg)


def _check_body(body: Any) -> list[str]:
    if not isinstance(body, dict) or "tags" not in body:
        raise InvalidInput("Invalid tags body")
    msg = v.list_of_strings(MAX_TAG_LEN)(body["tags"])
    if msg:
        raise InvalidInput(msg)
    return list(body["tags"])


def _limit(collection: str, tags: list[str]) -> None:
    if len(set(tags)) > MAX_TAGS:
        raise bad_request(collection.replace("-", "_"),
                          f"The number of tags exceed the per-resource limit of {MAX_TAGS}")


def _tags(s: Session, rid: str) -> list[str]:
    return sorted(s.scalars(select(NetworkTag.tag).where(NetworkTag.resource_id == rid)))


def _resource(net: Net, s: Session, caller: Caller, collection: str, rid: str,
              action: str) -> Any:
    name, loader = TAGGABLE[collection]
    row, target = loader(net, s, caller, rid)
    caller.enforce(f"{action}_{name}:tags", target)
    if action != "get":  # the set and its size limit: one change at a time per resource
        db_lock(s, "tags", rid)
    return row


def list_tags(net: Net, caller: Caller, collection: str, rid: str) -> list[str]:
    with net.db.read() as s:
        _resource(net, s, caller, collection, rid, "get")
        return _tags(s, rid)


def check(net: Net, caller: Caller, collection: str, rid: str, tag: str) -> None:
    _check_tag(tag)
    with net.db.read() as s:
        _resource(net, s, caller, collection, rid, "get")
        if s.get(NetworkTag, (rid, tag)) is None:
            raise TagNotFound(tag=tag)


def replace(net: Net, caller: Caller, collection: str, rid: str, body: Any) -> list[str]:
    tags = _check_body(body)
    with net.db.write() as s:
        row = _resource(net, s, caller, collection, rid, "update")
        _limit(collection, tags)
        s.execute(delete(NetworkTag).where(NetworkTag.resource_id == rid))
        for tag in sorted(set(tags)):
            s.add(NetworkTag(resource_id=rid, tag=tag))
        bump(row)
        s.flush()
        return _tags(s, rid)


def add_many(net: Net, caller: Caller, collection: str, rid: str, body: Any) -> list[str]:
    tags = _check_body(body)
    with net.db.write() as s:
        row = _resource(net, s, caller, collection, rid, "create")
        _limit(collection, _tags(s, rid) + tags)
        for tag in sorted(set(tags)):
            if s.get(NetworkTag, (rid, tag)) is None:
                s.add(NetworkTag(resource_id=rid, tag=tag))
        bump(row)
        return tags


def add(net: Net, caller: Caller, collection: str, rid: str, tag: str) -> None:
    _check_tag(tag)
    with net.db.write() as s:
        row = _resource(net, s, caller, collection, rid, "update")
        if s.get(NetworkTag, (rid, tag)) is None:
            _limit(collection, [*_tags(s, rid), tag])
            s.add(NetworkTag(resource_id=rid, tag=tag))
            bump(row)


def remove(net: Net, caller: Caller, collection: str, rid: str, tag: str) -> None:
    _check_tag(tag)
    with net.db.write() as s:
        row = _resource(net, s, caller, collection, rid, "delete")
        existing = s.get(NetworkTag, (rid, tag))
        if existing is None:
            raise TagNotFound(tag=tag)
        s.delete(existing)
        bump(row)


def remove_all(net: Net, caller: Caller, collection: str, rid: str) -> None:
    with net.db.write() as s:
        row = _resource(net, s, caller, collection, rid, "delete")
        s.execute(delete(NetworkTag).where(NetworkTag.resource_id == rid))
        bump(row)
