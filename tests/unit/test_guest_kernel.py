"""The PVH vmlinux taken out of a bzImage (synthetic kernels; no download)."""

from __future__ import annotations

import gzip
import lzma
import struct

import pytest

from onestack.guest import kernel


def elf(notes: list[tuple[bytes, int]]) -> bytes:
    """A 64-bit ELF with one PT_NOTE segment holding ``notes`` (name, type)."""
    body = b""
    for name, ntype in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), 4, ntype) + n.ljust((len(n) + 3) // 4 * 4, b"\0")
        body += b"\0" * 4
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)  # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(ehdr) + phdr + body


def bzimage(payload: bytes, setup_sects: int = 2) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    struct.pack_into("<II", setup, 0x248, 16, len(payload))
    return bytes(setup) + b"\0" * 16 + payload + b"tail"


PVH = elf([(b"GNU", 3), (b"Xen", kernel.PVH_NOTE_TYPE)])


@pytest.mark.parametrize("compress", [gzip.compress, lambda d: lzma.compress(d)])
def test_the_pvh_vmlinux_comes_out(compress: object) -> None:
    image = bzimage(compress(PVH))  # type: ignore[operator]
    assert kernel.boot_kernel(image) == (PVH, True)


def test_a_kernel_without_the_pvh_entry_stays_a_bzimage() -> None:
    image = bzimage(gzip.compress(elf([(b"GNU", 3), (b"Xen", 5)])))
    assert kernel.boot_kernel(image) == (image, False)


@pytest.mark.parametrize("data", [b"MZ" + b"\0" * 1000, bzimage(b"\x99unknown-compression")])
def test_what_cannot_be_unpacked_is_given_as_it_is(data: bytes) -> None:
    assert kernel.boot_kernel(data) == (data, False)
