"""Objects: Get/Head/Put/DeleteObject and CopyObject.

Swift does the work: ranges, streaming, MD5 checks (``Content-MD5`` becomes
the ``ETag`` Swift checks), copies (``X-Copy-From``), large-object reads and
deletes (a completed multipart upload is an SLO). S3 conditions on ETags are
evaluated here, against the S3 ETag (a multipart upload's is
``md5-of-part-md5s-N``, which Swift does not know).
"""

from __future__ import annotations

import binascii
import re
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import orjson

from onestack.objectstore.http import Headers, Response
from onestack.objectstore.s3 import wire
from onestack.objectstore.s3.errors import S3Error, invalid_argument
from onestack.objectstore.s3.request import S3Request
from onestack.objectstore.s3.xml import Element, render

# request headers an object PUT hands to Swift (besides x-amz-meta-*)
PASSED = ("content-type", "content-encoding", "content-disposition", "content-language",
          "cache-control", "expires", "x-delete-at", "x-delete-after", "transfer-encoding")
RESPONSE_OVERRIDES = ("content-type", "content-language", "expires", "cache-control",
                      "content-disposition", "content-encoding")
CONDITIONS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
# what a copy must not take over from a multipart source
COPY_CLEARED = {"X-Object-Sysmeta-S3api-Etag": "", "X-Object-Sysmeta-S3api-Upload-Id": "",
                "X-Object-Sysmeta-Slo-Etag": "", "X-Object-Sysmeta-Slo-Size": ""}
_B64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


async def handle(req: S3Request, settings: Any) -> Response:
    method = req.method
    if method in ("GET", "HEAD"):
        return await get(req)
    if method == "PUT":
        return await put(req, settings)
    if method == "DELETE":
        return await delete(req)
    if method == "POST":
        raise S3Error("NotImplemented", "Not implemented.")
    raise S3Error("MethodNotAllowed", Method=method, ResourceType="OBJECT")


# ---------------------------------------------------------------- conditions


def _etags(value: str) -> list[str]:
    return [v.strip().strip('"') for v in value.split(",") if v.strip()]


def condition_status(headers: Headers, conditions: dict[str, str], copy: bool) -> int | None:
    """304/412 if the conditions (RFC 7232 order) fail on the object with these S3
    headers, else None. A copy's failures are all 412."""
    from onestack.objectstore.timestamp import parse_http_date

    etag = headers.get("etag", "").strip('"')
    modified = parse_http_date(headers.get("last-modified", "")) or 0.0
    if_match = conditions.get("if-match")
    if if_match is not None:
        if "*" not in _etags(if_match) and etag not in _etags(if_match):
            return 412
    elif "if-unmodified-since" in conditions:
        since = parse_http_date(conditions["if-unmodified-since"])
        if since is not None and modified > since:
            return 412
    if_none = conditions.get("if-none-match")
    if if_none is not None:
        if "*" in _etags(if_none) or etag in _etags(if_none):
            return 412 if copy else 304
    elif "if-modified-since" in conditions:
        since = parse_http_date(conditions["if-modified-since"])
        if since is not None and modified <= since:
            return 412 if copy else 304
    return None


# ---------------------------------------------------------------- GET / HEAD


def _check_version(req: S3Request) -> None:
    version = req.params.get("versionId")
    if version not in (None, "null"):
        raise S3Error("NotImplemented", "Not implemented.")


async def get(req: S3Request) -> Response:
    _check_version(req)
    if "partNumber" in req.params:
        raise S3Error("NotImplemented", "Not implemented.")
    bucket, key = req.bucket or "", req.key or ""
    conditions = {k: req.headers[k] for k in CONDITIONS if k in req.headers}
    if conditions:
        head = await req.call("HEAD", bucket, key)
        head.close()
        status = condition_status(wire.object_headers(head.headers), conditions, copy=False)
        if status == 412:
            raise S3Error("PreconditionFailed", Condition=_condition_name(conditions))
        if status == 304:
            headers = wire.object_headers(head.headers)
            for drop in ("content-length", "content-type", "accept-ranges"):
                del headers[drop]
            return Response(304, b"", headers)
    swift_headers = {}
    if "range" in req.headers:
        swift_headers["Range"] = req.headers["range"]
    resp = await req.call(req.method, bucket, key, headers=swift_headers)
    headers = wire.object_headers(resp.headers)
    for name in RESPONSE_OVERRIDES:
        value = req.params.get("response-" + name)
        if value is not None:
            headers[name] = value
    out = Response(resp.status, resp.body, headers)
    out.on_close = resp.on_close
    resp.on_close = []
    return out


