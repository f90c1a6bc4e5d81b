"""Odd inputs to the token, application-credential, trust and password APIs.

Every body here was sent to a real Keystone 30 and to onestack side by side
(``/work/shared/reference/keystone``); each case asserts onestack's exact status and
error body. The token API answers Keystone's status and message (the first line of it:
Keystone appends the JSON schema that failed) except where Keystone answers 500 (an
application credential that is not an object), says "in None" (a password method without
a user) or "Could not recognize Fernet token"; the other APIs answer Keystone's status in
onestack's own wording. Nothing is written by a refused request.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

ODD: list[Any] = [None, 1, "x", [], {}, [1], {"id": None}, {"name": 5}, True, {"a": {"b": []}}]
UNAUTHORIZED = "The request you have made requires authentication."


def expecting(attribute: str, target: str) -> str:
    return (f"Expecting to find {attribute} in {target}. The server could not comply with the request since "
            "it is either malformed or otherwise incorrect. The client is assumed to be in error.")


def _auth_body(template: int, v: Any) -> Any:
    user_xy = {"methods": ["password"], "password": {"user": {"id": "x", "password": "y"}}}
    return [
        v,
        {"auth": v},
        {"auth": {"identity": v}},
        {"auth": {"identity": {"methods": v}}},
        {"auth": {"identity": {"methods": ["password"], "password": v}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": v}}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": v,
                                                                                "password": "x"}}}}},
        {"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": v, "password": v}}}}},
        {"auth": {"identity": {"methods": ["token"], "token": {"id": v}}}},
        {"auth": {"identity": {"methods": ["application_credential"], "application_credential": v}}},
        {"auth": {"identity": {"methods": ["application_credential"],
                               "application_credential": {"name": v, "secret": "s", "user": v}}}},
        {"auth": {"identity": user_xy, "scope": v}},
        {"auth": {"identity": user_xy, "scope": {"project": v}}},
        {"auth": {"identity": user_xy, "scope": {"project": {"name": "p", "domain": v}}}},
        {"auth": {"identity": user_xy, "scope": {"OS-TRUST:trust": v}}},
    ][template]


# (body template, ODD index, status, message)
TOKEN_CASES: list[tuple[int, int, int, str]] = [
    (0, 0, 400, expecting('auth', 'request body')),
    (1, 0, 400, expecting('auth', 'request body')),
    (2, 0, 400, "Invalid input for field 'identity': None is not of type 'object'"),
    (3, 0, 400, "Invalid input for field 'identity/methods': None is not of type 'array'"),
    (4, 0, 400, "Invalid input for field 'identity/password': None is not of type 'object'"),
    (5, 0, 400, "Invalid input for field 'identity/password/user': None is not of type 'object'"),
    (6, 0, 400, "Invalid input for field 'identity/password/user/domain': None is not of type 'object'"),
    (7, 0, 400, "Invalid input for field 'identity/password/user/id': None is not of type 'string'"),
    (8, 0, 400, "Invalid input for field 'identity/token/id': None is not of type 'string'"),
    (9, 0, 400, "Invalid input for field 'identity/application_credential': None is not of type 'object'"),  # Keystone: 500
    (10, 0, 400, expecting('name or ID', 'application credential')),
    (11, 0, 400, "Invalid input for field 'scope': None is not of type 'object', 'string'"),
    (12, 0, 400, "Invalid input for field 'scope/project': None is not of type 'object'"),
    (13, 0, 400, "Invalid input for field 'scope/project/domain': None is not of type 'object'"),
    (14, 0, 400, "Invalid input for field 'scope/OS-TRUST:trust': None is not of type 'object'"),
    (0, 1, 400, expecting('valid JSON', 'request body')),
    (1, 1, 400, "1 is not of type 'object'"),
    (2, 1, 400, "Invalid input for field 'identity': 1 is not of type 'object'"),
    (3, 1, 400, "Invalid input for field 'identity/methods': 1 is not of type 'array'"),
    (4, 1, 400, "Invalid input for field 'identity/password': 1 is not of type 'object'"),
    (5, 1, 400, "Invalid input for field 'identity/password/user': 1 is not of type 'object'"),
    (6, 1, 400, "Invalid input for field 'identity/password/user/domain': 1 is not of type 'object'"),
    (7, 1, 400, "Invalid input for field 'identity/password/user/id': 1 is not of type 'string'"),
    (8, 1, 400, "Invalid input for field 'identity/token/id': 1 is not of type 'string'"),
    (9, 1, 400, "Invalid input for field 'identity/application_credential': 1 is not of type 'object'"),  # Keystone: 500
    (10, 1, 400, "Invalid input for field 'identity/application_credential/user': 1 is not of type 'object'"),  # Keystone: 500
    (11, 1, 400, "Invalid input for field 'scope': 1 is not of type 'object', 'string'"),
    (12, 1, 400, "Invalid input for field 'scope/project': 1 is not of type 'object'"),
    (13, 1, 400, "Invalid input for field 'scope/project/domain': 1 is not of type 'object'"),
    (14, 1, 400, "Invalid input for field 'scope/OS-TRUST:trust': 1 is not of type 'object'"),
    (0, 2, 400, expecting('valid JSON', 'request body')),
    (1, 2, 400, "'x' is not of type 'object'"),
    (2, 2, 400, "Invalid input for field 'identity': 'x' is not of type 'object'"),
    (3, 2, 400, "Invalid input for field 'identity/methods': 'x' is not of type 'array'"),
    (4, 2, 400, "Invalid input for field 'identity/password': 'x' is not of type 'object'"),
    (5, 2, 400, "Invalid input for field 'identity/password/user': 'x' is not of type 'object'"),
    (6, 2, 400, "Invalid input for field 'identity/password/user/domain': 'x' is not of type 'object'"),
    (7, 2, 401, UNAUTHORIZED),
    (8, 2, 404, 'Could not find token: x'),  # Keystone: 'Could not recognize Fernet token'
    (9, 2, 400, "Invalid input for field 'identity/application_credential': 'x' is not of type 'object'"),  # Keystone: 500
    (10, 2, 400, "Invalid input for field 'identity/application_credential/user': 'x' is not of type 'object'"),  # Keystone: 500
    (11, 2, 400, expecting('system, project, domain, OS-TRUST:trust or unscoped', 'scope')),
    (12, 2, 400, "Invalid input for field 'scope/project': 'x' is not of type 'object'"),
    (13, 2, 400, "Invalid input for field 'scope/project/domain': 'x' is not of type 'object'"),
    (14, 2, 400, "Invalid input for field 'scope/OS-TRUST:trust': 'x' is not of type 'object'"),
    (0, 3, 400, expecting('valid JSON', 'request body')),
    (1, 3, 400, "[] is not of type 'object'"),
    (2, 3, 400, "Invalid input for field 'identity': [] is not of type 'object'"),
    (3, 3, 401, UNAUTHORIZED),
    (4, 3, 400, "Invalid input for field 'identity/password': [] is not of type 'object'"),
    (5, 3, 400, "Invalid input for field 'identity/password/user': [] is not of type 'object'"),
    (6, 3, 400, "Invalid input for field 'identity/password/user/domain': [] is not of type 'object'"),
    (7, 3, 400, "Invalid input for field 'identity/password/user/id': [] is not of type 'string'"),
    (8, 3, 400, "Invalid input for field 'identity/token/id': [] is not of type 'string'"),
    (9, 3, 400, "Invalid input for field 'identity/application_credential': [] is not of type 'object'"),  # Keystone: 500
    (10, 3, 400, expecting('name or ID', 'application credential')),
    (11, 3, 400, "Invalid input for field 'scope': [] is not of type 'object', 'string'"),
    (12, 3, 400, "Invalid input for field 'scope/project': [] is not of type 'object'"),
    (13, 3, 400, "Invalid input for field 'scope/project/domain': [] is not of type 'object'"),
    (14, 3, 400, "Invalid input for field 'scope/OS-TRUST:trust': [] is not of type 'object'"),
    (0, 4, 400, expecting('auth', 'request body')),
    (1, 4, 400, "'identity' is a required property"),
    (2, 4, 400, "Invalid input for field 'identity': 'methods' is a required property"),
    (3, 4, 400, "Invalid input for field 'identity/methods': {} is not of type 'array'"),
    (4, 4, 400, expecting('user', 'password')),  # Keystone: 'in None' (its bug)
    (5, 4, 400, 'Invalid input for field identity/password/user: id or name must be present.'),
    (6, 4, 400, 'Invalid input for field identity/password/user/domain: id or name must be present.'),
    (7, 4, 400, "Invalid input for field 'identity/password/user/id': {} is not of type 'string'"),
    (8, 4, 400, "Invalid input for field 'identity/token/id': {} is not of type 'string'"),
    (9, 4, 400, expecting('name or ID', 'application credential')),
    (10, 4, 400, expecting('name or ID', 'application credential')),
    (11, 4, 400, expecting('system, project, domain, OS-TRUST:trust or unscoped', 'scope')),
    (12, 4, 400, 'Invalid input for field scope/project: id or name must be present.'),
    (13, 4, 400, 'Invalid input for field scope/project/domain: id or name must be present.'),
    (14, 4, 400, expecting('trust_id', 'trust')),
    (0, 5, 400, expecting('valid JSON', 'request body')),
    (1, 5, 400, "[1] is not of type 'object'"),
    (2, 5, 400, "Invalid input for field 'identity': [1] is not of type 'object'"),
    (3, 5, 400, "Invalid input for field 'identity/methods/0': 1 is not of type 'string'"),
    (4, 5, 400, "Invalid input for field 'identity/password': [1] is not of type 'object'"),
    (5, 5, 400, "Invalid input for field 'identity/password/user': [1] is not of type 'object'"),
    (6, 5, 400, "Invalid input for field 'identity/password/user/domain': [1] is not of type 'object'"),
    (7, 5, 400, "Invalid input for field 'identity/password/user/id': [1] is not of type 'string'"),
    (8, 5, 400, "Invalid input for field 'identity/token/id': [1] is not of type 'string'"),
    (9, 5, 400, "Invalid input for field 'identity/application_credential': [1] is not of type 'object'"),  # Keystone: 500
    (10, 5, 400, "Invalid input for field 'identity/application_credential/user': [1] is not of type 'object'"),  # Keystone: 500
    (11, 5, 400, "Invalid input for field 'scope': [1] is not of type 'object', 'string'"),
    (12, 5, 400, "Invalid input for field 'scope/project': [1] is not of type 'object'"),
    (13, 5, 400, "Invalid input for field 'scope/project/domain': [1] is not of type 'object'"),
    (14, 5, 400, "Invalid input for field 'scope/OS-TRUST:trust': [1] is not of type 'object'"),
    (0, 6, 400, expecting('auth', 'request body')),
    (1, 6, 400, "'identity' is a required property"),
    (2, 6, 400, "Invalid input for field 'identity': 'methods' is a required property"),
    (3, 6, 400, "Invalid input for field 'identity/methods': {'id': None} is not of type 'array'"),
    (4, 6, 400, expecting('user', 'password')),  # Keystone: 'in None' (its bug)
    (5, 6, 400, "Invalid input for field 'identity/password/user/id': None is not of type 'string'"),
    (6, 6, 400, "Invalid input for field 'identity/password/user/domain/id': None is not of type 'string'"),
    (7, 6, 400, "Invalid input for field 'identity/password/user/id': {'id': None} is not of type 'string'"),
    (8, 6, 400, "Invalid input for field 'identity/token/id': {'id': None} is not of type 'string'"),
    (9, 6, 400, expecting('name or ID', 'application credential')),
    (10, 6, 400, expecting('domain', 'user')),
    (11, 6, 400, expecting('system, project, domain, OS-TRUST:trust or unscoped', 'scope')),
    (12, 6, 400, "Invalid input for field 'scope/project/id': None is not of type 'string'"),
    (13, 6, 400, "Invalid input for field 'scope/project/domain/id': None is not of type 'string'"),
    (14, 6, 400, "Invalid input for field 'scope/OS-TRUST:trust/id': None is not of type 'string'"),
    (0, 7, 400, expecting('auth', 'request body')),
    (1, 7, 400, "'identity' is a required property"),
    (2, 7, 400, "Invalid input for field 'identity': 'methods' is a required property"),
    (3, 7, 400, "Invalid input for field 'identity/methods': {'name': 5} is not of type 'array'"),
    (4, 7, 400, expecting('user', 'password')),  # Keystone: 'in None' (its bug)
    (5, 7, 400, "Invalid input for field 'identity/password/user/name': 5 is not of type 'string'"),
    (6, 7, 400, "Invalid input for field 'identity/password/user/domain/name': 5 is not of type 'string'"),
    (7, 7, 400, "Invalid input for field 'identity/password/user/id': {'name': 5} is not of type 'string'"),
    (8, 7, 400, "Invalid input for field 'identity/token/id': {'name': 5} is not of type 'string'"),
    (9, 7, 400, expecting('user', 'application credential')),
    (10, 7, 400, expecting('domain', 'user')),
    (11, 7, 400, expecting('system, project, domain, OS-TRUST:trust or unscoped', 'scope')),
    (12, 7, 400, "Invalid input for field 'scope/project/name': 5 is not of type 'string'"),
    (13, 7, 400, "Invalid input for field 'scope/project/domain/name': 5 is not of type 'string'"),
    (14, 7, 400, expecting('trust_id', 'trust')),
    (0, 8, 400, expecting('valid JSON', 'request body')),
    (1, 8, 400, "True is not of type 'object'"),
    (2, 8, 400, "Invalid input for field 'identity': True is not of type 'object'"),
    (3, 8, 400, "Invalid input for field 'identity/methods': True is not of type 'array'"),
    (4, 8, 400, "Invalid input for field 'identity/password': True is not of type 'object'"),
    (5, 8, 400, "Invalid input for field 'identity/password/user': True is not of type 'object'"),
    (6, 8, 400, "Invalid input for field 'identity/password/user/domain': True is not of type 'object'"),
    (7, 8, 400, "Invalid input for field 'identity/password/user/id': True is not of type 'string'"),
    (8, 8, 400, "Invalid input for field 'identity/token/id': True is not of type 'string'"),
    (9, 8, 400, "Invalid input for field 'identity/application_credential': True is not of type 'object'"),  # Keystone: 500
    (10, 8, 400, "Invalid input for field 'identity/application_credential/user': True is not of type 'object'"),  # Keystone: 500
    (11, 8, 400, "Invalid input for field 'scope': True is not of type 'object', 'string'"),
    (12, 8, 400, "Invalid input for field 'scope/project': True is not of type 'object'"),
    (13, 8, 400, "Invalid input for field 'scope/project/domain': True is not of type 'object'"),
    (14, 8, 400, "Invalid input for field 'scope/OS-TRUST:trust': True is not of type 'object'"),
    (0, 9, 400, expecting('auth', 'request body')),
    (1, 9, 400, "'identity' is a required property"),
    (2, 9, 400, "Invalid input for field 'identity': 'methods' is a required property"),
    (3, 9, 400, "Invalid input for field 'identity/methods': {'a': {'b': []}} is not of type 'array'"),
    (4, 9, 400, expecting('user', 'password')),  # Keystone: 'in None' (its bug)
    (5, 9, 400, 'Invalid input for field identity/password/user: id or name must be present.'),
    (6, 9, 400, 'Invalid input for field identity/password/user/domain: id or name must be present.'),
    (7, 9, 400, "Invalid input for field 'identity/password/user/id': {'a': {'b': []}} is not of type 'string'"),
    (8, 9, 400, "Invalid input for field 'identity/token/id': {'a': {'b': []}} is not of type 'string'"),
    (9, 9, 400, expecting('name or ID', 'application credential')),
    (10, 9, 400, expecting('domain', 'user')),
    (11, 9, 400, expecting('system, project, domain, OS-TRUST:trust or unscoped', 'scope')),
    (12, 9, 400, 'Invalid input for field scope/project: id or name must be present.'),
    (13, 9, 400, 'Invalid input for field scope/project/domain: id or name must be present.'),
    (14, 9, 400, expecting('trust_id', 'trust')),
]


@pytest.mark.parametrize(("template", "value", "status", "message"), TOKEN_CASES,
                         ids=[f"t{t}-v{v}" for t, v, _, _ in TOKEN_CASES])
def test_token_requests(api: Api, template: int, value: int, status: int, message: str) -> None:
    r = api.client.post("/identity/v3/auth/tokens", json=_auth_body(template, ODD[value]))
    assert r.status_code == status, r.text
    title = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    assert r.json() == {"error": {"code": status, "title": title, "message": message}}
    assert "X-Subject-Token" not in r.headers


def _other_request(template: int, v: Any, me: str) -> tuple[str, Any]:
    trust = {"trustor_user_id": me, "trustee_user_id": me, "impersonation": False}
    return [
        (f"/identity/v3/users/{me}/application_credentials", {"application_credential": v}),
        (f"/identity/v3/users/{me}/application_credentials", {"application_credential": {"name": "n", "roles": v}}),
        (f"/identity/v3/users/{me}/application_credentials",
         {"application_credential": {"name": "n", "access_rules": v}}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": v}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": {**trust, "roles": v}}),
        ("/identity/v3/OS-TRUST/trusts", {"trust": {**trust, "expires_at": v, "remaining_uses": v}}),
        (f"/identity/v3/users/{me}/password", {"user": v}),
        (f"/identity/v3/users/{me}/password", v),
    ][template]


# (request template, ODD index, status, message or None for a 201): Keystone's statuses
OTHER_CASES: list[tuple[int, int, int, str | None]] = [
    (0, 0, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 0, 400, "Invalid input for field 'roles': None is not of type 'array'"),
    (2, 0, 400, "Invalid input for field 'access_rules': None is not of type 'array'"),
    (3, 0, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 0, 400, "Invalid input for field 'roles': None is not of type 'array'"),
    (5, 0, 201, None),
    (6, 0, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 0, 400, expecting('user', 'request body')),
    (0, 1, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 1, 400, "Invalid input for field 'roles': 1 is not of type 'array'"),
    (2, 1, 400, "Invalid input for field 'access_rules': 1 is not of type 'array'"),
    (3, 1, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 1, 400, "Invalid input for field 'roles': 1 is not of type 'array'"),
    (5, 1, 400, "Invalid input for field 'expires_at': the value must be a string or null."),
    (6, 1, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 1, 400, expecting('valid JSON', 'request body')),
    (0, 2, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 2, 400, "Invalid input for field 'roles': 'x' is not of type 'array'"),
    (2, 2, 400, "Invalid input for field 'access_rules': 'x' is not of type 'array'"),
    (3, 2, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 2, 400, "Invalid input for field 'roles': 'x' is not of type 'array'"),
    (5, 2, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 2, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 2, 400, expecting('valid JSON', 'request body')),
    (0, 3, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 3, 201, None),
    (2, 3, 201, None),
    (3, 3, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 3, 201, None),
    (5, 3, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 3, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 3, 400, expecting('valid JSON', 'request body')),
    (0, 4, 400, "Invalid input for field 'name': a non-empty string of at most 255 characters is required."),
    (1, 4, 400, "Invalid input for field 'roles': {} is not of type 'array'"),
    (2, 4, 400, "Invalid input for field 'access_rules': {} is not of type 'array'"),
    (3, 4, 400, "Invalid input for field 'trustor_user_id': a user id is required."),
    (4, 4, 400, "Invalid input for field 'roles': {} is not of type 'array'"),
    (5, 4, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 4, 400, expecting('password', 'user')),
    (7, 4, 400, expecting('user', 'request body')),
    (0, 5, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 5, 400, "Invalid input for field 'roles': each role needs an id or a name."),
    (2, 5, 400, "Invalid input for field 'access_rules': each rule must be an object."),
    (3, 5, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 5, 400, "Invalid input for field 'roles': each role needs an id or a name."),
    (5, 5, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 5, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 5, 400, expecting('valid JSON', 'request body')),
    (0, 6, 400, "Invalid input for field 'application_credential': additional properties are not allowed (id were unexpected)."),
    (1, 6, 400, "Invalid input for field 'roles': {'id': None} is not of type 'array'"),
    (2, 6, 400, "Invalid input for field 'access_rules': {'id': None} is not of type 'array'"),
    (3, 6, 400, "Invalid input for field 'trust': additional properties are not allowed (id were unexpected)."),
    (4, 6, 400, "Invalid input for field 'roles': {'id': None} is not of type 'array'"),
    (5, 6, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 6, 400, expecting('password', 'user')),
    (7, 6, 400, expecting('user', 'request body')),
    (0, 7, 400, "Invalid input for field 'name': a non-empty string of at most 255 characters is required."),
    (1, 7, 400, "Invalid input for field 'roles': {'name': 5} is not of type 'array'"),
    (2, 7, 400, "Invalid input for field 'access_rules': {'name': 5} is not of type 'array'"),
    (3, 7, 400, "Invalid input for field 'trust': additional properties are not allowed (name were unexpected)."),
    (4, 7, 400, "Invalid input for field 'roles': {'name': 5} is not of type 'array'"),
    (5, 7, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 7, 400, expecting('password', 'user')),
    (7, 7, 400, expecting('user', 'request body')),
    (0, 8, 400, "Invalid input for field 'application_credential': the value must be an object."),
    (1, 8, 400, "Invalid input for field 'roles': True is not of type 'array'"),
    (2, 8, 400, "Invalid input for field 'access_rules': True is not of type 'array'"),
    (3, 8, 400, "Invalid input for field 'trust': the value must be an object."),
    (4, 8, 400, "Invalid input for field 'roles': True is not of type 'array'"),
    (5, 8, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 8, 400, "Invalid input for field 'user': the value must be an object."),
    (7, 8, 400, expecting('valid JSON', 'request body')),
    (0, 9, 400, "Invalid input for field 'application_credential': additional properties are not allowed (a were unexpected)."),
    (1, 9, 400, "Invalid input for field 'roles': {'a': {'b': []}} is not of type 'array'"),
    (2, 9, 400, "Invalid input for field 'access_rules': {'a': {'b': []}} is not of type 'array'"),
    (3, 9, 400, "Invalid input for field 'trust': additional properties are not allowed (a were unexpected)."),
    (4, 9, 400, "Invalid input for field 'roles': {'a': {'b': []}} is not of type 'array'"),
    (5, 9, 400, "Invalid input for field 'remaining_uses': a positive integer or null is required."),
    (6, 9, 400, expecting('password', 'user')),
    (7, 9, 400, expecting('user', 'request body')),
]


@pytest.mark.parametrize(("template", "value", "status", "message"), OTHER_CASES,
                         ids=[f"t{t}-v{v}" for t, v, _, _ in OTHER_CASES])
def test_app_cred_trust_password_requests(api: Api, template: int, value: int, status: int,
                                          message: str | None) -> None:
    me = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token()}).json()["token"]["user"]["id"]
    path, body = _other_request(template, ODD[value], me)
    listing = path if "password" not in path else f"/identity/v3/users/{me}/application_credentials"
    before = api.get(listing).json()
    r = api.post(path, json=body)
    assert r.status_code == status, r.text
    if status == 201:  # as Keystone: nothing odd about these
        created = r.json()
        if "application_credential" in created:
            assert api.delete(f"{path}/{created['application_credential']['id']}").status_code == 204
        else:
            assert api.delete(f"{path}/{created['trust']['id']}").status_code == 204
        return
    assert r.json() == {"error": {"code": 400, "title": "Bad Request", "message": message}}
    assert api.get(listing).json() == before
