"""Object versioning's names, and its in-process API for other front ends (S3).

A versioned container ``c`` keeps its versions in the hidden container
``\\x00versions\\x00c`` (the reserved namespace: clients cannot name it, and
listings do not show it). Version ``v`` of object ``o`` is stored there as
``\\x00o\\x00<~v>``, where ``~v`` is the version's timestamp inverted, so a
listing shows each object's versions newest first. A version id is the
timestamp of the write that made it (``1700000000.12345``); ``null`` names an
object written while versioning was off (or never on).

:class:`ObjectVersions` is what another API (S3's bucket versioning) calls:
each method is one request down the Swift pipeline as the caller, so policy,
ACLs and quotas apply exactly as they do to Swift clients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from onestack.objectstore.http import Handler, Request, Response, fail

RESERVED = "\x00"
DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
CLIENT_ENABLED = "x-versions-enabled"
SYSMETA_ENABLED = "x-container-sysmeta-versions-enabled"
SYSMETA_CONTAINER = "x-container-sysmeta-versions-container"
SYSMETA_SYMLINK = "x-object-sysmeta-versions-symlink"
NULL = "null"

_MAX_RAW = 999999999999999  # Swift's MAX_RAW_TIME: timestamps in units of 1e-5 s
_MAX_OFFSET = 16 ** 16 - 1
_TIMESTAMP = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(?:_([0-9a-fA-F]{1,16}))?$")


def reserved_name(*parts: str) -> str:
    if any(RESERVED in p for p in parts):
        raise ValueError("Invalid reserved part in components")
    return RESERVED + RESERVED.join(parts)


def split_reserved_name(name: str) -> list[str]:
    if not name.startswith(RESERVED):
        raise ValueError("Invalid reserved name")
    return name.split(RESERVED)[1:]


def versions_container(container: str) -> str:
    """The hidden container holding ``container``'s versions."""
    return reserved_name("versions", container)


def user_container(name: str) -> str:
    """The user's container a versions container belongs to (else ``name``)."""
    try:
        kind, *rest = split_reserved_name(name)
    except ValueError:
        return name
    return rest[0] if kind == "versions" and len(rest) == 1 else name


def _parse(version_id: str) -> tuple[int, int]:
    """(time in units of 1e-5 s, offset) of a timestamp string (ValueError if bad)."""
    m = _TIMESTAMP.match(version_id)
    if m is None:
        raise ValueError(version_id)
    raw = round(float(m.group(1)) * 100000)
    if raw > _MAX_RAW:
        raise ValueError(version_id)
    return raw, int(m.group(2) or "0", 16)


def _format(raw: int, offset: int) -> str:
    text = f"{raw // 100000:010d}.{raw % 100000:05d}"
    return f"{text}_{offset:016x}" if offset else text


def normal_version(version_id: str) -> str:
    """A version id in its canonical form (``%016.05f``, ``_<offset>`` if any)."""
    return _format(*_parse(version_id))


def invert(version_id: str) -> str:
    """Swift's ``~Timestamp``: later times sort first."""
    raw, offset = _parse(version_id)
    if offset:
        return _format(_MAX_RAW - raw - 1, _MAX_OFFSET + 1 - offset)
    return _format(_MAX_RAW - raw, 0)


def version_object(obj: str, version_id: str) -> str:
    """The name of ``obj``'s version ``version_id`` in the versions container."""
    return reserved_name(obj, invert(version_id))


def object_prefix(obj: str) -> str:
    """The prefix of every version of ``obj`` (a listing marker or prefix)."""
    return reserved_name(obj, "")


def parse_version_object(name: str) -> tuple[str, str | None]:
    """(object name, version id) of a versions container's object name."""
    try:
        obj, inverted = split_reserved_name(name)
        return obj, invert(inverted)
    except ValueError:
        return name, None