def _condition_name(conditions: dict[str, str]) -> str:
    for name in ("if-match", "if-unmodified-since", "if-none-match", "if-modified-since"):
        if name in conditions:
            return "-".join(p.capitalize() for p in name.split("-"))
    return ""


# ---------------------------------------------------------------- PUT


def check_put_headers(req: S3Request, settings: Any) -> None:
    """What S3 refuses on a PUT before anything is stored."""
    h = req.headers
    key = req.key or ""
    if len(key.encode("utf-8")) > settings.max_object_name_length:
        raise S3Error("KeyTooLongError", Size=len(key.encode("utf-8")),
                      MaxSizeAllowed=settings.max_object_name_length)
    if any(c in h for c in ("if-match", "if-modified-since", "if-unmodified-since")) or \
            h.get("if-none-match", "*") != "*":
        raise S3Error("NotImplemented", "Conditional object PUTs are not supported.")
    storage = h.get("x-amz-storage-class")
    if storage is not None and storage != "STANDARD":
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage)
    if "x-amz-mfa" in h:
        raise S3Error("NotImplemented", "MFA Delete is not supported.")
    sse = h.get("x-amz-server-side-encryption")
    if sse is not None:
        if sse not in ("aws:kms", "AES256"):
            raise invalid_argument("x-amz-server-side-encryption", sse,
                                   "The encryption method specified is not supported")
        raise S3Error("NotImplemented", "Server-side encryption is not supported.")
    if "x-amz-website-redirect-location" in h:
        raise S3Error("NotImplemented", "Website redirection is not supported.")
    if "x-amz-tagging" in h:
        raise S3Error("NotImplemented", "Object tagging is not supported.")
    directive = h.get("x-amz-metadata-directive")
    if directive is not None and directive not in ("COPY", "REPLACE"):
        raise invalid_argument("x-amz-metadata-directive", directive,
                               "Unknown metadata directive.")


def content_md5(req: S3Request) -> str | None:
    """``Content-MD5`` as the hex ETag Swift checks; InvalidDigest if malformed."""
    value = (req.headers.get("content-md5") or "").strip()
    if not value:
        return None
    if not _B64.match(value):
        raise S3Error("InvalidDigest", ContentMD5=value)
    try:
        digest = binascii.b2a_hex(binascii.a2b_base64(value)).decode()
    except binascii.Error:
        raise S3Error("InvalidDigest", ContentMD5=value) from None
    if len(digest) != 32:
        raise S3Error("InvalidDigest", ContentMD5=value)
    return digest


def swift_put_headers(req: S3Request, default_type: bool = True) -> Headers:
    out = Headers()
    for key, value in req.headers.items():
        if key.startswith("x-amz-meta-"):
            out["x-object-meta-" + key[len("x-amz-meta-"):]] = value
        elif key in PASSED:
            out[key] = value
    if default_type and not out.get("content-type"):
        out["Content-Type"] = "binary/octet-stream"
    if req.content_length is not None:
        out["Content-Length"] = str(req.content_length)
    if req.headers.get("if-none-match") == "*":
        out["If-None-Match"] = "*"
    digest = content_md5(req)
    if digest is not None:
        out["Etag"] = digest
    return out


async def put(req: S3Request, settings: Any) -> Response:
    check_put_headers(req, settings)
    if "x-amz-copy-source" in req.headers:
        if "x-amz-copy-source-range" in req.headers:
            raise invalid_argument("x-amz-copy-source-range",
                                   req.headers["x-amz-copy-source-range"],
                                   "Illegal copy header")
        if "range" in req.headers:
            raise invalid_argument("Range", req.headers["range"],
                                   "RANGE is not supported in Copy!")
        return await copy(req)
    headers = swift_put_headers(req)
    resp = await req.call("PUT", req.bucket, req.key, headers=headers, body=req.body)
    resp.close()
    return Response(200, b"", {"ETag": wire.quoted(resp.headers.get("etag", ""))})


