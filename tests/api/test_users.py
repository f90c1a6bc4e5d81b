"""Keystone v3 users: CRUD, passwords, filters, revocation, projects/groups, policy."""

from __future__ import annotations

import re
from typing import Any

from onestack.common.ids import new_id
from tests.api._auth_helpers import keystone_error as _error

U = "/identity/v3/users"


def _user(api: Any, **fields: Any) -> dict[str, Any]:
    body = {"name": fields.pop("name", "u-" + new_id()[:8]), **fields}
    r = api.post(U, json={"user": body})
    assert r.status_code == 201, r.text
    return r.json()["user"]


def _login(api: Any, name: str, password: str, domain: str = "default") -> Any:
    auth = {"identity": {"methods": ["password"], "password": {
        "user": {"name": name, "domain": {"id": domain}, "password": password}}}}
    return api.client.post("/identity/v3/auth/tokens", json={"auth": auth})


def _valid(api: Any, token: str) -> int:
    r = api.client.get("/identity/v3/auth/tokens", headers={"X-Auth-Token": api.token(), "X-Subject-Token": token})
    return int(r.status_code)


def test_create_and_show(api: Any) -> None:
    u = _user(api, password="secret-1", email="a@example.org", description="d", favourite="tea")
    assert u["domain_id"] == "default" and u["enabled"] is True
    assert u["email"] == "a@example.org" and u["description"] == "d" and u["favourite"] == "tea"
    assert u["password_expires_at"] is None and u["options"] == {}
    assert "password" not in u and not any("hash" in k for k in u)
    assert u["links"]["self"].endswith(f"/identity/v3/users/{u['id']}")
    r = api.get(f"{U}/{u['id']}")
    assert r.status_code == 200 and r.json()["user"]["name"] == u["name"]
    assert "secret-1" not in r.text and "$2" not in r.text and "bcrypt" not in r.text
    assert _login(api, u["name"], "secret-1").status_code == 201


UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                           "message": "The request you have made requires authentication."}}


def test_password_longer_than_bcrypts_72_bytes(api: Any) -> None:
    """A 100-byte password works in full: neither cut at 72 bytes nor a 500."""
    password = "L" * 70 + "-" + "t" * 29
    assert len(password.encode()) == 100
    u = _user(api, password=password)
    assert _login(api, u["name"], password).status_code == 201
    for other in (password[:72], password[:72] + "x" * 28, password + "!"):
        r = _login(api, u["name"], other)
        assert r.status_code == 401 and r.json() == UNAUTHORIZED
    # the same through a password change by the user
    token = _login(api, u["name"], password).headers["X-Subject-Token"]
    longer = "C" * 72 + "é" * 20  # 112 bytes
    r = api.client.post(f"{U}/{u['id']}/password", headers={"X-Auth-Token": token},
                        json={"user": {"original_password": password, "password": longer}})
    assert r.status_code == 204, r.text
    assert _login(api, u["name"], longer).status_code == 201
    assert _login(api, u["name"], "C" * 72 + "e" * 20).status_code == 401


def test_a_hash_from_an_earlier_version_still_verifies(api: Any) -> None:
    """Plain bcrypt hashes (earlier versions: the first 72 bytes) keep working."""
    import bcrypt
    from sqlalchemy import update

    from onestack.identity.models import Password

    u = _user(api, password="will-be-replaced")
    old = bcrypt.hashpw(b"legacy-password", bcrypt.gensalt(4)).decode()
    with api.cloud.db.write() as s:
        s.execute(update(Password).where(Password.user_id == u["id"]).values(password_hash=old))
    api.cloud.service("identity").touch()
    from onestack.identity.passwords import verified_passwords

    verified_passwords.clear()
    assert _login(api, u["name"], "legacy-password").status_code == 201
    assert _login(api, u["name"], "legacy-passworD").json() == UNAUTHORIZED


def test_duplicate_name(api: Any) -> None:
    u = _user(api)
    err = _error(api.post(U, json={"user": {"name": u["name"]}}), 409)
    assert err["message"] == (
        f"Conflict occurred attempting to store user - Duplicate entry found with name {u['name']} "
        "at domain ID default."
    )


def test_unknown_domain(api: Any) -> None:
    err = _error(api.post(U, json={"user": {"name": "x", "domain_id": "nowhere"}}), 404)
    assert err["message"] == "Could not find domain: nowhere."


def test_update_and_admin_password_reset_revokes(api: Any) -> None:
    u = _user(api, password="first-pw")
    token = _login(api, u["name"], "first-pw").headers["X-Subject-Token"]
    assert _valid(api, token) == 200
    r = api.patch(f"{U}/{u['id']}", json={"user": {"email": "b@example.org", "options": {"lock_password": True}}})
    assert r.status_code == 200 and r.json()["user"]["email"] == "b@example.org"
    assert r.json()["user"]["options"] == {"lock_password": True}
    assert _valid(api, token) == 200
    assert api.patch(f"{U}/{u['id']}", json={"user": {"password": "second-pw"}}).status_code == 200
    assert _valid(api, token) == 404
    assert _login(api, u["name"], "first-pw").status_code == 401
    assert _login(api, u["name"], "second-pw").status_code == 201


