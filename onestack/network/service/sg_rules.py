"""Security group rules: Neutron's normalisation, validation and duplicate checks.

Protocols are names or numbers (``tcp``, ``6``); ``any`` means none;
``icmp`` in an IPv6 rule becomes ``ipv6-icmp``; a full 1-65535 port range
becomes "no range"; a bare address as ``remote_ip_prefix`` gets its mask.
Two rules are duplicates when they match on every field after that
(``0.0.0.0/0`` and no prefix count as the same); a duplicate is 409 naming
the existing rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from onestack.common.db import lock as db_lock
from onestack.common.errors import BadRequest, Conflict
from onestack.network import dataplane
from onestack.network.models import SecurityGroup, SecurityGroupRule
from onestack.network.service import quotas
from onestack.network.service import security_groups as groups
from onestack.network.service.common import (
    bump,
    finish,
    new_uuid,
    one,
    parse_create,
    std_columns,
)
from onestack.network.service.errors import (
    SecurityGroupNotFound,
    SecurityGroupRuleExists,
    SecurityGroupRuleNotFound,
    _Templated,
)
from onestack.network.service.policy import Caller
from onestack.network.service.query import ListQuery, fetch, where
from onestack.network.service.resources import SECURITY_GROUP_RULES
from onestack.network.service.sg_convert import (
    IPV6_ONLY,
    NUMBER_TO_NAME,
    PORT_PROTOCOL_NUMBERS,
    PORT_PROTOCOLS,
    PROTOCOLS,
    SecurityGroupInvalidPortValue,
)

if TYPE_CHECKING:
    from onestack.network.service.deps import Net

class SecurityGroupInvalidPortRange(_Templated, BadRequest):
    template = "For TCP/UDP protocols, port_range_min must be <= port_range_max"


class SecurityGroupProtocolRequiredWithPorts(_Templated, BadRequest):
    template = "Must also specify protocol if port range is given."


class SecurityGroupInvalidIcmpValue(_Templated, BadRequest):
    template = "Invalid value for ICMP %(field)s (%(attr)s) %(value)s. It must be 0 to 255."


class SecurityGroupMissingIcmpType(_Templated, BadRequest):
    template = "ICMP code (port-range-max) %(value)s is provided but ICMP type (port-range-min) is missing."


class SecurityGroupInvalidProtocolForPort(_Templated, BadRequest):
    template = (
        "Ports cannot be specified for protocol %(protocol)s. "
        "Ports are only supported for %(valid_port_protocols)s."
    )


class SecurityGroupEthertypeConflictWithProtocol(_Templated, BadRequest):
    template = "Invalid ethertype %(ethertype)s for protocol %(protocol)s."


class SecurityGroupMultipleRemoteEntites(_Templated, BadRequest):
    template = "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided."


class SecurityGroupRuleParameterConflict(_Templated, BadRequest):
    template = "Conflicting value ethertype %(ethertype)s for CIDR %(cidr)s"


class DuplicateSecurityGroupRuleInPost(_Templated, Conflict):
    template = "Duplicate Security Group Rule in POST."


class SecurityGroupRulesNotSingleProject(_Templated, BadRequest):
    template = "Multiple project_ids in bulk security group rule create not allowed"


# --- validation -------------------------------------------------------------------------------


def _proto_number(protocol: str | None) -> int | None:
    if protocol is None:
        return None
    if protocol == "icmpv6":
        protocol = "ipv6-icmp"
    return int(PROTOCOLS.get(protocol, protocol))


def _name_and_number(protocol: str | None, ethertype: str | None) -> list[str] | None:
    if protocol is None:
        return None
    text = str(protocol)
    if ethertype == "IPv6":
        if text in ("icmp", "icmpv6"):
            text = "ipv6-icmp"
        elif text == "1":
            text = "58"
    if text in PROTOCOLS:
        return [text, str(PROTOCOLS[text])]
    if text in NUMBER_TO_NAME:
        return [NUMBER_TO_NAME[text], text]
    return [text, text]


def normalize(rule: dict[str, Any]) -> None:
    """Neutron's canonical forms and checks, in its order."""
    if rule["ethertype"] == "IPv6":
        if rule["protocol"] in ("icmp", "icmpv6"):
            rule["protocol"] = "ipv6-icmp"
        elif rule["protocol"] == "1":
            rule["protocol"] = "58"
    if rule["port_range_min"] == 1 and rule["port_range_max"] == 65535:
        rule["port_range_min"] = rule["port_range_max"] = None
    low, high = rule["port_range_min"], rule["port_range_max"]
    if low is not None or high is not None:
        if not rule["protocol"]:
            raise SecurityGroupProtocolRequiredWithPorts()
        number = _proto_number(rule["protocol"])
        if number in PORT_PROTOCOL_NUMBERS:
            if low == 0 or high == 0:
                raise SecurityGroupInvalidPortValue(port=0)
            if not (low is not None and high is not None and low <= high):
                raise SecurityGroupInvalidPortRange()
        elif number in (1, 58):
            for attr, field in (("port_range_min", "type"), ("port_range_max", "code")):
                if rule[attr] is not None and not 0 <= rule[attr] <= 255:
                    raise SecurityGroupInvalidIcmpValue(field=field, attr=attr, value=rule[attr])
            if low is None and high is not None:
                raise SecurityGroupMissingIcmpType(value=high)
        else:
            raise SecurityGroupInvalidProtocolForPort(
                protocol=number, valid_port_protocols=", ".join(p.upper() for p in PORT_PROTOCOLS)
            )
    prefix = rule["remote_ip_prefix"]
    if prefix:
        version = ipaddress.ip_interface(prefix).version
        if rule["ethertype"] != f"IPv{version}":
            raise SecurityGroupRuleParameterConflict(ethertype=rule["ethertype"], cidr=prefix)
    if rule["protocol"] in IPV6_ONLY and rule["ethertype"] == "IPv4":
        raise SecurityGroupEthertypeConflictWithProtocol(ethertype=rule["ethertype"], protocol=rule["protocol"])
    if prefix and rule["remote_group_id"]:
        raise SecurityGroupMultipleRemoteEntites()


