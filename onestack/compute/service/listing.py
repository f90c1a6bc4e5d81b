"""``GET /servers`` and ``/servers/detail``: Nova's filters, sorting, paging
and ``changes-since``, in SQL; and what a page's view needs beyond its rows
(volume attachments, host statuses), read for the whole page at once."""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import JSON, DateTime, Select, String, and_, not_, or_, select, type_coerce
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Forbidden
from onestack.common.ids import parse_isotime
from onestack.common.microversions import APIVersion
from onestack.common.pagination import PageParams, json_contains
from onestack.compute import states
from onestack.compute.models import Server, ServerGroupMember, VolumeAttachment
from onestack.compute.service._common import SERVERS
from onestack.compute.service._paging import page_rows

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
PAGING = ("limit", "marker", "sort_key", "sort_dir")
_JOINED = ("block_device_mapping", "services", "metadata", "system_metadata", "info_cache",
           "security_groups", "pci_devices")

# API sort key -> column; keys Nova ignores silently map to None.
SORT_COLUMNS: dict[str, str | None] = {
    "access_ip_v4": "access_ip_v4", "access_ip_v6": "access_ip_v6", "auto_disk_config": None,
    "availability_zone": "availability_zone", "config_drive": "config_drive",
    "created_at": "created_at", "display_description": "description", "display_name": "name",
    "host": "host", "hostname": "hostname", "image_ref": "image_ref",
    "instance_type_id": "flavor_id", "kernel_id": None, "key_name": "key_name",
    "launch_index": "launch_index", "launched_at": "launched_at", "locked_by": "locked_by",
    "node": "node", "power_state": "power_state", "progress": "progress",
    "project_id": "project_id", "ramdisk_id": None, "root_device_name": "root_device_name",
    "task_state": "task_state", "terminated_at": "terminated_at", "updated_at": "updated_at",
    "user_id": "user_id", "uuid": "id", "vm_state": "vm_state", "locked": "locked",
}
IGNORED_SORT_KEYS = {"architecture", "cell_name", "cleaned", "default_ephemeral_device",
                     "default_swap_device", "deleted", "deleted_at", "disable_terminate",
                     "ephemeral_gb", "ephemeral_key_uuid", "id", "key_data", "launched_on",
                     "locked", "memory_mb", "os_type", "reservation_id", "root_gb",
                     "shutdown_terminate", "user_data", "vcpus", "vm_mode"}

# API filter -> (column, exact match?)
_COLUMNS: dict[str, tuple[str, bool]] = {
    "user_id": ("user_id", True), "project_id": ("project_id", True),
    "tenant_id": ("project_id", True), "image": ("image_ref", True),
    "image_ref": ("image_ref", True), "uuid": ("id", True), "host": ("host", True),
    "vm_state": ("vm_state", True), "task_state": ("task_state", True),
    "flavor": ("flavor_id", True), "launch_index": ("launch_index", True),
    "name": ("name", False), "display_name": ("name", False),
    "description": ("description", False), "display_description": ("description", False),
    "hostname": ("hostname", False), "key_name": ("key_name", False),
    "node": ("node", False), "reservation_id": ("reservation_id", False),
    "availability_zone": ("availability_zone", False), "locked_by": ("locked_by", False),
    "root_device_name": ("root_device_name", False), "access_ip_v4": ("access_ip_v4", False),
    "access_ip_v6": ("access_ip_v6", False), "power_state": ("power_state", True),
    "progress": ("progress", True), "config_drive": ("config_drive", True),
}


# What a listed server is read with: plain rows without the columns no view
# shows, read as stored - SQLite's text times are not parsed into datetimes only
# to be written out again (the views take either), and the JSON documents are
# decoded once per distinct text of a page (a page's servers mostly share their
# flavor, metadata, tags and security groups). Each row becomes a ``Listed``
# (a named tuple: the views' ~40 attribute reads per server cost a tenth of a
# SQLAlchemy row's).
_NOT_LISTED = {"key_data", "password", "requested_networks", "block_device_mapping",
               "scheduler_hints", "old_flavor", "new_flavor"}
