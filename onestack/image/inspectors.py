"""One inspector per disk format, fed the image bytes as they stream past.

The rules are those of oslo.utils' format inspector, which Glance runs on
every upload (and Nova again before it hands an image to ``qemu-img``):
each inspector keeps only the few regions of the data it needs (a header, a
descriptor, a region table ...; ``Region``), says whether the data is in its
format (``matches``), and lists the safety checks the data fails
(``failures``). ``formats.Inspector`` runs all of them side by side and
decides.

The safety checks are what stop an image from making QEMU read a file of the
host: a qcow2 backing file or external data file, a VMDK that is not one
self-contained sparse file (``monolithicFlat`` and friends name their data
files in a text descriptor: CVE-2024-32498), a parent disk, an MBR whose
partition table is not a plain one.
"""

from __future__ import annotations

import struct

KiB = 1024


class Region:
    """``length`` bytes of the stream from ``offset``, collected across chunks."""

    __slots__ = ("offset", "length", "data", "missed")

    def __init__(self, offset: int, length: int) -> None:
        self.offset = offset
        self.length = max(0, length)
        self.data = bytearray()
        self.missed = False  # the stream went past the offset before the region existed

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.length

    def capture(self, chunk: bytes | memoryview, start: int) -> None:
        """Take this region's part of ``chunk``, which holds bytes [start, start + len)."""
        if self.complete or self.missed:
            return
        want = self.offset + len(self.data)
        if want < start:
            self.missed = True
            return
        hi = min(self.offset + self.length, start + len(chunk))
        if want < hi:
            self.data += chunk[want - start : hi - start]


class Unrecognized(Exception):
    """The data cannot be in this inspector's format (it stops looking)."""


class FormatInspector:
    """Base: regions to collect, a match test, safety checks, a virtual size."""

    name = ""

    def __init__(self) -> None:
        self.regions: dict[str, Region] = {}
        self.failed = False  # Unrecognized, or a parse error: not this format
        self.position = 0  # bytes seen so far
        self.ended = False
        self.setup()

    # -- hooks for the formats

    def setup(self) -> None:
        """Declare the first regions."""

    def progress(self) -> None:
        """After each chunk: add regions whose place is now known (may raise Unrecognized)."""

    def match(self) -> bool:
        raise NotImplementedError

    def checks(self) -> list[str]:
        """Names of the safety checks the data fails (empty: safe)."""
        return []

    def size(self) -> int:
        """The virtual disk size, 0 if unknown."""
        return 0

    # -- machinery

    def region(self, name: str) -> Region:
        return self.regions[name]

    def add(self, name: str, region: Region) -> None:
        self.regions[name] = region

    def feed(self, chunk: bytes | memoryview, start: int) -> None:
        if self.failed:
            return
        self.position = start + len(chunk)
        try:
            seen: set[str] = set()
            while True:
                for name, region in list(self.regions.items()):
                    if name not in seen:
                        region.capture(chunk, start)
                        seen.add(name)
                self.progress()
                if set(self.regions) <= seen:
                    break
                # progress() added regions: they may begin in this same chunk
        except (Unrecognized, struct.error, ValueError, IndexError):
            self.failed = True

    def finish(self) -> None:
        self.ended = True
        if not self.failed:
            try:
                self.progress()
            except (Unrecognized, struct.error, ValueError, IndexError):
                self.failed = True

    @property
    def complete(self) -> bool:
        """Every region this format needs has been collected."""
        return all(r.complete for r in self.regions.values())

    @property
    def settled(self) -> bool:
        """Nothing more in the stream can change this inspector's verdict."""
        if self.failed or self.ended:
            return True
        if any(r.missed for r in self.regions.values()):
            return True
        return self.complete

    @property
    def matches(self) -> bool:
        if self.failed:
            return False
        try:
            return self.match()
        except (Unrecognized, struct.error, ValueError, IndexError):
            return False

    @property
    def virtual_size(self) -> int:
        try:
            return self.size()
        except (struct.error, ValueError, IndexError):
            return 0


