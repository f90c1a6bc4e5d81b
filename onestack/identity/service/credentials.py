"""Credentials (Keystone v3 ``/v3/credentials``), including ``ec2`` ones.

Blobs are stored encrypted with Fernet under a key of kind "credential" in
the ``identity_key`` table (made on first use; the highest index encrypts,
every key decrypts, so keys can be rotated). An ``ec2`` credential's blob is
JSON with an ``access`` key and its id is sha256(access) in hex, as in
Keystone. Users see and manage their own credentials; system readers read
everyone's, admins manage everyone's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, ServiceUnavailable
from onestack.common.ids import new_id, utcnow
from onestack.common.masterkey import KeyUnavailable
from onestack.identity.models import Credential, IdentityKey, Project, User
from onestack.identity.service._resources import (
    ADMIN,
    SYSTEM_READER,
    allowed,
    authorize,
    authorized_row,
    check_id,
    check_min_properties,
    check_string,
    conflict,
    expecting,
    extra_attributes,
    filter_rows,
    flush_or_conflict,
    invalid,
    merge_extra,
    not_found,
    target,
)

if TYPE_CHECKING:
    from onestack.identity.core import Identity

log = logging.getLogger(__name__)

KEY_KIND = "credential"
CRED_OWNER = "user_id:%(target.credential.user_id)s"

POLICIES: dict[str, str] = {
    "identity:get_credential": f"{ADMIN} or {SYSTEM_READER} or {CRED_OWNER}",
    "identity:list_credentials": f"{ADMIN} or {SYSTEM_READER} or {CRED_OWNER}",
    "identity:create_credential": f"{ADMIN} or {CRED_OWNER}",
    "identity:update_credential": f"{ADMIN} or {CRED_OWNER}",
    "identity:delete_credential": f"{ADMIN} or {CRED_OWNER}",
}

COLUMNS = ("id", "user_id", "project_id", "type", "blob", "links")
# Scope markers inside an ec2 blob that an update may not change.
_FIXED_BLOB_KEYS = ("trust_id", "app_cred_id", "access_token_id", "access_id")


# --- encryption --------------------------------------------------------------------


# The keys are stored wrapped by the master key (common/masterkey.py).
KEY_PURPOSE = "identity_key/credential"


def _keys(identity: Identity, session: Session) -> list[str]:
    """The credential keys, primary first, unwrapped (503 if the master key cannot)."""
    rows = session.scalars(
        select(IdentityKey.key).where(IdentityKey.kind == KEY_KIND).order_by(IdentityKey.idx.desc())
    )
    master = identity.master_key
    try:
        return [master.unwrap(row, KEY_PURPOSE) for row in rows]
    except KeyUnavailable as exc:
        log.error("credential keys cannot be unwrapped: %s", exc)
        raise ServiceUnavailable("The credential keys cannot be read with this cloud's master key.") from None


def _primary_key(identity: Identity, session: Session) -> str:
    """The encrypting key, created on first use (call inside a write transaction)."""
    keys = _keys(identity, session)
    if keys:
        return keys[0]
    key = Fernet.generate_key().decode("ascii")
    wrapped = identity.master_key.wrap(key, KEY_PURPOSE)
    session.add(IdentityKey(kind=KEY_KIND, idx=1, key=wrapped, created_at=utcnow()))
    session.flush()
    return key


def _key_hash(key: str) -> str:
    return hashlib.sha1(key.encode("ascii")).hexdigest()  # noqa: S324 - an identifier, as Keystone


def encrypt(identity: Identity, session: Session, blob: str) -> tuple[bytes, str]:
    key = _primary_key(identity, session)
    return Fernet(key.encode("ascii")).encrypt(blob.encode("utf-8")), _key_hash(key)


def decrypt(identity: Identity, session: Session, token: bytes) -> str:
    keys = _keys(identity, session)
    if not keys:
        raise ApiError("Credential keys are missing; credentials cannot be decrypted.")
    try:
        return MultiFernet([Fernet(k.encode("ascii")) for k in keys]).decrypt(token).decode("utf-8")
    except InvalidToken:
        raise ApiError("A credential could not be decrypted with any credential key.") from None


# --- wire shape ----------------------------------------------------------------------


def credential_dict(identity: Identity, session: Session, row: Credential) -> dict[str, Any]:
    body: dict[str, Any] = dict(row.extra or {})
    body.update(
        {
            "id": row.id,
            "user_id": row.user_id,
            "project_id": row.project_id,
            "type": row.type,
            "blob": decrypt(identity, session, row.encrypted_blob),
        }
    )
    return body


def _target(row: Credential | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(row, Credential):
        ref = {"id": row.id, "user_id": row.user_id, "project_id": row.project_id, "type": row.type}
    else:
        ref = {k: row.get(k) for k in ("id", "user_id", "project_id", "type")}
    return target(credential=ref)


def _credential(identity: Any, ctx: AuthContext, session: Session, credential_id: str, rule: str) -> Credential:
    row = session.get(Credential, credential_id)
    return authorized_row(identity, ctx, rule, row, _target, "credential", credential_id, target())


# --- validation ---------------------------------------------------------------------


_UPDATABLE = ("blob", "project_id", "type", "user_id")


def _check(ref: Mapping[str, Any], *, create: bool) -> None:
    if create:
        for key in ("blob", "type", "user_id"):
            if key not in ref:
                raise invalid(f"'{key}' is a required property")
    else:  # Keystone's update schema: these four and nothing else (an ``id`` neither)
        for key in ref:
            if key not in _UPDATABLE:
                raise invalid(f"Additional properties are not allowed ({key!r} was unexpected)")
    if "blob" in ref:
        check_string(ref["blob"], "blob", nullable=False)
    if "type" in ref:
        check_string(ref["type"], "type", nullable=False, max_len=255)
    if "user_id" in ref:
        check_id(ref["user_id"], "user_id")
    if "project_id" in ref:
        check_id(ref["project_id"], "project_id", nullable=True)
    if create and str(ref.get("type", "")).lower() == "ec2" and not ref.get("project_id"):
        raise invalid("'project_id' is a required property")


def ec2_blob(blob: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(blob) if isinstance(blob, str) else None
    except ValueError:
        raise invalid("Invalid blob in credential") from None
    if not parsed or not isinstance(parsed, dict):
        raise expecting("blob", "credential")
    if parsed.get("access") is None:
        raise expecting("access", "credential")
    if not isinstance(parsed["access"], str):
        raise invalid("Invalid input for field 'blob': 'access' must be a string")
    return parsed


def _assert_refs(session: Session, user_id: str | None, project_id: str | None) -> None:
    if user_id is not None and session.get(User, user_id) is None:
        raise not_found("user", user_id)
    if project_id is not None:
        project = session.get(Project, project_id)
        if project is None or project.is_domain:
            raise not_found("project", project_id)


# --- operations -------------------------------------------------------------------


def create_credential(identity: Any, ctx: AuthContext, ref: dict[str, Any]) -> dict[str, Any]:
    """POST /v3/credentials."""
    authorize(identity, ctx, "identity:create_credential", _target(ref))
    _check(ref, create=True)
    blob = ref["blob"]
    if ref["type"].lower() == "ec2":
        parsed = ec2_blob(blob)
        cred_id = hashlib.sha256(parsed["access"].encode("utf-8")).hexdigest()
        scope = {"trust_id": ctx.trust_id, "app_cred_id": ctx.app_cred_id}
        if any(scope.values()):
            parsed.update({k: v for k, v in scope.items() if v})
            blob = json.dumps(parsed)
    else:
        cred_id = new_id()
    with identity.db.write() as session:
        _assert_refs(session, ref["user_id"], ref.get("project_id"))
        if session.get(Credential, cred_id) is not None:
            raise conflict("credential", f"Duplicate entry found with ID {cred_id}")
        encrypted, key_hash = encrypt(identity, session, blob)
        row = Credential(
            id=cred_id,
            user_id=ref["user_id"],
            project_id=ref.get("project_id"),
            type=ref["type"],
            encrypted_blob=encrypted,
            key_hash=key_hash,
            extra=extra_attributes(ref, COLUMNS),
        )
        session.add(row)
        flush_or_conflict(session, conflict("credential", f"Duplicate entry found with ID {cred_id}"))
        result = credential_dict(identity, session, row)
    return result


def get_credential(identity: Any, ctx: AuthContext, credential_id: str) -> dict[str, Any]:
    with identity.db.read() as session:
        row = _credential(identity, ctx, session, credential_id, "identity:get_credential")
        return credential_dict(identity, session, row)


def list_credentials(identity: Any, ctx: AuthContext, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /v3/credentials: only those the caller may read (filters user_id, type)."""
    tgt = target() if ctx.system_scope else target(credential={"user_id": ctx.user_id})
    authorize(identity, ctx, "identity:list_credentials", tgt)
    with identity.db.read() as session:
        stmt = select(Credential)
        stmt = filter_rows(stmt, Credential, query, ("user_id", "type"))
        out = []
        for row in session.scalars(stmt.order_by(Credential.id)):
            if allowed(identity, ctx, "identity:get_credential", _target(row)):
                out.append(credential_dict(identity, session, row))
        return out