_LISTED = [c for c in Server.__table__.columns if c.name not in _NOT_LISTED]
LIST_COLUMNS = [
    type_coerce(c, String).label("metadata_" if c.name == "metadata" else c.name)
    if isinstance(c.type, DateTime | JSON) else c
    for c in _LISTED
]
Listed = namedtuple("Listed", ["metadata_" if c.name == "metadata" else c.name  # type: ignore[misc]
                               for c in _LISTED])
_JSON_AT = [i for i, c in enumerate(_LISTED) if isinstance(c.type, JSON)]


def listed(rows: Iterable[Sequence[Any]]) -> list[Any]:
    """``Listed`` servers of rows of ``LIST_COLUMNS``, their JSON decoded."""
    memo: dict[str, Any] = {}
    out = []
    make = Listed._make
    for row in rows:
        values = list(row)
        for i in _JSON_AT:
            value = values[i]
            if isinstance(value, str):  # SQLite's text (PostgreSQL's driver decodes)
                found = memo.get(value)
                if found is None:
                    found = memo[value] = orjson.loads(value)
                values[i] = found
        out.append(make(values))
    return out


def allowed_filters(version: APIVersion) -> set[str]:
    """What a non-admin may filter on (others are dropped, as Nova does)."""
    names = {"reservation_id", "name", "status", "image", "flavor", "ip", "changes-since",
             "all_tenants"}
    if version.matches("2.5"):
        names.add("ip6")
    if version.matches("2.26"):
        names.update(TAG_FILTERS)
    if version.matches("2.66"):
        names.add("changes-before")
    if version.matches("2.73"):
        names.add("locked")
    if version.matches("2.83"):
        names.update({"availability_zone", "config_drive", "key_name", "created_at",
                      "launched_at", "terminated_at", "power_state", "task_state", "vm_state",
                      "progress", "user_id"})
    if version.matches("2.90"):
        names.add("hostname")
    return names


def _true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "t", "on", "y", "yes")


def _time(name: str, value: str) -> Any:
    try:
        return parse_isotime(value)
    except ValueError:
        raise BadRequest(f"Invalid filter field: {name}.") from None


def _regex(column: Any, pattern: str) -> Any:
    try:
        re.compile(pattern)
    except re.error:
        raise BadRequest(f"Invalid regular expression: {pattern}") from None
    return column.regexp_match(pattern)


def _ip_ids(s: Session, base: Select[Any], pattern: str, version: int) -> list[str]:
    """Servers with a fixed address matching ``pattern`` (Nova matches in Python too)."""
    try:
        wanted = re.compile(pattern)
    except re.error:
        raise BadRequest(f"Invalid regular expression: {pattern}") from None
    ids = []
    for server_id, info in s.execute(base.with_only_columns(Server.id, Server.network_info)):
        for vif in info or []:
            if any(ip.get("version") == version and wanted.search(ip["address"])
                   for ip in vif.get("ips", [])):
                ids.append(server_id)
                break
    return ids


def _sort(params: Any, version: APIVersion, admin: bool) -> tuple[list[str], list[str]]:
    keys = [k.strip() for k in params.getlist("sort_key")]
    dirs = [d.strip().lower() for d in params.getlist("sort_dir")]
    if not keys:
        keys, dirs = ["created_at"], dirs[:1] or ["desc"]
    ignored = set(IGNORED_SORT_KEYS)
    if version.matches("2.73"):
        ignored.discard("locked")
    out_keys: list[str] = []
    out_dirs: list[str] = []
    for i, key in enumerate(keys):
        if key in ignored:
            continue
        if key in ("host", "node") and not admin:
            raise Forbidden(f"Only administrators can sort servers by {key}")
        column = SORT_COLUMNS.get(key)
        if column is None:
            continue
        direction = dirs[i] if i < len(dirs) else (dirs[-1] if dirs else "desc")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
        out_keys.append(column)
        out_dirs.append(direction)
    if not out_keys:
        out_keys, out_dirs = ["created_at"], ["desc"]
    return out_keys, out_dirs


