"""Symlinks: a zero-byte object that points at another object.

``PUT`` with ``X-Symlink-Target: <container>/<object>`` (and optionally
``X-Symlink-Target-Account``) makes a link; with ``X-Symlink-Target-Etag`` a
*static* link, checked against its target when made (the target's etag and
size are kept with the link and shown in listings as ``symlink_etag`` and
``symlink_bytes``). A GET or HEAD of a link serves its target
(``Content-Location`` names it; at most ``symloop_max`` links are followed);
``?symlink=get`` serves the link itself. A POST is applied to the link and
answered 307 with the target's location. Listings show ``symlink_path``. A
dynamic link to a missing object is allowed (it reads 404).

Middlewares above may make links of their own by setting the sysmeta
themselves: ``TARGET_ETAG``/``TARGET_BYTES`` (a static link they vouch for),
``LOOP_EXTEND`` (this hop does not count) and ``ALLOW_RESERVED`` (the target
is in the reserved namespace; following it is pre-authorized).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from onestack.objectstore.http import Handler, Headers, Request, Response, error, fail

TARGET = "x-object-sysmeta-symlink-target"
TARGET_ACCOUNT = "x-object-sysmeta-symlink-target-account"
TARGET_ETAG = "x-object-sysmeta-symlink-target-etag"
TARGET_BYTES = "x-object-sysmeta-symlink-target-bytes"
LOOP_EXTEND = "x-object-sysmeta-symloop-extend"
ALLOW_RESERVED = "x-object-sysmeta-allow-reserved-names"
SLO_ETAG = "x-object-sysmeta-slo-etag"
SLO_SIZE = "x-object-sysmeta-slo-size"
SYMLOOP_MAX = 2
FORM = "X-Symlink-Target header must be of the form <container name>/<object name>"
# the client's names of the link's sysmeta (``?symlink=get`` shows them)
USER_HEADERS = (("X-Symlink-Target", TARGET), ("X-Symlink-Target-Account", TARGET_ACCOUNT),
                ("X-Symlink-Target-Etag", TARGET_ETAG), ("X-Symlink-Target-Bytes", TARGET_BYTES))


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes", "on", "t", "y")


def _target(value: str) -> tuple[str, str]:
    path = unquote(value)
    if path.startswith("/"):
        raise fail(412, FORM, content_type="text/html; charset=UTF-8")
    container, _, obj = path.partition("/")
    if not container or not obj:
        raise fail(412, FORM, content_type="text/html; charset=UTF-8")
    return container, obj


class Symlink:
    def __init__(self, app: Handler) -> None:
        self.app = app

    def info(self) -> dict[str, Any]:
        return {"symloop_max": SYMLOOP_MAX, "static_links": True}

    async def __call__(self, req: Request) -> Response:
        _v, account, container, obj = req.split_path()
        if obj is None or account is None or container is None:
            return await self.app(req)
        if req.method == "PUT" and "x-symlink-target" in req.headers:
            return await self.put(req, account, container, obj)
        if req.method in ("GET", "HEAD"):
            if req.params.get("symlink") == "get":
                resp = await self.app(req)
                expose(resp.headers)
                return resp
            return await self.follow(req, account)
        if req.method == "POST":
            return await self.post(req, account)
        return await self.app(req)

    # ---------------------------------------------------------------- PUT

    async def put(self, req: Request, account: str, container: str, obj: str) -> Response:
        if (req.content_length or 0) != 0:
            raise fail(400, "Symlink requests require a zero byte body")
        tcontainer, tobj = _target(req.headers.pop("x-symlink-target") or "")
        taccount = req.headers.pop("x-symlink-target-account")
        if taccount is not None:
            taccount = unquote(taccount)
            if not taccount or "/" in taccount:
                raise fail(412, "Account name cannot contain slashes",
                           content_type="text/html; charset=UTF-8")
        if (taccount or account, tcontainer, tobj) == (account, container, obj):
            raise fail(400, "Symlink cannot target itself")
        etag = req.headers.pop("x-symlink-target-etag")
        if etag is not None:
            etag = etag.strip().strip('"')
            if any(c in etag for c in ';"\\'):
                raise fail(400, "Bad X-Symlink-Target-Etag format")
        if not etag and not req.headers.get("content-type"):
            req.headers["Content-Type"] = "application/symlink"
        target_account = taccount or account
        path = f"/v1/{target_account}/{tcontainer}/{tobj}"
        params = []
        if etag:
            params.extend(await self._static(req, path, etag))
        req.headers[TARGET] = quote(f"{tcontainer}/{tobj}")
        if taccount is not None:
            req.headers[TARGET_ACCOUNT] = quote(taccount)
        if TARGET_ETAG in req.headers:
            params.append(f"symlink_target_etag={req.headers[TARGET_ETAG]}")
            params.append(f"symlink_target_bytes={req.headers.get(TARGET_BYTES, '0')}")
        override = req.environ.setdefault("swift.container_update_override", {})
        given = override.get("etag_params")  # e.g. a versioned SLO's slo_etag
        override["etag_params"] = "; ".join([*([given] if given else []),
                                             f"symlink_target={quote(path)}", *params])
        return await self.app(req)

    async def _static(self, req: Request, path: str, etag: str) -> list[str]:
        """Check a static link's target (through static links only); keep its
        etag and size. Returns listing parameters the target passes on."""
        head = req.sub("HEAD", path, source="SYM", authorized=False, query_string="")
        if _true(req.headers.get(ALLOW_RESERVED)):
            head = req.sub("HEAD", path, source="SYM", query_string="")
        target = await self._walk(head, etag, follow_dynamic=False, depth=0, location=path)
        target.close()
        location = {"Content-Location": target.headers.get("content-location", path)}
        if target.status == 404:
            raise fail(409, "X-Symlink-Target does not exist", headers=location)
        if not target.is_success:
            raise fail(target.status)
        req.headers[TARGET_ETAG] = etag
        req.headers[TARGET_BYTES] = target.headers.get(SLO_SIZE) or target.headers.get(
            "content-length", "0")
        if not req.headers.get("content-type"):
            req.headers["Content-Type"] = target.headers.get("content-type",
                                                             "application/octet-stream")
        slo_etag = target.headers.get(SLO_ETAG)
        return [f"slo_etag={slo_etag}"] if slo_etag else []

    # ---------------------------------------------------------------- GET / HEAD

    async def follow(self, req: Request, account: str) -> Response:
        return await self._walk(req, None, follow_dynamic=True, depth=0)

    async def _walk(self, req: Request, want_etag: str | None, *, follow_dynamic: bool,
                    depth: int, location: str | None = None) -> Response:
        resp = await self.app(req)
        link = resp.headers.get(TARGET)
        link_etag = resp.headers.get(TARGET_ETAG)
        if link and (link_etag or follow_dynamic):
            resp.close()
            found = link_etag or (resp.headers.get("etag") or "").strip('"')
            if want_etag and want_etag != found:
                raise fail(409, "X-Symlink-Target-Etag headers do not match",
                           headers={"Content-Location": location or ""})
            extend = _true(resp.headers.get(LOOP_EXTEND))
            if depth >= SYMLOOP_MAX and not extend:
                raise fail(409, f"Too many levels of symbolic links, maximum allowed is "
                                f"{SYMLOOP_MAX}")
            _v, account, _c, _o = req.split_path()
            target_account = unquote(resp.headers.get(TARGET_ACCOUNT) or "") or account
            path = f"/v1/{target_account}/{unquote(link)}"
            reserved = _true(resp.headers.get(ALLOW_RESERVED))
            sub = req.sub(req.method, path, source="SYM", authorized=reserved,
                          keep_headers=True, query_string="")
            if reserved:
                sub.environ["swift.allow_reserved_names"] = True
            return await self._walk(sub, link_etag, follow_dynamic=follow_dynamic,
                                    depth=depth if extend else depth + 1,
                                    location=quote(path))
        final = (resp.headers.get("etag") or "").strip('"')
        if want_etag and final and want_etag != final:
            resp.close()
            raise fail(409, f"Object Etag {final!r} does not match X-Symlink-Target-Etag "
                            f"header {want_etag!r}",
                       headers={"Content-Location": location or ""})
        if location is not None:
            resp.headers["Content-Location"] = location
        return resp

    # ---------------------------------------------------------------- POST

    async def post(self, req: Request, account: str) -> Response:
        if "x-symlink-target" in req.headers:
            raise fail(400, "A PUT request is required to set a symlink target")
        resp = await self.app(req)
        if not resp.is_success:
            return resp
        head = await self.app(req.sub("HEAD", req.path, source="SYM",
                                      query_string="symlink=get"))
        head.close()
        link = head.headers.get(TARGET)
        if not link or not head.is_success:
            return resp
        resp.close()
        target_account = head.headers.get(TARGET_ACCOUNT) or quote(account)
        headers = {"Location": f"{req.script_name}/v1/{target_account}/{link}"}
        if TARGET_ETAG in head.headers:
            headers["X-Symlink-Target-Etag"] = head.headers[TARGET_ETAG]
        for key, value in head.headers.items():
            if key.startswith("x-object-sysmeta-"):
                headers[key] = value
        return error(307, "The requested POST was applied to a symlink. POST directly to the "
                          "target to apply requested metadata.", headers=headers,
                     content_type="text/html; charset=UTF-8")


def expose(headers: Headers) -> None:
    """A link's sysmeta under the client's names (``?symlink=get``)."""
    for user, sysmeta in USER_HEADERS:
        if sysmeta in headers:
            headers[user] = headers[sysmeta]
