"""Bad input to the identity resource APIs (domains, projects, users, groups,
credentials): every case gets a 4xx in Keystone's error shape, never a 500,
and nothing is half-created."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from onestack.common.ids import new_id
from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"
KEYS = {"domains": "domain", "projects": "project", "users": "user", "groups": "group"}
NAME_MAX = {"domains": 64, "projects": 64, "users": 255, "groups": 64}


def _names(api: Any, collection: str) -> set[str]:
    if collection == "domains":
        r = api.get(f"{V3}/domains")
    else:
        r = api.get(f"{V3}/{collection}")
    assert r.status_code == 200, r.text
    return {x["name"] for x in r.json()[collection]}


@pytest.fixture(scope="module")
def state(api: Any) -> Iterator[dict[str, Any]]:
    """One existing entity of each kind, for update/duplicate cases."""
    made: dict[str, Any] = {}
    for collection, key in KEYS.items():
        r = api.post(f"{V3}/{collection}", json={key: {"name": f"{key}-{new_id()[:8]}"}})
        assert r.status_code == 201, r.text
        made[collection] = r.json()[key]
    yield made


# --- bodies -----------------------------------------------------------------------

RAW_BODIES = [
    ("malformed json", b"{not json"),
    ("a list", b"[1, 2]"),
    ("a string", b'"x"'),
    ("null", b"null"),
    ("empty object", b"{}"),
    ("wrong root key", b'{"thing": {"name": "x"}}'),
]


@pytest.mark.parametrize("collection", list(KEYS))
@pytest.mark.parametrize(("label", "raw"), RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
def test_create_rejects_bad_bodies(api: Any, collection: str, label: str, raw: bytes) -> None:
    before = _names(api, collection)
    r = api.post(f"{V3}/{collection}", content=raw, headers={"Content-Type": "application/json"})
    _error(r, 400)
    assert _names(api, collection) == before


@pytest.mark.parametrize("collection", list(KEYS))
def test_empty_body_is_rejected(api: Any, collection: str) -> None:
    _error(api.post(f"{V3}/{collection}"), 400)


@pytest.mark.parametrize("collection", list(KEYS))
def test_root_must_be_object(api: Any, collection: str) -> None:
    key = KEYS[collection]
    for value in ("x", [1], 3, None):
        _error(api.post(f"{V3}/{collection}", json={key: value}), 400)


@pytest.mark.parametrize("collection", list(KEYS))
def test_unsupported_content_type(api: Any, collection: str) -> None:
    """Keystone answers a body that is not JSON with a 400 naming the header (not a 415)."""
    r = api.post(f"{V3}/{collection}", content=b"name=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert r.json() == {"error": {"code": 400, "title": "Bad Request", "message": (
        "Expecting to find application/json in Content-Type header. The server could not comply with the "
        "request since it is either malformed or otherwise incorrect. The client is assumed to be in error.")}}


# --- fields -------------------------------------------------------------------------


def _bad_fields(collection: str) -> list[tuple[str, dict[str, Any]]]:
    n = NAME_MAX[collection]
    cases: list[tuple[str, dict[str, Any]]] = [
        ("missing name", {"description": "x"}),
        ("name null", {"name": None}),
        ("name int", {"name": 5}),
        ("name list", {"name": ["a"]}),
        ("name empty", {"name": ""}),
        ("name blank", {"name": "   "}),
        ("name too long", {"name": "n" * (n + 1)}),
        ("description int", {"name": "NEW", "description": 7}),
    ]
    if collection != "groups":
        cases.append(("enabled string", {"name": "NEW", "enabled": "yes"}))
        cases.append(("enabled int", {"name": "NEW", "enabled": 1}))
        cases.append(("options not object", {"name": "NEW", "options": []}))
        cases.append(("unknown option", {"name": "NEW", "options": {"no_such_option": True}}))
    if collection in ("projects", "domains"):
        cases.append(("tags not list", {"name": "NEW", "tags": "a"}))
        cases.append(("tag with comma", {"name": "NEW", "tags": ["a,b"]}))
        cases.append(("tag with slash", {"name": "NEW", "tags": ["a/b"]}))
        cases.append(("tag too long", {"name": "NEW", "tags": ["t" * 256]}))
        cases.append(("duplicate tags", {"name": "NEW", "tags": ["a", "a"]}))
        cases.append(("too many tags", {"name": "NEW", "tags": [f"t{i}" for i in range(81)]}))
        cases.append(("immutable not bool", {"name": "NEW", "options": {"immutable": "yes"}}))
    if collection != "domains":
        cases.append(("domain_id int", {"name": "NEW", "domain_id": 3}))
        cases.append(("domain_id bad chars", {"name": "NEW", "domain_id": "a b"}))
    if collection == "projects":
        cases.append(("is_domain string", {"name": "NEW", "is_domain": "no"}))
        cases.append(("parent_id list", {"name": "NEW", "parent_id": ["x"]}))
        cases.append(("unknown parent", {"name": "NEW", "parent_id": new_id()}))
        cases.append(("unknown domain", {"name": "NEW", "domain_id": new_id()}))
    if collection == "users":
        cases.append(("password int", {"name": "NEW", "password": 5}))
        cases.append(("password too long", {"name": "NEW", "password": "p" * 4097}))
        cases.append(("email int", {"name": "NEW", "email": 1}))
        cases.append(("default_project_id int", {"name": "NEW", "default_project_id": 1}))
        cases.append(("option wrong type", {"name": "NEW", "options": {"lock_password": "yes"}}))
        cases.append(("mfa rules not lists", {"name": "NEW", "options": {"multi_factor_auth_rules": ["password"]}}))
    if collection == "domains":
        cases.append(("explicit id bad", {"name": "NEW", "explicit_domain_id": "not an id!"}))
    return cases


CREATE_CASES = [(c, label, body) for c in KEYS for label, body in _bad_fields(c)]


@pytest.mark.parametrize(
    ("collection", "label", "fields"), CREATE_CASES, ids=[f"{c}-{label}" for c, label, _ in CREATE_CASES]
)
def test_create_rejects_bad_fields(api: Any, collection: str, label: str, fields: dict[str, Any]) -> None:
    key = KEYS[collection]
    fields = dict(fields)
    unique = f"bad-{new_id()[:10]}"
    if fields.get("name") == "NEW":
        fields["name"] = unique
    before = _names(api, collection)
    r = api.post(f"{V3}/{collection}", json={key: fields})
    _error(r, 400)
    after = _names(api, collection)
    assert after == before and unique not in after  # nothing half-created


@pytest.mark.parametrize("collection", ["users", "groups"])
def test_create_in_unknown_domain_is_404(api: Any, collection: str) -> None:
    key = KEYS[collection]
    unknown = new_id()
    err = _error(api.post(f"{V3}/{collection}", json={key: {"name": "x" + new_id()[:6], "domain_id": unknown}}), 404)
    assert err["message"] == f"Could not find domain: {unknown}."


@pytest.mark.parametrize("collection", list(KEYS))
def test_duplicate_name_is_409(api: Any, state: dict[str, Any], collection: str) -> None:
    key = KEYS[collection]
    existing = state[collection]
    before = _names(api, collection)
    err = _error(api.post(f"{V3}/{collection}", json={key: {"name": existing["name"]}}), 409)
    assert err["message"].startswith(f"Conflict occurred attempting to store {key} - ")
    assert err["title"] == "Conflict"
    assert _names(api, collection) == before


# --- updates ------------------------------------------------------------------------

UPDATE_CASES = [
    ("empty", {}),
    ("name int", {"name": 1}),
    ("name empty", {"name": ""}),
    ("name too long", {"name": "n" * 300}),
    ("description list", {"description": ["x"]}),
    ("id change", {"id": "something-else"}),
]


@pytest.mark.parametrize("collection", list(KEYS))
@pytest.mark.parametrize(("label", "fields"), UPDATE_CASES, ids=[c[0] for c in UPDATE_CASES])
def test_update_rejects_bad_fields(
    api: Any, state: dict[str, Any], collection: str, label: str, fields: dict[str, Any]
) -> None:
    key = KEYS[collection]
    entity = state[collection]
    r = api.patch(f"{V3}/{collection}/{entity['id']}", json={key: fields})
    _error(r, 400)
    after = api.get(f"{V3}/{collection}/{entity['id']}").json()[key]
    assert after["name"] == entity["name"]


@pytest.mark.parametrize("collection", ["projects", "users", "groups"])
def test_update_cannot_move_domains(api: Any, state: dict[str, Any], collection: str) -> None:
    key = KEYS[collection]
    entity = state[collection]
    d = api.post(f"{V3}/domains", json={"domain": {"name": "mv-" + new_id()[:8]}}).json()["domain"]
    _error(api.patch(f"{V3}/{collection}/{entity['id']}", json={key: {"domain_id": d["id"]}}), 400)
    assert api.get(f"{V3}/{collection}/{entity['id']}").json()[key]["domain_id"] == "default"


@pytest.mark.parametrize("collection", list(KEYS))
def test_update_duplicate_name_is_409(api: Any, collection: str) -> None:
    key = KEYS[collection]
    a = api.post(f"{V3}/{collection}", json={key: {"name": "a-" + new_id()[:8]}}).json()[key]
    b = api.post(f"{V3}/{collection}", json={key: {"name": "b-" + new_id()[:8]}}).json()[key]
    _error(api.patch(f"{V3}/{collection}/{b['id']}", json={key: {"name": a["name"]}}), 409)
    assert api.get(f"{V3}/{collection}/{b['id']}").json()[key]["name"] == b["name"]


def test_update_user_bad_password_changes_nothing(api: Any) -> None:
    u = api.post(f"{V3}/users", json={"user": {"name": "pw-" + new_id()[:8], "password": "good-one"}}).json()["user"]
    r = api.patch(f"{V3}/users/{u['id']}", json={"user": {"password": 12, "email": "x@y.z"}})
    _error(r, 400)
    r = api.patch(f"{V3}/users/{u['id']}", json={"user": {"password": "p" * 4097, "email": "x@y.z"}})
    _error(r, 400)
    assert "email" not in api.get(f"{V3}/users/{u['id']}").json()["user"]
    auth = {"identity": {"methods": ["password"], "password": {"user": {"id": u["id"], "password": "good-one"}}}}
    assert api.client.post(f"{V3}/auth/tokens", json={"auth": auth}).status_code == 201


# --- unknown ids ------------------------------------------------------------------------


@pytest.mark.parametrize("collection", list(KEYS))
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_unknown_id_is_404(api: Any, collection: str, method: str) -> None:
    key = KEYS[collection]
    unknown = new_id()
    kw: dict[str, Any] = {"json": {key: {"description": "x"}}} if method == "PATCH" else {}
    err = _error(api.request(method, f"{V3}/{collection}/{unknown}", **kw), 404)
    assert err["message"] == f"Could not find {key}: {unknown}."
    assert err["title"] == "Not Found"


@pytest.mark.parametrize(
    "path",
    [
        "/users/{x}/projects",
        "/users/{x}/groups",
        "/groups/{x}/users",
        "/projects/{x}/tags",
        "/projects/{x}/tags/a",
    ],
)
def test_unknown_parent_resource_is_404(api: Any, path: str) -> None:
    _error(api.get(V3 + path.format(x=new_id())), 404)


def test_unknown_membership_ids(api: Any, state: dict[str, Any]) -> None:
    g, u = state["groups"]["id"], state["users"]["id"]
    for method in ("PUT", "DELETE", "GET", "HEAD"):
        r = api.request(method, f"{V3}/groups/{g}/users/{new_id()}")
        assert r.status_code == 404, (method, r.text)
        r = api.request(method, f"{V3}/groups/{new_id()}/users/{u}")
        assert r.status_code == 404, (method, r.text)


# --- credentials --------------------------------------------------------------------

CRED_CASES = [
    ("missing blob", {"type": "cert", "user_id": "USER"}),
    ("missing type", {"blob": "b", "user_id": "USER"}),
    ("missing user_id", {"blob": "b", "type": "cert"}),
    ("blob int", {"blob": 1, "type": "cert", "user_id": "USER"}),
    ("blob object", {"blob": {"access": "a"}, "type": "cert", "user_id": "USER"}),
    ("type list", {"blob": "b", "type": ["cert"], "user_id": "USER"}),
    ("user_id int", {"blob": "b", "type": "cert", "user_id": 1}),
    ("ec2 blob not json", {"blob": "{", "type": "ec2", "user_id": "USER", "project_id": "PROJECT"}),
    ("ec2 without access", {"blob": '{"secret": "s"}', "type": "ec2", "user_id": "USER", "project_id": "PROJECT"}),
    ("ec2 access not string", {"blob": '{"access": 5}', "type": "ec2", "user_id": "USER", "project_id": "PROJECT"}),
    ("ec2 without project", {"blob": '{"access": "a1"}', "type": "ec2", "user_id": "USER"}),
]


@pytest.mark.parametrize(("label", "fields"), CRED_CASES, ids=[c[0] for c in CRED_CASES])
def test_credential_bad_fields(api: Any, label: str, fields: dict[str, Any]) -> None:
    me = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"]
    body = {
        k: (me["user"]["id"] if v == "USER" else me["project"]["id"] if v == "PROJECT" else v)
        for k, v in fields.items()
    }
    before = len(api.get(f"{V3}/credentials").json()["credentials"])
    _error(api.post(f"{V3}/credentials", json={"credential": body}), 400)
    assert len(api.get(f"{V3}/credentials").json()["credentials"]) == before


def test_credential_bad_updates(api: Any) -> None:
    me = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"]
    ec2 = {"blob": '{"access": "upd-' + new_id() + '"}', "type": "ec2",
           "user_id": me["user"]["id"], "project_id": me["project"]["id"]}
    cred = api.post(f"{V3}/credentials", json={"credential": ec2}).json()["credential"]
    path = f"{V3}/credentials/{cred['id']}"
    _error(api.patch(path, json={"credential": {}}), 400)
    _error(api.patch(path, json={"credential": {"blob": "not json"}}), 400)
    _error(api.patch(path, json={"credential": {"blob": 3}}), 400)
    _error(api.patch(path, json={"credential": {"project_id": None}}), 400)
    _error(api.patch(path, json={"credential": {"user_id": new_id()}}), 404)
    _error(api.patch(path, json={"credential": []}), 400)
    _error(api.patch(f"{V3}/credentials/{new_id()}", json={"credential": {"blob": "x"}}), 404)
    assert api.get(path).json()["credential"]["blob"] == cred["blob"]


# --- project tags and query flags ---------------------------------------------------------


def test_bad_tag_bodies(api: Any, state: dict[str, Any]) -> None:
    base = f"{V3}/projects/{state['projects']['id']}/tags"
    _error(api.put(base, json={"tag": ["a"]}), 400)
    _error(api.put(base, json=["a"]), 400)
    _error(api.put(base, content=b"{", headers={"Content-Type": "application/json"}), 400)
    _error(api.put(f"{base}/{'t' * 256}"), 400)
    assert api.get(base).json()["tags"] == []


def test_bad_query_flags(api: Any, state: dict[str, Any]) -> None:
    pid = state["projects"]["id"]
    _error(api.get(f"{V3}/projects/{pid}?parents_as_list&parents_as_ids"), 400)
    _error(api.get(f"{V3}/projects/{pid}?subtree_as_ids=maybe"), 400)
    _error(api.get(f"{V3}/users", params={"password_expires_at": "lt:garbage"}), 400)


def test_wrong_methods_are_405(api: Any) -> None:
    _error(api.put(f"{V3}/projects"), 405)
    _error(api.post(f"{V3}/users/{new_id()}"), 405)


def test_free_attributes_with_awkward_names(api: Any) -> None:
    """Extra attributes are stored as given and never break the response."""
    body = {"name": "fa-" + new_id()[:8], "parents": [1, {"project": 2}], "subtree": "x", "links": 5}
    r = api.post(f"{V3}/projects", json={"project": body})
    assert r.status_code == 201, r.text
    p = r.json()["project"]
    assert p["parents"] == [1, {"project": 2}] and p["subtree"] == "x"
    assert p["links"]["self"].endswith(p["id"])
    assert api.get(f"{V3}/projects/{p['id']}?parents_as_list").status_code == 200
    r = api.post(f"{V3}/users", json={"user": {"name": "fa-" + new_id()[:8], "links": 1, "nested": {"a": [1]}}})
    assert r.status_code == 201 and r.json()["user"]["nested"] == {"a": [1]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/projects/x/tags"),
        ("POST", "/OS-TRUST/trusts"),
        ("POST", "/users/x/application_credentials"),
        ("POST", "/groups"),
        ("POST", "/roles"),
        ("POST", "/policies"),
        ("POST", "/OS-EP-FILTER/endpoint_groups"),
        ("POST", "/OS-OAUTH1/consumers"),
    ],
)
def test_caller_is_checked_before_the_body(api: Any, method: str, path: str) -> None:
    """No token and a body without its root key: 401 (as Keystone, whose handlers enforce
    the policy before they look into the body), not 400."""
    _error(api.request(method, V3 + path, who=None, json={}), 401)
