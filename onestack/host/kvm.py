"""Which accelerator QEMU guests use: KVM where it really runs a guest, TCG otherwise.

``/dev/kvm`` being there proves little: under some hypervisors it opens, makes
VMs and runs real-mode code, then fails ("KVM internal error ... emulation
failure") as soon as a guest's boot loader switches to protected mode, or hangs
in the kernel's set-up code. So the probe boots a 512-byte boot sector under
``qemu-system-x86_64 -accel kvm`` (the firmware, then real -> protected -> long
mode, with the IRETs that fail there; source in ``kvmprobe.S``) and calls KVM
usable only if it reaches its end, which makes QEMU exit with status 99 (within
a fraction of a second where KVM works). The answer is kept for the life of the
process. ``ONESTACK_QEMU_ACCEL=kvm|tcg`` (or a caller's setting) forces either.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

# kvmprobe.S, assembled (as --32; ld -Ttext 0x7c00 --oformat binary), trailing
# zeros and the 0x55aa signature left off (added by boot_sector()).
PROBE_CODE = bytes.fromhex(
    "fa31c08ed88ed0bc007c660f0116e07c0f20c06683c8010f22c066ea227c0000080066b810008ed8"
    "8ec08ed0bc007c000066b818000f00d89c6a0868417c0000cfbf0010000031c0b9000c0000f3abc7"
    "050010000003200000c7050020000003300000c70500300000830000000f20e083c8200f22e0b800"
    "1000000f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea9e7c000020004889"
    "e06a10509c6a20488d05030000005048cfb031e6f4f4ebfd0000000000000000ffff0000009acf00"
    "ffff00000092cf006700e67c00890000ffff0000009aaf002700b87c"
)
PROBE_EXIT_STATUS = 0x31 * 2 + 1
PROBE_TIMEOUT = 10.0

_lock = threading.Lock()
_verdict: tuple[bool, str] | None = None


def boot_sector() -> bytes:
    return PROBE_CODE.ljust(510, b"\0") + b"\x55\xaa"


def qemu_binary() -> str | None:
    return shutil.which("qemu-system-x86_64")


def probe(timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Boots the probe under KVM: (usable, why). Not cached; see :func:`kvm_usable`."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"/dev/kvm: {exc.strerror}"
    os.close(fd)
    binary = qemu_binary()
    if binary is None:
        return False, "qemu-system-x86_64 is not installed"
    with tempfile.TemporaryDirectory(prefix="onestack-kvm-probe-") as tmp:
        disk = Path(tmp) / "probe.img"
        disk.write_bytes(boot_sector())
        os.truncate(disk, 1 << 20)  # SeaBIOS boots no smaller disk from AHCI
        # QEMU dies with the probing thread (setpriv's PR_SET_PDEATHSIG, kept
        # across its exec): a failed probe's QEMU stays alive with its guest
        # stopped, so a process killed mid-probe would leave it running forever
        prefix = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        argv = [*prefix, binary, "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "16",
                "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
                "-serial", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", f"file={disk},format=raw,if=ide"]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        err, returncode = _watch(proc, timeout)
    lines = [ln.strip() for ln in err.splitlines() if "warning" not in ln]
    if returncode == PROBE_EXIT_STATUS:
        return True, "KVM ran the probe guest"
    if returncode is None:
        why = "; ".join(ln for ln in lines if "error" in ln or "failure" in ln)
        return False, f"a guest did not run under KVM: {why[:200] or 'no progress'}"
    return False, f"QEMU exited {returncode} under KVM: {' '.join(lines)[:300]}"


def _watch(proc: subprocess.Popen[bytes], timeout: float) -> tuple[str, int | None]:
    """Waits for QEMU to exit; gives up early when it reports that KVM failed
    (it then stays alive with the guest stopped). (stderr, exit status or None)."""
    assert proc.stderr is not None
    err = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or b"KVM internal error" in err or b"emulation failure" in err:
                break
            if sel.select(min(left, 0.5)):
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:  # exited
                    return err.decode(errors="replace"), proc.wait()
                err += chunk
    proc.kill()
    proc.wait()
    return err.decode(errors="replace"), None


def kvm_usable() -> tuple[bool, str]:
    """The probe's verdict, computed once per process."""
    global _verdict
    with _lock:
        if _verdict is None:
            _verdict = probe()
        return _verdict


def accelerator(forced: str | None = None) -> str:
    """``kvm`` or ``tcg``: ``forced`` (a setting) or ONESTACK_QEMU_ACCEL if set,
    else KVM when the probe ran under it."""
    choice = (forced or os.environ.get("ONESTACK_QEMU_ACCEL", "")).strip().lower()
    if choice in ("kvm", "tcg"):
        return choice
    if choice not in ("", "auto"):
        raise ValueError(f"ONESTACK_QEMU_ACCEL must be kvm, tcg or auto, not {choice!r}")
    return "kvm" if kvm_usable()[0] else "tcg"
