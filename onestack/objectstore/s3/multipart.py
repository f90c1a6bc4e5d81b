"""Multipart uploads, built on the store's Static Large Objects (as Swift's s3api).

In ``<bucket>+segments``: ``<key>/<upload id>`` marks an upload in progress
(it carries the object's content type and metadata until completion), and
``<key>/<upload id>/<part number>`` is a part. Completing checks the listed
parts against what was uploaded (``InvalidPart``, ``InvalidPartOrder``,
``EntityTooSmall``), stores an SLO manifest over the parts under the key with
the S3 ETag (MD5 of the parts' MD5s, ``-<count>``), and removes the marker;
aborting removes the marker and the parts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from onestack.objectstore.http import Headers, Response
from onestack.objectstore.proxy import ranges
from onestack.objectstore.s3 import objects, wire
from onestack.objectstore.s3.buckets import encoding_type, int_param, read_xml, xml_response
from onestack.objectstore.s3.errors import S3Error, invalid_argument
from onestack.objectstore.s3.request import MULTIUPLOAD_SUFFIX, S3Request
from onestack.objectstore.s3.xml import Element, XMLError, parse

MAX_COMPLETE_BODY = 2048 * 1024
_SEGMENT = re.compile(r".*/[0-9]+$")
HAS_TYPE = "X-Object-Sysmeta-S3api-Has-Content-Type"
CONTENT_TYPE = "X-Object-Sysmeta-S3api-Content-Type"
KEPT = ("content-encoding", "content-language", "content-disposition", "expires",
        "cache-control")


def segments_of(req: S3Request) -> str:
    return (req.bucket or "") + MULTIUPLOAD_SUFFIX


def upload_id_param(req: S3Request) -> str:
    upload_id = req.params.get("uploadId", "")
    if not upload_id or "/" in upload_id:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return upload_id


def _object_key(req: S3Request) -> str:
    if req.key is None:
        raise S3Error("InvalidRequest", "A key must be specified")
    return req.key


async def upload_marker(req: S3Request, upload_id: str) -> Response:
    """The upload's marker (NoSuchUpload if it is not in progress)."""
    resp = await req.swift("HEAD", segments_of(req), f"{_object_key(req)}/{upload_id}")
    resp.close()
    if resp.status == 404:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    if not resp.is_success:
        await req.raise_for(resp.status, b"", "HEAD", segments_of(req), req.key)
    return resp


async def part_entries(req: S3Request, upload_id: str) -> list[dict[str, Any]]:
    """Every uploaded part of the upload, by part number."""
    prefix = f"{_object_key(req)}/{upload_id}/"
    out: list[dict[str, Any]] = []
    marker = ""
    while True:
        resp = await req.swift("GET", segments_of(req), query={
            "format": "json", "prefix": prefix, "delimiter": "/", "marker": marker})
        data = await resp.read()
        if resp.status == 404:
            return []
        if not resp.is_success:
            await req.raise_for(resp.status, data, "GET", segments_of(req), None)
        entries = orjson.loads(data) if data and resp.status == 200 else []
        if not entries:
            break
        for entry in entries:
            number = entry.get("name", "")[len(prefix):]
            if number.isdigit():
                entry["part"] = int(number)
                out.append(entry)
        marker = entries[-1].get("name", entries[-1].get("subdir", ""))
    out.sort(key=lambda e: int(e["part"]))
    return out


# ---------------------------------------------------------------- ?uploads


async def uploads(req: S3Request, settings: Any) -> Response:
    if req.method == "POST":
        return await initiate(req, settings)
    if req.method == "GET":
        if req.key is not None:
            raise S3Error("InvalidRequest", "Key is not expected for the GET method ?uploads "
                                            "subresource")
        return await list_uploads(req)
    raise S3Error("MethodNotAllowed", Method=req.method, ResourceType="UPLOADS")


async def initiate(req: S3Request, settings: Any) -> Response:
    key = _object_key(req)
    objects.check_put_headers(req, settings)
    await req.require_bucket()
    async for _ in req.body:
        pass
    segments = segments_of(req)
    if not await req.bucket_exists(segments):
        head = await req.call("HEAD", req.bucket)
        head.close()
        acls = {h: head.headers[h] for h in ("x-container-read", "x-container-write")
                if head.headers.get(h)}
        created = await req.swift("PUT", segments, headers=acls)
        created.close()
        if not created.is_success:
            await req.raise_for(created.status, b"", "PUT", segments, None)
    upload_id = base64.urlsafe_b64encode(str(uuid.uuid4()).encode("ascii")).decode("ascii")
    headers = objects.swift_put_headers(req, default_type=False)
    for drop in ("etag", "transfer-encoding", "content-length", "x-delete-at",
                 "x-delete-after", "if-none-match"):
        del headers[drop]
    ctype = req.headers.get("content-type")
    headers[HAS_TYPE] = "yes" if ctype else "no"
    if ctype:
        headers[CONTENT_TYPE] = ctype
    headers["Content-Type"] = "application/directory"
    headers["Content-Length"] = "0"
    resp = await req.call("PUT", segments, f"{key}/{upload_id}", headers=headers, body=b"")
    resp.close()
    root = Element("InitiateMultipartUploadResult")
    root.add("Bucket", req.bucket)
    root.add("Key", key)
    root.add("UploadId", upload_id)
    return xml_response(root)


