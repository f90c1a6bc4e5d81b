"""OS-OAUTH1: consumers, the request/authorize/access-token dance, and oauth1 tokens."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

from oauthlib import oauth1

from tests.api._auth_helpers import keystone_error as _error

V3 = "/identity/v3"
OA = f"{V3}/OS-OAUTH1"
BASE = "http://127.0.0.1:8800"


def _consumer(api: Any) -> dict[str, Any]:
    r = api.post(f"{OA}/consumers", json={"consumer": {"description": f"c-{uuid.uuid4().hex[:6]}"}})
    assert r.status_code == 201, r.text
    return dict(r.json()["consumer"])


def _token_info(api: Any, who: str) -> dict[str, Any]:
    r = api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": api.token(who)})
    return dict(r.json()["token"])


def _signed(path: str, consumer: dict[str, Any], *, token: str | None = None, token_secret: str | None = None,
            verifier: str | None = None, headers: dict[str, str] | None = None) -> dict[str, str]:
    client = oauth1.Client(consumer["id"], client_secret=consumer["secret"], resource_owner_key=token,
                           resource_owner_secret=token_secret, verifier=verifier,
                           signature_method=oauth1.SIGNATURE_HMAC, callback_uri=None if token else "oob")
    _, signed, _ = client.sign(BASE + path, http_method="POST", headers=dict(headers or {}))
    return dict(signed)


def _request_token(api: Any, consumer: dict[str, Any], project_id: str) -> dict[str, str]:
    path = f"{OA}/request_token"
    r = api.client.post(path, headers=_signed(path, consumer, headers={"Requested-Project-Id": project_id}))
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/x-www-form-urlencoded")
    return {k: v[0] for k, v in parse_qs(r.text).items()}


def _access_token(api: Any, consumer: dict[str, Any], request_token: dict[str, str],
                  verifier: str) -> Any:
    path = f"{OA}/access_token"
    headers = _signed(path, consumer, token=request_token["oauth_token"],
                      token_secret=request_token["oauth_token_secret"], verifier=verifier)
    return api.client.post(path, headers=headers)


def _dance(api: Any, consumer: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Request token, authorized by admin for the 'member' role, traded for an access token."""
    info = _token_info(api, "admin")
    request_token = _request_token(api, consumer, info["project"]["id"])
    r = api.put(f"{OA}/authorize/{request_token['oauth_token']}", json={"roles": [{"name": "member"}]})
    assert r.status_code == 200, r.text
    verifier = r.json()["token"]["oauth_verifier"]
    r = _access_token(api, consumer, request_token, verifier)
    assert r.status_code == 201, r.text
    return {k: v[0] for k, v in parse_qs(r.text).items()}, info


# --- consumers --------------------------------------------------------------------------


def test_consumer_crud_and_secret_shown_once(api: Any) -> None:
    consumer = _consumer(api)
    assert consumer["secret"] and consumer["links"]["self"].endswith(f"/OS-OAUTH1/consumers/{consumer['id']}")
    shown = api.get(f"{OA}/consumers/{consumer['id']}").json()["consumer"]
    assert "secret" not in shown
    for key in ("id", "description", "links"):
        assert shown[key] == consumer[key]
    assert consumer["id"] in [c["id"] for c in api.get(f"{OA}/consumers").json()["consumers"]]
    assert all("secret" not in c for c in api.get(f"{OA}/consumers").json()["consumers"])
    r = api.patch(f"{OA}/consumers/{consumer['id']}", json={"consumer": {"description": "new"}})
    assert r.status_code == 200 and r.json()["consumer"]["description"] == "new"
    _error(api.patch(f"{OA}/consumers/{consumer['id']}", json={"consumer": {"secret": "x"}}), 400)
    _error(api.patch(f"{OA}/consumers/{consumer['id']}", json={"consumer": {"description": 5}}), 400)
    assert api.delete(f"{OA}/consumers/{consumer['id']}").status_code == 204
    _error(api.get(f"{OA}/consumers/{consumer['id']}"), 404)
    _error(api.delete(f"{OA}/consumers/{consumer['id']}"), 404)


