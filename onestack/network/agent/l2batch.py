"""The networks' L2 tasks that a claim took together (``worker.Batched``):
their networks read in one transaction (four queries); those that are only a
bridge here (no DHCP port to make or server, none left here, not external)
made in one netlink conversation with their ports' statuses in one write; the
others applied one after another as alone. A failure fails its own tasks.

Part of ``DataPlane`` (``runner.py``), whose state it keeps up to date as
``DataPlane.apply_network`` does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from onestack.network.agent import l2, notifier, reader
from onestack.network.agent.layout import Layout

if TYPE_CHECKING:
    from onestack.common.tasks.worker import Outcome, TaskContext
    from onestack.host.base import Host
    from onestack.network.agent.metadata import MetadataProxy

Row = tuple[str, str, str, bool, str]  # a port: id, network id, status, admin_state_up, owner


class DataPlane(Protocol):
    """What of ``runner.DataPlane`` this module uses (it imports this module)."""

    pace: notifier.Pace
    layout: Layout
    _dhcp_here: set[str]
    _dhcp_known: bool
    _port_rows: dict[str, dict[str, Row]]

    @property
    def host(self) -> Host: ...

    @property
    def proxy(self) -> MetadataProxy: ...

    async def _read(self, fn: Any, *args: Any) -> Any: ...

    def _dhcp_port_needs(self, info: reader.NetworkInfo) -> bool: ...

    async def apply_network(self, network_id: str, info: reader.NetworkInfo | None = None,
                            read: bool = False) -> bool: ...

    async def update_statuses(self, network_ids: set[str] | None = None,
                              links: l2.RootLinks | None = None,
                              id_prefixes: list[str] | None = None,
                              rows: list[Row] | None = None) -> list[str]: ...


async def handle(dp: DataPlane, ctxs: list[TaskContext]) -> list[Outcome]:
    """Several networks' L2 tasks claimed together: their networks read in
    one transaction; those that are only a bridge here (no DHCP, not
    external) made in one netlink conversation, their ports' statuses in
    one write; the others applied one after another as alone. A failure
    fails the tasks it concerns only."""
    began = time.monotonic()
    ids = [str(ctx.payload["id"]) for ctx in ctxs]
    infos: list[reader.NetworkInfo | None] = await dp._read(reader.networks, ids)
    outcomes: list[Outcome] = [{} for _ in ids]
    quick = {i for i, info in enumerate(infos) if info is not None and bridge_only(dp, info)}
    for i, (nid, info) in enumerate(zip(ids, infos, strict=True)):
        if i in quick:
            continue
        try:
            ctxs[i].check()
            one = time.monotonic()
            gone = await dp.apply_network(nid, info, read=True)
            dp.pace.record(notifier.L2, nid, None if gone else time.monotonic() - one)
        except Exception as exc:
            outcomes[i] = exc
    if quick:
        try:
            await apply_bridges(dp, [info for i, info in enumerate(infos) if i in quick and info])
        except Exception as exc:
            for i in quick:
                outcomes[i] = exc
        share = (time.monotonic() - began) / len(ids)
        for i in quick:
            dp.pace.record(notifier.L2, ids[i], share)
    return outcomes


def bridge_only(dp: DataPlane, info: reader.NetworkInfo) -> bool:
    """Whether applying the network here is its bridge and its ports' status
    alone: no DHCP port to make, none served, none that may be left here, not external."""
    return not (dp._dhcp_port_needs(info) or l2.wants_dhcp(info) or info.external
                or info.id in dp._dhcp_here or not dp._dhcp_known)


async def apply_bridges(dp: DataPlane, infos: list[reader.NetworkInfo]) -> None:
    """``apply_network`` of networks that are only a bridge here, together."""
    wanted: list[tuple[reader.NetworkInfo, list[str] | None]] = []
    rows: list[Row] = []
    now: dict[str, dict[str, Row]] = {}
    for info in infos:
        rows_now = now[info.id] = {p.id: (p.id, info.id, p.status, p.admin_state_up, p.device_owner)
                                   for p in info.ports}
        seen = dp._port_rows.get(info.id)
        changed = [r for pid, r in rows_now.items() if seen is None or seen.get(pid) != r]
        rows += changed
        wanted.append((info, None if seen is None else [r[0] for r in changed]))
    links = await l2.apply_bridges(dp.host, dp.layout, wanted)
    for info in infos:
        dp._dhcp_here.discard(info.id)
        await dp.proxy.remove(f"network:{info.id}")
    await dp.update_statuses({info.id for info in infos}, links, rows=rows)
    dp._port_rows.update(now)
