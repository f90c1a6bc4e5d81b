"""The host's image cache (Nova's ``_base``): each image fetched once, shared by overlays.

``<instances_dir>/_base/<sha1 of the image id>`` is an image's data as the
driver runs it, next to ``<name>.json`` (its format, virtual size, where it
came from). A fetch streams the data from the image service into a hidden
temporary file, checks it (the size and hash Image recorded; ``qemu-img
info`` with the format pinned to what Image says - the inspection runs under
``prlimit`` -; no backing file, no external data file, no encryption), turns
it into what the driver wants (qcow2 as it is, or raw with
``force_raw_images``; vmdk, vdi, vhd, vhdx, qed converted; kernels and
ramdisks kept as they are) and renames it into place: a base is complete or
absent. Concurrent fetches of one image share one download.

Bases no instance uses are removed once unused for ``min_age`` seconds
(touching a base - a fetch, an instance letting go of it - restarts its
clock), and sooner, least recently used first, while the cache is over its
size; a base touched in the last ``GRACE`` seconds always stays (a fetch for a
spawn that has not started yet).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.compute.virt.base import CachedImage, ImageData, ImageRef, VirtError
from onestack.host.base import Host
from onestack.host.errors import HostError

log = logging.getLogger(__name__)

GRACE = 300.0
PART = ".part-"
WRITE_BATCH = 4 << 20
# Glance disk_format -> qemu-img format of the data (None: kept as it is)
DISK_FORMATS: dict[str, str | None] = {
    "qcow2": "qcow2", "raw": "raw", "iso": "raw", "ami": "raw",
    "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx", "qed": "qed",
    "aki": None, "ari": None,
}


@dataclass(frozen=True)
class Entry:
    path: Path
    meta: Path
    touched: float
    size: int


class ImageCache:
    def __init__(self, host: Host, directory: Path, *, max_bytes: int, min_age: float,
                 force_raw: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.min_age = min_age
        self.force_raw = force_raw
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    def path_of(self, image_id: str) -> Path:
        return self.directory / hashlib.sha1(image_id.encode()).hexdigest()

    # --- fetch -------------------------------------------------------------------

    async def fetch(self, image: ImageRef, data: ImageData) -> CachedImage:
        path = self.path_of(image.id)
        lock = self._locks.setdefault(path.name, asyncio.Lock())
        async with lock:
            have = await asyncio.to_thread(self._load, path)
            if have is not None:
                return have
            return await self._fetch(image, data, path)

    def virtual_size(self, path: Path) -> int | None:
        """The virtual size the cache recorded for base ``path`` (None: not one
        of the cache's, or not known)."""
        if Path(path).parent != self.directory:
            return None
        try:
            return int(json.loads(Path(f"{path}.json").read_text())["virtual_size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _load(self, path: Path) -> CachedImage | None:
        meta = path.with_name(path.name + ".json")
        try:
            doc = json.loads(meta.read_text())
            if not path.is_file():
                return None
            now = self.clock()
            os.utime(meta, (now, now))
            return CachedImage(path, str(doc["format"]), int(doc["virtual_size"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    async def _fetch(self, image: ImageRef, data: ImageData, path: Path) -> CachedImage:
        if image.disk_format not in DISK_FORMATS:
            raise VirtError(f"Image {image.id}: disk format {image.disk_format!r} cannot "
                            "be run by this host.")
        self.directory.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}{PART}{os.urandom(4).hex()}")
        converted = part.with_name(part.name + ".conv")
        try:
            size = await self._download(image, data, part)
            fmt, virtual_size = await self._verify(image, part, size)
            if fmt is not None and fmt != self.want(fmt):
                await self.host.images.convert(part, fmt, converted, self.want(fmt))
                await asyncio.to_thread(os.replace, converted, part)
                virtual_size = (await self.host.images.info(part, self.want(fmt))).virtual_size
            final = self.want(fmt) if fmt is not None else "raw"
            await asyncio.to_thread(self._commit, part, path, {
                "image_id": image.id, "disk_format": image.disk_format, "format": final,
                "virtual_size": virtual_size, "size": size,
                "os_hash_value": image.os_hash_value})
        except HostError as exc:
            raise VirtError(f"Image {image.id} could not be prepared on this host: "
                            f"{exc}") from exc
        finally:
            for leftover in (part, converted):
                leftover.unlink(missing_ok=True)
        log.info("image cache: %s (%s) ready as %s", image.id, image.disk_format, path.name)
        return CachedImage(path, final, virtual_size)

    def want(self, fmt: str) -> str:
        """What a disk image of format ``fmt`` is kept as."""
        if fmt == "raw" or self.force_raw:
            return "raw"
        return "qcow2"

    async def _download(self, image: ImageRef, data: ImageData, part: Path) -> int:
        hashes: dict[str, Any] = {}
        if image.os_hash_algo and image.os_hash_value:
            try:
                hashes[image.os_hash_algo] = hashlib.new(image.os_hash_algo)
            except ValueError:
                raise VirtError(f"Image {image.id}: unknown hash algorithm "
                                f"{image.os_hash_algo!r}.") from None
        if image.checksum:
            hashes["md5"] = hashlib.md5(usedforsecurity=False)
        size = 0
        pending: list[bytes] = []
        with open(part, "xb") as fh:
            def flush(chunks: list[bytes]) -> None:
                for chunk in chunks:
                    fh.write(chunk)
                    for h in hashes.values():
                        h.update(chunk)

            async for chunk in data():
                pending.append(bytes(chunk))
                size += len(chunk)
                if sum(map(len, pending)) >= WRITE_BATCH:
                    batch, pending = pending, []
                    await asyncio.to_thread(flush, batch)
            await asyncio.to_thread(flush, pending)
        if image.size is not None and size != image.size:
            raise VirtError(f"Image {image.id}: got {size} bytes of data, the image has "
                            f"{image.size}.")
        if image.os_hash_algo and image.os_hash_value and \
                hashes[image.os_hash_algo].hexdigest() != image.os_hash_value:
            raise VirtError(f"Image {image.id}: the data does not match its "
                            f"{image.os_hash_algo} hash.")
        if image.checksum and hashes["md5"].hexdigest() != image.checksum:
            raise VirtError(f"Image {image.id}: the data does not match its checksum.")
        return size

    async def _verify(self, image: ImageRef, part: Path, size: int) -> tuple[str | None, int]:
        """(qemu-img format or None for a kernel/ramdisk, virtual size)."""
        fmt = DISK_FORMATS[image.disk_format]
        if fmt is None:
            return None, size
        info = await self.host.images.info(part, fmt)
        if info.format != fmt:
            raise VirtError(f"Image {image.id} is not a {image.disk_format} image.")
        if info.backing_file:
            raise VirtError(f"Image {image.id} has a backing file; refused.")
        specific = (info.raw.get("format-specific") or {}).get("data") or {}
        if specific.get("data-file") or info.encrypted:
            raise VirtError(f"Image {image.id} has an external data file or is "
                            "encrypted; refused.")
        return fmt, info.virtual_size

    def _commit(self, part: Path, path: Path, meta: dict[str, Any]) -> None:
        os.chmod(part, 0o644)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(part, path)
        tmp = path.with_name(path.name + ".json" + PART + "tmp")
        tmp.write_text(json.dumps(meta, sort_keys=True))
        now = self.clock()
        os.utime(tmp, (now, now))  # the unused-clock starts now
        os.replace(tmp, path.with_name(path.name + ".json"))

    # --- housekeeping ------------------------------------------------------------------

    def touch(self, paths: set[str]) -> None:
        """Restart the unused-clock of these bases (an instance let go of them)."""
        now = self.clock()
        for p in paths:
            meta = Path(p).with_name(Path(p).name + ".json")
            if meta.parent == self.directory and meta.exists():
                os.utime(meta, (now, now))

    def entries(self) -> list[Entry]:
        found = []
        if not self.directory.is_dir():
            return []
        for meta in self.directory.glob("*.json"):
            path = meta.with_suffix("")
            try:
                found.append(Entry(path, meta, meta.stat().st_mtime, path.stat().st_size))
            except FileNotFoundError:
                continue
        return found

    def sweep_partial(self) -> int:
        """Removes temporaries a crash left (at start, before any fetch)."""
        count = 0
        if self.directory.is_dir():
            for p in self.directory.iterdir():
                if PART in p.name:
                    p.unlink(missing_ok=True)
                    count += 1
        return count

    def prune(self, in_use: set[str]) -> list[Path]:
        """Removes bases no instance uses (blocking: call it in a thread);
        returns what went."""
        now = self.clock()
        unused = sorted((e for e in self.entries() if str(e.path) not in in_use),
                        key=lambda e: e.touched)
        total = sum(e.size for e in self.entries())
        removed = []
        for e in unused:
            age = now - e.touched
            if age >= self.min_age or (total > self.max_bytes and age >= GRACE):
                e.meta.unlink(missing_ok=True)
                e.path.unlink(missing_ok=True)
                total -= e.size
                removed.append(e.path)
                log.info("image cache: removed unused %s", e.path.name)
        return removed