def valid_version(version_id: str, allow_null: bool = True) -> bool:
    if version_id == NULL:
        return allow_null
    try:
        _parse(version_id)
    except ValueError:
        return False
    return True


def check_version(version_id: str, allow_null: bool = True) -> None:
    if not valid_version(version_id, allow_null):
        raise fail(400, "Invalid version parameter")


def true_value(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on", "t", "y")


# ---------------------------------------------------------------- the in-process API


@dataclass
class Version:
    """One entry of a versions listing."""

    name: str
    version_id: str
    is_latest: bool
    content_type: str
    bytes: int
    hash: str
    last_modified: str

    @property
    def is_delete_marker(self) -> bool:
        return self.content_type == DELETE_MARKER


class ObjectVersions:
    """Object versioning for another API in the same process: every call is a
    request down the Swift pipeline on behalf of ``caller`` (its credentials,
    transaction id), answered as a Swift client would be."""

    def __init__(self, pipeline: Handler) -> None:
        self.pipeline = pipeline

    def _req(self, caller: Request, method: str, path: str, query: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> Request:
        return caller.sub(method, path, headers=headers or {},
                          query_string=urlencode(query or {}), authorized=False,
                          source="OV-API")

    async def set_enabled(self, caller: Request, account: str, container: str,
                          enabled: bool) -> Response:
        """Turn versioning on or off (the container must exist: 204, else 404)."""
        return await self.pipeline(self._req(
            caller, "POST", f"/v1/{account}/{container}",
            headers={"X-Versions-Enabled": "true" if enabled else "false"}))

    async def status(self, caller: Request, account: str, container: str) -> bool | None:
        """True (enabled), False (suspended) or None (never enabled)."""
        resp = await self.pipeline(self._req(caller, "HEAD", f"/v1/{account}/{container}"))
        resp.close()
        if not resp.is_success:
            raise fail(resp.status)
        value = resp.headers.get(CLIENT_ENABLED)
        return None if value is None else true_value(value)

    async def list_versions(self, caller: Request, account: str, container: str, *,
                            prefix: str = "", marker: str = "", version_marker: str = "",
                            limit: int | None = None, delimiter: str = "",
                            reverse: bool = False) -> tuple[list[Version], list[str]]:
        """Every version (newest first per name) and the subdirs, one page."""
        query = {"versions": "", "format": "json"}
        for key, value in (("prefix", prefix), ("marker", marker),
                           ("version_marker", version_marker), ("delimiter", delimiter)):
            if value:
                query[key] = value
        if limit is not None:
            query["limit"] = str(limit)
        if reverse:
            query["reverse"] = "true"
        resp = await self.pipeline(self._req(caller, "GET", f"/v1/{account}/{container}",
                                             query))
        body = await resp.read()
        if resp.status == 204:
            return [], []
        if not resp.is_success:
            raise fail(resp.status, body or None)
        versions: list[Version] = []
        subdirs: list[str] = []
        for item in orjson.loads(body):
            if "subdir" in item:
                subdirs.append(item["subdir"])
            else:
                versions.append(Version(item["name"], item["version_id"],
                                        bool(item["is_latest"]), item["content_type"],
                                        int(item["bytes"]), item["hash"],
                                        item["last_modified"]))
        return versions, subdirs

    async def get(self, caller: Request, account: str, container: str, obj: str,
                  version_id: str, method: str = "GET",
                  headers: dict[str, str] | None = None) -> Response:
        """GET or HEAD one version (a delete marker answers 404)."""
        return await self.pipeline(self._req(caller, method, f"/v1/{account}/{container}/{obj}",
                                             {"version-id": version_id}, headers))

    async def delete(self, caller: Request, account: str, container: str, obj: str,
                     version_id: str) -> Response:
        """Delete one version for good (no delete marker is written)."""
        return await self.pipeline(self._req(caller, "DELETE",
                                             f"/v1/{account}/{container}/{obj}",
                                             {"version-id": version_id}))
