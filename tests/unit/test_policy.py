"""The policy enforcer: oslo.policy rule syntax, substitutions, overrides."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from onestack.common.auth import AuthContext
from onestack.common.errors import Forbidden
from onestack.common.policy import (
    AndCheck,
    Enforcer,
    NotCheck,
    OrCheck,
    PolicySyntaxError,
    parse_rule,
)


def ctx(**kw: Any) -> AuthContext:
    base: dict[str, Any] = {
        "token": "tok",
        "user_id": "u1",
        "user_domain_id": "default",
        "project_id": "p1",
        "project_domain_id": "default",
        "roles": ("member", "reader"),
    }
    base.update(kw)
    return AuthContext(**base)


MEMBER = ctx()
ADMIN = ctx(roles=("admin", "member", "reader"), is_admin_project=True)
SYSTEM_READER = ctx(project_id=None, system_scope=True, roles=("reader",))


def allowed(
    rule: str,
    who: AuthContext = MEMBER,
    target: dict[str, Any] | None = None,
    defaults: dict[str, str] | None = None,
) -> bool:
    enforcer = Enforcer({"the_rule": rule, **(defaults or {})}, None)
    return enforcer.check("the_rule", who, target)


# ------------------------------------------------------------------ basic checks


@pytest.mark.parametrize("rule", ["", "@", "  ", "(@)"])
def test_always(rule: str) -> None:
    assert allowed(rule)


def test_never() -> None:
    assert not allowed("!")
    assert not allowed("!", ADMIN)


def test_role_is_case_insensitive() -> None:
    assert allowed("role:Member")
    assert allowed("role:MEMBER")
    assert not allowed("role:admin")
    assert allowed("role:admin", ADMIN)


def test_role_with_target_substitution() -> None:
    assert allowed("role:%(target.role.name)s", target={"target": {"role": {"name": "reader"}}})
    assert not allowed("role:%(target.role.name)s", target={"target": {"role": {"name": "x"}}})
    assert not allowed("role:%(target.role.name)s", target={})


def test_rule_reference() -> None:
    defaults = {"admin_required": "role:admin"}
    assert not allowed("rule:admin_required", defaults=defaults)
    assert allowed("rule:admin_required", ADMIN, defaults=defaults)


def test_unknown_rule_uses_default_rule() -> None:
    enforcer = Enforcer({"default": "role:member"}, None)
    assert enforcer.check("no:such_rule", MEMBER)
    assert not enforcer.check("no:such_rule", SYSTEM_READER)
    # and rule:unknown inside a rule too
    enforcer = Enforcer({"default": "role:member", "r": "rule:missing"}, None)
    assert enforcer.check("r", MEMBER)


def test_unknown_rule_without_default_denies() -> None:
    enforcer = Enforcer({"r": "rule:missing or role:nope"}, None)
    assert not enforcer.check("r", ADMIN)
    assert not enforcer.check("whatever", ADMIN)


def test_default_rule_referring_to_itself_denies() -> None:
    enforcer = Enforcer({"default": "rule:default"}, None)
    assert not enforcer.check("x", ADMIN)


def test_rule_cycle_denies() -> None:
    enforcer = Enforcer({"a": "rule:b", "b": "rule:a"}, None)
    assert not enforcer.check("a", ADMIN)


# ------------------------------------------------------------------ generic checks


def test_credential_equals_target() -> None:
    rule = "project_id:%(target.project.id)s"
    assert allowed(rule, target={"target": {"project": {"id": "p1"}}})
    assert not allowed(rule, target={"target": {"project": {"id": "p2"}}})


def test_flat_dotted_target_keys() -> None:
    rule = "project_id:%(target.project.id)s"
    assert allowed(rule, target={"target.project.id": "p1"})
    assert not allowed(rule, target={"target.project.id": "p2"})
    # mixed: part flat, part nested
    assert allowed(rule, target={"target.project": {"id": "p1"}})
    assert allowed(rule, target={"target": {"project.id": "p1"}})


def test_plain_target_key() -> None:
    assert allowed("user_id:%(user_id)s", target={"user_id": "u1"})
    assert not allowed("user_id:%(user_id)s", target={"user_id": "u2"})


@pytest.mark.parametrize(
    "target",
    [
        {},
        {"target": {}},
        {"target": {"project": None}},
        {"target": {"project": "p1"}},
        {"target": {"project": {"name": "p1"}}},
    ],
)
def test_missing_substitution_is_false(target: dict[str, Any]) -> None:
    assert not allowed("project_id:%(target.project.id)s", target=target)
    # and under not, a missing key is still just a False check
    assert allowed("not project_id:%(target.project.id)s", target=target)


def test_none_credential_never_matches() -> None:
    # a system-scoped token has no project_id; a None target must not match it
    assert not allowed("project_id:%(project_id)s", SYSTEM_READER, target={"project_id": None})
    assert not allowed("project_id:None", SYSTEM_READER)


def test_unknown_credential_is_false() -> None:
    assert not allowed("no_such_cred:%(x)s", target={"x": "1"})
    assert not allowed("no_such_cred:1")


def test_bad_format_is_false() -> None:
    assert not allowed("project_id:%(x)d", target={"x": "p1"})
    assert not allowed("project_id:100%", target={})


def test_literal_right_side() -> None:
    assert allowed("system_scope:all", SYSTEM_READER)
    assert allowed("system_scope:'all'", SYSTEM_READER)
    assert not allowed("system_scope:all", MEMBER)
    assert allowed("project_id:'p1'")
    assert allowed('project_id:"p1"')
    assert not allowed("project_id:'p2'")


def test_boolean_and_number_literals() -> None:
    assert allowed("is_admin_project:True", ADMIN)
    assert allowed("is_admin_project:true", ADMIN)
    assert not allowed("is_admin_project:True", MEMBER)
    assert allowed("is_admin_project:False", MEMBER)
    assert allowed("is_admin:True", ADMIN)
    assert allowed("is_admin:1", ADMIN)
    assert not allowed("is_admin:True", MEMBER)
    enforcer = Enforcer({"n": "count:5"}, None)
    assert enforcer.check("n", {"count": 5, "roles": []})
    assert not enforcer.check("n", {"count": 6, "roles": []})


def test_literal_left_side() -> None:
    rule = "'member':%(target.role.name)s"
    assert allowed(rule, target={"target": {"role": {"name": "member"}}})
    assert not allowed(rule, target={"target": {"role": {"name": "admin"}}})
    assert allowed("True:%(enabled)s", target={"enabled": True})
    assert not allowed("True:%(enabled)s", target={"enabled": False})
    assert allowed("5:%(n)s", target={"n": 5})


def test_nested_credential_path_and_list_credentials() -> None:
    enforcer = Enforcer({"r": "token.user.id:%(uid)s", "g": "groups:%(gid)s"}, None)
    creds = {"token": {"user": {"id": "u9"}}, "groups": ["g1", "g2"], "roles": []}
    assert enforcer.check("r", creds, {"uid": "u9"})
    assert not enforcer.check("r", creds, {"uid": "u8"})
    assert enforcer.check("g", creds, {"gid": "g2"})
    assert not enforcer.check("g", creds, {"gid": "g3"})
    # a list in the middle of the path: any element may match
    enforcer = Enforcer({"r": "token.roles.name:%(name)s"}, None)
    creds = {"token": {"roles": [{"name": "a"}, {"name": "b"}]}, "roles": []}
    assert enforcer.check("r", creds, {"name": "b"})
    assert not enforcer.check("r", creds, {"name": "c"})


def test_domain_and_user_domain_credentials() -> None:
    dom = ctx(project_id=None, domain_id="d1", roles=("admin",))
    assert allowed("domain_id:%(target.domain.id)s", dom, {"target": {"domain": {"id": "d1"}}})
    assert allowed("user_domain_id:%(dom)s", target={"dom": "default"})
    assert allowed("project_domain_id:default")
    assert allowed("trust_id:%(t)s", ctx(trust_id="tr"), {"t": "tr"})


# ------------------------------------------------------------------ operators


def test_and_or_not() -> None:
    assert allowed("role:member and role:reader")
    assert not allowed("role:member and role:admin")
    assert allowed("role:admin or role:reader")
    assert not allowed("role:admin or role:nope")
    assert allowed("not role:admin")
    assert not allowed("not role:member")
    assert allowed("not not role:member")


def test_keywords_are_case_insensitive() -> None:
    assert allowed("role:admin OR role:member")
    assert not allowed("NOT role:member")


def test_and_binds_tighter_than_or() -> None:
    # a or b and c == a or (b and c)
    assert allowed("role:member or role:admin and role:nope")
    # a and b or c == (a and b) or c
    assert allowed("role:admin and role:nope or role:member")
    assert not allowed("role:admin and (role:nope or role:member)")
    check = parse_rule("a:1 or b:2 and c:3")
    assert isinstance(check, OrCheck) and isinstance(check.rules[1], AndCheck)


def test_not_binds_tightest() -> None:
    # not a and b == (not a) and b
    assert allowed("not role:admin and role:member")
    assert not allowed("not (role:admin or role:member)")
    assert allowed("not (role:admin and role:member)")
    check = parse_rule("not a:1 and b:2")
    assert isinstance(check, AndCheck) and isinstance(check.rules[0], NotCheck)


def test_parentheses() -> None:
    assert allowed("((role:member))")
    assert allowed("(role:admin or (role:member and (project_id:p1)))")
    assert allowed("( role:member )")
    assert not allowed("(role:admin or role:x) and role:member")
    rule = "(role:admin and system_scope:all) or (role:member and project_id:%(project_id)s)"
    assert allowed(rule, target={"project_id": "p1"})
    assert not allowed(rule, target={"project_id": "p2"})
    assert allowed(rule, ctx(project_id=None, system_scope=True, roles=("admin",)), {})


@pytest.mark.parametrize(
    "rule",
    [
        "role:member and",
        "and role:member",
        "role:member or or role:member",
        "(role:member",
        "role:member)",
        "()",
        "not",
        "role:member role:reader",
        "justaword",
        ":nokind",
        "http://example.com/check",
    ],
)
def test_syntax_errors_deny(rule: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PolicySyntaxError):
        parse_rule(rule)
    with caplog.at_level(logging.ERROR):
        assert not allowed(rule, ADMIN)
    assert "cannot be parsed" in caplog.text


def test_colon_in_match_is_kept() -> None:
    # only the first colon separates kind and match
    enforcer = Enforcer({"r": "url:http://x:1"}, None)
    assert enforcer.check("r", {"url": "http://x:1", "roles": []})


# ------------------------------------------------------------------ list form


def test_list_of_lists() -> None:
    enforcer = Enforcer({}, None)
    enforcer._defaults["r"] = [["role:admin"], ["role:member", "project_id:%(project_id)s"]]
    enforcer._rebuild()
    assert enforcer.check("r", ADMIN, {"project_id": "zz"})
    assert enforcer.check("r", MEMBER, {"project_id": "p1"})
    assert not enforcer.check("r", MEMBER, {"project_id": "p2"})
    assert enforcer.rules["r"] == "(role:admin or (role:member and project_id:%(project_id)s))"


def test_list_edge_cases() -> None:
    assert isinstance(parse_rule([]), type(parse_rule("@")))
    creds = {"roles": ["member"]}
    enforcer = Enforcer({}, None)
    for rule, expected in (([], True), ([[]], False), (["role:member"], True), ([["!"]], False)):
        assert enforcer.check_string("@", creds)
        assert parse_rule(rule)({}, creds, enforcer, 0) is expected
    with pytest.raises(PolicySyntaxError):
        parse_rule([[1]])


# ------------------------------------------------------------------ authorize


def test_authorize_raises_keystone_message() -> None:
    enforcer = Enforcer({"identity:list_users": "role:admin"}, None)
    enforcer.authorize("identity:list_users", ADMIN)
    with pytest.raises(Forbidden) as err:
        enforcer.authorize("identity:list_users", MEMBER)
    assert err.value.status == 403
    assert err.value.message == (
        "You are not authorized to perform the requested action: identity:list_users."
    )


def test_check_string() -> None:
    enforcer = Enforcer({"admin": "role:admin"}, None)
    assert enforcer.check_string("rule:admin or role:member", MEMBER)
    assert not enforcer.check_string("rule:admin", MEMBER)


# ------------------------------------------------------------------ overrides


def bump(path: Path, text: str) -> None:
    """Write ``text`` and make sure the mtime differs from before."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    new = max(path.stat().st_mtime_ns, old + 1_000_000)
    os.utime(path, ns=(new, new))


