"""IPv6 router advertisements from a namespace: one radvd per namespace.

A routing namespace tells the hosts on its links that it is their IPv6
default router (what Neutron's L3 agent runs radvd for). Each radvd has a
directory of its own holding ``radvd.conf`` (on its command line: that marks
the process as this directory's, so after a restart a running radvd is adopted,
not started twice), its pid file and its log. A changed configuration is
re-read on SIGHUP; an empty one stops it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from onestack.host import netns, procs
from onestack.host.errors import CommandError, HostError
from onestack.host.links import check_ifname

CONF = "radvd.conf"


@dataclass(frozen=True)
class Advertised:
    """A link on which the namespace advertises itself as the default router."""

    device: str
    mtu: int
    min_interval: int = 30  # seconds between unsolicited advertisements (Neutron's)
    max_interval: int = 100


def render(links: Sequence[Advertised]) -> str:
    """radvd.conf: per link the router (default lifetime 3 x the interval) and
    the link MTU; no prefixes (the network's DHCP server advertises those, with
    the flags of its subnet's mode)."""
    out = []
    for link in sorted(links, key=lambda x: x.device):
        check_ifname(link.device)
        if not 3 <= link.min_interval < link.max_interval <= 1800:
            raise HostError(f"invalid advertisement interval for {link.device}")
        out.append(f"interface {link.device} {{\n"
                   f"    AdvSendAdvert on;\n"
                   f"    MinRtrAdvInterval {link.min_interval};\n"
                   f"    MaxRtrAdvInterval {link.max_interval};\n"
                   f"    AdvLinkMTU {int(link.mtu)};\n"
                   f"}};\n")
    return "".join(out)


def running(run_dir: Path) -> int | None:
    """The pid of this directory's radvd, if it runs."""
    return procs.running(run_dir / "radvd.pid", str(run_dir / CONF))


def ensure(ns: str, run_dir: Path, links: Sequence[Advertised]) -> str:
    """radvd in namespace ``ns`` advertising on exactly ``links`` (none: not
    running). Returns "started", "reloaded", "unchanged" or "stopped"."""
    if not links:
        return "stopped" if stop(run_dir) else "unchanged"
    text = render(links)
    conf = run_dir / CONF
    pid = running(run_dir)
    try:
        old = conf.read_text()
    except FileNotFoundError:
        old = None
    if pid is not None and old == text:
        return "unchanged"
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, conf)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
        return "reloaded"
    _start(ns, run_dir)
    return "started"


def _start(ns: str, run_dir: Path) -> None:
    binary = shutil.which("radvd")
    if binary is None:
        raise HostError("radvd is not installed (Debian package radvd)")
    conf, pidfile, log = run_dir / CONF, run_dir / "radvd.pid", run_dir / "radvd.log"
    pidfile.unlink(missing_ok=True)
    argv = [binary, "-C", str(conf), "-p", str(pidfile), "-m", "logfile", "-l", str(log)]
    with open(run_dir / "start.err", "w+") as err:
        # radvd forks and its parent exits; the daemon keeps no pipe of ours open
        proc = netns.call(ns, subprocess.run, argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        err.seek(0)
        message = err.read()
    if proc.returncode != 0:
        raise CommandError(argv, proc.returncode, message)
    deadline = time.monotonic() + 5
    while running(run_dir) is None:
        if time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log.exists() else message
            raise CommandError(argv, 0, f"radvd did not stay up: {tail}")
        time.sleep(0.01)


def stop(run_dir: Path) -> bool:
    """Ends this directory's radvd (pid file or not) and removes the directory;
    True if one was running."""
    marker = str(run_dir / CONF)
    was = False
    for pid in procs.find(marker) if run_dir.exists() else []:
        was = procs.terminate(pid, marker) or was
    shutil.rmtree(run_dir, ignore_errors=True)
    return was
