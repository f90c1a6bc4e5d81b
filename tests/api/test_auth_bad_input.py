"""Odd inputs to the auth, application-credential, trust and password APIs: 4xx, never 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

ODD: list[Any] = [None, 1, "x", [], {}, [1], {"id": None}, {"name": 5}, True, {"a": {"b": []}}]


def _auth_bodies() -> list[Any]:
    bodies: list[Any] = []
    for v in ODD:
        bodies += [
            v,
            {"auth": v},
            {"auth": {"identity": v}},
            {"auth": {"identity": {"methods": v}}},
            {"auth": {"identity": {"methods": ["password"], "password": v}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": v}}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": v, "password": "x"}}}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": v, "password": v}}}}},
            {"auth": {"identity": {"methods": ["token"], "token": {"id": v}}}},
            {"auth": {"identity": {"methods": ["application_credential"], "application_credential": v}}},
            {"auth": {"identity": {"methods": ["application_credential"],
                                   "application_credential": {"name": v, "secret": "s", "user": v}}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "y"}}},
                      "scope": v}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "y"}}},
                      "scope": {"project": v}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "y"}}},
                      "scope": {"project": {"name": "p", "domain": v}}}},
            {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "y"}}},
                      "scope": {"OS-TRUST:trust": v}}},
        ]
    return bodies


@pytest.mark.parametrize("body", _auth_bodies())
def test_token_requests(api: Api, body: Any) -> None:
    r = api.client.post("/identity/v3/auth/tokens", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["code"] == r.status_code


@pytest.mark.parametrize("value", ODD)
def test_app_cred_trust_password_requests(api: Api, value: Any) -> None:
    me = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"]["user"]["id"]
    for path, body in [
        (f"/identity/v3/users/{me}/application_credentials", {"application_credential": value}),
        (f"/identity/v3/users/{me}/application_credentials", {"application_credential": {"name": "n", "roles": value}}),
        (f"/identity/v3/users/{me}/application_credentials",
         {"application_credential": {"name": "n", "access_rules": value}}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": value}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": {"trustor_user_id": me, "trustee_user_id": me,
                                                   "impersonation": False, "roles": value}}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": {"trustor_user_id": me, "trustee_user_id": me,
                                                   "impersonation": False, "expires_at": value,
                                                   "remaining_uses": value}}),
        (f"/identity/v3/users/{me}/password", {"user": value}),
        (f"/identity/v3/users/{me}/password", value),
    ]:
        r = api.post(path, json=body)
        assert r.status_code != 500 and r.status_code < 500, (path, body, r.text)