DEFAULTS = {"admin": "role:admin", "list": "rule:admin", "show": "role:member"}


def test_missing_override_file_means_defaults(tmp_path: Path) -> None:
    enforcer = Enforcer(DEFAULTS, tmp_path / "policy.yaml")
    assert enforcer.rules == DEFAULTS
    assert not enforcer.check("list", MEMBER)


def test_yaml_override_merges_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"list": "role:member"\nextra: "@"\n')
    enforcer = Enforcer(DEFAULTS, path)
    assert enforcer.check("list", MEMBER)
    assert enforcer.rules == {**DEFAULTS, "list": "role:member", "extra": "@"}
    assert enforcer.defaults == DEFAULTS


def test_json_override(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"show": "!", "list": [["role:member"]]}))
    enforcer = Enforcer(DEFAULTS, path)
    assert not enforcer.check("show", MEMBER)
    assert enforcer.check("list", MEMBER)


def test_override_reloaded_when_mtime_changes(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("show: '!'\n")
    enforcer = Enforcer(DEFAULTS, path)
    assert not enforcer.check("show", MEMBER)
    bump(path, "show: 'role:member'\nlist: '@'\n")
    assert enforcer.check("show", MEMBER)
    assert enforcer.check("list", MEMBER)
    path.unlink()
    assert enforcer.check("show", MEMBER)
    assert not enforcer.check("list", MEMBER)  # back to the defaults


def test_override_file_created_later(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    enforcer = Enforcer(DEFAULTS, path)
    assert not enforcer.check("list", MEMBER)
    bump(path, "list: '@'\n")
    assert enforcer.check("list", MEMBER)


@pytest.mark.parametrize(
    "bad",
    [
        "show: [unclosed\n",  # not YAML
        "- a\n- b\n",  # not a mapping
        "show: 5\n",  # not a rule string
        "show: 'role:member and'\n",  # a syntax error
    ],
)
def test_bad_override_keeps_previous_rules(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("show: '!'\n")
    enforcer = Enforcer(DEFAULTS, path)
    assert not enforcer.check("show", MEMBER)
    with caplog.at_level(logging.ERROR, logger="onestack.common.policy"):
        bump(path, bad)
        assert not enforcer.check("show", MEMBER)  # still the previous override
    assert "invalid" in caplog.text
    bump(path, "show: '@'\n")  # fixed file is picked up again
    assert enforcer.check("show", SYSTEM_READER)


def test_bad_override_at_start_uses_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("{{{")
    enforcer = Enforcer(DEFAULTS, path)
    assert enforcer.rules == DEFAULTS


def test_empty_override_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("")
    assert Enforcer(DEFAULTS, path).rules == DEFAULTS


def test_register_defaults() -> None:
    enforcer = Enforcer({"a": "!"}, None)
    enforcer.register_defaults({"b": "@"})
    assert enforcer.check("b", MEMBER)
    assert set(enforcer.rules) == {"a", "b"}


def test_system_scope_rules_like_keystone() -> None:
    defaults = {
        "admin_required": "role:admin",
        "system_reader": "role:reader and system_scope:all",
        "owner": "user_id:%(user_id)s",
        "identity:get_user": "rule:system_reader or rule:owner or "
        "(role:reader and domain_id:%(target.user.domain_id)s)",
    }
    enforcer = Enforcer(defaults, None)
    assert enforcer.check("identity:get_user", SYSTEM_READER, {"user_id": "x"})
    assert enforcer.check("identity:get_user", MEMBER, {"user_id": "u1"})
    assert not enforcer.check("identity:get_user", MEMBER, {"user_id": "u2"})
    dom_reader = ctx(project_id=None, domain_id="d1", roles=("reader",))
    target = {"user_id": "x", "target": {"user": {"domain_id": "d1"}}}
    assert enforcer.check("identity:get_user", dom_reader, target)
    target["target"]["user"]["domain_id"] = "d2"  # type: ignore[index]
    assert not enforcer.check("identity:get_user", dom_reader, target)


# --------------------------------------------------------------------------- scope types


def test_scope_types_refuse_a_token_of_another_scope() -> None:
    from onestack.common.policy import token_scope

    rules = {"sys_or_proj": "role:admin", "proj_only": "role:admin", "any": "role:admin"}
    scopes = {"sys_or_proj": ("system", "project"), "proj_only": ("project",)}
    enforcer = Enforcer(rules, scope_types=scopes)
    system_admin = ctx(project_id=None, system_scope=True, roles=("admin",))
    domain_admin = ctx(project_id=None, domain_id="d1", roles=("admin",))
    unscoped = ctx(project_id=None, roles=())
    assert [token_scope(enforcer.credentials(c)) for c in (system_admin, domain_admin, ADMIN, unscoped)] == [
        "system", "domain", "project", "project"]
    assert enforcer.check("sys_or_proj", system_admin) and enforcer.check("sys_or_proj", ADMIN)
    assert not enforcer.check("sys_or_proj", domain_admin)
    assert not enforcer.check("proj_only", system_admin) and enforcer.check("proj_only", ADMIN)
    assert enforcer.check("any", domain_admin)
    with pytest.raises(Forbidden, match="proj_only"):
        enforcer.authorize("proj_only", system_admin)
    # an override changes the check string, never the scope types
    assert not Enforcer({**rules, "proj_only": "@"}, scope_types=scopes).check("proj_only", domain_admin)
    # and without scope enforcement only the check string counts
    assert Enforcer(rules, scope_types=scopes, enforce_scope=False).check("proj_only", system_admin)


def test_identity_scope_types_follow_keystone() -> None:
    from onestack.identity.service.scope_types import scope_types

    got = scope_types(["identity:list_users", "identity:list_services", "identity:create_trust",
                       "identity:get_auth_catalog", "admin_required"])
    assert got == {"identity:list_users": ("system", "domain", "project"),
                   "identity:list_services": ("system", "project"),
                   "identity:create_trust": ("project",)}


def test_override_path_per_service(tmp_path: Path) -> None:
    from onestack.common.policy import override_path
    from onestack.config import load_settings

    settings = load_settings(tmp_path, env={})
    assert override_path(settings, "image") == tmp_path / "policy" / "image.yaml"
    (tmp_path / "policy.yaml").write_text("{}")
    assert override_path(settings, "image") == tmp_path / "policy.yaml"  # the shared file of before
    (tmp_path / "policy").mkdir()
    assert override_path(settings, "identity") == tmp_path / "policy" / "identity.yaml"