class Raw(FormatInspector):
    """Anything no other inspector claims."""

    name = "raw"

    def match(self) -> bool:
        return True

    def size(self) -> int:
        return self.position


class Qcow2(FormatInspector):
    """QEMU qcow2 (v2, v3): no backing file, no external data file, no unknown
    incompatible features (qemu's docs/interop/qcow2.txt)."""

    name = "qcow2"
    MAGIC = b"QFI\xfb"
    # Incompatible feature bits known here: dirty, corrupt, external data file, compression.
    KNOWN_INCOMPAT = 0b1111
    DATA_FILE_BIT = 1 << 2

    def setup(self) -> None:
        self.add("header", Region(0, 512))

    def _fields(self) -> tuple[int, int, int, int, int]:
        """version, backing file offset, backing file size, cluster bits, size."""
        version, bf_off, bf_size, cluster_bits, size = struct.unpack(">IQIIQ", self.region("header").data[4:32])
        return version, bf_off, bf_size, cluster_bits, size

    def match(self) -> bool:
        header = self.region("header")
        return header.complete and bytes(header.data[:4]) == self.MAGIC

    def checks(self) -> list[str]:
        version, bf_off, bf_size, cluster_bits, _ = self._fields()
        (incompat,) = struct.unpack(">Q", self.region("header").data[72:80])
        failed = []
        if bf_off or bf_size:
            failed.append("backing_file")
        if version == 3 and incompat & self.DATA_FILE_BIT:
            failed.append("data_file")
        if version not in (2, 3) or (version == 3 and incompat & ~self.KNOWN_INCOMPAT):
            failed.append("unknown_features")
        if not 9 <= cluster_bits <= 21:
            failed.append("cluster_size")
        return failed

    def size(self) -> int:
        return self._fields()[4] if self.match() else 0


class QED(FormatInspector):
    """QEMU's QED: recognized, never allowed (nothing uses it; it has backing files)."""

    name = "qed"

    def setup(self) -> None:
        self.add("header", Region(0, 512))

    def match(self) -> bool:
        header = self.region("header")
        return header.complete and bytes(header.data[:4]) == b"QED\x00"

    def checks(self) -> list[str]:
        return ["banned"]


class VHD(FormatInspector):
    """Microsoft VHD (QEMU's vpc) with its footer copy at the start."""

    name = "vhd"

    def setup(self) -> None:
        self.add("header", Region(0, 512))

    def match(self) -> bool:
        return bytes(self.region("header").data[:8]) == b"conectix"

    def size(self) -> int:
        header = self.region("header")
        if not header.complete or not self.match():
            return 0
        (size,) = struct.unpack(">Q", header.data[40:48])
        return int(size)


