"""Token and credential keys are wrapped by the master key: the database alone
mints no token and decrypts no credential; with the master key the cloud works
on a copy of its database; a restart keeps tokens valid; a cloud of an earlier
version (keys in the clear, a narrower column) upgrades in place."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text
from starlette.testclient import TestClient

from onestack.app import build_app, build_cloud, prepare
from onestack.common import masterkey
from onestack.common.masterkey import MasterKeyMismatch
from onestack.config import load_settings
from tests.api.conftest import Api, make_api
from tests.conftest import TEST_ENV

IMAGES = "/image/v2/images"
BLOB = "the-credential-blob-s3cret"


@pytest.fixture(autouse=True)
def _fresh_master_keys() -> Iterator[None]:
    masterkey._cache.clear()  # each cloud below reads its own master key
    yield
    masterkey._cache.clear()


@contextmanager
def cloud_at(state: Path, **env: str) -> Iterator[Api]:
    gen = make_api(state, extra_env=env)
    try:
        yield next(gen)
    finally:
        gen.close()


def _first_cloud(state: Path) -> tuple[str, str, list[str]]:
    """A cloud with a credential: (an admin token, the credential id, the clear keys)."""
    gen = make_api(state)
    api = next(gen)
    try:
        token = api.token()
        user_id = api.get("/identity/v3/auth/tokens", headers={"X-Subject-Token": token}).json()["token"]["user"]["id"]
        r = api.post("/identity/v3/credentials", json={"credential": {
            "type": "totp", "user_id": user_id, "blob": BLOB}})
        assert r.status_code == 201, r.text
        assert api.get(IMAGES).status_code == 200
        master = api.cloud.service("identity").master_key
        with api.cloud.db.read() as s:
            rows = [(str(r[0]), str(r[1])) for r in s.execute(text("SELECT kind, key FROM identity_key"))]
        clear = [master.unwrap(key, f"identity_key/{kind}") for kind, key in rows]
        assert {kind for kind, _ in rows} == {"fernet", "credential"}
        return token, r.json()["credential"]["id"], clear
    finally:
        gen.close()


def test_the_database_holds_no_key_in_the_clear(tmp_path: Path) -> None:
    state = tmp_path / "a"
    token, _, clear = _first_cloud(state)
    path = state / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    dump = (state / "onestack.db").read_bytes()
    for key in clear:
        assert key.encode() not in dump
    # what a copy of the database holds is no key at all
    import sqlite3

    with sqlite3.connect(state / "onestack.db") as conn:
        stored = [row[0] for row in conn.execute("SELECT key FROM identity_key")]
    for value in stored:
        assert value.startswith("mk1:")
        with pytest.raises(ValueError):
            Fernet(value)
    # and the clear keys do sign the token: the test above is not vacuous
    padded = token + "=" * (-len(token) % 4)
    assert any(_opens(key, padded) for key in clear)


def _opens(key: str, token: str) -> bool:
    try:
        Fernet(key.encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def test_a_copy_of_the_database_without_the_master_key(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    token, cred_id, _ = _first_cloud(a)
    b.mkdir(mode=0o700)
    shutil.copy(a / "onestack.db", b / "onestack.db")
    shutil.copy(a / "clouds.yaml", b / "clouds.yaml")  # even knowing the admin password

    # It does not start: no master key here, and none is made up for it.
    settings = load_settings(b, env=dict(TEST_ENV))
    cloud = build_cloud(settings)
    with pytest.raises(MasterKeyMismatch, match="wrapped with a master key .* that this state directory does not"):
        prepare(cloud)
    assert not (b / "master.key").exists()

    # Another master key (a made-up one) opens nothing either.
    wrong = masterkey.new_key_text()
    settings = load_settings(b, env={**TEST_ENV, "ONESTACK_MASTER_KEY": wrong})
    cloud = build_cloud(settings)
    with pytest.raises(MasterKeyMismatch, match="wrapped with another master key"):
        prepare(cloud)
    # Served anyway (bootstrap skipped): no token validates, no credential decrypts.
    with TestClient(build_app(cloud), base_url="http://127.0.0.1:8800") as client:
        r = client.get(IMAGES, headers={"X-Auth-Token": token})
        assert r.status_code == 401
        assert r.json() == {"error": {"code": 401, "title": "Unauthorized",
                                      "message": "The request you have made requires authentication."}}
        r = client.get(f"/identity/v3/credentials/{cred_id}", headers={"X-Auth-Token": token})
        assert r.status_code == 401
        api = Api(client, cloud)
        r = client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": api.admin_auth["password"]}}}}})
        assert r.status_code == 503  # the password is right, but no token can be signed
        assert r.json()["error"]["message"] == "The token keys cannot be read with this cloud's master key."
    identity = cloud.service("identity")
    from onestack.common.errors import ServiceUnavailable
    from onestack.identity.models import Credential
    from onestack.identity.service import credentials

    with cloud.db.read() as s, pytest.raises(ServiceUnavailable):
        credentials.decrypt(identity, s, s.get(Credential, cred_id).encrypted_blob)

    # With the cloud's master key given by configuration, the copy works.
    for env in ({"ONESTACK_MASTER_KEY": (a / "master.key").read_text().strip()},
                {"ONESTACK_MASTER_KEY_FILE": str(a / "master.key")}):
        masterkey._cache.clear()
        with cloud_at(b, **env) as api:
            assert api.get(IMAGES, headers={"X-Auth-Token": token}).status_code == 200
            r = api.get(f"/identity/v3/credentials/{cred_id}", headers={"X-Auth-Token": token})
            assert r.status_code == 200 and r.json()["credential"]["blob"] == BLOB
    assert not (b / "master.key").exists()


def test_a_restart_keeps_tokens_valid(tmp_path: Path) -> None:
    state = tmp_path / "a"
    token, cred_id, _ = _first_cloud(state)
    masterkey._cache.clear()  # as a new process
    with cloud_at(state) as api:
        assert api.get(IMAGES, headers={"X-Auth-Token": token}).status_code == 200
        r = api.get(f"/identity/v3/credentials/{cred_id}", headers={"X-Auth-Token": token})
        assert r.json()["credential"]["blob"] == BLOB
        # rotation keeps working with wrapped keys
        api.cloud.service("identity").tokens.keys.rotate()
        assert api.get(IMAGES, headers={"X-Auth-Token": token}).status_code == 200
        assert api.get(IMAGES, headers={"X-Auth-Token": api.password_token(
            "admin", api.admin_auth["password"], project="admin")}).status_code == 200


def _alembic(db: Any, fn: str, target: str) -> None:
    from alembic import command

    from onestack.common import migrate

    cfg = migrate._config()
    with db.write_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, fn)(cfg, target)


def test_a_cloud_of_an_earlier_version_upgrades_in_place(tmp_path: Path) -> None:
    """Keys in the clear in a 64-character column, no master key: the next start
    widens the column (migration identity_0002), makes the master key and wraps
    every key in place; tokens and credentials from before keep working."""
    state = tmp_path / "old"
    token, cred_id, clear = _first_cloud(state)
    # Turn it into what an earlier version left behind.
    settings = load_settings(state, env=dict(TEST_ENV))
    cloud = build_cloud(settings)
    master = cloud.service("identity").master_key
    with cloud.db.write() as s:
        for kind, idx, key in list(s.execute(text("SELECT kind, idx, key FROM identity_key"))):
            s.execute(text("UPDATE identity_key SET key = :k WHERE kind = :kind AND idx = :idx"),
                      {"k": master.unwrap(key, f"identity_key/{kind}"), "kind": kind, "idx": idx})
    _alembic(cloud.db, "downgrade", "identity_0001")
    cloud.db.dispose()
    (state / "master.key").unlink()
    masterkey._cache.clear()

    with cloud_at(state) as api:
        from onestack.common import migrate

        assert "identity_0002" in migrate.current(api.cloud.db)
        assert stat.S_IMODE((state / "master.key").stat().st_mode) == 0o600
        new_master = api.cloud.service("identity").master_key
        assert new_master.key != master.key
        with api.cloud.db.read() as s:
            rows = [(str(r[0]), str(r[1])) for r in s.execute(text("SELECT kind, key FROM identity_key"))]
        assert all(key.startswith(f"mk1:{new_master.fingerprint}:") for _, key in rows)
        assert sorted(new_master.unwrap(k, f"identity_key/{kind}") for kind, k in rows) == sorted(clear)
        assert api.get(IMAGES, headers={"X-Auth-Token": token}).status_code == 200
        r = api.get(f"/identity/v3/credentials/{cred_id}", headers={"X-Auth-Token": token})
        assert r.json()["credential"]["blob"] == BLOB
    dump = (state / "onestack.db").read_bytes()
    assert not any(key.encode() in dump for key in clear)
