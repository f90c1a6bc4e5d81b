"""Bad input to the Swift API: each answer's exact status, body and content type
(as Swift 2.38.3 sends them, compared side by side), and nothing kept."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest

from tests.api.objectstore_helpers import Swift, make_swift

HTML = "text/html; charset=UTF-8"
TEXT = "text/plain"


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swift]:
    swift = next(make_swift(tmp_path_factory.mktemp("bad") / "state"))
    swift.req("PUT", "/c")
    swift.req("PUT", "/c/seg", content=b"x" * 100)
    swift.req("PUT", "/c/empty", content=b"")
    yield swift


def answer(r: object) -> tuple[int, bytes, str]:
    return r.status_code, r.content, r.headers.get("content-type", "")  # type: ignore[attr-defined]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SEG = {"path": "/c/seg"}


@pytest.mark.parametrize(("manifest", "body"), [
    (["x"], b"Index 0: not a JSON object\n"),
    ([{"etag": "x"}], b"Index 0: expected keys to include one of 'data' or 'path'\n"),
    ([{"path": "/c/seg", "foo": 1, "bar": 2}], b'Index 0: extraneous keys "bar", "foo"\n'),
    ([{"path": 5}], b'Index 0: "path" must be a string\n'),
    ([{"path": "/c/seg", "etag": 5}], b'Index 0: "etag" must be a string or null (if provided)\n'),
    ([{"path": "/c"}], b"Index 0: path does not refer to an object. Path must be of the form "
                       b"/container/object.\n"),
    ([{"path": "/c/seg", "size_bytes": "abc"}], b"Index 0: invalid size_bytes\n"),
    ([{"path": "/c/seg", "size_bytes": 0}, SEG],
     b"Index 0: too small; each segment must be at least 1 byte.\n"),
    ([{"path": "/c/m"}], b"Index 0: manifest must not include itself as a segment\n"),
    ([{"path": "/c/seg", "range": "x-y"}], b"Index 0: invalid range\n"),
    ([{"path": "/c/seg", "range": "1-2,4-5"}], b"Index 0: multiple ranges (only one allowed)\n"),
    ([{"path": "/c/seg", "range": "200-300", "size_bytes": 100}],
     b"Index 0: unsatisfiable range\n"),
    ([{"data": "!!!"}], b"Index 0: data must be valid base64\n"
                        b"Inline data segments require at least one object-backed segment.\n"),
    ([{"data": ""}, SEG], b"Index 0: too small; each segment must be at least 1 byte.\n"),
    ([{"data": b64(b"abc")}], b"Inline data segments require at least one object-backed "
                              b"segment.\n"),
    ([{"data": b64(b"abc"), "etag": "x"}, SEG], b'Index 0: extraneous keys "etag"\n'),
])
def test_bad_slo_manifests(sw: Swift, manifest: object, body: bytes) -> None:
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=json.dumps(manifest))
    assert answer(r) == (400, body, TEXT)
    assert sw.req("HEAD", "/c/m").status_code == 404


@pytest.mark.parametrize(("raw", "body"), [
    (b"{nope", b"Manifest must be valid JSON.\n"),
    (b'{"path": "/c/seg"}', b"Manifest must be a list.\n"),
])
def test_slo_manifests_that_are_not_lists(sw: Swift, raw: bytes, body: bytes) -> None:
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=raw)
    assert answer(r) == (400, body, HTML)
    assert sw.req("HEAD", "/c/m").status_code == 404


@pytest.mark.parametrize(("manifest", "accept", "body", "ctype"), [
    ([{"path": "/c/nope"}], None, b"Errors:\n/c/nope, 404 Not Found\n", TEXT),
    ([{"path": "/gone/nope"}], None, b"Errors:\n/gone/nope, 404 Not Found\n", TEXT),
    ([{"path": "/c/seg", "size_bytes": 5}], None, b"Errors:\n/c/seg, Size Mismatch\n", TEXT),
    ([{"path": "/c/seg", "etag": "abc"}], None, b"Errors:\n/c/seg, Etag Mismatch\n", TEXT),
    ([{"path": "/c/seg", "etag": "abc"}], "application/json",
     b'{"Errors":[["/c/seg","Etag Mismatch"]]}', "application/json"),
    ([{"path": "/c/empty"}, SEG], None,
     b"Errors:\n/c/empty, Too small; each segment must be at least 1 byte.\n", TEXT),
    ([{"path": "/c/seg", "range": "200-300"}], None,
     b"Errors:\n/c/seg, Unsatisfiable Range\n", TEXT),
])
def test_slo_segments_that_do_not_hold(sw: Swift, manifest: object, accept: str | None,
                                       body: bytes, ctype: str) -> None:
    headers = {"Accept": accept} if accept else {}
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=json.dumps(manifest),
               headers=headers)
    assert answer(r) == (400, body, ctype)
    assert sw.req("HEAD", "/c/m").status_code == 404


def test_slo_segments_the_caller_cannot_read(sw: Swift) -> None:
    """A manifest names segments in its own account: another project's user who
    may write the container but not read the segments' gets them refused."""
    demo = sw.accounts["demo"][len("AUTH_"):]
    sw.req("PUT", "/drop", headers={"X-Container-Write": f"{demo}:*"})
    r = sw.req("PUT", "/drop/m?multipart-manifest=put", who="demo",
               account=sw.accounts["admin"], content=json.dumps([SEG]))
    assert answer(r) == (400, b"Errors:\n/c/seg, 403 Forbidden\n", TEXT)
    assert sw.req("HEAD", "/drop/m").status_code == 404