def copy_source(req: S3Request) -> tuple[str, str]:
    """(bucket, key) of ``x-amz-copy-source``."""
    raw = req.headers["x-amz-copy-source"]
    path, _, qs = raw.partition("?")
    params = parse_qsl(qs, keep_blank_values=True)
    if params and not (len(params) == 1 and params[0][0] == "versionId"):
        raise invalid_argument("X-Amz-Copy-Source", raw, "Unsupported copy source parameter.")
    if params and params[0][1] != "null":
        raise S3Error("NotImplemented", "Not implemented.")
    path = unquote(path).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument("x-amz-copy-source", raw,
                               "Copy Source must mention the source bucket and key: "
                               "sourcebucket/sourcekey")
    return bucket, key


async def source_head(req: S3Request) -> tuple[str, str, Response]:
    """The copy source checked: it exists and its ``x-amz-copy-source-if-*`` hold."""
    bucket, key = copy_source(req)
    head = await req.call("HEAD", bucket, key)
    head.close()
    conditions = {k[len("x-amz-copy-source-"):]: v for k, v in req.headers.items()
                  if k.startswith("x-amz-copy-source-if-")}
    if conditions and condition_status(wire.object_headers(head.headers), conditions,
                                       copy=True) is not None:
        raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-" + _condition_name(
            conditions).lower())
    return bucket, key, head


async def copy(req: S3Request) -> Response:
    src_bucket, src_key, _head = await source_head(req)
    directive = req.headers.get("x-amz-metadata-directive", "COPY")
    if src_bucket == req.bucket and src_key == req.key and directive == "COPY":
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to "
                                        "copy an object to itself without changing the "
                                        "object's metadata, storage class, website redirect "
                                        "location or encryption attributes.")
    headers = Headers(COPY_CLEARED)
    if directive == "REPLACE":
        headers.update(swift_put_headers(req))
        headers["X-Fresh-Metadata"] = "True"
    headers["X-Copy-From"] = quote(f"/{src_bucket}/{src_key}")
    headers["Content-Length"] = "0"
    for key in ("x-delete-at", "x-delete-after"):
        if key in req.headers:
            headers[key] = req.headers[key]
    resp = await req.call("PUT", req.bucket, req.key, headers=headers)
    resp.close()
    root = Element("CopyObjectResult")
    root.add("LastModified", wire.http_to_s3_time(resp.headers.get("last-modified", "")))
    root.add("ETag", wire.quoted(resp.headers.get("etag", "")))
    return Response(200, render(root), content_type="application/xml")


# ---------------------------------------------------------------- DELETE


async def delete(req: S3Request) -> Response:
    _check_version(req)
    await delete_key(req, req.bucket or "", req.key or "")
    return Response(204, b"")


async def delete_key(req: S3Request, bucket: str, key: str) -> None:
    """Delete one key (a completed multipart upload with its parts); a key that is
    not there is deleted already, a bucket that is not there is NoSuchBucket."""
    head = await req.swift("HEAD", bucket, key, query={"multipart-manifest": "get"})
    head.close()
    query: dict[str, str | None] = {}
    if head.headers.get("x-static-large-object", "").lower() == "true":
        query["multipart-manifest"] = "delete"
    resp = await req.swift("DELETE", bucket, key, query=query,
                           headers={"Accept": "application/json"})
    body = await resp.read()
    if resp.status == 404:
        await req.require_bucket(bucket)
        return
    if not resp.is_success:
        await req.raise_for(resp.status, body, "DELETE", bucket, key)
    if query and body:
        result = orjson.loads(body)
        if result.get("Errors"):
            raise S3Error("InternalError", "\n".join(
                [result.get("Response Status", "")] + [": ".join(e) for e in result["Errors"]]))
