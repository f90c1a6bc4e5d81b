"""The disk-format inspector on crafted and real image headers."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from onestack.image.formats import HEADER_BYTES, FormatError, Inspector, detect, parse_qcow2

GiB = 1 << 30


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


def inspect(data: bytes, fmt: str, chunk: int = 4096) -> Inspector:
    ins = Inspector(fmt)
    for i in range(0, len(data), chunk):
        ins.feed(data[i : i + chunk])
    ins.finish(len(data))
    return ins


def test_qcow2_virtual_size_from_header() -> None:
    ins = inspect(make_qcow2(5 * GiB), "qcow2")
    assert ins.finish(256 * 1024) == 5 * GiB


def test_qcow2_v2_is_accepted() -> None:
    assert inspect(make_qcow2(GiB, version=2), "qcow2").virtual_size == GiB


def test_qcow2_with_backing_file_is_rejected() -> None:
    with pytest.raises(FormatError, match="backing file"):
        inspect(make_qcow2(backing_file=b"/etc/shadow"), "qcow2")


def test_qcow2_with_external_data_file_is_rejected() -> None:
    with pytest.raises(FormatError, match="external data file"):
        inspect(make_qcow2(incompatible=1 << 2), "qcow2")


def test_qcow2_with_unknown_incompatible_feature_is_rejected() -> None:
    with pytest.raises(FormatError, match="unknown incompatible"):
        inspect(make_qcow2(incompatible=1 << 40), "qcow2")


def test_qcow2_declared_raw_is_rejected() -> None:
    with pytest.raises(FormatError, match="does not match disk_format raw"):
        inspect(make_qcow2(), "raw")


def test_raw_declared_qcow2_is_rejected() -> None:
    with pytest.raises(FormatError, match="not in qcow2 format"):
        inspect(b"\x01" * 100_000, "qcow2")


def test_short_data_declared_qcow2_is_rejected_at_finish() -> None:
    ins = Inspector("qcow2")
    ins.feed(b"QFI")
    with pytest.raises(FormatError):
        ins.finish(3)


def test_raw_virtual_size_is_size() -> None:
    ins = inspect(b"\x00" * 70_000, "raw")
    assert ins.finish(70_000) == 70_000


def test_inspector_verifies_as_soon_as_it_has_the_header() -> None:
    ins = Inspector("raw")
    with pytest.raises(FormatError):
        ins.feed(make_qcow2(total=HEADER_BYTES))


def test_detect_other_formats() -> None:
    assert detect(b"KDMV" + bytes(100)) == "vmdk"
    assert detect(b"vhdxfile" + bytes(100)) == "vhdx"
    iso = bytearray(0x9000)
    iso[0x8001:0x8006] = b"CD001"
    assert detect(bytes(iso)) == "iso"
    assert detect(bytes(1000)) is None


def test_vmdk_declared_raw_is_rejected() -> None:
    with pytest.raises(FormatError, match="vmdk"):
        inspect(b"KDMV" + bytes(HEADER_BYTES), "raw")


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img not installed")
def test_real_qemu_img_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(plain), "3G"], check=True)
    assert inspect(plain.read_bytes(), "qcow2").virtual_size == 3 * GiB
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(plain), str(overlay)],
        check=True,
    )
    with pytest.raises(FormatError, match="backing file"):
        inspect(overlay.read_bytes(), "qcow2")
    hdr = parse_qcow2(overlay.read_bytes()[:HEADER_BYTES])
    assert hdr is not None and hdr.backing_file_offset > 0
    datafile = tmp_path / "data.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'ext.raw'}",
         str(datafile), "1G"],
        check=True,
    )
    with pytest.raises(FormatError, match="external data file"):
        inspect(datafile.read_bytes(), "qcow2")
