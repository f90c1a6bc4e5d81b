"""The firewall of a namespace full of bridges: bridged IP traffic made visible to
conntrack, and several nftables tables replaced together in one transaction.

This kernel has no conntrack for the ``bridge`` family (no
``nf_conntrack_bridge``: a ``ct`` expression in a bridge table fails with
EPROTO), so a stateful filter of bridged traffic is built the way Neutron's
iptables driver on a Linux bridge does it: with ``br_netfilter``
(``net.bridge.bridge-nf-call-iptables``/``ip6tables``, per namespace), bridged
IPv4 and IPv6 pass through the ``inet`` hooks, where conntrack runs. The
caller's ``bridge`` table knows the bridge ports (``iifname``/``oifname`` there
are taps); its ``inet`` table knows connection state (there ``iifname`` is the
bridge). :func:`apply` enables the sysctls, tells the caller which bridges exist
(name -> ifindex, e.g. for conntrack zones per bridge), and replaces all the
tables the caller builds in one ``nft -j -f -`` transaction.

Which rules to write is the caller's policy; nothing here knows about ports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence

from onestack.host import libnft, netns
from onestack.host.errors import HostError, NotFound
from onestack.host.nft import Table, _tables_here

BRIDGE_NETFILTER_SYSCTLS = ("net.bridge.bridge-nf-call-iptables",
                            "net.bridge.bridge-nf-call-ip6tables")


def enable_bridge_netfilter() -> bool:
    """Sends the calling thread's namespace's bridged IPv4/IPv6 through the inet
    hooks (conntrack); True if a sysctl changed."""
    changed = False
    for key in BRIDGE_NETFILTER_SYSCTLS:
        try:
            changed |= netns.write_sysctl(key, 1)
        except NotFound:
            raise HostError("the kernel has no br_netfilter (net.bridge sysctls missing): "
                            "bridged traffic cannot be filtered statefully") from None
    return changed


def bridges_here() -> dict[str, int]:
    """The bridges of the calling thread's namespace: name -> ifindex."""
    return links_here()[0]


def links_here() -> tuple[dict[str, int], dict[str, str]]:
    """One link dump of the calling thread's namespace: its bridges (name ->
    ifindex) and the bridge of each bridge port (port name -> bridge name)."""
    from onestack.host.links import Netlink

    with Netlink() as nl:
        links = nl.links()
    bridges = {link.name: link.index for link in links if link.kind == "bridge"}
    masters = {link.name: link.master for link in links if link.master in bridges}
    return bridges, masters  # type: ignore[return-value]


def transaction(tables: Iterable[Table]) -> str:
    """One nftables document replacing every table given (each whole); orjson, as
    the API's bodies: a firewall of 10,000 ports is a 4 MB document."""
    import orjson

    return orjson.dumps({"nftables": [cmd for table in tables for cmd in table.commands()]}).decode()


def run_document(document: str) -> None:
    """One JSON transaction in the calling thread's namespace (libnftables: no
    process started; ``nft -j -f -`` where the library is missing)."""
    libnft.apply_document(document)


def apply(ns: str, build: Callable[[Mapping[str, int]], Sequence[Table] | str],
          after: Callable[[Mapping[str, int], Mapping[str, str]], object] | None = None
          ) -> None:
    """In namespace ``ns``: enables bridge netfilter, calls ``build(bridges)``
    (bridge name -> ifindex) and replaces the tables it returns atomically (or
    runs the JSON document it returns instead: a change to tables already
    there); then, in the same thread, ``after(bridges, masters)`` (port name ->
    its bridge), e.g. to tidy conntrack."""
    def work() -> None:
        enable_bridge_netfilter()
        bridges, masters = links_here()
        tables = build(bridges)
        if isinstance(tables, str):
            run_document(tables)
        elif tables:
            run_document(transaction(tables))
        if after is not None:
            after(bridges, masters)

    netns.call(ns, work)


def delete(ns: str, tables: Sequence[tuple[str, str]]) -> bool:
    """Removes the (family, name) tables present in ``ns`` in one transaction;
    True if any existed. A missing namespace has none."""
    for family, name in tables:
        Table(family, name)  # validates

    def work() -> bool:
        present = set(_tables_here())
        doomed = [t for t in tables if t in present]
        if doomed:
            run_document(json.dumps({"nftables": [
                {"delete": {"table": {"family": f, "name": n}}} for f, n in doomed]}))
        return bool(doomed)

    if not netns.exists(ns):
        return False
    return netns.call(ns, work)