def update_credential(
    identity: Any, ctx: AuthContext, credential_id: str, ref: dict[str, Any]
) -> dict[str, Any]:
    """PATCH /v3/credentials/{id}."""
    with identity.db.write() as session:
        row = _credential(identity, ctx, session, credential_id, "identity:update_credential")
        check_min_properties(ref)
        _check(ref, create=False)
        current = credential_dict(identity, session, row)
        new_type = ref.get("type", row.type)
        if row.type.lower() == "ec2" and "blob" in ref:
            new_blob = ec2_blob(ref["blob"])
            old_blob = json.loads(current["blob"])
            for key in _FIXED_BLOB_KEYS:
                if old_blob.get(key) != new_blob.get(key):
                    raise invalid(f"{key} can not be updated for credential")
        if new_type.lower() == "ec2":
            ec2_blob(ref.get("blob", current["blob"]))
            if not ref.get("project_id", row.project_id):
                raise invalid("'project_id' is a required property")
        merged = {**current, **ref}
        authorize(identity, ctx, "identity:update_credential", _target(merged))
        _assert_refs(
            session,
            ref.get("user_id") if "user_id" in ref else None,
            ref.get("project_id") if ref.get("project_id") else None,
        )
        if "user_id" in ref:
            row.user_id = ref["user_id"]
        if "project_id" in ref:
            row.project_id = ref["project_id"]
        if "type" in ref:
            row.type = ref["type"]
        if "blob" in ref:
            row.encrypted_blob, row.key_hash = encrypt(identity, session, ref["blob"])
        merge_extra(row, ref, COLUMNS)
        session.flush()
        return credential_dict(identity, session, row)