def test_slo_limits_and_inline_data(sw: Swift) -> None:
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=json.dumps([SEG] * 1001))
    assert answer(r) == (413, b"Number of object-backed segments must be <= 1000", HTML)
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=json.dumps([SEG]),
               headers={"X-Copy-From": "c/seg"})
    assert r.status_code == 400  # a copy carries no body (Swift checks that first)
    r = sw.req("PUT", "/c/m?multipart-manifest=put", content=json.dumps([SEG]),
               headers={"Etag": "abc"})
    assert r.status_code == 422
    assert sw.req("HEAD", "/c/m").status_code == 404
    # inline data with an object segment is served, ranges across both too
    manifest = [{"data": b64(b"head:")}, SEG, {"data": b64(b":tail")}]
    r = sw.req("PUT", "/c/inline?multipart-manifest=put", content=json.dumps(manifest))
    assert r.status_code == 201
    whole = b"head:" + b"x" * 100 + b":tail"
    assert sw.req("GET", "/c/inline").content == whole
    r = sw.req("GET", "/c/inline", headers={"Range": "bytes=3-7,-3"})
    assert r.status_code == 206 and b"d:xxx" in r.content and b"ail" in r.content
    # an empty manifest makes an empty large object
    r = sw.req("PUT", "/c/none?multipart-manifest=put", content=b"[]")
    assert r.status_code == 201 and r.headers["etag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    r = sw.req("GET", "/c/none")
    assert r.status_code == 200 and r.content == b"" and r.headers["x-static-large-object"]


def test_slo_delete_of_something_else(sw: Swift) -> None:
    r = sw.req("DELETE", "/c/seg?multipart-manifest=delete")
    assert r.status_code == 200
    assert r.content == (b"Number Deleted: 0\nNumber Not Found: 0\nResponse Body: \n"
                         b"Response Status: 400 Bad Request\nErrors:\n"
                         b"/c/seg, Not an SLO manifest\n")
    assert sw.req("HEAD", "/c/seg").status_code == 200


@pytest.mark.parametrize(("method", "path", "headers", "status", "body", "ctype"), [
    ("PUT", "/c/sl", {"X-Static-Large-Object": "True"}, 400,
     b"X-Static-Large-Object is a reserved header. To create a static large object add "
     b"query param multipart-manifest=put.", HTML),
    ("PUT", "/c/cp", {"X-Copy-From": "nocontainer"}, 412,
     b"X-Copy-From header must be of the form <container name>/<object name>", HTML),
    ("COPY", "/c/seg", {}, 412, b"Destination header required", HTML),
    ("PUT", "/c/dlo", {"X-Object-Manifest": "nocontainer"}, 400,
     b"X-Object-Manifest must be in the format container/prefix", HTML),
    ("PUT", "/c/x", {"X-Object-Meta-Foo-" + "k" * 125: "v"}, 400,
     b"Metadata name too long: x-object-meta-Foo-K" + b"k" * 124, TEXT),
    ("POST", "/c", {"X-Versions-Location": "a/b"}, 412,
     b"Container name cannot contain slashes", HTML),
    ("POST", "/c", {"X-Versions-Location": "a", "X-History-Location": "b"}, 400,
     b"Only one of x-versions-location or x-history-location may be specified", TEXT),
    ("POST", "/c", {"X-Container-Read": ".r:"}, 400,
     b"No host/domain value after referrer designation in ACL: '.r:'", HTML),
    ("POST", "/c", {"X-Container-Meta-Quota-Bytes": "abc"}, 400, b"Invalid bytes quota.", HTML),
    ("GET", "/c?limit=10001", {}, 412, b"Maximum limit is 10000", HTML),
    ("GET", "/c?prefix=%FF", {}, 400, b'"prefix" parameter not valid UTF-8', TEXT),
    ("GET", "/c?marker=a%C3", {}, 400, b'"marker" parameter not valid UTF-8', TEXT),
    ("COPY", "/c/seg", {"Destination": "/c/x", "Destination-Account": "a/b"}, 412,
     b"Account name cannot contain slashes", HTML),
    ("PUT", "/c/cp2", {"X-Copy-From": "c/seg", "X-Copy-From-Account": "a/b"}, 412,
     b"Account name cannot contain slashes", HTML),
    ("COPY", "/c/seg", {"Destination": "/c/x", "Destination-Account": ""}, 412,
     b"Account name cannot be empty", HTML),
    ("PUT", "/c/sym", {"X-Symlink-Target": "nocontainer"}, 412,
     b"X-Symlink-Target header must be of the form <container name>/<object name>", HTML),
    ("POST", "/c", {"X-Container-Sync-To": "http://127.0.0.1"}, 400,
     b"Path required in X-Container-Sync-To", HTML),
    ("POST", "/c", {"X-Container-Sync-To": "ftp://127.0.0.1/v1/a/c"}, 400,
     b"Invalid scheme 'ftp' in X-Container-Sync-To, must be \"//\", \"http\", or \"https\".",
     HTML),
    ("POST", "/c", {"X-Container-Sync-To": "http://127.0.0.1/v1/a/c?x=1"}, 400,
     b"Params, queries, and fragments not allowed in X-Container-Sync-To", HTML),
    ("POST", "/c", {"X-Container-Sync-To": "http://example.com/v1/a/c"}, 400,
     b"Invalid host 'example.com' in X-Container-Sync-To", HTML),
    ("POST", "/c", {"X-Container-Sync-To": "//realm/cluster/a/c"}, 400,
     b"No realm key for 'realm'", HTML),
    ("POST", "/c", {"X-Container-Sync-To": "//realm/c"}, 400,
     b"Invalid X-Container-Sync-To format '//realm/c'", HTML),
])
def test_bad_requests(sw: Swift, method: str, path: str, headers: dict[str, object],
                      status: int, body: bytes, ctype: str) -> None:
    r = sw.req(method, path, headers=headers, content=b"x" if method == "PUT" and not
               headers.get("X-Copy-From") and not headers.get("X-Symlink-Target") else b"")
    assert answer(r) == (status, body, ctype)
    if method == "PUT":
        assert sw.req("HEAD", path).status_code == 404
    if method == "POST":
        head = sw.req("HEAD", path)
        assert not {"x-versions-location", "x-history-location", "x-container-read",
                    "x-container-meta-quota-bytes", "x-container-sync-to"} & set(head.headers)


def raw_asgi(sw: Swift, method: str, path: str, headers: list[tuple[bytes, bytes]],
             body: bytes) -> tuple[int, bytes, str]:
    """A request with header bytes as sent (the test client re-encodes them as UTF-8)."""
    import anyio

    out: dict[str, object] = {"body": b""}

    async def call() -> None:
        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
                out["headers"] = dict(message["headers"])  # type: ignore[arg-type]
            else:
                out["body"] = bytes(out["body"]) + bytes(message.get("body", b""))  # type: ignore[arg-type]

        url = sw.url(path)
        scope = {"type": "http", "method": method, "path": url, "raw_path": url.encode(),
                 "root_path": "", "query_string": b"", "headers": [
                     (b"x-auth-token", sw.api.token("admin").encode()),
                     (b"content-length", str(len(body)).encode()), *headers],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8800), "scheme": "http",
                 "http_version": "1.1"}
        await sw.client.app(scope, receive, send)

    anyio.run(call)
    headers_out = {k.lower(): v for k, v in out["headers"].items()}  # type: ignore[attr-defined]
    return int(out["status"]), bytes(out["body"]), headers_out[b"content-type"].decode()  # type: ignore[call-overload]


