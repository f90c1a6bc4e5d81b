"""The network agent of the all-in-one cloud: its task handlers and its loop.

* ``network.l2`` (per network): the bridge, the DHCP port (made, given an
  address on each DHCP subnet, or deleted, as Neutron's DHCP agent does), the
  DHCP namespace and dnsmasq, the metadata proxy of an isolated network, the
  veth to the outside of an external network, the status of its ports;
* ``network.router`` (per router): its bridges, then ``l3.sync_router`` (or
  ``remove_router``), its metadata proxy on 9697, its ports' and floating
  IPs' status;
* ``network.fw`` (one key): ``firewall.sync`` of every port.

The loop: at start, every network and router is applied again (tasks) and
what the database no longer has is removed; then every
``[network] agent_resync_interval`` the ports' devices are read (one netlink
dump) for their status (``ACTIVE`` once on their bridge and up), drift is
repaired (a bridge, namespace or dnsmasq gone comes back; a leftover goes),
and every ``[hosts] report_interval`` the agents heartbeat.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from onestack.network.agent import dhcp, external, l2, l2batch, notifier, reader, states
from onestack.network.agent.layout import (
    BRIDGE_PREFIX,
    METADATA_ADDRESS,
    METADATA_PORT,
    TAP_PREFIX,
    Layout,
    cloud_prefix,
)

if TYPE_CHECKING:
    from onestack.common.tasks.worker import Outcome, TaskContext
    from onestack.host.base import Host, NetlinkOps
    from onestack.network.agent.metadata import MetadataProxy, Request
    from onestack.network.core import NetworkService

log = logging.getLogger(__name__)

L2_BATCH = 64  # networks' L2 tasks claimed and applied together, at most
L2_WINDOW = 0.05  # seconds an L2 task may wait past its due time for others to join it


def _optional(name: str) -> ModuleType | None:
    """``l3`` and ``firewall`` (built beside this module); None until they exist."""
    try:
        return importlib.import_module(f"onestack.network.agent.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"onestack.network.agent.{name}":
            raise
        return None


class DataPlane:
    """This host's network agent, running inside the cloud's process."""

    def __init__(self, net: NetworkService, host: Host | None = None, *,
                 serve_metadata: bool = True) -> None:
        self.net = net
        self.serve_metadata = serve_metadata
        self.cloud = net.cloud
        self.config = net.config
        self.layout = Layout(cloud_prefix(self.cloud.state_dir))
        self._host = host
        self._real_host = host is None
        self._proxy: MetadataProxy | None = None
        self._loop_task: asyncio.Task[None] | None = None
        # X-Instance-ID-Signature of an instance id; None: Compute's, if it runs in
        # this process (the agent's process is given the secret: process.py)
        self.sign_instance: Callable[[str], str] | None = None
        self.host_name = self.cloud.settings.hosts.name or _hostname()
        self.started = False
        self._warned: set[str] = set()
        self._states: tuple[list[tuple[str, str, str, bool, str]], l2.RootLinks] = ([], {})
        self.pace = notifier.Pace()
        self._changed: set[str] | None = set()  # links changed since the last look (None: unknown)
        # networks that may have a DHCP namespace or dnsmasq here: those the agent
        # served, and those the reconcile found (until the first one ran: any)
        self._dhcp_here: set[str] = set()
        self._dhcp_known = False
        # by network: its ports' (id, network, status, admin_state_up, owner) as last applied
        self._port_rows: dict[str, dict[str, tuple[str, str, str, bool, str]]] = {}

    # --- wiring -------------------------------------------------------------------------

    @property
    def host(self) -> Host:
        if self._host is None:
            from onestack.host.base import linux_host

            self._host = linux_host(self.cloud.state_dir / "run")
        return self._host

    @property
    def host_network(self) -> bool:
        return bool(self.config.host_network)

    @property
    def proxy(self) -> MetadataProxy:
        if self._proxy is None:
            from onestack.network.agent.metadata import MetadataProxy

            self._proxy = MetadataProxy(self._metadata)
        return self._proxy

    def install(self, handlers: bool = True) -> None:
        """The kinds' rules and the notifier into the service; the handlers into
        the cloud's worker too unless ``handlers`` is false (they run in the
        agent's process: ``process.py``)."""
        from onestack.common.tasks.kinds import KindRule

        rule = KindRule(max_attempts=1000, backoff_base=0.5, backoff_cap=30.0, agents=False)
        l2_handler: Any = self.handle_l2
        if handlers:  # networks' L2 tasks due together run together
            from onestack.common.tasks.worker import Batched

            l2_handler = Batched(self.handle_l2, self.handle_l2_batch, limit=L2_BATCH,
                                 window=L2_WINDOW)
        for kind, handler in ((notifier.L2, l2_handler), (notifier.ROUTER, self.handle_router),
                              (notifier.FIREWALL, self.handle_firewall)):
            if handlers:
                self.cloud.handle_tasks(kind, handler, rule)
            else:
                self.cloud.task_kinds.register(kind, rule)
        self.net.notifier = notifier.TaskNotifier(self.cloud, self.pace)
        self.net.vif_netns = self.layout.root_ns

    def check(self) -> None:
        """Before serving: the host's range is not another cloud's (raises HostRangeTaken)."""
        if self.host_network:
            external.check_host_range(self.config.public_cidr, self.layout)

    async def start(self) -> None:
        self.started = True
        self._loop_task = asyncio.create_task(self._run(), name="network-agent")

    async def stop(self) -> None:
        if self._loop_task is not None:
            task = self._loop_task
            # Cancelled until it ends: Python 3.11's wait_for returns instead of
            # raising when the cancel meets the event it waits for (a link
            # change; gh-86296), and the loop then ran on - an agent whose API
            # had died stayed, orphaned, forever.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            await asyncio.gather(task, return_exceptions=True)
            self._loop_task = None
        if self._proxy is not None:
            await self._proxy.close()
        self.started = False

    # --- the handlers -------------------------------------------------------------------

    async def handle_l2(self, ctx: TaskContext) -> dict[str, Any]:
        network_id = str(ctx.payload["id"])
        began = time.monotonic()
        gone = await self.apply_network(network_id)
        self.pace.record(notifier.L2, network_id, None if gone else time.monotonic() - began)
        return {}

    async def handle_l2_batch(self, ctxs: list[TaskContext]) -> list[Outcome]:
        """Several networks' L2 tasks claimed together (``l2batch.py``)."""
        return await l2batch.handle(self, ctxs)

    async def apply_network(self, network_id: str, info: reader.NetworkInfo | None = None,
                            read: bool = False) -> bool:
        """Applies the network; True if it is gone (and so removed). ``read``:
        ``info`` was just read (else it is read now)."""
        if not read:
            info = await self._read(reader.network, network_id)
        key = f"network:{network_id}"
        if info is None:
            await self.proxy.remove(key)
            await external.detach(self.host, self.layout, network_id, self.host_network)
            await l2.remove_network(self.host, self.layout, network_id)
            self._dhcp_here.discard(network_id)
            self._port_rows.pop(network_id, None)
            return True
        if self._dhcp_port_needs(info) and await asyncio.to_thread(self._dhcp_port, info):
            info = await self._read(reader.network, network_id)
            if info is None:
                return True
        domain = dhcp.domain_of(info, self.config.dns_domain)
        serving = l2.wants_dhcp(info)
        here = network_id in self._dhcp_here or not self._dhcp_known
        if serving:
            self._dhcp_here.add(network_id)
        # the ports changed since this network was last applied: only their
        # devices are looked at for their status (the link watch follows the
        # others' taps; the periodic reconcile looks at every port)
        rows_now = {p.id: (p.id, info.id, p.status, p.admin_state_up, p.device_owner) for p in info.ports}
        seen = self._port_rows.get(network_id)
        rows = [r for pid, r in rows_now.items() if seen is None or seen.get(pid) != r]
        serving, applied = await l2.apply_network(self.host, self.layout, info, domain, dhcp_here=here,
                                                  ports=None if seen is None else [r[0] for r in rows])
        if not serving:
            self._dhcp_here.discard(network_id)
        links: l2.RootLinks | None = applied
        if not serving:
            await self.proxy.remove(key)
        elif dhcp.isolated(info):
            await self._serve(key, self.layout.dhcp_ns(network_id), METADATA_ADDRESS, 80)
        else:
            await self.proxy.remove(key)
        if info.external:
            cidrs = [f"{s.gateway_ip}/{s.prefixlen}" for s in info.subnets
                     if s.ip_version == 4 and s.gateway_ip]
            if cidrs:
                await external.attach(self.host, self.layout, info.id, info.mtu, cidrs, self.host_network)
            else:
                await external.detach(self.host, self.layout, info.id, self.host_network)
            links = None
        # the ports' states as just read with the network (no second read of its ports)
        await self.update_statuses({network_id}, links, rows=rows)
        self._port_rows[network_id] = rows_now
        return False

    @staticmethod
    def _dhcp_port_needs(info: reader.NetworkInfo) -> bool:
        """Whether ``_dhcp_port`` has anything to look at (no thread for a network
        without DHCP subnets and DHCP port)."""
        return info.dhcp_port() is not None or bool(
            info.admin_state_up and not info.external and info.dhcp_subnets)

    def _dhcp_port(self, info: reader.NetworkInfo) -> bool:
        """Makes the network's DHCP port what its subnets need (blocking); True if changed."""
        from onestack.common.errors import ApiError
        from onestack.network.service import ports

        port = info.dhcp_port()
        wanted = [s for s in info.dhcp_subnets] if info.admin_state_up and not info.external else []
        if not wanted and port is None:
            return False
        caller = self._caller()
        try:
            if not wanted:
                assert port is not None
                ports.delete(self.net, caller, port.id)
                return True
            if port is None:
                ports.create(self.net, caller, [{
                    "network_id": info.id, "project_id": info.project_id, "name": "",
                    "device_owner": reader.DHCP_OWNER,
                    "device_id": f"dhcp-{self.host_name}-{info.id}"[:255],
                    "fixed_ips": [{"subnet_id": s.id} for s in wanted],
                    "binding:host_id": self.host_name,
                }])
                return True
            have = {sid for sid, _ip in port.fixed_ips}
            missing = [s.id for s in wanted if s.id not in have]
            if not missing:
                return False
            fixed = [{"subnet_id": sid, "ip_address": ip} for sid, ip in port.fixed_ips]
            ports.update(self.net, caller, port.id,
                         {"fixed_ips": fixed + [{"subnet_id": sid} for sid in missing]})
            return True
        except ApiError as exc:  # e.g. no address left: serve the subnets it has
            if f"dhcp:{info.id}" not in self._warned:
                self._warned.add(f"dhcp:{info.id}")
                log.warning("DHCP port of network %s: %s", info.id, exc)
            return False

    def _caller(self) -> Any:
        from onestack.common.auth import AuthContext
        from onestack.network.service.policy import caller_for

        return caller_for(self.net, AuthContext(
            token="", user_id="onestack-network-agent", project_id="onestack-service",
            roles=("service", "admin", "member", "reader")))

    async def handle_router(self, ctx: TaskContext) -> dict[str, Any]:
        await self.apply_router(str(ctx.payload["id"]))
        return {}

    async def apply_router(self, router_id: str) -> None:
        l3 = _optional("l3")
        key = f"router:{router_id}"
        info = await self._read(reader.router, router_id)
        if l3 is None:
            self._warn_once("l3", "routers are not applied: onestack.network.agent.l3 is not installed")
            return
        if info is None:
            await self.proxy.remove(key)
            await asyncio.to_thread(l3.remove_router, self.layout, router_id)
            return
        await l2.ensure_root(self.host, self.layout)
        await l2.ensure_bridges(self.host, self.layout, list(info.networks))
        await asyncio.to_thread(l3.sync_router, self.layout, states.router_state(l3, info))
        if info.interfaces and info.admin_state_up:
            await self._serve(key, self.layout.router_ns(router_id), "0.0.0.0", METADATA_PORT)
        else:
            await self.proxy.remove(key)
        await self.update_statuses({nid for nid, _mtu in info.networks})
        await asyncio.to_thread(self._floating_statuses, router_id, info)

    def _floating_statuses(self, router_id: str, info: reader.RouterInfo) -> None:
        from sqlalchemy import update

        from onestack.network.models import FloatingIP

        active = list(info.floating_ip_ids) if info.admin_state_up and info.gateway else []
        with self.net.db.write() as s:
            if active:
                s.execute(update(FloatingIP).where(FloatingIP.id.in_(active), FloatingIP.status != "ACTIVE")
                          .values(status="ACTIVE"))
            s.execute(update(FloatingIP).where(FloatingIP.router_id == router_id,
                                               FloatingIP.id.not_in(active), FloatingIP.status == "ACTIVE")
                      .values(status="DOWN"))

    async def handle_firewall(self, ctx: TaskContext) -> dict[str, Any]:
        began = time.monotonic()
        await self.apply_firewall()
        self.pace.record(notifier.FIREWALL, "", time.monotonic() - began)
        return {}

    async def apply_firewall(self) -> None:
        fw = _optional("firewall")
        if fw is None:
            self._warn_once("firewall", "security groups are not applied: "
                                        "onestack.network.agent.firewall is not installed")
            return
        info = await self._read(reader.firewall)
        await l2.ensure_root(self.host, self.layout)

        def apply() -> None:  # 10,000 ports: not on the event loop
            from onestack.common import gcpause

            with gcpause.paused():
                ports, members = states.firewall_ports(fw, self.layout, info)
            fw.sync(self.layout, ports, members)

        await asyncio.to_thread(apply)

    # --- status, drift, heartbeats ------------------------------------------------------

    async def _root_links(self) -> l2.RootLinks:
        if self.layout.root_ns not in await self.host.net.list_netns(self.layout.root_ns):
            return {}
        return await self.host.net.netlink(self.layout.root_ns, l2.root_links)

    async def update_statuses(self, network_ids: set[str] | None = None,
                              links: l2.RootLinks | None = None,
                              id_prefixes: list[str] | None = None,
                              rows: list[tuple[str, str, str, bool, str]] | None = None) -> list[str]:
        """Ports ``ACTIVE`` whose device is on their bridge and up, else ``DOWN``
        (``links``: the root namespace's, if just read; ``id_prefixes``: only the
        ports whose device is one of these; ``rows``: the ports' states, if just read)."""
        if links is None:
            links = await self._root_links()
        if rows is None:
            rows = await self._read(reader.port_states, None if network_ids is None else sorted(network_ids),
                                    id_prefixes)
        links = await l2.follow_admin_state(self.host, self.layout, rows, links)
        wanted: dict[str, str] = {}
        for pid, nid, status, admin_up, owner in rows:
            if owner == reader.FLOATINGIP_OWNER:
                continue
            want = "ACTIVE" if admin_up and l2.wired(links, self.layout, nid, pid) else "DOWN"
            if want != status:
                wanted[pid] = want
        if not wanted:
            return []
        from onestack.network.service import ports

        return await asyncio.to_thread(ports.set_statuses, self.net, wanted)

    async def reconcile(self, enqueue_all: bool = False) -> dict[str, list[str]]:
        """Removes what the database no longer has; applies again (through tasks)
        what is missing. Returns what it did, by kind."""
        layout = self.layout
        done: dict[str, list[str]] = {"removed": [], "queued": []}
        await l2.ensure_root(self.host, layout)
        networks = set(await self._read(reader.network_ids))
        routers = set(await self._read(reader.router_ids))
        spaces = set(await self.host.net.list_netns(layout.prefix + "-"))
        links = await self._root_links()
        running = await self.host.dhcp.running()
        todo: set[tuple[str, str]] = set()
        if enqueue_all:
            todo |= {(notifier.L2, n) for n in networks} | {(notifier.ROUTER, r) for r in routers}
            todo.add((notifier.FIREWALL, ""))
        bridges = {layout.bridge(n): n for n in networks}
        extra = [name for name in links if name.startswith(BRIDGE_PREFIX) and name not in bridges]
        if extra:
            def drop(nl: NetlinkOps) -> None:
                for name in extra:
                    nl.delete(name)

            await self.host.net.netlink(layout.root_ns, drop)
            done["removed"] += extra
        for bridge, nid in bridges.items():
            if bridge not in links:
                todo.add((notifier.L2, nid))
        dhcp_prefix, router_prefix = layout.dhcp_ns(""), layout.router_ns("")
        self._dhcp_here |= {s[len(dhcp_prefix):] for s in spaces if s.startswith(dhcp_prefix)}
        self._dhcp_here |= set(running)
        self._dhcp_known = True
        for space in sorted(spaces):
            if space.startswith(dhcp_prefix) and space[len(dhcp_prefix):] not in networks:
                await self.proxy.remove(f"network:{space[len(dhcp_prefix):]}")
                await l2.remove_dhcp(self.host, layout, space[len(dhcp_prefix):])
                done["removed"].append(space)
            elif space.startswith(router_prefix) and space[len(router_prefix):] not in routers:
                l3 = _optional("l3")
                rid = space[len(router_prefix):]
                await self.proxy.remove(f"router:{rid}")
                if l3 is not None:
                    await asyncio.to_thread(l3.remove_router, layout, rid)
                else:
                    await self.host.net.delete_netns(space)
                done["removed"].append(space)
        for name in running:
            if name not in networks:
                await self.host.dhcp.stop(name)
                done["removed"].append(f"dnsmasq:{name}")
        loose: list[tuple[str, str]] = []
        states = await self._read(reader.port_states)
        served = {nid for _pid, nid, _s, _up, owner in states if owner == reader.DHCP_OWNER}
        for nid in (self._dhcp_here & networks) - served:  # DHCP left over: its network removes it
            todo.add((notifier.L2, nid))
        for pid, nid, _status, _up, owner in states:
            tap = layout.tap(pid)
            if tap in links and links[tap][0] != layout.bridge(nid) and layout.bridge(nid) in links:
                loose.append((tap, layout.bridge(nid)))  # its bridge was made again: back on it
            if owner == reader.DHCP_OWNER and (layout.dhcp_ns(nid) not in spaces or nid not in running):
                todo.add((notifier.L2, nid))
            if owner == reader.ROUTER_GATEWAY_OWNER or owner in reader.ROUTER_INTERFACE_OWNERS:
                if layout.tap(pid) not in links:
                    todo.add((notifier.L2, nid))
        if loose:
            def enslave(nl: NetlinkOps) -> None:
                for tap, bridge in loose:
                    nl.set_master(tap, bridge)

            await self.host.net.netlink(layout.root_ns, enslave)
            done["replugged"] = [tap for tap, _b in loose]
            links = await self._root_links()
        self._states = states, links  # for the status pass that follows
        if _optional("l3") is not None:
            for rid in routers:
                if layout.router_ns(rid) not in spaces:
                    todo.add((notifier.ROUTER, rid))
        if todo:
            await asyncio.to_thread(self._enqueue, todo)
            done["queued"] = sorted(f"{k}:{i}" for k, i in todo)
        return done

    def _enqueue(self, todo: set[tuple[str, str]]) -> None:
        with self.net.db.write() as s:
            notifier.enqueue(self.cloud.tasks, s, todo, pace=self.pace)

    async def _run(self) -> None:
        """Reconcile every ``agent_resync_interval``; the ports' status at once
        whenever a link of the root namespace changes (a tap plugged, removed)."""
        hosts = self.cloud.settings.hosts
        interval = max(0.2, float(self.config.agent_resync_interval))
        first = True
        last_beat = 0.0
        next_full = 0.0
        wake = asyncio.Event()
        watch = None
        seen: l2.RootLinks = {}
        try:
            while True:
                try:
                    if time.monotonic() >= next_full:
                        next_full = time.monotonic() + interval
                        await self.reconcile(enqueue_all=first)
                        first = False
                        states, seen = self._states
                        await self.update_statuses(links=seen, rows=states)
                    else:  # woken by a link change: only the ports whose device changed
                        names, self._changed = self._changed, set()
                        # a bridge, DHCP or router device made (a network applied): no
                        # port's device changed, and no dump of every bridge is needed
                        if names is None or any(n.startswith(TAP_PREFIX) for n in names):
                            links = await self._root_links()
                            changed = sorted(name[len(TAP_PREFIX):] for name in set(links) ^ set(seen)
                                             | {n for n in links if n in seen and links[n] != seen[n]}
                                             if name.startswith(TAP_PREFIX))
                            seen = links
                            if changed:
                                await self.update_statuses(links=links, id_prefixes=changed)
                    if watch is None:
                        watch = await self._watch(wake)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("network agent resync failed: %s", exc,
                                exc_info=log.isEnabledFor(logging.DEBUG))
                if time.monotonic() - last_beat >= hosts.report_interval:
                    try:
                        await asyncio.to_thread(self._heartbeat, last_beat == 0.0)
                        last_beat = time.monotonic()
                    except Exception as exc:
                        log.warning("network agent heartbeat failed: %s", exc)
                try:
                    await asyncio.wait_for(wake.wait(), max(0.0, next_full - time.monotonic()))
                    await asyncio.sleep(0.005)  # a burst of link changes: one look
                except TimeoutError:
                    pass
                wake.clear()
        finally:
            if watch:
                await asyncio.to_thread(watch.close)

    async def _watch(self, wake: asyncio.Event) -> Any:
        from onestack.host.linkwatch import LinkWatch

        loop = asyncio.get_running_loop()
        if not self._real_host:  # an in-memory host: its links change only when we say
            return False

        def note(names: set[str] | None) -> None:  # on the loop
            if names is None or self._changed is None:
                self._changed = None
            else:
                self._changed |= names
            wake.set()

        def poke(names: set[str] | None) -> None:  # in the watch's thread
            # a bridge, DHCP or router device alone (a network applied) is
            # nothing the loop looks at: no wake-up of the loop for it
            if names is None or any(n.startswith(TAP_PREFIX) for n in names):
                loop.call_soon_threadsafe(note, names)

        return await asyncio.to_thread(LinkWatch, self.layout.root_ns, poke)

    def _heartbeat(self, started: bool) -> None:
        from onestack.network.agent.agents import heartbeat, resource_counts

        extra = {"external": "host" if self.host_network else self.layout.external_ns}
        heartbeat(self.cloud, self.host_name, self.cloud.settings.hosts.availability_zone,
                  resource_counts(self.net.db), extra, started)
        invalidate = getattr(self.net.agent_source, "invalidate", None)
        if invalidate is not None:
            invalidate()

    # --- metadata -----------------------------------------------------------------------

    async def _serve(self, key: str, ns: str, address: str, port: int) -> None:
        if self.serve_metadata:
            await self.proxy.ensure(key, ns, address, port)

    async def _metadata(self, key: str, request: Request) -> bytes:
        from onestack.network.agent import metadata

        kind, _sep, ident = key.partition(":")
        if kind == "router":
            networks = await self._read(reader.router_networks, ident)
        else:
            networks = [ident]
        found = await self._read(reader.port_for_address, networks, request.source) if networks else None
        if found is None:
            return metadata.not_found()
        _port, instance_id, project_id = found
        if self.sign_instance is not None:
            signature = self.sign_instance(instance_id)
        else:
            if self.cloud.services.get("compute") is None:
                return metadata.not_found()
            # Compute's interface is looked up, not imported: Compute imports
            # Networking's interface, and the packages stay acyclic (lint-imports).
            compute = importlib.import_module("onestack.compute.interface")
            try:
                signature = str(compute.sign_instance_id(self.cloud, instance_id))
            except LookupError:  # Compute does not run in this process
                return metadata.not_found()
        settings = self.cloud.settings
        return await metadata.forward(metadata.local_address(settings.host), settings.port,
                                      "/compute/metadata", request, instance_id, project_id, signature)

    # --- helpers ------------------------------------------------------------------------

    async def _read(self, fn: Any, *args: Any) -> Any:
        def work() -> Any:
            from onestack.common import gcpause

            with gcpause.paused(), self.net.db.read() as s:  # 10,000 ports, nothing cyclic
                return fn(s, *args)

        return await asyncio.to_thread(work)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


def _hostname() -> str:
    import socket

    return socket.gethostname()
