"""A user changes their own password (``POST /v3/users/{user_id}/password``).

As in Keystone this needs no token: the original password is the
credential, so the lockout rules of ``[security_compliance]`` apply to it as
to a login.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from onestack.common.errors import BadRequest, Forbidden, Unauthorized
from onestack.common.ids import utcnow
from onestack.identity import revoke
from onestack.identity.models import Project, User
from onestack.identity.passwords import check_password, current_password
from onestack.identity.service._resources import expecting
from onestack.identity.service.auth import AUTH_REQUIRED

if TYPE_CHECKING:
    from onestack.identity.core import Identity


def change_password(identity: Identity, user_id: str, body: Any) -> None:
    """``{"user": {"password", "original_password"}}``: 401 unless the original matches."""
    from onestack.identity.passwords import set_password, validate_password_value

    if not isinstance(body, dict) or "user" not in body:
        raise expecting("user", "request body")
    ref = body["user"]
    if not isinstance(ref, dict):
        raise BadRequest("Invalid input for field 'user': the value must be an object.")
    for key in ("password", "original_password"):
        if key not in ref:
            raise expecting(key, "user")
        if not isinstance(ref[key], str):
            raise BadRequest(f"Invalid input for field '{key}': the value must be a string.")
    validate_password_value(ref["password"])
    settings = identity.settings.identity
    with identity.tokens.read() as s:
        user = s.get(User, user_id)
        if user is None:
            raise Unauthorized(AUTH_REQUIRED)
        dom = s.get(Project, user.domain_id)
        enabled = bool(user.enabled) and dom is not None and bool(dom.enabled)
        pw = current_password(s, user_id)
        pw_hash = pw.password_hash if pw else None
        options = dict(user.options or {})
        failed_count, failed_at = user.failed_auth_count or 0, user.failed_auth_at
    now = utcnow()
    lockout = settings.lockout_failure_attempts > 0 and not options.get("ignore_lockout_failure_attempts")
    if lockout and failed_count >= settings.lockout_failure_attempts and (
        failed_at is None or failed_at + timedelta(seconds=settings.lockout_duration) > now
    ):
        raise Unauthorized(f"The account is locked for user: {user_id}.")
    if not check_password(pw_hash, ref["original_password"]):
        if lockout:
            with identity.db.write() as s:
                u = s.get(User, user_id)
                if u is not None:
                    u.failed_auth_count = (u.failed_auth_count or 0) + 1
                    u.failed_auth_at = now
        raise Unauthorized(AUTH_REQUIRED)
    if not enabled:
        raise Unauthorized(f"The account is disabled for user: {user_id}.")
    if options.get("lock_password"):
        raise Forbidden("You are not authorized to perform the requested action: the password "
                        f"of user {user_id} is locked (lock_password).")
    from onestack.identity.passwords import check_regex, hash_password

    check_regex(identity.settings, ref["password"])
    prehashed = hash_password(identity.settings, ref["password"])  # outside the writer lock
    with identity.db.write() as s:
        u = s.get(User, user_id)
        if u is None:
            raise Unauthorized(AUTH_REQUIRED)
        set_password(identity, s, u, ref["password"], self_service=True, prehashed=prehashed)
        revoke.revoke_user(s, user_id)
    identity.touch()
