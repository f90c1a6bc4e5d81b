"""Swift v1 through the ASGI app: accounts, containers, objects, and their errors
(exact statuses and bodies, as Swift 2.38 sends them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.objectstore_helpers import Swift, make_swift

NOT_FOUND = b"<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
ACCEPTED = b"<html><h1>Accepted</h1><p>The request is accepted for processing.</p></html>"
CONFLICT = (b"<html><h1>Conflict</h1><p>There was a conflict when trying to complete your "
            b"request.</p></html>")
FORBIDDEN = b"<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>"
UNAUTHORIZED = (b"<html><h1>Unauthorized</h1><p>This server could not verify that you are "
                b"authorized to access the document you requested.</p></html>")
UNPROCESSABLE = (b"<html><h1>Unprocessable Entity</h1><p>Unable to process the contained "
                 b"instructions</p></html>")


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swift]:
    yield from make_swift(tmp_path_factory.mktemp("swift") / "state")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_fresh_account_is_empty_and_has_swift_headers(sw: Swift) -> None:
    r = sw.req("GET", who="demo")
    assert r.status_code == 204
    assert r.headers["x-account-container-count"] == "0"
    assert r.headers["x-account-object-count"] == "0"
    assert r.headers["x-account-bytes-used"] == "0"
    assert r.headers["x-trans-id"].startswith("tx")
    assert r.headers["x-openstack-request-id"] == r.headers["x-trans-id"]
    r = sw.req("GET", "?format=json", who="demo")
    assert r.status_code == 200 and r.json() == []


def test_container_life_cycle(sw: Swift) -> None:
    r = sw.req("PUT", "/life", headers={"X-Container-Meta-Color": "blue"})
    assert r.status_code == 201 and r.content == b""
    r = sw.req("PUT", "/life")
    assert r.status_code == 202 and r.content == ACCEPTED
    r = sw.req("HEAD", "/life")
    assert r.status_code == 204
    assert r.headers["x-container-meta-color"] == "blue"
    assert r.headers["x-container-object-count"] == "0"
    assert r.headers["x-storage-policy"] == "Policy-0"
    r = sw.req("POST", "/life", headers={"X-Remove-Container-Meta-Color": "x",
                                         "X-Container-Meta-Size": "big"})
    assert r.status_code == 204
    r = sw.req("HEAD", "/life")
    assert "x-container-meta-color" not in r.headers
    assert r.headers["x-container-meta-size"] == "big"
    names = [c["name"] for c in sw.req("GET", "?format=json").json()]
    assert "life" in names
    assert sw.req("DELETE", "/life").status_code == 204
    r = sw.req("HEAD", "/life")
    assert r.status_code == 404
    r = sw.req("GET", "/life")
    assert r.status_code == 404 and r.content == NOT_FOUND
    assert sw.req("DELETE", "/life").status_code == 404


def test_object_round_trip_and_metadata(sw: Swift) -> None:
    sw.req("PUT", "/objs")
    data = b"hello world"
    r = sw.req("PUT", "/objs/greeting.txt", content=data,
               headers={"X-Object-Meta-Lang": "en", "Content-Type": "text/plain"})
    assert r.status_code == 201
    assert r.headers["etag"] == md5(data)
    assert r.headers["last-modified"]
    r = sw.req("GET", "/objs/greeting.txt")
    assert r.status_code == 200 and r.content == data
    assert r.headers["etag"] == md5(data)
    assert r.headers["content-type"] == "text/plain"
    assert r.headers["x-object-meta-lang"] == "en"
    assert r.headers["accept-ranges"] == "bytes"
    assert float(r.headers["x-timestamp"]) > 0
    r = sw.req("POST", "/objs/greeting.txt", headers={"X-Object-Meta-Mood": "calm"})
    assert r.status_code == 202 and r.content == ACCEPTED
    r = sw.req("HEAD", "/objs/greeting.txt")
    assert r.headers["x-object-meta-mood"] == "calm"
    assert "x-object-meta-lang" not in r.headers  # a POST replaces the user metadata
    assert r.headers["content-length"] == str(len(data))
    r = sw.req("HEAD", "/objs")
    assert r.headers["x-container-object-count"] == "1"
    assert r.headers["x-container-bytes-used"] == str(len(data))
    assert sw.req("DELETE", "/objs/greeting.txt").status_code == 204
    r = sw.req("GET", "/objs/greeting.txt")
    assert r.status_code == 404 and r.content == NOT_FOUND
    r = sw.req("DELETE", "/objs/greeting.txt")
    assert r.status_code == 404 and r.content == NOT_FOUND
    assert sw.req("HEAD", "/objs").headers["x-container-object-count"] == "0"


def test_content_type_detection(sw: Swift) -> None:
    sw.req("PUT", "/ctype")
    sw.req("PUT", "/ctype/page.html", content=b"<p>", headers={"Content-Type": ""})
    assert sw.req("HEAD", "/ctype/page.html").headers["content-type"] == "text/html"
    sw.req("PUT", "/ctype/blob", content=b"x", headers={"Content-Type": ""})
    assert sw.req("HEAD", "/ctype/blob").headers["content-type"] == "application/octet-stream"
    sw.req("PUT", "/ctype/a.json", content=b"{}",
           headers={"Content-Type": "text/plain", "X-Detect-Content-Type": "true"})
    assert sw.req("HEAD", "/ctype/a.json").headers["content-type"] == "application/json"


def test_etag_mismatch_is_422_and_nothing_is_kept(sw: Swift) -> None:
    sw.req("PUT", "/etags")
    r = sw.req("PUT", "/etags/o", content=b"abc", headers={"ETag": md5(b"abd")})
    assert r.status_code == 422 and r.content == UNPROCESSABLE
    assert sw.req("HEAD", "/etags/o").status_code == 404
    big = b"z" * (3 << 20)  # the streamed path
    r = sw.req("PUT", "/etags/big", content=big, headers={"ETag": md5(b"other")})
    assert r.status_code == 422
    assert sw.req("HEAD", "/etags/big").status_code == 404
    r = sw.req("PUT", "/etags/big", content=big, headers={"ETag": f'"{md5(big)}"'})
    assert r.status_code == 201
    assert sw.req("GET", "/etags/big").content == big


def test_chunked_upload(sw: Swift) -> None:
    sw.req("PUT", "/chunked")

    def gen() -> Iterator[bytes]:
        for i in range(40):
            yield bytes([i]) * 100_000

    r = sw.req("PUT", "/chunked/o", content=gen())
    assert r.status_code == 201
    body = b"".join(bytes([i]) * 100_000 for i in range(40))
    assert r.headers["etag"] == md5(body)
    got = sw.req("GET", "/chunked/o")
    assert got.content == body and got.headers["content-length"] == str(len(body))


def test_ranges(sw: Swift) -> None:
    sw.req("PUT", "/ranges")
    sw.req("PUT", "/ranges/r", content=b"0123456789")
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=1-2"})
    assert r.status_code == 206 and r.content == b"12"
    assert r.headers["content-range"] == "bytes 1-2/10"
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=-3"})
    assert r.status_code == 206 and r.content == b"789"
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=7-"})
    assert r.content == b"789"
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=20-30"})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */10"
    assert r.content == (b"<html><h1>Requested Range Not Satisfiable</h1><p>The Range "
                         b"requested is not available.</p></html>")
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=1-2,5-6"})
    assert r.status_code == 206
    ctype = r.headers["content-type"]
    assert ctype.startswith("multipart/byteranges;boundary=")
    boundary = ctype.split("=", 1)[1]
    assert r.content.count(f"--{boundary}".encode()) == 3
    assert b"Content-Range: bytes 1-2/10\r\n\r\n12\r\n" in r.content
    assert b"Content-Range: bytes 5-6/10\r\n\r\n56\r\n" in r.content
    assert r.content.endswith(f"--{boundary}--".encode())
    assert int(r.headers["content-length"]) == len(r.content)
    r = sw.req("GET", "/ranges/r", headers={"Range": "bytes=5-3"})  # invalid: ignored
    assert r.status_code == 200 and r.content == b"0123456789"


def test_conditional_requests(sw: Swift) -> None:
    sw.req("PUT", "/cond")
    sw.req("PUT", "/cond/o", content=b"data")
    etag = md5(b"data")
    r = sw.req("GET", "/cond/o", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    r = sw.req("GET", "/cond/o", headers={"If-Match": "nope"})
    assert r.status_code == 412 and r.content == b""
    assert sw.req("GET", "/cond/o", headers={"If-Match": f'"{etag}"'}).status_code == 200
    r = sw.req("GET", "/cond/o", headers={"If-Modified-Since": "Sat, 05 Dec 2099 06:51:20 GMT"})
    assert r.status_code == 304
    r = sw.req("GET", "/cond/o",
               headers={"If-Unmodified-Since": "Sat, 05 Dec 2000 06:51:20 GMT"})
    assert r.status_code == 412
    r = sw.req("PUT", "/cond/o", content=b"again", headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = sw.req("PUT", "/cond/o2", content=b"first", headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = sw.req("PUT", "/cond/o3", content=b"x", headers={"If-None-Match": "abc"})
    assert r.status_code == 400 and r.content == b"If-None-Match only supports *"


def test_listings_formats_and_parameters(sw: Swift) -> None:
    sw.req("PUT", "/list")
    for name in ("a", "b/1", "b/2", "c", "d/x/y"):
        sw.req("PUT", f"/list/{name}", content=name.encode(), headers={"Content-Type": "text/x"})
    r = sw.req("GET", "/list")
    assert r.status_code == 200 and r.text == "a\nb/1\nb/2\nc\nd/x/y\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert sw.req("GET", "/list?delimiter=/").text == "a\nb/\nc\nd/\n"
    assert sw.req("GET", "/list?prefix=b/").text == "b/1\nb/2\n"
    assert sw.req("GET", "/list?marker=b/1&limit=2").text == "b/2\nc\n"
    assert sw.req("GET", "/list?end_marker=b/2").text == "a\nb/1\n"
    assert sw.req("GET", "/list?reverse=true").text == "d/x/y\nc\nb/2\nb/1\na\n"
    assert sw.req("GET", "/list?reverse=true&delimiter=/").text == "d/\nc\nb/\na\n"
    assert sw.req("GET", "/list?path=d/x").text == "d/x/y\n"
    js = sw.req("GET", "/list?format=json&delimiter=/").json()
    assert js[1] == {"subdir": "b/"}
    assert js[0]["name"] == "a" and js[0]["bytes"] == 1 and js[0]["hash"] == md5(b"a")
    assert js[0]["content_type"] == "text/x" and "last_modified" in js[0]
    xml = sw.req("GET", "/list?format=xml&prefix=b/").text
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<container name="list">')
    assert "<object><name>b/1</name>" in xml
    r = sw.req("GET", "/list", headers={"Accept": "application/json"})
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    r = sw.req("GET", "/list?limit=10001")
    assert r.status_code == 412 and r.content == b"Maximum limit is 10000"
    r = sw.req("GET", "/list?delimiter=x/")  # several characters (Swift 2.38)
    assert r.status_code == 200 and r.text == "a\nb/1\nb/2\nc\nd/x/\n"
    r = sw.req("GET", "/list?prefix=zzz")
    assert r.status_code == 204 and r.content == b""
    acct = sw.req("GET", "?format=json&prefix=lis").json()
    assert [c["name"] for c in acct] == ["list"]
    assert sw.req("GET", "?prefix=lis").text == "list\n"


def test_bad_names_and_metadata(sw: Swift) -> None:
    r = sw.req("PUT", "/" + "c" * 257)
    assert r.status_code == 400 and r.content == b"Container name length of 257 longer than 256"
    assert r.headers["content-type"] == "text/html; charset=UTF-8"
    sw.req("PUT", "/names")
    r = sw.req("PUT", "/names/" + "o" * 1025, content=b"x")
    assert r.status_code == 400 and r.content == b"Object name length of 1025 longer than 1024"
    r = sw.req("PUT", "/names/o", content=b"x", headers={"X-Object-Meta-" + "k" * 129: "v"})
    assert r.status_code == 400
    assert r.content == b"Metadata name too long: x-object-meta-K" + b"k" * 128
    assert r.headers["content-type"] == "text/plain"
    r = sw.req("PUT", "/names/o", content=b"x", headers={"X-Object-Meta-K": "v" * 257})
    assert r.status_code == 400 and r.content == b"Metadata value longer than 256: x-object-meta-K"
    many = {f"X-Object-Meta-K{i}": "v" for i in range(91)}
    r = sw.req("PUT", "/names/o", content=b"x", headers=many)
    assert r.status_code == 400 and r.content == b"Too many metadata items; max 90"
    big = {f"X-Object-Meta-K{i}": "v" * 250 for i in range(20)}
    r = sw.req("PUT", "/names/o", content=b"x", headers=big)
    assert r.status_code == 400 and r.content == b"Total metadata too large; max 4096"
    r = sw.req("POST", "/names", headers={"X-Container-Meta-" + "k" * 129: "v"})
    assert r.status_code == 400
    assert sw.req("HEAD", "/names/o").status_code == 404  # nothing was kept
    r = sw.req("GET", "/names/%FF")
    assert r.status_code == 412 and r.content == b"Invalid UTF8 or contains NULL"
    assert r.headers["content-type"] == "text/html; charset=UTF-8"


def test_limits_of_object_size_and_headers(sw: Swift) -> None:
    sw.req("PUT", "/sizes")
    r = sw.req("PUT", "/sizes/o", headers={"Content-Length": str(5368709123)}, content=b"")
    assert r.status_code == 413 and r.content == b"Your request is too large."
    r = sw.req("PUT", "/sizes/o", content=b"x", headers={"X-Delete-At": "12"})
    assert r.status_code == 400 and r.content == b"X-Delete-At in past"
    r = sw.req("PUT", "/sizes/o", content=b"x", headers={"X-Delete-After": "abc"})
    assert r.status_code == 400 and r.content == b"Non-integer X-Delete-After"
    assert sw.req("HEAD", "/sizes/o").status_code == 404


def test_object_in_missing_container_is_404(sw: Swift) -> None:
    r = sw.req("PUT", "/nocontainer/o", content=b"x")
    assert r.status_code == 404 and r.content == NOT_FOUND


def test_container_not_empty_is_409(sw: Swift) -> None:
    sw.req("PUT", "/full")
    sw.req("PUT", "/full/o", content=b"x")
    r = sw.req("DELETE", "/full")
    assert r.status_code == 409 and r.content == CONFLICT


def test_auth_demo_cannot_touch_admin_account(sw: Swift) -> None:
    sw.req("PUT", "/private")
    sw.req("PUT", "/private/o", content=b"secret")
    r = sw.req("GET", "/private/o", who="demo", account=sw.accounts["admin"])
    assert r.status_code == 403 and r.content == FORBIDDEN
    r = sw.req("PUT", "/private/x", who="demo", account=sw.accounts["admin"], content=b"x")
    assert r.status_code == 403
    r = sw.client.get(sw.url("/private/o"))
    assert r.status_code == 401 and r.content == UNAUTHORIZED
    r = sw.client.get(sw.url("/private/o"), headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401
    assert sw.req("HEAD", "/private/x").status_code == 404


def test_container_acls(sw: Swift) -> None:
    demo_project = sw.accounts["demo"][len("AUTH_"):]
    sw.req("PUT", "/shared", headers={"X-Container-Read": f"{demo_project}:*",
                                      "X-Container-Write": f"{demo_project}:*"})
    sw.req("PUT", "/shared/o", content=b"for demo")
    r = sw.req("GET", "/shared/o", who="demo", account=sw.accounts["admin"])
    assert r.status_code == 200 and r.content == b"for demo"
    r = sw.req("PUT", "/shared/from-demo", who="demo", account=sw.accounts["admin"],
               content=b"hi")
    assert r.status_code == 201
    # a non-owner does not see the ACLs
    head = sw.req("HEAD", "/shared", who="demo", account=sw.accounts["admin"])
    assert head.status_code == 204 and "x-container-read" not in head.headers
    assert sw.req("HEAD", "/shared").headers["x-container-read"] == f"{demo_project}:*"
    # public read
    sw.req("PUT", "/public", headers={"X-Container-Read": ".r:*"})
    sw.req("PUT", "/public/o", content=b"everyone")
    r = sw.client.get(sw.url("/public/o"))
    assert r.status_code == 200 and r.content == b"everyone"
    r = sw.client.get(sw.url("/public"))
    assert r.status_code == 401  # no .rlistings
    sw.req("POST", "/public", headers={"X-Container-Read": ".r:*,.rlistings"})
    r = sw.client.get(sw.url("/public"))
    assert r.status_code == 200 and r.text == "o\n"
    r = sw.client.put(sw.url("/public/evil"), content=b"x")
    assert r.status_code == 401
    r = sw.req("POST", "/public", headers={"X-Container-Write": ".r:*"})
    assert r.status_code == 400 and r.content == b"Referrers not allowed in write ACL: '.r:*'"
    r = sw.req("POST", "/public", headers={"X-Container-Read": ".r:"})
    assert r.status_code == 400


def test_copy_and_x_copy_from(sw: Swift) -> None:
    sw.req("PUT", "/copies")
    sw.req("PUT", "/copies/src", content=b"original",
           headers={"X-Object-Meta-A": "1", "Content-Type": "text/plain"})
    r = sw.req("PUT", "/copies/dst", headers={"X-Copy-From": "copies/src",
                                              "Content-Length": "0"})
    assert r.status_code == 201
    assert r.headers["x-copied-from"] == "copies/src"
    assert r.headers["x-copied-from-last-modified"]
    got = sw.req("GET", "/copies/dst")
    assert got.content == b"original" and got.headers["x-object-meta-a"] == "1"
    r = sw.req("COPY", "/copies/src", headers={"Destination": "copies/dst2",
                                               "X-Object-Meta-B": "2"})
    assert r.status_code == 201
    got = sw.req("GET", "/copies/dst2")
    assert got.content == b"original" and got.headers["x-object-meta-b"] == "2"
    assert got.headers["x-object-meta-a"] == "1"
    r = sw.req("PUT", "/copies/dst3", headers={"X-Copy-From": "nocontainer",
                                               "Content-Length": "0"})
    assert r.status_code == 412
    assert r.content == b"X-Copy-From header must be of the form <container name>/<object name>"
    r = sw.req("PUT", "/copies/dst3", headers={"X-Copy-From": "copies/missing",
                                               "Content-Length": "0"})
    assert r.status_code == 404


def test_info_advertises_the_pipeline(sw: Swift) -> None:
    r = sw.client.get("/object-store/info")
    assert r.status_code == 200
    info = r.json()
    assert info["swift"]["max_file_size"] == 5368709122
    assert info["swift"]["container_listing_limit"] == 10000
    assert sorted(info["tempurl"]["allowed_digests"]) == ["sha1", "sha256", "sha512"]
    assert info["slo"]["max_manifest_segments"] == 1000
    assert {"dlo", "versioned_writes", "container_quotas", "account_quotas",
            "keystoneauth"} <= set(info)
    assert sw.client.get("/object-store/healthcheck").text == "OK"


def test_account_metadata_and_totals(sw: Swift) -> None:
    r = sw.req("POST", headers={"X-Account-Meta-Owner": "ops"})
    assert r.status_code == 204
    assert sw.req("HEAD").headers["x-account-meta-owner"] == "ops"
    sw.req("PUT", "/totals")
    sw.req("PUT", "/totals/a", content=b"12345")
    sw.req("PUT", "/totals/b", content=b"123")
    sw.service.jobs.update()
    sw.service.proxy.cache._d.clear()
    head = sw.req("HEAD", "/totals")
    assert head.headers["x-container-object-count"] == "2"
    listing = {c["name"]: c for c in sw.req("GET", "?format=json").json()}
    assert listing["totals"]["count"] == 2 and listing["totals"]["bytes"] == 8
    r = sw.req("DELETE")  # keystoneauth: nobody but a reseller admin deletes an account
    assert r.status_code == 403 and r.content == FORBIDDEN


def test_large_objects_slo(sw: Swift) -> None:
    sw.req("PUT", "/segs")
    parts = [bytes([65 + i]) * 1000 for i in range(3)]
    for i, p in enumerate(parts):
        sw.req("PUT", f"/segs/s{i}", content=p)
    manifest = [{"path": f"/segs/s{i}", "etag": md5(p), "size_bytes": len(p)}
                for i, p in enumerate(parts)]
    r = sw.req("PUT", "/segs/big?multipart-manifest=put", content=json.dumps(manifest))
    assert r.status_code == 201, r.text
    whole = b"".join(parts)
    got = sw.req("GET", "/segs/big")
    assert got.status_code == 200 and got.content == whole
    slo_etag = md5("".join(md5(p) for p in parts).encode())
    assert got.headers["etag"] == f'"{slo_etag}"'
    head = sw.req("HEAD", "/segs/big")
    assert head.headers["content-length"] == "3000"
    r = sw.req("GET", "/segs/big", headers={"Range": "bytes=990-1010"})
    assert r.status_code == 206 and r.content == whole[990:1011]
    listing = {o["name"]: o for o in sw.req("GET", "/segs?format=json").json()}
    assert listing["big"]["bytes"] == 3000
    raw = sw.req("GET", "/segs/big?multipart-manifest=get").json()
    assert [s["name"] for s in raw] == ["/segs/s0", "/segs/s1", "/segs/s2"]
    # bad manifests: missing segment, wrong etag, not JSON; nothing kept
    bad = [{"path": "/segs/nope"}, {"path": "/segs/s0", "etag": "x" * 32}]
    r = sw.req("PUT", "/segs/bad?multipart-manifest=put", content=json.dumps(bad))
    assert r.status_code == 400
    assert r.content == b"Errors:\n/segs/nope, 404 Not Found\n/segs/s0, Etag Mismatch\n"
    r = sw.req("PUT", "/segs/bad?multipart-manifest=put", content=b"{nope")
    assert r.status_code == 400 and r.content == b"Manifest must be valid JSON.\n"
    demo_foreign = [{"path": "/segs/s0"}]
    r = sw.req("PUT", "/foreign?multipart-manifest=put", who="demo")  # container
    sw.req("PUT", "/mine", who="demo")
    r = sw.req("PUT", "/mine/m?multipart-manifest=put", who="demo",
               content=json.dumps(demo_foreign))
    assert r.status_code == 400
    assert r.content == b"Errors:\n/segs/s0, 404 Not Found\n"
    assert sw.req("HEAD", "/segs/bad").status_code == 404
    r = sw.req("DELETE", "/segs/big?multipart-manifest=delete")
    assert r.status_code == 200
    assert b"Number Deleted: 4\n" in r.content
    assert sw.req("GET", "/segs?format=json").json() == []


def test_large_objects_dlo(sw: Swift) -> None:
    sw.req("PUT", "/dlo")
    for i in range(3):
        sw.req("PUT", f"/dlo/part/{i:02d}", content=bytes([97 + i]) * 10)
    sw.req("PUT", "/dlo/whole", content=b"", headers={"X-Object-Manifest": "dlo/part/"})
    r = sw.req("GET", "/dlo/whole")
    assert r.status_code == 200 and r.content == b"a" * 10 + b"b" * 10 + b"c" * 10
    etag = md5("".join(md5(bytes([97 + i]) * 10) for i in range(3)).encode())
    assert r.headers["etag"] == f'"{etag}"'
    r = sw.req("GET", "/dlo/whole", headers={"Range": "bytes=8-11"})
    assert r.status_code == 206 and r.content == b"aabb"
    r = sw.req("PUT", "/dlo/bad", content=b"", headers={"X-Object-Manifest": "nocontainer"})
    assert r.status_code == 400
    assert r.content == b"X-Object-Manifest must be in the format container/prefix"


def test_versioning_stack_and_history(sw: Swift) -> None:
    sw.req("PUT", "/versions")
    sw.req("PUT", "/vc", headers={"X-Versions-Location": "versions"})
    sw.req("PUT", "/vc/o", content=b"v1")
    sw.req("PUT", "/vc/o", content=b"v2")
    sw.req("PUT", "/vc/o", content=b"v3")
    assert sw.req("GET", "/vc/o").content == b"v3"
    assert len(sw.req("GET", "/versions?format=json").json()) == 2
    assert sw.req("DELETE", "/vc/o").status_code == 204
    assert sw.req("GET", "/vc/o").content == b"v2"
    sw.req("DELETE", "/vc/o")
    assert sw.req("GET", "/vc/o").content == b"v1"
    sw.req("DELETE", "/vc/o")
    assert sw.req("GET", "/vc/o").status_code == 404
    sw.req("PUT", "/history")
    sw.req("PUT", "/hc", headers={"X-History-Location": "history"})
    sw.req("PUT", "/hc/o", content=b"h1")
    sw.req("PUT", "/hc/o", content=b"h2")
    assert sw.req("DELETE", "/hc/o").status_code == 204
    assert sw.req("GET", "/hc/o").status_code == 404
    names = sw.req("GET", "/history?format=json").json()
    assert len(names) == 3  # h1, h2 and the delete marker


def test_quotas(sw: Swift) -> None:
    sw.req("PUT", "/quota", headers={"X-Container-Meta-Quota-Bytes": "10",
                                     "X-Container-Meta-Quota-Count": "2"})
    assert sw.req("PUT", "/quota/a", content=b"12345").status_code == 201
    r = sw.req("PUT", "/quota/b", content=b"1234567")
    assert r.status_code == 413 and r.content == b"Upload exceeds quota."
    assert sw.req("PUT", "/quota/b", content=b"1").status_code == 201
    sw.service.proxy.cache._d.clear()
    r = sw.req("PUT", "/quota/c", content=b"1")
    assert r.status_code == 413
    r = sw.req("POST", "/quota", headers={"X-Container-Meta-Quota-Bytes": "abc"})
    assert r.status_code == 400 and r.content == b"Invalid bytes quota."
    r = sw.req("POST", headers={"X-Account-Meta-Quota-Bytes": "100"})
    assert r.status_code == 403  # only a reseller admin sets account quotas


def test_expiring_objects(sw: Swift) -> None:
    import time

    sw.req("PUT", "/exp")
    at = int(time.time()) + 2
    r = sw.req("PUT", "/exp/o", content=b"soon gone", headers={"X-Delete-At": str(at)})
    assert r.status_code == 201
    assert sw.req("HEAD", "/exp/o").headers["x-delete-at"] == str(at)
    r = sw.req("PUT", "/exp/later", content=b"x", headers={"X-Delete-After": "3600"})
    assert r.status_code == 201
    time.sleep(at - time.time() + 1.1)
    assert sw.req("GET", "/exp/o").status_code == 404
    stats = sw.api.client.portal.call(sw.service.jobs.expire)  # type: ignore[attr-defined]
    assert stats["expired"] == 1
    sw.service.proxy.cache._d.clear()
    assert sw.req("GET", "/exp?format=json").json()[0]["name"] == "later"
    assert sw.req("GET", "/exp/later").status_code == 200


def test_tempurl(sw: Swift) -> None:
    import hmac
    import time

    sw.req("POST", headers={"X-Account-Meta-Temp-URL-Key": "secret"})
    sw.req("PUT", "/temp")
    sw.req("PUT", "/temp/file.bin", content=b"temp data")
    path = f"/v1/{sw.accounts['admin']}/temp/file.bin"
    expires = int(time.time()) + 60
    for digest in ("sha1", "sha256", "sha512"):
        sig = hmac.new(b"secret", f"GET\n{expires}\n{path}".encode(), digest).hexdigest()
        r = sw.client.get(f"/object-store{path}?temp_url_sig={sig}&temp_url_expires={expires}")
        assert r.status_code == 200 and r.content == b"temp data"
        assert r.headers["content-disposition"].startswith('attachment; filename="file.bin"')
    sig = hmac.new(b"wrong", f"GET\n{expires}\n{path}".encode(), "sha256").hexdigest()
    r = sw.client.get(f"/object-store{path}?temp_url_sig={sig}&temp_url_expires={expires}")
    assert r.status_code == 401 and r.content == b"401 Unauthorized: Temp URL invalid\n"
    past = int(time.time()) - 10
    sig = hmac.new(b"secret", f"GET\n{past}\n{path}".encode(), "sha256").hexdigest()
    r = sw.client.get(f"/object-store{path}?temp_url_sig={sig}&temp_url_expires={past}")
    assert r.status_code == 401 and r.content == b"401 Unauthorized: Temp URL invalid\n"
    put_sig = hmac.new(b"secret", f"PUT\n{expires}\n{path}2".encode(), "sha256").hexdigest()
    r = sw.client.put(f"/object-store{path}2?temp_url_sig={put_sig}&temp_url_expires={expires}",
                      content=b"uploaded")
    assert r.status_code == 201
    assert sw.req("GET", "/temp/file.bin2").content == b"uploaded"


def test_last_write_wins_and_replica_files(sw: Swift, tmp_path: Path) -> None:
    sw.req("PUT", "/lww")
    for i in range(5):
        sw.req("PUT", "/lww/o", content=f"v{i}".encode())
    assert sw.req("GET", "/lww/o").content == b"v4"
    ring = sw.service.cluster.object_ring
    account = sw.accounts["admin"]
    part, nodes = ring.get_nodes(account, "lww", "o")
    name_hash = ring.hash(account, "lww", "o")
    for node in nodes:
        d = sw.service.cluster.devices_root / node.device / "objects" / str(part) / \
            name_hash[-3:] / name_hash
        files = sorted(p.name for p in d.iterdir())
        assert len(files) == 1 and files[0].endswith(".data")  # older versions cleaned up


def test_symlinks(sw: Swift) -> None:
    sw.req("PUT", "/links")
    sw.req("PUT", "/links/target", content=b"pointed at", headers={"Content-Type": "text/x"})
    r = sw.req("PUT", "/links/link", content=b"", headers={"X-Symlink-Target": "links/target"})
    assert r.status_code == 201
    r = sw.req("GET", "/links/link")
    assert r.status_code == 200 and r.content == b"pointed at"
    assert r.headers["content-location"].endswith("/links/target")
    raw = sw.req("GET", "/links/link?symlink=get")
    assert raw.content == b"" and raw.headers["x-symlink-target"] == "links/target"
    listing = {o["name"]: o for o in sw.req("GET", "/links?format=json").json()}
    assert listing["link"]["content_type"] == "application/symlink"
    assert listing["link"]["symlink_path"].endswith("/links/target")
    r = sw.req("PUT", "/links/bad", content=b"x", headers={"X-Symlink-Target": "links/target"})
    assert r.status_code == 400 and r.content == b"Symlink requests require a zero byte body"
    r = sw.req("PUT", "/links/bad", content=b"", headers={"X-Symlink-Target": "nolink"})
    assert r.status_code == 412
    assert r.content == (b"X-Symlink-Target header must be of the form <container name>/"
                         b"<object name>")
    sw.req("DELETE", "/links/target")
    assert sw.req("GET", "/links/link").status_code == 404


def test_bulk_delete_and_extract(sw: Swift) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("arch/a.txt", b"A"), ("arch/sub/b.txt", b"BB")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    r = sw.req("PUT", "?extract-archive=tar.gz", content=buf.getvalue())
    assert r.status_code == 200
    assert r.text == ("Number Files Created: 2\nResponse Body: \nResponse Status: 201 Created\n"
                      "Errors:\n")
    assert sw.req("GET", "/arch").text == "a.txt\nsub/b.txt\n"
    r = sw.req("PUT", "?extract-archive=tar", content=b"not a tar at all")
    assert r.status_code == 200 and "Response Status: 400 Bad Request" in r.text
    r = sw.req("POST", "?bulk-delete", content=b"/arch/a.txt\n/arch/sub/b.txt\n/arch/nope\n/arch\n",
               headers={"Accept": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"Number Deleted": 3, "Number Not Found": 1, "Response Body": "",
                        "Response Status": "200 OK", "Errors": []}
    assert sw.req("HEAD", "/arch").status_code == 404


def test_static_web(sw: Swift) -> None:
    sw.req("PUT", "/site", headers={"X-Container-Read": ".r:*,.rlistings",
                                    "X-Container-Meta-Web-Index": "index.html",
                                    "X-Container-Meta-Web-Error": "error.html"})
    sw.req("PUT", "/site/index.html", content=b"<h1>home</h1>")
    sw.req("PUT", "/site/404error.html", content=b"<h1>lost</h1>")
    sw.req("PUT", "/site/docs/a.txt", content=b"a")
    r = sw.client.get(sw.url("/site"), follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"].endswith("/site/")
    r = sw.client.get(sw.url("/site/"))
    assert r.status_code == 200 and r.content == b"<h1>home</h1>"
    r = sw.client.get(sw.url("/site/missing"))
    assert r.status_code == 404 and r.content == b"<h1>lost</h1>"
    sw.req("POST", "/site", headers={"X-Container-Meta-Web-Listings": "true",
                                     "X-Container-Meta-Web-Listings-Css": "s.css"})
    r = sw.client.get(sw.url("/site/docs/"))
    assert r.status_code == 200 and '<a href="a.txt">a.txt</a>' in r.text
    assert '<link rel="stylesheet" type="text/css" href="s.css" />' in r.text
    # the owner with a token gets the plain API
    assert sw.req("GET", "/site").text == "404error.html\ndocs/a.txt\nindex.html\n"


def test_formpost(sw: Swift) -> None:
    import hmac
    import time

    sw.req("POST", headers={"X-Account-Meta-Temp-URL-Key": "secret"})
    sw.req("PUT", "/forms")
    path = f"/v1/{sw.accounts['admin']}/forms/up/"
    expires = int(time.time()) + 60
    sig = hmac.new(b"secret", f"{path}\n\n1024\n2\n{expires}".encode(), "sha256").hexdigest()

    def form(signature: str, exp: int) -> bytes:
        fields = {"max_file_size": "1024", "max_file_count": "2", "expires": str(exp),
                  "signature": signature}
        out = b""
        for k, v in fields.items():
            out += (f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n').encode()
        out += (b'--B\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
                b"Content-Type: text/plain\r\n\r\nform data\r\n--B--\r\n")
        return out

    url = f"/object-store{path}"
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    r = sw.client.post(url, content=form(sig, expires), headers=headers)
    assert r.status_code == 201 and r.content == b"201 Created"
    assert sw.req("GET", "/forms/up/a.txt").content == b"form data"
    r = sw.client.post(url, content=form("0" * 64, expires), headers=headers)
    assert r.status_code == 401
    assert r.content == b"FormPost: Invalid Signature"
    old = int(time.time()) - 5
    old_sig = hmac.new(b"secret", f"{path}\n\n1024\n2\n{old}".encode(), "sha256").hexdigest()
    r = sw.client.post(url, content=form(old_sig, old), headers=headers)
    assert r.status_code == 401 and r.content == b"FormPost: Form Expired"


def test_cors(sw: Swift) -> None:
    sw.req("PUT", "/cors", headers={
        "X-Container-Meta-Access-Control-Allow-Origin": "http://good.example",
        "X-Container-Meta-Access-Control-Max-Age": "60", "X-Container-Read": ".r:*"})
    sw.req("PUT", "/cors/o", content=b"shared", headers={"X-Object-Meta-Color": "red"})
    pre = {"Origin": "http://good.example", "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "x-auth-token"}
    r = sw.client.options(sw.url("/cors/o"), headers=pre)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://good.example"
    assert r.headers["access-control-max-age"] == "60"
    assert r.headers["access-control-allow-headers"] == "x-auth-token"
    r = sw.client.options(sw.url("/cors/o"), headers={**pre, "Origin": "http://evil.example"})
    assert r.status_code == 401
    r = sw.client.get(sw.url("/cors/o"), headers={"Origin": "http://good.example"})
    assert r.headers["access-control-allow-origin"] == "http://good.example"
    assert "x-object-meta-color" in r.headers["access-control-expose-headers"]
    r = sw.client.get(sw.url("/cors/o"), headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_post_content_type_updates_the_listing(sw: Swift) -> None:
    sw.req("PUT", "/retype")
    sw.req("PUT", "/retype/o", content=b"abc", headers={"Content-Type": "text/old"})
    before = sw.req("GET", "/retype?format=json").json()[0]
    put_time = sw.req("HEAD", "/retype/o").headers["x-timestamp"]
    r = sw.req("POST", "/retype/o", headers={"Content-Type": "text/new; charset=utf-8"})
    assert r.status_code == 202
    after = sw.req("GET", "/retype?format=json").json()[0]
    assert after["content_type"] == "text/new;charset=utf-8"  # as Swift lists parameters
    assert (after["bytes"], after["hash"]) == (3, md5(b"abc"))
    assert after["last_modified"] > before["last_modified"]  # the POST's time
    # a later POST without a type keeps the type the earlier POST set
    sw.req("POST", "/retype/o", headers={"X-Object-Meta-A": "1"})
    head = sw.req("HEAD", "/retype/o")
    assert head.headers["content-type"] == "text/new; charset=utf-8"
    assert head.headers["x-object-meta-a"] == "1"
    assert sw.req("GET", "/retype?format=json").json()[0]["content_type"] == \
        "text/new;charset=utf-8"
    # the object's own time says when it last changed: the last POST
    assert float(head.headers["x-timestamp"]) > float(put_time)


def test_post_to_a_large_object_keeps_it_one(sw: Swift) -> None:
    sw.req("PUT", "/postslo")
    sw.req("PUT", "/postslo/s1", content=b"a" * 10)
    manifest = json.dumps([{"path": "/postslo/s1"}, {"path": "/postslo/s1"}]).encode()
    assert sw.req("PUT", "/postslo/m?multipart-manifest=put", content=manifest).status_code == 201
    r = sw.req("POST", "/postslo/m", headers={"Content-Type": "text/big"})
    assert r.status_code == 202
    r = sw.req("GET", "/postslo/m")
    assert r.content == b"a" * 20 and r.headers["content-type"] == "text/big"
    entry = next(e for e in sw.req("GET", "/postslo?format=json").json() if e["name"] == "m")
    assert (entry["bytes"], entry["content_type"]) == (20, "text/big")
    assert entry["slo_etag"] == r.headers["etag"]
    r = sw.req("POST", "/postslo/s1", headers={"X-Static-Large-Object": "True"})
    assert r.status_code == 400
    assert r.content == (b"X-Static-Large-Object is a reserved header. To create a static "
                         b"large object add query param multipart-manifest=put.")
    r = sw.req("PUT", "/postslo/fake", content=b"[]", headers={"X-Static-Large-Object": "True"})
    assert r.status_code == 400
    assert sw.req("HEAD", "/postslo/fake").status_code == 404


def test_static_symlinks_and_their_errors(sw: Swift) -> None:
    sw.req("PUT", "/static")
    sw.req("PUT", "/static/t a", content=b"target", headers={"Content-Type": "text/t"})
    etag = md5(b"target")
    r = sw.req("PUT", "/static/link", headers={"X-Symlink-Target": "static/t%20a",
                                               "X-Symlink-Target-Etag": etag})
    assert r.status_code == 201 and "x-symlink-target" not in r.headers
    r = sw.req("GET", "/static/link")
    assert r.content == b"target" and r.headers["content-location"].endswith("/static/t%20a")
    r = sw.req("HEAD", "/static/link?symlink=get")
    assert (r.headers["x-symlink-target-etag"], r.headers["x-symlink-target-bytes"],
            r.headers["content-type"]) == (etag, "6", "text/t")
    entry = next(e for e in sw.req("GET", "/static?format=json").json() if e["name"] == "link")
    assert (entry["symlink_etag"], entry["symlink_bytes"]) == (etag, 6)
    assert entry["symlink_path"] == f"/v1/{sw.accounts['admin']}/static/t%20a"
    r = sw.req("POST", "/static/link", headers={"X-Object-Meta-A": "1"}, follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == f"/object-store/v1/{sw.accounts['admin']}/static/t%20a"
    assert r.headers["x-symlink-target-etag"] == etag
    assert sw.req("HEAD", "/static/link?symlink=get").headers["x-object-meta-a"] == "1"

    def bad(headers: dict[str, str], status: int, body: bytes, name: str = "bad") -> None:
        r = sw.req("PUT", f"/static/{name}", headers=headers)
        assert (r.status_code, r.content, r.headers["content-type"]) == (
            status, body, "text/plain")
        assert sw.req("HEAD", f"/static/{name}").status_code == 404

    bad({"X-Symlink-Target": "static/t a", "X-Symlink-Target-Etag": "abc"}, 409,
        f"Object Etag '{etag}' does not match X-Symlink-Target-Etag header 'abc'".encode())
    bad({"X-Symlink-Target": "static/nope", "X-Symlink-Target-Etag": "abc"}, 409,
        b"X-Symlink-Target does not exist")
    bad({"X-Symlink-Target": "static/t a", "X-Symlink-Target-Etag": "a;b"}, 400,
        b"Bad X-Symlink-Target-Etag format")
    bad({"X-Symlink-Target": "static/self"}, 400, b"Symlink cannot target itself", "self")
    r = sw.req("POST", "/static/t a", headers={"X-Symlink-Target": "static/x"})
    assert r.status_code == 400 and r.content == b"A PUT request is required to set a symlink target"
    sw.req("PUT", "/static/l1", headers={"X-Symlink-Target": "static/l2"})
    sw.req("PUT", "/static/l2", headers={"X-Symlink-Target": "static/l1"})
    r = sw.req("GET", "/static/l1")
    assert r.status_code == 409
    assert r.content == b"Too many levels of symbolic links, maximum allowed is 2"
    assert sw.client.get("/object-store/info").json()["symlink"] == {
        "symloop_max": 2, "static_links": True}