def test_consumer_demo_forbidden(api: Any) -> None:
    consumer = _consumer(api)
    _error(api.post(f"{OA}/consumers", json={"consumer": {}}, who="demo"), 403)
    _error(api.get(f"{OA}/consumers", who="demo"), 403)
    _error(api.get(f"{OA}/consumers/{consumer['id']}", who="demo"), 403)
    _error(api.delete(f"{OA}/consumers/{consumer['id']}", who="demo"), 403)


# --- request tokens -----------------------------------------------------------------------


def test_request_token_checks_signature_and_inputs(api: Any) -> None:
    consumer = _consumer(api)
    project = _token_info(api, "admin")["project"]["id"]
    path = f"{OA}/request_token"
    token = _request_token(api, consumer, project)
    assert set(token) == {"oauth_token", "oauth_token_secret", "oauth_expires_at"}
    wrong = {**consumer, "secret": "not-the-secret"}
    r = api.client.post(path, headers=_signed(path, wrong, headers={"Requested-Project-Id": project}))
    assert _error(r, 401)["message"] == "Invalid signature"
    r = api.client.post(path, headers=_signed(path, consumer))
    _error(r, 400)
    r = api.client.post(path, headers=_signed(path, consumer, headers={"Requested-Project-Id": "nope"}))
    _error(r, 404)
    r = api.client.post(path, headers=_signed(path, {**consumer, "id": uuid.uuid4().hex},
                                              headers={"Requested-Project-Id": project}))
    _error(r, 404)
    _error(api.client.post(path, headers={"Requested-Project-Id": project}), 400)
    # A signature over another URL does not verify.
    headers = _signed(f"{OA}/access_token", consumer, headers={"Requested-Project-Id": project})
    _error(api.client.post(path, headers=headers), 401)


def test_authorize_requires_roles_the_user_holds(api: Any) -> None:
    consumer = _consumer(api)
    project = _token_info(api, "admin")["project"]["id"]
    token = _request_token(api, consumer, project)
    url = f"{OA}/authorize/{token['oauth_token']}"
    _error(api.put(url, json={"roles": []}), 400)
    _error(api.put(url, json={"roles": [{"bogus": 1}]}), 400)
    _error(api.put(url, json={"roles": [{"name": "no-such-role"}]}), 404)
    _error(api.put(f"{OA}/authorize/{uuid.uuid4().hex}", json={"roles": [{"name": "member"}]}), 404)
    _error(api.put(url, json={"roles": [{"name": "member"}]}, who="demo"), 403)
    r = api.post(f"{V3}/roles", json={"role": {"name": f"unheld-{uuid.uuid4().hex[:6]}"}})
    _error(api.put(url, json={"roles": [{"id": r.json()["role"]["id"]}]}), 401)


def test_access_token_exchange_checks_verifier(api: Any) -> None:
    consumer = _consumer(api)
    project = _token_info(api, "admin")["project"]["id"]
    token = _request_token(api, consumer, project)
    # Not authorized yet.
    _error(_access_token(api, consumer, token, "whatever"), 401)
    r = api.put(f"{OA}/authorize/{token['oauth_token']}", json={"roles": [{"name": "member"}]})
    verifier = r.json()["token"]["oauth_verifier"]
    assert len(verifier) == 8
    _error(_access_token(api, consumer, token, "wrongwrong"), 401)
    other = _consumer(api)
    _error(_access_token(api, other, token, verifier), 401)
    assert _access_token(api, consumer, token, verifier).status_code == 201
    # The request token is spent.
    _error(_access_token(api, consumer, token, verifier), 404)


def test_access_token_views_and_delete(api: Any) -> None:
    consumer = _consumer(api)
    access, info = _dance(api, consumer)
    user = info["user"]["id"]
    listed = api.get(f"{V3}/users/{user}/OS-OAUTH1/access_tokens").json()["access_tokens"]
    mine = [t for t in listed if t["id"] == access["oauth_token"]]
    assert mine and mine[0]["consumer_id"] == consumer["id"] and mine[0]["project_id"] == info["project"]["id"]
    assert "access_secret" not in mine[0] and mine[0]["links"]["roles"].endswith("/roles")
    url = f"{V3}/users/{user}/OS-OAUTH1/access_tokens/{access['oauth_token']}"
    assert api.get(url).json()["access_token"]["id"] == access["oauth_token"]
    roles = api.get(f"{url}/roles").json()["roles"]
    assert [r["name"] for r in roles] == ["member"]
    assert api.get(f"{url}/roles/{roles[0]['id']}").json()["role"]["name"] == "member"
    _error(api.get(f"{url}/roles/{uuid.uuid4().hex}"), 404)
    other_user = _token_info(api, "demo")["user"]["id"]
    _error(api.get(f"{V3}/users/{other_user}/OS-OAUTH1/access_tokens/{access['oauth_token']}"), 404)
    _error(api.get(url, who="demo"), 403)
    assert api.delete(url).status_code == 204
    _error(api.get(url), 404)


