"""nftables tables as JSON: the transaction that replaces a table, and the builders."""

from __future__ import annotations

import json

import pytest

from onestack.host import nft
from onestack.host.errors import HostError


def test_a_table_is_replaced_whole_in_one_transaction() -> None:
    table = nft.Table("inet", "os_port_1").add(
        nft.chain("ingress", hook="forward", priority=0, policy="drop"),
        nft.rule("ingress", nft.ct_state("established", "related"), nft.accept()),
    )
    assert table.commands() == [
        {"add": {"table": {"family": "inet", "name": "os_port_1"}}},
        {"delete": {"table": {"family": "inet", "name": "os_port_1"}}},
        {"add": {"table": {"family": "inet", "name": "os_port_1"}}},
        {"add": {"chain": {"name": "ingress", "type": "filter", "hook": "forward", "prio": 0,
                           "policy": "drop", "family": "inet", "table": "os_port_1"}}},
        {"add": {"rule": {"chain": "ingress", "family": "inet", "table": "os_port_1", "expr": [
            {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                       "right": ["established", "related"]}},
            {"accept": None}]}}},
    ]
    assert json.loads(table.document()) == {"nftables": table.commands()}


def test_builders() -> None:
    assert nft.chain("plain") == {"chain": {"name": "plain"}}
    assert nft.match(nft.payload("ip", "saddr"), nft.prefix("10.0.0.0/26")) == {"match": {
        "op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": "10.0.0.0", "len": 26}}}}
    assert nft.match(nft.meta("iifname"), "tap1", op="!=")["match"]["op"] == "!="
    assert nft.named_set("ips", "ipv4_addr", ["10.0.0.5"], flags=["interval"]) == {
        "set": {"name": "ips", "type": "ipv4_addr", "flags": ["interval"], "elem": ["10.0.0.5"]}}
    assert nft.named_set("pairs", ["ipv4_addr", "ether_addr"])["set"]["type"] == [
        "ipv4_addr", "ether_addr"]
    assert nft.setref("ips") == "@ips"
    assert nft.rule("c", nft.counter(), nft.drop(), comment="why") == {
        "rule": {"chain": "c", "expr": [{"counter": None}, {"drop": None}], "comment": "why"}}
    assert nft.snat("172.24.4.10") == {"snat": {"addr": "172.24.4.10"}}
    assert nft.dnat("10.0.0.3", port=22) == {"dnat": {"addr": "10.0.0.3", "port": 22}}
    assert nft.jump("x") == {"jump": {"target": "x"}}
    assert nft.goto("x") == {"goto": {"target": "x"}}
    assert nft.masquerade() == {"masquerade": None}
    assert nft.ct_state("invalid") == {"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                                 "right": "invalid"}}


@pytest.mark.parametrize("family,name", [("inet6", "t"), ("ip", ""), ("ip", "a b"),
                                         ("ip", "x;flush ruleset")])
def test_bad_tables_are_refused(family: str, name: str) -> None:
    with pytest.raises(HostError):
        nft.Table(family, name)


def test_an_item_has_one_kind() -> None:
    table = nft.Table("ip", "t").add({"chain": {"name": "a"}, "rule": {}})
    with pytest.raises(HostError, match="one key"):
        table.commands()
    with pytest.raises(HostError, match="not a prefix"):
        nft.prefix("10.0.0.1")
