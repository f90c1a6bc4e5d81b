"""The S3 API in-process: buckets, objects, listings, copy, multipart uploads,
DeleteObjects, and every bad input answered with S3's exact status and XML
error, nothing kept. Requests are signed by botocore's own signer."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.objectstore_helpers import Swift, make_swift
from tests.api.s3_helpers import S3, error_body, make_s3

MiB = 1 << 20


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swift]:
    yield from make_swift(tmp_path_factory.mktemp("s3") / "state")


@pytest.fixture(scope="module")
def s3(sw: Swift) -> Iterator[S3]:
    yield from make_s3(sw)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def text(r: Any, tag: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf"<{tag}>([^<]*)</{tag}>", r.text)]


def swift_names(sw: Swift, container: str) -> list[str]:
    r = sw.req("GET", f"/{container}", who="demo")
    return r.text.split() if r.status_code == 200 else []


# ---------------------------------------------------------------- buckets


def test_bucket_life_cycle(s3: S3, sw: Swift) -> None:
    r = s3.put("/life")
    assert r.status_code == 200 and r.headers["location"] == "/life" and r.content == b""
    assert r.headers["x-amz-request-id"].startswith("tx")
    r = s3.put("/life")
    assert r.status_code == 409
    assert r.content == error_body(
        r, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket "
        "succeeded and you already own it.", BucketName="life")
    r = s3.request("HEAD", "/life")
    assert r.status_code == 200 and r.headers["x-amz-bucket-region"] == "us-east-1"
    r = s3.get("/?location".replace("/?", "/life?"))
    assert r.status_code == 200
    assert r.content.endswith(b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/'
                              b'2006-03-01/"/>')
    r = s3.get("/life?versioning")
    assert r.status_code == 200 and b"<Status>" not in r.content
    # a bucket is a Swift container of the project's account
    assert sw.req("HEAD", "/life", who="demo").status_code == 204
    assert "life" in text(s3.get("/"), "Name")
    s3.put("/life/k", b"x")
    r = s3.request("DELETE", "/life")
    assert r.status_code == 409
    assert r.content == error_body(r, "BucketNotEmpty",
                                   "The bucket you tried to delete is not empty",
                                   BucketName="life")
    assert s3.request("DELETE", "/life/k").status_code == 204
    r = s3.request("DELETE", "/life")
    assert r.status_code == 204 and r.content == b""
    assert sw.req("HEAD", "/life", who="demo").status_code == 404
    r = s3.request("HEAD", "/life")
    assert r.status_code == 404 and r.content == b""


def test_missing_and_invalid_buckets(s3: S3, sw: Swift) -> None:
    r = s3.get("/nosuchbucket")
    assert r.status_code == 404
    assert r.content == error_body(r, "NoSuchBucket", "The specified bucket does not exist.",
                                   BucketName="nosuchbucket")
    r = s3.get("/nosuchbucket/key")
    assert r.status_code == 404 and b"<Code>NoSuchBucket</Code>" in r.content
    for name in ("Upper", "ab", "a_b", "-ab", "a..b", "192.168.1.1", "x" * 64):
        r = s3.put(f"/{name}")
        assert r.status_code == 400, name
        assert r.content == error_body(r, "InvalidBucketName",
                                       "The specified bucket is not valid.", BucketName=name)
        assert sw.req("HEAD", f"/{name}", who="demo").status_code == 404
    r = s3.put("/cfgbucket", b"<CreateBucketConfiguration><LocationConstraint>eu-west-1"
                             b"</LocationConstraint></CreateBucketConfiguration>")
    assert r.status_code == 400
    assert r.content == error_body(r, "InvalidLocationConstraint",
                                   "The specified location constraint is not valid.",
                                   LocationConstraint="eu-west-1")
    r = s3.put("/cfgbucket", b"<CreateBucketConfiguration><oops>")
    assert r.status_code == 400 and r.content == error_body(
        r, "MalformedXML", "The XML you provided was not well-formed or did not validate "
        "against our published schema")
    r = s3.put("/cfgbucket", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><CreateBucketConfiguration>'
                             b"<LocationConstraint>&a;</LocationConstraint>"
                             b"</CreateBucketConfiguration>")
    assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content
    assert sw.req("HEAD", "/cfgbucket", who="demo").status_code == 404
    r = s3.request("PATCH", "/")
    assert r.status_code == 405
    assert r.content == error_body(r, "MethodNotAllowed", "The specified method is not "
                                   "allowed against this resource.", Method="PATCH",
                                   ResourceType="SERVICE")
    r = s3.get("/nosuchbucket?tagging")
    assert r.status_code == 501 and r.content == error_body(
        r, "NotImplemented", "The requested resource is not implemented")


# ---------------------------------------------------------------- objects


def test_objects_through_s3_and_swift_are_the_same(s3: S3, sw: Swift) -> None:
    assert s3.put("/same").status_code == 200
    data = b"hello world"
    r = s3.put("/same/dir/a.txt", data, headers={"x-amz-meta-color": "blue",
                                                 "Content-Type": "text/plain",
                                                 "Content-MD5": b64md5(data)})
    assert r.status_code == 200 and r.headers["etag"] == f'"{md5(data)}"'
    r = s3.get("/same/dir/a.txt")
    assert r.status_code == 200 and r.content == data
    assert r.headers["x-amz-meta-color"] == "blue" and r.headers["content-type"] == "text/plain"
    assert r.headers["etag"] == f'"{md5(data)}"' and r.headers["content-length"] == "11"
    # Swift sees the object with the same bytes and metadata
    r = sw.req("GET", "/same/dir/a.txt", who="demo")
    assert r.content == data and r.headers["x-object-meta-color"] == "blue"
    assert r.headers["etag"] == md5(data)
    # and S3 sees what Swift wrote
    sw.req("PUT", "/same/from-swift", who="demo", content=b"swift!",
           headers={"X-Object-Meta-Kind": "native"})
    r = s3.request("HEAD", "/same/from-swift")
    assert r.status_code == 200 and r.headers["x-amz-meta-kind"] == "native"
    assert r.headers["etag"] == f'"{md5(b"swift!")}"' and r.content == b""
    r = s3.get("/same/dir/a.txt", headers={"Range": "bytes=1-3"})
    assert r.status_code == 206 and r.content == b"ell"
    assert r.headers["content-range"] == "bytes 1-3/11"
    r = s3.get("/same/dir/a.txt", headers={"Range": "bytes=20-30"})
    assert r.status_code == 416
    assert r.content == error_body(r, "InvalidRange", "The requested range is not satisfiable")
    r = s3.get("/same/dir/a.txt?response-content-type=x%2Fy&response-cache-control=no")
    assert r.headers["content-type"] == "x/y" and r.headers["cache-control"] == "no"
    r = s3.get("/same/nokey")
    assert r.status_code == 404
    assert r.content == error_body(r, "NoSuchKey", "The specified key does not exist.",
                                   Key="nokey")
    assert s3.request("DELETE", "/same/dir/a.txt").status_code == 204
    assert s3.request("DELETE", "/same/dir/a.txt").status_code == 204
    assert sw.req("HEAD", "/same/dir/a.txt", who="demo").status_code == 404


def test_conditional_gets(s3: S3) -> None:
    s3.put("/cond")
    s3.put("/cond/o", b"abc")
    etag = f'"{md5(b"abc")}"'
    assert s3.get("/cond/o", headers={"If-Match": etag}).status_code == 200
    r = s3.get("/cond/o", headers={"If-Match": '"nope"'})
    assert r.status_code == 412
    assert r.content == error_body(r, "PreconditionFailed", "At least one of the "
                                   "preconditions you specified did not hold.",
                                   Condition="If-Match")
    r = s3.get("/cond/o", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag


def test_bad_put_headers_keep_nothing(s3: S3, sw: Swift) -> None:
    s3.put("/badput")
    data = b"payload"
    cases = [
        ({"Content-MD5": b64md5(b"other")}, 400, "BadDigest"),
        ({"Content-MD5": "not base64!"}, 400, "InvalidDigest"),
        ({"x-amz-storage-class": "GLACIER"}, 400, "InvalidStorageClass"),
        ({"x-amz-server-side-encryption": "AES256"}, 501, "NotImplemented"),
        ({"x-amz-tagging": "a=b"}, 501, "NotImplemented"),
        ({"If-Match": "*"}, 501, "NotImplemented"),
        ({"x-amz-checksum-crc32": base64.b64encode(b"\0\0\0\0").decode()}, 400, "BadDigest"),
        ({"x-amz-checksum-crc32": "zz"}, 400, "InvalidRequest"),
        ({"x-amz-meta-big": "v" * 300}, 400, "MetadataTooLarge"),
    ]
    for headers, status, code in cases:
        r = s3.put("/badput/obj", data, headers=headers)
        assert r.status_code == status, (headers, r.text)
        assert f"<Code>{code}</Code>".encode() in r.content, (headers, r.text)
        assert sw.req("HEAD", "/badput/obj", who="demo").status_code == 404
    r = s3.put("/badput/obj", data, headers={"Content-MD5": b64md5(b"other")})
    assert r.content == error_body(r, "BadDigest", "The Content-MD5 you specified did not "
                                   "match what we received.", ExpectedDigest=b64md5(b"other"))
    r = s3.put("/badput/obj", data, payload=hashlib.sha256(b"other").hexdigest())
    assert r.status_code == 400
    assert r.content == error_body(
        r, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not "
        "match what was computed.", ClientComputedContentSHA256=hashlib.sha256(
            b"other").hexdigest(), S3ComputedContentSHA256=hashlib.sha256(data).hexdigest())
    r = s3.put("/badput/" + "k" * 1025, data)
    assert r.status_code == 400
    assert r.content == error_body(r, "KeyTooLongError", "Your key is too long.", Size=1025,
                                   MaxSizeAllowed=1024)
    assert swift_names(sw, "badput") == []
    crc = base64.b64encode((__import__("zlib").crc32(data)).to_bytes(4, "big")).decode()
    assert s3.put("/badput/obj", data, headers={"x-amz-checksum-crc32": crc}).status_code == 200


# ---------------------------------------------------------------- listings


def test_list_objects_v1_and_v2(s3: S3) -> None:
    s3.put("/lst")
    keys = ["a/1", "a/2", "b/1", "c", "d e+f"]
    for k in keys:
        s3.put(f"/lst/{k.replace(' ', '%20').replace('+', '%2B')}", k.encode())
    r = s3.get("/lst")
    assert text(r, "Key") == keys and text(r, "IsTruncated") == ["false"]
    assert text(r, "Size") == [str(len(k)) for k in keys]
    assert text(r, "ETag") == [f'"{md5(k.encode())}"' for k in keys]
    r = s3.get("/lst?delimiter=%2F")
    assert text(r, "Key") == ["c", "d e+f"] and text(r, "Prefix") == ["a/", "b/"]
    r = s3.get("/lst?max-keys=2&delimiter=%2F")
    assert text(r, "IsTruncated") == ["true"] and text(r, "NextMarker") == ["b/"]
    r = s3.get("/lst?marker=b%2F1")
    assert text(r, "Key") == ["c", "d e+f"] and text(r, "Marker") == ["b/1"]
    r = s3.get("/lst?list-type=2&max-keys=2")
    assert text(r, "Key") == ["a/1", "a/2"] and text(r, "KeyCount") == ["2"]
    assert "<Owner>" not in r.text
    token = text(r, "NextContinuationToken")[0]
    assert base64.b64decode(token) == b"a/2"
    r = s3.get(f"/lst?list-type=2&continuation-token={token}&fetch-owner=true")
    assert text(r, "Key") == ["b/1", "c", "d e+f"] and text(r, "ContinuationToken") == [token]
    assert r.text.count("<Owner><ID>demo:demo</ID>") == 3
    r = s3.get("/lst?list-type=2&start-after=c&encoding-type=url")
    assert text(r, "Key") == ["d%20e%2Bf"] and text(r, "EncodingType") == ["url"]
    r = s3.get("/lst?list-type=2&prefix=a%2F")
    assert text(r, "Key") == ["a/1", "a/2"] and text(r, "Prefix") == ["a/"]
    r = s3.get("/lst?max-keys=-1")
    assert r.status_code == 400
    assert r.content == error_body(r, "InvalidArgument", "Argument max-keys must be an "
                                   "integer between 0 and 2147483647", ArgumentName="max-keys",
                                   ArgumentValue="-1")
    r = s3.get("/lst?encoding-type=xml")
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidArgument", "Invalid Encoding Method specified in Request",
        ArgumentName="encoding-type", ArgumentValue="xml")
    r = s3.get("/lst?list-type=2&continuation-token=%21%21%21")
    assert r.status_code == 400 and b"The continuation token provided is incorrect" in r.content
    r = s3.get("/lst?versions")
    assert text(r, "Key") == keys and text(r, "VersionId") == ["null"] * 5


# ---------------------------------------------------------------- copy


def test_copy_object(s3: S3, sw: Swift) -> None:
    s3.put("/cpy")
    s3.put("/cpy/src", b"source", headers={"x-amz-meta-a": "1", "Content-Type": "text/x"})
    r = s3.put("/cpy/dst", headers={"x-amz-copy-source": "/cpy/src"})
    assert r.status_code == 200 and text(r, "ETag") == ['"' + md5(b"source") + '"']
    r = s3.get("/cpy/dst")
    assert r.content == b"source" and r.headers["x-amz-meta-a"] == "1"
    assert r.headers["content-type"] == "text/x"
    r = s3.put("/cpy/dst2", headers={"x-amz-copy-source": "cpy/src",
                                    "x-amz-metadata-directive": "REPLACE",
                                    "x-amz-meta-b": "2", "Content-Type": "text/y"})
    assert r.status_code == 200
    r = s3.get("/cpy/dst2")
    assert "x-amz-meta-a" not in r.headers and r.headers["x-amz-meta-b"] == "2"
    assert r.headers["content-type"] == "text/y"
    r = s3.put("/cpy/src", headers={"x-amz-copy-source": "/cpy/src"})
    assert r.status_code == 400
    assert r.content == error_body(
        r, "InvalidRequest", "This copy request is illegal because it is trying to copy an "
        "object to itself without changing the object's metadata, storage class, website "
        "redirect location or encryption attributes.")
    r = s3.put("/cpy/dst3", headers={"x-amz-copy-source": "/cpy/src",
                                    "x-amz-copy-source-if-match": '"nope"'})
    assert r.status_code == 412 and b"<Code>PreconditionFailed</Code>" in r.content
    r = s3.put("/cpy/dst3", headers={"x-amz-copy-source": "/cpy/missing"})
    assert r.status_code == 404 and r.content == error_body(
        r, "NoSuchKey", "The specified key does not exist.", Key="missing")
    r = s3.put("/cpy/dst3", headers={"x-amz-copy-source": "/cpy"})
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidArgument", "Copy Source must mention the source bucket and key: "
        "sourcebucket/sourcekey", ArgumentName="x-amz-copy-source", ArgumentValue="/cpy")
    r = s3.put("/cpy/dst3", headers={"x-amz-copy-source": "/cpy/src",
                                    "x-amz-metadata-directive": "MOVE"})
    assert r.status_code == 400 and b"Unknown metadata directive." in r.content
    assert "dst3" not in swift_names(sw, "cpy")


# ---------------------------------------------------------------- multipart


def initiate(s3: S3, path: str, **kw: Any) -> str:
    r = s3.request("POST", path + "?uploads", **kw)
    assert r.status_code == 200, r.text
    return text(r, "UploadId")[0]


def complete_body(parts: list[tuple[int, str]]) -> bytes:
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
                    for n, e in parts)
    return f"<CompleteMultipartUpload>{inner}</CompleteMultipartUpload>".encode()


def test_multipart_upload(s3: S3, sw: Swift) -> None:
    s3.put("/mpu")
    uid = initiate(s3, "/mpu/big", headers={"Content-Type": "video/x", "x-amz-meta-m": "v"})
    p1, p2 = b"1" * (5 * MiB), b"2" * 1000
    e1 = s3.put(f"/mpu/big?partNumber=1&uploadId={uid}", p1).headers["etag"]
    e2 = s3.put(f"/mpu/big?partNumber=2&uploadId={uid}", p2).headers["etag"]
    assert e1 == f'"{md5(p1)}"'
    r = s3.get(f"/mpu/big?uploadId={uid}")
    assert text(r, "PartNumber") == ["1", "2"] and text(r, "Size") == [str(5 * MiB), "1000"]
    r = s3.get("/mpu?uploads")
    assert text(r, "Key") == ["big"] and text(r, "UploadId") == [uid]
    # a part not uploaded, parts out of order, a small part that is not the last
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", complete_body([(1, e1), (3, e2)]))
    assert r.status_code == 400
    assert r.content == error_body(
        r, "InvalidPart", "One or more of the specified parts could not be found.  The part "
        "may not have been uploaded, or the specified entity tag may not match the part's "
        "entity tag.", UploadId=uid, PartNumber=3, ETag=md5(p2))
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", complete_body([(2, e2), (1, e1)]))
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list "
        "must be specified in order by part number.", UploadId=uid)
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", complete_body([(1, e1), (2, "0" * 32)]))
    assert r.status_code == 400 and b"<Code>InvalidPart</Code>" in r.content
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", b"<Complete")
    assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content
    assert "big" not in swift_names(sw, "mpu")
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", complete_body([(1, e1), (2, e2)]))
    assert r.status_code == 200, r.text
    s3_etag = md5(bytes.fromhex(md5(p1)) + bytes.fromhex(md5(p2))) + "-2"
    assert text(r, "ETag") == [f'"{s3_etag}"'] and text(r, "Key") == ["big"]
    r = s3.get("/mpu/big")
    assert r.content == p1 + p2 and r.headers["etag"] == f'"{s3_etag}"'
    assert r.headers["content-type"] == "video/x" and r.headers["x-amz-meta-m"] == "v"
    r = s3.get("/mpu")
    assert text(r, "ETag") == [f'"{s3_etag}"'] and text(r, "Size") == [
        str(5 * MiB + 1000)]
    # Swift sees an SLO over the parts in mpu+segments; the upload is gone
    assert sw.req("HEAD", "/mpu/big", who="demo").headers["x-static-large-object"] == "True"
    assert swift_names(sw, "mpu+segments") == [f"big/{uid}/1", f"big/{uid}/2"]
    assert text(s3.get("/mpu?uploads"), "UploadId") == []
    r = s3.get(f"/mpu/big?uploadId={uid}")
    assert r.status_code == 404 and r.content == error_body(
        r, "NoSuchUpload", "The specified upload does not exist. The upload ID may be "
        "invalid, or the upload may have been aborted or completed.", UploadId=uid)
    # a retried complete answers the same
    r = s3.request("POST", f"/mpu/big?uploadId={uid}", complete_body([(1, e1), (2, e2)]))
    assert r.status_code == 200 and text(r, "ETag") == [f'"{s3_etag}"']
    # deleting the object deletes its parts too
    assert s3.request("DELETE", "/mpu/big").status_code == 204
    assert swift_names(sw, "mpu+segments") == []


def test_multipart_small_parts_abort_and_part_copy(s3: S3, sw: Swift) -> None:
    s3.put("/mpu2")
    s3.put("/mpu2/src", bytes(range(256)) * 100)
    uid = initiate(s3, "/mpu2/k")
    e1 = s3.put(f"/mpu2/k?partNumber=1&uploadId={uid}", b"small").headers["etag"]
    r = s3.put(f"/mpu2/k?partNumber=2&uploadId={uid}",
               headers={"x-amz-copy-source": "/mpu2/src",
                        "x-amz-copy-source-range": "bytes=10-19"})
    assert r.status_code == 200
    e2 = text(r, "ETag")[0]
    assert e2 == f'"{md5((bytes(range(256)) * 100)[10:20])}"'
    r = s3.request("POST", f"/mpu2/k?uploadId={uid}", complete_body([(1, e1), (2, e2)]))
    assert r.status_code == 400
    assert r.content == error_body(
        r, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
        "object size.", ProposedSize=5, MinSizeAllowed=5 * MiB, PartNumber=1,
        ETag=md5(b"small"))
    r = s3.put(f"/mpu2/k?partNumber=0&uploadId={uid}", b"x")
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidArgument", "Part number must be an integer between 1 and 1000, inclusive",
        ArgumentName="partNumber", ArgumentValue="0")
    r = s3.put("/mpu2/k?partNumber=1&uploadId=nope", b"x")
    assert r.status_code == 404 and b"<Code>NoSuchUpload</Code>" in r.content
    r = s3.put(f"/mpu2/k?partNumber=3&uploadId={uid}",
               headers={"x-amz-copy-source": "/mpu2/src",
                        "x-amz-copy-source-range": "bytes=99999-100000"})
    assert r.status_code == 400 and b"Range specified is not valid" in r.content
    assert s3.request("DELETE", f"/mpu2/k?uploadId={uid}").status_code == 204
    assert swift_names(sw, "mpu2+segments") == []
    r = s3.request("DELETE", f"/mpu2/k?uploadId={uid}")
    assert r.status_code == 404 and b"<Code>NoSuchUpload</Code>" in r.content
    # deleting the bucket takes its segments container along
    s3.request("DELETE", "/mpu2/src")
    assert s3.request("DELETE", "/mpu2").status_code == 204
    assert sw.req("HEAD", "/mpu2+segments", who="demo").status_code == 404


# ---------------------------------------------------------------- DeleteObjects


def test_delete_objects(s3: S3, sw: Swift) -> None:
    s3.put("/multi")
    for k in ("a", "b", "c"):
        s3.put(f"/multi/{k}", b"x")
    body = (b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key></Object>"
            b"<Object><Key>zzz</Key></Object></Delete>")
    r = s3.request("POST", "/multi?delete", body)
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidRequest", "Missing required header for this request: Content-MD5 OR "
        "x-amz-checksum-*")
    r = s3.request("POST", "/multi?delete", body, headers={"Content-MD5": b64md5(b"x")})
    assert r.status_code == 400 and b"<Code>BadDigest</Code>" in r.content
    assert swift_names(sw, "multi") == ["a", "b", "c"]
    r = s3.request("POST", "/multi?delete", body, headers={"Content-MD5": b64md5(body)})
    assert r.status_code == 200 and text(r, "Key") == ["a", "b", "zzz"]
    assert swift_names(sw, "multi") == ["c"]
    quiet = b"<Delete><Quiet>true</Quiet><Object><Key>c</Key></Object></Delete>"
    r = s3.request("POST", "/multi?delete", quiet, headers={"Content-MD5": b64md5(quiet)})
    assert r.status_code == 200 and text(r, "Key") == []
    assert swift_names(sw, "multi") == []
    bad = b"<Delete><Object><Key></Key></Object></Delete>"
    r = s3.request("POST", "/multi?delete", bad, headers={"Content-MD5": b64md5(bad)})
    assert r.status_code == 400 and b"<Code>UserKeyMustBeSpecified</Code>" in r.content


# ---------------------------------------------------------------- authentication


def test_bad_signatures_and_keys_keep_nothing(s3: S3, sw: Swift) -> None:
    s3.put("/auth")
    wrong = dict(s3.cred, secret="0" * 32)
    r = s3.put("/auth/obj", b"data", cred=wrong)
    assert r.status_code == 403
    assert text(r, "Code") == ["SignatureDoesNotMatch"]
    assert text(r, "Message") == ["The request signature we calculated does not match the "
                                  "signature you provided. Check your key and signing method."]
    assert text(r, "AWSAccessKeyId") == [s3.cred["access"]]
    assert "AWS4-HMAC-SHA256\n" in r.text and "<CanonicalRequest>PUT\n/auth/obj\n" in r.text
    assert s3.cred["secret"] not in r.text
    unknown = {"access": "nosuchkey", "secret": "x"}
    r = s3.put("/auth/obj", b"data", cred=unknown)
    assert r.status_code == 403 and r.content == error_body(
        r, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our "
        "records.", AWSAccessKeyId="nosuchkey")
    r = s3.client.put("/auth/obj", content=b"data")
    assert r.status_code == 403 and r.content == error_body(r, "AccessDenied", "Access Denied.")
    r = s3.put("/auth/obj", b"data", region="eu-west-1")
    assert r.status_code == 400 and r.content == error_body(
        r, "AuthorizationHeaderMalformed", "The authorization header is malformed; the region "
        "'eu-west-1' is wrong; expecting 'us-east-1'", Region="us-east-1")
    headers = s3.signed("PUT", "/auth/obj", b"data")
    headers["x-amz-meta-sneaky"] = "1"
    r = s3.client.put("/auth/obj", content=b"data", headers=headers)
    assert r.status_code == 403 and r.content == error_body(
        r, "AccessDenied", "There were headers present in the request which were not signed",
        HeadersNotSigned="x-amz-meta-sneaky")
    headers = s3.signed("PUT", "/auth/obj", b"data")
    del headers["X-Amz-Content-SHA256"]
    r = s3.client.put("/auth/obj", content=b"data", headers=headers)
    assert r.status_code == 400 and r.content == error_body(
        r, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    r = s3.client.put("/auth/obj", content=b"data", headers={"Authorization": "Bearer x"})
    assert r.status_code == 400 and b"Unsupported Authorization Type" in r.content
    assert swift_names(sw, "auth") == []


def at(monkeypatch: pytest.MonkeyPatch, when: datetime.datetime) -> None:
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: when)


def test_skewed_clocks_and_expired_presigned_urls(s3: S3, sw: Swift,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put("/clock")
    s3.put("/clock/o", b"content")
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    url = s3.presign("GET", "/clock/o", expires=60)
    r = s3.client.get(url)
    assert r.status_code == 200 and r.content == b"content"
    assert s3.client.put(url, content=b"x").status_code == 403
    at(monkeypatch, now - datetime.timedelta(minutes=20))
    r = s3.put("/clock/late", b"x")
    assert r.status_code == 403 and text(r, "Code") == ["RequestTimeTooSkewed"]
    server = text(r, "ServerTime")[0]
    assert r.content == error_body(
        r, "RequestTimeTooSkewed", "The difference between the request time and the current "
        "time is too large.", RequestTime=(now - datetime.timedelta(minutes=20)).strftime(
            "%Y%m%dT%H%M%SZ"), ServerTime=server, MaxAllowedSkewMilliseconds=900000)
    expired = s3.presign("GET", "/clock/o", expires=60)
    r = s3.client.get(expired)
    assert r.status_code == 403 and text(r, "Message") == ["Request has expired"]
    assert r.content == error_body(
        r, "AccessDenied", "Request has expired", **{
            "X-Amz-Expires": 60, "Expires": (now - datetime.timedelta(minutes=19)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"), "ServerTime": text(r, "ServerTime")[0]})
    at(monkeypatch, now + datetime.timedelta(hours=1))
    r = s3.client.get(s3.presign("GET", "/clock/o", expires=60))
    assert r.status_code == 403 and r.content == error_body(r, "AccessDenied",
                                                            "Request is not valid yet")
    r = s3.put("/clock/early", b"x")
    assert r.status_code == 403 and text(r, "Code") == ["RequestTimeTooSkewed"]
    monkeypatch.undo()
    r = s3.client.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=604801"))
    assert r.status_code == 400 and r.content == error_body(
        r, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in "
        "seconds); that is, the given X-Amz-Expires must be less than 604800 seconds")
    r = s3.client.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert r.status_code == 403 and text(r, "Code") == ["SignatureDoesNotMatch"]
    assert swift_names(sw, "clock") == ["o"]


def chunk_signed_put(s3: S3, path: str, chunks: list[bytes], tamper: int | None = None,
                     ) -> Any:
    """A signed aws-chunked upload (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): botocore
    signs the seed request; each chunk is signed here, after AWS's definition."""
    decoded = sum(len(c) for c in chunks)
    sizes = [len(c) for c in chunks] + [0]
    length = sum(len(f"{n:x};chunk-signature=".encode()) + 64 + 4 + n for n in sizes)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded),
               "Content-Length": str(length)}
    signed = s3.signed("PUT", path, b"", headers, payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    date = signed["X-Amz-Date"]
    scope = f"{date[:8]}/us-east-1/s3/aws4_request"
    key = ("AWS4" + s3.cred["secret"]).encode()
    for piece in (date[:8], "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    prev = seed
    body = b""
    for i, chunk in enumerate([*chunks, b""]):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", date, scope, prev,
                         hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sig = "f" * 64 if i == tamper else prev
        body += f"{len(chunk):x};chunk-signature={sig}\r\n".encode() + chunk + b"\r\n"
    assert len(body) == length
    return s3.client.put(path, content=body, headers=signed)


def test_aws_chunked_uploads(s3: S3, sw: Swift) -> None:
    s3.put("/chunked")
    chunks = [b"x" * 65536, b"y" * 70000, b"z" * 100]
    r = chunk_signed_put(s3, "/chunked/good", chunks)
    assert r.status_code == 200, r.text
    r = s3.get("/chunked/good")
    assert r.content == b"".join(chunks)
    assert "content-encoding" not in r.headers
    r = chunk_signed_put(s3, "/chunked/bad", chunks, tamper=1)
    assert r.status_code == 403 and text(r, "Code") == ["SignatureDoesNotMatch"]
    r = chunk_signed_put(s3, "/chunked/small", [b"a" * 100, b"b" * 100])
    assert r.status_code == 403 and r.content == error_body(
        r, "InvalidChunkSizeError", "Only the last chunk is allowed to have a size less than "
        "8192 bytes", Chunk=1, BadChunkSize=100)
    assert swift_names(sw, "chunked") == ["good"]


def test_projects_see_only_their_own_buckets(s3: S3, sw: Swift) -> None:
    s3.put("/demo-only")
    from tests.api.s3_helpers import ec2_credentials

    admin = ec2_credentials(sw, "admin")
    assert "demo-only" not in text(s3.get("/", cred=admin), "Name")
    r = s3.get("/demo-only", cred=admin)
    assert r.status_code == 404 and b"<Code>NoSuchBucket</Code>" in r.content


def test_a_deleted_credential_stops_working(tmp_path: Path) -> None:
    gen = make_swift(tmp_path / "state", {"ONESTACK_IDENTITY_TOKEN_CACHE_SECONDS": "0"})
    sw = next(gen)
    try:
        s3gen = make_s3(sw)
        s3 = next(s3gen)
        assert s3.get("/").status_code == 200
        api = sw.api
        token = api.token("demo")
        r = api.client.get("/identity/v3/auth/tokens",
                           headers={"X-Auth-Token": token, "X-Subject-Token": token})
        user = r.json()["token"]["user"]["id"]
        r = api.client.delete(f"/identity/v3/users/{user}/credentials/OS-EC2/"
                              f"{s3.cred['access']}", headers={"X-Auth-Token": token})
        assert r.status_code == 204
        r = s3.get("/")
        assert r.status_code == 403 and b"<Code>InvalidAccessKeyId</Code>" in r.content
        for _ in s3gen:
            pass
    finally:
        for _ in gen:
            pass
