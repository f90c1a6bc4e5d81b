"""Networking's pure logic: validators, request parsing, IPAM arithmetic,
policy checks and their memoisation, query parsing, rule normalisation."""

from __future__ import annotations

import pytest

from onestack.common.auth import AuthContext
from onestack.common.errors import ApiError
from onestack.network.enforcer import NetworkEnforcer
from onestack.network.policies import DEFAULTS
from onestack.network.service import ipam, query
from onestack.network.service import validators as v
from onestack.network.service.attributes import NOT_SPECIFIED, parse_create, parse_update
from onestack.network.service.policy import Caller, describe
from onestack.network.service.resources import NETWORKS, PORTS, SUBNETS
from onestack.network.service.sg_rules import key, normalize


def _error(fn: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value


# --- validators ------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "reason"), [
    ("10.0.0.1", None),
    ("2001:db8::1", None),
    ("010.0.0.1", "'010.0.0.1' is not an accepted IP address, '10.0.0.1' is recommended"),
    ("10.0.0", "'10.0.0' is not a valid IP address"),
    ("10.0.0.256", "'10.0.0.256' is not a valid IP address"),
    (" 10.0.0.1", "' 10.0.0.1' is not a valid IP address"),
    (5, "'5' is not a valid IP address"),
])
def test_ip_address(value: object, reason: str | None) -> None:
    assert v.ip_address(value) == reason


@pytest.mark.parametrize(("value", "canonical"), [
    ("FA:16:3E:00:00:01", "fa:16:3e:00:00:01"),
    ("fa-16-3e-00-00-01", "fa:16:3e:00:00:01"),
    ("fa163e000001", "fa:16:3e:00:00:01"),
    ("fa16.3e00.0001", "fa:16:3e:00:00:01"),
])
def test_mac_forms(value: str, canonical: str) -> None:
    assert v.mac_address(value) is None and v.sanitized_mac(value) == canonical


@pytest.mark.parametrize("value", ["zz", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "fa:16:3e:00:00", 3])
def test_bad_macs(value: object) -> None:
    assert v.mac_address(value) == f"'{value}' is not a valid MAC address"


def test_cidrs_and_routes() -> None:
    assert v.subnet("10.0.0.5/24") is None  # host bits allowed, as neutron-lib
    assert v.subnet("10.0.0.0") == "'10.0.0.0' is not a valid IP subnet"
    assert v.route_cidr("10.0.0.0/24") is None
    assert v.route_cidr("10.0.0.5/24") == "'10.0.0.5/24' is not a valid CIDR"
    assert v.route_cidr("127.0.0.0/8") == "'127.0.0.0/8' is not a routable CIDR"
    assert v.canonical_cidr("2001:DB8::5/64") == "2001:db8::5/64"
    assert v.hostroutes([{"destination": "10.1.0.0/16", "nexthop": "10.0.0.1"}] * 2) == (
        "Duplicate hostroute '{'destination': '10.1.0.0/16', 'nexthop': '10.0.0.1'}'")
    assert v.nameservers(["8.8.8.8", "x"]).startswith("'x' is not a valid nameserver.")


def test_booleans_and_integers() -> None:
    assert v.to_bool("True") is True and v.to_bool("off") is False and v.to_bool(1) is True
    assert _error(v.to_bool, "x").message == "Invalid input for operation: 'x' cannot be converted to boolean."
    assert _error(v.to_int, "1.5").message == "Invalid input for operation: '1.5' is not an integer."


# --- request parsing -------------------------------------------------------------------------


def test_parse_create_fills_defaults_and_refuses_what_is_not_allowed() -> None:
    parsed = parse_create(NETWORKS, {"name": "n"}, caller_project="p1", can_set_project=False)
    assert parsed["project_id"] == "p1" and parsed["admin_state_up"] is True and parsed["shared"] is False
    assert parsed["provider:network_type"] is NOT_SPECIFIED and parsed.given == {"name"}
    err = _error(parse_create, NETWORKS, {"status": "x"}, caller_project="p1", can_set_project=False)
    assert err.message == "Attribute 'status' not allowed in POST"
    err = _error(parse_create, SUBNETS, {"cidr": "10.0.0.0/24"}, caller_project="p1", can_set_project=False)
    assert err.message == "Failed to parse request. Required attribute 'ip_version' not specified"
    err = _error(parse_create, NETWORKS, {"tenant_id": "a", "project_id": "b"}, caller_project="a",
                 can_set_project=True)
    assert err.message == "'project_id' and 'tenant_id' do not match"
    err = _error(parse_update, PORTS, {"network_id": "x"}, caller_project="p1", can_set_project=False)
    assert err.message == "Cannot update read-only attribute network_id"


# --- IPAM ------------------------------------------------------------------------------------


def test_default_pools_leave_out_network_broadcast_and_gateway() -> None:
    def show(pools: list[tuple[int, int]], version: int = 4) -> list[str]:
        return [ipam.range_text(p, version) for p in pools]

    assert show(ipam.generate_pools("10.0.0.0/24", "10.0.0.1")) == ["10.0.0.2-10.0.0.254"]
    assert show(ipam.generate_pools("10.0.0.0/24", "10.0.0.100")) == ["10.0.0.1-10.0.0.99", "10.0.0.101-10.0.0.254"]
    assert show(ipam.generate_pools("10.0.0.0/31", None)) == ["10.0.0.0-10.0.0.1"]
    assert show(ipam.generate_pools("2001:db8::/126", "2001:db8::1"), 6) == ["2001:db8::2-2001:db8::3"]


