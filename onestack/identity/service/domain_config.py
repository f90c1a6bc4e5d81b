"""Domain-specific configuration (``/v3/domains/{id}/config``), as Keystone.

Only the ``identity`` and ``ldap`` groups are allowed, with Keystone's list of
options; ``ldap.password`` is accepted but sensitive: stored, never returned.
Errors follow Keystone: an unsupported group/option is 403
(InvalidDomainConfig), a missing one is 404 (DomainConfigNotFound).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from onestack.common import db
from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError, Forbidden, NotFound, ValidationError
from onestack.identity.models import DomainConfig
from onestack.identity.service._resources import domain_row

if TYPE_CHECKING:
    from onestack.identity.core import Identity

ADMIN = "rule:admin_required"
ADMIN_OR_SYSTEM_READER = "rule:admin_required or (role:reader and system_scope:all)"

POLICIES: dict[str, str] = {
    "identity:create_domain_config": ADMIN,
    "identity:get_domain_config": ADMIN_OR_SYSTEM_READER,
    "identity:get_security_compliance_domain_config": "",
    "identity:update_domain_config": ADMIN,
    "identity:delete_domain_config": ADMIN,
    "identity:get_domain_config_default": ADMIN_OR_SYSTEM_READER,
}

# Allowed options and their defaults (Keystone's [identity] and [ldap] defaults).
DEFAULTS: dict[str, dict[str, Any]] = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {
        "url": "ldap://localhost",
        "user": None,
        "suffix": "cn=example,cn=com",
        "query_scope": "one",
        "page_size": 0,
        "alias_dereferencing": "default",
        "debug_level": None,
        "chase_referrals": None,
        "user_tree_dn": None,
        "user_filter": None,
        "user_objectclass": "inetOrgPerson",
        "user_id_attribute": "cn",
        "user_name_attribute": "sn",
        "user_mail_attribute": "mail",
        "user_description_attribute": "description",
        "user_pass_attribute": "userPassword",
        "user_enabled_attribute": "enabled",
        "user_enabled_invert": False,
        "user_enabled_mask": 0,
        "user_enabled_default": "True",
        "user_attribute_ignore": ["default_project_id"],
        "user_default_project_id_attribute": None,
        "user_enabled_emulation": False,
        "user_enabled_emulation_dn": None,
        "user_enabled_emulation_use_group_config": False,
        "user_additional_attribute_mapping": [],
        "group_tree_dn": None,
        "group_filter": None,
        "group_objectclass": "groupOfNames",
        "group_id_attribute": "cn",
        "group_name_attribute": "ou",
        "group_members_are_ids": False,
        "group_member_attribute": "member",
        "group_desc_attribute": "description",
        "group_attribute_ignore": [],
        "group_additional_attribute_mapping": [],
        "tls_cacertfile": None,
        "tls_cacertdir": None,
        "use_tls": False,
        "tls_req_cert": "demand",
        "use_pool": True,
        "pool_size": 10,
        "pool_retry_max": 3,
        "pool_retry_delay": 0.1,
        "pool_connection_timeout": -1,
        "pool_connection_lifetime": 600,
        "use_auth_pool": True,
        "auth_pool_size": 100,
        "auth_pool_connection_lifetime": 60,
    },
}
SENSITIVE: dict[str, tuple[str, ...]] = {"identity": (), "ldap": ("password",)}
SECURITY_COMPLIANCE = "security_compliance"
READABLE_COMPLIANCE = ("password_regex", "password_regex_description")
DEFAULT_DOMAIN_ID = "default"

Config = dict[str, dict[str, Any]]


class InvalidDomainConfig(Forbidden):
    def __init__(self, reason: str) -> None:
        super().__init__(f"Invalid domain specific configuration: {reason}.")


def _not_found(domain_id: str, group: str | None, option: str | None) -> ApiError:
    if option:
        what = f"option {option} in group {group}"
    elif group:
        what = f"group {group}"
    else:
        what = "any options"
    return NotFound(f"Could not find {what} in domain configuration for domain {domain_id}.")


def _is_sensitive(group: str, option: str) -> bool:
    return option in SENSITIVE.get(group, ())


def _check_group_option(group: str | None, option: str | None) -> None:
    if group is None:
        return
    if group not in DEFAULTS:
        raise InvalidDomainConfig(f"Group {group} is not supported for domain specific configurations")
    if option is not None and option not in DEFAULTS[group] and not _is_sensitive(group, option):
        raise InvalidDomainConfig(
            f"Option {option} in group {group} is not supported for domain specific configurations"
        )


def _check_config(config: Any) -> Config:
    if not isinstance(config, dict):
        raise ValidationError("Invalid input for field 'config': it must be an object.")
    if not config:
        raise InvalidDomainConfig("No options specified")
    for group, options in config.items():
        if not options or not isinstance(options, dict):
            raise InvalidDomainConfig(
                f"The value of group {group} specified in the config should be a dictionary of options"
            )
        for option in options:
            _check_group_option(group, option)
    return config


def _rows(session: Session, domain_id: str, group: str | None = None, option: str | None = None,
          *, sensitive: bool | None = False) -> list[DomainConfig]:
    query = select(DomainConfig).where(DomainConfig.domain_id == domain_id)
    if group is not None:
        query = query.where(DomainConfig.group == group)
    if option is not None:
        query = query.where(DomainConfig.option == option)
    if sensitive is not None:
        query = query.where(DomainConfig.sensitive == sensitive)
    return list(session.scalars(query.order_by(DomainConfig.group, DomainConfig.option)))


def _to_config(rows: list[DomainConfig]) -> Config:
    config: Config = {}
    for row in rows:
        config.setdefault(row.group, {})[row.option] = row.value
    return config


def _authorize(identity: Identity, ctx: AuthContext, action: str, domain_id: str | None = None) -> None:
    target = {"target": {"domain": {"id": domain_id}}} if domain_id else {}
    identity.enforcer.authorize(f"identity:{action}", ctx, target)


def _store(session: Session, domain_id: str, config: Config) -> None:
    for group, options in config.items():
        for option, value in options.items():
            row = session.get(DomainConfig, (domain_id, group, option))
            if row is None:
                session.add(DomainConfig(domain_id=domain_id, group=group, option=option, value=value,
                                         sensitive=_is_sensitive(group, option)))
            else:
                row.value = value
    session.flush()


def _changed(identity: Identity) -> None:
    identity.touch()


# --- the API's operations --------------------------------------------------------


def create_config(identity: Identity, ctx: AuthContext, domain_id: str, config: Any) -> tuple[Config, bool]:
    """Replace the domain's whole configuration; returns (config, created)."""
    _authorize(identity, ctx, "create_domain_config", domain_id)
    with identity.db.write() as s:
        domain_row(s, domain_id)
        db.lock(s, "domain-config", domain_id)  # the options are replaced as a set
        checked = _check_config(config)
        created = not _rows(s, domain_id, sensitive=None)
        s.execute(delete(DomainConfig).where(DomainConfig.domain_id == domain_id))
        s.flush()
        _store(s, domain_id, checked)
        result = _to_config(_rows(s, domain_id))
    _changed(identity)
    return result, created


