"""Keystone's ``scope_types`` for its policy rules: which token scopes each
identity API call takes. With scope enforcement (the default), a token of
another scope is refused (403) whatever the rule's check string says -
e.g. a domain-scoped token cannot manage services or roles, and a
system-scoped token cannot create a trust or an application credential.
"""

from __future__ import annotations

from collections.abc import Iterable

SYSTEM_DOMAIN_PROJECT = ("system", "domain", "project")
SYSTEM_PROJECT = ("system", "project")
PROJECT = ("project",)

# Calls a domain-scoped token may make too.
_ANY_SCOPE = """
add_user_to_group check_grant check_token check_user_in_group create_credential create_grant create_group
create_project create_project_tag create_user delete_credential delete_group delete_project
delete_project_tag delete_project_tags delete_user get_credential get_domain get_group get_limit
get_limit_model get_project get_project_tag get_region get_registered_limit get_role
get_security_compliance_domain_config get_user list_credentials list_domains list_grants list_groups
list_groups_for_user list_limits list_project_tags list_projects list_regions list_registered_limits
list_role_assignments list_role_assignments_for_tree list_roles list_user_projects list_users
list_users_in_group remove_user_from_group revoke_grant revoke_token update_credential update_group
update_project update_project_tags update_user validate_token
""".split()

# Calls made on behalf of a project only: delegation (trusts, application
# credentials, OAuth1 access tokens).
_PROJECT_ONLY = """
authorize_request_token create_application_credential create_trust delete_access_token get_access_token
get_access_token_role list_access_token_roles list_access_tokens
""".split()

# The token owner's own views: no scope types.
_UNSCOPED = "get_auth_catalog get_auth_domains get_auth_projects get_auth_system".split()


def scope_types(rule_names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Scope types for the ``identity:*`` rules among ``rule_names``; every
    other identity call is for system- and project-scoped tokens."""
    out: dict[str, tuple[str, ...]] = {}
    for name in rule_names:
        if not name.startswith("identity:"):
            continue  # building blocks (admin_required, owner ...) have none
        short = name.split(":", 1)[1]
        if short in _UNSCOPED:
            continue
        if short in _ANY_SCOPE:
            out[name] = SYSTEM_DOMAIN_PROJECT
        elif short in _PROJECT_ONLY:
            out[name] = PROJECT
        else:
            out[name] = SYSTEM_PROJECT
    return out