def test_disable_revokes_and_blocks(api: Any) -> None:
    u = _user(api, password="pw-disable")
    token = _login(api, u["name"], "pw-disable").headers["X-Subject-Token"]
    assert api.patch(f"{U}/{u['id']}", json={"user": {"enabled": False}}).status_code == 200
    assert _valid(api, token) == 404
    assert _login(api, u["name"], "pw-disable").status_code == 401


def test_delete_revokes_and_cleans_up(api: Any) -> None:
    u = _user(api, password="pw-delete")
    token = _login(api, u["name"], "pw-delete").headers["X-Subject-Token"]
    g = api.post("/identity/v3/groups", json={"group": {"name": "g-" + new_id()[:8]}}).json()["group"]
    assert api.put(f"/identity/v3/groups/{g['id']}/users/{u['id']}").status_code == 204
    assert api.delete(f"{U}/{u['id']}").status_code == 204
    assert _valid(api, token) == 404
    err = _error(api.get(f"{U}/{u['id']}"), 404)
    assert err["message"] == f"Could not find user: {u['id']}."
    assert api.get(f"/identity/v3/groups/{g['id']}/users").json()["users"] == []
    _error(api.delete(f"{U}/{u['id']}"), 404)


def test_list_filters(api: Any) -> None:
    a = _user(api, enabled=False)
    b = _user(api)
    r = api.get(U)
    assert r.status_code == 200 and r.json()["links"]["self"].endswith("/v3/users")
    names = {x["name"] for x in r.json()["users"]}
    assert {"admin", "demo", a["name"], b["name"]} <= names
    assert [x["id"] for x in api.get(U, params={"name": a["name"]}).json()["users"]] == [a["id"]]
    off = {x["id"] for x in api.get(U, params={"enabled": "false"}).json()["users"]}
    assert a["id"] in off and b["id"] not in off
    assert api.get(U, params={"domain_id": "nowhere"}).json()["users"] == []


def test_password_expires_at_filter(tmp_path: Any) -> None:
    from tests.api.conftest import make_api
    from tests.conftest import TEST_ENV

    TEST_ENV["ONESTACK_IDENTITY_PASSWORD_EXPIRES_DAYS"] = "10"
    try:
        gen = make_api(tmp_path / "state")
        api = next(gen)
    finally:
        TEST_ENV.pop("ONESTACK_IDENTITY_PASSWORD_EXPIRES_DAYS")
    try:
        u = _user(api, password="expiring-pw")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", u["password_expires_at"])
        nopw = _user(api)
        stamp = u["password_expires_at"]
        ids = lambda r: {x["id"] for x in r.json()["users"]}  # noqa: E731
        assert u["id"] in ids(api.get(U, params={"password_expires_at": "gt:2000-01-01T00:00:00Z"}))
        assert u["id"] not in ids(api.get(U, params={"password_expires_at": "lt:2000-01-01T00:00:00Z"}))
        got = ids(api.get(U, params={"password_expires_at": f"lte:{stamp}"}))
        assert u["id"] in got and nopw["id"] not in got
        _error(api.get(U, params={"password_expires_at": "lt:yesterday"}), 400)
    finally:
        gen.close()


def test_default_project_must_not_be_a_domain(api: Any) -> None:
    _error(api.post(U, json={"user": {"name": "x" + new_id()[:6], "default_project_id": "default"}}), 400)
    u = _user(api)
    _error(api.patch(f"{U}/{u['id']}", json={"user": {"default_project_id": "default"}}), 400)
    _error(api.patch(f"{U}/{u['id']}", json={"user": {"domain_id": "other"}}), 400)