def test_pool_validation_errors() -> None:
    err = _error(ipam.validate_pools, [{"start": "10.0.0.9", "end": "10.0.0.5"}], "10.0.0.0/24", None)
    assert err.message == "The allocation pool {'start': '10.0.0.9', 'end': '10.0.0.5'} is not valid."
    err = _error(ipam.validate_pools, [{"start": "10.0.0.0", "end": "10.0.0.5"}], "10.0.0.0/24", None)
    assert err.message == "The allocation pool 10.0.0.0-10.0.0.5 spans beyond the subnet cidr 10.0.0.0/24."


def test_walk_starts_at_the_cursor_and_wraps() -> None:
    pools = [(10, 12), (20, 21)]
    assert list(ipam._walk(pools, 11)) == [11, 12, 20, 21, 10]
    assert list(ipam._walk(pools, 15)) == [20, 21, 10, 11, 12]
    assert list(ipam._walk(pools, 99)) == [10, 11, 12, 20, 21]


def test_eui64_and_subnet_membership() -> None:
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:00:00:01") == "2001:db8::f816:3eff:fe00:1"
    assert ipam.check_subnet_ip("10.0.0.0/24", "10.0.0.255") is False
    assert ipam.check_subnet_ip("10.0.0.0/24", "10.0.0.254") is True
    assert ipam.gateway_invalid("10.0.0.0/24", "10.0.0.0") is True
    assert ipam.gateway_invalid("10.0.0.0/24", "10.1.0.1") is False  # off-subnet gateways are allowed


# --- policy ----------------------------------------------------------------------------------


def _caller(enforcer: NetworkEnforcer, project: str, *roles: str) -> Caller:
    return Caller.of(enforcer, AuthContext(token="t", user_id="u", project_id=project, roles=roles))


def test_field_checks_and_parent_owners() -> None:
    enforcer = NetworkEnforcer(DEFAULTS)
    member = _caller(enforcer, "p1", "member", "reader")
    assert member.can("get_network", {"project_id": "p2", "shared": True, "router:external": False})
    assert not member.can("get_network", {"project_id": "p2", "shared": False, "router:external": False})
    assert member.can("create_port", {"project_id": "p1", "network:project_id": "p1", "shared": False})
    assert not member.can("create_port", {"project_id": "p1", "network:project_id": "p2", "shared": False})
    network_port = {"project_id": "p1", "network:project_id": "p1", "device_owner": "network:dhcp"}
    assert not member.can("create_port:device_owner", {**network_port, "network:project_id": "p2"})
    assert member.can("create_port:device_owner", {"device_owner": "compute:nova", "network:project_id": "p2"})
    vm_port = {"project_id": "p1", "network:project_id": "p1", "device_owner": "compute:nova"}
    assert not member.can("delete_port", vm_port)  # Neutron 29: a compute port is Nova's to delete
    assert _caller(enforcer, "p1", "admin").is_admin


def test_memoised_list_checks_agree_with_single_checks(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "network.yaml"
    path.write_text('"get_port": "project_id:%(project_id)s and field:port:name=keep"\n')
    enforcer = NetworkEnforcer(DEFAULTS, path)
    caller = _caller(enforcer, "p1", "member", "reader")
    assert enforcer.target_keys("get_port") == frozenset({"project_id", "name"})
    targets = [{"project_id": p, "name": n, "network:project_id": "x"} for p in ("p1", "p2") for n in ("keep", "drop")]
    targets *= 5
    assert caller.can_each("get_port", targets) == [caller.can("get_port", t) for t in targets]
    assert sum(caller.can_each("get_port", targets)) == 5


def test_describe_nests_like_oslo() -> None:
    assert describe(["create_network"]) == "rule:create_network"
    assert describe(["create_port", "create_port:fixed_ips", "create_port:fixed_ips:ip_address"]) == (
        "((rule:create_port and rule:create_port:fixed_ips) and rule:create_port:fixed_ips:ip_address)")


# --- queries and rules -----------------------------------------------------------------------


def test_query_parsing() -> None:
    q = query.parse(PORTS, [("fixed_ips", "ip_address=10.0.0.5"), ("fixed_ips", "subnet_id=s"),
                            ("admin_state_up", "True"), ("limit", "5"), ("tags", "a,b")])
    assert q.filters["fixed_ips"] == [{"ip_address": ["10.0.0.5"], "subnet_id": ["s"]}]
    assert q.filters["admin_state_up"] == [True] and q.limit == 5 and q.tag_filters == {"tags": ["a", "b"]}
    assert _error(query.parse, PORTS, [("limit", "-1")]).message == (
        "Bad limit request: Limit must be an integer 0 or greater and not '-1'.")
    assert _error(query.parse, NETWORKS, [("bogus", "1"), ("other", "2")]).message == (
        "['bogus', 'other'] is invalid attribute for filtering")


def _rule(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"direction": "ingress", "ethertype": "IPv4", "protocol": None, "port_range_min": None,
                               "port_range_max": None, "remote_ip_prefix": None, "remote_group_id": None,
                               "security_group_id": "g"}
    base.update(kw)
    return base


def test_rule_normalisation_and_duplicate_keys() -> None:
    full = _rule(protocol="tcp", port_range_min=1, port_range_max=65535)
    normalize(full)
    assert full["port_range_min"] is None and full["port_range_max"] is None
    icmp6 = _rule(ethertype="IPv6", protocol="icmp")
    normalize(icmp6)
    assert icmp6["protocol"] == "ipv6-icmp"
    assert key(_rule(protocol="6")) == key(_rule(protocol="tcp"))
    assert key(_rule(remote_ip_prefix="0.0.0.0/0")) == key(_rule())
    assert key(_rule(direction="egress")) != key(_rule())
    err = _error(normalize, _rule(protocol="icmp", port_range_max=3))
    assert err.message == "ICMP code (port-range-max) 3 is provided but ICMP type (port-range-min) is missing."