def test_container_sync_to_that_is_kept(sw: Swift) -> None:
    """A valid X-Container-Sync-To is kept and shown (Swift's container server
    accepts it; container sync itself is not run by onestack)."""
    r = sw.req("POST", "/c", headers={"X-Container-Sync-To": "http://127.0.0.1/v1/a/c"})
    assert r.status_code == 204
    assert sw.req("HEAD", "/c").headers["x-container-sync-to"] == "http://127.0.0.1/v1/a/c"
    assert sw.req("POST", "/c", headers={"X-Container-Sync-To": ""}).status_code == 204
    assert "x-container-sync-to" not in sw.req("HEAD", "/c").headers


def test_content_type_must_be_utf8(sw: Swift) -> None:
    r = raw_asgi(sw, "PUT", "/c/ct", [(b"content-type", b"text/\xff")], b"x")
    assert r == (400, b"Invalid Content-Type", TEXT)
    assert sw.req("HEAD", "/c/ct").status_code == 404


def test_wrong_version_and_method(sw: Swift) -> None:
    r = sw.client.get(sw.url().replace("/v1/", "/v2/"),
                      headers={"X-Auth-Token": sw.api.token("admin")})
    assert answer(r) == (400, b"<html><h1>Bad Request</h1><p>The server could not comply with "
                              b"the request since it is either malformed or otherwise "
                              b"incorrect.</p></html>", HTML)
    r = sw.req("PATCH", "/c/seg")
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, HEAD, OPTIONS, POST, PUT"


