"""FormPost: browsers upload into a container with a signed HTML form.

A ``POST`` of ``multipart/form-data`` to ``/v1/<account>/<container>[/<prefix>]``
carries ``redirect``, ``max_file_size``, ``max_file_count``, ``expires`` and
``signature`` (an HMAC, as for TempURL, of
``path\\nredirect\\nmax_file_size\\nmax_file_count\\nexpires`` with an account or
container Temp-URL key) before its files; each file becomes
``<prefix><filename>``. The answer is a 303 to ``redirect`` with
``status=``/``message=``, or the status as text. The body is spooled to a
temporary file and parsed from there (never held in memory).
"""

from __future__ import annotations

import hmac
import mmap
import tempfile
import time
from typing import Any
from urllib.parse import quote

from onestack.common.web import run
from onestack.objectstore.http import Handler, Headers, Request, Response, error
from onestack.objectstore.middleware.tempurl import DIGESTS, split_signature
from onestack.objectstore.proxy.base import Proxy

MAX_VALUE_LENGTH = 4096


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _params(header: str) -> tuple[str, dict[str, str]]:
    value, _, rest = header.partition(";")
    attrs: dict[str, str] = {}
    for part in rest.split(";"):
        key, eq, val = part.strip().partition("=")
        if eq:
            attrs[key.strip().lower()] = val.strip().strip('"')
    return value.strip().lower(), attrs


def parts(data: memoryview, boundary: bytes) -> list[tuple[dict[str, str], memoryview]]:
    """The (headers, body) of each part of a multipart document."""
    raw = data.obj if isinstance(data.obj, bytes | mmap.mmap) else bytes(data)
    delim = b"--" + boundary
    start = raw.find(delim)  # type: ignore[union-attr]
    if start < 0:
        raise FormError(400, "invalid starting boundary")
    out = []
    pos = start + len(delim)
    while True:
        if raw[pos:pos + 2] == b"--":
            break
        if raw[pos:pos + 2] == b"\r\n":
            pos += 2
        head_end = raw.find(b"\r\n\r\n", pos)  # type: ignore[union-attr]
        if head_end < 0:
            raise FormError(400, "invalid form part")
        headers: dict[str, str] = {}
        for line in bytes(raw[pos:head_end]).decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key:
                headers[key.strip().lower()] = value.strip()
        body_start = head_end + 4
        nxt = raw.find(b"\r\n" + delim, body_start)  # type: ignore[union-attr]
        if nxt < 0:
            raise FormError(400, "invalid form part")
        out.append((headers, data[body_start:nxt]))
        pos = nxt + 2 + len(delim)
    return out


