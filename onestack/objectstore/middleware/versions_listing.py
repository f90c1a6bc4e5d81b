"""Listings of versioned containers and their accounts (object versioning's half
that reads).

* A versioned container's listing shows each object's current version: its
  size and etag (not the link's), ``version_symlink: true``, and a
  ``symlink_path`` ending in ``?version-id=<id>``. Its ``X-Container-Bytes-Used``
  counts the versions too; ``X-Versions-Enabled`` says whether versioning is on.
* ``GET ?versions`` (JSON only) lists every version of every object: the
  current ones (``is_latest``), the older ones and the delete markers, each
  with its ``version_id`` (``null`` for objects written while versioning was off).
  ``version_marker`` (with ``marker``) continues after a given version.
* An account listing counts each container's versions in its ``bytes``, and
  shows a versions container whose container is gone (so it can be cleaned up).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlencode

import orjson

from onestack.objectstore.http import Handler, Request, Response, fail
from onestack.objectstore.middleware.versions import (
    CLIENT_ENABLED,
    DELETE_MARKER,
    NULL,
    RESERVED,
    SYSMETA_CONTAINER,
    SYSMETA_ENABLED,
    object_prefix,
    parse_version_object,
    reserved_name,
    split_reserved_name,
    true_value,
    user_container,
    valid_version,
    version_object,
    versions_container,
)
from onestack.objectstore.proxy import listing
from onestack.objectstore.proxy.base import Proxy

JSON = "application/json"


def _sub(req: Request, method: str, path: str, params: dict[str, str]) -> Request:
    """A pre-authorized listing request that sees the reserved namespace."""
    sub = req.sub(method, path, query_string=urlencode(params), source="OV")
    sub.environ["swift.allow_reserved_names"] = True
    return sub


def _as_json(req: Request) -> Request:
    """The client's listing request, asking for JSON."""
    params = {k: v for k, v in req.params.items() if k != "versions"}
    params["format"] = "json"
    return Request(req.method, req.path, query_string=urlencode(params), headers=req.headers,
                   body=req.body, environ=req.environ, script_name=req.script_name,
                   remote_addr=req.remote_addr, host=req.host)


def _json_response(resp: Response, entries: list[dict[str, Any]], ctype: str, kind: str,
                   name: str) -> Response:
    body = listing.render(entries, ctype, kind, name) if ctype != "text/plain" else (
        "".join(f"{e.get('name', e.get('subdir', ''))}\n" for e in entries).encode())
    headers = resp.headers.copy()
    headers["Content-Type"] = f"{ctype}; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    return Response(200 if body else 204, body, headers)


def json_acceptable(req: Request) -> bool:
    fmt = req.params.get("format")
    if fmt:
        return fmt.lower() == "json"
    accept = req.headers.get("accept")
    if not accept:
        return True
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    return False
        if q > 0 and media.lower() in ("application/json", "application/*", "*/*"):
            return True
    return False


# ---------------------------------------------------------------- containers


async def container_listing(app: Handler, proxy: Proxy, req: Request, account: str,
                            container: str) -> Response:
    info = await proxy.container_info(req, account, container)
    vcont = unquote(info.get(SYSMETA_CONTAINER) or "")
    versions = req.method == "GET" and "versions" in req.params
    ctype = listing.content_type_for(req) if req.method == "GET" and not versions else JSON
    if req.method == "HEAD" or (not vcont and not versions) or (
            not versions and ctype == "text/plain"):
        resp = await app(req)
        await _container_headers(app, req, resp, account, vcont)
        return resp
    resp = await app(_as_json(req))
    await _container_headers(app, req, resp, account, vcont)
    if resp.status != 200:
        return resp
    entries = orjson.loads(await resp.read())
    location = vcont or versions_container(container)
    current = _version_links(entries, container, location, versions)
    if not versions:
        return _json_response(resp, entries, ctype, "container", container)
    if not json_acceptable(req):
        raise fail(406)
    merged = await _list_versions(app, req, account, location, entries, current,
                                  proxy.settings.container_listing_limit)
    body = orjson.dumps(merged)
    headers = resp.headers.copy()
    headers["Content-Type"] = "application/json; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    headers.pop("vary")
    return Response(200, body, headers)


async def _container_headers(app: Handler, req: Request, resp: Response, account: str,
                             vcont: str) -> None:
    """X-Versions-Enabled; the versions' bytes in X-Container-Bytes-Used."""
    enabled = resp.headers.get(SYSMETA_ENABLED)
    if enabled is not None:
        resp.headers[CLIENT_ENABLED] = enabled
    if vcont and "x-container-bytes-used" in resp.headers:
        head = await app(_sub(req, "HEAD", f"/v1/{account}/{vcont}", {}))
        head.close()
        if head.is_success:
            resp.headers["X-Container-Bytes-Used"] = str(
                int(resp.headers["x-container-bytes-used"])
                + int(head.headers.get("x-container-bytes-used", "0")))


def _version_links(entries: list[dict[str, Any]], container: str, location: str,
                   versions: bool) -> dict[str, dict[str, Any]]:
    """Entries that link to a version show the version's size and etag; the ones
    found, by the path of their version."""
    current: dict[str, dict[str, Any]] = {}
    for item in entries:
        if "symlink_path" not in item or "symlink_etag" not in item or \
                "symlink_bytes" not in item:
            continue
        path = unquote(item["symlink_path"])
        parts = path.split("/", 4)
        if len(parts) != 5 or parts[3] != location:
            continue
        _base, _, params = item["hash"].partition(";")
        item["bytes"] = int(item.pop("symlink_bytes"))
        item["version_symlink"] = True
        item["hash"] = item.pop("symlink_etag") + (f";{params}" if params else "")
        obj, version_id = parse_version_object(parts[4])
        if version_id is not None and not versions:
            item["symlink_path"] = (quote(f"/v1/{parts[2]}/{container}/{obj}")
                                    + f"?version-id={version_id}")
        current[path] = item
    return current


