"""Image v2 metadata API: versions, create/show/update/delete, tags, lists, schemas."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from tests.api.conftest import Api

V2 = "/image/v2"
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}


def project_of(api: Api, who: str) -> str:
    pid = api.cloud.validator.validate(api.token(who)).project_id  # type: ignore[union-attr]
    assert pid
    return pid


def create(api: Api, who: str = "admin", expect: int = 201, **body: Any) -> dict[str, Any]:
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    r = api.post(f"{V2}/images", who, json=body)
    assert r.status_code == expect, r.text
    return dict(r.json())


def patch(api: Api, image_id: str, ops: list[dict[str, Any]], who: str = "admin") -> Any:
    return api.patch(f"{V2}/images/{image_id}", who, json=ops, headers=PATCH)


def assert_glance_error(r: Any, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"].startswith(str(status)) and body["message"] and body["title"]


# --------------------------------------------------------------------------- versions


def test_version_discovery(api: Api) -> None:
    r = api.client.get("/image")
    assert r.status_code == 300
    ids = [v["id"] for v in r.json()["versions"]]
    assert "v2.0" in ids and ids[0].startswith("v2.")
    current = [v for v in r.json()["versions"] if v["status"] == "CURRENT"]
    assert len(current) == 1 and current[0]["links"][0]["href"].endswith("/image/v2/")
    assert api.client.get("/image/versions").status_code == 200
    assert api.client.get("/image/v2").status_code == 300


def test_requests_need_a_token(api: Api) -> None:
    """The 401 comes from keystonemiddleware in front of Glance: Keystone's shape."""
    for headers in ({}, {"X-Auth-Token": "bogus"}):
        r = api.client.get(f"{V2}/images", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                      "message": "The request you have made requires authentication."}}
        assert r.headers["WWW-Authenticate"] == 'Keystone uri="http://127.0.0.1:8800/identity"'


# --------------------------------------------------------------------------- create


def test_create_defaults(api: Api) -> None:
    img = create(api, name="defaults")
    assert img["status"] == "queued" and img["visibility"] == "shared"
    assert img["protected"] is False and img["os_hidden"] is False
    assert img["size"] is None and img["checksum"] is None and img["virtual_size"] is None
    assert img["min_disk"] == 0 and img["min_ram"] == 0 and img["tags"] == []
    assert img["owner"] == project_of(api, "admin")
    assert img["self"] == f"/v2/images/{img['id']}" and img["file"] == f"/v2/images/{img['id']}/file"
    assert img["schema"] == "/v2/schemas/image"
    assert "locations" not in img and "direct_url" not in img
    uuid.UUID(img["id"])
    assert img["created_at"].endswith("Z")


def test_create_announces_import_methods(api: Api) -> None:
    r = api.post(f"{V2}/images", json={"name": "announce"})
    assert r.status_code == 201
    assert r.headers["OpenStack-image-import-methods"] == "glance-direct"
    assert r.headers["Location"].endswith(f"/image/v2/images/{r.json()['id']}")


def test_create_with_everything(api: Api) -> None:
    image_id = str(uuid.uuid4())
    img = create(
        api, id=image_id, name="full", visibility="private", protected=True, min_disk=2,
        min_ram=512, tags=["a", "b", "a"], hw_disk_bus="virtio", os_hidden=True,
    )
    assert img["id"] == image_id and img["tags"] == ["a", "b"] and img["hw_disk_bus"] == "virtio"
    assert img["protected"] is True and img["os_hidden"] is True and img["min_ram"] == 512
    assert api.get(f"{V2}/images/{image_id}").json()["hw_disk_bus"] == "virtio"
    # the same id again
    r = api.post(f"{V2}/images", json={"id": image_id})
    assert_glance_error(r, 409)
    patch(api, image_id, [{"op": "replace", "path": "/protected", "value": False}])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"status": "active"}, 403),
        ({"checksum": "abc"}, 403),
        ({"size": 10}, 403),
        ({"os_hash_value": "x"}, 403),
        ({"locations": []}, 403),
        ({"os_glance_import_task": "x"}, 403),
        ({"id": "not-a-uuid"}, 400),
        ({"disk_format": "exe"}, 400),
        ({"container_format": "zip"}, 400),
        ({"visibility": "everyone"}, 400),
        ({"min_ram": -1}, 400),
        ({"min_disk": "2"}, 400),
        ({"protected": "yes"}, 400),
        ({"name": "x" * 256}, 400),
        ({"tags": "a,b"}, 400),
        ({"tags": ["x" * 256]}, 400),
        ({"my_prop": 5}, 400),
    ],
)
def test_create_rejects_bad_bodies(api: Api, body: dict[str, Any], status: int) -> None:
    assert_glance_error(api.post(f"{V2}/images", json=body), status)


