"""Bulk requests: many deletes in one request, and archive extraction.

* ``DELETE`` or ``POST ?bulk-delete`` with a body of URL-encoded paths
  (``/container/object`` or ``/container``), one per line; each is deleted as
  the caller; the answer counts what was deleted and not found, and lists the
  errors (text, JSON or XML after ``Accept``).
* ``PUT ?extract-archive=tar|tar.gz|tar.bz2`` on an account, container or
  container/prefix: every file of the archive becomes an object (at account
  level its first path component names the container, created if needed).
  The archive is spooled to a temporary file, never held in memory.
"""

from __future__ import annotations

import tarfile
import tempfile
from typing import Any
from urllib.parse import quote, unquote

from onestack.common.web import run
from onestack.objectstore.http import REASONS, Handler, Headers, Request, Response, error
from onestack.objectstore.middleware import segments as segs

MAX_PATH_LENGTH = 1024 + 256 + 2
MAX_FAILED = 1000
FORMATS = {"tar": "r|", "tar.gz": "r|gz", "tar.bz2": "r|bz2"}


def _status(status: int) -> str:
    return f"{status} {REASONS.get(status, ('Unknown', ''))[0]}"


class Bulk:
    def __init__(self, app: Handler, max_deletes: int, max_containers: int) -> None:
        self.app = app
        self.max_deletes = max_deletes
        self.max_containers = max_containers

    def info(self) -> dict[str, dict[str, Any]]:
        return {"bulk_delete": {"max_deletes_per_request": self.max_deletes,
                                "max_failed_deletes": MAX_FAILED},
                "bulk_upload": {"max_containers_per_extraction": self.max_containers,
                                "max_failed_extractions": MAX_FAILED}}

    async def __call__(self, req: Request) -> Response:
        if "bulk-delete" in req.params and req.method in ("POST", "DELETE"):
            return await self.delete(req)
        fmt = req.params.get("extract-archive")
        if fmt is not None and req.method == "PUT":
            return await self.extract(req, fmt)
        return await self.app(req)

    async def delete(self, req: Request) -> Response:
        ctype = segs.accept_format(req)
        _v, account, _c, _o = req.split_path()
        if account is None:
            return error(400, "Invalid path")
        body = await req.read_body(limit=self.max_deletes * MAX_PATH_LENGTH)
        paths = [unquote(line.strip()) for line in body.decode("utf-8", "replace").splitlines()
                 if line.strip()]
        deleted = missing = 0
        errors: list[list[str]] = []

        def result(status: str, message: str = "") -> Response:
            data = {"Number Deleted": deleted, "Number Not Found": missing,
                    "Response Body": message, "Response Status": status}
            return Response(200, segs.result_body(ctype, data, errors, "delete"),
                            content_type=ctype)

        incoming = req.headers.get("content-type")
        if incoming and not incoming.startswith("text/plain"):
            return result(_status(406))  # only names, one a line
        if len(paths) > self.max_deletes:
            return result(_status(413), f"Maximum Bulk Deletes: {self.max_deletes} per request")
        # objects first, then the containers they were in
        paths = [p for p in paths if "/" in p.strip("/")] + \
            [p for p in paths if "/" not in p.strip("/")]
        for path in paths:
            path = "/" + path.lstrip("/")
            if path.count("/") < 1 or path == "/":
                errors.append([quote(path), "400 Bad Request"])
                continue
            sub = req.sub("DELETE", f"/v1/{account}{path}", source="BD", authorized=False,
                          headers=Headers())
            resp = await self.app(sub)
            resp.close()
            if resp.status // 100 == 2:
                deleted += 1
            elif resp.status == 404:
                missing += 1
            else:
                errors.append([quote(path), _status(resp.status)])
        if errors:
            return result(_status(400))
        if not (deleted or missing):
            return result(_status(400), "Invalid bulk delete.")
        return result(_status(200))

    async def extract(self, req: Request, fmt: str) -> Response:
        ctype = segs.accept_format(req)
        mode = FORMATS.get(fmt.lower().strip("."))
        if mode is None:
            return error(400, "Unsupported archive format",
                         content_type="text/html; charset=UTF-8")
        _v, account, container, prefix = req.split_path()
        if account is None:
            return error(400, "Invalid path")
        spool = tempfile.TemporaryFile()
        try:
            async for chunk in req.body:
                await run(spool.write, chunk)
            await run(spool.seek, 0)
            return await self._extract(req, ctype, mode, spool, account, container, prefix)
        finally:
            spool.close()

    async def _extract(self, req: Request, ctype: str, mode: str, spool: Any, account: str,
                       container: str | None, prefix: str | None) -> Response:
        created = 0
        errors: list[list[str]] = []
        made: set[str] = set()
        try:
            tar = await run(tarfile.open, None, mode, spool)
        except (tarfile.TarError, OSError, EOFError):
            return self._result(ctype, 0, [], 400, "Invalid Tar File: invalid header")
        while True:
            try:
                member = await run(tar.next)
            except (tarfile.TarError, OSError, EOFError):
                return self._result(ctype, created, errors, 400, "Invalid Tar File")
            if member is None:
                break
            if not member.isfile():
                continue
            name = member.name.lstrip("./").lstrip("/")
            if container is None:
                cont, _, obj = name.partition("/")
            else:
                cont, obj = container, "/".join(p for p in (prefix, name) if p)
            if not cont or not obj:
                continue
            if cont not in made and container is None:
                if len(made) >= self.max_containers:
                    return self._result(ctype, created, errors, 400,
                                        f"More than {self.max_containers} containers to "
                                        "create from tar.")
                head = await self.app(req.sub("HEAD", f"/v1/{account}/{cont}", source="EA",
                                              authorized=False, headers=Headers()))
                head.close()
                if head.status == 404:
                    put = await self.app(req.sub("PUT", f"/v1/{account}/{cont}", source="EA",
                                                 authorized=False, headers=Headers()))
                    put.close()
                    if not put.is_success:
                        errors.append([quote(f"/{cont}"), _status(put.status)])
                        continue
                made.add(cont)
            fileobj = tar.extractfile(member)
            assert fileobj is not None
            data = await run(fileobj.read)
            put = await self.app(req.sub(
                "PUT", f"/v1/{account}/{cont}/{obj}", body=data, source="EA", authorized=False,
                headers=Headers({"Content-Length": str(len(data))})))
            put.close()
            if put.is_success:
                created += 1
            else:
                errors.append([quote(f"/{cont}/{obj}"), _status(put.status)])
        status = 400 if errors else 201
        return self._result(ctype, created, errors, status, "")

    def _result(self, ctype: str, created: int, errors: list[list[str]], status: int,
                body: str) -> Response:
        data = {"Number Files Created": created, "Response Body": body,
                "Response Status": _status(status)}
        # the outcome is in the body (Swift may have answered 200 before it knew)
        return Response(200, segs.result_body(ctype, data, errors, "extract"),
                        content_type=ctype)