async def _list_versions(app: Handler, req: Request, account: str, location: str,
                         primary: list[dict[str, Any]],
                         current: dict[str, dict[str, Any]],
                         max_limit: int) -> list[dict[str, Any]]:
    """Swift's ``?versions`` listing: the current objects, then the versions
    container's entries for the same page, merged by name."""
    params = dict(req.params)
    marker = params.get("marker")
    version_marker = params.pop("version_marker", None)
    if marker is not None:
        if version_marker is None:
            params["marker"] = object_prefix(marker) + ":"  # past all of its versions
        elif version_marker == NULL:
            params["marker"] = object_prefix(marker)  # before all of its versions
        else:
            if not valid_version(version_marker, allow_null=False):
                raise fail(400, "invalid version_marker param",
                           content_type="text/html; charset=UTF-8")
            params["marker"] = version_object(marker, version_marker)
    elif version_marker is not None:
        raise fail(400, "version_marker param requires marker",
                   content_type="text/html; charset=UTF-8")
    delimiter = params.get("delimiter", "")
    if set(delimiter) & set("0123456789." + RESERVED):
        raise fail(400, "invalid delimiter param", content_type="text/html; charset=UTF-8")
    subdirs: set[str] = set()
    nulls: list[dict[str, Any]] = []
    latest: set[str] = set()
    for item in primary:
        if "name" not in item:
            subdirs.add(item["subdir"])
        elif not item.get("version_symlink"):
            nulls.append(dict(item, version_id=NULL, is_latest=True))
            latest.add(item["name"])
    if "prefix" in params:
        params["prefix"] = RESERVED + params["prefix"]
    query = {k: params.get(k, "") for k in ("prefix", "marker", "limit", "delimiter",
                                            "reverse")}
    resp = await app(_sub(req, "GET", f"/v1/{account}/{location}", dict(query, format="json")))
    found: list[dict[str, Any]] = []
    if resp.status == 404:
        resp.close()
    elif resp.is_success:
        body = await resp.read()
        for item in orjson.loads(body) if body else []:
            if "name" not in item:
                subdirs.add(split_reserved_name(item["subdir"])[0])
                continue
            name, version_id = parse_version_object(item["name"])
            if version_id is None:
                continue
            path = f"/v1/{account}/{location}/{item['name']}"
            if path in current:
                item["is_latest"] = True
                latest.add(name)
                del current[path]
            elif item.get("content_type") == DELETE_MARKER and name not in latest:
                item["is_latest"] = True
                latest.add(name)
            else:
                item["is_latest"] = False
            item["name"] = name
            item["version_id"] = version_id
            found.append(item)
    else:
        raise fail(resp.status)
    broken = []
    for item in current.values():  # links whose version is not listed (yet)
        linked = unquote(item["symlink_path"]).split("/", 4)[-1]
        name, version_id = parse_version_object(linked)
        if version_id is None:
            continue
        is_latest = name not in latest
        latest.add(name)
        broken.append({"name": name, "is_latest": is_latest, "version_id": version_id,
                       "content_type": item["content_type"], "bytes": item["bytes"],
                       "hash": item["hash"], "last_modified": item["last_modified"]})
    limit = listing.listing_params(req, max_limit).limit
    everything = [*nulls, *found, *({"subdir": s} for s in subdirs), *broken]
    everything.sort(key=lambda e: e.get("subdir", e.get("name", "")),
                    reverse=true_value(params.get("reverse", "")))
    return everything[:limit]


# ---------------------------------------------------------------- accounts


async def account_listing(app: Handler, proxy: Proxy, req: Request, account: str) -> Response:
    """An account's containers, each counting its versions' bytes."""
    params = dict(req.params)
    hidden = reserved_name("versions")
    try:
        params["prefix"] = versions_container(params["prefix"]) if "prefix" in params \
            else hidden
        for key in ("marker", "end_marker"):
            if key in params:
                params[key] = versions_container(params[key])
    except ValueError:
        pass
    query: dict[str, str] = {"format": "json"}
    for key in ("prefix", "marker", "end_marker", "limit", "delimiter", "reverse"):
        if key in params:
            query[key] = params[key]
    sub = await app(_sub(req, "GET", f"/v1/{account}", query))
    body = await sub.read()
    hidden_rows = [e for e in orjson.loads(body) if "name" in e] \
        if sub.status == 200 and body else []
    if not hidden_rows:
        return await app(req)
    ctype = listing.content_type_for(req)
    resp = await app(_as_json(req))
    if resp.status != 200:
        return resp
    entries = orjson.loads(await resp.read())
    versions = {user_container(e["name"]): e for e in hidden_rows}
    for item in entries:
        if "name" in item and item["name"] in versions:
            item["bytes"] += versions.pop(item["name"])["bytes"]
    for name, item in versions.items():  # versions whose container is gone
        entries.append(dict(item, name=name, count=0))
    limit = listing.listing_params(req, proxy.settings.account_listing_limit).limit
    entries.sort(key=lambda e: e.get("subdir", e.get("name", "")),
                 reverse=true_value(req.params.get("reverse", "")))
    entries = entries[:limit]
    return _json_response(resp, entries, ctype, "account", account)


__all__ = ["account_listing", "container_listing", "json_acceptable"]
