"""Symlinks: a zero-byte object that points at another object.

``PUT`` with ``X-Symlink-Target: <container>/<object>`` (and optionally
``X-Symlink-Target-Account``, ``X-Symlink-Target-Etag`` for a static link)
makes the link; a GET or HEAD of it serves its target (``Content-Location``
names it; at most ``symlink_loop_limit`` links are followed) and
``?symlink=get`` the link itself; a POST answers 307 to the target. Listings
show ``symlink_path``. A link to a missing object is allowed (it reads 404).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from onestack.objectstore.http import Handler, Request, Response, error, fail

TARGET = "x-object-sysmeta-symlink-target"
TARGET_ACCOUNT = "x-object-sysmeta-symlink-target-account"
TARGET_ETAG = "x-object-sysmeta-symlink-target-etag"
LOOP_LIMIT = 2


def _target(value: str, what: str = "X-Symlink-Target") -> tuple[str, str]:
    path = unquote(value).lstrip("/")
    container, _, obj = path.partition("/")
    if not container or not obj:
        raise fail(412, f"{what} header must be of the form <container name>/<object name>")
    return container, obj


class Symlink:
    def __init__(self, app: Handler) -> None:
        self.app = app

    def info(self) -> dict[str, Any]:
        return {"symlink_loop_limit": LOOP_LIMIT, "static_links": True}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if obj is None or account is None or container is None:
            return await self.app(req)
        if req.method == "PUT" and "x-symlink-target" in req.headers:
            return await self.put(req, account)
        if req.method == "PUT" and "x-symlink-target-account" in req.headers:
            raise fail(412, "X-Symlink-Target header must be present")
        if req.method in ("GET", "HEAD"):
            if req.params.get("symlink") == "get":
                resp = await self.app(req)
                self._expose(resp)
                return resp
            return await self.follow(req, account, 0)
        if req.method == "POST":
            head = await self.app(req.sub("HEAD", req.path, source="SYM"))
            head.close()
            if TARGET in head.headers:
                target_account = head.headers.get(TARGET_ACCOUNT) or account
                location = f"{req.script_name}/v1/{target_account}/{head.headers[TARGET]}"
                return error(307, headers={"Location": location})
        return await self.app(req)

    async def put(self, req: Request, account: str) -> Response:
        if (req.content_length or 0) != 0:
            raise fail(400, "Symlink requests require a zero byte body")
        container, obj = _target(req.headers.pop("x-symlink-target") or "")
        target_account = req.headers.pop("x-symlink-target-account") or account
        etag = req.headers.pop("x-symlink-target-etag")
        if etag is not None:
            head = await self.app(req.sub("HEAD", f"/v1/{target_account}/{container}/{obj}",
                                          source="SYM", authorized=False))
            head.close()
            if head.status == 404:
                raise fail(409, "X-Symlink-Target does not exist")
            if (head.headers.get("etag") or "").strip('"') != etag.strip('"'):
                raise fail(409, f"Object Etag {head.headers.get('etag', '')!r} does not match "
                                f"X-Symlink-Target-Etag header {etag!r}")
            req.headers[TARGET_ETAG] = etag.strip('"')
        req.headers[TARGET] = quote(f"{container}/{obj}")
        if target_account != account:
            req.headers[TARGET_ACCOUNT] = target_account
        req.headers["Content-Type"] = req.headers.get("content-type") or "application/symlink"
        path = f"/v1/{target_account}/{container}/{obj}"
        req.environ["swift.container_update_override"] = {
            "content_type": f"{req.headers['content-type']};symlink_target={quote(path)}"}
        resp = await self.app(req)
        if resp.is_success:
            resp.headers["X-Symlink-Target"] = quote(f"{container}/{obj}")
            if target_account != account:
                resp.headers["X-Symlink-Target-Account"] = target_account
        return resp

    async def follow(self, req: Request, account: str, depth: int) -> Response:
        resp = await self.app(req)
        if TARGET not in resp.headers:
            return resp
        if depth >= LOOP_LIMIT:
            resp.close()
            raise fail(409, f"Too many levels of symbolic links, maximum allowed is "
                            f"{LOOP_LIMIT}")
        resp.close()
        target_account = resp.headers.get(TARGET_ACCOUNT) or account
        path = f"/v1/{target_account}/{unquote(resp.headers[TARGET])}"
        sub = req.sub(req.method, path, source="SYM", authorized=False, keep_headers=True,
                      query_string="")
        target = await self.follow(sub, target_account, depth + 1)
        static = resp.headers.get(TARGET_ETAG)
        if static and target.is_success and (target.headers.get("etag") or "").strip(
                '"') != static:
            target.close()
            raise fail(409, "Object Etag does not match the static link's target")
        if target.status == 404:
            return target
        target.headers["Content-Location"] = quote(path)
        return target

    def _expose(self, resp: Response) -> None:
        if TARGET in resp.headers:
            resp.headers["X-Symlink-Target"] = resp.headers[TARGET]
            if TARGET_ACCOUNT in resp.headers:
                resp.headers["X-Symlink-Target-Account"] = resp.headers[TARGET_ACCOUNT]
