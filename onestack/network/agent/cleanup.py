"""Removing a cloud's whole data plane from this host (blocking).

The data plane outlives ``onestack up`` on purpose (instances keep their
network while the cloud restarts); a cloud that is gone for good - a test
cloud, a state directory being removed - takes it away with this: its
namespaces (and the dnsmasq processes in them), the host's end of its veths
and its nftables table in the host's namespace.
"""

from __future__ import annotations

from pathlib import Path

from onestack.network.agent.external import host_table
from onestack.network.agent.layout import Layout, cloud_prefix


def remove_all(state_dir: Path | str) -> list[str]:
    """Everything of the cloud of ``state_dir`` on this host; what was removed."""
    from onestack.host import dnsmasq, links, netns, nft

    layout = Layout(cloud_prefix(state_dir))
    removed: list[str] = []
    server = dnsmasq.Dnsmasq(Path(state_dir) / "run" / "dnsmasq")
    for name in server.running():
        server.stop(name)
        removed.append(f"dnsmasq:{name}")
    spaces = [n for n in netns.names(layout.prefix) if layout.owns(n)]
    for name in sorted(spaces, key=lambda n: n == layout.root_ns):  # the root last
        if netns.delete(name):
            removed.append(name)
    mine = layout.prefix + "-"
    with links.Netlink() as nl:
        for link in nl.links():
            if link.name.startswith(mine) and nl.delete(link.name):
                removed.append(link.name)
    if nft.delete_table(None, "inet", host_table(layout)):
        removed.append(f"nft:{host_table(layout)}")
    return removed