class FormPost:
    def __init__(self, app: Handler, proxy: Proxy, digests: list[str]) -> None:
        self.app = app
        self.proxy = proxy
        self.digests = [d for d in digests if d in DIGESTS]

    def info(self) -> dict[str, Any]:
        return {"allowed_digests": sorted(self.digests)}

    async def __call__(self, req: Request) -> Response:
        if req.method != "POST":
            return await self.app(req)
        ctype, attrs = _params(req.headers.get("content-type", ""))
        if ctype != "multipart/form-data" or "boundary" not in attrs:
            return await self.app(req)
        _v, account, container, _obj = req.split_path()
        if account is None or container is None:
            return await self.app(req)
        spool = tempfile.TemporaryFile()
        try:
            async for chunk in req.body:
                await run(spool.write, chunk)
            await run(spool.flush)
            size = spool.tell()
            if not size:
                return self._text(400, "FormPost: invalid starting boundary")
            with mmap.mmap(spool.fileno(), size, access=mmap.ACCESS_READ) as mm:
                try:
                    return await self.translate(req, account, container, memoryview(mm),
                                                attrs["boundary"].encode())
                except FormError as exc:
                    if exc.status == 401:
                        return error(401, f"FormPost: {str(exc).title()}")
                    return self._text(400, f"FormPost: {exc}")
        finally:
            spool.close()

    def _text(self, status: int, text: str) -> Response:
        return Response(status, text.encode(), content_type="text/plain")

    async def translate(self, req: Request, account: str, container: str, data: memoryview,
                        boundary: bytes) -> Response:
        fields: dict[str, str] = {}
        status, message, resp_body = 0, "", b""
        count = 0
        for headers, body in parts(data, boundary):
            disp, attrs = _params(headers.get("content-disposition", ""))
            if disp == "form-data" and attrs.get("filename"):
                count += 1
                try:
                    if count > int(fields.get("max_file_count") or 0):
                        status, message = 400, "max file count exceeded"
                        break
                except ValueError:
                    raise FormError(400, "max_file_count not an integer") from None
                status, resp_body = await self.upload(req, account, container, fields, attrs,
                                                      headers, body)
                if not 200 <= status < 300:
                    break
            elif "name" in attrs:
                fields[attrs["name"].lower()] = bytes(body[:MAX_VALUE_LENGTH]).decode(
                    "utf-8", "replace").rstrip("\r\n-")
        if not status:
            status, message = 400, "no files to process"
        line = f"{status} {_reason(status)}"
        redirect = fields.get("redirect")
        if not redirect:
            text = line + (f"\r\nFormPost: {message.title()}" if message else "")
            out = text.encode() if 200 <= status < 300 or not resp_body else resp_body
            return Response(status, out, content_type="text/plain")
        redirect += "&" if "?" in redirect else "?"
        redirect += f"status={quote(str(status))}&message={quote(message)}"
        page = f'<html><body><p><a href="{redirect}">Click to continue...</a></p></body></html>'
        return Response(303, page.encode(), {"Location": redirect},
                        content_type="text/html; charset=UTF-8")

    async def upload(self, req: Request, account: str, container: str, fields: dict[str, str],
                     attrs: dict[str, str], headers: dict[str, str],
                     body: memoryview) -> tuple[int, bytes]:
        try:
            max_size = int(fields.get("max_file_size") or 0)
        except ValueError:
            raise FormError(400, "max_file_size not an integer") from None
        try:
            if int(fields.get("expires") or 0) < time.time():
                raise FormError(401, "form expired")
        except ValueError:
            raise FormError(400, "expired not an integer") from None
        await self._check_signature(req, account, container, fields)
        if len(body) > max_size:
            raise FormError(400, "max_file_size exceeded")
        path = req.path if req.path.endswith("/") or req.path.count("/") >= 4 else req.path + "/"
        sub_headers = Headers({"Content-Length": str(len(body))})
        ctype = fields.get("content-type") or headers.get("content-type")
        if ctype:
            sub_headers["Content-Type"] = ctype
        for key, header in (("x_delete_at", "X-Delete-At"), ("x_delete_after", "X-Delete-After")):
            if key in fields:
                sub_headers[header] = fields[key]
        sub = req.sub("PUT", path + (attrs.get("filename") or "filename"), headers=sub_headers,
                      body=bytes(body), source="FP")
        resp = await self.app(sub)
        data = await resp.read()
        return resp.status, data

    async def _check_signature(self, req: Request, account: str, container: str,
                               fields: dict[str, str]) -> None:
        split = split_signature(fields.get("signature", ""))
        if split is None or split[0] not in self.digests:
            raise FormError(401, "invalid signature")
        digest, sig = split
        keys = []
        ainfo = await self.proxy.account_info(req, account)
        cinfo = await self.proxy.container_info(req, account, container)
        for info, prefix in ((ainfo, "x-account-meta-temp-url-key"),
                             (cinfo, "x-container-meta-temp-url-key")):
            for name in (prefix, prefix + "-2"):
                value = info.get(name)
                if value:
                    keys.append(value)
        tail = "\n".join([fields.get("redirect") or "", fields.get("max_file_size") or "0",
                          fields.get("max_file_count") or "0", fields.get("expires") or "0"])
        paths = [req.path, req.script_name + req.path] if req.script_name else [req.path]
        for key in keys:
            for path in paths:
                mac = hmac.new(key.encode(), f"{path}\n{tail}".encode(), DIGESTS[digest])
                if hmac.compare_digest(mac.hexdigest(), sig):
                    return
        raise FormError(401, "invalid signature")


def _reason(status: int) -> str:
    from onestack.objectstore.http import REASONS

    return REASONS.get(status, ("Unknown", ""))[0]
