"""PUT /v3/projects/{id}/tags/{tag}: Keystone's rules (1-255 characters, no "," or "/",
unique, at most 80 per project, surrounding white space stripped), a percent-encoded
``Location``, and nothing stored when the answer is an error."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.api._auth_helpers import make_project

V3 = "/identity/v3"


def _tags(api: Any, project_id: str) -> list[str]:
    r = api.get(f"{V3}/projects/{project_id}/tags")
    assert r.status_code == 200, r.text
    return sorted(r.json()["tags"])


def _bad(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "title": "Bad Request", "message": message}}


@pytest.mark.parametrize(("wire", "tag"), [
    ("a%0Ab", "a\nb"),
    ("a%0Db", "a\rb"),
    ("a%09b", "a\tb"),
    ("%F0%9F%98%80", "\U0001f600"),
    ("%E2%80%AEx", "\u202ex"),
    ("caf%C3%A9", "caf\u00e9"),
    ("a%20b", "a b"),
    ("a%3Fb%23c", "a?b#c"),
])
def test_any_character_but_comma_and_slash_is_a_tag(api: Any, wire: str, tag: str) -> None:
    p = make_project(api)
    r = api.put(f"{V3}/projects/{p['id']}/tags/{wire}")
    assert r.status_code == 201, r.text
    assert r.content == b""
    assert r.headers["Location"] == f"http://127.0.0.1:8800/identity/v3/projects/{p['id']}/tags/{quote(tag, safe='')}"
    assert _tags(api, p["id"]) == [tag]
    assert api.get(f"{V3}/projects/{p['id']}/tags/{wire}").status_code == 204
    assert api.delete(f"{V3}/projects/{p['id']}/tags/{wire}").status_code == 204
    assert _tags(api, p["id"]) == []


def test_surrounding_white_space_is_stripped(api: Any) -> None:
    """Keystone's resource manager stores ``tag.strip()``; Location names what was stored."""
    p = make_project(api)
    r = api.put(f"{V3}/projects/{p['id']}/tags/%20x%09")
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith(f"/v3/projects/{p['id']}/tags/x")
    assert _tags(api, p["id"]) == ["x"]


@pytest.mark.parametrize(("wire", "message"), [
    ("a%2Cb", "Invalid input for field 'tags': 'a,b' does not match '^[^,/]*$'"),
    ("%20%20", "Invalid input for field 'tags': '' is too short"),
    ("t" * 256, f"Invalid input for field 'tags': '{'t' * 76}... is too long"),
    ("a%00b", "The request URL holds a NUL character (%00)."),
])
def test_bad_tags_are_400_and_not_stored(api: Any, wire: str, message: str) -> None:
    p = make_project(api)
    r = api.put(f"{V3}/projects/{p['id']}/tags/{wire}")
    assert r.status_code == 400
    assert r.json() == _bad(message)
    assert "Location" not in r.headers
    assert _tags(api, p["id"]) == []


def test_a_slash_is_never_part_of_a_tag(api: Any) -> None:
    p = make_project(api)
    r = api.put(f"{V3}/projects/{p['id']}/tags/a%2Fb")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": 404, "title": "Not Found", "message": "The resource could not be found."}}
    assert _tags(api, p["id"]) == []


def test_duplicate_and_81st_tags_are_400(api: Any) -> None:
    """Keystone validates the project's whole new tag list: unique items, 80 at most."""
    p = make_project(api)
    assert api.put(f"{V3}/projects/{p['id']}/tags/one").status_code == 201
    r = api.put(f"{V3}/projects/{p['id']}/tags/one")
    assert r.status_code == 400
    assert r.json() == _bad("Invalid input for field 'tags': ['one', 'one'] has non-unique elements")
    tags = [f"t{i:02d}" for i in range(79)]
    assert api.put(f"{V3}/projects/{p['id']}/tags", json={"tags": ["one", *tags]}).status_code == 200
    r = api.put(f"{V3}/projects/{p['id']}/tags/extra")
    assert r.status_code == 400
    assert r.json()["error"]["message"].endswith(" is too long")
    assert r.json()["error"]["message"].startswith("Invalid input for field 'tags': ['one', 't00'")
    assert len(_tags(api, p["id"])) == 80 and "extra" not in _tags(api, p["id"])


def test_unknown_project_is_404_after_the_tag_is_checked(api: Any) -> None:
    r = api.put(f"{V3}/projects/nosuch/tags/ok")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": 404, "title": "Not Found", "message": "Could not find project: nosuch."}}
    r = api.put(f"{V3}/projects/nosuch/tags/a%2Cb")
    assert r.status_code == 400
    assert r.json() == _bad("Invalid input for field 'tags': 'a,b' does not match '^[^,/]*$'")
