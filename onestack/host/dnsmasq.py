"""One dnsmasq per network, in a namespace, with files of its own; adopted after a restart.

Each instance has a directory ``<run_dir>/<name>/`` holding its configuration
(``dnsmasq.conf``: interface, ranges, domain; a change restarts it), ``opts``
(DHCP options by tag; a change sends SIGHUP, which makes dnsmasq read it
again), its pid file, leases and log, and two directories dnsmasq watches
itself (inotify), so that one port's entry costs one file, whatever the
network's size:

* ``hosts.d/``: one static DHCP entry per file (by MAC, ``--dhcp-hostsdir``).
  A new file is read at once without a signal; dnsmasq keeps an entry whose
  file changed or went until SIGHUP, so a changed or removed entry sends one
  (after all of a call's files are written). A removed entry's leases are
  released (``dhcp_release``/``dhcp_release6`` from dnsmasq-utils, as Neutron's
  DHCP agent does), so its address leaves the leases file at once.
* ``names.d/``: the network's own names for DNS, one file per address
  (``--hostsdir``): added, changed and removed files are followed without a
  signal.

The files of both directories are remembered per instance (checked against
a listing of the directory at each call, so a file deleted behind our back is
written again), so a call writes only what changed.
The configuration file's path is on dnsmasq's command line: that marks the
process as this instance's, so after a restart a running dnsmasq is adopted
(pid file + ``/proc/<pid>/cmdline``) instead of started twice, and a stray one
is found by scanning for the run directory.

dnsmasq never forwards a query: no ``/etc/resolv.conf``, no ``/etc/hosts``, no
upstream server. With ``dns=False`` it serves no DNS at all (``port=0``); with
``dns=True`` it answers only for names in ``addn_hosts`` under ``domain``.
It runs as root (``user=root``): the files it re-reads on SIGHUP live in the
state directory, which is private to root.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from onestack.host import netns, procs
from onestack.host.errors import CommandError, HostError
from onestack.host.links import check_ifname

MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")

CONF = "dnsmasq.conf"
HOSTS_DIR = "hosts.d"
NAMES_DIR = "names.d"
RELOADABLE = ("opts",)
LEGACY = ("hosts", "addn_hosts")  # the single files of before the directories
RA_MODES = ("static", "slaac", "ra-only", "ra-stateless", "ra-names")


@dataclass(frozen=True)
class DhcpRange:
    """One subnet served. IPv4: ``static`` (addresses only from host entries).
    IPv6: ``static`` (DHCPv6 stateful), ``slaac``, ``ra-only`` or ``ra-stateless``
    (router advertisements; the last with DHCPv6 for options)."""

    tag: str
    cidr: str
    mode: str = "static"
    lease_seconds: int = 86400

    def line(self) -> str:
        try:
            net = ipaddress.ip_network(self.cidr)
        except ValueError:
            raise HostError(f"invalid subnet {self.cidr!r}") from None
        if self.mode not in RA_MODES or (net.version == 4 and self.mode != "static"):
            raise HostError(f"invalid DHCP mode {self.mode!r} for {self.cidr}")
        lease = "infinite" if self.lease_seconds <= 0 else f"{self.lease_seconds}s"
        mask = str(net.netmask) if net.version == 4 else str(net.prefixlen)
        return f"dhcp-range=set:{self.tag},{net.network_address},{self.mode},{mask},{lease}"


@dataclass(frozen=True)
class DhcpHost:
    """A static entry: this MAC gets these addresses (and name, and tag)."""

    mac: str
    addresses: tuple[str, ...]
    hostname: str | None = None
    tag: str | None = None

    def line(self) -> str:
        parts = [self.mac.lower()]
        if self.tag:
            parts.append(f"set:{self.tag}")
        for addr in self.addresses:
            parts.append(_written_address(addr))
        if self.hostname:
            parts.append(self.hostname)
        return ",".join(parts)


@dataclass(frozen=True)
class DnsmasqSpec:
    name: str  # unique per host; names the directory (e.g. the network's id)
    interface: str  # where it listens, in ``netns``
    netns: str | None
    ranges: tuple[DhcpRange, ...]
    hosts: tuple[DhcpHost, ...] = ()
    # dhcp-optsfile lines, e.g. "tag:subnet-1,option:router,10.0.0.1"
    options: tuple[str, ...] = ()
    dns: bool = False
    domain: str = "openstacklocal"
    # (address, name...) for DNS; written as an additional hosts file
    names: tuple[tuple[str, tuple[str, ...]], ...] = ()
    router_advertisements: bool = False
    lease_max: int = 16777216
    log_dhcp: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)  # more dnsmasq.conf lines


@dataclass(frozen=True)
class Lease:
    expires: int
    mac: str
    address: str
    hostname: str | None


DOMAIN_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _one_line(what: str, value: str) -> str:
    """A value written into a file dnsmasq parses line by line: one line, no NUL.
    (A newline in, say, a DHCP option's value would add a line of the caller's
    choosing to dnsmasq's configuration.)"""
    if any(c in value for c in "\n\r\0"):
        raise HostError(f"{what} may not contain a line break: {value!r}")
    return value


def check(spec: DnsmasqSpec) -> None:
    """Refuses anything that could change dnsmasq's configuration beyond the spec."""
    if not spec.name or "/" in spec.name or spec.name.startswith("."):
        raise HostError(f"invalid dnsmasq instance name {spec.name!r}")
    check_ifname(spec.interface)
    if not DOMAIN_RE.fullmatch(spec.domain):
        raise HostError(f"invalid domain {spec.domain!r}")
    for rng in spec.ranges:
        if not TAG_RE.fullmatch(rng.tag):
            raise HostError(f"invalid tag {rng.tag!r}")
    for host in spec.hosts:
        _host_line(host)
    for address, hostnames in spec.names:
        _names_line(address, hostnames)
    for option in spec.options:
        _one_line("a DHCP option", option)
    for line in spec.extra:
        _one_line("a dnsmasq.conf line", line)


def _address(addr: str) -> None:
    _written_address(addr)


# A network of 10,000 ports is rendered again at each change of one of them:
# each host entry is checked and written once (parsing its addresses was most
# of a render), as long as it stays among the last 32,768 seen.
@functools.lru_cache(maxsize=32768)
def _written_address(addr: str) -> str:
    """The address as dnsmasq reads it (IPv6 in brackets); HostError if it is none."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise HostError(f"invalid address {addr!r}") from None
    return f"[{ip}]" if ip.version == 6 else str(ip)


@functools.lru_cache(maxsize=32768)
def _names_line(address: str, hostnames: tuple[str, ...]) -> str:
    """The hosts-file line of an address's names, checked."""
    _address(address)
    for name in hostnames:
        if not HOSTNAME_RE.fullmatch(name):
            raise HostError(f"invalid host name {name!r}")
    return f"{address}\t{' '.join(hostnames)}\n"


@functools.lru_cache(maxsize=32768)
def _host_line(host: DhcpHost) -> str:
    """The hosts-file line of a checked entry."""
    if not MAC_RE.fullmatch(host.mac):
        raise HostError(f"invalid MAC address {host.mac!r}")
    if host.hostname is not None and not HOSTNAME_RE.fullmatch(host.hostname):
        raise HostError(f"invalid host name {host.hostname!r}")
    if host.tag is not None and not TAG_RE.fullmatch(host.tag):
        raise HostError(f"invalid tag {host.tag!r}")
    return host.line()


def entries(spec: DnsmasqSpec) -> tuple[dict[str, str], dict[str, str]]:
    """The files of ``hosts.d`` (one per DHCP entry, named by its MAC) and of
    ``names.d`` (one per address), by name (pure; ``spec`` checked by ``render``)."""
    hosts: dict[str, str] = {}
    for host in spec.hosts:
        key = host.mac.lower().replace(":", "")
        while key in hosts:  # the same MAC twice: both entries kept
            key += "_"
        hosts[key] = _host_line(host) + "\n"
    names: dict[str, str] = {}
    for addr, hostnames in spec.names:
        key = _written_address(addr).strip("[]").replace(":", "_")
        names[key] = names.get(key, "") + _names_line(addr, hostnames)
    return hosts, names


def render(spec: DnsmasqSpec, directory: Path, joined: bool = True) -> dict[str, str]:
    """The instance's files, by name (pure: no I/O); ``hosts`` and ``addn_hosts``
    (unless ``joined`` is false) are what ``hosts.d`` and ``names.d`` hold, joined
    (see ``entries``)."""
    check(spec)
    d = directory
    lines = [
        "# written by onestack for this network; changes here are overwritten",
        f"interface={spec.interface}",
        "bind-interfaces",
        "except-interface=lo",
        "no-resolv",
        "no-hosts",
        "user=root",
        "dhcp-authoritative",
        f"pid-file={d / 'pid'}",
        f"dhcp-leasefile={d / 'leases'}",
        f"dhcp-hostsdir={d / HOSTS_DIR}",
        f"dhcp-optsfile={d / 'opts'}",
        f"log-facility={d / 'log'}",
        f"dhcp-lease-max={spec.lease_max}",
    ]
    if spec.dns:
        lines += [f"domain={spec.domain}", f"local=/{spec.domain}/", "expand-hosts",
                  f"hostsdir={d / NAMES_DIR}"]
    else:
        lines.append("port=0")
    if spec.router_advertisements:
        lines.append("enable-ra")
    if spec.log_dhcp:
        lines.append("log-dhcp")
    lines += [r.line() for r in spec.ranges]
    lines += list(spec.extra)
    files = {CONF: "\n".join(lines) + "\n", "opts": "".join(o + "\n" for o in spec.options)}
    if joined:
        files["hosts"] = "".join(_host_line(h) + "\n" for h in spec.hosts)
        files["addn_hosts"] = "".join(_names_line(a, names) for a, names in spec.names)
    return files


def _write_atomic(path: Path, text: str) -> bool:
    """Writes ``text`` unless the file already holds it; True if it changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def _sync_dir(directory: Path, wanted: dict[str, str], known: dict[str, str]
              ) -> tuple[list[str], list[str], dict[str, str]]:
    """Makes ``directory`` hold exactly ``wanted`` (file name -> text). ``known``:
    what it held at the last call (updated here); a file not listed any more is
    written again, one not known is read. Returns (files added, files changed,
    files removed with what they held)."""
    directory.mkdir(exist_ok=True)
    present = {n for n in os.listdir(directory) if not n.startswith(".")}
    for name in list(known):
        if name not in present:
            del known[name]
    for name in present - known.keys():
        try:
            known[name] = (directory / name).read_text()
        except (FileNotFoundError, IsADirectoryError):
            pass
    added: list[str] = []
    changed: list[str] = []
    for name, text in wanted.items():
        have = known.get(name)
        if have == text:
            continue
        # written whole under a dot name (dnsmasq ignores those), then renamed in
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, directory / name)
        (added if have is None else changed).append(name)
        known[name] = text
    removed: dict[str, str] = {}
    for name in [n for n in known if n not in wanted]:
        (directory / name).unlink(missing_ok=True)
        removed[name] = known.pop(name)
    return added, changed, removed


class Dnsmasq:
    """The dnsmasq instances under one run directory."""

    def __init__(self, run_dir: Path, binary: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.binary = binary
        # per instance: what its hosts.d and names.d held at the last call
        self._known: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    def directory(self, name: str) -> Path:
        return self.run_dir / name

    def _marker(self, name: str) -> str:
        return str(self.directory(name) / CONF)

    def pid(self, name: str) -> int | None:
        """The pid of instance ``name`` if it is running (adopted or ours)."""
        d = self.directory(name)
        return procs.running(d / "pid", self._marker(name))

    def ensure(self, spec: DnsmasqSpec) -> str:
        """Makes instance ``spec.name`` run with exactly this configuration.

        Returns what it did: "started", "restarted" (the configuration changed),
        "reloaded" (options changed, or a DHCP entry changed or went: SIGHUP),
        "updated" (only new DHCP entries or names: dnsmasq reads their files
        itself) or "unchanged"."""
        d = self.directory(spec.name)
        files = render(spec, d, joined=False)
        hosts, names = entries(spec)
        d.mkdir(parents=True, exist_ok=True)
        pid = self.pid(spec.name)
        conf_changed = _write_atomic(d / CONF, files[CONF])
        reload = any([_write_atomic(d / n, files[n]) for n in RELOADABLE])
        for legacy in LEGACY:
            (d / legacy).unlink(missing_ok=True)
        known_hosts, known_names = self._known.setdefault(spec.name, ({}, {}))
        added, changed, removed = _sync_dir(d / HOSTS_DIR, hosts, known_hosts)
        names_done = _sync_dir(d / NAMES_DIR, names, known_names)
        if pid is not None and not conf_changed:
            if removed:
                self._release(spec, pid, removed.values())
            if reload or changed or removed:
                os.kill(pid, signal.SIGHUP)
                return "reloaded"
            return "updated" if added or any(names_done) else "unchanged"
        if pid is not None:
            procs.terminate(pid, self._marker(spec.name))
        self._start(spec)
        return "restarted" if pid is not None else "started"

    def _release(self, spec: DnsmasqSpec, pid: int, lines: Iterable[str]) -> None:
        """Releases the leases of removed DHCP entries (their MAC and addresses),
        as Neutron's DHCP agent does, so that their addresses leave the leases
        file now rather than when they expire. Best effort: without dnsmasq-utils
        the leases stay until they expire, as before."""
        gone: set[tuple[str, str]] = set()
        for line in lines:
            parts = line.strip().split(",")
            mac = parts[0].lower()
            for part in parts[1:]:
                address = part.strip("[]")
                if address and (address[0].isdigit() or ":" in address) and _is_address(address):
                    gone.add((mac, str(ipaddress.ip_address(address))))
        if not gone:
            return
        commands = release_commands(self._lease_lines(spec.name), gone, spec.interface)
        for argv in commands:
            binary = shutil.which(argv[0])
            if binary is None:
                _warn_once(f"{argv[0]} is not installed (Debian package dnsmasq-utils): "
                           "a deleted port's lease stays in the leases file until it expires")
                return
            try:
                result = netns.run(spec.netns, [binary, *argv[1:]], timeout=10)
            except (OSError, subprocess.SubprocessError, HostError) as exc:
                _log.warning("releasing a lease of dnsmasq %s: %s", spec.name, exc)
                continue
            if result.returncode != 0:
                _log.warning("%s: %s", " ".join(argv), result.stderr.strip())

    def _lease_lines(self, name: str) -> list[str]:
        try:
            return (self.directory(name) / "leases").read_text().splitlines()
        except FileNotFoundError:
            return []

    def _start(self, spec: DnsmasqSpec) -> int:
        d = self.directory(spec.name)
        binary = self.binary or shutil.which("dnsmasq")
        if binary is None:
            raise HostError("dnsmasq is not installed (Debian package dnsmasq-base)")
        (d / "pid").unlink(missing_ok=True)
        argv = [binary, f"--conf-file={d / CONF}"]
        # dnsmasq daemonizes: the process we start exits once the daemon is
        # ready, non-zero with the reason on stderr if it could not start.
        proc = netns.popen(spec.netns, argv, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, start_new_session=True)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise HostError(f"dnsmasq {spec.name} did not start within 30 s") from None
        if proc.returncode != 0:
            raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
        deadline = time.monotonic() + 5
        while True:
            pid = self.pid(spec.name)
            if pid is not None:
                return pid
            if time.monotonic() > deadline:
                raise HostError(f"dnsmasq {spec.name} started but wrote no pid file")
            time.sleep(0.01)

    def reload(self, name: str) -> bool:
        """SIGHUP: dnsmasq reads its hosts, options and names files again."""
        pid = self.pid(name)
        if pid is None:
            return False
        os.kill(pid, signal.SIGHUP)
        return True

    def stop(self, name: str, remove: bool = True) -> bool:
        """Ends instance ``name`` (and removes its directory unless ``remove`` is
        false); True if it was running."""
        self._known.pop(name, None)
        marker = self._marker(name)
        was = False
        for pid in procs.find(marker):  # pid file or not
            was = procs.terminate(pid, marker) or was
        if remove:
            shutil.rmtree(self.directory(name), ignore_errors=True)
        return was

    def names(self) -> list[str]:
        """Instances that have a directory here (running or not)."""
        if not self.run_dir.is_dir():
            return []
        return sorted(p.name for p in self.run_dir.iterdir()
                      if p.is_dir() and (p / CONF).exists())

    def running(self) -> dict[str, int]:
        """Every dnsmasq started from this run directory that is alive, by
        instance name, including ones whose directory is gone."""
        found: dict[str, int] = {}
        prefix = f"--conf-file={self.run_dir}/"
        for pid in procs.find(prefix):
            for arg in procs.cmdline(pid) or []:
                if arg.startswith(prefix) and arg.endswith("/" + CONF):
                    found[arg[len(prefix):-len(CONF) - 1]] = pid
        return found

    def leases(self, name: str) -> list[Lease]:
        try:
            text = (self.directory(name) / "leases").read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0].isdigit():
                out.append(Lease(int(parts[0]), parts[1], parts[2],
                                 None if parts[3] == "*" else parts[3]))
        return out



def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def release_commands(lease_lines: Iterable[str], gone: set[tuple[str, str]], interface: str
                     ) -> list[list[str]]:
    """The ``dhcp_release``/``dhcp_release6`` commands that release the leases of
    these (MAC, address) pairs, from the leases file's lines (pure). IPv4 lines:
    ``expiry mac address hostname client-id``; after the ``duid <server DUID>``
    line, IPv6 ones: ``expiry iaid address hostname client-DUID`` (an IPv6 lease
    has no MAC: its address alone names it)."""
    addresses = {address for _mac, address in gone}
    out: list[list[str]] = []
    server_id = ""
    for line in lease_lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == "duid":
            server_id = parts[1]
            continue
        if len(parts) < 5 or not _is_address(parts[2]):
            continue
        address = str(ipaddress.ip_address(parts[2]))
        if ipaddress.ip_address(address).version == 4:
            if (parts[1].lower(), address) in gone:
                argv = ["dhcp_release", interface, address, parts[1].lower()]
                if parts[4] != "*":
                    argv.append(parts[4])
                out.append(argv)
        elif address in addresses and server_id and parts[4] != "*":
            out.append(["dhcp_release6", "--iface", interface, "--ip", address,
                        "--server-id", server_id, "--client-id", parts[4], "--iaid", parts[1]])
    return out


_warned: set[str] = set()
_log = logging.getLogger(__name__)


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _log.warning(message)
