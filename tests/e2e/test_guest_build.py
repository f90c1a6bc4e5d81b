"""The guest image's files are readable by its users whatever the builder's umask.

``onestack up`` runs with umask 077 (its state is private), and a build from
that process once gave a guest whose /etc/passwd only root could read, so that
SSH as cirros failed. The build sets its own umask; this builds under 077 and
reads the modes back out of the ext4 root with debugfs.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.guest import build

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("qemu-img", "debugfs", "mke2fs", "mcopy", "syslinux")),
    reason="the image tools are not installed (scripts/setup installs them)",
)


def _mode(fs: Path, path: str) -> int:
    out = subprocess.run(["debugfs", "-R", f"stat {path}", str(fs)], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"Mode:\s+(\d+)", out)
    assert m, out
    return int(m.group(1), 8)


def test_build_under_a_private_umask(tmp_path: Path) -> None:
    out = tmp_path / "guest.qcow2"
    previous = os.umask(0o077)
    try:
        build.build_image(out, build.default_cache())
        assert os.umask(0o077) == 0o077  # the caller's umask is given back
    finally:
        os.umask(previous)
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(out), str(raw)], check=True)
    root_start = 2048 + build.BOOT_MIB * 2048
    fs = tmp_path / "root.img"
    with raw.open("rb") as src, fs.open("wb") as dst:
        src.seek(root_start * 512)
        shutil.copyfileobj(src, dst)
    assert _mode(fs, "/etc/passwd") == 0o644
    assert _mode(fs, "/etc/shadow") == 0o640
    for directory in ("/etc", "/usr", "/usr/bin", "/usr/lib", "/home"):
        assert _mode(fs, directory) == 0o755, directory
    assert _mode(fs, "/home/cirros") == 0o755
    # the kernel, initramfs and command line for direct kernel boot come with it
    from onestack.guest import boot_files
    from onestack.guest.kernel import has_pvh_note

    kernel, initrd, cmdline = boot_files(out)
    assert has_pvh_note(kernel.read_bytes()), "the kernel is the PVH vmlinux"
    assert gzip.decompress(initrd.read_bytes())[:6] == b"070701"  # a gzipped newc cpio
    assert cmdline.read_text() == build.KERNEL_ARGS
