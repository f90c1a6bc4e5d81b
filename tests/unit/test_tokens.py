"""Token payloads, key rotation and revocation matching."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet, MultiFernet

from onestack.common.ids import new_id, utcnow
from onestack.identity.models import RevocationEvent
from onestack.identity.tokens import (
    KeyRepository,
    RevocationList,
    TokenData,
    decode_payload,
    encode_payload,
    new_audit_id,
)


def _data(**kw: object) -> TokenData:
    now = utcnow()
    base: dict[str, object] = dict(
        user_id=new_id(), methods=("password",), expires_at=(now + timedelta(hours=1)).replace(microsecond=0),
        issued_at=now, audit_ids=(new_audit_id(),), project_id=new_id(),
    )
    base.update(kw)
    return TokenData(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {},
    {"project_id": None},
    {"project_id": None, "domain_id": "default"},
    {"project_id": None, "system": True},
    {"trust_id": new_id(), "methods": ("token", "password")},
    {"app_cred_id": new_id(), "methods": ("application_credential",)},
    {"access_token_id": new_id(), "methods": ("oauth1", "custom-method")},
    {"user_id": "not-hex-user", "audit_ids": (new_audit_id(), new_audit_id())},
    {"project_id": None, "domain_id": new_id().upper()},
    {"project_id": "0123456789abcdef0123456789abcdeZ"},
])
def test_payload_round_trip(kw: dict[str, object]) -> None:
    data = _data(**kw)
    assert decode_payload(encode_payload(data)) == data


def test_tokens_are_short() -> None:
    f = MultiFernet([Fernet(Fernet.generate_key())])
    data = _data(trust_id=new_id(), audit_ids=(new_audit_id(), new_audit_id()), methods=("token", "password"))
    token = f.encrypt(encode_payload(data)).decode().rstrip("=")
    assert len(token) < 255


@pytest.mark.parametrize("raw", [b"", b"\x01\x02", b"\x93\x01\x02\x03", b"\xc1"])
def test_bad_payloads(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_payload(raw)


def test_audit_ids() -> None:
    a = new_audit_id()
    assert len(a) == 22 and a != new_audit_id()


class _Identity:
    """Just what KeyRepository needs: a database, settings and touch()."""

    def __init__(self, tmp: Path, max_keys: int = 3) -> None:
        from onestack.common import migrate
        from onestack.common.db import Database

        self.db = Database(f"sqlite:///{tmp / 'k.db'}")
        migrate.upgrade(self.db)
        self.settings = SimpleNamespace(identity=SimpleNamespace(max_fernet_keys=max_keys))
        self.touched = 0
        from onestack.common import masterkey

        self.master_key = masterkey.parse_key(masterkey.new_key_text(), "test")

    def touch(self) -> None:
        self.touched += 1


def test_key_rotation(tmp_path: Path) -> None:
    ident = _Identity(tmp_path, max_keys=3)
    keys = KeyRepository(ident)  # type: ignore[arg-type]
    old = keys.fernet.encrypt(b"signed by the first primary")
    assert keys.rotate() == [0, 1, 2]
    assert keys.fernet.decrypt(old) == b"signed by the first primary"
    newer = keys.fernet.encrypt(b"second")
    assert keys.rotate() == [0, 2, 3]  # the oldest (1) is dropped beyond 3 keys
    assert keys.fernet.decrypt(newer) == b"second"
    from cryptography.fernet import InvalidToken

    with pytest.raises(InvalidToken):
        keys.fernet.decrypt(old)
    # the staged key is already accepted: a token signed by it validates after promotion
    assert ident.touched == 2
    # every key in the database is wrapped by the master key, none is in the clear
    from sqlalchemy import text

    with ident.db.read() as s:
        stored = [str(r[0]) for r in s.execute(text("SELECT key FROM identity_key"))]
    assert len(stored) == 3 and all(k.startswith("mk1:" + ident.master_key.fingerprint + ":") for k in stored)
    clear = {ident.master_key.unwrap(k, "identity_key/fernet") for k in stored}
    assert len(clear) == 3 and not any(c in k for c in clear for k in stored)


def test_revocation_matching(tmp_path: Path) -> None:
    ident = _Identity(tmp_path)
    revs = RevocationList(ident)  # type: ignore[arg-type]
    t0 = datetime(2026, 1, 1, 12, 0, 0)

    def event(**kw: str) -> None:
        revs.on_event(RevocationEvent(issued_before=t0, revoked_at=t0, **kw))

    values = {"user_id": frozenset({"u1"}), "project_id": frozenset({"p1"}), "audit_id": frozenset({"a1"}),
              "domain_id": frozenset({"default"}), "role_id": frozenset({"r1"})}
    assert not revs.is_revoked(values, t0)
    event(user_id="u2")
    assert not revs.is_revoked(values, t0)
    event(user_id="u1", project_id="p2")  # both must match
    assert not revs.is_revoked(values, t0)
    event(user_id="u1", project_id="p1")
    assert revs.is_revoked(values, t0)
    assert not revs.is_revoked(values, t0 + timedelta(microseconds=1))  # issued after the event
    revs2 = RevocationList(ident)  # type: ignore[arg-type]
    revs2.on_event(RevocationEvent(issued_before=t0, revoked_at=t0, audit_id="a1"))
    assert revs2.is_revoked(values, t0 - timedelta(hours=1))


def test_revocations_reload_from_the_database(tmp_path: Path) -> None:
    """Another replica's events are picked up by refresh(); old ones are ignored."""
    from onestack.identity import revoke

    ident = _Identity(tmp_path)
    ident.settings.identity.token_expiration = 3600  # type: ignore[attr-defined]
    revs = RevocationList(ident)  # type: ignore[arg-type]
    revs.refresh(force=True)
    before = utcnow()
    with ident.db.write() as s:
        revoke.revoke(s, user_id="u9")
        ancient = RevocationEvent(issued_before=before - timedelta(days=30),
                                  revoked_at=before - timedelta(days=30), user_id="u8")
        s.add(ancient)
    version = revs.version
    revs.refresh(force=True)
    assert revs.version > version
    assert revs.is_revoked({"user_id": frozenset({"u9"})}, before)
    assert not revs.is_revoked({"user_id": frozenset({"u8"})}, before - timedelta(days=31))


def test_catalog_url_substitution() -> None:
    from onestack.identity.catalog import _fill

    assert _fill("http://h/volume/v3/$(project_id)s", "p1") == "http://h/volume/v3/p1"
    assert _fill("http://h/volume/v3/%(tenant_id)s", "p1") == "http://h/volume/v3/p1"
    assert _fill("http://h/identity", None) == "http://h/identity"
    assert _fill("http://h/volume/v3/$(project_id)s", None) is None  # needs a project
    assert _fill("http://h/x/$(user_id)s", "p1") is None