class VHDX(FormatInspector):
    """Microsoft VHDX: the identifier, the region table (at 192 KiB), the
    metadata region it points to, and in it the virtual disk size item."""

    name = "vhdx"
    METAREGION = "8B7CA206-4790-4B9A-B8FE-575F050F886E"
    VIRTUAL_DISK_SIZE = "2FA54224-CD1B-4876-B211-5DBED83BF4B8"
    MAX_ENTRIES = 2047

    def setup(self) -> None:
        self.add("ident", Region(0, 32))
        self.add("regions", Region(192 * KiB, 64 * KiB))

    @staticmethod
    def _guid(raw: bytes | bytearray) -> str:
        a, b, c, *rest = struct.unpack("<IHHBBBBBBBB", raw)
        tail = "".join(f"{x:02X}" for x in rest)
        return f"{a:08X}-{b:04X}-{c:04X}-{tail[:4]}-{tail[4:]}"

    def progress(self) -> None:
        if self.region("ident").complete and not self.match():
            raise Unrecognized
        if self.region("regions").complete and "metadata" not in self.regions:
            table = self.region("regions").data
            signature, _, count, _ = struct.unpack("<IIII", table[:16])
            if signature != 0x69676572 or count > self.MAX_ENTRIES:  # "regi"
                raise Unrecognized
            for i in range(count):
                entry = table[16 + i * 32 : 48 + i * 32]
                if self._guid(entry[:16]) == self.METAREGION:
                    offset, _length, _required = struct.unpack("<QII", entry[16:32])
                    # the table: a 32-byte header and at most 2047 32-byte entries
                    self.add("metadata", Region(offset, 2048 * 32))
                    break
        if "metadata" in self.regions and "vds" not in self.regions:
            meta = self.region("metadata")
            if len(meta.data) < 32:
                return
            signature, _, count = struct.unpack("<8sHH", meta.data[:12])
            if signature != b"metadata" or count > self.MAX_ENTRIES:
                raise Unrecognized
            if len(meta.data) < 32 + count * 32:
                return
            for i in range(count):
                entry = meta.data[32 + i * 32 : 64 + i * 32]
                if self._guid(entry[:16]) == self.VIRTUAL_DISK_SIZE:
                    item_offset, item_length, _ = struct.unpack("<III", entry[16:28])
                    meta.length = len(meta.data)  # the rest of the table is not needed
                    self.add("vds", Region(meta.offset + item_offset, min(item_length, 8)))
                    break

    def match(self) -> bool:
        return bytes(self.region("ident").data[:8]) == b"vhdxfile"

    def size(self) -> int:
        vds = self.regions.get("vds")
        if vds is None or not vds.complete or len(vds.data) < 8:
            return 0
        (size,) = struct.unpack("<Q", vds.data[:8])
        return int(size)