def delete_credential(identity: Any, ctx: AuthContext, credential_id: str) -> None:
    with identity.db.write() as session:
        row = _credential(identity, ctx, session, credential_id, "identity:delete_credential")
        session.delete(row)


# --- OS-EC2: /v3/users/{user_id}/credentials/OS-EC2 ------------------------------------

POLICIES.update(
    {
        "identity:ec2_get_credential": f"{ADMIN} or {SYSTEM_READER} or {CRED_OWNER}",
        "identity:ec2_list_credentials": f"{ADMIN} or {SYSTEM_READER} or rule:owner",
        "identity:ec2_create_credential": "rule:admin_required or rule:owner",
        "identity:ec2_delete_credential": f"{ADMIN} or {CRED_OWNER}",
    }
)


def ec2_view(identity: Identity, session: Session, row: Credential) -> dict[str, Any]:
    """Keystone's OS-EC2 shape of an ec2 credential."""
    try:
        blob = json.loads(decrypt(identity, session, row.encrypted_blob))
    except ValueError:
        blob = {}
    if not isinstance(blob, dict):
        blob = {}
    return {
        "user_id": row.user_id,
        "tenant_id": row.project_id,
        "access": blob.get("access"),
        "secret": blob.get("secret"),
        "trust_id": blob.get("trust_id"),
        "app_cred_id": blob.get("app_cred_id"),
        "access_token_id": blob.get("access_token_id"),
    }


