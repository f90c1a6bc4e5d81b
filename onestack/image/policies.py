"""Default policy rules, named as Glance names them (secure RBAC defaults).

Targets carry ``project_id`` (the image owner), ``member_id`` (the caller's
project when it is a member of the image) and ``visibility``.
"""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "role:admin"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
_READABLE = (
    "project_id:%(project_id)s or project_id:%(member_id)s"
    " or 'community':%(visibility)s or 'public':%(visibility)s"
)

DEFAULTS: dict[str, str] = {
    "context_is_admin": ADMIN,
    "default": ADMIN,
    "get_images": ADMIN_OR_PROJECT_READER,
    "get_image": f"{ADMIN} or (role:reader and ({_READABLE}))",
    "add_image": ADMIN_OR_PROJECT_MEMBER,
    "modify_image": ADMIN_OR_PROJECT_MEMBER,
    "delete_image": ADMIN_OR_PROJECT_MEMBER,
    "publicize_image": ADMIN,
    "communitize_image": ADMIN_OR_PROJECT_MEMBER,
    "download_image": f"{ADMIN} or (role:member and ({_READABLE}))",
    "upload_image": ADMIN_OR_PROJECT_MEMBER,
    "stage_image": ADMIN_OR_PROJECT_MEMBER,
    "import_image": ADMIN_OR_PROJECT_MEMBER,
    "deactivate": ADMIN_OR_PROJECT_MEMBER,
    "reactivate": ADMIN_OR_PROJECT_MEMBER,
    "get_image_location": ADMIN,
    "set_image_location": ADMIN,
    "delete_image_location": ADMIN,
    "add_member": ADMIN_OR_PROJECT_MEMBER,
    "delete_member": ADMIN_OR_PROJECT_MEMBER,
    "get_member": f"{ADMIN} or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))",
    "get_members": f"{ADMIN} or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))",
    "modify_member": f"{ADMIN} or (role:member and project_id:%(member_id)s)",
    "get_usage": ADMIN_OR_PROJECT_READER,
}

# The metadata definitions catalog: reads for everyone, changes for admins.
METADEF_KINDS = ("namespace", "object", "property", "tag", "resource_type_association")


def metadef_defaults() -> dict[str, str]:
    rules = {"metadef_admin": "role:admin", "metadef_default": ""}
    for kind in METADEF_KINDS:
        rules[f"get_metadef_{kind}"] = "rule:metadef_default"
        rules[f"get_metadef_{kind}s"] = "rule:metadef_default"
        rules[f"add_metadef_{kind}"] = "rule:metadef_admin"
        rules[f"modify_metadef_{kind}"] = "rule:metadef_admin"
        rules[f"delete_metadef_{kind}"] = "rule:metadef_admin"
    rules["list_metadef_resource_types"] = "rule:metadef_default"
    rules["delete_metadef_tags"] = "rule:metadef_admin"
    rules["add_metadef_tags"] = "rule:metadef_admin"
    return rules


# Glance's scope_types: every image call is made on behalf of a project; a
# system- or domain-scoped token is refused (the building blocks take any).
UNSCOPED = ("context_is_admin", "default", "metadef_admin", "metadef_default")


def scope_types(rule_names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    return {name: ("project",) for name in rule_names if name not in UNSCOPED}