def list_servers(svc: ComputeService, ctx: AuthContext, params: Any, *, detail: bool,
                 version: APIVersion,
                 session: Session | None = None) -> tuple[list[Server], int | None]:
    """One page of servers (``Listed`` rows; only ``id`` and ``name`` without
    ``detail``) and the page's limit; read in ``session`` if given (the rest of
    the page's reads share it)."""
    if session is not None:
        return _list_servers(svc, ctx, params, detail, version, session)
    with svc.db.read() as s:
        return _list_servers(svc, ctx, params, detail, version, s)


def _list_servers(svc: ComputeService, ctx: AuthContext, params: Any, detail: bool,
                  version: APIVersion, s: Session) -> tuple[list[Server], int | None]:
    admin = svc.is_admin(ctx)
    opts: dict[str, list[str]] = {}
    for key, value in params.multi_items():
        opts.setdefault(key, []).append(value)
    for key in opts:
        if key in _JOINED or key.startswith("_"):
            raise BadRequest(f"Invalid filter field: {key}.")
    if not svc.allowed(SERVERS + "allow_all_filters", ctx):
        allowed = allowed_filters(version) | set(PAGING)
        opts = {k: v for k, v in opts.items() if k in allowed}
    first = {k: v[-1] for k, v in opts.items()}
    page = PageParams.from_query(params, max_limit=svc.conf.max_limit, zero_is_default=False)
    stmt = select(Server)

    all_tenants = "all_tenants" in first and (first["all_tenants"] == "" or
                                             _true(first["all_tenants"]))
    if all_tenants:
        svc.authorize(SERVERS + ("detail:get_all_tenants" if detail
                                 else "index:get_all_tenants"), ctx)
    else:
        first.pop("tenant_id", None)
        first["project_id"] = ctx.project_id or ""
    conditions: list[Any] = []
    if "status" in opts:
        vm, task = states.states_for_statuses(opts["status"])
        if not vm:
            if version.matches("2.38"):
                raise BadRequest("Invalid status value")
            return [], page.limit
        conditions.append(Server.vm_state.in_(sorted(vm)))
        if None not in task:
            conditions.append(Server.task_state.in_(sorted(t for t in task if t)))
    since = _time("changes-since", first["changes-since"]) if "changes-since" in first else None
    before = _time("changes-before", first["changes-before"]) \
        if "changes-before" in first else None
    if since is not None and before is not None and before < since:
        raise BadRequest("The value of changes-since must be less than or equal to "
                         "changes-before.")
    if since is not None:
        conditions.append(Server.updated_at >= since)
    if before is not None:
        conditions.append(Server.updated_at <= before)
    if "deleted" in first:
        deleted = _true(first["deleted"])
        conditions.append(Server.deleted.is_(deleted))
    elif since is None and before is None:
        conditions.append(Server.deleted.is_(False))
    if first.get("vm_state") == "deleted":
        if not admin:
            raise Forbidden("Only administrators may list deleted instances")
        conditions.append(Server.deleted.is_(True))
    if "locked" in first and version.matches("2.73"):
        conditions.append(Server.locked.is_(_true(first["locked"])))
    for name, (column_name, exact) in _COLUMNS.items():
        if name not in first or (name == "vm_state" and first[name] == "deleted"):
            continue
        column = getattr(Server, column_name)
        value = first[name]
        if name in ("image", "image_ref"):
            value = value.rstrip("/").rsplit("/", 1)[-1]
        if column_name == "config_drive":
            conditions.append(column.is_(_true(value)))
        elif column_name in ("power_state", "progress", "launch_index"):
            try:
                conditions.append(column == int(value))
            except ValueError:
                return [], page.limit
        elif exact:
            values = opts.get(name, [value]) if name in ("vm_state", "task_state") else [value]
            conditions.append(column.in_(values))
        else:
            conditions.append(_regex(column, value))
    for name in ("created_at", "launched_at", "terminated_at"):
        if name in first:
            conditions.append(getattr(Server, name) >= _time(name, first[name]))
    if version.matches("2.26"):
        for name in TAG_FILTERS:
            if name not in first:
                continue
            tags = [t for t in first[name].split(",") if t]
            matches = [json_contains(Server.tags, t) for t in tags]
            if not matches:
                continue
            if name == "tags":
                conditions.append(and_(*matches))
            elif name == "tags-any":
                conditions.append(or_(*matches))
            elif name == "not-tags":
                conditions.append(not_(and_(*matches)))
            else:
                conditions.append(not_(or_(*matches)))
    stmt = stmt.where(*conditions)
    sort_keys, sort_dirs = _sort(params, version, admin)
    for name, ip_version in (("ip", 4), ("ip6", 6)):
        if name in first:
            stmt = stmt.where(Server.id.in_(_ip_ids(s, stmt, first[name], ip_version)))
    if not detail:  # the brief list shows the id and name only
        return page_rows(s, stmt, Server, page, sort_keys=sort_keys, sort_dirs=sort_dirs,
                         columns=[Server.id, Server.name]), page.limit
    rows = page_rows(s, stmt, Server, page, sort_keys=sort_keys, sort_dirs=sort_dirs,
                     columns=LIST_COLUMNS)
    return listed(rows), page.limit


