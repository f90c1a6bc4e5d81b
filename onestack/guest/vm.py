"""Boot the test guest directly with ``qemu-system-x86_64`` (tests, bench).

Serial console output is collected with the time it arrived, so a test can
wait for a pattern and know how long after the start it appeared; QMP gives
``system_reset`` and device hot-plug.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def kvm_usable() -> bool:
    """/dev/kvm is there and openable, and the CPU has VMX or SVM."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    if not re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def accelerator() -> str:
    """``kvm`` or ``tcg``; ONESTACK_QEMU_ACCEL=kvm|tcg forces either."""
    forced = os.environ.get("ONESTACK_QEMU_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced
    return "kvm" if kvm_usable() else "tcg"


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


@dataclass
class Nic:
    tap: str  # tap device name (already created, up), or "" for no backend
    mac: str


class GuestVM:
    def __init__(
        self,
        disk: Path,
        workdir: Path,
        *,
        nics: Sequence[Nic] = (),
        cdrom: Path | None = None,
        memory_mb: int = 256,
        cpus: int = 1,
        accel: str | None = None,
        netns: str | None = None,
        disk_bus: str = "virtio",
        extra: Sequence[str] = (),
    ) -> None:
        self.disk = disk
        self.workdir = workdir
        self.nics = list(nics)
        self.cdrom = cdrom
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.accel = accel or accelerator()
        self.netns = netns
        self.disk_bus = disk_bus  # virtio, ide or scsi (virtio-scsi)
        self.extra = list(extra)
        self.qmp_path = workdir / f"qmp-{os.getpid()}-{id(self)}.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._buf = bytearray()
        # (buffer length, arrival time, qemu's CPU seconds then)
        self._times: list[tuple[int, float, float]] = []
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        binary = qemu_binary() or "qemu-system-x86_64"
        cmd = [
            binary, "-machine", f"pc,accel={self.accel}", "-m", str(self.memory_mb),
            "-smp", str(self.cpus), "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-monitor", "none",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
        ]
        drive = f"file={self.disk},format=qcow2,cache=unsafe,discard=unmap"
        if self.disk_bus == "scsi":
            cmd += ["-device", "virtio-scsi-pci,id=scsi0", "-drive", f"{drive},if=none,id=root",
                    "-device", "scsi-hd,drive=root,bus=scsi0.0"]
        else:
            cmd += ["-drive", f"{drive},if={self.disk_bus}"]
        if self.accel == "kvm":
            cmd += ["-cpu", "host"]
        else:
            # TCG: the default model plus RDRAND, so that the guest's CRNG is
            # ready at once (random.trust_cpu) instead of the kernel spinning
            # for jitter entropy while the guest boots (~0.4 s under TCG).
            # (-cpu max: more features, but a slower boot loader here.)
            cmd += ["-cpu", "qemu64,+rdrand"]
        for i, nic in enumerate(self.nics):
            if nic.tap:
                cmd += ["-netdev", f"tap,id=n{i},ifname={nic.tap},script=no,downscript=no"]
            else:
                cmd += ["-netdev", f"hubport,id=n{i},hubid={i}"]
            # no option ROM: iPXE is not needed to boot from the disk
            cmd += ["-device", f"virtio-net-pci,netdev=n{i},mac={nic.mac},romfile="]
        if self.cdrom is not None:
            cmd += ["-drive", f"file={self.cdrom},format=raw,media=cdrom,if=ide,readonly=on"]
        cmd += self.extra
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        return cmd

    def start(self) -> GuestVM:
        self.qmp_path.unlink(missing_ok=True)
        self._buf.clear()
        self._times.clear()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 4096)
            now = time.monotonic()
            cpu = self.cpu_seconds()
            with self._cond:
                if not chunk:
                    self._times.append((len(self._buf), now, cpu))
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._times.append((len(self._buf), now, cpu))
                self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return self._buf.decode(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time qemu has used: under TCG, a measure of the
        guest's work that does not depend on how busy the host is."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _time_of(self, offset: int) -> tuple[float, float]:
        for length, t, cpu in self._times:
            if length >= offset:
                return t, cpu
        return time.monotonic(), self.cpu_seconds()

    def cpu_at(self, pattern: str) -> float | None:
        """qemu's CPU seconds when ``pattern`` first appeared, or None."""
        m = re.search(pattern, self.output, re.M)
        if not m:
            return None
        return self._time_of(len(self.output[: m.end()].encode()))[1]

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> tuple[re.Match[str], float]:
        """Waits for ``pattern`` in the console output (from byte ``since``);
        returns the match and the seconds from start() to its arrival."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._buf[since:].decode(errors="replace")
                m = rx.search(text)
                if m:
                    end = since + len(text[: m.end()].encode())
                    return m, self._time_of(end)[0] - self.started
                if self.proc is not None and self.proc.poll() is not None and not self._reader_alive():
                    raise RuntimeError(f"qemu exited ({self.proc.returncode}):\n{text[-3000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {pattern!r} on the console after {timeout}s:\n"
                                       f"{text[-3000:]}")
                self._cond.wait(min(left, 0.5))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def mark(self) -> int:
        with self._cond:
            return len(self._buf)

    def qmp(self, command: str, **arguments: object) -> dict[str, object]:
        deadline = time.monotonic() + 10
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.qmp_path))
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with sock:
            sock.settimeout(30)
            reader = sock.makefile("r")
            json.loads(reader.readline())  # greeting
            sock.sendall(json.dumps({"execute": "qmp_capabilities"}).encode())
            self._qmp_reply(reader)
            msg: dict[str, object] = {"execute": command}
            if arguments:
                msg["arguments"] = arguments
            sock.sendall(json.dumps(msg).encode())
            return self._qmp_reply(reader)

    @staticmethod
    def _qmp_reply(reader: object) -> dict[str, object]:
        while True:
            line = reader.readline()  # type: ignore[attr-defined]
            if not line:
                raise RuntimeError("QMP connection closed")
            reply = json.loads(line)
            if "return" in reply:
                return dict(reply)
            if "error" in reply:
                raise RuntimeError(f"QMP error: {reply['error']}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self._reader is not None:
            self._reader.join(5)
        self.qmp_path.unlink(missing_ok=True)

    def __enter__(self) -> GuestVM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
