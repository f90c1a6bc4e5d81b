"""OS-TRUST: trusts, trust-scoped tokens, impersonation, uses, expiry, redelegation."""

from __future__ import annotations

from typing import Any

from tests.api._auth_helpers import (
    TOKENS,
    as_token,
    grant,
    make_project,
    make_user,
    token_of,
    valid,
)

T = "/identity/v3/OS-TRUST/trusts"


def _parties(api: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str, str]:
    project = make_project(api)
    trustor, trustee = make_user(api), make_user(api)
    grant(api, trustor["id"], project["id"], "member")
    return trustor, trustee, project, token_of(api, trustor, project["id"]), token_of(api, trustee)


def _create(api: Any, token: str, **fields: Any) -> Any:
    return as_token(api, token, "POST", T, json={"trust": fields})


def _trust_token(api: Any, trustee_token: str, trust_id: str) -> Any:
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": trustee_token}},
                     "scope": {"OS-TRUST:trust": {"id": trust_id}}}}
    return api.client.post(TOKENS, json=body)


def test_trust_lifecycle_with_impersonation(api: Any) -> None:
    trustor, trustee, project, tor_tok, tee_tok = _parties(api)
    r = _create(api, tor_tok, trustor_user_id=trustor["id"], trustee_user_id=trustee["id"],
                project_id=project["id"], impersonation=True, roles=[{"name": "member"}],
                expires_at="2099-01-01T00:00:00.000000Z")
    assert r.status_code == 201, r.text
    trust = r.json()["trust"]
    assert trust["impersonation"] is True and trust["project_id"] == project["id"]
    assert [x["name"] for x in trust["roles"]] == ["member"]
    assert trust["expires_at"] == "2099-01-01T00:00:00.000000Z"
    assert trust["links"]["self"].endswith(trust["id"])
    # trustor and trustee can read it; roles sub-resources
    for tok in (tor_tok, tee_tok):
        assert as_token(api, tok, "GET", f"{T}/{trust['id']}").status_code == 200
    roles = as_token(api, tee_tok, "GET", f"{T}/{trust['id']}/roles").json()["roles"]
    assert [x["name"] for x in roles] == ["member"]
    rid = roles[0]["id"]
    assert as_token(api, tee_tok, "GET", f"{T}/{trust['id']}/roles/{rid}").json()["role"]["id"] == rid
    assert as_token(api, tee_tok, "HEAD", f"{T}/{trust['id']}/roles/{rid}").status_code == 200
    assert as_token(api, tee_tok, "GET", f"{T}/{trust['id']}/roles/nope").status_code == 404
    # trust-scoped token: the trustor impersonated, member (+ implied reader)
    r = _trust_token(api, tee_tok, trust["id"])
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["user"]["id"] == trustor["id"]
    assert body["project"]["id"] == project["id"]
    assert {x["name"] for x in body["roles"]} == {"member", "reader"}
    assert body["OS-TRUST:trust"] == {"id": trust["id"], "impersonation": True,
                                     "trustor_user": {"id": trustor["id"]},
                                     "trustee_user": {"id": trustee["id"]}}
    trust_token = r.headers["X-Subject-Token"]
    assert valid(api, trust_token) == 200
    # a trust token cannot be rescoped
    rescope = {"auth": {"identity": {"methods": ["token"], "token": {"id": trust_token}},
                        "scope": {"project": {"id": project["id"]}}}}
    assert api.client.post(TOKENS, json=rescope).status_code == 403
    # listing with filters
    mine = as_token(api, tor_tok, "GET", f"{T}?trustor_user_id={trustor['id']}").json()["trusts"]
    assert [x["id"] for x in mine] == [trust["id"]]
    theirs = as_token(api, tee_tok, "GET", f"{T}?trustee_user_id={trustee['id']}").json()["trusts"]
    assert [x["id"] for x in theirs] == [trust["id"]]
    assert as_token(api, tee_tok, "GET", f"{T}?trustor_user_id={trustor['id']}").status_code == 403
    assert as_token(api, tee_tok, "GET", T).status_code == 403
    assert trust["id"] in [x["id"] for x in api.get(T).json()["trusts"]]
    # deleting revokes its tokens
    assert as_token(api, tee_tok, "DELETE", f"{T}/{trust['id']}").status_code == 403
    assert as_token(api, tor_tok, "DELETE", f"{T}/{trust['id']}").status_code == 204
    assert valid(api, trust_token) == 404
    assert as_token(api, tor_tok, "GET", f"{T}/{trust['id']}").status_code == 404
    assert _trust_token(api, tee_tok, trust["id"]).status_code == 404


