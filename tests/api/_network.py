"""Helpers for the Networking API tests: paths, NeutronError checks, creators."""

from __future__ import annotations

import uuid
from typing import Any

from tests.api._auth_helpers import grant, make_project, make_user, token_of
from tests.api.conftest import Api

N = "/networking/v2.0"


def neutron_error(r: Any, status: int, kind: str, message: str | None = None) -> str:
    """Assert a NeutronError body - exactly ``{"NeutronError": {type, message, detail}}`` -
    with this status and type (and message, when given); return the message."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"NeutronError"}, body
    err = body["NeutronError"]
    assert set(err) == {"type", "message", "detail"}, err
    assert err["type"] == kind, err
    assert err["detail"] == ""
    if message is not None:
        assert err["message"] == message, err["message"]
    return str(err["message"])


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def network(api: Api, who: str = "admin", **body: Any) -> dict[str, Any]:
    body.setdefault("name", name("net"))
    return dict(ok(api.post(f"{N}/networks", who, json={"network": body}), 201)["network"])


def subnet(api: Api, network_id: str, cidr: str, who: str = "admin", **body: Any) -> dict[str, Any]:
    body.setdefault("ip_version", 6 if ":" in cidr else 4)
    r = api.post(f"{N}/subnets", who, json={"subnet": {"network_id": network_id, "cidr": cidr, **body}})
    return dict(ok(r, 201)["subnet"])


def port(api: Api, network_id: str, who: str = "admin", **body: Any) -> dict[str, Any]:
    r = api.post(f"{N}/ports", who, json={"port": {"network_id": network_id, **body}})
    return dict(ok(r, 201)["port"])


def project_of(api: Api, who: str) -> str:
    pid = api.cloud.validator.validate(api.token(who)).project_id  # type: ignore[union-attr]
    assert pid
    return str(pid)


def other_member(api: Api) -> str:
    """A token of a new member user of a new project (a third party)."""
    project = make_project(api)
    user = make_user(api)
    grant(api, user["id"], project["id"], "member")
    return token_of(api, user, project["id"])


def as_token(api: Api, token: str, method: str, path: str, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}) or {})
    headers["X-Auth-Token"] = token
    return api.client.request(method, path, headers=headers, **kw)
