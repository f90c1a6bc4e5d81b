"""Small helpers for the identity API tests (users, projects, grants, logins)."""

from __future__ import annotations

from typing import Any

from onestack.common.ids import new_id

TOKENS = "/identity/v3/auth/tokens"


def keystone_error(r: Any, code: int) -> dict[str, Any]:
    """The ``error`` of a Keystone error response, after checking its status and shape:
    ``{"error": {"code": <status>, "title": "...", "message": "..."}}`` and nothing else."""
    assert r.status_code == code, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code and isinstance(err["title"], str) and isinstance(err["message"], str)
    assert err["title"] and err["message"]
    return dict(err)


def role_id(api: Any, name: str) -> str:
    r = api.get(f"/identity/v3/roles?name={name}")
    assert r.status_code == 200, r.text
    return str(r.json()["roles"][0]["id"])


def make_project(api: Any) -> dict[str, Any]:
    r = api.post("/identity/v3/projects", json={"project": {"name": "p-" + new_id()[:8], "domain_id": "default"}})
    assert r.status_code == 201, r.text
    return dict(r.json()["project"])


def make_user(api: Any, password: str = "pw-" + "x" * 8, **fields: Any) -> dict[str, Any]:
    body = {"name": "u-" + new_id()[:8], "password": password, "domain_id": "default", **fields}
    r = api.post("/identity/v3/users", json={"user": body})
    assert r.status_code == 201, r.text
    user = dict(r.json()["user"])
    user["password"] = password
    return user


def grant(api: Any, user_id: str, project_id: str, role: str = "member") -> None:
    r = api.put(f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{role_id(api, role)}")
    assert r.status_code == 204, r.text


def login(api: Any, user: dict[str, Any], project_id: str | None = None, password: str | None = None) -> Any:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {
        "user": {"id": user["id"], "password": password or user["password"]}}}}
    if project_id:
        auth["scope"] = {"project": {"id": project_id}}
    return api.client.post(TOKENS, json={"auth": auth})


def token_of(api: Any, user: dict[str, Any], project_id: str | None = None) -> str:
    r = login(api, user, project_id)
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"])


def as_token(api: Any, token: str, method: str, path: str, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}) or {})
    headers["X-Auth-Token"] = token
    return api.client.request(method, path, headers=headers, **kw)


def valid(api: Any, token: str) -> int:
    r = api.client.get(TOKENS, headers={"X-Auth-Token": api.token(), "X-Subject-Token": token})
    return int(r.status_code)
