"""``onestack image build-test``: the self-booting test guest, built offline.

Everything inside comes from Debian packages fetched with ``apt-get download``
(cached): the cloud kernel, busybox-static, dash, dropbear, curl, iproute2,
iputils-ping and util-linux, with the shared libraries they need. The disk is
made without loop devices or mounts:

* an MBR with SYSLINUX's boot code and two partitions;
* partition 1, FAT (``mkfs.fat``), holds the kernel, a small initramfs (written
  here as a cpio archive) and SYSLINUX, installed through mtools
  (``syslinux --install`` on the partition image);
* partition 2, ext4 (``mke2fs -d``), labelled ``onestack-root``, is the
  writable root file system; ownership and modes are fixed with ``debugfs``.

The initramfs loads the virtio modules (the other storage drivers too when the
root disk is not a virtio one), mounts the root read-write and switches to it,
where busybox init runs ``/etc/init.d/rcS`` (the scripts in
``onestack/guest/files``): dropbear (host keys made on first use, the ed25519
one during boot), udhcpc on every NIC (and on hot-plugged ones, through
``uevent``), the instance data from the metadata service or a config drive
(SSH keys for root and cirros, hostname, user data run once per instance),
then the banner on ttyS0. The kernel (as the PVH ``vmlinux`` inside the
bzImage where it has that entry: ``kernel.py``), the initramfs and the kernel
command line are also written next to the image, for direct kernel boot. The
raw disk is converted with
``qemu-img convert -O qcow2``, uncompressed: QEMU inflates a whole compressed
cluster for every read that touches it (SeaBIOS and SYSLINUX read the kernel a
few sectors at a time), which cost about a second of boot under TCG.

Boot is costly under TCG, so the boot path is kept small: a quiet kernel with
a few boot-time savers on its command line, boot scripts in busybox's shell
(applets run without exec), drivers nobody waits for loaded after the banner.
``bench/guest-boot`` measures boot-to-banner and boot-to-SSH.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from onestack.guest import IMAGE_NAME, boot_files, image_path
from onestack.guest.debs import BuildError, DebCache, LibraryIndex, modinfo
from onestack.guest.disk import SECTOR, CpioEntry, Partition, assemble, write_cpio
from onestack.guest.kernel import boot_kernel
from onestack.host import qemu_img
from onestack.host.errors import HostError

log = logging.getLogger(__name__)

IMAGE_VERSION = "1"
ROOT_LABEL = "onestack-root"
ROOT_UUID = "0e57ac4b-7e57-4e57-8e57-0e57ac4b7e57"
DISK_MIB = 128  # the virtual size, like CirrOS' 112 MiB: fits a 1 GB flavor
BOOT_MIB = 24  # FAT: kernel + initramfs + SYSLINUX
# quiet: the serial console is slow under TCG; edd=off, cryptomgr.notests,
# tsc=reliable, no_timer_check and, for a throwaway test guest, hardening that
# costs there (mitigations, zeroing every allocated page, page shuffling, stack
# offset randomisation, audit) off: each saves boot time under TCG. Two
# initcalls that cost ~0.1 s each under TCG and that nothing here uses are
# skipped (found with initcall_debug): the KDF108 self-test and the kprobe
# trace events set-up. random.trust_cpu: the CRNG is ready at once when the
# CPU model has RDRAND (SSH host key generation waits for it).
KERNEL_ARGS = (
    "console=ttyS0,115200 quiet edd=off cryptomgr.notests tsc=reliable no_timer_check"
    " mitigations=off init_on_alloc=0 page_alloc.shuffle=0 randomize_kstack_offset=off"
    " audit=0 initcall_blacklist=crypto_kdf108_init,init_kprobe_trace random.trust_cpu=on"
    " panic=5 root=LABEL=" + ROOT_LABEL
)

ROOT_PACKAGES = [
    "linux-image-cloud-amd64",
    "busybox-static",
    "dash",
    "dropbear-bin",
    "curl",
    "iproute2",
    "iputils-ping",
    "util-linux",
]
# package -> (path in the package, path in the guest)
BINARIES: dict[str, list[tuple[str, str]]] = {
    "dash": [("bin/dash", "usr/bin/dash")],
    "dropbear-bin": [
        ("usr/sbin/dropbear", "usr/sbin/dropbear"),
        ("usr/bin/dbclient", "usr/bin/dbclient"),
        ("usr/bin/dropbearkey", "usr/bin/dropbearkey"),
        ("usr/lib/dropbear/dropbearconvert", "usr/bin/dropbearconvert"),
    ],
    "curl": [("usr/bin/curl", "usr/bin/curl")],
    "iproute2": [("bin/ip", "usr/bin/ip")],
    "iputils-ping": [("bin/ping", "usr/bin/ping")],
    "util-linux": [
        ("sbin/blkid", "usr/sbin/blkid"),
        ("bin/lsblk", "usr/bin/lsblk"),
        ("bin/findmnt", "usr/bin/findmnt"),
        ("usr/bin/setpriv", "usr/bin/setpriv"),
    ],
}
LINKS = {  # guest path -> target
    "usr/bin/sh": "dash",
    "usr/bin/ping4": "ping",
    "usr/bin/ping6": "ping",
    "usr/bin/ssh": "dbclient",
    "usr/bin/scp": "dbclient",
}
# Modules loaded at boot (with their dependencies): EARLY ones by the initramfs
# (the virtio disk and NIC); CDROM ones by rcS while DHCP runs (a config drive
# is an IDE CD-ROM under Nova); LATE ones after the banner. The initramfs loads
# the CDROM and LATE ones too when the root disk is not a virtio one. A
# trailing "?": only if the kernel package has it.
EARLY_MODULES = ["virtio_pci", "virtio_blk", "virtio_net"]
CDROM_MODULES = ["sr_mod", "isofs", "ata_piix"]
LATE_MODULES = [
    "virtio_scsi",
    "sd_mod",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "virtio_rng",
    "virtio_balloon",
    "virtio_console",
    "button",
    "evdev",
    "ahci?",
]
# guest file -> (package data file, mode)
FILES = {
    "init": ("init.sh", 0o755),  # initramfs only
    "etc/inittab": ("inittab.cfg", 0o644),
    "etc/init.d/rcS": ("rcS.sh", 0o755),
    "etc/init.d/rcK": ("rcK.sh", 0o755),
    "etc/onestack/dhcp.sh": ("dhcp.sh", 0o755),
    "etc/onestack/udhcpc.sh": ("udhcpc.sh", 0o755),
    "etc/onestack/hotplug.sh": ("hotplug.sh", 0o755),
    "etc/onestack/labels.sh": ("labels.sh", 0o755),
    "etc/onestack/metadata.sh": ("metadata.sh", 0o755),
    "etc/onestack/userdata.sh": ("userdata.sh", 0o755),
    "etc/onestack/banner.sh": ("banner.sh", 0o755),
    "etc/onestack/json.awk": ("json.awk", 0o644),
    "etc/acpi/PWRF/00000080": ("poweroff.sh", 0o755),
    "usr/bin/sudo": ("sudo.sh", 0o755),
}
CIRROS_UID = 1000
SUDO_GID = 27
# console password of the cirros user, as on CirrOS (tempest's image_ssh_password)
CIRROS_PASSWORD = "gocubsgo"


def _files_dir() -> Path:
    return Path(str(resources.files("onestack.guest") / "files"))


def source_digest() -> str:
    """Changes whenever the recipe changes: this package's code and files."""
    h = hashlib.sha256()
    base = Path(__file__).parent
    for path in sorted([*base.glob("*.py"), *_files_dir().iterdir()]):
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def default_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "onestack" / "debs"