class VMDK(FormatInspector):
    """VMware VMDK: only the single-file sparse kinds (``monolithicSparse``,
    ``streamOptimized``): a ``KDMV`` header, an embedded text descriptor at
    sector 1 that names exactly one SPARSE extent (the file itself) and no
    parent disk, and for a stream-optimized file with its grain directory at
    the end, a footer that agrees with the header."""

    name = "vmdk"
    DESC_OFFSET = 0x200
    DESC_MAX = (1 << 20) - 1
    GD_AT_END = 0xFFFFFFFFFFFFFFFF
    ALLOWED_TYPES = ("monolithicsparse", "streamoptimized")
    ACCESS = ("rw", "rdonly", "noaccess")
    MARKER_EOS, MARKER_FOOTER = 0, 3

    def setup(self) -> None:
        self.kind = ""  # "sparse": KDMV header; "text": a bare descriptor file
        self.create_type = ""
        self.descriptor: str | None = None
        self.footer_expected = False  # grain directory at the end: a footer follows
        self.tail = bytearray()  # the last 1536 bytes, for the footer
        self._text_checked = 0  # how much of a text descriptor is known to be text
        self.add("header", Region(0, 512))

    def _sparse_header(self, raw: bytes | bytearray) -> tuple[bytes, int, int, int, int, int]:
        sig, version, _flags, sectors, _grain, desc_sec, desc_num, _gtes, _rgd, gd_offset = struct.unpack(
            "<4sIIQQQQIQQ", raw[:64]
        )
        return sig, version, desc_sec, desc_num, gd_offset, sectors

    def feed(self, chunk: bytes | memoryview, start: int) -> None:
        super().feed(chunk, start)
        if self.kind == "sparse" and self.footer_expected and not self.failed:
            self.tail = (self.tail + chunk[-1536:])[-1536:]

    def progress(self) -> None:
        header = self.region("header")
        if not self.kind and (header.complete or self.ended) and len(header.data) >= 4:
            if bytes(header.data[:4]) == b"KDMV":
                if not header.complete:
                    raise Unrecognized
                sig, version, desc_sec, desc_num, gd_offset, _ = self._sparse_header(header.data)
                if version not in (1, 2, 3) or desc_sec * 512 != self.DESC_OFFSET:
                    raise Unrecognized
                self.kind = "sparse"
                self.footer_expected = gd_offset == self.GD_AT_END
                self.add("descriptor", Region(self.DESC_OFFSET, min(desc_num * 512, self.DESC_MAX)))
            elif self._is_text(header.data):
                # A descriptor file on its own (monolithicFlat, twoGbMaxExtent...):
                # qemu follows its extent lines to other files.
                self.kind = "text"
                text = Region(0, self.DESC_MAX)
                text.data += header.data  # the same bytes, already gone by
                self.add("descriptor", text)
            else:
                raise Unrecognized
        desc = self.regions.get("descriptor")
        if desc is not None and self.descriptor is None:
            if self.kind == "text":
                if not self._is_text(desc.data[self._text_checked :]):
                    raise Unrecognized
                self._text_checked = len(desc.data)
            if desc.complete or self.ended:
                self._parse_descriptor(bytes(desc.data))

    @staticmethod
    def _is_text(data: bytes | bytearray) -> bool:
        try:
            text = bytes(data).decode("ascii")
        except UnicodeDecodeError:
            return False
        return all(ch.isprintable() or ch.isspace() for ch in text)

    def _parse_descriptor(self, raw: bytes) -> None:
        raw = raw.split(b"\x00", 1)[0]
        try:
            text = raw.decode("ascii").lower()
        except UnicodeDecodeError:
            raise Unrecognized from None
        self.descriptor = text
        marker = 'createtype="'
        at = text.find(marker)
        end = text.find('"', at + len(marker)) if at >= 0 else -1
        if at < 0 or end < 0 or end - at - len(marker) >= 64:
            self.create_type = "formatnotfound"
        else:
            self.create_type = text[at + len(marker) : end]

    @property
    def complete(self) -> bool:
        if self.kind == "text":  # a descriptor file (often under 512 bytes) is read to its end
            return self.descriptor is not None
        return super().complete

    @property
    def settled(self) -> bool:
        # the footer lives at the end of the stream
        return super().settled and (self.ended or not self.footer_expected)

    def match(self) -> bool:
        if self.kind == "sparse":
            return True
        return self.kind == "text" and self.descriptor is not None and self.create_type != "formatnotfound"

    def checks(self) -> list[str]:
        if self.descriptor is None:
            return ["descriptor"]
        if self.create_type not in self.ALLOWED_TYPES or self.kind != "sparse":
            return ["descriptor"]
        extents: list[str] = []
        for line in (x.strip() for x in self.descriptor.split("\n")):
            if not line or line.startswith("#") or line.startswith("ddb"):
                continue
            key = line.split("=", 1)[0]
            if "=" in line and " " not in key:
                # a parent disk is a backing file by another name
                if key == "parentfilenamehint":
                    return ["descriptor"]
                if key == "parentcid" and line.split("=", 1)[1].strip().strip('"') != "ffffffff":
                    return ["descriptor"]
                continue
            if line.split(" ")[0] in self.ACCESS:
                extents.append(line)
                continue
            return ["descriptor"]  # a line this inspector does not understand
        # exactly one extent, sparse, naming no path: the file itself
        if len(extents) != 1:
            return ["descriptor"]
        fields = extents[0].split()
        if "/" in extents[0] or "\\" in extents[0] or len(fields) < 4 or fields[2] != "sparse":
            return ["descriptor"]
        if self.footer_expected:
            return self._footer_checks()
        return []

    def _footer_checks(self) -> list[str]:
        if len(self.tail) < 1536:
            return ["footer"]
        header = self._sparse_header(self.region("header").data)
        footer = self._sparse_header(self.tail[512:1024])
        # signature, version, descriptor and capacity agree; no further footer
        if header[:4] != footer[:4] or header[5] != footer[5] or footer[4] == self.GD_AT_END:
            return ["footer"]
        pad = bytes(496)
        _, size, kind, zero = struct.unpack("<QII496s", self.tail[:512])
        if size != 0 or kind != self.MARKER_FOOTER or zero != pad:
            return ["footer"]
        value, size, kind, zero = struct.unpack("<QII496s", self.tail[1024:])
        if value != 0 or size != 0 or kind != self.MARKER_EOS or zero != pad:
            return ["footer"]
        return []

    def size(self) -> int:
        if self.kind != "sparse" or self.create_type not in self.ALLOWED_TYPES:
            return 0
        return int(self._sparse_header(self.region("header").data)[5]) * 512


