"""Application credentials: create, list, show, delete, authenticate, restrictions."""

from __future__ import annotations

from typing import Any

from tests.api._auth_helpers import (
    TOKENS,
    as_token,
    grant,
    make_project,
    make_user,
    role_id,
    token_of,
    valid,
)


def _setup(api: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    project = make_project(api)
    user = make_user(api)
    grant(api, user["id"], project["id"], "member")
    return user, project, token_of(api, user, project["id"])


def _ac_auth(ac_id: str, secret: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": ac_id, "secret": secret}}}}


def test_create_authenticate_delete(api: Any) -> None:
    user, project, token = _setup(api)
    base = f"/identity/v3/users/{user['id']}/application_credentials"
    r = as_token(api, token, "POST", base, json={"application_credential": {
        "name": "ci", "description": "for CI", "roles": [{"name": "reader"}]}})
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    assert ac["secret"] and ac["project_id"] == project["id"] and ac["unrestricted"] is False
    assert [x["name"] for x in ac["roles"]] == ["reader"]
    assert ac["links"]["self"].endswith(ac["id"])
    # the secret is shown once
    shown = as_token(api, token, "GET", f"{base}/{ac['id']}").json()["application_credential"]
    assert "secret" not in shown and shown["name"] == "ci"
    listed = as_token(api, token, "GET", base + "?name=ci").json()["application_credentials"]
    assert [x["id"] for x in listed] == [ac["id"]]
    assert as_token(api, token, "GET", base + "?name=other").json()["application_credentials"] == []
    # authenticate with it: project scoped, limited roles
    r = api.client.post(TOKENS, json=_ac_auth(ac["id"], ac["secret"]))
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["methods"] == ["application_credential"]
    assert body["project"]["id"] == project["id"]
    assert [x["name"] for x in body["roles"]] == ["reader"]
    assert body["application_credential"] == {"id": ac["id"], "name": "ci", "restricted": True}
    ac_token = r.headers["X-Subject-Token"]
    # by name + user
    by_name = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ci", "user": {"id": user["id"]}, "secret": ac["secret"]}}}}
    assert api.client.post(TOKENS, json=by_name).status_code == 201
    # wrong secret
    assert api.client.post(TOKENS, json=_ac_auth(ac["id"], "nope")).status_code == 401
    # a restricted app-cred token cannot make more credentials or trusts
    r = as_token(api, ac_token, "POST", base, json={"application_credential": {"name": "more"}})
    assert r.status_code == 403
    r = as_token(api, ac_token, "POST", "/identity/v3/OS-TRUST/trusts", json={"trust": {
        "trustor_user_id": user["id"], "trustee_user_id": user["id"], "impersonation": False}})
    assert r.status_code == 403
    # delete: its tokens go too
    assert as_token(api, token, "DELETE", f"{base}/{ac['id']}").status_code == 204
    assert valid(api, ac_token) == 404
    assert api.client.post(TOKENS, json=_ac_auth(ac["id"], ac["secret"])).status_code == 401
    assert as_token(api, token, "GET", f"{base}/{ac['id']}").status_code == 404


def test_given_secret_unrestricted_and_expiry(api: Any) -> None:
    user, _, token = _setup(api)
    base = f"/identity/v3/users/{user['id']}/application_credentials"
    r = as_token(api, token, "POST", base, json={"application_credential": {
        "name": "mine", "secret": "s3cret", "unrestricted": True, "expires_at": "2099-01-01T00:00:00Z"}})
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    assert ac["secret"] == "s3cret" and ac["unrestricted"] is True
    assert ac["expires_at"].startswith("2099-01-01T00:00:00")
    assert {x["name"] for x in ac["roles"]} == {"member", "reader"}
    r = api.client.post(TOKENS, json=_ac_auth(ac["id"], "s3cret"))
    assert r.status_code == 201
    # unrestricted: may create another one
    r = as_token(api, r.headers["X-Subject-Token"], "POST", base,
                 json={"application_credential": {"name": "child"}})
    assert r.status_code == 201, r.text


def test_bad_input(api: Any) -> None:
    user, _, token = _setup(api)
    base = f"/identity/v3/users/{user['id']}/application_credentials"
    cases = [
        {"application_credential": {}},
        {"application_credential": {"name": ""}},
        {"application_credential": {"name": "x", "bogus": 1}},
        {"application_credential": {"name": "x", "expires_at": "yesterday"}},
        {"application_credential": {"name": "x", "expires_at": "2000-01-01T00:00:00Z"}},
        {"application_credential": {"name": "x", "unrestricted": "yes"}},
        {"application_credential": {"name": "x", "roles": "member"}},
        {"nothing": {}},
    ]
    for body in cases:
        r = as_token(api, token, "POST", base, json=body)
        assert r.status_code == 400, (body, r.text)
    # a role the user does not hold there
    r = as_token(api, token, "POST", base, json={"application_credential": {
        "name": "x", "roles": [{"id": role_id(api, "admin")}]}})
    assert r.status_code == 404
    r = as_token(api, token, "POST", base, json={"application_credential": {"name": "x", "roles": [{"name": "nope"}]}})
    assert r.status_code == 404
    assert as_token(api, token, "POST", base, json={"application_credential": {"name": "dup"}}).status_code == 201
    r = as_token(api, token, "POST", base, json={"application_credential": {"name": "dup"}})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == 409
    assert as_token(api, token, "GET", f"{base}/nope").status_code == 404


def test_other_users_cannot_touch(api: Any) -> None:
    user, _, token = _setup(api)
    base = f"/identity/v3/users/{user['id']}/application_credentials"
    ac = as_token(api, token, "POST", base, json={"application_credential": {"name": "x"}}).json()
    ac_id = ac["application_credential"]["id"]
    assert api.get(base, "demo").status_code == 403
    assert api.get(f"{base}/{ac_id}", "demo").status_code == 403
    assert api.delete(f"{base}/{ac_id}", "demo").status_code == 403
    assert api.post(base, "demo", json={"application_credential": {"name": "evil"}}).status_code == 403
    # the cloud admin can read it
    assert api.get(f"{base}/{ac_id}").status_code == 200


def test_access_rules(api: Any) -> None:
    user, _, token = _setup(api)
    base = f"/identity/v3/users/{user['id']}/application_credentials"
    rules = [{"service": "compute", "path": "/v2.1/servers", "method": "GET"}]
    r = as_token(api, token, "POST", base, json={"application_credential": {"name": "ar", "access_rules": rules}})
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    rule = ac["access_rules"][0]
    assert rule["service"] == "compute" and rule["id"]
    rb = f"/identity/v3/users/{user['id']}/access_rules"
    listed = as_token(api, token, "GET", rb).json()["access_rules"]
    assert [x["id"] for x in listed] == [rule["id"]]
    assert as_token(api, token, "GET", f"{rb}/{rule['id']}").status_code == 200
    assert as_token(api, token, "DELETE", f"{rb}/{rule['id']}").status_code == 403  # in use
    assert as_token(api, token, "DELETE", f"{base}/{ac['id']}").status_code == 204
    assert as_token(api, token, "DELETE", f"{rb}/{rule['id']}").status_code == 204
    assert as_token(api, token, "GET", f"{rb}/{rule['id']}").status_code == 404
    bad = [{"service": "compute", "path": "/x", "method": "FETCH"}]
    r = as_token(api, token, "POST", base, json={"application_credential": {"name": "b", "access_rules": bad}})
    assert r.status_code == 400
