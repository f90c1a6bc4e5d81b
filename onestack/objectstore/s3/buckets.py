"""Buckets: ListBuckets, Create/Head/DeleteBucket, ListObjects (v1, v2, versions),
GetBucketLocation, Get/PutBucketVersioning and the ACL views.

A bucket is a container of the caller's account; its multipart uploads live
in ``<bucket>+segments`` (a name S3 cannot address, left out of ListBuckets),
which DeleteBucket removes with the bucket once the bucket is empty.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote

import orjson

from onestack.objectstore.http import Response
from onestack.objectstore.s3 import wire
from onestack.objectstore.s3.errors import S3Error, invalid_argument
from onestack.objectstore.s3.request import MULTIUPLOAD_SUFFIX, S3Request, valid_bucket_name
from onestack.objectstore.s3.xml import Element, XMLError, parse, render

MAX_32BIT_INT = 2147483647
MAX_PUT_BUCKET_BODY = 10240
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CANONICAL_USER = {"xmlns:xsi": XSI, "xsi:type": "CanonicalUser"}
GROUP = {"xmlns:xsi": XSI, "xsi:type": "Group"}
CANNED_BUCKET_ACLS = {"private": "", "public-read": ".r:*,.rlistings"}


def xml_response(root: Element, status: int = 200) -> Response:
    return Response(status, render(root), content_type="application/xml")


def int_param(req: S3Request, name: str, default: int, limit: int = MAX_32BIT_INT) -> int:
    text = req.params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid_argument(name, text, f"Provided {name} not an integer or within integer "
                                           "range") from None
    if value < 0:
        raise invalid_argument(name, text, f"Argument {name} must be an integer between 0 and "
                                           f"{MAX_32BIT_INT}")
    if value > MAX_32BIT_INT:
        raise invalid_argument(name, text, f"Provided {name} not an integer or within integer "
                                           "range")
    return min(value, limit)


def encoding_type(req: S3Request) -> str | None:
    value = req.params.get("encoding-type")
    if value is not None and value != "url":
        raise invalid_argument("encoding-type", value,
                               "Invalid Encoding Method specified in Request")
    return value


async def read_xml(req: S3Request, limit: int) -> bytes | None:
    """A small XML request body (MalformedXML past ``limit``), None if there is none."""
    te = req.headers.get("transfer-encoding")
    if not req.content_length and not te:
        async for _ in req.body:
            pass
        return None
    data = bytearray()
    async for chunk in req.body:
        data += chunk
        if len(data) > limit:
            raise S3Error("MalformedXML")
    return bytes(data) or None


async def listing(req: S3Request, container: str, query: dict[str, str | None]) -> list[Any]:
    resp = await req.call("GET", container, query={"format": "json", **query})
    data = await resp.read()
    result: list[Any] = orjson.loads(data) if data else []
    return result


# ---------------------------------------------------------------- service


async def list_buckets(req: S3Request) -> Response:
    root = Element("ListAllMyBucketsResult")
    wire.owner(root, "Owner", req.user_id)
    buckets = root.add("Buckets")
    marker = ""
    while True:
        resp = await req.call("GET", query={"format": "json", "marker": marker})
        data = await resp.read()
        entries = orjson.loads(data) if data else []
        if not entries:
            break
        for entry in entries:
            if valid_bucket_name(entry["name"]):
                bucket = buckets.add("Bucket")
                bucket.add("Name", entry["name"])
                bucket.add("CreationDate", wire.s3_time(entry["last_modified"]))
        marker = entries[-1]["name"]
    return xml_response(root)


# ---------------------------------------------------------------- bucket


async def handle(req: S3Request, settings: Any) -> Response:
    method = req.method
    if method == "HEAD":
        await req.call("HEAD", req.bucket)
        return Response(200, b"", {"x-amz-bucket-region": settings.s3_location})
    if method == "GET":
        return await list_objects(req, settings)
    if method == "PUT":
        return await create(req, settings)
    if method == "DELETE":
        return await delete(req)
    if method == "POST":
        raise S3Error("NotImplemented", "Not implemented.")
    raise S3Error("MethodNotAllowed", Method=method, ResourceType="BUCKET")


async def create(req: S3Request, settings: Any) -> Response:
    body = await read_xml(req, MAX_PUT_BUCKET_BODY)
    if body:
        try:
            root = parse(body)
        except XMLError:
            raise S3Error("MalformedXML") from None
        if root.tag != "CreateBucketConfiguration":
            raise S3Error("MalformedXML")
        location = root.findtext("LocationConstraint")
        if location not in (settings.s3_location, settings.s3_location.lower()):
            raise S3Error("InvalidLocationConstraint", LocationConstraint=location)
    headers = {}
    acl = req.headers.get("x-amz-acl")
    if acl is not None:
        if acl not in CANNED_BUCKET_ACLS:
            raise S3Error("NotImplemented", f"The canned ACL {acl} is not supported.")
        if CANNED_BUCKET_ACLS[acl]:
            headers["X-Container-Read"] = CANNED_BUCKET_ACLS[acl]
    resp = await req.call("PUT", req.bucket, headers=headers)
    resp.close()
    if resp.status == 202:
        raise S3Error("BucketAlreadyOwnedByYou", BucketName=req.bucket)
    return Response(200, b"", {"Location": f"/{req.bucket}"})


async def delete(req: S3Request) -> Response:
    bucket = req.bucket or ""
    head = await req.call("HEAD", bucket)
    head.close()
    if int(head.headers.get("x-container-object-count", "0")) > 0:
        raise S3Error("BucketNotEmpty", BucketName=bucket)
    segments = bucket + MULTIUPLOAD_SUFFIX
    if await req.bucket_exists(segments):
        while True:
            entries = await listing(req, segments, {})
            if not entries:
                break
            for entry in entries:
                resp = await req.swift("DELETE", segments, entry["name"])
                resp.close()
                if not resp.is_success and resp.status != 404:
                    raise S3Error("ServiceUnavailable")
        resp = await req.swift("DELETE", segments)
        resp.close()
        if not resp.is_success and resp.status != 404:
            raise S3Error("ServiceUnavailable")
    resp = await req.call("DELETE", bucket)
    resp.close()
    return Response(204, b"")


# ---------------------------------------------------------------- ListObjects


def _name(value: str, encoding: str | None) -> str:
    return quote(value.encode("utf-8")) if encoding == "url" else value


async def list_objects(req: S3Request, settings: Any, versions: bool = False) -> Response:
    params = req.params
    tag_max_keys = int_param(req, "max-keys", settings.s3_max_bucket_listing)
    max_keys = min(tag_max_keys, settings.s3_max_bucket_listing)
    encoding = encoding_type(req)
    query: dict[str, str | None] = {"limit": str(max_keys + 1)}
    for key in ("prefix", "delimiter"):
        if key in params:
            query[key] = params[key]
    fetch_owner = True
    try:
        list_type = int(params.get("list-type", "1"))
    except ValueError:
        raise invalid_argument("list-type", params.get("list-type"),
                               "Argument list-type must be an integer") from None
    if versions:
        kind = "versions"
        if "key-marker" in params:
            query["marker"] = params["key-marker"]
        elif "version-id-marker" in params:
            raise invalid_argument("version-id-marker", params["version-id-marker"],
                                   "A version-id marker cannot be specified without a key "
                                   "marker.")
    elif list_type == 2:
        kind = "v2"
        if "start-after" in params:
            query["marker"] = params["start-after"]
        if "continuation-token" in params:
            token = params["continuation-token"]
            try:
                query["marker"] = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise invalid_argument("continuation-token", quote(token),
                                       "The continuation token provided is incorrect") from None
        fetch_owner = params.get("fetch-owner", "").lower() in ("true", "1", "yes", "on")
    else:
        kind = "v1"
        if "marker" in params:
            query["marker"] = params["marker"]
    entries = await listing(req, req.bucket or "", query)
    truncated = max_keys > 0 and len(entries) > max_keys
    entries = entries[:max_keys]
    root = _listing_root(req, kind, entries, encoding, tag_max_keys, truncated)
    for entry in entries:
        if "subdir" in entry:
            common = root.add("CommonPrefixes")
            common.add("Prefix", _name(entry["subdir"], encoding))
            continue
        contents = root.add("Version" if versions else "Contents")
        contents.add("Key", _name(entry["name"], encoding))
        if versions:
            contents.add("VersionId", "null")
            contents.add("IsLatest", "true")
        contents.add("LastModified", wire.s3_time(entry["last_modified"]))
        contents.add("ETag", wire.listing_etag(entry))
        contents.add("Size", str(entry["bytes"]))
        if fetch_owner:
            wire.owner(contents, "Owner", req.user_id)
        contents.add("StorageClass", "STANDARD")
    return xml_response(root)


def _listing_root(req: S3Request, kind: str, entries: list[Any], encoding: str | None,
                  tag_max_keys: int, truncated: bool) -> Element:
    params = req.params
    last = entries[-1] if entries else {}
    last_name = last.get("name", last.get("subdir", ""))
    root = Element("ListVersionsResult" if kind == "versions" else "ListBucketResult")
    root.add("Name", req.bucket)
    prefix = params.get("prefix")
    root.add("Prefix", _name(prefix, encoding) if prefix else prefix)
    if kind == "versions":
        root.add("KeyMarker", _name(params.get("key-marker", ""), encoding))
        root.add("VersionIdMarker", params.get("version-id-marker", ""))
        if truncated:
            root.add("NextKeyMarker", _name(last_name, encoding))
            root.add("NextVersionIdMarker", "null")
    elif kind == "v1":
        marker = params.get("marker", "")
        root.add("Marker", _name(marker, encoding) if marker else marker)
        if truncated and "delimiter" in params:
            root.add("NextMarker", _name(last_name, encoding))
    else:
        if truncated:
            root.add("NextContinuationToken",
                     base64.b64encode(last_name.encode("utf-8")).decode("ascii"))
        if "continuation-token" in params:
            root.add("ContinuationToken", params["continuation-token"])
        if "start-after" in params:
            root.add("StartAfter", _name(params["start-after"], encoding))
        root.add("KeyCount", str(len(entries)))
    root.add("MaxKeys", str(tag_max_keys))
    delimiter = params.get("delimiter")
    if delimiter:
        root.add("Delimiter", _name(delimiter, encoding))
    if encoding == "url":
        root.add("EncodingType", encoding)
    root.add("IsTruncated", "true" if truncated else "false")
    return root


# ---------------------------------------------------------------- sub-resources


async def location(req: S3Request, settings: Any) -> Response:
    resp = await req.call("HEAD", req.bucket)
    resp.close()
    root = Element("LocationConstraint",
                   settings.s3_location if settings.s3_location != "us-east-1" else None)
    return xml_response(root)


async def versioning(req: S3Request) -> Response:
    if req.method == "GET":
        resp = await req.call("HEAD", req.bucket)
        resp.close()
        root = Element("VersioningConfiguration")
        enabled = resp.headers.get("x-versions-enabled")
        if enabled is not None:
            root.add("Status", "Enabled" if enabled.lower() == "true" else "Suspended")
        return xml_response(root)
    if req.method == "PUT":
        if "object_versioning" not in req.capabilities:
            raise S3Error("NotImplemented", "Not implemented.")
        body = await read_xml(req, 10240)
        try:
            root = parse(body or b"")
        except XMLError:
            raise S3Error("MalformedXML") from None
        status = root.findtext("Status") if root.tag == "VersioningConfiguration" else None
        if status not in ("Enabled", "Suspended"):
            raise S3Error("MalformedXML")
        resp = await req.call("POST", req.bucket,
                              headers={"X-Versions-Enabled": str(status == "Enabled").lower()})
        resp.close()
        return Response(200, b"")
    raise S3Error("MethodNotAllowed", Method=req.method, ResourceType="BUCKET")


async def acl(req: S3Request) -> Response:
    """The ACL S3 clients read: the owner holds FULL_CONTROL (and everyone READ on
    a public-read bucket). Setting ACLs is not served."""
    if req.method != "GET":
        raise S3Error("NotImplemented", "Not implemented.")
    resp = await req.call("HEAD", req.bucket, req.key)
    resp.close()
    root = Element("AccessControlPolicy")
    wire.owner(root, "Owner", req.user_id)
    grants = root.add("AccessControlList")
    grant = grants.add("Grant")
    grantee = grant.add("Grantee", attrs=CANONICAL_USER)
    grantee.add("ID", req.user_id)
    grantee.add("DisplayName", req.user_id)
    grant.add("Permission", "FULL_CONTROL")
    if req.key is None and ".r:*" in resp.headers.get("x-container-read", ""):
        grant = grants.add("Grant")
        grant.add("Grantee", attrs=GROUP).add("URI",
                                              "http://acs.amazonaws.com/groups/global/AllUsers")
        grant.add("Permission", "READ")
    return xml_response(root)