async def list_uploads(req: S3Request) -> Response:
    params = req.params
    encoding = encoding_type(req)
    key_marker = params.get("key-marker", "")
    id_marker = params.get("upload-id-marker", "")
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter")
    max_uploads = int_param(req, "max-uploads", 1000, 1000)
    await req.require_bucket()
    query: dict[str, str | None] = {"format": "json", "marker": ""}
    if id_marker and key_marker:
        query["marker"] = f"{key_marker}/{id_marker}"
    elif key_marker:
        query["marker"] = f"{key_marker}/~"
    if "prefix" in params:
        query["prefix"] = prefix
    found: list[dict[str, str]] = []
    prefixes: set[str] = set()
    while len(found) < max_uploads:
        resp = await req.swift("GET", segments_of(req), query=query)
        data = await resp.read()
        if resp.status == 404:
            break
        if not resp.is_success:
            await req.raise_for(resp.status, data, "GET", segments_of(req), None)
        entries = orjson.loads(data) if data and resp.status == 200 else []
        if not entries:
            break
        for entry in entries:
            name = entry.get("name", "")
            if not name or _SEGMENT.match(name) or "/" not in name:
                continue
            key, upload_id = name.rsplit("/", 1)
            if delimiter:
                end = key.find(delimiter, len(prefix))
                if end >= 0:
                    prefixes.add(key[:end + len(delimiter)])
                    continue
            found.append({"key": key, "upload_id": upload_id,
                          "last_modified": entry["last_modified"]})
        query["marker"] = entries[-1].get("name", "")
    truncated = len(found) >= max_uploads
    found = found[:max_uploads]
    root = Element("ListMultipartUploadsResult")
    root.add("Bucket", req.bucket)
    root.add("KeyMarker", key_marker)
    root.add("UploadIdMarker", id_marker)
    root.add("NextKeyMarker", found[-1]["key"] if truncated and found else "")
    root.add("NextUploadIdMarker", found[-1]["upload_id"] if truncated and found else "")
    if delimiter is not None:
        root.add("Delimiter", delimiter)
    if "prefix" in params:
        root.add("Prefix", prefix)
    root.add("MaxUploads", str(max_uploads))
    if encoding is not None:
        root.add("EncodingType", encoding)
    root.add("IsTruncated", "true" if truncated else "false")
    for upload in found:
        elem = root.add("Upload")
        elem.add("Key", quote(upload["key"]) if encoding == "url" else upload["key"])
        elem.add("UploadId", upload["upload_id"])
        wire.owner(elem, "Initiator", req.user_id)
        wire.owner(elem, "Owner", req.user_id)
        elem.add("StorageClass", "STANDARD")
        elem.add("Initiated", wire.s3_time(upload["last_modified"]))
    for p in sorted(prefixes):
        root.add("CommonPrefixes").add("Prefix", p)
    return xml_response(root)


# ---------------------------------------------------------------- parts


def part_number(req: S3Request, settings: Any) -> int:
    text = req.params.get("partNumber", "")
    top = settings.s3_max_upload_part_num
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= top:
        raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and {top}, "
                                         "inclusive", ArgumentName="partNumber",
                      ArgumentValue=text)
    return number


async def upload_part(req: S3Request, settings: Any) -> Response:
    if "uploadId" not in req.params:
        raise invalid_argument("ResourceType", "partNumber", "Unexpected query string parameter")
    key = _object_key(req)
    number = part_number(req, settings)
    upload_id = upload_id_param(req)
    await req.require_bucket()
    await upload_marker(req, upload_id)
    name = f"{key}/{upload_id}/{number}"
    if "x-amz-copy-source" in req.headers:
        return await copy_part(req, name)
    headers = Headers({"Content-Type": "application/octet-stream"})
    if req.content_length is not None:
        headers["Content-Length"] = str(req.content_length)
    elif "transfer-encoding" in req.headers:
        headers["Transfer-Encoding"] = req.headers["transfer-encoding"]
    digest = objects.content_md5(req)
    if digest is not None:
        headers["Etag"] = digest
    resp = await req.call("PUT", segments_of(req), name, headers=headers, body=req.body)
    resp.close()
    return Response(200, b"", {"ETag": wire.quoted(resp.headers.get("etag", ""))})


