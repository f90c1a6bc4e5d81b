"""Object versioning the new way (``X-Versions-Enabled``), through the ASGI app:
what a client sees, as Swift 2.38's object_versioning middleware answers it
(statuses, headers and bodies compared with a real Swift run side by side)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from onestack.objectstore.middleware.versions import (
    ObjectVersions,
    parse_version_object,
    version_object,
    versions_container,
)
from tests.api.objectstore_helpers import Swift, make_swift

DELETE_MARKER = "application/x-deleted;swift_versions_deleted=1"
NOT_FOUND = b"<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
FORBIDDEN = b"<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>"
HTML = "text/html; charset=UTF-8"


@pytest.fixture(scope="module")
def sw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swift]:
    yield from make_swift(tmp_path_factory.mktemp("versioning") / "state")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def versions(sw: Swift, container: str, query: str = "") -> list[dict[str, Any]]:
    r = sw.req("GET", f"/{container}?versions{query}")
    assert r.status_code == 200, r.content
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    out: list[dict[str, Any]] = r.json()
    return out


def put(sw: Swift, path: str, data: bytes, **headers: str) -> str:
    r = sw.req("PUT", path, content=data, headers=headers)
    assert r.status_code == 201, r.content
    assert r.headers["etag"] == md5(data)
    version_id: str = r.headers["x-object-version-id"]
    return version_id


def test_enable_put_overwrite_read_and_list(sw: Swift) -> None:
    r = sw.req("PUT", "/docs", headers={"X-Versions-Enabled": "true"})
    assert r.status_code == 201
    head = sw.req("HEAD", "/docs")
    assert head.headers["x-versions-enabled"] == "True"
    v1 = put(sw, "/docs/report", b"first", **{"Content-Type": "text/one", "X-Object-Meta-N": "1"})
    v2 = put(sw, "/docs/report", b"second!", **{"Content-Type": "text/plain; charset=utf-8"})
    assert v1 < v2

    r = sw.req("GET", "/docs/report")
    assert r.status_code == 200 and r.content == b"second!"
    assert r.headers["x-object-version-id"] == v2
    assert r.headers["content-location"].endswith(f"/docs/report?version-id={v2}")
    assert "x-object-meta-n" not in r.headers  # the new version's metadata only
    r = sw.req("GET", f"/docs/report?version-id={v1}")
    assert r.status_code == 200 and r.content == b"first"
    assert r.headers["x-object-version-id"] == v1
    assert r.headers["content-type"] == "text/one" and r.headers["x-object-meta-n"] == "1"
    r = sw.req("HEAD", "/docs/report?symlink=get")
    assert r.headers["x-symlink-target"] == f"docs/report?version-id={v2}"
    assert r.headers["x-symlink-target-etag"] == md5(b"second!")
    assert r.headers["x-symlink-target-bytes"] == "7"

    # the listing shows the current version's size and etag; its bytes count every version
    listing = sw.req("GET", "/docs?format=json").json()
    assert [(o["name"], o["bytes"], o["hash"], o["content_type"], o["version_symlink"])
            for o in listing] == [("report", 7, md5(b"second!"), "text/plain", True)]
    assert listing[0]["symlink_path"].endswith(f"/docs/report?version-id={v2}")
    xml = sw.req("GET", "/docs?format=xml").text
    assert f"<hash>{md5(b'second!')}</hash><bytes>7</bytes>" in xml
    assert sw.req("GET", "/docs").text == "report\n"
    head = sw.req("HEAD", "/docs")
    assert head.headers["x-container-object-count"] == "1"
    assert head.headers["x-container-bytes-used"] == "12"

    listed = versions(sw, "docs")
    assert [(v["name"], v["version_id"], v["is_latest"], v["bytes"], v["content_type"])
            for v in listed] == [("report", v2, True, 7, "text/plain;charset=utf-8"),
                                 ("report", v1, False, 5, "text/one")]


def test_delete_writes_markers_and_versions_stay(sw: Swift) -> None:
    sw.req("PUT", "/del", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/del/o", b"data")
    r = sw.req("DELETE", "/del/o")
    assert r.status_code == 204 and r.content == b""
    marker = r.headers["x-object-version-id"]
    assert marker > v1
    r = sw.req("DELETE", "/del/o")
    assert r.status_code == 404 and r.content == NOT_FOUND
    second_marker = r.headers["x-object-version-id"]
    r = sw.req("GET", "/del/o")
    assert r.status_code == 404 and r.headers["x-object-version-id"] == "null"
    listed = versions(sw, "del")
    assert [(v["version_id"], v["is_latest"], v["content_type"]) for v in listed] == [
        (second_marker, True, DELETE_MARKER), (marker, False, DELETE_MARKER),
        (v1, False, "application/octet-stream")]
    r = sw.req("GET", f"/del/o?version-id={marker}")
    assert r.status_code == 404 and r.content == NOT_FOUND
    assert r.headers["content-type"] == DELETE_MARKER
    assert r.headers["x-object-version-id"] == marker
    assert sw.req("GET", f"/del/o?version-id={v1}").content == b"data"
    assert sw.req("GET", "/del?format=json").json() == []


def test_version_id_delete_and_restore(sw: Swift) -> None:
    sw.req("PUT", "/vid", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/vid/o", b"one")
    v2 = put(sw, "/vid/o", b"two")
    v3 = put(sw, "/vid/o", b"three")

    r = sw.req("PUT", f"/vid/o?version-id={v1}", content=b"x")
    assert r.status_code == 400 and r.content == b"PUT version-id requests require a zero byte body"
    assert r.headers["content-type"] == "text/plain"
    r = sw.req("PUT", "/vid/o?version-id=1234567890.12345", content=b"")
    assert r.status_code == 404 and r.content == b"The specified version does not exist"
    r = sw.req("PUT", f"/vid/o?version-id={v1}", content=b"")
    assert r.status_code == 201
    assert r.headers["x-object-version-id"] == v1 and r.headers["etag"] == md5(b"one")
    assert sw.req("GET", "/vid/o").content == b"one"
    assert [v["is_latest"] for v in versions(sw, "vid")] == [False, False, True]

    r = sw.req("DELETE", f"/vid/o?version-id={v2}")  # an old one: the current stays
    assert r.status_code == 204
    assert r.headers["x-object-version-id"] == v2
    assert r.headers["x-object-current-version-id"] == v1
    assert sw.req("GET", "/vid/o").content == b"one"
    r = sw.req("DELETE", f"/vid/o?version-id={v1}")  # the current one: the link goes too
    assert r.status_code == 204 and r.headers["x-object-current-version-id"] == "null"
    assert sw.req("GET", "/vid/o").status_code == 404
    assert [v["version_id"] for v in versions(sw, "vid")] == [v3]


def test_disabled_versioning_writes_null_versions(sw: Swift) -> None:
    sw.req("PUT", "/sus", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/sus/o", b"versioned")
    r = sw.req("POST", "/sus", headers={"X-Versions-Enabled": "false"})
    assert r.status_code == 204
    assert sw.req("HEAD", "/sus").headers["x-versions-enabled"] == "False"
    r = sw.req("PUT", "/sus/o", content=b"plain")
    assert r.status_code == 201 and "x-object-version-id" not in r.headers
    r = sw.req("GET", "/sus/o?version-id=null")
    assert r.content == b"plain" and r.headers["x-object-version-id"] == "null"
    listed = versions(sw, "sus")
    assert [(v["version_id"], v["is_latest"]) for v in listed] == [("null", True), (v1, False)]
    # enabled again: the null version is kept as a version before it is overwritten
    sw.req("POST", "/sus", headers={"X-Versions-Enabled": "true"})
    v3 = put(sw, "/sus/o", b"again")
    listed = versions(sw, "sus")
    assert [v["version_id"] for v in listed][0] == v3
    assert len(listed) == 3
    contents = {sw.req("GET", f"/sus/o?version-id={v['version_id']}").content for v in listed}
    assert contents == {b"versioned", b"plain", b"again"}


def test_post_updates_link_and_version_without_a_new_version(sw: Swift) -> None:
    sw.req("PUT", "/post", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/post/o", b"body", **{"Content-Type": "text/old"})
    r = sw.req("POST", "/post/o", headers={"X-Object-Meta-Color": "red",
                                           "Content-Type": "text/new"})
    assert r.status_code == 202
    r = sw.req("HEAD", "/post/o")
    assert r.headers["x-object-meta-color"] == "red" and r.headers["content-type"] == "text/new"
    r = sw.req("HEAD", f"/post/o?version-id={v1}")
    assert r.headers["x-object-meta-color"] == "red"
    listed = versions(sw, "post")
    assert len(listed) == 1 and listed[0]["content_type"] == "text/new"
    assert sw.req("GET", "/post?format=json").json()[0]["content_type"] == "text/new"


def test_listing_pages_markers_and_prefixes(sw: Swift) -> None:
    sw.req("PUT", "/pages", headers={"X-Versions-Enabled": "true"})
    ids: dict[str, list[str]] = {}
    for name in ("a", "b/x", "c"):
        ids[name] = [put(sw, f"/pages/{name}", f"{name}{i}".encode()) for i in range(2)]
    names = [(v["name"], v["version_id"]) for v in versions(sw, "pages")]
    assert names == [("a", ids["a"][1]), ("a", ids["a"][0]), ("b/x", ids["b/x"][1]),
                     ("b/x", ids["b/x"][0]), ("c", ids["c"][1]), ("c", ids["c"][0])]
    assert [(v["name"], v["version_id"]) for v in versions(sw, "pages", "&limit=3")] == names[:3]
    page = versions(sw, "pages", f"&marker=a&version_marker={ids['a'][1]}")
    assert [(v["name"], v["version_id"]) for v in page] == names[1:]
    assert [v["name"] for v in versions(sw, "pages", "&marker=a")] == ["b/x", "b/x", "c", "c"]
    assert [v.get("subdir", v.get("name")) for v in versions(sw, "pages", "&delimiter=/")] == [
        "a", "a", "b/", "c", "c"]
    assert [v["name"] for v in versions(sw, "pages", "&prefix=c")] == ["c", "c"]
    assert [v["name"] for v in versions(sw, "pages", "&reverse=on")] == [
        "c", "c", "b/x", "b/x", "a", "a"]


@pytest.mark.parametrize(("query", "headers", "status", "body", "ctype"), [
    ("?versions&format=xml", {}, 406,
     b"<html><h1>Not Acceptable</h1><p>The resource is not available in a format acceptable "
     b"to your browser.</p></html>", HTML),
    ("?versions", {"Accept": "text/plain"}, 406,
     b"<html><h1>Not Acceptable</h1><p>The resource is not available in a format acceptable "
     b"to your browser.</p></html>", HTML),
    ("?versions&version_marker=null", {}, 400, b"version_marker param requires marker", HTML),
    ("?versions&marker=a&version_marker=abc", {}, 400, b"invalid version_marker param", HTML),
    ("?versions&delimiter=1", {}, 400, b"invalid delimiter param", HTML),
])
def test_bad_versions_listings(sw: Swift, query: str, headers: dict[str, str], status: int,
                               body: bytes, ctype: str) -> None:
    sw.req("PUT", "/badlist", headers={"X-Versions-Enabled": "true"})
    r = sw.req("GET", f"/badlist{query}", headers=headers)
    assert (r.status_code, r.content, r.headers["content-type"]) == (status, body, ctype)


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    ("POST", "/badv/o?version-id=1", 400, b"POST to a specific version is not allowed"),
    ("GET", "/badv/o?version-id=abc", 400, b"Invalid version parameter"),
    ("DELETE", "/badv/o?version-id=-1", 400, b"Invalid version parameter"),
    ("PUT", "/badv/o?version-id=null", 400, b"Invalid version parameter"),
    ("GET", "/plain/o?version-id=1234567890.12345", 400,
     b"version-aware operations require that the container is versioned"),
])
def test_bad_version_ids(sw: Swift, method: str, path: str, status: int, body: bytes) -> None:
    sw.req("PUT", "/badv", headers={"X-Versions-Enabled": "true"})
    sw.req("PUT", "/plain")
    r = sw.req(method, path, content=b"")
    assert (r.status_code, r.content, r.headers["content-type"]) == (status, body, HTML)


def test_legacy_modes_cannot_be_mixed_in(sw: Swift) -> None:
    sw.req("PUT", "/legacy", headers={"X-History-Location": "archive"})
    for value in ("true", "false"):
        r = sw.req("POST", "/legacy", headers={"X-Versions-Enabled": value})
        assert r.status_code == 400
        assert r.content == (b"Cannot enable object versioning on a container that is already "
                             b"using the legacy versioned writes feature.")
        assert r.headers["content-type"] == HTML
    assert "x-versions-enabled" not in sw.req("HEAD", "/legacy").headers
    # a ?versions listing of any container shows its objects as null versions
    sw.req("PUT", "/legacy/o", content=b"x")
    assert [(v["name"], v["version_id"], v["is_latest"]) for v in versions(sw, "legacy")] == [
        ("o", "null", True)]
    r = sw.req("PUT", "/nolegacy", headers={"X-Versions-Enabled": "true",
                                            "X-Versions-Location": "other"})
    assert r.status_code == 201  # both at once: Swift's legacy filter is applied first


PRECONDITION = (b"<html><h1>Precondition Failed</h1><p>A precondition for this request was not "
                b"met.</p></html>")


def test_legacy_location_set_later_on_a_versioned_container(sw: Swift) -> None:
    """Swift takes a legacy location on a container already versioned the new way;
    the legacy filter (above) then archives first: to a missing container that is
    a bare 412 for every write, and nothing changes."""
    sw.req("PUT", "/later", headers={"X-Versions-Enabled": "true"})
    first = put(sw, "/later/o", b"one")
    r = sw.req("POST", "/later", headers={"X-History-Location": "nowhere"})
    assert r.status_code == 204
    for method, query, body in (("PUT", "", b"two"), ("PUT", f"?version-id={first}", b""),
                                ("DELETE", "", b"")):
        r = sw.req(method, "/later/o" + query, content=body)
        assert (r.status_code, r.content, r.headers["content-type"]) == (412, PRECONDITION, HTML)
    r = sw.req("GET", "/later/o")
    assert r.content == b"one" and r.headers["x-object-version-id"] == first
    assert [v["version_id"] for v in versions(sw, "later")] == [first]
    # the archive container made, still: the link to a version cannot be archived
    sw.req("PUT", "/nowhere")
    r = sw.req("PUT", "/later/o", content=b"two")
    assert (r.status_code, r.content) == (412, PRECONDITION)
    assert sw.req("GET", "/later/o").content == b"one"
    assert sw.req("GET", "/nowhere").status_code == 204
    # a new object has no current version to archive: it is written
    r = sw.req("PUT", "/later/new", content=b"x")
    assert r.status_code == 201 and "x-object-version-id" in r.headers


def test_deleting_a_versioned_container(sw: Swift) -> None:
    sw.req("PUT", "/gone", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/gone/o", b"x")
    assert sw.req("DELETE", "/gone/o").status_code == 204
    r = sw.req("DELETE", "/gone")
    assert r.status_code == 409 and r.content == b"Delete all versions before deleting container."
    for v in versions(sw, "gone"):
        assert sw.req("DELETE", f"/gone/o?version-id={v['version_id']}").status_code == 204
    assert sw.req("DELETE", "/gone").status_code == 204
    assert sw.req("HEAD", "/gone").status_code == 404
    # the versions container went with it
    from onestack.objectstore.http import Request

    async def hidden_status() -> int:
        info = await sw.service.proxy.container_info(Request("HEAD", "/"), sw.accounts["admin"],
                                                     versions_container("gone"), fresh=True)
        return info.status

    import anyio

    assert anyio.run(hidden_status) == 404
    r = sw.req("GET", f"/gone/o?version-id={v1}")
    assert r.status_code == 400  # no longer a versioned container


def test_hidden_container_is_not_listed_but_its_bytes_count(sw: Swift) -> None:
    sw.req("PUT", "/acct", headers={"X-Versions-Enabled": "true"})
    put(sw, "/acct/o", b"12345")
    put(sw, "/acct/o", b"123")
    sw.service.jobs.update()  # the containers' totals reach the account
    entries = sw.req("GET", "?format=json").json()
    names = [e["name"] for e in entries]
    assert "acct" in names and not any("\x00" in n for n in names)
    entry = next(e for e in entries if e["name"] == "acct")
    assert entry["bytes"] == 8 and entry["storage_policy"] == "Policy-0"
    assert "\x00" not in sw.req("GET", "").text
    assert "<name>acct</name>" in sw.req("GET", "?format=xml").text


def test_only_the_owner_reads_versions(sw: Swift) -> None:
    demo_project = sw.accounts["demo"][len("AUTH_"):]
    sw.req("PUT", "/acl", headers={"X-Versions-Enabled": "true",
                                   "X-Container-Read": f"{demo_project}:*"})
    v1 = put(sw, "/acl/o", b"shared")
    admin = sw.accounts["admin"]
    r = sw.req("GET", "/acl/o", who="demo", account=admin)
    assert r.status_code == 200 and r.content == b"shared"
    r = sw.req("GET", f"/acl/o?version-id={v1}", who="demo", account=admin)
    assert r.status_code == 403 and r.content == FORBIDDEN
    r = sw.req("PUT", "/acl/o", who="demo", account=admin, content=b"no")
    assert r.status_code == 403
    assert [v["version_id"] for v in versions(sw, "acl")] == [v1]  # nothing was kept


def test_writers_by_acl_and_versions(sw: Swift) -> None:
    """Another project's user with the write ACL (compared with Swift 2.38.3):
    writes versions, reads and deletes none of the older ones, and deleting the
    current version by its id deletes its link and its data together."""
    demo_project = sw.accounts["demo"][len("AUTH_"):]
    admin = sw.accounts["admin"]
    sw.req("PUT", "/aclw", headers={"X-Versions-Enabled": "true",
                                    "X-Container-Read": f"{demo_project}:*",
                                    "X-Container-Write": f"{demo_project}:*"})
    v1 = put(sw, "/aclw/o", b"one")
    r = sw.req("PUT", "/aclw/o", who="demo", account=admin, content=b"two")
    assert r.status_code == 201
    v2 = r.headers["x-object-version-id"]
    r = sw.req("GET", "/aclw?versions", who="demo", account=admin)
    assert r.status_code == 200 and [v["version_id"] for v in r.json()] == [v2, v1]
    r = sw.req("DELETE", f"/aclw/o?version-id={v1}", who="demo", account=admin)
    assert (r.status_code, r.content) == (403, FORBIDDEN)
    assert r.headers["x-object-current-version-id"] == v2
    r = sw.req("DELETE", f"/aclw/o?version-id={v2}", who="demo", account=admin)
    assert r.status_code == 204
    assert (r.headers["x-object-version-id"], r.headers["x-object-current-version-id"]) == (
        v2, "null")
    assert sw.req("GET", "/aclw/o").status_code == 404
    assert [v["version_id"] for v in versions(sw, "aclw")] == [v1]


def test_large_objects_and_copies_in_a_versioned_container(sw: Swift) -> None:
    sw.req("PUT", "/segs")
    seg = b"s" * 1024
    sw.req("PUT", "/segs/1", content=seg)
    sw.req("PUT", "/big", headers={"X-Versions-Enabled": "true"})
    manifest = json.dumps([{"path": "/segs/1"}, {"path": "/segs/1"}]).encode()
    r = sw.req("PUT", "/big/slo?multipart-manifest=put", content=manifest)
    assert r.status_code == 201
    slo_version = r.headers["x-object-version-id"]
    assert sw.req("GET", "/big/slo").content == seg * 2
    entry = sw.req("GET", "/big?format=json").json()[0]
    assert entry["bytes"] == 2048 and entry["slo_etag"].startswith('"')
    put(sw, "/big/slo", b"small now")
    r = sw.req("GET", f"/big/slo?version-id={slo_version}")
    assert r.status_code == 200 and r.content == seg * 2
    # COPY of an old version makes a new object from it
    r = sw.req("COPY", f"/big/slo?version-id={slo_version}",
               headers={"Destination": "segs/copied"})
    assert r.status_code == 201
    assert sw.req("GET", "/segs/copied").content == seg * 2


def test_deleting_one_version_of_a_large_object_with_its_segments(sw: Swift) -> None:
    """``DELETE ?version-id=<v>&multipart-manifest=delete`` deletes that version's
    manifest and its segments; the current version stays (as Swift does)."""
    sw.req("PUT", "/vsegs")
    sw.req("PUT", "/vsegs/a", content=b"a" * 10)
    sw.req("PUT", "/vsegs/b", content=b"b" * 5)
    sw.req("PUT", "/vslo", headers={"X-Versions-Enabled": "true"})
    manifest = json.dumps([{"path": "/vsegs/a"}, {"path": "/vsegs/b"}]).encode()
    r = sw.req("PUT", "/vslo/m?multipart-manifest=put", content=manifest)
    old = r.headers["x-object-version-id"]
    new = put(sw, "/vslo/m", b"plain")
    r = sw.req("DELETE", f"/vslo/m?version-id={old}&multipart-manifest=delete")
    assert r.status_code == 200
    assert r.content == (b"Number Deleted: 3\nNumber Not Found: 0\nResponse Body: \n"
                         b"Response Status: 200 OK\nErrors:\n")
    assert sw.req("GET", "/vsegs").status_code == 204
    assert [v["version_id"] for v in versions(sw, "vslo")] == [new]
    assert sw.req("GET", "/vslo/m").content == b"plain"


def test_expiring_link_keeps_its_version(sw: Swift) -> None:
    sw.req("PUT", "/exp", headers={"X-Versions-Enabled": "true"})
    v1 = put(sw, "/exp/o", b"soon gone", **{"X-Delete-After": "600"})
    r = sw.req("HEAD", "/exp/o?symlink=get")
    assert "x-delete-at" in r.headers
    r = sw.req("HEAD", f"/exp/o?version-id={v1}")
    assert r.status_code == 200 and "x-delete-at" not in r.headers


def test_in_process_api(sw: Swift) -> None:
    """What S3's bucket versioning calls: the same answers as the Swift API."""
    from onestack.objectstore.http import Request

    app = sw.service.pipeline()
    caller = Request("GET", "/", headers={"X-Auth-Token": sw.api.token("admin")})
    api = ObjectVersions(app)
    admin = sw.accounts["admin"]
    sw.req("PUT", "/api")

    async def scenario() -> None:
        assert await api.status(caller, admin, "api") is None
        r = await api.set_enabled(caller, admin, "api", True)
        assert r.status == 204
        assert await api.status(caller, admin, "api") is True
        v1 = put(sw, "/api/k", b"v1")
        v2 = put(sw, "/api/k", b"v2")
        found, subdirs = await api.list_versions(caller, admin, "api")
        assert [(v.name, v.version_id, v.is_latest) for v in found] == [
            ("k", v2, True), ("k", v1, False)] and subdirs == []
        r = await api.get(caller, admin, "api", "k", v1)
        assert r.status == 200 and await r.read() == b"v1"
        r = await api.delete(caller, admin, "api", "k", v2)
        assert r.status == 204
        r.close()
        found, _ = await api.list_versions(caller, admin, "api")
        assert [v.version_id for v in found] == [v1]
        assert (await api.set_enabled(caller, admin, "api", False)).status == 204
        assert await api.status(caller, admin, "api") is False

    import anyio

    anyio.run(scenario)