def test_no_impersonation_and_remaining_uses(api: Any) -> None:
    trustor, trustee, project, tor_tok, tee_tok = _parties(api)
    r = _create(api, tor_tok, trustor_user_id=trustor["id"], trustee_user_id=trustee["id"],
                project_id=project["id"], impersonation=False, roles=[{"name": "reader"}], remaining_uses=1)
    assert r.status_code == 201, r.text
    trust = r.json()["trust"]
    assert trust["remaining_uses"] == 1
    r = _trust_token(api, tee_tok, trust["id"])
    assert r.status_code == 201
    assert r.json()["token"]["user"]["id"] == trustee["id"]
    assert [x["name"] for x in r.json()["token"]["roles"]] == ["reader"]
    # used up
    assert _trust_token(api, tee_tok, trust["id"]).status_code == 403
    # only the trustee may use a trust
    other = make_user(api)
    assert _trust_token(api, token_of(api, other), trust["id"]).status_code in (403, 404)


def test_trustor_losing_role_invalidates(api: Any) -> None:
    trustor, trustee, project, tor_tok, tee_tok = _parties(api)
    trust = _create(api, tor_tok, trustor_user_id=trustor["id"], trustee_user_id=trustee["id"],
                    project_id=project["id"], impersonation=False, roles=[{"name": "member"}]).json()["trust"]
    tt = _trust_token(api, tee_tok, trust["id"]).headers["X-Subject-Token"]
    assert valid(api, tt) == 200
    mid = trust["roles"][0]["id"]
    assert api.delete(f"/identity/v3/projects/{project['id']}/users/{trustor['id']}/roles/{mid}").status_code == 204
    assert valid(api, tt) == 404


def test_bad_trusts(api: Any) -> None:
    trustor, trustee, project, tor_tok, _ = _parties(api)
    base = {"trustor_user_id": trustor["id"], "trustee_user_id": trustee["id"], "impersonation": False}
    assert _create(api, tor_tok, **{**base, "expires_at": "bad.123Z"}).status_code == 400
    assert _create(api, tor_tok, **{**base, "remaining_uses": 0}).status_code == 400
    assert _create(api, tor_tok, **{**base, "impersonation": "yes"}).status_code == 400
    assert _create(api, tor_tok, **{**base, "bogus": 1}).status_code == 400
    assert _create(api, tor_tok, trustor_user_id=trustor["id"], impersonation=False).status_code == 400
    assert _create(api, tor_tok, **{**base, "trustee_user_id": "nobody"}).status_code == 404
    r = _create(api, tor_tok, **{**base, "project_id": project["id"], "roles": [{"name": "nope"}]})
    assert r.status_code == 404
    # a trust on behalf of someone else
    r = _create(api, tor_tok, **{**base, "trustor_user_id": trustee["id"], "trustee_user_id": trustor["id"]})
    assert r.status_code == 403
    # roles the trustor does not hold
    r = _create(api, tor_tok, **{**base, "project_id": project["id"], "roles": [{"name": "admin"}]})
    assert r.status_code == 403
    assert as_token(api, tor_tok, "GET", f"{T}/nope").status_code == 404
    assert as_token(api, tor_tok, "DELETE", f"{T}/nope").status_code == 404


def test_redelegation(api: Any) -> None:
    trustor, trustee, project, tor_tok, tee_tok = _parties(api)
    trust = _create(api, tor_tok, trustor_user_id=trustor["id"], trustee_user_id=trustee["id"],
                    project_id=project["id"], impersonation=False, roles=[{"name": "member"}],
                    allow_redelegation=True).json()["trust"]
    assert trust["allow_redelegation"] is True and trust["redelegation_count"] == 3
    tt = _trust_token(api, tee_tok, trust["id"]).headers["X-Subject-Token"]
    third = make_user(api)
    r = as_token(api, tt, "POST", T, json={"trust": {
        "trustor_user_id": trustee["id"], "trustee_user_id": third["id"], "project_id": project["id"],
        "impersonation": False, "roles": [{"name": "member"}]}})
    assert r.status_code == 201, r.text
    child = r.json()["trust"]
    assert child["redelegated_trust_id"] == trust["id"]
    # not allowed without allow_redelegation
    plain = _create(api, tor_tok, trustor_user_id=trustor["id"], trustee_user_id=trustee["id"],
                    project_id=project["id"], impersonation=False, roles=[{"name": "member"}]).json()["trust"]
    tt2 = _trust_token(api, tee_tok, plain["id"]).headers["X-Subject-Token"]
    r = as_token(api, tt2, "POST", T, json={"trust": {
        "trustor_user_id": trustee["id"], "trustee_user_id": third["id"], "project_id": project["id"],
        "impersonation": False, "roles": [{"name": "member"}]}})
    assert r.status_code == 403
