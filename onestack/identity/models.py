"""Identity tables (Keystone's data model, simplified where it can be).

Domains are projects with ``is_domain`` true, as in Keystone: a domain's
``domain_id`` is the ``ROOT_DOMAIN`` sentinel, so domain names are unique
among domains and project names are unique within their domain. Roles without
a domain carry ``NULL_DOMAIN`` for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base

ROOT_DOMAIN = "<<keystone.domain.root>>"
NULL_DOMAIN = "<<null>>"
ID = String(64)


class Project(Base):
    """A project, or a domain when ``is_domain``."""

    __tablename__ = "project"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    parent_id: Mapped[str | None] = mapped_column(ID, default=None, index=True)
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProjectTag(Base):
    __tablename__ = "project_tag"

    project_id: Mapped[str] = mapped_column(ID, ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)


class User(Base):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    default_project_id: Mapped[str | None] = mapped_column(ID, default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    email: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    last_active_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    failed_auth_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_auth_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    # ignore_change_password_upon_first_use, ignore_password_expiry,
    # ignore_lockout_failure_attempts, lock_password, multi_factor_auth_rules ...
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Password(Base):
    """A user's passwords, newest last; older rows are the password history."""

    __tablename__ = "password"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("user.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    self_service: Mapped[bool] = mapped_column(Boolean, default=False)


class Group(Base):
    __tablename__ = "group"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    domain_id: Mapped[str] = mapped_column(ID, index=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UserGroupMembership(Base):
    __tablename__ = "user_group_membership"

    user_id: Mapped[str] = mapped_column(ID, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ID, ForeignKey("group.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Role(Base):
    __tablename__ = "role"
    __table_args__ = (UniqueConstraint("name", "domain_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    domain_id: Mapped[str] = mapped_column(ID, default=NULL_DOMAIN)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImpliedRole(Base):
    __tablename__ = "implied_role"

    prior_role_id: Mapped[str] = mapped_column(ID, ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)
    implied_role_id: Mapped[str] = mapped_column(
        ID, ForeignKey("role.id", ondelete="CASCADE"), primary_key=True
    )


# Assignment types
USER_PROJECT = "UserProject"
GROUP_PROJECT = "GroupProject"
USER_DOMAIN = "UserDomain"
GROUP_DOMAIN = "GroupDomain"
USER_SYSTEM = "UserSystem"
GROUP_SYSTEM = "GroupSystem"
SYSTEM_TARGET = "system"


class Assignment(Base):
    """A role given to a user or group on a project, a domain or the system."""

    __tablename__ = "assignment"
    __table_args__ = (
        Index("ix_assignment_actor", "actor_id"),
        Index("ix_assignment_target", "target_id"),
        Index("ix_assignment_role", "role_id"),
    )

    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    actor_id: Mapped[str] = mapped_column(ID, primary_key=True)
    target_id: Mapped[str] = mapped_column(ID, primary_key=True)
    role_id: Mapped[str] = mapped_column(ID, primary_key=True)
    inherited: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)


class Region(Base):
    __tablename__ = "region"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Service(Base):
    __tablename__ = "service"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name, description, ...


class Endpoint(Base):
    __tablename__ = "endpoint"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ID, ForeignKey("service.id"), index=True)
    interface: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    region_id: Mapped[str | None] = mapped_column(String(255), default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Credential(Base):
    __tablename__ = "credential"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    project_id: Mapped[str | None] = mapped_column(ID, default=None)
    type: Mapped[str] = mapped_column(String(255))
    encrypted_blob: Mapped[bytes] = mapped_column(LargeBinary)
    key_hash: Mapped[str] = mapped_column(String(64), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApplicationCredential(Base):
    __tablename__ = "application_credential"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_hash: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    project_id: Mapped[str | None] = mapped_column(ID, default=None)
    system: Mapped[str | None] = mapped_column(String(64), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    role_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    access_rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class AccessRule(Base):
    __tablename__ = "access_rule"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, index=True)
    service: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))


class RevocationEvent(Base):
    """Tokens matching every non-null field and issued before ``issued_before`` are revoked."""

    __tablename__ = "revocation_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    domain_id: Mapped[str | None] = mapped_column(ID, default=None)
    project_id: Mapped[str | None] = mapped_column(ID, default=None)
    user_id: Mapped[str | None] = mapped_column(ID, default=None)
    role_id: Mapped[str | None] = mapped_column(ID, default=None)
    trust_id: Mapped[str | None] = mapped_column(ID, default=None)
    consumer_id: Mapped[str | None] = mapped_column(ID, default=None)
    access_token_id: Mapped[str | None] = mapped_column(ID, default=None)
    audit_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    audit_chain_id: Mapped[str | None] = mapped_column(String(32), default=None)
    issued_before: Mapped[datetime] = mapped_column(DateTime, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    revoked_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class IdentityKey(Base):
    """Fernet token keys and credential encryption keys (shared by all API replicas).

    ``kind`` is "fernet" or "credential"; ``idx`` orders keys as Keystone's key
    repository does: the highest index is primary (signs), index 0 is staged.
    ``key`` is wrapped by the master key (``common/masterkey.py``), never clear.
    """

    __tablename__ = "identity_key"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)


# --- OS-TRUST ----------------------------------------------------------------


class Trust(Base):
    __tablename__ = "trust"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    trustor_user_id: Mapped[str] = mapped_column(ID, index=True)
    trustee_user_id: Mapped[str] = mapped_column(ID, index=True)
    project_id: Mapped[str | None] = mapped_column(ID, default=None)
    impersonation: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    remaining_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    redelegated_trust_id: Mapped[str | None] = mapped_column(ID, default=None)
    redelegation_count: Mapped[int | None] = mapped_column(Integer, default=None)
    role_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- OS-OAUTH1 ---------------------------------------------------------------


class OAuthConsumer(Base):
    __tablename__ = "oauth_consumer"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    description: Mapped[str | None] = mapped_column(String(64), default=None)
    secret: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OAuthRequestToken(Base):
    __tablename__ = "oauth_request_token"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    request_secret: Mapped[str] = mapped_column(String(64))
    verifier: Mapped[str | None] = mapped_column(String(64), default=None)
    authorizing_user_id: Mapped[str | None] = mapped_column(ID, default=None)
    requested_project_id: Mapped[str] = mapped_column(ID)
    role_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    consumer_id: Mapped[str] = mapped_column(ID, ForeignKey("oauth_consumer.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class OAuthAccessToken(Base):
    __tablename__ = "oauth_access_token"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    access_secret: Mapped[str] = mapped_column(String(64))
    authorizing_user_id: Mapped[str] = mapped_column(ID, index=True)
    project_id: Mapped[str] = mapped_column(ID)
    role_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    consumer_id: Mapped[str] = mapped_column(ID, ForeignKey("oauth_consumer.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


# --- OS-EP-FILTER ------------------------------------------------------------


class ProjectEndpoint(Base):
    __tablename__ = "project_endpoint"

    endpoint_id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)


class EndpointGroup(Base):
    __tablename__ = "endpoint_group"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProjectEndpointGroup(Base):
    __tablename__ = "project_endpoint_group"

    endpoint_group_id: Mapped[str] = mapped_column(
        ID, ForeignKey("endpoint_group.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)


# --- domain-specific configuration -----------------------------------------


class DomainConfig(Base):
    __tablename__ = "domain_config"

    domain_id: Mapped[str] = mapped_column(ID, primary_key=True)
    group: Mapped[str] = mapped_column(String(255), primary_key=True)
    option: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)


# --- /v3/policies (OS-ENDPOINT-POLICY associations) ---------------------------


class Policy(Base):
    __tablename__ = "policy"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    type: Mapped[str] = mapped_column(String(255))
    blob: Mapped[str] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PolicyAssociation(Base):
    __tablename__ = "policy_association"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    policy_id: Mapped[str] = mapped_column(ID)
    endpoint_id: Mapped[str | None] = mapped_column(ID, default=None)
    service_id: Mapped[str | None] = mapped_column(ID, default=None)
    region_id: Mapped[str | None] = mapped_column(String(255), default=None)


# --- unified limits ----------------------------------------------------------


class RegisteredLimit(Base):
    __tablename__ = "registered_limit"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ID)
    region_id: Mapped[str | None] = mapped_column(String(255), default=None)
    resource_name: Mapped[str] = mapped_column(String(255))
    default_limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, default=None)


class Limit(Base):
    __tablename__ = "limit"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str | None] = mapped_column(ID, default=None)
    domain_id: Mapped[str | None] = mapped_column(ID, default=None)
    service_id: Mapped[str] = mapped_column(ID)
    region_id: Mapped[str | None] = mapped_column(String(255), default=None)
    resource_name: Mapped[str] = mapped_column(String(255))
    resource_limit: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text, default=None)
