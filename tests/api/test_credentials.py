"""Keystone v3 credentials: CRUD, ec2 ids, encryption at rest, ownership."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select

from onestack.common.ids import new_id
from onestack.identity.models import Credential, IdentityKey
from tests.api._auth_helpers import keystone_error as _error

C = "/identity/v3/credentials"


def _me(api: Any, who: str) -> dict[str, Any]:
    r = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": api.token(who)})
    return dict(r.json()["token"])


def test_crud_and_encrypted_at_rest(api: Any) -> None:
    me = _me(api, "admin")
    secret = "very-secret-" + new_id()
    body = {"credential": {"type": "totp", "user_id": me["user"]["id"], "blob": secret}}
    r = api.post(C, json=body)
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["blob"] == secret and cred["type"] == "totp" and cred["project_id"] is None
    assert cred["links"]["self"].endswith(f"/identity/v3/credentials/{cred['id']}")
    with api.cloud.db.read() as s:
        row = s.get(Credential, cred["id"])
        assert row is not None and secret.encode() not in row.encrypted_blob
        assert s.scalars(select(IdentityKey).where(IdentityKey.kind == "credential")).first() is not None
    assert api.get(f"{C}/{cred['id']}").json()["credential"]["blob"] == secret
    r = api.patch(f"{C}/{cred['id']}", json={"credential": {"blob": "changed"}})
    assert r.status_code == 200 and r.json()["credential"]["blob"] == "changed"
    assert api.delete(f"{C}/{cred['id']}").status_code == 204
    err = _error(api.get(f"{C}/{cred['id']}"), 404)
    assert err["message"] == f"Could not find credential: {cred['id']}."


def test_ec2_id_is_sha256_of_access(api: Any) -> None:
    me = _me(api, "admin")
    access = "AK" + new_id()
    blob = json.dumps({"access": access, "secret": "s"})
    body = {"type": "ec2", "user_id": me["user"]["id"], "project_id": me["project"]["id"], "blob": blob}
    r = api.post(C, json={"credential": body})
    assert r.status_code == 201, r.text
    assert r.json()["credential"]["id"] == hashlib.sha256(access.encode()).hexdigest()
    err = _error(api.post(C, json={"credential": body}), 409)
    assert err["message"].startswith("Conflict occurred attempting to store credential")
    # bad ec2 blobs and a missing project
    for bad in ("not json", json.dumps({"secret": "s"}), json.dumps([1])):
        _error(api.post(C, json={"credential": {**body, "blob": bad}}), 400)
    no_project = {k: v for k, v in body.items() if k != "project_id"}
    _error(api.post(C, json={"credential": {**no_project, "blob": json.dumps({"access": "other"})}}), 400)


def test_list_filters_and_ownership(api: Any) -> None:
    admin = _me(api, "admin")
    demo = _me(api, "demo")
    mine = api.post(C, "demo", json={"credential": {"type": "cert", "user_id": demo["user"]["id"], "blob": "d"}})
    assert mine.status_code == 201, mine.text
    theirs = api.post(C, json={"credential": {"type": "cert", "user_id": admin["user"]["id"], "blob": "a"}})
    mine_id, theirs_id = mine.json()["credential"]["id"], theirs.json()["credential"]["id"]

    listed = {c["id"] for c in api.get(C, "demo").json()["credentials"]}
    assert mine_id in listed and theirs_id not in listed
    everything = {c["id"] for c in api.get(C).json()["credentials"]}
    assert {mine_id, theirs_id} <= everything
    by_user = api.get(C, params={"user_id": demo["user"]["id"]}).json()["credentials"]
    assert {c["user_id"] for c in by_user} == {demo["user"]["id"]}
    assert api.get(C, params={"type": "nope"}).json()["credentials"] == []

    assert api.get(f"{C}/{mine_id}", "demo").status_code == 200
    _error(api.get(f"{C}/{theirs_id}", "demo"), 403)
    _error(api.patch(f"{C}/{theirs_id}", "demo", json={"credential": {"blob": "x"}}), 403)
    _error(api.delete(f"{C}/{theirs_id}", "demo"), 403)
    # a user cannot create for, or hand its credential to, someone else
    _error(api.post(C, "demo", json={"credential": {"type": "cert", "user_id": admin["user"]["id"], "blob": "x"}}), 403)
    _error(api.patch(f"{C}/{mine_id}", "demo", json={"credential": {"user_id": admin["user"]["id"]}}), 403)
    assert api.get(f"{C}/{mine_id}").json()["credential"]["user_id"] == demo["user"]["id"]
    # unknown credential: policy first for a non-admin, 404 for admin
    _error(api.get(f"{C}/{new_id()}", "demo"), 403)
    _error(api.get(f"{C}/{new_id()}"), 404)
    assert api.delete(f"{C}/{mine_id}", "demo").status_code == 204


def test_deleting_user_deletes_credentials(api: Any) -> None:
    u = api.post("/identity/v3/users", json={"user": {"name": "cu-" + new_id()[:8]}}).json()["user"]
    r = api.post(C, json={"credential": {"type": "cert", "user_id": u["id"], "blob": "b"}})
    cid = r.json()["credential"]["id"]
    assert api.delete(f"/identity/v3/users/{u['id']}").status_code == 204
    _error(api.get(f"{C}/{cid}"), 404)


def test_unknown_user_or_project(api: Any) -> None:
    me = _me(api, "admin")
    _error(api.post(C, json={"credential": {"type": "cert", "user_id": new_id(), "blob": "b"}}), 404)
    body = {"type": "cert", "user_id": me["user"]["id"], "project_id": new_id(), "blob": "b"}
    _error(api.post(C, json={"credential": body}), 404)


def test_os_ec2_credentials(api: Any) -> None:
    demo = _me(api, "demo")
    uid, pid = demo["user"]["id"], demo["project"]["id"]
    base = f"/identity/v3/users/{uid}/credentials/OS-EC2"
    r = api.post(base, "demo", json={"tenant_id": pid})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["user_id"] == uid and cred["tenant_id"] == pid and cred["access"] and cred["secret"]
    assert cred["links"]["self"].endswith(f"{base}/{cred['access']}")
    # the same credential through /v3/credentials, its id the sha256 of the access key
    cid = hashlib.sha256(cred["access"].encode()).hexdigest()
    v3 = api.get(f"{C}/{cid}", "demo").json()["credential"]
    assert v3["type"] == "ec2" and json.loads(v3["blob"])["secret"] == cred["secret"]
    assert [c["access"] for c in api.get(base, "demo").json()["credentials"]] == [cred["access"]]
    assert api.get(f"{base}/{cred['access']}", "demo").json()["credential"]["secret"] == cred["secret"]
    # someone else's: no
    admin_id = _me(api, "admin")["user"]["id"]
    _error(api.get(f"/identity/v3/users/{admin_id}/credentials/OS-EC2", "demo"), 403)
    _error(api.post(f"/identity/v3/users/{admin_id}/credentials/OS-EC2", "demo", json={"tenant_id": pid}), 403)
    # bad input
    _error(api.post(base, "demo", json={}), 400)
    _error(api.post(base, "demo", json={"tenant_id": new_id()}), 404)
    _error(api.post(f"/identity/v3/users/{new_id()}/credentials/OS-EC2", json={"tenant_id": pid}), 404)
    _error(api.get(f"{base}/{new_id()}", "demo"), 404)
    assert api.delete(f"{base}/{cred['access']}", "demo").status_code == 204
    _error(api.delete(f"{base}/{cred['access']}", "demo"), 404)
    assert api.get(base, "demo").json()["credentials"] == []
