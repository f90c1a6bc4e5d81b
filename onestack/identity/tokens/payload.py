"""What a token says: the payload inside the Fernet token, and how it is packed.

A token is ``MultiFernet.encrypt(msgpack(payload))`` with the base64 padding
removed (as Keystone does), so tokens stay well under 255 characters. The
payload is a short list::

    [version, user_id, methods, scope_kind, scope_id, expires_us, issued_us,
     audit_ids, trust_id, app_cred_id, access_token_id]

Ids that are 32 hex characters travel as 16 raw bytes, others as strings.
``methods`` are small integers for the known methods (strings for others).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack

from onestack.common.errors import NotFound

PAYLOAD_VERSION = 1
KNOWN_METHODS = ("password", "token", "application_credential", "oauth1", "totp", "mapped", "external")
SCOPE_NONE, SCOPE_PROJECT, SCOPE_DOMAIN, SCOPE_SYSTEM = 0, 1, 2, 3
# Keystone's [token] allow_expired_window: how long after expiry ?allow_expired works.
ALLOW_EXPIRED_WINDOW = timedelta(days=2)


class TokenNotFound(NotFound):
    """The subject token is malformed, expired, revoked or no longer valid."""

    def __init__(self, token: str = "") -> None:
        super().__init__(f"Could not find token: {token}" if token else "Could not find token.")



def _pack_id(value: str | None) -> bytes | str | None:
    if value is None:
        return None
    if len(value) == 32 and value == value.lower():  # round-trips exactly as lowercase hex
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return value


def _unpack_id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def new_audit_id() -> str:
    """Keystone's audit id: 16 random bytes, urlsafe base64 without padding (22 chars)."""
    return base64.urlsafe_b64encode(os.urandom(16)).decode("ascii").rstrip("=")


def _pack_audit(audit_id: str) -> bytes | str:
    try:
        raw = base64.urlsafe_b64decode(audit_id + "==")
        if len(raw) == 16 and _unpack_audit(raw) == audit_id:
            return raw
    except (binascii.Error, ValueError):
        pass
    return audit_id


def _unpack_audit(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.urlsafe_b64encode(value).decode("ascii").rstrip("=")
    return str(value)


def _to_us(dt: datetime) -> int:
    return int(dt.replace(tzinfo=UTC).timestamp() * 1_000_000)


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=us)


@dataclass(frozen=True)
class TokenData:
    """What a token itself says (decrypted payload)."""

    user_id: str
    methods: tuple[str, ...]
    expires_at: datetime
    issued_at: datetime
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    trust_id: str | None = None
    app_cred_id: str | None = None
    access_token_id: str | None = None

    @property
    def scoped(self) -> bool:
        return bool(self.project_id or self.domain_id or self.system)


def encode_payload(data: TokenData) -> bytes:
    methods = [KNOWN_METHODS.index(m) if m in KNOWN_METHODS else m for m in data.methods]
    if data.project_id:
        kind, scope_id = SCOPE_PROJECT, _pack_id(data.project_id)
    elif data.domain_id:
        kind, scope_id = SCOPE_DOMAIN, _pack_id(data.domain_id)
    elif data.system:
        kind, scope_id = SCOPE_SYSTEM, None
    else:
        kind, scope_id = SCOPE_NONE, None
    payload = [
        PAYLOAD_VERSION,
        _pack_id(data.user_id),
        methods,
        kind,
        scope_id,
        _to_us(data.expires_at),
        _to_us(data.issued_at),
        [_pack_audit(a) for a in data.audit_ids],
        _pack_id(data.trust_id),
        _pack_id(data.app_cred_id),
        _pack_id(data.access_token_id),
    ]
    while payload[-1] is None:
        payload.pop()
    return bytes(msgpack.packb(payload, use_bin_type=True))


def decode_payload(raw: bytes) -> TokenData:
    """Parse a decrypted payload; ``ValueError`` if it is not one of ours."""
    try:
        p = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several types
        raise ValueError("bad payload") from exc
    if not isinstance(p, list) or len(p) < 8 or p[0] != PAYLOAD_VERSION:
        raise ValueError("bad payload")
    p = p + [None] * (11 - len(p))
    user_id = _unpack_id(p[1])
    if not user_id:
        raise ValueError("bad payload")
    methods = tuple(KNOWN_METHODS[m] if isinstance(m, int) else str(m) for m in p[2])
    kind, scope_id = p[3], _unpack_id(p[4])
    return TokenData(
        user_id=user_id,
        methods=methods,
        expires_at=_from_us(p[5]),
        issued_at=_from_us(p[6]),
        audit_ids=tuple(_unpack_audit(a) for a in p[7]),
        project_id=scope_id if kind == SCOPE_PROJECT else None,
        domain_id=scope_id if kind == SCOPE_DOMAIN else None,
        system=kind == SCOPE_SYSTEM,
        trust_id=_unpack_id(p[8]),
        app_cred_id=_unpack_id(p[9]),
        access_token_id=_unpack_id(p[10]),
    )
