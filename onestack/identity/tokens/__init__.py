"""Fernet-style tokens: encrypted, signed, no database row per token.

* ``payload``    what a token says, and how it is packed into the Fernet token;
* ``keys``       the Fernet keys (Keystone's key repository, in the database);
* ``revocation`` revocation events in memory, and what they match;
* ``validated``  a validated token: the payload and what it resolved to;
* ``resolve``    resolution against the database, cached per identity generation;
* ``provider``   the token provider: issue, validate, render.

The package sits below the Identity service object (``identity.core``), which
owns one ``TokenProvider``; it knows its owner only as ``owner.Owner``.
"""

from __future__ import annotations

from onestack.identity.tokens.keys import KeyRepository
from onestack.identity.tokens.payload import (
    TokenData,
    TokenNotFound,
    decode_payload,
    encode_payload,
    new_audit_id,
)
from onestack.identity.tokens.provider import TokenProvider
from onestack.identity.tokens.revocation import RevocationList
from onestack.identity.tokens.validated import ValidatedToken

__all__ = [
    "KeyRepository",
    "RevocationList",
    "TokenData",
    "TokenNotFound",
    "TokenProvider",
    "ValidatedToken",
    "decode_payload",
    "encode_payload",
    "new_audit_id",
]
