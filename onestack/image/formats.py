"""Disk-format inspection of image data as it streams in.

Like Glance's format inspector, the first bytes of an upload are examined
before the image may become active:

* the data must be in the format the image declares (``disk_format``): qcow2
  bytes declared ``raw`` (or anything else), or non-qcow2 bytes declared
  ``qcow2``, are rejected;
* a qcow2 image must be safe to hand to QEMU: no backing file, no external
  data file, no incompatible feature bits this inspector does not know;
* the virtual size is read from the header (qcow2), or is the data size for
  raw and iso images.

The inspector only ever holds the first ``HEADER_BYTES`` of the data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 64 * 1024

QCOW2_MAGIC = b"QFI\xfb"
# qcow2 v3 incompatible feature bits
QCOW2_INCOMPAT_DIRTY = 1 << 0
QCOW2_INCOMPAT_CORRUPT = 1 << 1
QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_INCOMPAT_COMPRESSION = 1 << 3
QCOW2_INCOMPAT_EXTL2 = 1 << 4
QCOW2_KNOWN_INCOMPAT = (
    QCOW2_INCOMPAT_DIRTY
    | QCOW2_INCOMPAT_CORRUPT
    | QCOW2_INCOMPAT_DATA_FILE
    | QCOW2_INCOMPAT_COMPRESSION
    | QCOW2_INCOMPAT_EXTL2
)

# Formats whose content this inspector recognizes with certainty; data in one
# of them may only be declared as that format.
STRICT_FORMATS = ("qcow2", "vmdk", "vhdx", "vdi", "qed", "luks")


class FormatError(ValueError):
    """The data does not match its declared format, or is unsafe."""


@dataclass
class Qcow2Header:
    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    incompatible_features: int


def parse_qcow2(header: bytes) -> Qcow2Header | None:
    """The qcow2 header fields, or None if this is not qcow2 (or too short)."""
    if len(header) < 72 or header[:4] != QCOW2_MAGIC:
        return None
    version, bf_off, bf_size, cluster_bits, size, crypt = struct.unpack(">IQIIQI", header[4:36])
    incompat = 0
    if version >= 3:
        if len(header) < 104:
            return None
        (incompat,) = struct.unpack(">Q", header[72:80])
    return Qcow2Header(version, bf_off, bf_size, cluster_bits, size, crypt, incompat)


def detect(header: bytes) -> str | None:
    """The format the data's first bytes announce, if any is recognized."""
    if header[:4] == QCOW2_MAGIC:
        return "qcow2"
    if header[:4] == b"QED\x00":
        return "qed"
    if header[:4] == b"KDMV" or header[:21] == b"# Disk DescriptorFile":
        return "vmdk"
    if header[:8] == b"vhdxfile":
        return "vhdx"
    if header[:8] == b"conectix":
        return "vhd"
    if len(header) >= 0x48 and header[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    if header[:6] == b"LUKS\xba\xbe":
        return "luks"
    if len(header) >= 0x8006 and header[0x8001:0x8006] == b"CD001":
        return "iso"
    return None


def check_qcow2(hdr: Qcow2Header) -> None:
    if hdr.version not in (2, 3):
        raise FormatError(f"Image is not a supported qcow2 version ({hdr.version}).")
    if hdr.backing_file_offset != 0 or hdr.backing_file_size != 0:
        raise FormatError("Image is a qcow2 with a backing file; such images are not allowed.")
    if hdr.incompatible_features & QCOW2_INCOMPAT_DATA_FILE:
        raise FormatError("Image is a qcow2 with an external data file; such images are not allowed.")
    if hdr.incompatible_features & ~QCOW2_KNOWN_INCOMPAT:
        raise FormatError("Image is a qcow2 with unknown incompatible features.")
    if not 9 <= hdr.cluster_bits <= 21:
        raise FormatError("Image is a qcow2 with an invalid cluster size.")


class Inspector:
    """Fed the data as it streams; ``verify()`` checks the first bytes."""

    def __init__(self, disk_format: str | None) -> None:
        self.disk_format = disk_format
        self._head = bytearray()
        self._verified = False
        self.virtual_size: int | None = None
        self.detected: str | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        """Keep the head of the data; verify as soon as there is enough of it."""
        if self._verified:
            return
        missing = HEADER_BYTES - len(self._head)
        if missing > 0:
            self._head += chunk[:missing]
        if len(self._head) >= HEADER_BYTES:
            self.verify()

    def verify(self) -> None:
        """Raise ``FormatError`` if the data does not fit the declared format."""
        if self._verified:
            return
        head = bytes(self._head)
        fmt = self.disk_format
        detected = detect(head)
        self.detected = detected
        if detected in STRICT_FORMATS and detected != fmt:
            raise FormatError(
                f"Image data is in {detected} format, which does not match disk_format {fmt}."
            )
        if fmt == "qcow2":
            hdr = parse_qcow2(head)
            if hdr is None:
                raise FormatError("Image data is not in qcow2 format, which does not match disk_format qcow2.")
            check_qcow2(hdr)
            self.virtual_size = hdr.size
        elif fmt in ("vmdk", "vhdx", "vdi", "vhd") and detected != fmt and len(head) > 0:
            raise FormatError(f"Image data is not in {fmt} format, which does not match disk_format {fmt}.")
        elif fmt == "iso" and detected != "iso":
            raise FormatError("Image data is not in iso format, which does not match disk_format iso.")
        self._verified = True

    def finish(self, size: int) -> int | None:
        """Verify (short data) and return the virtual size of the whole image."""
        self.verify()
        if self.disk_format in ("raw", "iso"):
            return size
        return self.virtual_size
