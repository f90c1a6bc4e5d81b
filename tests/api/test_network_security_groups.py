"""Networking API: security groups - the default group on first use, rules
(normalisation, validation, duplicates), deletion rules, visibility."""

from __future__ import annotations

from typing import Any

from tests.api._network import (
    N,
    as_token,
    name,
    network,
    neutron_error,
    ok,
    other_member,
    port,
    subnet,
)
from tests.api.conftest import Api


def _group(api: Api, who: str = "admin", **body: Any) -> dict[str, Any]:
    body.setdefault("name", name("sg"))
    return dict(ok(api.post(f"{N}/security-groups", who, json={"security_group": body}), 201)["security_group"])


def _rule(api: Api, who: str = "admin", **body: Any) -> Any:
    return api.post(f"{N}/security-group-rules", who, json={"security_group_rule": body})


def test_default_group_appears_on_first_use_with_neutrons_rules(api: Api) -> None:
    third = other_member(api)
    groups = ok(as_token(api, third, "GET", f"{N}/security-groups"))["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    group = groups[0]
    assert group["description"] == "Default security group" and group["stateful"] is True
    rules = {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in group["security_group_rules"]}
    assert rules == {("ingress", "IPv4", group["id"]), ("ingress", "IPv6", group["id"]),
                     ("egress", "IPv4", None), ("egress", "IPv6", None)}
    assert all(r["belongs_to_default_sg"] is True for r in group["security_group_rules"])
    again = ok(as_token(api, third, "GET", f"{N}/security-groups"))["security_groups"]
    assert [g["id"] for g in again] == [group["id"]]
    r = as_token(api, third, "POST", f"{N}/security-groups", json={"security_group": {"name": "default"}})
    neutron_error(r, 409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
    neutron_error(as_token(api, third, "DELETE", f"{N}/security-groups/{group['id']}"), 409,
                  "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
    neutron_error(as_token(api, third, "PUT", f"{N}/security-groups/{group['id']}",
                           json={"security_group": {"name": "x"}}), 409, "SecurityGroupCannotUpdateDefault")


def test_new_group_has_egress_rules(api: Api) -> None:
    group = _group(api, "demo", description="web")
    assert {(r["direction"], r["ethertype"]) for r in group["security_group_rules"]} == {
        ("egress", "IPv4"), ("egress", "IPv6")}
    assert all(r["belongs_to_default_sg"] is False for r in group["security_group_rules"])
    third = other_member(api)
    neutron_error(as_token(api, third, "GET", f"{N}/security-groups/{group['id']}"), 404,
                  "SecurityGroupNotFound", f"Security group {group['id']} does not exist")


def test_rules_are_normalised(api: Api) -> None:
    group = _group(api)
    tcp = ok(_rule(api, security_group_id=group["id"], direction="ingress", protocol="TCP", port_range_min=22,
                   port_range_max=22, remote_ip_prefix="10.0.0.5/8"), 201)["security_group_rule"]
    assert (tcp["protocol"], tcp["remote_ip_prefix"], tcp["normalized_cidr"]) == ("tcp", "10.0.0.5/8", "10.0.0.0/8")
    assert tcp["ethertype"] == "IPv4" and tcp["revision_number"] == 0
    full = ok(_rule(api, security_group_id=group["id"], direction="ingress", protocol="udp", port_range_min=1,
                    port_range_max=65535), 201)["security_group_rule"]
    assert full["port_range_min"] is None and full["port_range_max"] is None
    icmp6 = ok(_rule(api, security_group_id=group["id"], direction="ingress", protocol="icmp",
                     ethertype="ipv6"), 201)["security_group_rule"]
    assert (icmp6["protocol"], icmp6["ethertype"]) == ("ipv6-icmp", "IPv6")
    host = ok(_rule(api, security_group_id=group["id"], direction="ingress", remote_ip_prefix="10.1.2.3"),
              201)["security_group_rule"]
    assert host["remote_ip_prefix"] == "10.1.2.3/32"
    after = ok(api.get(f"{N}/security-groups/{group['id']}"))["security_group"]
    assert after["revision_number"] == group["revision_number"] + 4


def test_rule_validation(api: Api) -> None:
    group = _group(api)
    gid = group["id"]
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", protocol="foo"), 400,
                  "SecurityGroupRuleInvalidProtocol")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", port_range_min=22, port_range_max=22),
                  400, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", protocol="tcp", port_range_min=30,
                        port_range_max=22), 400, "SecurityGroupInvalidPortRange",
                  "For TCP/UDP protocols, port_range_min must be <= port_range_max")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", protocol="icmp", port_range_min=300),
                  400, "SecurityGroupInvalidIcmpValue",
                  "Invalid value for ICMP type (port_range_min) 300. It must be 0 to 255.")
    neutron_error(_rule(api, security_group_id=gid, direction="up"), 400, "HTTPBadRequest",
                  "Invalid input for direction. Reason: up is not in valid_values.")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", ethertype="IPv6",
                        remote_ip_prefix="10.0.0.0/8"), 400, "SecurityGroupRuleParameterConflict",
                  "Conflicting value ethertype IPv6 for CIDR 10.0.0.0/8")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", remote_ip_prefix="10.0.0.0/8",
                        remote_group_id=gid), 400, "SecurityGroupMultipleRemoteEntites",
                  "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", protocol="gre", port_range_min=1,
                        port_range_max=2), 400, "SecurityGroupInvalidProtocolForPort",
                  "Ports cannot be specified for protocol 47. Ports are only supported for DCCP, SCTP, TCP, UDP, "
                  "UDPLITE.")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", ethertype="IPv4", protocol="ipv6-icmp"),
                  400, "SecurityGroupEthertypeConflictWithProtocol",
                  "Invalid ethertype IPv4 for protocol ipv6-icmp.")
    neutron_error(_rule(api, security_group_id=gid, direction="ingress", remote_ip_prefix="10.0.0.0/33"), 400,
                  "InvalidCIDR", "Invalid CIDR 10.0.0.0/33 given as IP prefix.")
    missing = "00000000-0000-0000-0000-000000000002"
    neutron_error(_rule(api, security_group_id=missing, direction="ingress"), 404, "SecurityGroupNotFound",
                  f"Security group {missing} does not exist")
    # nothing was written by the failures
    assert len(ok(api.get(f"{N}/security-groups/{gid}"))["security_group"]["security_group_rules"]) == 2


