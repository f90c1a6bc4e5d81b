"""Effective roles: direct, group, inherited (domain and project subtree), implied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from onestack.common.db import Base, Database
from onestack.identity.effective import (
    effective_role_ids,
    expand_implied,
    role_names,
    user_domain_ids,
    user_project_ids,
)
from onestack.identity.models import (
    GROUP_DOMAIN,
    GROUP_PROJECT,
    NULL_DOMAIN,
    ROOT_DOMAIN,
    SYSTEM_TARGET,
    USER_DOMAIN,
    USER_PROJECT,
    USER_SYSTEM,
    Assignment,
    Group,
    ImpliedRole,
    Project,
    Role,
    User,
    UserGroupMembership,
)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(db.engine)
    with db.write() as s:
        # domain d1 > p1 > p2 > p3 ; domain d2 > q1
        s.add_all(
            [
                Project(id="d1", name="d1", domain_id=ROOT_DOMAIN, is_domain=True),
                Project(id="d2", name="d2", domain_id=ROOT_DOMAIN, is_domain=True),
                Project(id="p1", name="p1", domain_id="d1", parent_id="d1"),
                Project(id="p2", name="p2", domain_id="d1", parent_id="p1"),
                Project(id="p3", name="p3", domain_id="d1", parent_id="p2"),
                Project(id="q1", name="q1", domain_id="d2", parent_id="d2"),
                User(id="u", name="u", domain_id="d1"),
                User(id="v", name="v", domain_id="d1"),
                Group(id="g", name="g", domain_id="d1"),
                UserGroupMembership(user_id="u", group_id="g"),
                Role(id="admin", name="admin"),
                Role(id="member", name="member"),
                Role(id="reader", name="reader"),
                Role(id="other", name="other"),
                Role(id="dom", name="dom", domain_id="d1"),
                Role(id="lonely_dom", name="lonely", domain_id="d1"),
            ]
        )
        s.flush()
        s.add_all(
            [
                ImpliedRole(prior_role_id="admin", implied_role_id="member"),
                ImpliedRole(prior_role_id="member", implied_role_id="reader"),
                ImpliedRole(prior_role_id="dom", implied_role_id="other"),
            ]
        )
    with db.write() as s:
        yield s


def grant(
    s: Session, typ: str, actor: str, target: str, role: str, inherited: bool = False
) -> None:
    s.add(Assignment(type=typ, actor_id=actor, target_id=target, role_id=role, inherited=inherited))
    s.flush()


def test_direct_project_role_expands_implied(session: Session) -> None:
    grant(session, USER_PROJECT, "u", "p1", "admin")
    assert effective_role_ids(session, "u", project_id="p1") == ["admin", "member", "reader"]
    assert effective_role_ids(session, "u", project_id="p2") == []
    assert effective_role_ids(session, "v", project_id="p1") == []
    assert effective_role_ids(session, "u", domain_id="d1") == []


def test_group_assignment_counts_for_members_only(session: Session) -> None:
    grant(session, GROUP_PROJECT, "g", "p2", "reader")
    assert effective_role_ids(session, "u", project_id="p2") == ["reader"]
    assert effective_role_ids(session, "v", project_id="p2") == []


def test_inherited_domain_assignment_applies_to_projects_not_domain(session: Session) -> None:
    grant(session, USER_DOMAIN, "u", "d1", "member", inherited=True)
    assert effective_role_ids(session, "u", domain_id="d1") == []
    for p in ("p1", "p2", "p3"):
        assert effective_role_ids(session, "u", project_id=p) == ["member", "reader"]
    assert effective_role_ids(session, "u", project_id="q1") == []
    assert user_project_ids(session, "u") == ["p1", "p2", "p3"]
    assert user_domain_ids(session, "u") == []


def test_inherited_project_assignment_applies_to_subtree_only(session: Session) -> None:
    grant(session, GROUP_PROJECT, "g", "p2", "other", inherited=True)
    assert effective_role_ids(session, "u", project_id="p2") == []
    assert effective_role_ids(session, "u", project_id="p1") == []
    assert effective_role_ids(session, "u", project_id="p3") == ["other"]
    assert user_project_ids(session, "u") == ["p3"]


def test_domain_and_system_scope(session: Session) -> None:
    grant(session, GROUP_DOMAIN, "g", "d2", "member")
    grant(session, USER_SYSTEM, "v", SYSTEM_TARGET, "admin")
    assert effective_role_ids(session, "u", domain_id="d2") == ["member", "reader"]
    assert effective_role_ids(session, "u", project_id="q1") == []
    assert effective_role_ids(session, "v", system=True) == ["admin", "member", "reader"]
    assert effective_role_ids(session, "u", system=True) == []
    assert user_domain_ids(session, "u") == ["d2"]
    assert user_project_ids(session, "u") == []


def test_domain_specific_roles_only_contribute_what_they_imply(session: Session) -> None:
    grant(session, USER_PROJECT, "u", "p1", "dom")
    grant(session, USER_PROJECT, "u", "p2", "lonely_dom")
    assert effective_role_ids(session, "u", project_id="p1") == ["other"]
    assert effective_role_ids(session, "u", project_id="p2") == []
    assert user_project_ids(session, "u") == ["p1"]


def test_implied_role_cycles_terminate(session: Session) -> None:
    session.add(ImpliedRole(prior_role_id="reader", implied_role_id="admin"))
    session.flush()
    grant(session, USER_PROJECT, "u", "p1", "member")
    assert sorted(effective_role_ids(session, "u", project_id="p1")) == [
        "admin",
        "member",
        "reader",
    ]
    assert expand_implied(["x"], {"x": {"y"}, "y": {"x"}}) == ["x", "y"]


def test_unknown_targets_and_bad_arguments(session: Session) -> None:
    grant(session, USER_PROJECT, "u", "p1", "admin")
    assert effective_role_ids(session, "u", project_id="nope") == []
    assert effective_role_ids(session, "nobody", project_id="p1") == []
    with pytest.raises(ValueError):
        effective_role_ids(session, "u")
    with pytest.raises(ValueError):
        effective_role_ids(session, "u", project_id="p1", system=True)


def test_role_names(session: Session) -> None:
    assert role_names(session, ["member", "dom", "missing", "member"]) == [
        {"id": "member", "name": "member", "domain_id": None},
        {"id": "dom", "name": "dom", "domain_id": "d1"},
    ]
    assert role_names(session, []) == []
    assert NULL_DOMAIN not in str(role_names(session, ["admin"]))


def test_corrupt_project_parent_cycle_terminates(session: Session) -> None:
    session.add_all(
        [
            Project(id="c1", name="c1", domain_id="d2", parent_id="c2"),
            Project(id="c2", name="c2", domain_id="d2", parent_id="c1"),
        ]
    )
    session.flush()
    grant(session, USER_PROJECT, "u", "c2", "reader", inherited=True)
    assert effective_role_ids(session, "u", project_id="c1") == ["reader"]
    assert "c1" in user_project_ids(session, "u")


def test_domain_is_not_a_project_target(session: Session) -> None:
    grant(session, USER_PROJECT, "u", "d1", "admin")  # a malformed row naming a domain
    assert effective_role_ids(session, "u", project_id="d1") == []