class VDI(FormatInspector):
    """VirtualBox VDI."""

    name = "vdi"

    def setup(self) -> None:
        self.add("header", Region(0, 512))

    def match(self) -> bool:
        header = self.region("header")
        return header.complete and struct.unpack("<I", header.data[0x40:0x44])[0] == 0xBEDA107F

    def size(self) -> int:
        return int(struct.unpack("<Q", self.region("header").data[0x170:0x178])[0]) if self.match() else 0


class ISO(FormatInspector):
    """ISO 9660 / UDF: a volume descriptor after the 32 KiB system area."""

    name = "iso"

    def setup(self) -> None:
        self.add("system_area", Region(0, 32 * KiB))
        self.add("header", Region(32 * KiB, 2 * KiB))

    def match(self) -> bool:
        return self.complete and bytes(self.region("header").data[1:6]) in (b"CD001", b"NSR02", b"NSR03")

    def size(self) -> int:
        if not self.match():
            return 0
        header = self.region("header").data
        if header[0] != 1:  # not a primary volume descriptor
            return 0
        (block,) = struct.unpack("<H", header[128:130])
        (blocks,) = struct.unpack("<L", header[80:84])
        return int(block) * int(blocks)


class GPT(FormatInspector):
    """A partitioned disk (MBR, or GPT behind its protective MBR). Its table
    must be plain: boot flags 0x00/0x80, at least one partition, and a
    protective GPT entry that starts at LBA 1 and stands alone."""

    name = "gpt"

    def setup(self) -> None:
        self.add("mbr", Region(0, 512))

    def match(self) -> bool:
        mbr = self.region("mbr")
        if not mbr.complete:
            return False
        # a FAT file system's boot sector carries the same signature
        is_fat = mbr.data[0x10] == 2 and mbr.data[0x15] == 0xF8
        return struct.unpack("<H", mbr.data[510:512])[0] == 0xAA55 and not is_fat

    def checks(self) -> list[str]:
        mbr = self.region("mbr").data
        used: list[int] = []
        gpt = False
        for i in range(4):
            boot, sh, ss, st, ostype, _eh, _es, _et, start_lba, _n = struct.unpack(
                "<B3BB3BII", mbr[446 + 16 * i : 462 + 16 * i]
            )
            if boot not in (0x00, 0x80):
                return ["mbr"]
            if ostype != 0:
                used.append(i)
            if ostype == 0xEE:
                gpt = True
                if (sh, ss, st) != (0x00, 0x02, 0x00) or start_lba != 1:
                    return ["mbr"]
        if not used or (gpt and used != [0]):
            return ["mbr"]
        return []

    def size(self) -> int:
        return self.position


class LUKS(FormatInspector):
    """LUKS v1 encrypted disk."""

    name = "luks"

    def setup(self) -> None:
        self.add("header", Region(0, 592))

    def match(self) -> bool:
        return bytes(self.region("header").data[:6]) == b"LUKS\xba\xbe"

    def checks(self) -> list[str]:
        (version,) = struct.unpack(">H", self.region("header").data[6:8])
        return [] if version == 1 else ["version"]

    def size(self) -> int:
        (payload_offset,) = struct.unpack(">I", self.region("header").data[104:108])
        return max(0, self.position - int(payload_offset) * 512)


ALL = (Qcow2, QED, VHD, VHDX, VMDK, VDI, ISO, GPT, LUKS)
INSPECTABLE = frozenset({"raw", *(cls.name for cls in ALL)})