def get_config(identity: Identity, ctx: AuthContext, domain_id: str, group: str | None = None,
               option: str | None = None) -> dict[str, Any]:
    if group == SECURITY_COMPLIANCE:
        return get_security_compliance(identity, ctx, domain_id, option)
    _authorize(identity, ctx, "get_domain_config", domain_id)
    with identity.db.read() as s:
        domain_row(s, domain_id)
        _check_group_option(group, option)
        rows = _rows(s, domain_id, group, option)
        if not rows:
            raise _not_found(domain_id, group, option)
        if option is not None:
            return {option: rows[0].value}
        return _to_config(rows)


def get_security_compliance(identity: Identity, ctx: AuthContext, domain_id: str,
                            option: str | None) -> dict[str, Any]:
    _authorize(identity, ctx, "get_security_compliance_domain_config", domain_id)
    with identity.db.read() as s:
        domain_row(s, domain_id)
    if domain_id != DEFAULT_DOMAIN_ID:
        raise InvalidDomainConfig(
            "Reading security compliance information for any domain other than the default domain "
            "is not allowed or supported"
        )
    if option is not None and option not in READABLE_COMPLIANCE:
        raise InvalidDomainConfig(
            "Reading security compliance values other than password_regex and "
            "password_regex_description is not allowed"
        )
    settings = identity.settings.identity
    values = {name: (getattr(settings, name, "") or None) for name in READABLE_COMPLIANCE}
    if option is not None:
        return {option: values[option]}
    return {SECURITY_COMPLIANCE: values}