def test_user_projects_and_groups(api: Any) -> None:
    u = _user(api, password="pw-projects")
    p = api.post("/identity/v3/projects", json={"project": {"name": "up-" + new_id()[:8]}}).json()["project"]
    g = api.post("/identity/v3/groups", json={"group": {"name": "ug-" + new_id()[:8]}}).json()["group"]
    rid = api.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    assert api.get(f"{U}/{u['id']}/projects").json()["projects"] == []
    assert api.put(f"/identity/v3/projects/{p['id']}/groups/{g['id']}/roles/{rid}").status_code == 204
    assert api.put(f"/identity/v3/groups/{g['id']}/users/{u['id']}").status_code == 204
    r = api.get(f"{U}/{u['id']}/projects")
    assert r.status_code == 200 and [x["id"] for x in r.json()["projects"]] == [p["id"]]
    assert r.json()["projects"][0]["links"]["self"].endswith(f"/v3/projects/{p['id']}")
    r = api.get(f"{U}/{u['id']}/groups")
    assert [x["id"] for x in r.json()["groups"]] == [g["id"]]
    # the user sees its own lists with its own token
    tok = _login(api, u["name"], "pw-projects").headers["X-Subject-Token"]
    r = api.client.get(f"{U}/{u['id']}/projects", headers={"X-Auth-Token": tok})
    assert r.status_code == 200 and [x["id"] for x in r.json()["projects"]] == [p["id"]]
    assert api.client.get(f"{U}/{u['id']}", headers={"X-Auth-Token": tok}).status_code == 200
    _error(api.get(f"{U}/{new_id()}/projects"), 404)
    _error(api.get(f"{U}/{new_id()}/groups"), 404)


def test_demo_user_policy(api: Any) -> None:
    demo_id = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token("demo")}).json()[
        "token"]["user"]["id"]
    other = _user(api)
    assert api.get(f"{U}/{demo_id}", "demo").status_code == 200  # a user can get itself
    _error(api.get(U, "demo"), 403)
    _error(api.get(f"{U}/{other['id']}", "demo"), 403)
    _error(api.post(U, "demo", json={"user": {"name": "x" + new_id()[:6]}}), 403)
    _error(api.patch(f"{U}/{other['id']}", "demo", json={"user": {"enabled": False}}), 403)
    _error(api.patch(f"{U}/{demo_id}", "demo", json={"user": {"enabled": False}}), 403)
    _error(api.patch(f"{U}/{other['id']}", "demo", json={"user": {"password": "taken-over"}}), 403)
    _error(api.patch(f"{U}/{new_id()}", "demo", json={"user": {"password": "x"}}), 403)
    _error(api.patch(f"{U}/{new_id()}", json={"user": {"password": "x"}}), 404)
    _error(api.delete(f"{U}/{other['id']}", "demo"), 403)
    _error(api.get(f"{U}/{other['id']}/projects", "demo"), 403)
    _error(api.get(f"{U}/{other['id']}/groups", "demo"), 403)
    assert api.get(f"{U}/{demo_id}/projects", "demo").status_code == 200
    assert api.get(f"{U}/{other['id']}").json()["user"]["enabled"] is True


def test_admin_reset_ignores_password_history(tmp_path: Any) -> None:
    """Keystone checks password history on self-service changes only."""
    from tests.api.conftest import make_api
    from tests.conftest import TEST_ENV

    TEST_ENV["ONESTACK_IDENTITY_UNIQUE_LAST_PASSWORD_COUNT"] = "2"
    try:
        gen = make_api(tmp_path / "state")
        api = next(gen)
    finally:
        TEST_ENV.pop("ONESTACK_IDENTITY_UNIQUE_LAST_PASSWORD_COUNT")
    try:
        u = _user(api, password="same-pw-1")
        r = api.patch(f"{U}/{u['id']}", json={"user": {"password": "same-pw-1"}})
        assert r.status_code == 200, r.text
        assert _login(api, u["name"], "same-pw-1").status_code == 201
        # the user's own change still honours the history
        r = api.client.post(
            f"{U}/{u['id']}/password",
            headers={"X-Auth-Token": _login(api, u["name"], "same-pw-1").headers["X-Subject-Token"]},
            json={"user": {"original_password": "same-pw-1", "password": "same-pw-1"}},
        )
        assert r.status_code == 400, r.text
    finally:
        gen.close()


def test_delete_removes_application_credentials(api: Any) -> None:
    from onestack.identity.models import ApplicationCredential

    u = _user(api, password="pw-appcred")
    p = api.post("/identity/v3/projects", json={"project": {"name": "ap-" + new_id()[:8]}}).json()["project"]
    rid = api.get("/identity/v3/roles", params={"name": "member"}).json()["roles"][0]["id"]
    assert api.put(f"/identity/v3/projects/{p['id']}/users/{u['id']}/roles/{rid}").status_code == 204
    auth = {"identity": {"methods": ["password"], "password": {"user": {"id": u["id"], "password": "pw-appcred"}}},
            "scope": {"project": {"id": p["id"]}}}
    tok = api.client.post("/identity/v3/auth/tokens", json={"auth": auth}).headers["X-Subject-Token"]
    r = api.client.post(f"{U}/{u['id']}/application_credentials", headers={"X-Auth-Token": tok},
                        json={"application_credential": {"name": "ac"}})
    assert r.status_code == 201, r.text
    assert api.delete(f"{U}/{u['id']}").status_code == 204
    with api.cloud.db.read() as s:
        assert s.query(ApplicationCredential).filter_by(user_id=u["id"]).count() == 0
