"""The test guest's kernel for direct kernel boot: the ELF inside the bzImage.

QEMU boots an uncompressed ``vmlinux`` that carries a PVH entry note (ELF
note type 18, ``XEN_ELFNOTE_PHYS32_ENTRY``) straight into 32-bit protected
mode, skipping the real-mode set-up and the decompressor: the fastest boot
measured here (``/work/shared/notes/guest-boot.md``: SSH 2.65 s against 3.05 s
with the bzImage and 3.5 s from the disk). The bzImage's setup header says
where its compressed payload is (``payload_offset``/``payload_length``); it
is decompressed with the standard library (gzip, xz, lzma, bzip2) or the
``lz4``/``zstd`` tools (Debian's kernels use LZ4).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess

ELF_MAGIC = b"\x7fELF"
PVH_NOTE_TYPE = 18  # XEN_ELFNOTE_PHYS32_ENTRY
MAGICS = {
    b"\x1f\x8b": "gzip",
    b"\xfd7zXZ\x00": "xz",
    b"\x5d\x00\x00": "lzma",
    b"BZh": "bzip2",
    b"\x02\x21\x4c\x18": "lz4",
    b"\x28\xb5\x2f\xfd": "zstd",
}


class KernelError(ValueError):
    pass


def payload(bzimage: bytes) -> tuple[str, bytes]:
    """(compression, compressed payload) of a bzImage (boot protocol >= 2.08)."""
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != b"HdrS":
        raise KernelError("not a bzImage (no setup header)")
    if struct.unpack_from("<H", bzimage, 0x206)[0] < 0x208:
        raise KernelError("boot protocol too old to say where its payload is")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    data = bzimage[start:start + length]
    for magic, kind in MAGICS.items():
        if data.startswith(magic):
            return kind, data
    raise KernelError(f"unknown payload compression {data[:6].hex()}")


def _tool(argv: list[str], data: bytes) -> bytes:
    if shutil.which(argv[0]) is None:
        raise KernelError(f"{argv[0]} is not installed (needed to unpack this kernel)")
    proc = subprocess.run(argv, input=data, capture_output=True, timeout=120)
    # the kernel appends its size after the LZ4 legacy frame: lz4 warns, the ELF is whole
    if not proc.stdout.startswith(ELF_MAGIC):
        raise KernelError(f"{argv[0]} failed: {proc.stderr.decode(errors='replace')[:300]}")
    return proc.stdout


def decompress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    if kind == "lz4":
        return _tool(["lz4", "-dc"], data)
    return _tool(["zstd", "-dcq"], data)


def has_pvh_note(elf: bytes) -> bool:
    """Whether a 64-bit little-endian ELF has a PVH entry note."""
    if not elf.startswith(ELF_MAGIC) or elf[4] != 2 or elf[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", elf, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
            "<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == PVH_NOTE_TYPE:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def boot_kernel(bzimage: bytes) -> tuple[bytes, bool]:
    """What to give QEMU's ``-kernel``: (the PVH vmlinux, True), or the
    bzImage itself (False) when it has no PVH entry or cannot be unpacked here."""
    try:
        elf = decompress(*payload(bzimage))
    except (KernelError, OSError, lzma.LZMAError, EOFError, subprocess.SubprocessError):
        return bzimage, False
    if has_pvh_note(elf):
        return elf, True
    return bzimage, False
