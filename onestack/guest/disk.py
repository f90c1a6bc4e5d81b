"""Disk image pieces written without loop devices or mounts.

* :func:`write_cpio` - an initramfs (``newc`` format) from a list of entries,
  device nodes included, so no root privileges are needed.
* :func:`assemble` - an MBR disk from a boot code file and partition images.
"""

from __future__ import annotations

import gzip
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512


@dataclass
class CpioEntry:
    name: str  # path inside the archive, without a leading "/"
    mode: int  # full st_mode (type and permissions)
    data: bytes = b""  # file contents, or the symlink target
    rdev: tuple[int, int] = (0, 0)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_cpio(entries: list[CpioEntry], path: Path, compress: bool = True) -> None:
    out = bytearray()
    for ino, e in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = e.name.encode() + b"\0"
        fields = [
            ino if e.name != "TRAILER!!!" else 0,
            e.mode,
            0,  # uid
            0,  # gid
            2 if stat.S_ISDIR(e.mode) else 1,
            0,  # mtime
            len(e.data),
            0,
            0,
            e.rdev[0],
            e.rdev[1],
            len(name),
            0,
        ]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        out += header + name + _pad4(len(header) + len(name))
        out += e.data + _pad4(len(e.data))
    raw = bytes(out)
    if compress:
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    path.write_bytes(raw)


@dataclass
class Partition:
    image: Path
    start: int  # sector
    sectors: int
    type_id: int
    bootable: bool = False


def _entry(p: Partition) -> bytes:
    chs = b"\xfe\xff\xff"  # beyond CHS: use LBA
    return (
        bytes([0x80 if p.bootable else 0])
        + chs
        + bytes([p.type_id])
        + chs
        + struct.pack("<II", p.start, p.sectors)
    )


def assemble(boot_code: bytes, partitions: list[Partition], total_sectors: int, out: Path,
             disk_id: int = 0x05E7AC4) -> None:
    """A raw MBR disk: boot code, partition table, each partition copied in
    (sparse: runs of zeros are skipped)."""
    if len(boot_code) > 440:
        raise ValueError("MBR boot code longer than 440 bytes")
    mbr = bytearray(SECTOR)
    mbr[: len(boot_code)] = boot_code
    struct.pack_into("<I", mbr, 440, disk_id)
    for i, p in enumerate(partitions):
        mbr[446 + 16 * i : 446 + 16 * (i + 1)] = _entry(p)
    mbr[510:512] = b"\x55\xaa"
    block = 1 << 16
    with open(out, "wb") as f:
        f.truncate(total_sectors * SECTOR)
        f.write(mbr)
        for p in partitions:
            size = os.path.getsize(p.image)
            if size > p.sectors * SECTOR:
                raise ValueError(f"{p.image.name} does not fit its partition")
            with open(p.image, "rb") as src:
                offset = p.start * SECTOR
                while chunk := src.read(block):
                    if chunk.count(0) != len(chunk):
                        f.seek(offset)
                        f.write(chunk)
                    offset += len(chunk)
