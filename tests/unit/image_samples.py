"""Disk images crafted byte by byte: good ones, and the malicious ones the
format inspector must refuse (tests/unit and tests/api use them)."""

from __future__ import annotations

import struct
import uuid

GiB = 1 << 30
KiB = 1024


def make_qcow2(
    virtual_size: int = GiB,
    *,
    version: int = 3,
    backing_file: bytes = b"",
    incompatible: int = 0,
    cluster_bits: int = 16,
    total: int = 256 * 1024,
) -> bytes:
    """A qcow2 header (padded with zeros), optionally naming a backing file."""
    header_len = 104 if version >= 3 else 72
    bf_offset = header_len if backing_file else 0
    head = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb", version, bf_offset, len(backing_file), cluster_bits, virtual_size,
        0, 1, 3 << cluster_bits, 1 << cluster_bits, 1, 0, 0,
    )
    if version >= 3:
        head += struct.pack(">QQQII", incompatible, 0, 0, 4, header_len)
    head += backing_file
    return head + bytes(total - len(head))


# --- VMDK ------------------------------------------------------------------------


def vmdk_descriptor(create_type: str = "monolithicSparse", extents: tuple[str, ...] = ('RW 20480 SPARSE "disk.vmdk"',),
                    extra: tuple[str, ...] = ()) -> str:
    lines = ["# Disk DescriptorFile", "version=1", "CID=f1e562c0", "parentCID=ffffffff",
             f'createType="{create_type}"', *extra, "# Extent description", *extents,
             "# The Disk Data Base", "#DDB", 'ddb.virtualHWVersion = "4"', 'ddb.adapterType = "ide"']
    return "\n".join(lines) + "\n"


def _vmdk_header(sectors: int, gd_offset: int, version: int = 1) -> bytes:
    return struct.pack("<4sIIQQQQIQQ", b"KDMV", version, 3, sectors, 128, 1, 20, 512, 21, gd_offset)


def make_vmdk(
    descriptor: str | None = None, *, sectors: int = 20480, total: int = 64 * KiB,
    footer: bytes | None = None, version: int = 1,
) -> bytes:
    """A sparse (``KDMV``) VMDK with its descriptor embedded at sector 1.

    ``footer``: a stream-optimized file with its grain directory at the end;
    pass ``vmdk_footer(...)`` (or a broken one).
    """
    gd = 0xFFFFFFFFFFFFFFFF if footer is not None else 26
    head = _vmdk_header(sectors, gd, version).ljust(512, b"\x00")
    desc = (descriptor or vmdk_descriptor()).encode().ljust(20 * 512, b"\x00")
    body = (head + desc).ljust(total, b"\x00")
    return body + (footer or b"")


def vmdk_footer(sectors: int = 20480, *, gd_offset: int = 26, marker_type: int = 3, eos_type: int = 0) -> bytes:
    """Footer marker, the header again (now with the real grain directory), end-of-stream marker."""
    marker = struct.pack("<QII", 1, 0, marker_type).ljust(512, b"\x00")
    header = _vmdk_header(sectors, gd_offset).ljust(512, b"\x00")
    eos = struct.pack("<QII", 0, 0, eos_type).ljust(512, b"\x00")
    return marker + header + eos


def make_vmdk_text(create_type: str = "monolithicFlat", extent: str = 'RW 20480 FLAT "/etc/shadow" 0') -> bytes:
    """A bare VMDK descriptor file: qemu opens the files its extents name."""
    return vmdk_descriptor(create_type, (extent,)).encode()


# --- VHD, VHDX, VDI, QED, LUKS ----------------------------------------------------------


def make_vhd(virtual_size: int = GiB, total: int = 64 * KiB) -> bytes:
    """A dynamic VHD: the footer copy at the start ("conectix", size at 40)."""
    footer = b"conectix" + bytes(32) + struct.pack(">QQ", virtual_size, virtual_size)
    return footer.ljust(total, b"\x00")


def _guid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


VHDX_METAREGION = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
VHDX_VDS = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"