def test_deleting_consumer_deletes_its_tokens(api: Any) -> None:
    consumer = _consumer(api)
    access, info = _dance(api, consumer)
    url = f"{V3}/users/{info['user']['id']}/OS-OAUTH1/access_tokens/{access['oauth_token']}"
    assert api.get(url).status_code == 200
    assert api.delete(f"{OA}/consumers/{consumer['id']}").status_code == 204
    _error(api.get(url), 404)


# --- authenticating with an access token ---------------------------------------------------

def _oauth_token(api: Any, consumer: dict[str, Any], access: dict[str, str]) -> Any:
    path = f"{V3}/auth/tokens"
    headers = _signed(path, consumer, token=access["oauth_token"], token_secret=access["oauth_token_secret"])
    body = {"auth": {"identity": {"methods": ["oauth1"], "oauth1": {}}}}
    return api.client.post(path, json=body, headers=headers)


def test_oauth1_token_is_scoped_to_delegated_roles_and_revoked_on_delete(api: Any) -> None:
    consumer = _consumer(api)
    access, info = _dance(api, consumer)
    r = _oauth_token(api, consumer, access)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert token["methods"] == ["oauth1"]
    assert token["project"]["id"] == info["project"]["id"]
    assert {x["name"] for x in token["roles"]} <= {"member", "reader"}
    assert token["OS-OAUTH1"] == {"access_token_id": access["oauth_token"], "consumer_id": consumer["id"]}
    subject = r.headers["X-Subject-Token"]
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 200
    # A wrong secret does not authenticate.
    _error(_oauth_token(api, consumer, {**access, "oauth_token_secret": "bad"}), 401)
    # An oauth1 token cannot authorize request tokens (delegation).
    request_token = _request_token(api, consumer, info["project"]["id"])
    r = api.client.put(f"{OA}/authorize/{request_token['oauth_token']}", json={"roles": [{"name": "member"}]},
                       headers={"X-Auth-Token": subject})
    assert r.status_code == 403
    url = f"{V3}/users/{info['user']['id']}/OS-OAUTH1/access_tokens/{access['oauth_token']}"
    assert api.delete(url).status_code == 204
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 404
    _error(_oauth_token(api, consumer, access), 401)


def test_token_responses_are_plain_form_bodies(api: Any) -> None:
    """Keystone writes ``k=v&k=v`` without percent-encoding; Tempest splits on '=' and '&'."""
    consumer = _consumer(api)
    path = f"{OA}/request_token"
    project = _token_info(api, "admin")["project"]["id"]
    r = api.client.post(path, headers=_signed(path, consumer, headers={"Requested-Project-Id": project}))
    fields = dict(item.split("=") for item in r.text.split("&"))
    assert fields["oauth_expires_at"].endswith("Z") and ":" in fields["oauth_expires_at"]


def test_deleting_consumer_revokes_its_tokens(api: Any) -> None:
    consumer = _consumer(api)
    access, _ = _dance(api, consumer)
    r = _oauth_token(api, consumer, access)
    assert r.status_code == 201, r.text
    subject = r.headers["X-Subject-Token"]
    admin_token = api.password_token(api.admin_auth["username"], api.admin_auth["password"],
                                     project=api.admin_auth["project_name"])
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 200
    assert api.delete(f"{OA}/consumers/{consumer['id']}").status_code == 204
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": subject}).status_code == 404
    # Other tokens of the same user are untouched.
    assert api.get(f"{V3}/auth/tokens", headers={"X-Subject-Token": admin_token}).status_code == 200
