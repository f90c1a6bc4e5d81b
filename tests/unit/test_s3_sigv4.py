"""SigV4 as S3 checks it, against AWS's published examples (the S3 API
reference's "Signature Calculations" pages and the SigV4 test suite), and the
aws-chunked decoder against AWS's chunked-upload example."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest

from onestack.objectstore.s3 import body as bodies
from onestack.objectstore.s3 import sigv4
from onestack.objectstore.s3.errors import S3Error

AK = "AKIAIOSFODNN7EXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
T = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"


def signature(method: str, path: str, params: list[tuple[str, str]],
              headers: list[tuple[str, str]], signed: list[str], payload: str,
              secret: str = SK, request_time: str = T, scope: str = SCOPE,
              region: str = "us-east-1", service: str = "s3") -> str:
    block = sigv4.canonical_headers(headers, signed)
    assert block is not None
    cr = sigv4.canonical_request(method, path, params, block, signed, payload)
    sts = sigv4.string_to_sign(request_time, scope, cr)
    key = sigv4.signing_key(secret, request_time[:8], region, service)
    return sigv4.sign(key, sts)


def test_get_object_with_range() -> None:
    headers = [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
               ("x-amz-content-sha256", sigv4.EMPTY_SHA256), ("x-amz-date", T)]
    block = sigv4.canonical_headers(headers, ["host", "range", "x-amz-content-sha256",
                                              "x-amz-date"])
    cr = sigv4.canonical_request("GET", "/test.txt", [], block or "",
                                 ["host", "range", "x-amz-content-sha256", "x-amz-date"],
                                 sigv4.EMPTY_SHA256)
    assert hashlib.sha256(cr.encode()).hexdigest() == \
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    assert signature("GET", "/test.txt", [], headers,
                     ["host", "range", "x-amz-content-sha256", "x-amz-date"],
                     sigv4.EMPTY_SHA256) == \
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_put_object() -> None:
    payload = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()
    headers = [("Date", "Fri, 24 May 2013 00:00:00 GMT"),
               ("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", T),
               ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
               ("x-amz-content-sha256", payload)]
    signed = ["date", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-storage-class"]
    # the key is test$file.text: S3 signs the path URI-encoded once
    assert signature("PUT", "/test$file.text", [], headers, signed, payload) == \
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_get_bucket_lifecycle_and_list_objects() -> None:
    headers = [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-date", T),
               ("x-amz-content-sha256", sigv4.EMPTY_SHA256)]
    signed = ["host", "x-amz-content-sha256", "x-amz-date"]
    assert signature("GET", "/", [("lifecycle", "")], headers, signed, sigv4.EMPTY_SHA256) == \
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    assert signature("GET", "/", [("prefix", "J"), ("max-keys", "2")], headers, signed,
                     sigv4.EMPTY_SHA256) == \
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


def test_presigned_url() -> None:
    params = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
              ("X-Amz-Credential", f"{AK}/{SCOPE}"), ("X-Amz-Date", T),
              ("X-Amz-Expires", "86400"), ("X-Amz-SignedHeaders", "host"),
              ("X-Amz-Signature", "ignored: never part of what is signed")]
    assert signature("GET", "/test.txt", params, [("Host", "examplebucket.s3.amazonaws.com")],
                     ["host"], sigv4.UNSIGNED) == \
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_sigv4_test_suite_get_vanilla_and_header_values() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    t = "20150830T123600Z"
    scope = "20150830/us-east-1/service/aws4_request"
    headers = [("Host", "example.amazonaws.com"), ("X-Amz-Date", t)]
    assert signature("GET", "/", [], headers, ["host", "x-amz-date"], sigv4.EMPTY_SHA256,
                     secret, t, scope, service="service") == \
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    # repeated headers join with commas, inner runs of spaces become one
    block = sigv4.canonical_headers(
        [("My-Header1", "value4"), ("my-header1", "value1"), ("my-header1", " value3"),
         ("my-header1", "value2  two"), ("host", "h")], ["host", "my-header1"])
    assert block == "host:h\nmy-header1:value4,value1,value3,value2 two\n"
    assert sigv4.canonical_headers([("host", "h")], ["host", "x-amz-date"]) is None


def test_credentials_and_dates_parse() -> None:
    cred = sigv4.parse_credential(f"{AK}/20130524/us-east-1/s3/aws4_request")
    assert cred is not None and cred.scope == SCOPE and cred.access == AK
    assert sigv4.parse_credential(f"{AK}/20130524/us-east-1/s3") is None
    assert sigv4.parse_credential("/20130524/us-east-1/s3/aws4_request") is None
    assert sigv4.parse_amz_date(T) == 1369353600.0
    assert sigv4.parse_amz_date("2013-05-24T00:00:00Z") is None
    assert sigv4.canonical_uri("/a b/ü~x") == "/a%20b/%C3%BC~x"


# ---------------------------------------------------------------- aws-chunked

SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNKS = [(65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
          (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
          (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")]


def test_chunked_upload_seed_signature() -> None:
    headers = [("Host", "s3.amazonaws.com"), ("x-amz-date", T),
               ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
               ("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
               ("Content-Length", "66824"), ("x-amz-content-sha256", sigv4.STREAMING)]
    signed = ["content-encoding", "content-length", "host", "x-amz-content-sha256",
              "x-amz-date", "x-amz-decoded-content-length", "x-amz-storage-class"]
    assert signature("PUT", "/examplebucket/chunkObject.txt", [], headers, signed,
                     sigv4.STREAMING) == SEED


def encoded(chunks: list[tuple[int, str]]) -> bytes:
    out = b""
    for size, sig in chunks:
        out += f"{size:x};chunk-signature={sig}\r\n".encode() + b"a" * size + b"\r\n"
    return out


async def _pieces(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def decode(data: bytes, decoded_length: int = 66560) -> bytes:
    signer = bodies.ChunkSigner(sigv4.signing_key(SK, "20130524", "us-east-1"), T, SCOPE, SEED)

    async def run() -> bytes:
        out = b""
        async for piece in bodies.aws_chunked(_pieces(data), decoded_length, signer, set(), {}):
            out += piece
        return out

    return asyncio.run(run())


def test_chunked_body_decodes_with_aws_chunk_signatures() -> None:
    data = encoded(CHUNKS)
    assert len(data) == 66824
    assert decode(data) == b"a" * 66560


def test_chunked_body_with_a_wrong_chunk_signature_fails() -> None:
    bad = [CHUNKS[0], (1024, "0" * 64), CHUNKS[2]]
    with pytest.raises(S3Error) as exc:
        decode(encoded(bad))
    assert exc.value.code == "SignatureDoesNotMatch" and exc.value.status == 403
    with pytest.raises(S3Error) as exc:
        decode(encoded(CHUNKS), decoded_length=66561)
    assert exc.value.code == "IncompleteBody"
    with pytest.raises(S3Error) as exc:
        decode(encoded(CHUNKS)[:-40])
    assert exc.value.code == "IncompleteBody"


def test_chunks_smaller_than_8_kib_are_refused_but_the_last() -> None:
    signer_key = sigv4.signing_key(SK, "20130524", "us-east-1")
    prev = SEED
    body = b""
    for size in (100, 100, 0):
        chunk = b"b" * size
        sts = sigv4.chunk_string_to_sign(T, SCOPE, prev, hashlib.sha256(chunk).hexdigest())
        prev = sigv4.sign(signer_key, sts)
        body += f"{size:x};chunk-signature={prev}\r\n".encode() + chunk + b"\r\n"
    with pytest.raises(S3Error) as exc:
        decode(body, decoded_length=200)
    assert exc.value.code == "InvalidChunkSizeError"
    assert exc.value.fields == {"Chunk": 1, "BadChunkSize": 100}
