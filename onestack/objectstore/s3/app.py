"""The S3 listener's ASGI app: parse, authenticate, route, answer.

Every answer carries ``x-amz-request-id`` (the Swift transaction id of the
sub-requests it made, so both logs line up); every failure is S3's XML
``<Error>``, never a traceback: an unexpected exception is logged and
answered as ``InternalError``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from onestack.objectstore.http import Handler, Headers, Response
from onestack.objectstore.s3 import auth
from onestack.objectstore.s3.errors import S3Error
from onestack.objectstore.s3.request import S3Request, valid_bucket_name

log = logging.getLogger("onestack.objectstore.s3")

# sub-resources S3 has and this store does not serve
UNSUPPORTED = frozenset({
    "accelerate", "analytics", "cors", "encryption", "intelligent-tiering", "inventory",
    "lifecycle", "logging", "metrics", "notification", "object-lock", "ownershipControls",
    "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
    "retention", "legal-hold", "select", "tagging", "torrent", "website", "attributes"})


class ClientDisconnect(Exception):
    pass


def new_request_id() -> str:
    """A Swift-style transaction id (what the Swift sub-requests log)."""
    return f"tx{os.urandom(11).hex()[:21]}-{int(time.time()):010x}"


def _title(name: str) -> str:
    if name == "etag":
        return "ETag"
    if name.startswith("x-amz-"):
        return name
    return "-".join(p.capitalize() for p in name.split("-"))


class Credentials:
    """EC2 credentials and their users' tokens, cached per access key."""

    def __init__(self, cloud: Any, ttl: float) -> None:
        self.cloud = cloud
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Any, Any]] = {}

    async def find(self, access: str) -> Any:
        """The credential of this access key, or None."""
        hit = self._cache.get(access)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        from onestack.common.web import run
        from onestack.identity import interface

        return await run(interface.find_ec2_credential, self.cloud, access)

    async def context(self, cred: Any) -> Any:
        """The credential's user's token context; AccessDenied if it no longer holds."""
        from onestack.common.errors import ApiError
        from onestack.common.web import run
        from onestack.identity import interface

        hit = self._cache.get(cred.access)
        if hit is not None and hit[0] > time.monotonic() and hit[1] == cred:
            return hit[2]
        try:
            ctx = await run(interface.ec2_token, self.cloud, cred)
        except ApiError:
            raise S3Error("AccessDenied") from None
        if self.ttl > 0:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[cred.access] = (time.monotonic() + self.ttl, cred, ctx)
        return ctx


class S3App:
    def __init__(self, pipeline: Handler, capabilities: dict[str, Any], cloud: Any,
                 settings: Any) -> None:
        self.pipeline = pipeline  # the Swift pipeline from keystoneauth down
        self.capabilities = capabilities
        self.cloud = cloud
        self.settings = settings
        self.credentials = Credentials(cloud, cloud.settings.identity.token_cache_seconds)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # the main listener runs the services' lifespan
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request_id = new_request_id()
        method = scope["method"]
        resp = await self.respond(scope, receive, request_id)
        headers = [(_title(k).encode("latin-1"), str(v).encode("latin-1", "replace"))
                   for k, v in resp.headers.items() if not k.startswith("x-backend-")
                   and k not in ("x-trans-id", "x-openstack-request-id")]
        headers += [(b"x-amz-request-id", request_id.encode()),
                    (b"x-amz-id-2", request_id.encode()), (b"X-Trans-Id", request_id.encode())]
        try:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": headers})
            body = resp.body
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
            elif isinstance(body, bytes):
                await send({"type": "http.response.body", "body": body})
            else:
                async for chunk in body:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        finally:
            resp.close()

    async def respond(self, scope: dict[str, Any], receive: Any, request_id: str) -> Response:
        try:
            req = self.request(scope, receive, request_id)
            return await self.handle(req)
        except S3Error as exc:
            return error_response(exc, request_id)
        except ClientDisconnect:
            return Response(499, b"")
        except Exception:
            log.exception("%s %s: unexpected error (%s)", scope.get("method"), scope.get("path"),
                          request_id)
            return error_response(S3Error("InternalError"), request_id)

    def request(self, scope: dict[str, Any], receive: Any, request_id: str) -> S3Request:
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        raw = raw.split(b"?", 1)[0]
        try:
            path = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise S3Error("InvalidURI", URI=raw.decode("latin-1")) from None
        if "\x00" in path:
            raise S3Error("InvalidURI", URI=raw.decode("latin-1"))
        query = scope.get("query_string", b"").decode("latin-1")
        params = parse_qsl(query, keep_blank_values=True)
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = Headers()
        for k, v in raw_headers:
            key = k.lower()
            headers[key] = f"{headers[key]},{v}" if key in headers else v
        client = scope.get("client") or ("", 0)
        req = S3Request(self.pipeline, scope["method"], path or "/", query, params, headers,
                        raw_headers, _body(receive), request_id, host=headers.get("host", ""),
                        remote_addr=client[0])
        req.capabilities = self.capabilities
        req.raw_path = raw.decode("latin-1") or "/"
        return req

    async def authenticate(self, req: S3Request) -> None:
        s = self.settings
        signed = auth.parse(req, s.s3_location, s.s3_allowable_clock_skew)
        cred = await self.credentials.find(signed.credential.access)
        if cred is None:
            raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=signed.credential.access)
        key = auth.check_signature(req, signed, cred.secret)
        ctx = await self.credentials.context(cred)
        req.account = f"AUTH_{ctx.project_id}"
        req.token = ctx.token
        req.user_id = f"{ctx.project_name}:{ctx.user_name}"
        auth.wrap_body(req, signed, key)

    async def handle(self, req: S3Request) -> Response:
        await self.authenticate(req)
        if req.bucket is not None and not valid_bucket_name(req.bucket):
            raise S3Error("InvalidBucketName", BucketName=req.bucket)
        params = req.params
        unsupported = UNSUPPORTED.intersection(params)
        if unsupported:
            raise S3Error("NotImplemented", "The requested resource is not implemented")
        from onestack.objectstore.s3 import buckets, multidelete, multipart, objects

        s = self.settings
        method = req.method
        if req.bucket is None:
            if method == "GET":
                return await buckets.list_buckets(req)
            raise S3Error("MethodNotAllowed", Method=method, ResourceType="SERVICE")
        if "delete" in params and method == "POST":
            return await multidelete.delete_objects(req, s)
        if "location" in params and method == "GET":
            return await buckets.location(req, s)
        if "versioning" in params:
            return await buckets.versioning(req)
        if "acl" in params:
            return await buckets.acl(req)
        if "versions" in params and method == "GET" and req.key is None:
            return await buckets.list_objects(req, s, versions=True)
        if "partNumber" in params and method == "PUT":
            return await multipart.upload_part(req, s)
        if "uploadId" in params:
            return await multipart.upload(req, s)
        if "uploads" in params:
            return await multipart.uploads(req, s)
        if req.key is not None:
            return await objects.handle(req, s)
        return await buckets.handle(req, s)


def error_response(exc: S3Error, request_id: str) -> Response:
    headers = dict(exc.headers)
    return Response(exc.status, exc.body(request_id), headers, content_type="application/xml")


async def _body(receive: Any) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return