async def copy_part(req: S3Request, name: str) -> Response:
    """UploadPartCopy: the source (or ``x-amz-copy-source-range`` of it) streamed into
    the part."""
    src_bucket, src_key, head = await objects.source_head(req)
    size = int(head.headers.get("content-length", "0"))
    headers = Headers()
    rng = req.headers.get("x-amz-copy-source-range")
    length = size
    if rng is not None:
        message = ("The x-amz-copy-source-range value must be of the form bytes=first-last "
                   "where first and last are the zero-based offsets of the first and last "
                   "bytes to copy")
        parsed = ranges.parse_range(rng)
        if not parsed or len(parsed) != 1 or not rng.startswith("bytes="):
            raise invalid_argument("x-amz-source-range", rng, message)
        spans = ranges.ranges_for_length(parsed, size)
        if not spans:
            raise invalid_argument("x-amz-source-range", rng, "Range specified is not valid "
                                                              f"for source object of size: {size}")
        start, end = spans[0]
        headers["Range"] = f"bytes={start}-{end - 1}"
        length = end - start
    source = await req.call("GET", src_bucket, src_key, headers=headers)
    try:
        put = await req.call("PUT", segments_of(req), name, body=source.body, headers={
            "Content-Length": str(length), "Content-Type": "application/octet-stream"})
    finally:
        source.close()
    put.close()
    root = Element("CopyPartResult")
    root.add("LastModified", wire.http_to_s3_time(put.headers.get("last-modified", "")))
    root.add("ETag", wire.quoted(put.headers.get("etag", "")))
    return xml_response(root)


# ---------------------------------------------------------------- ?uploadId


async def upload(req: S3Request, settings: Any) -> Response:
    if req.method == "GET":
        return await list_parts(req, settings)
    if req.method == "DELETE":
        return await abort(req)
    if req.method == "POST":
        return await complete(req, settings)
    raise S3Error("MethodNotAllowed", Method=req.method, ResourceType="UPLOAD")


async def list_parts(req: S3Request, settings: Any) -> Response:
    key = _object_key(req)
    encoding = encoding_type(req)
    upload_id = upload_id_param(req)
    await req.require_bucket()
    await upload_marker(req, upload_id)
    max_parts = int_param(req, "max-parts", 1000, settings.s3_max_parts_listing)
    marker = int_param(req, "part-number-marker", 0)
    parts = [p for p in await part_entries(req, upload_id) if p["part"] > marker]
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    root = Element("ListPartsResult")
    root.add("Bucket", req.bucket)
    root.add("Key", quote(key) if encoding == "url" else key)
    root.add("UploadId", upload_id)
    wire.owner(root, "Initiator", req.user_id)
    wire.owner(root, "Owner", req.user_id)
    root.add("StorageClass", "STANDARD")
    root.add("PartNumberMarker", str(marker))
    root.add("NextPartNumberMarker", str(parts[-1]["part"] if parts else 0))
    root.add("MaxParts", str(max_parts))
    if encoding is not None:
        root.add("EncodingType", encoding)
    root.add("IsTruncated", "true" if truncated else "false")
    for p in parts:
        elem = root.add("Part")
        elem.add("PartNumber", str(p["part"]))
        elem.add("LastModified", wire.s3_time(p["last_modified"]))
        elem.add("ETag", wire.quoted(p["hash"]))
        elem.add("Size", str(p["bytes"]))
    return xml_response(root)


async def abort(req: S3Request) -> Response:
    key = _object_key(req)
    upload_id = upload_id_param(req)
    await req.require_bucket()
    await upload_marker(req, upload_id)
    segments = segments_of(req)
    for p in await part_entries(req, upload_id):
        resp = await req.swift("DELETE", segments, p["name"])
        resp.close()
    resp = await req.swift("DELETE", segments, f"{key}/{upload_id}")
    resp.close()
    return Response(204, b"")


def _completion_body(req: S3Request, s3_etag: str) -> Response:
    root = Element("CompleteMultipartUploadResult")
    host = req.host or "localhost"
    root.add("Location", f"http://{host}/{quote(req.bucket or '')}/{quote(req.key or '')}")
    root.add("Bucket", req.bucket)
    root.add("Key", req.key)
    root.add("ETag", f'"{s3_etag}"')
    return xml_response(root)


