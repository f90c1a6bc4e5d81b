"""What no service owns, and what no service can store: paths outside every service get a
JSON 404 (405 for a wrong method on the root), and a NUL character anywhere in a request
(path, query string, JSON body) gets a 400 in the service's own error format, on SQLite and
PostgreSQL alike, with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from onestack.common.ids import new_id

NOT_FOUND = {"error": {"code": 404, "title": "Not Found", "message": "The resource could not be found."}}
URL_NUL = "The request URL holds a NUL character (%00)."
BODY_NUL = "Malformed request body: a string holds a NUL character (\\u0000)."


def keystone_400(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "title": "Bad Request", "message": message}}


def glance_400(message: str) -> dict[str, Any]:
    return {"message": message, "code": "400 Bad Request", "title": "Bad Request"}


@pytest.mark.parametrize("path", ["/foo", "/openapi.json", "/volume/v3", "/volume/v3/volumes", "/x/y/z"])
def test_paths_outside_every_service_are_json_404(api: Any, path: str) -> None:
    r = api.client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == NOT_FOUND
    assert r.headers["x-openstack-request-id"].startswith("req-")


def test_wrong_method_on_the_root_is_json_405(api: Any) -> None:
    r = api.client.post("/", json={})
    assert r.status_code == 405
    assert r.json() == {"error": {"code": 405, "title": "Method Not Allowed",
                                  "message": "The method is not allowed for the requested URL."}}
    assert api.client.get("/").json()["name"] == "onestack"


@pytest.mark.parametrize("path", [
    "/identity/v3/projects/a%00b",
    "/identity/v3/users?name=a%00",
    "/identity/v3/projects?tags=%00",
    "/foo%00",
])
def test_nul_in_an_identity_url_is_400(api: Any, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 400
    assert r.json() == keystone_400(URL_NUL)


@pytest.mark.parametrize("path", ["/image/v2/images/a%00b", "/image/v2/images?name=%00", "/image/v2/images/x/tags/%00"])
def test_nul_in_an_image_url_is_400(api: Any, path: str) -> None:
    r = api.get(path) if "/tags/" not in path else api.put(path)
    assert r.status_code == 400
    assert r.json() == glance_400(URL_NUL)


def test_nul_in_an_identity_body_is_400_and_nothing_is_created(api: Any) -> None:
    name = f"nul-{new_id()[:8]}"
    for body in ({"project": {"name": name + "\u0000"}},
                 {"project": {"name": name, "description": "a\u0000b"}},
                 {"project": {"name": name, "extra": {"k\u0000": 1}}},
                 {"project": {"name": name, "tags": ["ok", "a\u0000"]}}):
        r = api.post("/identity/v3/projects", json=body)
        assert r.status_code == 400, body
        assert r.json() == keystone_400(BODY_NUL)
    assert api.get(f"/identity/v3/projects?name={name}").json()["projects"] == []
    # a body that only spells the escape (an escaped backslash) is ordinary text
    r = api.post("/identity/v3/projects", json={"project": {"name": name, "description": "a\\u0000b"}})
    assert r.status_code == 201, r.text
    assert r.json()["project"]["description"] == "a\\u0000b"


def test_nul_in_an_image_body_is_400_and_nothing_is_created(api: Any) -> None:
    name = f"nul-{new_id()[:8]}"
    r = api.post("/image/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare",
                                           "note": "a\u0000b"})
    assert r.status_code == 400
    assert r.json() == glance_400(BODY_NUL)
    assert api.get(f"/image/v2/images?name={name}").json()["images"] == []


@pytest.mark.parametrize("key", ["min_disk", "min_ram"])
def test_image_sizes_beyond_the_database_integer_are_400(api: Any, key: str) -> None:
    """Glance's own bound (its columns are 4-byte integers): 2**31 - 1 at most."""
    name = f"big-{new_id()[:8]}"
    for value in (2**31, 2**63, 2**64 - 1):
        r = api.post("/image/v2/images", json={"name": name, key: value})
        assert r.status_code == 400, value
        assert r.json() == glance_400(f"'{key}' value out of range, must not exceed 2147483647.")
    assert api.get(f"/image/v2/images?name={name}").json()["images"] == []
    r = api.post("/image/v2/images", json={"name": name, key: 2**31 - 1})
    assert r.status_code == 201, r.text
    assert r.json()[key] == 2**31 - 1
    image_id = r.json()["id"]
    r = api.patch(f"/image/v2/images/{image_id}", content=f'[{{"op": "replace", "path": "/{key}", "value": {2**31}}}]',
                  headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert r.status_code == 400
    assert r.json() == glance_400(f"'{key}' value out of range, must not exceed 2147483647.")
    assert api.get(f"/image/v2/images/{image_id}").json()[key] == 2**31 - 1