def test_bulk_delete_answers(sw: Swift) -> None:
    def bulk(body: bytes, **headers: str) -> bytes:
        r = sw.req("POST", "?bulk-delete", content=body, headers=headers)
        assert r.status_code == 200
        return bytes(r.content)

    assert bulk(b"") == (b"Number Deleted: 0\nNumber Not Found: 0\nResponse Body: Invalid bulk "
                         b"delete.\nResponse Status: 400 Bad Request\nErrors:\n")
    too_many = b"\n".join(b"/c/o%d" % i for i in range(10001))
    assert bulk(too_many) == (b"Number Deleted: 0\nNumber Not Found: 0\nResponse Body: Maximum "
                              b"Bulk Deletes: 10000 per request\nResponse Status: 413 Request "
                              b"Entity Too Large\nErrors:\n")
    assert b"Response Status: 406 Not Acceptable" in bulk(b"/c/seg", **{
        "Content-Type": "application/json"})
    assert sw.req("HEAD", "/c/seg").status_code == 200
    # objects go before their containers, whatever the order given
    sw.req("PUT", "/bulk")
    sw.req("PUT", "/bulk/o", content=b"x")
    assert bulk(b"/bulk\n/bulk/o\n").startswith(b"Number Deleted: 2\n")


def test_objects_over_the_configured_maximum(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Over ``max_file_size``: announced by Content-Length, refused before any byte
    is read; sent chunked, refused when the stream passes it - and nothing is kept
    (no object, no listing row, no temporary file on any device)."""
    state = tmp_path_factory.mktemp("maxsize") / "state"
    small = next(make_swift(state, {"ONESTACK_OBJECTSTORE_MAX_FILE_SIZE": "100000"}))
    small.req("PUT", "/c")
    r = small.req("PUT", "/c/big", content=b"x" * 100001)
    assert answer(r) == (413, b"Your request is too large.", TEXT)

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b"x" * 4096

    r = small.req("PUT", "/c/big", content=chunks())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert answer(r) == (413, b"<html><h1>Request Entity Too Large</h1><p>The body of your "
                              b"request was too large for this server.</p></html>", HTML)
    r = small.req("PUT", "/c/fits", content=b"x" * 100000)
    assert r.status_code == 201
    assert small.req("HEAD", "/c/big").status_code == 404
    assert small.req("GET", "/c").text == "fits\n"
    tmp_dirs = list(state.glob("objectstore/devices/*/tmp"))
    assert tmp_dirs  # (where the writes went)
    assert [p for d in tmp_dirs for p in d.iterdir()] == []


def test_head_errors_carry_no_page(sw: Swift) -> None:
    """A HEAD's error has Content-Length 0 where swob would have made its HTML
    page (a GET's), and the length of a message of its own otherwise."""
    for path in ("/c/nope", "/nocontainer", "/nocontainer/x"):
        r = sw.req("HEAD", path)
        assert (r.status_code, r.headers["content-length"], r.headers["content-type"]) == (
            404, "0", HTML)
        assert sw.req("GET", path).headers["content-length"] == "70"
    r = sw.req("HEAD", "/c/seg?version-id=bad")
    assert (r.status_code, r.headers["content-length"]) == (400, "64")


CONFLICT = b"<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"


def test_slo_whose_segments_are_gone(sw: Swift) -> None:
    """As Swift: the first segment is fetched before the status goes out, so a
    manifest whose first segment is gone answers 409; a HEAD still answers from
    the manifest, and a range within segments that are there is served."""
    sw.req("PUT", "/gone")
    sw.req("PUT", "/gone/s1", content=b"a" * 10)
    sw.req("PUT", "/gone/s2", content=b"b" * 5)
    manifest = [{"path": "/gone/s1"}, {"path": "/gone/s2"}]
    r = sw.req("PUT", "/gone/m?multipart-manifest=put", content=json.dumps(manifest))
    assert r.status_code == 201
    sw.req("DELETE", "/gone/s2")
    r = sw.req("GET", "/gone/m", headers={"Range": "bytes=0-3"})
    assert (r.status_code, r.content) == (206, b"aaaa")
    sw.req("DELETE", "/gone/s1")
    for headers in ({}, {"Range": "bytes=0-3"}):
        r = sw.req("GET", "/gone/m", headers=headers)
        assert answer(r) == (409, CONFLICT, HTML)
    r = sw.req("HEAD", "/gone/m")
    assert (r.status_code, r.headers["content-length"]) == (200, "15")