def _ec2_user(identity: Any, ctx: AuthContext, session: Session, user_id: str, rule: str) -> User:
    authorize(identity, ctx, rule, target(user_id=user_id))
    user = session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def ec2_create(identity: Any, ctx: AuthContext, user_id: str, body: Any) -> dict[str, Any]:
    """POST /v3/users/{id}/credentials/OS-EC2 ``{"tenant_id": ...}``: new access/secret pair."""
    if not isinstance(body, dict):
        raise expecting("tenant_id", "request body")
    tenant_id = body.get("tenant_id")
    if tenant_id is None:
        raise invalid("'tenant_id' is a required property")
    check_id(tenant_id, "tenant_id")
    blob: dict[str, Any] = {"access": new_id(), "secret": new_id(), "trust_id": ctx.trust_id}
    if ctx.app_cred_id:
        blob["app_cred_id"] = ctx.app_cred_id
    cred_id = hashlib.sha256(blob["access"].encode("utf-8")).hexdigest()
    with identity.db.write() as session:
        user = _ec2_user(identity, ctx, session, user_id, "identity:ec2_create_credential")
        _assert_refs(session, None, tenant_id)
        encrypted, key_hash = encrypt(identity, session, json.dumps(blob))
        row = Credential(
            id=cred_id, user_id=user.id, project_id=tenant_id, type="ec2",
            encrypted_blob=encrypted, key_hash=key_hash, extra={},
        )
        session.add(row)
        session.flush()
        return ec2_view(identity, session, row)


def ec2_list(identity: Any, ctx: AuthContext, user_id: str) -> list[dict[str, Any]]:
    with identity.db.read() as session:
        user = _ec2_user(identity, ctx, session, user_id, "identity:ec2_list_credentials")
        rows = session.scalars(
            select(Credential).where(Credential.user_id == user.id, Credential.type == "ec2").order_by(Credential.id)
        )
        return [ec2_view(identity, session, r) for r in rows]


def _ec2_row(session: Session, user_id: str, access: str) -> Credential | None:
    row = session.get(Credential, hashlib.sha256(access.encode("utf-8")).hexdigest())
    if row is None or row.user_id != user_id or row.type != "ec2":
        return None
    return row


def ec2_credential(identity: Any, access: str) -> dict[str, Any] | None:
    """The OS-EC2 view of the credential with this access key, or None (no
    policy: for services checking a signature made with it, in-process)."""
    with identity.db.read() as session:
        row = session.get(Credential, hashlib.sha256(access.encode("utf-8")).hexdigest())
        if row is None or row.type.lower() != "ec2":
            return None
        view = ec2_view(identity, session, row)
        return view if view["access"] == access and view["secret"] else None


def ec2_get(identity: Any, ctx: AuthContext, user_id: str, access: str) -> dict[str, Any]:
    with identity.db.read() as session:
        row = _ec2_row(session, user_id, access)
        tgt = _target(row) if row is not None else target(credential={"user_id": user_id})
        authorize(identity, ctx, "identity:ec2_get_credential", tgt)
        if session.get(User, user_id) is None:
            raise not_found("user", user_id)
        if row is None:
            raise not_found("credential", access)
        return ec2_view(identity, session, row)


def ec2_delete(identity: Any, ctx: AuthContext, user_id: str, access: str) -> None:
    with identity.db.write() as session:
        row = _ec2_row(session, user_id, access)
        tgt = _target(row) if row is not None else target(credential={"user_id": user_id})
        authorize(identity, ctx, "identity:ec2_delete_credential", tgt)
        if session.get(User, user_id) is None:
            raise not_found("user", user_id)
        if row is None:
            raise not_found("credential", access)
        session.delete(row)
