"""What other services may ask of Identity in-process - and nothing else.

Every other service reaches Identity through this module only (an
import-linter contract holds it): token validation, and lookups of projects
and users by id or name. Functions take the ``Cloud`` and find the Identity
service in it; when Identity does not run in this process they answer as
for an unknown id (None), so a service can start without it. Services that
run apart from Identity use its REST API instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from onestack.common.errors import Unauthorized
from onestack.identity.core import Identity
from onestack.identity.models import Project
from onestack.identity.tokens.resolve import ADMIN_PROJECT_DOMAIN, ADMIN_PROJECT_NAME

if TYPE_CHECKING:
    from onestack.common.auth import AuthContext
    from onestack.common.cloud import Cloud


@dataclass(frozen=True)
class ProjectRef:
    id: str
    name: str
    domain_id: str
    # False when the project, its domain or a project above it is disabled.
    enabled: bool


@dataclass(frozen=True)
class UserRef:
    id: str
    name: str
    domain_id: str
    # False when the user or their domain is disabled.
    enabled: bool


@dataclass(frozen=True)
class Ec2Credential:
    """An EC2-style credential (``openstack ec2 credentials create``): what S3
    signatures are checked with, and whose requests they are."""

    access: str
    secret: str
    user_id: str
    project_id: str | None
    trust_id: str | None = None
    app_cred_id: str | None = None


def _identity(cloud: Cloud) -> Identity | None:
    svc = cloud.services.get(Identity.name)
    return svc if isinstance(svc, Identity) else None


def validate_token(cloud: Cloud, token: str) -> AuthContext:
    """The token's context, through the cloud's validator cache (a revoked
    token may be accepted for ``[identity] token_cache_seconds``, as with
    keystonemiddleware); ``Unauthorized`` (401) for an invalid token."""
    validator = cloud.cached_validator or cloud.validator
    if validator is None:
        raise Unauthorized("The request you have made requires authentication.")
    return validator.validate(token)


def get_project(cloud: Cloud, project_id: str) -> ProjectRef | None:
    """A project (not a domain) by id, or None."""
    identity = _identity(cloud)
    if identity is None:
        return None
    tokens = identity.tokens
    with tokens.read() as s:
        info = tokens.project_info(s, project_id)
    if info is None:
        return None
    return ProjectRef(info["id"], info["name"], info["domain"]["id"], bool(info["_enabled"]))


def find_project(cloud: Cloud, name: str, domain_id: str = "default") -> ProjectRef | None:
    """A project by name in a domain, or None."""
    identity = _identity(cloud)
    if identity is None:
        return None
    with identity.db.read() as s:
        project_id = s.scalars(
            select(Project.id).where(
                Project.name == name, Project.domain_id == domain_id, Project.is_domain.is_(False)
            )
        ).first()
    return get_project(cloud, project_id) if project_id is not None else None


def project_id(cloud: Cloud, name: str, domain_id: str = "default") -> str | None:
    """The id of the project ``name`` in ``domain_id``, or None."""
    project = find_project(cloud, name, domain_id)
    return project.id if project is not None else None


def admin_project_id(cloud: Cloud) -> str | None:
    """The cloud's admin project (Keystone's ``[resource] admin_project_name``),
    or None before the bootstrap made it."""
    return project_id(cloud, ADMIN_PROJECT_NAME, ADMIN_PROJECT_DOMAIN)


def get_user(cloud: Cloud, user_id: str) -> UserRef | None:
    """A user by id, or None."""
    identity = _identity(cloud)
    if identity is None:
        return None
    tokens = identity.tokens
    with tokens.read() as s:
        info = tokens.user_info(s, user_id)
    if info is None:
        return None
    return UserRef(info["id"], info["name"], info["domain"]["id"], bool(info["_enabled"]))


def find_ec2_credential(cloud: Cloud, access: str) -> Ec2Credential | None:
    """The EC2 credential with this access key, or None (blocking: call from a thread)."""
    identity = _identity(cloud)
    if identity is None or not access or len(access) > 255:
        return None
    from onestack.identity.service.credentials import ec2_credential

    found = ec2_credential(identity, access)
    if found is None:
        return None
    return Ec2Credential(
        access=str(found["access"]), secret=str(found["secret"] or ""),
        user_id=found["user_id"], project_id=found["tenant_id"],
        trust_id=found.get("trust_id"), app_cred_id=found.get("app_cred_id"),
    )


def ec2_token(cloud: Cloud, credential: Ec2Credential) -> AuthContext:
    """A token for the credential's user on its project (Keystone's
    ``ec2tokens``/``s3tokens``, after the caller checked the signature), as a
    validated context whose ``token`` other services accept. ``Unauthorized``
    when the user, the project or the user's roles on it no longer hold
    (blocking: call from a thread)."""
    identity = _identity(cloud)
    if identity is None or not credential.project_id:
        raise Unauthorized("The request you have made requires authentication.")
    tokens = identity.tokens
    token, _data = tokens.issue(
        credential.user_id, ("ec2credential",), project_id=credential.project_id,
        trust_id=credential.trust_id, app_cred_id=credential.app_cred_id,
    )
    return tokens.validate_context(token)