def update_config(identity: Identity, ctx: AuthContext, domain_id: str, config: Any,
                  group: str | None = None, option: str | None = None) -> Config:
    """Merge ``config`` into the domain's; with group/option, only those (which must exist)."""
    _authorize(identity, ctx, "update_domain_config", domain_id)
    with identity.db.write() as s:
        domain_row(s, domain_id)
        db.lock(s, "domain-config", domain_id)  # the options are replaced as a set
        if group is not None and option is not None:
            if not isinstance(config, dict):
                raise ValidationError("Invalid input for field 'config': it must be an object.")
            config = {group: config}
        checked = _check_config(config)
        _check_group_option(group, option)
        if group is not None:
            if len(checked) != 1 or (option is not None and len(checked.get(group, {})) != 1):
                if option is not None:
                    raise InvalidDomainConfig(
                        f"Trying to update option {option} in group {group}, so that, and only that, "
                        "option must be specified  in the config"
                    )
                raise InvalidDomainConfig(
                    f"Trying to update group {group}, so that, and only that, group must be specified "
                    "in the config"
                )
            if group not in checked:
                other = next(iter(checked))
                raise InvalidDomainConfig(
                    f"request to update group {group}, but config provided contains group {other} instead"
                )
            if option is not None and option not in checked[group]:
                other = next(iter(checked[group]))
                raise InvalidDomainConfig(
                    f"Trying to update option {option} in group {group}, but config provided contains "
                    f"option {other} instead"
                )
            if not _rows(s, domain_id, group, option, sensitive=None):
                raise _not_found(domain_id, group, option)
        _store(s, domain_id, checked)
        result = _to_config(_rows(s, domain_id))
    _changed(identity)
    return result


def delete_config(identity: Identity, ctx: AuthContext, domain_id: str, group: str | None = None,
                  option: str | None = None) -> None:
    _authorize(identity, ctx, "delete_domain_config", domain_id)
    with identity.db.write() as s:
        domain_row(s, domain_id)
        db.lock(s, "domain-config", domain_id)  # the options are replaced as a set
        _check_group_option(group, option)
        if group is not None and not _rows(s, domain_id, group, option, sensitive=None):
            raise _not_found(domain_id, group, option)
        query = delete(DomainConfig).where(DomainConfig.domain_id == domain_id)
        if group is not None:
            query = query.where(DomainConfig.group == group)
        if option is not None:
            query = query.where(DomainConfig.option == option)
        s.execute(query)
    _changed(identity)


def get_default(identity: Identity, ctx: AuthContext, group: str | None = None,
                option: str | None = None) -> dict[str, Any]:
    _authorize(identity, ctx, "get_domain_config_default")
    _check_group_option(group, option)
    if group is None:
        return {g: dict(opts) for g, opts in DEFAULTS.items()}
    if option is None:
        return {group: dict(DEFAULTS[group])}
    if option not in DEFAULTS[group]:
        raise InvalidDomainConfig(f"Reading the default for option {option} in group {group} is not supported")
    return {option: DEFAULTS[group][option]}


def config_with_sensitive(session: Session, domain_id: str) -> Config:
    """The domain's whole configuration including sensitive options (not for the API)."""
    return _to_config(_rows(session, domain_id, sensitive=None))
