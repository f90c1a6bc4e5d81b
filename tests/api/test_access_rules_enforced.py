"""Application-credential access rules are enforced on every service, as
keystonemiddleware does in front of each OpenStack API (Identity's included):
a request that matches none of the credential's rules (service type, method,
path below the service's endpoint) is a 401."""

from __future__ import annotations

from typing import Any

from tests.api._auth_helpers import TOKENS, as_token, grant, make_project, make_user, token_of

V2 = "/image/v2"
UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}


def _restricted_token(api: Any, rules: list[dict[str, str]] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(token of an application credential with ``rules``, its user, its project)."""
    project = make_project(api)
    user = make_user(api)
    grant(api, user["id"], project["id"], "member")
    token = token_of(api, user, project["id"])
    ref: dict[str, Any] = {"name": "ar-" + user["id"][:8]}
    if rules is not None:
        ref["access_rules"] = rules
    r = as_token(api, token, "POST", f"/identity/v3/users/{user['id']}/application_credentials",
                 json={"application_credential": ref})
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    r = api.client.post(TOKENS, json={"auth": {"identity": {
        "methods": ["application_credential"],
        "application_credential": {"id": ac["id"], "secret": ac["secret"]}}}})
    assert r.status_code == 201, r.text
    return str(r.headers["X-Subject-Token"]), user, project


def _image(api: Any, token: str) -> str:
    r = as_token(api, token, "POST", f"{V2}/images",
                 json={"name": "guarded", "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _denied(r: Any) -> None:
    assert r.status_code == 401, r.text
    if r.request.method != "HEAD":
        assert r.json() == UNAUTHORIZED
    assert r.headers["WWW-Authenticate"] == 'Keystone uri="http://127.0.0.1:8800/identity"'


def test_a_get_only_credential_cannot_delete_an_image(api: Any) -> None:
    """The defect of issue 7: allowed only GET /v2/images, it deleted an image (204)."""
    rules = [{"service": "image", "method": "GET", "path": "/v2/images"}]
    token, user, project = _restricted_token(api, rules)
    image_id = _image(api, token_of(api, user, project["id"]))
    r = as_token(api, token, "GET", f"{V2}/images")
    assert r.status_code == 200 and image_id in [i["id"] for i in r.json()["images"]]
    # again: the answer now comes from the validated-token cache, still checked
    assert as_token(api, token, "GET", f"{V2}/images").status_code == 200
    _denied(as_token(api, token, "DELETE", f"{V2}/images/{image_id}"))
    _denied(as_token(api, token, "GET", f"{V2}/images/{image_id}"))  # not the listing's path
    _denied(as_token(api, token, "HEAD", f"{V2}/images"))  # the method is exact
    _denied(as_token(api, token, "POST", f"{V2}/images", json={"name": "x"}))
    # nothing happened to the image
    owner = token_of(api, user, project["id"])
    got = as_token(api, owner, "GET", f"{V2}/images/{image_id}")
    assert got.status_code == 200 and got.json()["status"] == "queued"


def test_wildcards_one_segment_and_any_depth(api: Any) -> None:
    rules = [
        {"service": "image", "method": "GET", "path": "/v2/images/*"},
        {"service": "image", "method": "PATCH", "path": "/v2/images/{image_id}"},
        {"service": "image", "method": "GET", "path": "/v2/schemas/**"},
    ]
    token, user, project = _restricted_token(api, rules)
    image_id = _image(api, token_of(api, user, project["id"]))
    assert as_token(api, token, "GET", f"{V2}/images/{image_id}").status_code == 200
    # ``*`` is one path segment: neither the collection nor a deeper path
    _denied(as_token(api, token, "GET", f"{V2}/images"))
    r = as_token(api, token, "GET", f"{V2}/images/{image_id}/file")
    _denied(r)
    r = as_token(api, token, "PATCH", f"{V2}/images/{image_id}",
                 json=[{"op": "replace", "path": "/name", "value": "renamed"}],
                 headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    # ``**`` is any depth
    assert as_token(api, token, "GET", f"{V2}/schemas/image").status_code == 200
    assert as_token(api, token, "GET", f"{V2}/schemas/metadefs/namespace").status_code == 200
    _denied(as_token(api, token, "GET", f"{V2}/info/import"))


def test_rules_for_another_service_allow_nothing_here(api: Any) -> None:
    rules = [{"service": "compute", "method": "GET", "path": "/v2/images"}]
    token, _, _ = _restricted_token(api, rules)
    _denied(as_token(api, token, "GET", f"{V2}/images"))
    _denied(as_token(api, token, "GET", "/identity/v3/auth/catalog"))


def test_a_credential_without_rules_is_not_limited(api: Any) -> None:
    token, user, project = _restricted_token(api, None)
    image_id = _image(api, token)
    assert as_token(api, token, "GET", "/identity/v3/auth/catalog").status_code == 200
    assert as_token(api, token, "DELETE", f"{V2}/images/{image_id}").status_code == 204
    token2, _, _ = _restricted_token(api, [])  # an empty list is no rules, as in Keystone
    assert as_token(api, token2, "GET", f"{V2}/images").status_code == 200


def test_identity_checks_the_rules_of_its_own_api(api: Any) -> None:
    rules = [
        {"service": "identity", "method": "GET", "path": "/v3/users/{user_id}"},
        {"service": "identity", "method": "GET", "path": "/v3/auth/catalog"},
    ]
    token, user, _ = _restricted_token(api, rules)
    r = as_token(api, token, "GET", f"/identity/v3/users/{user['id']}")
    assert r.status_code == 200 and r.json()["user"]["id"] == user["id"]
    assert as_token(api, token, "GET", "/identity/v3/auth/catalog").status_code == 200
    _denied(as_token(api, token, "GET", "/identity/v3/users"))
    _denied(as_token(api, token, "PATCH", f"/identity/v3/users/{user['id']}",
                     json={"user": {"description": "changed"}}))
    _denied(as_token(api, token, "GET", "/identity/v3/auth/projects"))
    assert api.get(f"/identity/v3/users/{user['id']}").json()["user"].get("description") is None
    # The image service is not in the rules at all.
    _denied(as_token(api, token, "GET", f"{V2}/images"))


def test_a_token_may_always_be_validated_but_only_by_a_validator_that_knows_rules(api: Any) -> None:
    rules = [{"service": "image", "method": "GET", "path": "/v2/images"}]
    token, _, _ = _restricted_token(api, rules)
    headers = {"X-Subject-Token": token}
    # GET /v3/auth/tokens is allowed whatever the rules (keystonemiddleware's exception) ...
    aware = {**headers, "OpenStack-Identity-Access-Rules": "1.0"}
    for _ in range(2):  # the second answer comes from the validated-token memory
        r = as_token(api, token, "GET", TOKENS, headers=aware)
        assert r.status_code == 200, r.text
        assert r.json()["token"]["application_credential"]["access_rules"][0]["path"] == "/v2/images"
    # ... but HEAD is not
    _denied(as_token(api, token, "HEAD", TOKENS, headers=aware))
    # A validator that does not say it enforces access rules must not accept the
    # token (it would let every request through): Keystone's 404.
    for hdr in (headers, {**headers, "OpenStack-Identity-Access-Rules": "0.9"},
                {**headers, "OpenStack-Identity-Access-Rules": "new"}):
        r = api.get(TOKENS, headers=hdr)
        assert r.status_code == 404, r.text
        assert r.json() == {"error": {"code": 404, "title": "Not Found", "message": "Failed to validate token"}}
    r = api.get(TOKENS, headers=aware)
    assert r.status_code == 200
    assert api.request("HEAD", TOKENS, headers=aware).status_code == 200


def test_a_bad_token_on_the_image_api_is_keystonemiddlewares_401(api: Any) -> None:
    _denied(api.client.get(f"{V2}/images", headers={"X-Auth-Token": "bogus"}))
    _denied(api.client.get(f"{V2}/images"))