def parse_parts(body: bytes, upload_id: str) -> list[tuple[int, str]]:
    try:
        root = parse(body)
    except XMLError:
        raise S3Error("MalformedXML") from None
    if root.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts: list[tuple[int, str]] = []
    previous = 0
    for elem in root.iter("Part"):
        number_text = elem.findtext("PartNumber")
        etag_text = elem.findtext("ETag")
        if number_text is None or etag_text is None:
            raise S3Error("MalformedXML")
        try:
            number = int(number_text.strip())
        except ValueError:
            raise S3Error("MalformedXML") from None
        if number <= previous:
            raise S3Error("InvalidPartOrder", UploadId=upload_id)
        previous = number
        etag = etag_text.strip().strip('"')
        if len(etag) != 32 or any(c not in "0123456789abcdef" for c in etag):
            raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=number, ETag=etag)
        parts.append((number, etag))
    if not parts:
        raise S3Error("MalformedXML")
    return parts


async def complete(req: S3Request, settings: Any) -> Response:
    key = _object_key(req)
    upload_id = upload_id_param(req)
    if req.headers.get("if-none-match", "*") != "*" or any(
            h in req.headers for h in ("if-match", "if-modified-since", "if-unmodified-since")):
        raise S3Error("NotImplemented", "Conditional uploads are not supported.")
    await req.require_bucket()
    marker = await _marker_or_done(req, upload_id)
    body = await read_xml(req, MAX_COMPLETE_BODY)
    if not body:
        raise S3Error("InvalidRequest", "You must specify at least one part")
    md5 = req.headers.get("content-md5")
    if md5 and base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode() \
            != md5.strip():
        raise S3Error("BadDigest", ExpectedDigest=md5)
    wanted = parse_parts(body, upload_id)
    uploaded = {p["part"]: p for p in await part_entries(req, upload_id)}
    hasher = hashlib.md5(usedforsecurity=False)
    manifest = []
    segments = segments_of(req)
    for index, (number, etag) in enumerate(wanted):
        part = uploaded.get(number)
        if part is None or part["hash"] != etag:
            raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=number, ETag=etag)
        if index < len(wanted) - 1 and part["bytes"] < settings.s3_min_segment_size:
            raise S3Error("EntityTooSmall", ProposedSize=part["bytes"],
                          MinSizeAllowed=settings.s3_min_segment_size, PartNumber=number,
                          ETag=etag)
        manifest.append({"path": f"/{segments}/{key}/{upload_id}/{number}", "etag": etag,
                         "size_bytes": part["bytes"]})
        hasher.update(binascii.a2b_hex(etag))
    s3_etag = f"{hasher.hexdigest()}-{len(manifest)}"
    if marker is None:
        done = await req.swift("HEAD", req.bucket, key, query={"multipart-manifest": "get"})
        done.close()
        if done.headers.get(wire.S3_ETAG) == s3_etag:
            return _completion_body(req, s3_etag)
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    headers = Headers({"Accept": "application/json", wire.UPLOAD_ID: upload_id,
                       wire.S3_ETAG: s3_etag,
                       "X-Object-Sysmeta-Container-Update-Override-Etag":
                           f"; s3_etag={s3_etag}"})
    for name, value in marker.headers.items():
        if name.startswith("x-object-meta-") or name in KEPT:
            headers[name] = value
    if marker.headers.get(HAS_TYPE.lower()) == "yes":
        headers["Content-Type"] = marker.headers.get(CONTENT_TYPE.lower(), "")
    data = orjson.dumps(manifest)
    headers["Content-Length"] = str(len(data))
    resp = await req.swift("PUT", req.bucket, key, query={"multipart-manifest": "put"},
                           headers=headers, body=data)
    text = (await resp.read()).decode("utf-8", "replace")
    if resp.status == 400 and ("Etag Mismatch" in text or "404 Not Found" in text):
        raise S3Error("InvalidPart", UploadId=upload_id)
    if not resp.is_success:
        await req.raise_for(resp.status, text.encode(), "PUT", req.bucket, key)
    gone = await req.swift("DELETE", segments, f"{key}/{upload_id}")
    gone.close()
    return _completion_body(req, s3_etag)


async def _marker_or_done(req: S3Request, upload_id: str) -> Response | None:
    """The upload's marker; None if the upload was completed already (a retried
    complete); NoSuchUpload otherwise."""
    try:
        return await upload_marker(req, upload_id)
    except S3Error:
        done = await req.swift("HEAD", req.bucket, req.key, query={"multipart-manifest": "get"})
        done.close()
        if done.is_success and done.headers.get(wire.UPLOAD_ID) == upload_id:
            return None
        raise