def key(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two rules the same rule (Neutron's ``_rule_to_key``)."""
    prefix = rule.get("remote_ip_prefix")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    return (
        rule.get("direction"),
        rule.get("ethertype"),
        rule.get("port_range_max"),
        rule.get("port_range_min"),
        str(_name_and_number(rule.get("protocol"), rule.get("ethertype"))) if rule.get("protocol") else None,
        rule.get("remote_group_id"),
        prefix,
        rule.get("security_group_id"),
    )


def _row_dict(r: SecurityGroupRule) -> dict[str, Any]:
    return {
        "id": r.id, "direction": r.direction, "ethertype": r.ethertype, "protocol": r.protocol,
        "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
        "remote_group_id": r.remote_group_id, "remote_ip_prefix": r.remote_ip_prefix,
        "security_group_id": r.security_group_id,
    }


# --- the API ----------------------------------------------------------------------------------

COLUMNS = {
    "id": SecurityGroupRule.id,
    "security_group_id": SecurityGroupRule.security_group_id,
    "remote_group_id": SecurityGroupRule.remote_group_id,
    "direction": SecurityGroupRule.direction,
    "protocol": SecurityGroupRule.protocol,
    "port_range_min": SecurityGroupRule.port_range_min,
    "port_range_max": SecurityGroupRule.port_range_max,
    "ethertype": SecurityGroupRule.ethertype,
    "remote_ip_prefix": SecurityGroupRule.remote_ip_prefix,
    "tenant_id": SecurityGroupRule.project_id,
    "project_id": SecurityGroupRule.project_id,
    "description": SecurityGroupRule.description,
    "created_at": SecurityGroupRule.created_at,
    "updated_at": SecurityGroupRule.updated_at,
    "revision_number": SecurityGroupRule.revision_number,
}


def _target(rule: dict[str, Any], group_owner: str) -> dict[str, Any]:
    return {**rule, "security_group:project_id": group_owner}


def _views(session: Session, rows: Sequence[SecurityGroupRule]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    group_ids = list({r.security_group_id for r in rows})
    defaults = groups.defaults_among(session, group_ids)
    owners = dict(
        session.execute(select(SecurityGroup.id, SecurityGroup.project_id).where(SecurityGroup.id.in_(group_ids)))
        .tuples()
        .all()
    ) if group_ids else {}
    out = []
    for r in rows:
        item = groups.rule_view(r, r.security_group_id in defaults)
        out.append((item, _target(item, owners.get(r.security_group_id, ""))))
    return out


def _visible(caller: Caller) -> list[Any]:
    if caller.sees_all:
        return []
    mine = select(SecurityGroup.id).where(SecurityGroup.project_id == caller.project_id)
    return [SecurityGroupRule.security_group_id.in_(mine)]


def _default_filter(values: list[Any]) -> Any:
    from onestack.network.models import DefaultSecurityGroup

    defaults = select(DefaultSecurityGroup.security_group_id)
    wanted = bool(values[0]) if values else True
    column = SecurityGroupRule.security_group_id
    return column.in_(defaults) if wanted else column.not_in(defaults)


def list_rules(net: Net, caller: Caller, q: ListQuery) -> tuple[list[dict[str, Any]], Any]:
    with net.db.read() as s:
        vis = _visible(caller)
        stmt = select(SecurityGroupRule).where(
            *vis, *where(q, COLUMNS, {"belongs_to_default_sg": _default_filter})
        )
        page = fetch(s, stmt, SecurityGroupRule, q, sort_columns={"tenant_id": "project_id"}, visible=vis,
                     not_found=lambda m: SecurityGroupRuleNotFound(id=m))
        pairs = [p for p in _views(s, [r[0] for r in page.rows]) if caller.can("get_security_group_rule", p[1])]
    return finish(caller, SECURITY_GROUP_RULES, [p[0] for p in pairs], q.fields, [p[1] for p in pairs]), page


def _load(session: Session, caller: Caller, rule_id: str) -> tuple[SecurityGroupRule, dict[str, Any], dict[str, Any]]:
    row = session.get(SecurityGroupRule, rule_id)
    if row is None:
        raise SecurityGroupRuleNotFound(id=rule_id)
    item, tgt = _views(session, [row])[0]
    if not caller.can("get_security_group_rule", tgt):
        raise SecurityGroupRuleNotFound(id=rule_id)
    return row, item, tgt


def show(net: Net, caller: Caller, rule_id: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    with net.db.read() as s:
        _row, item, tgt = _load(s, caller, rule_id)
        return one(caller, SECURITY_GROUP_RULES, item, fields, tgt)


def create(net: Net, caller: Caller, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rules = []
    for body in bodies:
        p = parse_create(caller, SECURITY_GROUP_RULES, body)
        rules.append(dict(p.values))
    if len({r["project_id"] for r in rules}) > 1:
        raise SecurityGroupRulesNotSingleProject()
    for rule in rules:
        normalize(rule)
    with net.writing() as s:
        seen: set[tuple[Any, ...]] = set()
        created: list[SecurityGroupRule] = []
        for rule in rules:
            group = s.get(SecurityGroup, rule["security_group_id"])
            if group is None:  # before the policy check, which needs the group's owner (404 as Neutron)
                raise SecurityGroupNotFound(id=rule["security_group_id"])
            caller.enforce("create_security_group_rule", _target(rule, group.project_id))
            if not (caller.sees_all or group.project_id == rule["project_id"]):
                raise SecurityGroupNotFound(id=rule["security_group_id"])
            if rule["remote_group_id"]:
                remote = s.get(SecurityGroup, rule["remote_group_id"])
                if remote is None or not (caller.sees_all or remote.project_id == rule["project_id"]):
                    raise SecurityGroupNotFound(id=rule["remote_group_id"])
            groups.ensure_default(s, rule["project_id"])
            k = key(rule)
            if k in seen:
                raise DuplicateSecurityGroupRuleInPost()
            seen.add(k)
            db_lock(s, "security-group-rules", group.id)  # no duplicate, even racing
            for existing in s.scalars(
                select(SecurityGroupRule).where(SecurityGroupRule.security_group_id == group.id)
            ):
                if key(_row_dict(existing)) == k:
                    raise SecurityGroupRuleExists(rule_id=existing.id)
        per_project: dict[str, int] = {}
        for rule in rules:
            per_project[rule["project_id"]] = per_project.get(rule["project_id"], 0) + 1
        for pid, count in per_project.items():
            quotas.check(net, s, pid, {"security_group_rule": count})
        for rule in rules:
            row = SecurityGroupRule(
                id=new_uuid(), project_id=rule["project_id"], security_group_id=rule["security_group_id"],
                direction=rule["direction"], ethertype=rule["ethertype"], protocol=rule["protocol"],
                port_range_min=rule["port_range_min"], port_range_max=rule["port_range_max"],
                remote_ip_prefix=rule["remote_ip_prefix"], remote_group_id=rule["remote_group_id"],
                **std_columns(rule["description"]),
            )
            s.add(row)
            created.append(row)
            group = s.get(SecurityGroup, rule["security_group_id"])
            if group is not None:
                bump(group)
            dataplane.record(s, dataplane.Change(dataplane.SECURITY_GROUP, dataplane.UPDATED,
                                                 rule["security_group_id"]))
        s.flush()
        pairs = _views(s, created)
        return finish(caller, SECURITY_GROUP_RULES, [p[0] for p in pairs], (), [p[1] for p in pairs])


def delete(net: Net, caller: Caller, rule_id: str) -> None:
    with net.writing() as s:
        row, _item, tgt = _load(s, caller, rule_id)
        caller.enforce_or_hide("delete_security_group_rule", tgt, "get_security_group_rule",
                               SecurityGroupRuleNotFound(id=rule_id))
        group = s.get(SecurityGroup, row.security_group_id)
        s.delete(row)
        if group is not None:
            bump(group)
        s.flush()
        dataplane.record(s, dataplane.Change(dataplane.SECURITY_GROUP, dataplane.UPDATED, row.security_group_id))