def test_create_rejects_non_json(api: Api) -> None:
    r = api.post(f"{V2}/images", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_glance_error(r, 400)
    assert_glance_error(api.post(f"{V2}/images", json=["a"]), 400)


def test_only_admin_may_publicize(api: Api) -> None:
    assert_glance_error(api.post(f"{V2}/images", "demo", json={"visibility": "public"}), 403)
    community = create(api, "demo", visibility="community", name="demo-community")
    assert community["visibility"] == "community"
    r = patch(api, community["id"], [{"op": "replace", "path": "/visibility", "value": "public"}], who="demo")
    assert_glance_error(r, 403)
    assert create(api, visibility="public")["visibility"] == "public"


def test_non_admin_cannot_create_for_another_project(api: Api) -> None:
    r = api.post(f"{V2}/images", "demo", json={"owner": project_of(api, "admin")})
    assert_glance_error(r, 403)


# --------------------------------------------------------------------------- show / delete


def test_show_missing_image(api: Api) -> None:
    assert_glance_error(api.get(f"{V2}/images/{uuid.uuid4()}"), 404)
    assert_glance_error(api.get(f"{V2}/images/not-an-id"), 404)


def test_private_images_are_invisible_to_other_projects(api: Api) -> None:
    private = create(api, name="admin-private", visibility="private")
    assert_glance_error(api.get(f"{V2}/images/{private['id']}", "demo"), 404)
    assert_glance_error(api.delete(f"{V2}/images/{private['id']}", "demo"), 404)
    ids = [i["id"] for i in api.get(f"{V2}/images?limit=1000", "demo").json()["images"]]
    assert private["id"] not in ids


def test_public_images_are_read_only_for_other_projects(api: Api) -> None:
    public = create(api, name="admin-public", visibility="public")
    assert api.get(f"{V2}/images/{public['id']}", "demo").status_code == 200
    r = patch(api, public["id"], [{"op": "replace", "path": "/name", "value": "mine"}], who="demo")
    assert_glance_error(r, 403)
    assert_glance_error(api.delete(f"{V2}/images/{public['id']}", "demo"), 403)
    assert_glance_error(api.put(f"{V2}/images/{public['id']}/tags/x", "demo"), 403)
    assert api.get(f"{V2}/images/{public['id']}").json()["name"] == "admin-public"


def test_protected_image_cannot_be_deleted(api: Api) -> None:
    img = create(api, protected=True)
    assert_glance_error(api.delete(f"{V2}/images/{img['id']}"), 403)
    patch(api, img["id"], [{"op": "replace", "path": "/protected", "value": False}])
    assert api.delete(f"{V2}/images/{img['id']}").status_code == 204
    assert_glance_error(api.get(f"{V2}/images/{img['id']}"), 404)
    assert_glance_error(api.delete(f"{V2}/images/{img['id']}"), 404)


# --------------------------------------------------------------------------- PATCH


def test_patch_changes_attributes_and_properties(api: Api) -> None:
    img = create(api, name="before")
    r = patch(api, img["id"], [
        {"op": "replace", "path": "/name", "value": "after"},
        {"op": "add", "path": "/os_distro", "value": "debian"},
        {"op": "add", "path": "/min_ram", "value": 128},
        {"op": "replace", "path": "/tags", "value": ["t1", "t2"]},
        {"op": "add", "path": "/a~1b", "value": "slash"},
    ])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "after" and body["os_distro"] == "debian" and body["min_ram"] == 128
    assert body["tags"] == ["t1", "t2"] and body["a/b"] == "slash"
    # add on an existing property replaces it (v2.1 patch)
    r = patch(api, img["id"], [{"op": "add", "path": "/os_distro", "value": "ubuntu"}])
    assert r.json()["os_distro"] == "ubuntu"
    r = patch(api, img["id"], [{"op": "remove", "path": "/os_distro"}])
    assert r.status_code == 200 and "os_distro" not in r.json()
    # the whole patch is atomic: one bad op changes nothing
    r = patch(api, img["id"], [
        {"op": "replace", "path": "/name", "value": "half"},
        {"op": "replace", "path": "/status", "value": "active"},
    ])
    assert_glance_error(r, 403)
    assert api.get(f"{V2}/images/{img['id']}").json()["name"] == "after"


@pytest.mark.parametrize(
    ("ops", "status"),
    [
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "replace", "path": "/id", "value": str(uuid.uuid4())}], 403),
        ([{"op": "add", "path": "/checksum", "value": "x"}], 403),
        ([{"op": "add", "path": "/locations/-", "value": {"url": "file:///etc/passwd", "metadata": {}}}], 403),
        ([{"op": "remove", "path": "/name"}], 403),
        ([{"op": "replace", "path": "/missing_prop", "value": "x"}], 409),
        ([{"op": "remove", "path": "/missing_prop"}], 409),
        ([{"op": "replace", "path": "/tags/-", "value": "x"}], 400),
        ([{"op": "replace", "path": "/a/b", "value": "x"}], 400),
        ([{"op": "replace", "path": "name", "value": "x"}], 400),
        ([{"op": "move", "path": "/name", "value": "x"}], 400),
        ([{"op": "replace", "path": "/name"}], 400),
        ([{"op": "replace", "path": "/visibility", "value": "nobody"}], 400),
        ([{"op": "replace", "path": "/disk_format", "value": "exe"}], 400),
        ([{"op": "add", "path": "/prop", "value": {"nested": True}}], 400),
        ({"op": "replace", "path": "/name", "value": "x"}, 400),
    ],
)
def test_patch_rejects_bad_changes(api: Api, ops: Any, status: int) -> None:
    img = create(api)
    assert_glance_error(patch(api, img["id"], ops), status)


