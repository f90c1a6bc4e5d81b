"""DeleteObjects (``POST /<bucket>?delete``): up to 1,000 keys in one request.

The body must come with ``Content-MD5`` or an ``x-amz-checksum-*`` (checked);
each key is deleted as DeleteObject would, and the answer lists what was
deleted (unless ``Quiet``) and each key's error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from onestack.objectstore.http import Response
from onestack.objectstore.s3 import objects
from onestack.objectstore.s3.buckets import read_xml, xml_response
from onestack.objectstore.s3.errors import S3Error
from onestack.objectstore.s3.request import S3Request
from onestack.objectstore.s3.xml import Element, XMLError, parse

CONCURRENCY = 4


def parse_keys(body: bytes, limit: int) -> tuple[bool, list[tuple[str, str | None]]]:
    try:
        root = parse(body)
    except XMLError:
        raise S3Error("MalformedXML") from None
    if root.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    keys: list[tuple[str, str | None]] = []
    for elem in root.iter("Object"):
        key = elem.findtext("Key")
        if not key:
            raise S3Error("UserKeyMustBeSpecified")
        keys.append((key, elem.findtext("VersionId")))
    if not keys or len(keys) > limit:
        raise S3Error("MalformedXML")
    return quiet, keys


async def delete_objects(req: S3Request, settings: Any) -> Response:
    if req.key is not None:
        req.key = None
    limit = settings.s3_max_multi_delete_objects
    body = await read_xml(req, min(2 * limit * settings.max_object_name_length, 10 << 20))
    if not body:
        raise S3Error("MissingRequestBodyError")
    md5 = req.headers.get("content-md5")
    checksums = [k for k in req.headers if k.startswith("x-amz-checksum-")
                 and k not in ("x-amz-checksum-algorithm", "x-amz-checksum-type")]
    if not md5 and not checksums and "x-amz-trailer" not in req.headers:
        raise S3Error("InvalidRequest", "Missing required header for this request: "
                                        "Content-MD5 OR x-amz-checksum-*")
    if md5 and base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode() \
            != md5.strip():
        raise S3Error("BadDigest", ExpectedDigest=md5)
    quiet, keys = parse_keys(body, limit)
    if any(version not in (None, "null") for _key, version in keys):
        raise S3Error("NotImplemented", "Not implemented.")
    await req.require_bucket()
    bucket = req.bucket or ""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(key: str) -> tuple[str, S3Error | None]:
        async with gate:
            try:
                await objects.delete_key(req, bucket, key)
            except S3Error as exc:
                return key, exc
            return key, None

    results = await asyncio.gather(*(one(key) for key, _v in keys))
    root = Element("DeleteResult")
    for key, err in results:
        if err is not None:
            elem = root.add("Error")
            elem.add("Key", key)
            elem.add("Code", err.code)
            elem.add("Message", err.message)
        elif not quiet:
            root.add("Deleted").add("Key", key)
    return xml_response(root)
