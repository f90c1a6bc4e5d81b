"""An isolated network for booting the test guest (tests and bench; root).

A network namespace of its own with a bridge (10.77.0.1/24 and
169.254.169.254), taps for the guests, dnsmasq serving DHCP on that bridge
only, and optionally a tiny metadata server on 169.254.169.254:80. Nothing
connects the namespace to the host's network: the only traffic stays inside
it. :meth:`TestNetwork.close` removes everything (processes, then the
namespace, which takes the bridge and taps with it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"
METADATA_IP = "169.254.169.254"

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


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def missing_tools() -> list[str]:
    return [t for t in ("ip", "dnsmasq", "ssh", "ssh-keygen") if shutil.which(t) is None]


class TestNetwork:
    __test__ = False  # not a pytest class

    def __init__(self, workdir: Path, name: str | None = None) -> None:
        self.workdir = workdir
        self.name = name or f"onestack-guest-{os.getpid()}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.metadata: subprocess.Popen[bytes] | None = None
        self.taps: list[str] = []
        self.hosts: dict[str, str] = {}  # mac -> ip

    # --- set-up / tear-down ------------------------------------------------

    def open(self, hosts: dict[str, str] | None = None) -> TestNetwork:
        """Creates the namespace, bridge and dnsmasq. ``hosts``: MAC -> fixed IP."""
        self.hosts = dict(hosts or {})
        _ip("netns", "add", self.name)
        try:
            ns = ["-n", self.name]
            _ip(*ns, "link", "set", "lo", "up")
            _ip(*ns, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
            _ip(*ns, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
            _ip(*ns, "addr", "add", f"{METADATA_IP}/32", "dev", "br0")
            _ip(*ns, "link", "set", "br0", "up")
            self._dnsmasq()
        except BaseException:
            self.close()
            raise
        return self

    def _dnsmasq(self) -> None:
        leases = self.workdir / f"{self.name}.leases"
        leases.unlink(missing_ok=True)
        cmd = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            "--bind-interfaces", "--interface=br0", "--except-interface=lo",
            f"--dhcp-range={SUBNET}.100,{SUBNET}.199,255.255.255.0,1h",
            f"--dhcp-option=option:router,{GATEWAY}",
            "--dhcp-authoritative", "--no-ping", "--no-resolv", "--no-hosts",
            f"--dhcp-leasefile={leases}", "--pid-file=",
            f"--log-facility={self.workdir / (self.name + '.dnsmasq.log')}", "--log-dhcp",
        ]
        for mac, ip in self.hosts.items():
            cmd.append(f"--dhcp-host={mac},{ip}")
        self.procs.append(self.spawn(cmd))
        time.sleep(0.2)
        if self.procs[-1].poll() is not None:
            raise RuntimeError(f"dnsmasq exited ({self.procs[-1].returncode})")

    def add_tap(self, name: str) -> str:
        ns = ["-n", self.name]
        _ip(*ns, "tuntap", "add", "dev", name, "mode", "tap")
        _ip(*ns, "link", "set", name, "master", "br0", "up")
        self.taps.append(name)
        return name

    def serve_metadata(self, routes: dict[str, str | None]) -> None:
        """(Re)starts the metadata server with these routes."""
        self.stop_metadata()
        path = self.workdir / f"{self.name}.metadata.json"
        path.write_text(json.dumps(routes))
        log = self.workdir / f"{self.name}.metadata.log"
        proc = self.spawn([sys.executable, "-c", METADATA_SERVER, str(path), str(log)],
                          stdout=subprocess.PIPE)
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            proc.kill()
            raise RuntimeError("metadata server did not start")
        self.metadata = proc

    def metadata_requests(self) -> list[str]:
        log = self.workdir / f"{self.name}.metadata.log"
        return log.read_text().splitlines() if log.exists() else []

    def stop_metadata(self) -> None:
        if self.metadata is not None:
            self._kill(self.metadata)
            self.procs.remove(self.metadata)
            self.metadata = None

    def close(self) -> None:
        for proc in reversed(self.procs):
            self._kill(proc)
        self.procs.clear()
        self.metadata = None
        _ip("netns", "del", self.name, check=False)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __enter__(self) -> TestNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running things inside ----------------------------------------------

    def spawn(self, cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def run(self, cmd: list[str], timeout: float = 30, **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                              text=True, timeout=timeout, **kw)  # type: ignore[call-overload]

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
