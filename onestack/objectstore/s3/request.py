"""One S3 request: its parts, who made it, and its Swift sub-requests.

``S3Request.swift(...)`` sends a request down the Swift pipeline as the
caller (the token of the EC2 credential's user), on the caller's account;
``call(...)`` does the same and turns Swift's failures into S3's errors the
way Swift's s3api does (a 404 on an object is ``NoSuchKey`` when the bucket
exists and ``NoSuchBucket`` when not, a 409 on a bucket DELETE is
``BucketNotEmpty``, a 422 is ``BadDigest`` ...).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

from onestack.objectstore.http import Handler, Headers, HTTPError, Request, Response
from onestack.objectstore.s3.errors import S3Error, invalid_argument

MULTIUPLOAD_SUFFIX = "+segments"
SCRIPT_NAME = "/object-store"
_IP = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$")


def valid_bucket_name(name: str) -> bool:
    """S3's DNS-compliant bucket names (3-63 of a-z 0-9 . -, no IP address)."""
    if not 3 <= len(name) <= 63 or not name[0].isalnum() or not name[-1].isalnum():
        return False
    if ".." in name or ".-" in name or "-." in name or _IP.match(name):
        return False
    return all(c in "abcdefghijklmnopqrstuvwxyz0123456789.-" for c in name)


class S3Request:
    """What the app parsed from the client's request, and, once authenticated,
    whose account it acts on."""

    def __init__(self, pipeline: Handler, method: str, path: str, query_string: str,
                 params: list[tuple[str, str]], headers: Headers,
                 raw_headers: list[tuple[str, str]], body: AsyncIterator[bytes],
                 request_id: str, host: str = "", remote_addr: str = "") -> None:
        self.pipeline = pipeline
        self.method = method
        self.path = path
        self.raw_path = path  # as the client sent it (Signature Version 2 signs it)
        self.query_string = query_string
        self.param_list = params
        self.params: dict[str, str] = {}
        for key, value in params:
            self.params.setdefault(key, value)
        self.headers = headers
        self.raw_headers = raw_headers
        self.body = body
        self.content_length: int | None = None
        self.request_id = request_id
        self.host = host
        self.remote_addr = remote_addr
        bucket, _, key = path[1:].partition("/")
        self.bucket: str | None = bucket or None
        self.key: str | None = key or None
        # set by authentication
        self.account = ""
        self.token = ""
        self.user_id = ""
        self.info_cache: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}  # what the store serves (its /info)

    # ---------------------------------------------------------------- Swift

    def swift_path(self, container: str | None = None, obj: str | None = None) -> str:
        path = f"/v1/{self.account}"
        if container:
            path += f"/{container}"
            if obj:
                path += f"/{obj}"
        return path

    async def swift(self, method: str, container: str | None = None, obj: str | None = None,
                    *, query: Mapping[str, str | None] | None = None,
                    headers: Mapping[str, str] | Headers | None = None,
                    body: AsyncIterator[bytes] | bytes | None = None) -> Response:
        """One Swift request down the pipeline as the caller; Swift's own answer."""
        hdrs = headers.copy() if isinstance(headers, Headers) else Headers(headers)
        hdrs["X-Auth-Token"] = self.token
        qs = "&".join(k if v is None else f"{quote(k, safe='')}={quote(v, safe='')}"
                      for k, v in (query or {}).items())
        if body is None and method in ("PUT", "POST") and "content-length" not in hdrs:
            hdrs["Content-Length"] = "0"
        environ = {"swift.trans_id": self.request_id, "swift.info_cache": self.info_cache,
                   "swift.source": "S3"}
        req = Request(method, self.swift_path(container, obj), query_string=qs, headers=hdrs,
                      body=body, environ=environ, script_name=SCRIPT_NAME,
                      remote_addr=self.remote_addr, host=self.host)
        try:
            return await self.pipeline(req)
        except HTTPError as exc:
            return exc.response

    async def call(self, method: str, container: str | None = None, obj: str | None = None,
                   **kw: Any) -> Response:
        """``swift(...)``, with a failure raised as S3's error for it."""
        resp = await self.swift(method, container, obj, **kw)
        if resp.is_success or (obj and resp.status == 304):
            return resp
        body = await resp.read()
        await self.raise_for(resp.status, body, method, container, obj)
        raise AssertionError("unreachable")  # pragma: no cover

    async def bucket_exists(self, container: str) -> bool:
        resp = await self.swift("HEAD", container)
        resp.close()
        if resp.is_success:
            return True
        if resp.status == 404:
            return False
        await self.raise_for(resp.status, b"", "HEAD", container, None)
        return False  # pragma: no cover

    async def require_bucket(self, container: str | None = None) -> None:
        name = container or self.bucket or ""
        if not await self.bucket_exists(name):
            raise S3Error("NoSuchBucket", BucketName=name)

    async def raise_for(self, status: int, body: bytes, method: str, container: str | None,
                        obj: str | None) -> None:
        text = body.decode("utf-8", "replace")
        if status == 404:
            if obj is None:
                raise S3Error("NoSuchBucket", BucketName=container)
            if method == "PUT":
                raise S3Error("NoSuchBucket", BucketName=container)
            if container and (container.endswith(MULTIUPLOAD_SUFFIX)
                              or await self.bucket_exists(container)):
                raise S3Error("NoSuchKey", Key=obj)
            raise S3Error("NoSuchBucket", BucketName=container)
        if status == 409 and obj is None and method == "DELETE":
            raise S3Error("BucketNotEmpty", BucketName=container)
        if status == 412:
            raise S3Error("PreconditionFailed", Condition=None)
        if status == 413:
            raise S3Error("EntityTooLarge", text if "quota" in text.lower() else None)
        if status == 411:
            raise S3Error("MissingContentLength")
        if status == 422:
            raise S3Error("BadDigest", ExpectedDigest=self.headers.get("content-md5"))
        if status in (408, 499):
            raise S3Error("RequestTimeout")
        if status == 416:
            raise S3Error("InvalidRange")
        if status == 400:
            if "metadata" in text.lower():
                raise S3Error("MetadataTooLarge", text.strip() or None)
            for name in ("X-Delete-At", "X-Delete-After"):
                if name in text:
                    raise invalid_argument(name, self.headers.get(name), text.strip())
            raise S3Error("InvalidRequest", text.strip() or None)
        if status == 401:
            raise S3Error("AccessDenied")
        if status == 403:
            raise S3Error("AccessDenied")
        if status in (429, 498):
            raise S3Error("SlowDown", "Please reduce your request rate.", status=503)
        if status == 503:
            raise S3Error("ServiceUnavailable")
        if status == 409:
            raise S3Error("ServiceUnavailable")
        raise S3Error("InternalError", f"unexpected status code {status}")