def test_duplicate_rules(api: Api) -> None:
    group = _group(api)
    egress = [r for r in group["security_group_rules"] if r["ethertype"] == "IPv4"][0]
    neutron_error(_rule(api, security_group_id=group["id"], direction="egress"), 409, "SecurityGroupRuleExists",
                  f"Security group rule already exists. Rule id is {egress['id']}.")
    neutron_error(_rule(api, security_group_id=group["id"], direction="egress", remote_ip_prefix="0.0.0.0/0"),
                  409, "SecurityGroupRuleExists")
    first = ok(_rule(api, security_group_id=group["id"], direction="ingress", protocol="6", port_range_min=80,
                     port_range_max=80), 201)["security_group_rule"]
    neutron_error(_rule(api, security_group_id=group["id"], direction="ingress", protocol="tcp", port_range_min=80,
                        port_range_max=80), 409, "SecurityGroupRuleExists",
                  f"Security group rule already exists. Rule id is {first['id']}.")
    body = {"security_group_id": group["id"], "direction": "ingress", "protocol": "udp"}
    r = api.post(f"{N}/security-group-rules", json={"security_group_rules": [body, body]})
    neutron_error(r, 409, "DuplicateSecurityGroupRuleInPost", "Duplicate Security Group Rule in POST.")


def test_rules_of_other_projects_groups(api: Api) -> None:
    group = _group(api)
    r = _rule(api, "demo", security_group_id=group["id"], direction="ingress")
    neutron_error(r, 403, "PolicyNotAuthorized", "rule:create_security_group_rule is disallowed by policy")
    rule = ok(_rule(api, security_group_id=group["id"], direction="ingress", protocol="tcp"), 201)
    rid = rule["security_group_rule"]["id"]
    neutron_error(api.get(f"{N}/security-group-rules/{rid}", "demo"), 404, "SecurityGroupRuleNotFound",
                  f"Security group rule {rid} does not exist")
    neutron_error(api.delete(f"{N}/security-group-rules/{rid}", "demo"), 404, "SecurityGroupRuleNotFound")
    assert api.delete(f"{N}/security-group-rules/{rid}").status_code == 204


def test_group_in_use(api: Api) -> None:
    group = _group(api)
    net = network(api)
    subnet(api, net["id"], "10.60.0.0/24")
    p = port(api, net["id"], security_groups=[group["id"]])
    neutron_error(api.delete(f"{N}/security-groups/{group['id']}"), 409, "SecurityGroupInUse",
                  f"Security Group {group['id']} in use.")
    r = api.put(f"{N}/security-groups/{group['id']}", json={"security_group": {"stateful": False}})
    neutron_error(r, 409, "SecurityGroupInUse")
    assert ok(api.get(f"{N}/ports?security_groups={group['id']}&fields=id"))["ports"] == [{"id": p["id"]}]
    assert api.delete(f"{N}/ports/{p['id']}").status_code == 204
    assert api.delete(f"{N}/security-groups/{group['id']}").status_code == 204