def volumes_of(svc: ComputeService, server_ids: list[str],
               session: Session | None = None) -> dict[str, list[tuple[str, bool]]]:
    if not server_ids:
        return {}
    out: dict[str, list[tuple[str, bool]]] = {}
    stmt = (select(VolumeAttachment.server_id, VolumeAttachment.volume_id,
                   VolumeAttachment.delete_on_termination)
            .where(VolumeAttachment.server_id.in_(server_ids))
            .order_by(VolumeAttachment.created_at))
    with _reading(svc, session) as s:
        if not _any_row(s, VolumeAttachment.server_id):
            return out  # most clouds: no server has a volume (no IN over a page of ids)
        for server_id, volume_id, dot in s.execute(stmt):
            out.setdefault(server_id, []).append((volume_id, bool(dot)))
    return out


def groups_of(svc: ComputeService, server_ids: list[str],
              session: Session | None = None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not server_ids:
        return out
    with _reading(svc, session) as s:
        for group_id, server_id in s.execute(
            select(ServerGroupMember.group_id, ServerGroupMember.server_id)
            .where(ServerGroupMember.server_id.in_(server_ids))
        ):
            out.setdefault(server_id, []).append(group_id)
    return out


def host_statuses(svc: ComputeService, session: Session | None = None) -> dict[str, str]:
    """Nova's ``host_status`` of each compute host: UP, DOWN or MAINTENANCE."""
    from onestack.compute import kinds

    out: dict[str, str] = {}
    for view in svc.cloud.hosts.services(svc.settings.hosts.service_down_time,
                                         binary=kinds.COMPUTE_BINARY, session=session):
        if view.forced_down or not view.alive:
            out[view.host] = "DOWN" if view.alive is False or view.forced_down else "UNKNOWN"
        elif view.disabled:
            out[view.host] = "MAINTENANCE"
        else:
            out[view.host] = "UP"
    return out


def _any_row(s: Session, column: Any) -> bool:
    return s.execute(select(column).limit(1)).first() is not None


@contextmanager
def _reading(svc: ComputeService, session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
    else:
        with svc.db.read() as s:
            yield s
