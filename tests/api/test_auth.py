"""POST/GET/HEAD/DELETE /v3/auth/tokens and the token owner's views."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

TOKENS = "/identity/v3/auth/tokens"


def password_auth(username: str, password: str, scope: dict[str, Any] | None = None,
                  domain: dict[str, str] | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": username, "domain": domain or {"id": "default"},
                                  "password": password}},
        }
    }
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


def admin_scope() -> dict[str, Any]:
    return {"project": {"name": "admin", "domain": {"id": "default"}}}


def issue(api: Api, body: dict[str, Any], query: str = "") -> Any:
    return api.client.post(TOKENS + query, json=body)


def validate(api: Api, subject: str, who: str = "admin", query: str = "") -> Any:
    return api.get(TOKENS + query, who, headers={"X-Subject-Token": subject})


def test_project_scoped_token_body(api: Api) -> None:
    a = api.admin_auth
    r = issue(api, password_auth(a["username"], a["password"], admin_scope()))
    assert r.status_code == 201
    token = r.headers["X-Subject-Token"]
    assert len(token) < 255
    body = r.json()["token"]
    assert body["methods"] == ["password"]
    assert body["user"]["name"] == "admin"
    assert body["user"]["domain"] == {"id": "default", "name": "Default"}
    assert "password_expires_at" in body["user"]
    assert body["project"]["name"] == "admin"
    assert body["project"]["domain"] == {"id": "default", "name": "Default"}
    assert body["is_domain"] is False
    assert body["is_admin_project"] is True
    assert {r["name"] for r in body["roles"]} == {"admin", "manager", "member", "reader"}
    assert body["expires_at"].endswith(".000000Z")
    assert len(body["issued_at"]) == len("2026-01-01T00:00:00.000000Z") and body["issued_at"].endswith("Z")
    assert len(body["audit_ids"]) == 1 and len(body["audit_ids"][0]) == 22
    types = {entry["type"] for entry in body["catalog"]}
    assert "identity" in types
    identity = next(e for e in body["catalog"] if e["type"] == "identity")
    assert {e["interface"] for e in identity["endpoints"]} == {"public", "internal", "admin"}
    assert all(e["url"].endswith("/identity") and e["region_id"] == "RegionOne" for e in identity["endpoints"])


def test_nocatalog_and_unscoped(api: Api) -> None:
    a = api.admin_auth
    r = issue(api, password_auth(a["username"], a["password"], admin_scope()), "?nocatalog")
    assert r.status_code == 201 and "catalog" not in r.json()["token"]
    r = issue(api, password_auth(a["username"], a["password"]))
    assert r.status_code == 201
    body = r.json()["token"]
    assert "project" not in body and "roles" not in body and "catalog" not in body


def test_user_by_id_and_domain_by_name(api: Api) -> None:
    a = api.admin_auth
    r = issue(api, password_auth(a["username"], a["password"], domain={"name": "Default"}))
    user_id = r.json()["token"]["user"]["id"]
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"id": user_id, "password": a["password"]}}},
                     "scope": admin_scope()}}
    r = issue(api, body)
    assert r.status_code == 201
    assert r.json()["token"]["user"]["id"] == user_id


def test_system_and_domain_scope(api: Api) -> None:
    a = api.admin_auth
    r = issue(api, password_auth(a["username"], a["password"], {"system": {"all": True}}))
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["system"] == {"all": True}
    assert "admin" in {x["name"] for x in body["roles"]}
    # admin has no role on the Default domain: 401
    r = issue(api, password_auth(a["username"], a["password"], {"domain": {"id": "default"}}))
    assert r.status_code == 401
    # the demo user has no system role
    d = api.demo_auth
    r = issue(api, password_auth(d["username"], d["password"], {"system": {"all": True}}))
    assert r.status_code == 401


@pytest.mark.parametrize("password", ["wrong", "", "x" * 100])
def test_bad_password_is_401(api: Api, password: str) -> None:
    r = issue(api, password_auth("admin", password, admin_scope()))
    assert r.status_code == 401
    err = r.json()["error"]
    assert err == {"code": 401, "title": "Unauthorized",
                   "message": "The request you have made requires authentication."}
    assert "WWW-Authenticate" in r.headers


def test_unknown_user_or_domain_is_401(api: Api) -> None:
    assert issue(api, password_auth("nobody", "x")).status_code == 401
    assert issue(api, password_auth("admin", "x", domain={"name": "Nope"})).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"auth": "x"},
        {"auth": {}},
        {"auth": {"identity": {}}},
        {"auth": {"identity": {"methods": ["password"]}}},
        {"auth": {"identity": {"methods": ["password"], "password": {}}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "x"}}}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": "x"}}}}},
        {"auth": {"identity": {"methods": ["token"], "token": {}}}},
    ],
)
def test_malformed_auth_bodies_are_400(api: Api, body: dict[str, Any]) -> None:
    r = issue(api, body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == 400


def test_malformed_json_is_400(api: Api) -> None:
    r = api.client.post(TOKENS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_bad_scopes(api: Api) -> None:
    a = api.admin_auth
    two = {"project": {"id": "x"}, "domain": {"id": "default"}}
    assert issue(api, password_auth(a["username"], a["password"], two)).status_code == 400
    nodomain = {"project": {"name": "admin"}}
    assert issue(api, password_auth(a["username"], a["password"], nodomain)).status_code == 400
    system = {"system": {"all": False}}
    assert issue(api, password_auth(a["username"], a["password"], system)).status_code == 400
    unknown = {"project": {"id": "does-not-exist"}}
    r = issue(api, password_auth(a["username"], a["password"], unknown))
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "The request you have made requires authentication."
    # demo has no role on the admin project
    d = api.demo_auth
    assert issue(api, password_auth(d["username"], d["password"], admin_scope())).status_code == 401


def test_unsupported_method_is_401(api: Api) -> None:
    body = {"auth": {"identity": {"methods": ["kerberos"], "kerberos": {}}}}
    r = issue(api, body)
    assert r.status_code == 401
    assert "unsupported method" in r.json()["error"]["message"]


def test_validate_check_revoke(api: Api) -> None:
    d = api.demo_auth
    r = issue(api, password_auth(d["username"], d["password"], {"project": {"name": "demo", "domain": {"id": "default"}}}))
    token = r.headers["X-Subject-Token"]
    # admin validates anyone's token; twice (cached path gives the same answer)
    for _ in range(2):
        v = validate(api, token)
        assert v.status_code == 200
        assert v.headers["X-Subject-Token"] == token
        assert v.json()["token"]["project"]["name"] == "demo"
        assert v.json()["token"]["is_admin_project"] is False
        assert "catalog" in v.json()["token"]
    assert "catalog" not in validate(api, token, query="?nocatalog").json()["token"]
    h = api.client.head(TOKENS, headers={"X-Auth-Token": api.token(), "X-Subject-Token": token})
    assert h.status_code == 200
    # the owner validates their own token
    own = api.client.get(TOKENS, headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert own.status_code == 200
    # revoke, then it is gone for everyone
    rv = api.client.delete(TOKENS, headers={"X-Auth-Token": token, "X-Subject-Token": token})
    assert rv.status_code == 204
    v = validate(api, token)
    assert v.status_code == 404
    assert v.json()["error"]["message"].startswith("Could not find token")
    h = api.client.head(TOKENS, headers={"X-Auth-Token": api.token(), "X-Subject-Token": token})
    assert h.status_code == 404
    # the revoked token no longer authenticates
    r = api.client.get("/identity/v3/auth/projects", headers={"X-Auth-Token": token})
    assert r.status_code == 401


def test_demo_cannot_validate_or_revoke_others_tokens(api: Api) -> None:
    admin_token = api.token("admin")
    r = validate(api, admin_token, who="demo")
    assert r.status_code == 403
    r = api.delete(TOKENS, "demo", headers={"X-Subject-Token": admin_token})
    assert r.status_code == 403
    assert validate(api, admin_token).status_code == 200


def test_invalid_subject_and_caller(api: Api) -> None:
    assert validate(api, "garbage").status_code == 404
    assert validate(api, "gAAAAAB" + "A" * 150).status_code == 404
    r = api.client.get(TOKENS, headers={"X-Subject-Token": api.token()})
    assert r.status_code == 401
    r = api.client.get(TOKENS, headers={"X-Auth-Token": "garbage", "X-Subject-Token": api.token()})
    assert r.status_code == 401
    r = api.client.get(TOKENS, headers={"X-Auth-Token": api.token()})
    assert r.status_code == 400


def test_token_method_rescopes_and_keeps_expiry(api: Api) -> None:
    a = api.admin_auth
    r = issue(api, password_auth(a["username"], a["password"]))
    unscoped = r.headers["X-Subject-Token"]
    first = r.json()["token"]
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": admin_scope()}}
    r = issue(api, body)
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    assert tok["methods"] == ["token", "password"]
    assert tok["expires_at"] == first["expires_at"]
    assert tok["audit_ids"][1] == first["audit_ids"][0]
    assert tok["issued_at"] != first["issued_at"]
    assert tok["project"]["name"] == "admin"
    bad = {"auth": {"identity": {"methods": ["token"], "token": {"id": "nope"}}}}
    r = issue(api, bad)
    assert r.status_code == 404  # Keystone: "Could not find token"
    assert r.json()["error"]["message"].startswith("Could not find token")


def test_auth_projects_domains_system_catalog(api: Api) -> None:
    r = api.get("/identity/v3/auth/projects", "demo")
    assert r.status_code == 200
    assert [p["name"] for p in r.json()["projects"]] == ["demo"]
    assert r.json()["projects"][0]["links"]["self"].endswith(r.json()["projects"][0]["id"])
    r = api.get("/identity/v3/auth/domains", "demo")
    assert r.status_code == 200 and r.json()["domains"] == []
    assert api.get("/identity/v3/auth/system", "demo").json()["system"] == []
    assert api.get("/identity/v3/auth/system", "admin").json()["system"] == [{"all": True}]
    r = api.get("/identity/v3/auth/catalog", "demo")
    assert r.status_code == 200
    assert any(e["type"] == "identity" for e in r.json()["catalog"])
    a = api.admin_auth
    unscoped = issue(api, password_auth(a["username"], a["password"])).headers["X-Subject-Token"]
    r = api.client.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": unscoped})
    assert r.status_code == 403
    assert api.client.get("/identity/v3/auth/projects").status_code == 401


def test_default_project_scoping(api: Api) -> None:
    from tests.api._auth_helpers import grant, make_project, make_user

    project = make_project(api)
    user = make_user(api, default_project_id=project["id"])
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"id": user["id"], "password": user["password"]}}}}}
    # no role on the default project yet: unscoped
    r = issue(api, body)
    assert r.status_code == 201 and "project" not in r.json()["token"]
    grant(api, user["id"], project["id"])
    r = issue(api, body)
    assert r.json()["token"]["project"]["id"] == project["id"]
    # an explicitly unscoped request stays unscoped
    r = issue(api, {"auth": {**body["auth"], "scope": "unscoped"}})
    assert r.status_code == 201 and "project" not in r.json()["token"]


def test_key_rotation_keeps_tokens_valid(fresh_api: Api) -> None:
    api = fresh_api
    old = api.token("demo")
    keys = api.cloud.service("identity").tokens.keys
    keys.rotate()
    assert validate(api, old).status_code == 200
    a = api.admin_auth
    new = issue(api, password_auth(a["username"], a["password"], admin_scope())).headers["X-Subject-Token"]
    assert validate(api, new).status_code == 200
    for _ in range(5):  # max_fernet_keys (5): the first primary is gone after enough rotations
        keys.rotate()
    newest = issue(api, password_auth(a["username"], a["password"], admin_scope())).headers["X-Subject-Token"]
    r = api.client.get(TOKENS, headers={"X-Auth-Token": newest, "X-Subject-Token": old})
    assert r.status_code == 404


def test_expired_tokens_and_allow_expired(tmp_path: Any) -> None:
    import time

    from tests.api.conftest import make_api

    state = tmp_path / "state"
    state.mkdir()
    (state / "onestack.toml").write_text("[identity]\ntoken_expiration = 1\n")
    for api in make_api(state):
        d = api.demo_auth
        old = issue(api, password_auth(d["username"], d["password"])).headers["X-Subject-Token"]
        time.sleep(1.2)
        a = api.admin_auth
        admin = issue(api, password_auth(a["username"], a["password"], admin_scope())).headers["X-Subject-Token"]
        hdrs = {"X-Auth-Token": admin, "X-Subject-Token": old}
        assert api.client.get(TOKENS, headers=hdrs).status_code == 404
        r = api.client.get(TOKENS + "?allow_expired=1", headers=hdrs)
        assert r.status_code == 200
        assert r.json()["token"]["user"]["name"] == d["username"]
        assert api.client.get("/identity/v3/auth/projects", headers={"X-Auth-Token": old}).status_code == 401


def test_fast_path_answers_like_the_full_handler(api: Api) -> None:
    """Repeated validations come from memory with the same status, headers and body."""
    subject = api.token("demo")
    hdrs = {"X-Auth-Token": api.token(), "X-Subject-Token": subject}
    first = api.client.get(TOKENS, headers=hdrs)
    tokens = api.cloud.service("identity").tokens
    assert tokens.lookup_fast(subject) is not None
    for query in ("", "?nocatalog"):
        slow = api.client.get(TOKENS + query, headers=hdrs)
        fast = api.client.get(TOKENS + query, headers=hdrs)
        assert slow.status_code == fast.status_code == 200
        assert slow.content == fast.content
        assert fast.headers["X-Subject-Token"] == subject
        assert fast.headers["Content-Type"] == "application/json"
        assert fast.headers["X-OpenStack-Request-ID"].startswith("req-")
    assert first.content == api.client.get(TOKENS, headers=hdrs).content
    head = api.client.head(TOKENS, headers=hdrs)
    assert head.status_code == 200 and head.content == b""
    # a change anywhere in identity drops the memory; the answer stays right
    api.cloud.service("identity").touch()
    assert tokens.lookup_fast(subject) is None
    assert api.client.get(TOKENS, headers=hdrs).content == first.content


def test_data_read_before_a_write_is_not_cached_after_it(api: Api) -> None:
    identity = api.cloud.service("identity")
    tokens = identity.tokens
    with tokens.read():
        identity.touch()  # a write committed while this session's snapshot was open
        assert tokens.cached(("probe",), lambda: "old") == "old"
    assert tokens.cached(("probe",), lambda: "new") == "new"
    assert tokens.cached(("probe",), lambda: "newer") == "new"  # stored the second time