def make_vhdx(virtual_size: int = GiB, *, region_signature: bytes = b"regi") -> bytes:
    """Identifier, region table at 192 KiB naming the metadata region at 1 MiB,
    whose table points at the virtual disk size item 64 KiB further."""
    data = bytearray(1024 * KiB + 64 * KiB + 8)
    data[0:8] = b"vhdxfile"
    table = region_signature + struct.pack("<III", 0, 1, 0)
    table += _guid_bytes(VHDX_METAREGION) + struct.pack("<QII", 1024 * KiB, 1024 * KiB, 1)
    data[192 * KiB : 192 * KiB + len(table)] = table
    meta = b"metadata" + struct.pack("<HH", 0, 1) + bytes(20)
    meta += _guid_bytes(VHDX_VDS) + struct.pack("<III", 64 * KiB, 8, 0) + bytes(4)
    data[1024 * KiB : 1024 * KiB + len(meta)] = meta
    data[1024 * KiB + 64 * KiB : 1024 * KiB + 64 * KiB + 8] = struct.pack("<Q", virtual_size)
    return bytes(data)


def make_vdi(virtual_size: int = GiB) -> bytes:
    data = bytearray(64 * KiB)
    data[0x40:0x44] = struct.pack("<I", 0xBEDA107F)
    data[0x170:0x178] = struct.pack("<Q", virtual_size)
    return bytes(data)


def make_qed() -> bytes:
    return b"QED\x00".ljust(64 * KiB, b"\x00")


def make_luks(version: int = 1, payload_sectors: int = 4096) -> bytes:
    head = b"LUKS\xba\xbe" + struct.pack(">H", version) + b"aes".ljust(32, b"\x00") + b"xts-plain64".ljust(32, b"\x00")
    head += b"sha256".ljust(32, b"\x00") + struct.pack(">II", payload_sectors, 64)
    return head.ljust(payload_sectors * 512 + 64 * KiB, b"\x00")


# --- ISO, MBR/GPT ---------------------------------------------------------------------


def make_iso(blocks: int = 100, *, mbr: bytes | None = None) -> bytes:
    """An ISO 9660 image: primary volume descriptor at 32 KiB (optionally an
    MBR in the system area, as a hybrid bootable ISO has)."""
    data = bytearray(max(blocks, 20) * 2048)
    pvd = bytearray(2048)
    pvd[0] = 1
    pvd[1:6] = b"CD001"
    pvd[80:88] = struct.pack("<I", blocks) + struct.pack(">I", blocks)
    pvd[128:132] = struct.pack("<H", 2048) + struct.pack(">H", 2048)
    data[32 * KiB : 34 * KiB] = pvd
    if mbr is not None:
        data[0:512] = mbr
    return bytes(data)


def partition(boot: int = 0x80, ostype: int = 0x83, chs: tuple[int, int, int] = (0, 2, 0),
              start_lba: int = 2048, sectors: int = 100000) -> bytes:
    return struct.pack("<B3BB3BII", boot, *chs, ostype, 0xFE, 0xFF, 0xFF, start_lba, sectors)


def make_mbr(*entries: bytes, total: int = 64 * KiB) -> bytes:
    """A disk whose first sector is an MBR with these partition entries."""
    sector = bytearray(512)
    for i, entry in enumerate(entries):
        sector[446 + 16 * i : 462 + 16 * i] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector).ljust(total, b"\x00")


def protective_gpt(*extra: bytes) -> bytes:
    """A GPT disk's protective MBR (type 0xEE from LBA 1), plus ``extra`` entries."""
    return make_mbr(partition(0x00, 0xEE, (0, 2, 0), 1, 0xFFFFFFFF), *extra)


def make_fat_boot_sector() -> bytes:
    """A FAT file system's boot sector: the MBR signature, but 2 FATs on a fixed disk."""
    sector = bytearray(512)
    sector[0x10] = 2
    sector[0x15] = 0xF8
    sector[510:512] = b"\x55\xaa"
    return bytes(sector).ljust(64 * KiB, b"\x00")