def test_patch_needs_the_json_patch_media_type(api: Api) -> None:
    img = create(api)
    ops = [{"op": "replace", "path": "/name", "value": "x"}]
    r = api.patch(f"{V2}/images/{img['id']}", json=ops)
    assert_glance_error(r, 415)
    r = api.patch(f"{V2}/images/{img['id']}", json=ops, headers={"Content-Type": "text/plain"})
    assert_glance_error(r, 415)
    r = api.patch(f"{V2}/images/{img['id']}", content=b"[{", headers=PATCH)
    assert_glance_error(r, 400)


def test_formats_can_only_change_while_queued(api: Api) -> None:
    img = create(api)
    r = patch(api, img["id"], [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert r.status_code == 200 and r.json()["disk_format"] == "qcow2"
    patch(api, img["id"], [{"op": "replace", "path": "/disk_format", "value": "raw"}])
    assert api.put(f"{V2}/images/{img['id']}/file", content=b"x" * 10, headers=OCTET).status_code == 204
    r = patch(api, img["id"], [{"op": "replace", "path": "/disk_format", "value": "qcow2"}])
    assert_glance_error(r, 403)
    r = patch(api, img["id"], [{"op": "replace", "path": "/container_format", "value": "ovf"}])
    assert_glance_error(r, 403)


# --------------------------------------------------------------------------- tags


def test_tags(api: Api) -> None:
    img = create(api)
    url = f"{V2}/images/{img['id']}/tags"
    assert api.put(f"{url}/blue").status_code == 204
    assert api.put(f"{url}/blue").status_code == 204
    assert api.put(f"{url}/green").status_code == 204
    assert api.get(f"{V2}/images/{img['id']}").json()["tags"] == ["blue", "green"]
    assert api.delete(f"{url}/blue").status_code == 204
    assert_glance_error(api.delete(f"{url}/blue"), 404)
    assert_glance_error(api.put(f"{url}/{'x' * 256}"), 400)
    assert_glance_error(api.put(f"{V2}/images/{uuid.uuid4()}/tags/x"), 404)
    assert api.get(f"{V2}/images/{img['id']}").json()["tags"] == ["green"]


# --------------------------------------------------------------------------- actions


def test_deactivate_and_reactivate(api: Api) -> None:
    img = create(api, visibility="public")
    url = f"{V2}/images/{img['id']}"
    assert_glance_error(api.post(f"{url}/actions/deactivate"), 403)  # queued
    assert api.put(f"{url}/file", content=b"data" * 100, headers=OCTET).status_code == 204
    assert_glance_error(api.post(f"{url}/actions/deactivate", "demo"), 403)
    assert api.post(f"{url}/actions/deactivate").status_code == 204
    assert api.post(f"{url}/actions/deactivate").status_code == 204
    assert api.get(url).json()["status"] == "deactivated"
    assert_glance_error(api.get(f"{url}/file", "demo"), 403)
    assert api.get(f"{url}/file").content == b"data" * 100
    assert_glance_error(api.post(f"{url}/actions/reactivate", "demo"), 403)
    assert api.post(f"{url}/actions/reactivate").status_code == 204
    assert api.get(url).json()["status"] == "active"
    assert api.get(f"{url}/file", "demo").content == b"data" * 100


# --------------------------------------------------------------------------- list


@pytest.fixture(scope="module")
def listed(api: Api) -> dict[str, dict[str, Any]]:
    tag = uuid.uuid4().hex[:8]
    made = {}
    for i, (name, size) in enumerate([("lst-a", 10), ("lst-b", 300), ("lst-c", 20), ("lst-d", 0)]):
        img = create(api, name=name, tags=[tag, f"n{i}"], visibility="public", lst_group=tag,
                     min_ram=i)
        if size:
            api.put(f"{V2}/images/{img['id']}/file", content=b"z" * size, headers=OCTET)
        img["checksum_md5"] = hashlib.md5(b"z" * size).hexdigest()
        made[name] = img
    made["_tag"] = {"tag": tag}
    return made


def names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [i["name"] for i in r.json()["images"]]


def test_list_filters(api: Api, listed: dict[str, Any]) -> None:
    tag = listed["_tag"]["tag"]
    base = f"{V2}/images?tag={tag}"
    assert sorted(names(api.get(base))) == ["lst-a", "lst-b", "lst-c", "lst-d"]
    assert names(api.get(f"{base}&name=lst-b")) == ["lst-b"]
    assert sorted(names(api.get(f"{base}&name=in:lst-a,lst-c"))) == ["lst-a", "lst-c"]
    assert names(api.get(f"{base}&tag=n1")) == ["lst-b"]
    assert sorted(names(api.get(f"{base}&status=active"))) == ["lst-a", "lst-b", "lst-c"]
    assert names(api.get(f"{base}&status=queued")) == ["lst-d"]
    assert names(api.get(f"{base}&size_min=100")) == ["lst-b"]
    assert sorted(names(api.get(f"{base}&size_max=20"))) == ["lst-a", "lst-c"]
    assert names(api.get(f"{base}&min_ram=2")) == ["lst-c"]
    assert names(api.get(f"{base}&size=300")) == ["lst-b"]
    assert names(api.get(f"{base}&checksum={listed['lst-c']['checksum_md5']}")) == ["lst-c"]
    assert sorted(names(api.get(f"{V2}/images?lst_group={tag}"))) == ["lst-a", "lst-b", "lst-c", "lst-d"]
    assert names(api.get(f"{base}&visibility=private")) == []
    assert len(names(api.get(f"{base}&created_at=gte:2000-01-01T00:00:00Z"))) == 4
    assert names(api.get(f"{base}&created_at=lt:2000-01-01T00:00:00Z")) == []
    ids = ",".join(listed[n]["id"] for n in ("lst-a", "lst-d"))
    assert sorted(names(api.get(f"{V2}/images?id=in:{ids}"))) == ["lst-a", "lst-d"]
    assert sorted(names(api.get(f"{base}", "demo"))) == ["lst-a", "lst-b", "lst-c", "lst-d"]


def test_hidden_images_only_when_asked(api: Api) -> None:
    img = create(api, name="hidden-one", os_hidden=True, visibility="public")
    assert img["id"] not in [i["id"] for i in api.get(f"{V2}/images?limit=1000").json()["images"]]
    assert names(api.get(f"{V2}/images?os_hidden=true&name=hidden-one")) == ["hidden-one"]


def test_list_sorting(api: Api, listed: dict[str, Any]) -> None:
    base = f"{V2}/images?tag={listed['_tag']['tag']}"
    assert names(api.get(f"{base}&sort_key=name&sort_dir=asc")) == ["lst-a", "lst-b", "lst-c", "lst-d"]
    assert names(api.get(f"{base}&sort_key=name&sort_dir=desc")) == ["lst-d", "lst-c", "lst-b", "lst-a"]
    assert names(api.get(f"{base}&sort=name:desc")) == ["lst-d", "lst-c", "lst-b", "lst-a"]
    assert names(api.get(f"{base}&sort=size:asc,name:asc")) == ["lst-d", "lst-a", "lst-c", "lst-b"]
    # newest first by default
    created = [i["created_at"] for i in api.get(base).json()["images"]]
    assert len(created) == 4 and created == sorted(created, reverse=True)
    assert names(api.get(f"{base}&sort_key=created_at&sort_dir=asc"))[0] == "lst-a"


def test_list_pagination(api: Api, listed: dict[str, Any]) -> None:
    url: str | None = f"{V2}/images?tag={listed['_tag']['tag']}&sort=name:asc&limit=3"
    seen: list[str] = []
    pages = 0
    while url:
        r = api.get(url)
        body = r.json()
        assert body["first"].startswith("/v2/images?") and "marker" not in body["first"]
        assert body["schema"] == "/v2/schemas/images"
        seen += [i["name"] for i in body["images"]]
        url = f"/image{body['next']}" if "next" in body else None
        pages += 1
        assert pages < 5
    assert seen == ["lst-a", "lst-b", "lst-c", "lst-d"]
    r = api.get(f"{V2}/images?tag={listed['_tag']['tag']}&sort=name:asc&marker={listed['lst-b']['id']}")
    assert names(r) == ["lst-c", "lst-d"]


@pytest.mark.parametrize(
    "query",
    ["limit=abc", "limit=-2", "sort_key=nonsense", "sort_dir=sideways", "sort=name:up",
     "sort=name:asc&sort_key=name", "marker=" + str(uuid.UUID(int=1)), "visibility=secret",
     "size_min=big", "created_at=gt:not-a-time", "member_status=maybe"],
)
def test_list_rejects_bad_queries(api: Api, query: str) -> None:
    assert_glance_error(api.get(f"{V2}/images?{query}"), 400)


# --------------------------------------------------------------------------- schemas and info


@pytest.mark.parametrize("name", ["image", "images", "member", "members"])
def test_schemas(api: Api, name: str) -> None:
    r = api.get(f"{V2}/schemas/{name}")
    assert r.status_code == 200 and r.json()["name"] == name
    if name == "image":
        props = r.json()["properties"]
        assert {"id", "name", "status", "visibility", "os_hash_algo", "os_hidden"} <= set(props)
        assert set(props["disk_format"]["enum"]) >= {"raw", "qcow2", "iso"}
        assert r.json()["additionalProperties"] == {"type": "string"}


def test_unknown_schema(api: Api) -> None:
    assert_glance_error(api.get(f"{V2}/schemas/nope"), 404)


def test_info(api: Api) -> None:
    r = api.get(f"{V2}/info/import")
    assert r.json()["import-methods"]["value"] == ["glance-direct"]
    stores = api.get(f"{V2}/info/stores").json()["stores"]
    assert stores[0]["id"] == "file" and stores[0]["default"] is True
    usage = api.get(f"{V2}/info/usage", "demo").json()["usage"]
    assert {"image_size_total", "image_count_total"} <= set(usage)


def test_unknown_method_is_405(api: Api) -> None:
    assert_glance_error(api.request("PUT", f"{V2}/images"), 405)


def test_patch_in_the_v2_0_format(api: Api) -> None:
    """Glance's older patch body (used by Tempest): ``{"replace": "/name", "value": ..}``."""
    img = create(api, name="old-style")
    v20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}
    url = f"{V2}/images/{img['id']}"
    r = api.patch(url, json=[{"replace": "/name", "value": "renamed"}, {"add": "/color", "value": "red"}],
                  headers=v20)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed" and r.json()["color"] == "red"
    # v2.0: adding what is already there is a conflict
    assert_glance_error(api.patch(url, json=[{"add": "/color", "value": "blue"}], headers=v20), 409)
    assert_glance_error(api.patch(url, json=[{"add": "/os_glance_foo", "value": "x"}], headers=v20), 403)
    assert_glance_error(api.patch(url, json=[{"add": "/a", "replace": "/b", "value": "x"}], headers=v20), 400)
    assert_glance_error(api.patch(url, json=[{"op": "replace", "path": "/name", "value": "x"}], headers=v20), 400)
    r = api.patch(url, json=[{"remove": "/color"}], headers=v20)
    assert r.status_code == 200 and "color" not in r.json()


def test_owner_may_deactivate_its_image(api: Api) -> None:
    img = create(api, "demo")
    url = f"{V2}/images/{img['id']}"
    assert api.put(f"{url}/file", "demo", content=b"x" * 10, headers=OCTET).status_code == 204
    assert api.post(f"{url}/actions/deactivate", "demo").status_code == 204
    assert api.get(url, "demo").json()["status"] == "deactivated"
    assert_glance_error(api.get(f"{url}/file", "demo"), 403)  # only admins download deactivated data
    assert api.post(f"{url}/actions/reactivate", "demo").status_code == 204


def test_empty_image_id_is_404(api: Api) -> None:
    for method in ("GET", "DELETE", "PATCH"):
        assert_glance_error(api.request(method, f"{V2}/images/"), 404)


def test_legacy_import_tasks_are_refused(api: Api) -> None:
    body = {"type": "import", "input": {"import_from": "http://example.invalid/x.qcow2",
                                        "import_from_format": "qcow2",
                                        "image_properties": {"disk_format": "qcow2"}}}
    assert_glance_error(api.post(f"{V2}/tasks", json=body), 400)
    assert api.get(f"{V2}/tasks").status_code == 200
    assert_glance_error(api.get(f"{V2}/tasks/{uuid.uuid4()}"), 404)
