"""A server's metadata (``/servers/{id}/metadata``) and tags (``/tags``, 2.26+)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from onestack.common.auth import AuthContext
from onestack.common.errors import BadRequest, Conflict, NotFound
from onestack.common.ids import utcnow
from onestack.compute import states
from onestack.compute.service import boot_checks
from onestack.compute.service._common import check_locked, check_state, find, get

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

_META = "os_compute_api:server-metadata:"
_TAGS = "os_compute_api:os-server-tags:"
MAX_TAGS = 50
_METADATA_STATES = [states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED]
_TAG_STATES = {states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED, states.SHELVED,
               states.SHELVED_OFFLOADED}


def metadata(svc: ComputeService, ctx: AuthContext, server_id: str) -> dict[str, str]:
    return dict(get(svc, ctx, server_id, _META + "index").metadata_ or {})


def metadata_item(svc: ComputeService, ctx: AuthContext, server_id: str, key: str) -> str:
    meta = get(svc, ctx, server_id, _META + "show").metadata_ or {}
    if key not in meta:
        raise NotFound("Metadata item was not found")
    return str(meta[key])


def set_metadata(svc: ComputeService, ctx: AuthContext, server_id: str, values: dict[str, Any],
                 *, replace: bool, rule: str, method: str) -> dict[str, str]:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _META + rule, lock=True)
        check_locked(svc, ctx, server)
        check_state(server, method, vm_states=_METADATA_STATES, must_have_launched=False)
        new = dict(values) if replace else {**(server.metadata_ or {}), **values}
        boot_checks.check_metadata(svc, s, server.project_id, new)
        server.metadata_ = new
        server.updated_at = utcnow()
        return dict(new)


def delete_metadata_item(svc: ComputeService, ctx: AuthContext, server_id: str, key: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _META + "delete", lock=True)
        meta = dict(server.metadata_ or {})
        if key not in meta:
            raise NotFound("Metadata item was not found")
        check_locked(svc, ctx, server)
        check_state(server, "delete_metadata", vm_states=_METADATA_STATES,
                    must_have_launched=False)
        del meta[key]
        server.metadata_ = meta
        server.updated_at = utcnow()


def _check_tag_state(server: Any, action: str) -> None:
    if server.vm_state not in _TAG_STATES:
        raise Conflict(f"Cannot '{action}' instance {server.id} while it is in vm_state "
                       f"{server.vm_state}")


def tags(svc: ComputeService, ctx: AuthContext, server_id: str) -> list[str]:
    return list(get(svc, ctx, server_id, _TAGS + "index").tags or [])


def has_tag(svc: ComputeService, ctx: AuthContext, server_id: str, tag: str) -> None:
    server = get(svc, ctx, server_id, _TAGS + "show")
    if tag not in (server.tags or []):
        raise NotFound(f"Server {server_id} has no tag '{tag}'")


def _valid_tag(tag: str) -> None:
    if not tag or len(tag) > 60 or "," in tag or "/" in tag:
        raise BadRequest(f"Tag '{tag}' is invalid. It must be a non empty string without "
                         "characters '/' and ','")


def add_tag(svc: ComputeService, ctx: AuthContext, server_id: str, tag: str) -> bool:
    """Add a tag; True if it was new."""
    _valid_tag(tag)
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _TAGS + "update", lock=True)
        _check_tag_state(server, "update tag")
        current = list(server.tags or [])
        if tag in current:
            return False
        if len(current) >= MAX_TAGS:
            raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        server.tags = [*current, tag]
        server.updated_at = utcnow()
        return True


def replace_tags(svc: ComputeService, ctx: AuthContext, server_id: str,
                 new: list[str]) -> list[str]:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _TAGS + "update_all", lock=True)
        _check_tag_state(server, "update tags")
        server.tags = list(dict.fromkeys(new))
        server.updated_at = utcnow()
        return list(server.tags)


def delete_tag(svc: ComputeService, ctx: AuthContext, server_id: str, tag: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _TAGS + "delete", lock=True)
        _check_tag_state(server, "delete tag")
        current = list(server.tags or [])
        if tag not in current:
            raise NotFound(f"Instance {server_id} has no tag '{tag}'")
        current.remove(tag)
        server.tags = current
        server.updated_at = utcnow()


def delete_tags(svc: ComputeService, ctx: AuthContext, server_id: str) -> None:
    with svc.db.write() as s:
        server = find(svc, ctx, s, server_id, _TAGS + "delete_all", lock=True)
        _check_tag_state(server, "delete tags")
        server.tags = []
        server.updated_at = utcnow()