def test_version_names() -> None:
    vid = "1700000000.12345"
    name = version_object("a/b", vid)
    assert name == "\x00a/b\x008299999999.87654"
    assert parse_version_object(name) == ("a/b", vid)
    assert parse_version_object("plain") == ("plain", None)
    assert version_object("o", "1700000000.2") < version_object("o", "1700000000.1")
    assert versions_container("c") == "\x00versions\x00c"


def test_legacy_versions_of_a_symlink_are_symlinks(sw: Swift) -> None:
    """X-Versions-Location archives a symlink as the link (not its target's data)
    and a DELETE brings the link back, as Swift's legacy filter does."""
    sw.req("PUT", "/arch3")
    sw.req("PUT", "/leg3", headers={"X-Versions-Location": "arch3"})
    sw.req("PUT", "/leg3/target", content=b"T")
    r = sw.req("PUT", "/leg3/link", headers={"X-Symlink-Target": "leg3/target"}, content=b"")
    assert r.status_code == 201
    assert sw.req("PUT", "/leg3/link", content=b"new").status_code == 201
    [archived] = sw.req("GET", "/arch3?format=json").json()
    assert (archived["bytes"], archived["hash"], archived["content_type"]) == (
        0, md5(b""), "application/symlink")
    r = sw.req("GET", f"/arch3/{archived['name']}?symlink=get")
    assert r.status_code == 200 and r.headers["x-symlink-target"] == "leg3/target"
    assert sw.req("DELETE", "/leg3/link").status_code == 204
    r = sw.req("GET", "/leg3/link?symlink=get")
    assert r.status_code == 200 and r.headers["x-symlink-target"] == "leg3/target"
    assert sw.req("GET", "/leg3/link").content == b"T"
    assert sw.req("GET", "/arch3").status_code == 204
