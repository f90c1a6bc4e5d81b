"""Security groups, the ``default`` group of each project, and ports' groups.

Each project gets a ``default`` group on first use (listing groups, creating
a group, a rule or a port) with Neutron's default rules: ingress from the
group itself and all egress, for IPv4 and IPv6. The ``default_security_group``
table's primary key (the project) makes that one group even when two
requests race. A new non-default group starts with the two egress rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from onestack.common.errors import Conflict
from onestack.network import dataplane
from onestack.network.models import (
    DefaultSecurityGroup,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
)
from onestack.network.service import quotas
from onestack.network.service.common import (
    attr_rules,
    bump,
    check_revision,
    drop_tags,
    finish,
    iso,
    new_uuid,
    now,
    one,
    owner,
    parse_create,
    parse_update,
    std,
    std_columns,
)
from onestack.network.service.errors import (
    SecurityGroupDefaultAlreadyExists,
    SecurityGroupInUse,
    SecurityGroupNotFound,
    _Templated,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, chunks, fetch, load_tags, where
from onestack.network.service.resources import SECURITY_GROUPS

if TYPE_CHECKING:
    from onestack.network.service.deps import Net


class SecurityGroupCannotRemoveDefault(_Templated, Conflict):
    template = "Insufficient rights for removing default security group."


class SecurityGroupCannotUpdateDefault(_Templated, Conflict):
    template = "Updating default security group not allowed."


class SecurityGroupConflict(_Templated, Conflict):
    template = "Error %(reason)s while attempting the operation."


COLUMNS = {
    "id": SecurityGroup.id, "name": SecurityGroup.name, "stateful": SecurityGroup.stateful,
    "tenant_id": SecurityGroup.project_id, "project_id": SecurityGroup.project_id,
    "description": SecurityGroup.description, "created_at": SecurityGroup.created_at,
    "updated_at": SecurityGroup.updated_at, "revision_number": SecurityGroup.revision_number,
}


def _shared_filter(values: list[Any]) -> Any:
    # No RBAC sharing of security groups here: "shared" is always False.
    return SecurityGroup.id.is_(None) if any(values) else SecurityGroup.id.is_not(None)


def visible(caller: Caller) -> list[Any]:
    if caller.sees_all:
        return []
    return [SecurityGroup.project_id == caller.project_id]


def rule_view(r: Any, default_sg: bool) -> dict[str, Any]:
    normalized = None
    if r.remote_ip_prefix:
        import ipaddress

        normalized = str(ipaddress.ip_network(r.remote_ip_prefix, strict=False))
    return {
        "id": r.id,
        **owner(r.project_id),
        "security_group_id": r.security_group_id,
        "ethertype": r.ethertype,
        "direction": r.direction,
        "protocol": r.protocol,
        "port_range_min": r.port_range_min,
        "port_range_max": r.port_range_max,
        "remote_ip_prefix": r.remote_ip_prefix,
        "remote_group_id": r.remote_group_id,
        "normalized_cidr": normalized,
        "belongs_to_default_sg": default_sg,
        "description": r.description,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
        "revision_number": r.revision_number,
    }


def defaults_among(session: Session, group_ids: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for part in chunks(list(group_ids)):
        out.update(
            session.scalars(
                select(DefaultSecurityGroup.security_group_id).where(
                    DefaultSecurityGroup.security_group_id.in_(part)
                )
            )
        )
    return out


def views(session: Session, rows: Sequence[SecurityGroup]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    defaults = defaults_among(session, ids)
    rules: dict[str, list[dict[str, Any]]] = {}
    for part in chunks(ids):
        for r in session.scalars(
            select(SecurityGroupRule)
            .where(SecurityGroupRule.security_group_id.in_(part))
            .order_by(SecurityGroupRule.created_at, SecurityGroupRule.id)
        ):
            rules.setdefault(r.security_group_id, []).append(
                rule_view(r, r.security_group_id in defaults)
            )
    tags = load_tags(session, ids)
    return [
        {
            "id": r.id,
            "name": r.name,
            "stateful": r.stateful,
            **owner(r.project_id),
            "shared": False,
            "security_group_rules": rules.get(r.id, []),
            **std(r, tags.get(r.id, [])),
        }
        for r in rows
    ]


def target_of(row: SecurityGroup) -> dict[str, Any]:
    return {"id": row.id, **owner(row.project_id), "shared": False, "name": row.name}


def load(session: Session, caller: Caller, group_id: str, *, lock: bool = False) -> SecurityGroup:
    stmt = select(SecurityGroup).where(SecurityGroup.id == group_id)
    if lock:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalars().first()
    if row is None or not caller.can("get_security_group", target_of(row)):
        raise SecurityGroupNotFound(id=group_id)
    return row


# --- the default group -----------------------------------------------------------------------


def _rule(project_id: str, group_id: str, direction: str, ethertype: str,
          remote_group_id: str | None = None) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=new_uuid(), project_id=project_id, security_group_id=group_id, direction=direction,
        ethertype=ethertype, protocol=None, port_range_min=None, port_range_max=None,
        remote_ip_prefix=None, remote_group_id=remote_group_id, **std_columns(""),
    )


_DEFAULT_OF = select(DefaultSecurityGroup.security_group_id).where(
    DefaultSecurityGroup.project_id == bindparam("project")
)


def default_group_id(session: Session, project_id: str) -> str | None:
    found = session.execute(_DEFAULT_OF, {"project": project_id}).scalar()
    return str(found) if found else None


def ensure_default(session: Session, project_id: str) -> str:
    """The project's ``default`` group, created with Neutron's default rules if missing
    (inside the caller's write transaction)."""
    existing = default_group_id(session, project_id)
    if existing:
        return existing
    group = SecurityGroup(id=new_uuid(), project_id=project_id, name="default", stateful=True,
                          **std_columns("Default security group"))
    session.add(group)
    session.flush()
    session.add(DefaultSecurityGroup(project_id=project_id, security_group_id=group.id))
    for ethertype in ("IPv4", "IPv6"):
        session.add(_rule(project_id, group.id, "ingress", ethertype, group.id))
        session.add(_rule(project_id, group.id, "egress", ethertype))
    session.flush()
    return group.id


def ensure_default_for(net: Net, project_id: str | None) -> None:
    """Create the default group of ``project_id`` unless it exists (a read first)."""
    if not project_id:
        return
    with net.db.read() as s:
        if default_group_id(s, project_id):
            return
    with net.db.write() as s:
        ensure_default(s, project_id)


# --- groups on ports -------------------------------------------------------------------------


def groups_for_port(session: Session, caller: Caller, project_id: str, requested: list[str]) -> list[str]:
    """Validate the groups a port asks for: they exist and the port's project may use
    them (404 naming the missing ones); stateful and stateless do not mix."""
    unique = list(dict.fromkeys(requested))
    rows = list(session.scalars(select(SecurityGroup).where(SecurityGroup.id.in_(unique)))) if unique else []
    found = {r.id: r for r in rows}
    missing = [
        gid for gid in unique
        if gid not in found or not (
            found[gid].project_id == project_id or caller.is_admin or caller.is_service
        )
    ]
    if missing:
        raise SecurityGroupNotFound(id=", ".join(missing))
    if len({found[g].stateful for g in unique}) > 1:
        raise SecurityGroupConflict(
            reason="Cannot apply both stateful and stateless security groups on the same port at the same time"
        )
    return unique


def bind(session: Session, port_id: str, group_ids: Sequence[str]) -> None:
    for gid in group_ids:
        session.add(PortSecurityGroup(port_id=port_id, security_group_id=gid))


# --- the API ---------------------------------------------------------------------------------


def list_groups(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    if caller.project_scoped:
        wanted = q.filters.get("project_id") or q.filters.get("tenant_id")
        ensure_default_for(net, wanted[0] if wanted else caller.project_id)
    with net.db.read() as s:
        vis = visible(caller)
        stmt = select(SecurityGroup).where(
            *vis, *where(q, COLUMNS, {"shared": _shared_filter}, id_column=SecurityGroup.id)
        )
        page = fetch(s, stmt, SecurityGroup, q, sort_columns={"tenant_id": "project_id"}, visible=vis,
                     not_found=lambda m: SecurityGroupNotFound(id=m))
        items = views(s, [r[0] for r in page.rows])
    items = [i for i in items if caller.can("get_security_group", i)]
    return finish(caller, SECURITY_GROUPS, items, q.fields), page


def show(net: Net, caller: Caller, group_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        return one(caller, SECURITY_GROUPS, views(s, [load(s, caller, group_id)])[0], fields)


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [parse_create(caller, SECURITY_GROUPS, b) for b in bodies]
    for p in parsed:
        caller.enforce("create_security_group", p.values,
                       attr_rules("create_security_group", SECURITY_GROUPS, p, True))
    with net.writing() as s:
        rows = []
        for p in parsed:
            ensure_default(s, p["project_id"])
            if p["name"].lower() == "default":
                raise SecurityGroupDefaultAlreadyExists()
            quotas.check(net, s, p["project_id"], {"security_group": 1, "security_group_rule": 2})
            row = SecurityGroup(id=new_uuid(), project_id=p["project_id"], name=p["name"],
                                stateful=p["stateful"], **std_columns(p["description"]))
            s.add(row)
            s.flush()
            for ethertype in ("IPv4", "IPv6"):
                s.add(_rule(p["project_id"], row.id, "egress", ethertype))
            rows.append(row)
        s.flush()
        return finish(caller, SECURITY_GROUPS, views(s, rows))


def update(net: Net, caller: Caller, group_id: str, body: dict[str, Any],
           if_match: int | None = None) -> dict[str, Any]:
    p = parse_update(caller, SECURITY_GROUPS, body)
    if "name" in p.values and isinstance(p["name"], str) and p["name"].lower() == "default":
        raise SecurityGroupDefaultAlreadyExists()
    with net.writing() as s:
        row = load(s, caller, group_id, lock=True)
        caller.enforce_or_hide("update_security_group", {**target_of(row), **p.values}, "get_security_group",
                               SecurityGroupNotFound(id=group_id),
                               attr_rules("update_security_group", SECURITY_GROUPS, p, False))
        check_revision(row, if_match)
        if "stateful" in p.values and p["stateful"] != row.stateful and _in_use(s, row.id):
            raise SecurityGroupInUse(id=row.id)
        if row.name == "default" and "name" in p.values:
            raise SecurityGroupCannotUpdateDefault()
        for attr in ("name", "description", "stateful"):
            if attr in p.values:
                setattr(row, attr, p[attr])
        bump(row)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.SECURITY_GROUP, dataplane.UPDATED, row.id))
        return one(caller, SECURITY_GROUPS, views(s, [row])[0])


def _in_use(session: Session, group_id: str) -> bool:
    return session.scalar(
        select(PortSecurityGroup.port_id).where(PortSecurityGroup.security_group_id == group_id).limit(1)
    ) is not None


def delete(net: Net, caller: Caller, group_id: str, if_match: int | None = None) -> None:
    with net.writing() as s:
        row = load(s, caller, group_id, lock=True)
        caller.enforce_or_hide("delete_security_group", target_of(row), "get_security_group",
                               SecurityGroupNotFound(id=group_id))
        check_revision(row, if_match)
        if _in_use(s, row.id):
            raise SecurityGroupInUse(id=row.id)
        if row.name == "default" and not caller.is_admin:
            raise SecurityGroupCannotRemoveDefault()
        rule_ids = list(
            s.scalars(
                select(SecurityGroupRule.id).where(
                    or_(SecurityGroupRule.security_group_id == row.id, SecurityGroupRule.remote_group_id == row.id)
                )
            )
        )
        drop_tags(s, [row.id, *rule_ids])
        s.delete(row)  # its rules, and rules naming it as remote group, go with it
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.SECURITY_GROUP, dataplane.DELETED, row.id))


__all__ = ["now"]
