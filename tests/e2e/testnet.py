"""An isolated network for booting the test guest (tests and bench; root).

A network namespace of its own (``onestack-e2e-<pid>-<n>``) with a bridge
(10.77.0.1/24 and 169.254.169.254), taps for the guests, dnsmasq serving DHCP
on that bridge only, and optionally a tiny metadata server on
169.254.169.254:80 — all made through ``onestack.host``. Nothing connects the
namespace to the host's network. :meth:`TestNetwork.close` removes everything
(dnsmasq, the metadata server, then the namespace with its bridge and taps).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from onestack.host import dnsmasq, links, netns

SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"
METADATA_IP = "169.254.169.254"
PREFIX = "onestack-e2e-"
# The namespaces of this test process: several test runs (other checkouts) may
# run at once, and each looks after only its own.
OWN_PREFIX = f"{PREFIX}{os.getpid()}-"
T = TypeVar("T")
_seq = itertools.count(1)

# Run inside the namespace: serves {path: body} from a JSON file on
# 169.254.169.254:80 (paths without the leading "/"; a body of null = 404).
METADATA_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
routes = json.load(open(sys.argv[1]))
log = open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0].lstrip("/")
        body = routes.get(path)
        log.write(f"GET /{path} {200 if body is not None else 404}\n")
        if body is None:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if path.endswith(".json") else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
ThreadingHTTPServer.allow_reuse_address = True
srv = ThreadingHTTPServer(("169.254.169.254", 80), H)
print("ready", flush=True)
srv.serve_forever()
"""


def missing_tools() -> list[str]:
    return [t for t in ("dnsmasq", "ssh", "ssh-keygen", "nft", "busybox")
            if shutil.which(t) is None]


class TestNetwork:
    __test__ = False  # not a pytest class

    def __init__(self, workdir: Path, name: str | None = None) -> None:
        self.workdir = workdir
        self.name = name or f"{OWN_PREFIX}{next(_seq)}"
        self.dhcp = dnsmasq.Dnsmasq(workdir / "dnsmasq")
        self.metadata: subprocess.Popen[bytes] | None = None
        self.hosts: dict[str, str] = {}  # mac -> ip

    # --- set-up / tear-down ------------------------------------------------

    def open(self, hosts: dict[str, str] | None = None) -> TestNetwork:
        """Creates the namespace, bridge and dnsmasq. ``hosts``: MAC -> fixed IP."""
        self.hosts = dict(hosts or {})
        netns.ensure(self.name)
        try:
            def wire(nl: links.Netlink) -> None:
                nl.ensure_bridge("br0")
                nl.ensure_address("br0", f"{GATEWAY}/24")
                nl.ensure_address("br0", f"{METADATA_IP}/32")

            self.netlink(wire)
            self.dhcp.ensure(self._dhcp_spec())
        except BaseException:
            self.close()
            raise
        return self

    def _dhcp_spec(self) -> dnsmasq.DnsmasqSpec:
        return dnsmasq.DnsmasqSpec(
            name="br0", interface="br0", netns=self.name,
            ranges=(dnsmasq.DhcpRange("guests", f"{SUBNET}.0/24", lease_seconds=3600),),
            hosts=tuple(dnsmasq.DhcpHost(mac, (ip,)) for mac, ip in self.hosts.items()),
            options=(f"tag:guests,option:router,{GATEWAY}",), log_dhcp=True)

    def netlink(self, fn: Callable[[links.Netlink], T]) -> T:
        """Runs ``fn`` with the namespace's netlink (links, addresses, routes)."""
        def work() -> T:
            with links.Netlink() as nl:
                return fn(nl)

        return netns.call(self.name, work)

    def add_tap(self, name: str) -> str:
        self.netlink(lambda nl: nl.ensure_tap(name, master="br0"))
        return name

    def serve_metadata(self, routes: dict[str, str | None]) -> None:
        """(Re)starts the metadata server with these routes."""
        self.stop_metadata()
        path = self.workdir / f"{self.name}.metadata.json"
        path.write_text(json.dumps(routes))
        log = self.workdir / f"{self.name}.metadata.log"
        proc = netns.popen(self.name, [sys.executable, "-c", METADATA_SERVER, str(path),
                                       str(log)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            proc.kill()
            proc.wait()
            raise RuntimeError("metadata server did not start")
        self.metadata = proc

    def metadata_requests(self) -> list[str]:
        log = self.workdir / f"{self.name}.metadata.log"
        return log.read_text().splitlines() if log.exists() else []

    def stop_metadata(self) -> None:
        if self.metadata is not None:
            self.metadata.terminate()
            try:
                self.metadata.wait(5)
            except subprocess.TimeoutExpired:
                self.metadata.kill()
                self.metadata.wait(5)
            self.metadata = None

    def close(self) -> None:
        self.stop_metadata()
        self.dhcp.stop("br0")
        netns.delete(self.name)  # ends whatever else still runs inside

    def __enter__(self) -> TestNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running things inside ----------------------------------------------

    def run(self, cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return netns.run(self.name, cmd, timeout=timeout)

    def ssh(self, ip: str, command: str, key: Path, user: str = "root", timeout: float = 30,
            connect_timeout: int = 3) -> subprocess.CompletedProcess[str]:
        return self.run(
            ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={connect_timeout}",
             f"{user}@{ip}", command],
            timeout=timeout,
        )

    def wait_ssh(self, ip: str, key: Path, timeout: float, user: str = "root") -> float:
        """Polls until ``ssh user@ip true`` works; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                res = self.ssh(ip, "true", key, user=user, timeout=10, connect_timeout=2)
            except subprocess.TimeoutExpired:
                continue
            if res.returncode == 0:
                return time.monotonic()
            last = res.stderr.strip()
            time.sleep(0.1)
        raise TimeoutError(f"no ssh {user}@{ip} after {timeout}s: {last}")