def default_output(state_dir: str | None) -> Path:
    from onestack.config import load_settings

    settings = load_settings(state_dir, {})
    return image_path(settings.state_dir)


def _run(cmd: list[str], **kw: object) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return str(proc.stdout)


def _need_tools() -> None:
    tools = ["apt-get", "dpkg-deb", "mke2fs", "debugfs", "mkfs.fat", "mcopy", "syslinux", "qemu-img"]
    missing = [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()
               and not Path("/sbin", t).exists()]
    if missing:
        raise BuildError(
            "missing host tools: " + ", ".join(missing)
            + " (install scripts/apt-packages.txt: bash scripts/setup)"
        )
    if not Path("/usr/lib/syslinux/mbr/mbr.bin").exists():
        raise BuildError("missing /usr/lib/syslinux/mbr/mbr.bin (Debian package syslinux-common)")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    return name


@dataclass
class Tree:
    """The root file system being assembled, plus ownership/mode fixes."""

    root: Path
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    modules: dict[str, list[str]] = field(default_factory=dict)  # stage -> paths

    def path(self, rel: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write(self, rel: str, data: bytes | str, mode: int = 0o644) -> None:
        p = self.path(rel)
        if p.is_symlink() or p.exists():
            p.unlink()
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        p.chmod(mode)

    def copy(self, src: Path, rel: str, mode: int | None = None) -> None:
        self.write(rel, src.read_bytes(), mode if mode is not None else (src.stat().st_mode & 0o7777))

    def link(self, rel: str, target: str) -> None:
        p = self.path(rel)
        if p.is_symlink() or p.exists():
            p.unlink()
        p.symlink_to(target)

    def mkdir(self, rel: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> None:
        p = self.root / rel
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(mode)
        if owner:
            self.owners[rel] = owner


def _guest_path(pkg_path: str) -> str:
    for prefix in ("bin/", "sbin/", "lib/"):
        if pkg_path.startswith(prefix):
            return "usr/" + pkg_path
    return pkg_path


def _module_index(kroot: Path) -> tuple[str, dict[str, Path]]:
    moddir = next((kroot / "lib/modules").iterdir())
    index: dict[str, Path] = {}
    for ko in moddir.rglob("*.ko"):
        index[ko.stem.replace("-", "_")] = ko
    return moddir.name, index


def _module_order(index: dict[str, Path], wanted: list[str], seen: set[str]) -> list[str]:
    """``wanted`` and their dependencies not in ``seen``, dependencies first."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise BuildError(f"kernel module {name} not found in the kernel package")
        for dep in modinfo(index[name]).get("depends", [""])[0].split(","):
            if dep:
                visit(dep.replace("-", "_"))
        order.append(name)

    for name in wanted:
        if name.endswith("?"):
            if name[:-1] not in index:
                continue
            name = name[:-1]
        visit(name)
    return order


def _passwd_files(tree: Tree, bb: Path) -> None:
    salt = hashlib.sha256(b"onestack-guest").hexdigest()[:16]
    hashed = _run([str(bb), "mkpasswd", "-m", "sha512", CIRROS_PASSWORD, salt]).strip()
    tree.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        f"cirros:x:{CIRROS_UID}:{CIRROS_UID}:cirros:/home/cirros:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    tree.write(
        "etc/group",
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\ndisk:x:6:\nwheel:x:10:cirros\n"
        f"sudo:x:{SUDO_GID}:cirros\nusers:x:100:\n"
        f"cirros:x:{CIRROS_UID}:\nnogroup:x:65534:\n",
    )
    tree.write(
        "etc/shadow",
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
        f"cirros:{hashed}:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
        0o640,
    )
    tree.write("etc/shells", "/bin/sh\n/bin/dash\n/bin/ash\n/usr/bin/dash\n")
    tree.mkdir("root", 0o700)
    tree.mkdir("home/cirros", 0o755, (CIRROS_UID, CIRROS_UID))


def _etc(tree: Tree, kernel_version: str) -> None:
    files = _files_dir()
    for rel, (name, mode) in FILES.items():
        if rel != "init":
            tree.copy(files / name, rel, mode)
    tree.write("etc/hostname", "onestack-guest\n")
    tree.write("etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    tree.write("etc/resolv.conf", "")
    tree.write("etc/fstab", f"LABEL={ROOT_LABEL} / ext4 rw,noatime 0 1\n")
    tree.write(
        "etc/os-release",
        f'NAME="{IMAGE_NAME}"\nVERSION="{IMAGE_VERSION}"\nID=onestack-guest\n'
        f'PRETTY_NAME="{IMAGE_NAME} {IMAGE_VERSION} (Debian kernel {kernel_version}, busybox)"\n',
    )
    tree.write(
        "etc/profile",
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        'export PS1="$(id -un)@$(hostname):\\w\\$ "\n'
        "export HOME=${HOME:-/}\nexport TERM=${TERM:-vt100}\n",
    )
    tree.write("etc/issue", f"{IMAGE_NAME}\n")
    tree.write("etc/acpi.map", "EV_KEY\t0x01\tKEY_POWER\t116\t1\tPWRF/00000080\n")
    tree.write("etc/acpid.conf", "PWRF PWRF/00000080\n")


def build_rootfs(tree: Tree, debs: dict[str, Path], cache: DebCache) -> tuple[str, Path, Path]:
    """Fills the tree; returns (kernel version, vmlinuz, busybox)."""
    extracted = {name: cache.extract(deb) for name, deb in debs.items()}
    root = tree.root
    for d in ("usr/bin", "usr/sbin", f"usr/lib/{'x86_64-linux-gnu'}", "usr/lib64"):
        tree.mkdir(d)
    for name in ("bin", "sbin", "lib", "lib64"):
        tree.link(name, f"usr/{name}")
    for d in ("dev", "proc", "sys", "run", "mnt", "media", "srv", "opt", "var/lib", "var/log",
              "var/spool/cron/crontabs", "etc/dropbear", "usr/local/bin"):
        tree.mkdir(d)
    tree.mkdir("tmp", 0o1777)
    tree.link("var/run", "../run")
    tree.link("var/tmp", "../tmp")

    # busybox and its applets
    bb = extracted["busybox-static"] / "bin/busybox"
    tree.copy(bb, "usr/bin/busybox", 0o755)
    for applet in _run([str(bb), "--list-full"]).split():
        rel = _guest_path(applet)
        if not (root / rel).exists() and not (root / rel).is_symlink():
            tree.link(rel, os.path.relpath("/usr/bin/busybox", "/" + str(Path(rel).parent)))

    # Debian binaries, replacing busybox applets of the same name
    installed: list[Path] = []
    for pkg, items in BINARIES.items():
        for src, dst in items:
            name = Path(dst).name
            for d in ("usr/bin", "usr/sbin"):
                p = root / d / name
                if p.is_symlink():
                    p.unlink()
            tree.copy(extracted[pkg] / src, dst, 0o755)
            installed.append(root / dst)
    for rel, target in LINKS.items():
        tree.link(rel, target)
    libs = LibraryIndex(extracted.values()).closure(installed)
    for soname, path in sorted(libs.items()):
        tree.copy(path, f"usr/lib/x86_64-linux-gnu/{soname}", 0o755)
    tree.link("usr/lib64/ld-linux-x86-64.so.2", "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")

    # sudo: a setuid-root setpriv only the group "sudo" may run
    tree.copy(root / "usr/bin/setpriv", "usr/lib/onestack/setpriv-root", 0o4750)
    tree.owners["usr/lib/onestack/setpriv-root"] = (0, SUDO_GID)

    kpkg = next(p for n, p in extracted.items() if n.startswith("linux-image-") and
                (p / "boot").is_dir())
    version, index = _module_index(kpkg)
    seen: set[str] = set()
    early = _module_order(index, EARLY_MODULES, seen)
    cdrom = _module_order(index, CDROM_MODULES, seen)
    late = _module_order(index, LATE_MODULES, seen)
    moddir = f"usr/lib/modules/{version}"
    kmods = kpkg / "lib/modules" / version
    relpath = {name: str(index[name].relative_to(kmods)) for name in early + cdrom + late}
    for name in early + cdrom + late:
        tree.copy(index[name], f"{moddir}/{relpath[name]}", 0o644)
    tree.write("etc/onestack/modules.cdrom", "".join(n + "\n" for n in cdrom))
    tree.write("etc/onestack/modules.late", "".join(n + "\n" for n in late))
    for extra in ("modules.builtin", "modules.order", "modules.builtin.modinfo"):
        if (kmods / extra).exists():
            tree.copy(kmods / extra, f"{moddir}/{extra}", 0o644)
    _run([str(bb), "depmod", "-b", str(root), version])

    _passwd_files(tree, bb)
    _etc(tree, version)
    vmlinuz = kpkg / f"boot/vmlinuz-{version}"
    tree.owners.update({"root": (0, 0)})
    tree.modules = {"early": [relpath[n] for n in early],
                    "late": [relpath[n] for n in cdrom + late]}
    return version, vmlinuz, bb


def build_initramfs(tree: Tree, bb: Path, out: Path) -> None:
    root = tree.root
    version = next((root / "usr/lib/modules").iterdir()).name
    dir_mode = stat.S_IFDIR | 0o755
    entries = [CpioEntry(d, dir_mode) for d in ("bin", "dev", "proc", "sys", "newroot", "lib",
                                                 "lib/modules")]
    entries.append(CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(CpioEntry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3)))
    entries.append(CpioEntry("bin/busybox", stat.S_IFREG | 0o755, bb.read_bytes()))
    for applet in ("sh", "mount", "insmod", "findfs", "usleep", "switch_root", "cat", "echo"):
        entries.append(CpioEntry(f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox"))
    for stage, listing in tree.modules.items():
        names = []
        for rel in listing:
            name = Path(rel).name
            names.append(name)
            data = (root / f"usr/lib/modules/{version}" / rel).read_bytes()
            entries.append(CpioEntry(f"lib/modules/{name}", stat.S_IFREG | 0o644, data))
        entries.append(CpioEntry(f"lib/modules/{stage}.order", stat.S_IFREG | 0o644,
                                 "".join(n + "\n" for n in names).encode()))
    init = (_files_dir() / "init.sh").read_bytes()
    entries.append(CpioEntry("init", stat.S_IFREG | 0o755, init))
    write_cpio(entries, out)


def _fix_owners(tree: Tree, fs_image: Path) -> None:
    """Everything root-owned (mke2fs -d copies the builder's ids), then the
    exceptions; setuid bits survive as mke2fs copies modes."""
    cmds: list[str] = []
    uid, gid = os.getuid(), os.getgid()
    if uid != 0 or gid != 0:
        for dirpath, dirnames, filenames in os.walk(tree.root):
            for name in [*dirnames, *filenames]:
                rel = os.path.relpath(os.path.join(dirpath, name), tree.root)
                cmds += [f'sif "/{rel}" uid 0', f'sif "/{rel}" gid 0']
        cmds += ['sif / uid 0', 'sif / gid 0']
    for rel, (ouid, ogid) in tree.owners.items():
        cmds += [f'sif "/{rel}" uid {ouid}', f'sif "/{rel}" gid {ogid}']
    if not cmds:
        return
    script = fs_image.with_suffix(".debugfs")
    script.write_text("\n".join(cmds) + "\n")
    _run([_tool("debugfs"), "-w", "-f", str(script), str(fs_image)])


def build_image(output: Path, cache_dir: Path, refresh: bool = False,
                kernel_args: str = KERNEL_ARGS) -> Path:
    # The guest's files take their modes from the build's umask wherever they
    # are not set one by one (package contents, parent directories): a private
    # umask (``onestack up`` sets 077) would leave /etc/passwd and /usr unreadable
    # to every user but root in the guest.
    previous = os.umask(0o022)
    try:
        return _build_image(output, cache_dir, refresh, kernel_args)
    finally:
        os.umask(previous)


def _build_image(output: Path, cache_dir: Path, refresh: bool, kernel_args: str) -> Path:
    _need_tools()
    cache = DebCache(cache_dir)
    debs = cache.fetch(ROOT_PACKAGES, refresh=refresh)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=output.parent) as tmp:
        work = Path(tmp)
        tree = Tree(work / "root")
        tree.root.mkdir()
        version, vmlinuz, bb = build_rootfs(tree, debs, cache)
        initrd = work / "initrd.img"
        build_initramfs(tree, bb, initrd)

        # partition 1: FAT with SYSLINUX, the kernel and the initramfs
        boot_start = 2048
        boot_sectors = BOOT_MIB * 2048
        root_start = boot_start + boot_sectors
        root_sectors = DISK_MIB * 2048 - root_start
        fat = work / "boot.img"
        # 64 KiB clusters: SYSLINUX reads the kernel a cluster per BIOS call, and
        # fewer calls are much faster under TCG
        _run([_tool("mkfs.fat"), "-C", "-F", "12", "-s", "128", "-n", "ONESTACKBT", "-i", "0e57ac4b",
              "-h", str(boot_start), str(fat), str(boot_sectors // 2)])
        cfg = work / "syslinux.cfg"
        cfg.write_text(
            "DEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
            f"LABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND {kernel_args}\n"
        )
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        for src, name in ((vmlinuz, "vmlinuz"), (initrd, "initrd.img"), (cfg, "syslinux.cfg")):
            _run(["mcopy", "-o", "-i", str(fat), str(src), f"::{name}"], env=env)
        _run(["syslinux", "--install", str(fat)], env=env)

        # partition 2: the ext4 root file system
        ext4 = work / "root.img"
        _run([_tool("mke2fs"), "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-U", ROOT_UUID,
              "-E", "root_owner=0:0", "-m", "0", "-d", str(tree.root), str(ext4),
              f"{root_sectors // 2}k"],
             env=dict(os.environ, E2FSPROGS_FAKE_TIME="1700000000"))
        _fix_owners(tree, ext4)

        raw = work / "disk.raw"
        mbr = Path("/usr/lib/syslinux/mbr/mbr.bin").read_bytes()
        assemble(
            mbr,
            [Partition(fat, boot_start, boot_sectors, 0x06, bootable=True),
             Partition(ext4, root_start, root_sectors, 0x83)],
            DISK_MIB * 2048,
            raw,
        )
        assert raw.stat().st_size == DISK_MIB * 2048 * SECTOR
        tmp_out = work / "out.qcow2"
        try:
            qemu_img.run(qemu_img.convert_argv(raw, "raw", tmp_out, "qcow2"))
        except HostError as exc:
            raise BuildError(str(exc)) from exc
        # the same kernel, initramfs and command line for direct kernel boot
        # (the kernel as the PVH vmlinux when it has that entry: fastest)
        kernel_file, initrd_file, cmdline_file = boot_files(output)
        elf, pvh = boot_kernel(vmlinuz.read_bytes())
        for data, final in ((elf, kernel_file), (initrd.read_bytes(), initrd_file),
                            (kernel_args.encode(), cmdline_file)):
            part = work / f"{final.name}.part"
            part.write_bytes(data)
            os.replace(part, final)
        os.replace(tmp_out, output)
        log.info("built %s (kernel %s%s)", output, version, ", PVH" if pvh else "")
    return output


def ensure_image(output: Path, cache_dir: Path | None = None, force: bool = False,
                 refresh: bool = False, kernel_args: str = KERNEL_ARGS) -> tuple[Path, bool]:
    """Builds the image unless an up-to-date one is there. (path, built?)"""
    cache_dir = cache_dir or default_cache()
    output.parent.mkdir(parents=True, exist_ok=True)
    stamp = output.with_name(output.name + ".stamp")
    digest = hashlib.sha256((source_digest() + kernel_args).encode()).hexdigest()
    with open(output.with_name("." + output.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        complete = output.exists() and all(p.exists() for p in boot_files(output))
        if not force and not refresh and complete and stamp.exists():
            try:
                if json.loads(stamp.read_text()).get("recipe") == digest:
                    return output, False
            except ValueError:
                pass
        started = time.monotonic()
        build_image(output, cache_dir, refresh=refresh, kernel_args=kernel_args)
        stamp.write_text(json.dumps({
            "recipe": digest,
            "seconds": round(time.monotonic() - started, 1),
            "size": output.stat().st_size,
            "debs": json.loads((cache_dir / "manifest.json").read_text())["debs"],
        }, indent=1, sort_keys=True))
    return output, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="onestack image build-test",
        description="Build the test guest image (qcow2) offline from Debian packages.",
    )
    parser.add_argument("--output", help="image file (default <state_dir>/guest/"
                        f"{IMAGE_NAME}.qcow2)")
    parser.add_argument("--state-dir", help="onestack state directory")
    parser.add_argument("--cache", help="download cache (default ~/.cache/onestack/debs)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--refresh", action="store_true",
                        help="resolve and download the packages again (new Debian versions)")
    parser.add_argument("--debug", action="store_true",
                        help="kernel messages on the console and traced boot scripts")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    output = Path(args.output).expanduser() if args.output else default_output(args.state_dir)
    cache = Path(args.cache).expanduser() if args.cache else None
    try:
        kernel_args = KERNEL_ARGS
        if args.debug:
            kernel_args = kernel_args.replace(" quiet", "") + " onestack.debug"
        path, built = ensure_image(output.absolute(), cache, force=args.force,
                                   refresh=args.refresh, kernel_args=kernel_args)
    except BuildError as exc:
        log.error("build-test: %s", exc)
        return 1
    size = path.stat().st_size / 1e6
    sys.stdout.write(f"{path} ({size:.1f} MB, {'built' if built else 'up to date'})\n")
    return 0
