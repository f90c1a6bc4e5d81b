"""The firewall's deltas (``fwdelta``): after a full render, a change of some ports
is the elements of theirs deleted and added; applied to what the render of the
state before loaded, they give exactly what the render of the state after loads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from onestack.network.agent import firewall as fw
from onestack.network.agent import fwdelta
from onestack.network.agent.firewall import FirewallPort
from tests.unit.test_network_firewall import DEFAULT, EGRESS_ANY, port, rule

Contents = dict[tuple[str, str], dict[bytes, Any]]


def _key(element: Any, is_map: bool) -> bytes:
    return orjson.dumps(element[0] if is_map else element, option=orjson.OPT_SORT_KEYS)


def contents(tables: Sequence[Any]) -> tuple[Contents, Any, set[str]]:
    """Every set's and map's elements (by key), the zone chain's rules, and the chains."""
    sets: Contents = {}
    zone = []
    chains = set()
    for table in tables:
        for item in table.items:
            for kind in ("set", "map"):
                if kind in item:
                    body = item[kind]
                    sets[(table.family, body["name"])] = {
                        _key(e, kind == "map"): e for e in body.get("elem", [])}
            if "rule" in item and item["rule"]["chain"] == "zone":
                zone.append(item["rule"]["expr"])
            if "chain" in item:
                chains.add(f"{table.family}:{item['chain']['name']}")
    return sets, zone, chains


def apply(before: tuple[Contents, Any, set[str]], commands: list[Any]) -> tuple[Contents, Any, set[str]]:
    sets, zone, chains = ({k: dict(v) for k, v in before[0].items()}, list(before[1]), set(before[2]))
    maps = {"port_numbers", "egress", "ingress"}
    for command in commands:
        (verb, what), = command.items()
        if "flush" == verb:
            zone = []
            continue
        if "rule" in what:
            zone.append(what["rule"]["expr"])
            continue
        body = what["element"]
        target = sets[(body["family"], body["name"])]
        for e in body["elem"]:
            if verb == "delete":
                key = orjson.dumps(e, option=orjson.OPT_SORT_KEYS)
                assert key in target, (body["name"], e)
                del target[key]
            else:
                target[_key(e, body["name"] in maps)] = e
    return sets, zone, chains


def sync(previous: fwdelta.Rendered | None, ports: list[FirewallPort], members: Mapping[str, Sequence[str]],
         bridges: Mapping[str, int]) -> tuple[fwdelta.Rendered, list[Any] | None, list[Any]]:
    """As ``firewall.sync`` builds: the state, the delta (None: a full render) and the full render."""
    numbered = fw._numbered(ports, previous.numbers if previous else None)
    after = fw.state(numbered, members, bridges)
    commands = fwdelta.diff(previous, after) if previous is not None else None
    return after, commands, fw.render(ports, members, bridges, after.numbers)


def members_of(ports: list[FirewallPort]) -> dict[str, list[str]]:
    return {DEFAULT: [ip for p in ports for ip in p.fixed_ips]}


def check(before_ports: list[FirewallPort], after_ports: list[FirewallPort],
          bridges_before: Mapping[str, int] | None = None,
          bridges_after: Mapping[str, int] | None = None) -> list[Any]:
    bridges_before = bridges_before or {"brq1": 5}
    state, _, tables = sync(None, before_ports, members_of(before_ports), bridges_before)
    after, commands, full = sync(state, after_ports, members_of(after_ports), bridges_after or bridges_before)
    assert commands is not None
    assert apply(contents(tables), commands) == contents(full)
    deletes = [i for i, c in enumerate(commands) if "delete" in c]
    adds = [i for i, c in enumerate(commands) if "add" in c]
    assert not deletes or not adds or max(deletes) < min(adds)  # deletions first
    return commands


def names(commands: list[Any], verb: str) -> set[str]:
    return {c[verb]["element"]["name"] for c in commands if verb in c and "element" in c[verb]}


def test_a_new_port_is_its_own_elements_and_its_group_members() -> None:
    ports = [port(1), port(3)]
    commands = check(ports, [*ports, port(2)])
    assert names(commands, "add") == {"ports", "port_numbers", "macs", "sources4", "sources6",
                                      "egress", "ingress", f"group4-{DEFAULT}", f"group6-{DEFAULT}"}
    # the new port takes the next number: the others keep theirs (their marks)
    added = {c["add"]["element"]["name"]: c["add"]["element"]["elem"] for c in commands if "add" in c}
    assert added["port_numbers"] == [[port(2).device, 3]]
    # 10.0.0.1 and .3 were two elements; with .2 they are... still .1 and .2/31 and .3 merged
    assert names(commands, "delete") <= {f"group4-{DEFAULT}", f"group6-{DEFAULT}"}


def test_a_deleted_port_and_a_changed_one() -> None:
    ports = [port(1), port(2), port(3)]
    commands = check(ports, [port(1), port(3, ips=("10.0.0.33",))])
    deleted = {c["delete"]["element"]["name"]: c["delete"]["element"]["elem"] for c in commands if "delete" in c}
    assert deleted["ports"] == [port(2).device] and deleted["egress"] == [2]
    assert "ports" not in names(commands, "add")  # the changed port keeps its place and number


def test_no_change_is_no_command_and_bridges_replace_the_zone_rule() -> None:
    ports = [port(1)]
    assert check(ports, ports) == []
    commands = check(ports, ports, {"brq1": 5}, {"brq1": 5, "brq2": 9})
    assert commands[0] == {"flush": {"chain": {"family": "inet", "table": "onestack_sg", "name": "zone"}}}


def test_port_security_off_and_on_and_pairs() -> None:
    check([port(1), port(2)], [port(1), port(2, security=False)])
    check([port(1), port(2, security=False)], [port(1), port(2, pairs=(("10.1.0.0/24", "fa:16:3e:00:00:99"),))])


def test_new_rules_or_groups_need_a_full_render() -> None:
    state, _, _ = sync(None, [port(1)], members_of([port(1)]), {})
    other = (*EGRESS_ANY, rule(protocol="icmp"))
    _, commands, _ = sync(state, [port(1), port(2, other)], members_of([port(1)]), {})
    assert commands is None  # a rules chain to add
    _, commands, _ = sync(state, [port(1, EGRESS_ANY)], {}, {})
    assert commands is None  # a chain and the group's sets go


def test_numbers_are_kept_and_new_ones_follow() -> None:
    assert fwdelta.numbering(["a", "b", "c"], None) == [1, 2, 3]
    assert fwdelta.numbering(["a", "c", "d"], {"a": 1, "b": 2, "c": 3}) == [1, 3, 4]
    assert fwdelta.numbering(["x"], {"a": fwdelta.MAX_NUMBER}) == [1]  # past the largest: afresh


def test_the_families_a_delta_changes() -> None:
    ports = [port(1)]
    assert fwdelta.families(check(ports, [*ports, port(2)])) == {"bridge", "inet"}
    assert fwdelta.families(check(ports, ports, {"brq1": 5}, {"brq2": 6})) == {"inet"}
    assert fwdelta.families([]) == set()
