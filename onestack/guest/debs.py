"""Debian packages for the test guest: resolve, download (cached), extract.

Only Debian's own tools are used: ``apt-cache depends`` to follow library
dependencies, ``apt-get download`` into a cache directory and ``dpkg-deb -x``.
Once the cache holds every package of the manifest, nothing is fetched again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MULTIARCH = "x86_64-linux-gnu"
RESOLVER = 2  # bump when resolve() changes: cached manifests are then redone
# Libraries never needed inside the guest even when a package depends on them.
SKIP_PACKAGES = {
    "libc-bin",
    "libelogind0",
    "libpam-modules",
    "libpam-modules-bin",
    "libpam-runtime",
    "libdebian-installer4",
    "libnewt0.52",
    "libslang2",
    "libtextwrap1",
}


class BuildError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def _depends(names: Iterable[str]) -> dict[str, list[str]]:
    """Package -> the first alternative of each Depends/Pre-Depends."""
    out = _run(["apt-cache", "depends", "-i", *names])
    deps: dict[str, list[str]] = {}
    current: str | None = None
    in_group = False
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            deps.setdefault(current, [])
            in_group = False
            continue
        m = re.match(r"^ (\|| )(Pre)?Depends: (\S+)", line)
        if not m or current is None:
            continue
        name = m.group(3)
        if not in_group and not name.startswith("<"):
            deps[current].append(name.split(":")[0])
        in_group = m.group(1) == "|"
    return deps


def resolve(roots: list[str]) -> list[str]:
    """``roots`` plus the library packages they need, recursively.

    A meta package (``linux-image-cloud-amd64``) is followed to the real
    ``linux-image-*`` package it depends on.
    """
    wanted: list[str] = []
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        batch = [n for n in dict.fromkeys(todo) if n not in seen]
        todo = []
        if not batch:
            break
        seen.update(batch)
        for name, deps in _depends(batch).items():
            if name in SKIP_PACKAGES:
                continue
            wanted.append(name)
            for dep in deps:
                follow = dep.startswith(("lib", "zlib")) or (
                    name.startswith("linux-image-") and dep.startswith("linux-image-")
                )
                if follow and dep not in seen and dep not in SKIP_PACKAGES:
                    todo.append(dep)
    # meta packages (no files of their own) are harmless; keep the order stable
    return sorted(dict.fromkeys(wanted))


class DebCache:
    """``<cache>/*.deb``, ``<cache>/manifest.json`` and ``<cache>/x/<deb>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = root / "manifest.json"

    def _find(self, name: str) -> Path | None:
        found = sorted(self.root.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    def fetch(self, roots: list[str], refresh: bool = False) -> dict[str, Path]:
        """Package name -> .deb path for ``roots`` and their libraries."""
        if not refresh and self.manifest_path.exists():
            try:
                manifest = json.loads(self.manifest_path.read_text())
            except ValueError:
                manifest = {}
            if manifest.get("roots") == roots and manifest.get("resolver") == RESOLVER:
                files = {n: self.root / f for n, f in manifest["debs"].items()}
                if all(p.exists() for p in files.values()):
                    return files
        names = resolve(roots)
        missing = [n for n in names if refresh or self._find(n) is None]
        if missing:
            log.info("downloading %d Debian packages into %s", len(missing), self.root)
            self._download(missing)
        files = {}
        for name in names:
            deb = self._find(name)
            if deb is None:
                raise BuildError(f"apt-get download did not fetch {name}")
            files[name] = deb
        manifest = {"resolver": RESOLVER, "roots": roots, "debs": {n: p.name for n, p in files.items()}}
        self.manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return files

    def _download(self, names: list[str]) -> None:
        cmd = ["apt-get", "download", "-q", *names]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True)
        if proc.returncode != 0 and os.geteuid() == 0:
            log.info("apt-get download failed; running apt-get update once")
            _run(["apt-get", "update", "-q"])
            proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"apt-get download failed: {proc.stderr.strip()[-2000:]}")

    def extract(self, deb: Path) -> Path:
        target = self.root / "x" / deb.name.removesuffix(".deb")
        done = target / ".extracted"
        if not done.exists():
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(target)])
            done.touch()
        return target


# --- ELF -----------------------------------------------------------------


def elf_info(path: Path) -> tuple[list[str], str | None] | None:
    """(DT_NEEDED sonames, PT_INTERP) of a 64-bit little-endian ELF, or None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 0x20)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 0x36)
    interp = None
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == 3:  # PT_INTERP
            interp = data[p_offset : p_offset + p_filesz].rstrip(b"\0").decode()
    needed: list[str] = []
    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        _name, sh_type, _fl, _addr, sh_offset, sh_size, sh_link = struct.unpack_from(
            "<IIQQQQI", data, off
        )
        sections.append((sh_type, sh_offset, sh_size, sh_link))
    for sh_type, sh_offset, sh_size, sh_link in sections:
        if sh_type != 6:  # SHT_DYNAMIC
            continue
        strtab_off = sections[sh_link][1]
        for j in range(0, sh_size, 16):
            tag, val = struct.unpack_from("<qQ", data, sh_offset + j)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab_off + val)
                needed.append(data[strtab_off + val : end].decode())
    return needed, interp


def modinfo(path: Path) -> dict[str, list[str]]:
    """The ``.modinfo`` section of a kernel module: key -> values."""
    data = path.read_bytes()
    e_shoff = struct.unpack_from("<Q", data, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        name, _t, _f, _a, sh_offset, sh_size = struct.unpack_from("<IIQQQQ", data, off)
        headers.append((name, sh_offset, sh_size))
    shstr = headers[e_shstrndx][1]
    info: dict[str, list[str]] = {}
    for name, off, size in headers:
        end = data.index(b"\0", shstr + name)
        if data[shstr + name : end] != b".modinfo":
            continue
        for item in data[off : off + size].split(b"\0"):
            if b"=" in item:
                key, _, value = item.decode(errors="replace").partition("=")
                info.setdefault(key, []).append(value)
    return info


class LibraryIndex:
    """Shared libraries of the extracted packages, by file name."""

    LIB_DIRS = ("lib", f"lib/{MULTIARCH}", "usr/lib", f"usr/lib/{MULTIARCH}", "lib64")

    def __init__(self, roots: Iterable[Path]) -> None:
        self.libs: dict[str, Path] = {}
        for root in roots:
            for d in self.LIB_DIRS:
                base = root / d
                if not base.is_dir():
                    continue
                for entry in base.iterdir():
                    if ".so" in entry.name and entry.name not in self.libs:
                        real = self._resolve(root, entry)
                        if real is not None:
                            self.libs[entry.name] = real

    @staticmethod
    def _resolve(root: Path, entry: Path) -> Path | None:
        seen = 0
        while entry.is_symlink() and seen < 10:
            target = os.readlink(entry)
            entry = root / target.lstrip("/") if target.startswith("/") else entry.parent / target
            seen += 1
        return entry if entry.is_file() else None

    def closure(self, binaries: Iterable[Path]) -> dict[str, Path]:
        """Soname -> file for everything the binaries load, recursively."""
        result: dict[str, Path] = {}
        todo = list(binaries)
        while todo:
            info = elf_info(todo.pop())
            if info is None:
                continue
            needed, interp = info
            if interp:
                needed = [*needed, Path(interp).name]
            for soname in needed:
                if soname in result:
                    continue
                lib = self.libs.get(soname)
                if lib is None:
                    raise BuildError(f"no Debian package in the set provides {soname}")
                result[soname] = lib
                todo.append(lib)
        return result
