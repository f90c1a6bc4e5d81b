"""Image members: sharing with another project, accept/reject, visibility in lists."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api
from tests.api.test_image import V2, assert_glance_error, create, patch, project_of


def ids(api: Api, who: str, query: str = "") -> list[str]:
    r = api.get(f"{V2}/images?limit=1000{query}", who)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["images"]]


def test_share_accept_reject_flow(api: Api) -> None:
    demo = project_of(api, "demo")
    img = create(api, name="to-share")  # shared by default
    members = f"{V2}/images/{img['id']}/members"
    assert img["id"] not in ids(api, "demo")
    assert_glance_error(api.get(f"{V2}/images/{img['id']}", "demo"), 404)

    r = api.post(members, json={"member": demo})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["member_id"] == demo and m["image_id"] == img["id"] and m["status"] == "pending"
    assert m["schema"] == "/v2/schemas/member" and m["created_at"].endswith("Z")
    assert_glance_error(api.post(members, json={"member": demo}), 409)

    # pending: the member can see it directly, but not in the default list
    assert api.get(f"{V2}/images/{img['id']}", "demo").status_code == 200
    assert img["id"] not in ids(api, "demo")
    assert img["id"] in ids(api, "demo", "&member_status=pending")
    assert img["id"] in ids(api, "demo", "&member_status=all")

    # only the member (or a cloud admin, as in Glance) changes its status
    assert_glance_error(api.put(f"{members}/{demo}", "demo", json={"status": "maybe"}), 400)
    r = api.put(f"{members}/{demo}", "demo", json={"status": "accepted"})
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert img["id"] in ids(api, "demo")
    assert img["id"] in ids(api, "demo", "&visibility=shared")

    r = api.put(f"{members}/{demo}", "demo", json={"status": "rejected"})
    assert r.json()["status"] == "rejected"
    assert img["id"] not in ids(api, "demo")
    assert img["id"] in ids(api, "demo", "&member_status=rejected")

    # members see themselves; the owner sees everyone
    other = uuid.uuid4().hex
    assert api.post(members, json={"member": other}).status_code == 200
    assert {x["member_id"] for x in api.get(members).json()["members"]} == {demo, other}
    assert [x["member_id"] for x in api.get(members, "demo").json()["members"]] == [demo]
    assert api.get(members).json()["schema"] == "/v2/schemas/members"
    assert api.get(f"{members}/{demo}", "demo").json()["status"] == "rejected"
    assert_glance_error(api.get(f"{members}/{other}", "demo"), 404)

    # a member cannot manage the membership list
    assert_glance_error(api.post(members, "demo", json={"member": uuid.uuid4().hex}), 403)
    assert_glance_error(api.delete(f"{members}/{other}", "demo"), 404)
    # nor change the image
    r = patch(api, img["id"], [{"op": "replace", "path": "/name", "value": "x"}], who="demo")
    assert_glance_error(r, 403)

    assert api.delete(f"{members}/{demo}").status_code == 204
    assert_glance_error(api.get(f"{V2}/images/{img['id']}", "demo"), 404)
    assert_glance_error(api.delete(f"{members}/{demo}"), 404)


def test_member_can_download_shared_image(api: Api) -> None:
    demo = project_of(api, "demo")
    img = create(api)
    api.put(f"{V2}/images/{img['id']}/file", content=b"shared bytes",
            headers={"Content-Type": "application/octet-stream"})
    assert_glance_error(api.get(f"{V2}/images/{img['id']}/file", "demo"), 404)
    api.post(f"{V2}/images/{img['id']}/members", json={"member": demo})
    assert api.get(f"{V2}/images/{img['id']}/file", "demo").content == b"shared bytes"


def test_only_shared_images_have_members(api: Api) -> None:
    demo = project_of(api, "demo")
    for visibility in ("private", "public", "community"):
        img = create(api, visibility=visibility)
        assert_glance_error(api.post(f"{V2}/images/{img['id']}/members", json={"member": demo}), 403)
        assert_glance_error(api.get(f"{V2}/images/{img['id']}/members"), 403)


def test_member_bodies_are_validated(api: Api) -> None:
    img = create(api)
    members = f"{V2}/images/{img['id']}/members"
    assert_glance_error(api.post(members, json={}), 400)
    assert_glance_error(api.post(members, json={"member": 5}), 400)
    assert_glance_error(api.post(members, json={"member": "x" * 256}), 400)
    assert_glance_error(api.post(f"{V2}/images/{uuid.uuid4()}/members", json={"member": "p"}), 404)
    assert_glance_error(api.put(f"{members}/nobody", json={"status": "accepted"}), 404)


def test_community_images_are_listed_on_request(api: Api) -> None:
    img = create(api, visibility="community", name="community-image")
    assert api.get(f"{V2}/images/{img['id']}", "demo").status_code == 200
    assert img["id"] not in ids(api, "demo")
    assert img["id"] in ids(api, "demo", "&visibility=community")
    assert img["id"] in ids(api, "demo", "&visibility=all")
    assert img["id"] in ids(api, "admin")  # the owner sees its own images


def test_owner_cannot_accept_for_its_member(api: Api) -> None:
    other = uuid.uuid4().hex
    img = create(api, "demo")
    members = f"{V2}/images/{img['id']}/members"
    assert api.post(members, "demo", json={"member": other}).status_code == 200
    assert_glance_error(api.put(f"{members}/{other}", "demo", json={"status": "accepted"}), 403)
    assert api.get(f"{members}/{other}", "demo").json()["status"] == "pending"
    assert api.delete(f"{members}/{other}", "demo").status_code == 204
