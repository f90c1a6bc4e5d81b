"""The disk-format inspector on crafted and real images: each malicious sample
is refused with Glance's message, each good one passes with its virtual size."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from onestack.image.formats import HEADER_BYTES, FormatError, Inspector, detect, parse_qcow2
from tests.unit.image_samples import (
    GiB,
    make_fat_boot_sector,
    make_iso,
    make_luks,
    make_mbr,
    make_qcow2,
    make_qed,
    make_vdi,
    make_vhd,
    make_vhdx,
    make_vmdk,
    make_vmdk_text,
    partition,
    protective_gpt,
    vmdk_descriptor,
    vmdk_footer,
)

__all__ = ["GiB", "make_qcow2"]  # other tests import them from here

SAFETY = "Image failed safety checks"


def inspect(data: bytes, fmt: str, chunk: int = 4096, container: str = "bare") -> Inspector:
    ins = Inspector(fmt, container)
    for i in range(0, len(data), chunk):
        ins.feed(data[i : i + chunk])
    ins.finish(len(data))
    return ins


def refused(data: bytes, fmt: str, **kw: object) -> FormatError:
    with pytest.raises(FormatError) as info:
        inspect(data, fmt, **kw)  # type: ignore[arg-type]
    return info.value


def unsafe(data: bytes, fmt: str, *checks: str, **kw: object) -> None:
    err = refused(data, fmt, **kw)
    assert str(err) == SAFETY
    assert err.failures == checks


def mismatch(data: bytes, declared: str, found: str, **kw: object) -> None:
    err = refused(data, declared, **kw)
    assert str(err) == f"Image disk_format {declared} does not match stream data {found}"


# --------------------------------------------------------------------------- qcow2


def test_qcow2_virtual_size_from_header() -> None:
    ins = inspect(make_qcow2(5 * GiB), "qcow2")
    assert ins.virtual_size == 5 * GiB and ins.detected == "qcow2"


def test_qcow2_v2_is_accepted() -> None:
    assert inspect(make_qcow2(GiB, version=2), "qcow2").virtual_size == GiB


def test_qcow2_with_backing_file_is_refused() -> None:
    unsafe(make_qcow2(backing_file=b"/etc/shadow"), "qcow2", "backing_file")


def test_qcow2_with_external_data_file_is_refused() -> None:
    unsafe(make_qcow2(incompatible=1 << 2), "qcow2", "data_file")


@pytest.mark.parametrize("bit", [4, 5, 40, 63])
def test_qcow2_with_unknown_incompatible_feature_is_refused(bit: int) -> None:
    unsafe(make_qcow2(incompatible=1 << bit), "qcow2", "unknown_features")


def test_qcow2_known_features_and_versions() -> None:
    assert inspect(make_qcow2(incompatible=0b1011), "qcow2").virtual_size == GiB  # dirty, corrupt, compression
    unsafe(make_qcow2(version=4), "qcow2", "unknown_features")
    unsafe(make_qcow2(cluster_bits=30), "qcow2", "cluster_size")


def test_qcow2_declared_raw_is_refused() -> None:
    mismatch(make_qcow2(), "raw", "qcow2")


def test_qcow2_with_backing_file_declared_raw_fails_the_safety_check_first() -> None:
    unsafe(make_qcow2(backing_file=b"/etc/shadow"), "raw", "backing_file")


def test_raw_declared_qcow2_is_refused() -> None:
    mismatch(b"\x01" * 100_000, "qcow2", "raw")


def test_short_data_declared_qcow2_is_refused() -> None:
    mismatch(b"QFI", "qcow2", "raw")
    mismatch(b"QFI\xfb" + bytes(100), "qcow2", "raw")  # a header cut short


def test_the_inspector_decides_as_soon_as_it_has_the_headers() -> None:
    ins = Inspector("raw")
    with pytest.raises(FormatError, match="does not match stream data qcow2"):
        ins.feed(make_qcow2(total=HEADER_BYTES))


# --------------------------------------------------------------------------- VMDK


def test_vmdk_monolithic_sparse_is_accepted() -> None:
    ins = inspect(make_vmdk(sectors=2048), "vmdk")
    assert ins.detected == "vmdk" and ins.virtual_size == 2048 * 512


def test_vmdk_stream_optimized_with_its_footer_is_accepted() -> None:
    data = make_vmdk(vmdk_descriptor("streamOptimized"), footer=vmdk_footer())
    assert inspect(data, "vmdk").virtual_size == 20480 * 512
    assert inspect(data, "vmdk", chunk=1000).virtual_size == 20480 * 512


def test_vmdk_monolithic_flat_descriptor_naming_a_host_file_is_refused() -> None:
    """CVE-2024-32498: a text descriptor whose extent is /etc/shadow."""
    data = make_vmdk_text()
    unsafe(data, "vmdk", "descriptor")
    unsafe(data, "raw", "descriptor")
    unsafe(data, "qcow2", "descriptor", container="ova")
    # ... and without a slash in the name: still a flat extent in another file
    unsafe(make_vmdk_text(extent='RW 20480 FLAT "other-image" 0'), "vmdk", "descriptor")


def test_a_bare_descriptor_is_refused_even_when_it_claims_to_be_sparse() -> None:
    unsafe(make_vmdk_text("monolithicSparse", 'RW 20480 SPARSE "disk.vmdk"'), "vmdk", "descriptor")


@pytest.mark.parametrize(
    "descriptor",
    [
        # a second extent in another file
        vmdk_descriptor(extents=('RW 20480 SPARSE "disk.vmdk"', 'RW 20480 FLAT "victim" 0')),
        # the one extent is flat, in another file
        vmdk_descriptor(extents=('RW 20480 FLAT "victim" 0',)),
        # a path in the extent
        vmdk_descriptor(extents=('RW 20480 SPARSE "/etc/shadow"',)),
        vmdk_descriptor(extents=('RW 20480 SPARSE "../../etc/shadow"',)),
        # no extent at all
        vmdk_descriptor(extents=()),
        # a parent disk (a backing file by another name)
        vmdk_descriptor(extra=('parentFileNameHint="/etc/shadow"',)),
        vmdk_descriptor(extra=("parentCID=12345678",)),
        # another sub-format
        vmdk_descriptor("twoGbMaxExtentSparse"),
        vmdk_descriptor("vmfs"),
        vmdk_descriptor(create_type="x" * 80),
        # a line nobody understands
        vmdk_descriptor(extra=("include /etc/shadow",)),
    ],
)
def test_vmdk_sparse_with_external_extents_or_parents_is_refused(descriptor: str) -> None:
    unsafe(make_vmdk(descriptor), "vmdk", "descriptor")


def test_vmdk_without_createtype_is_refused() -> None:
    unsafe(make_vmdk("# Disk DescriptorFile\nversion=1\n"), "vmdk", "descriptor")


@pytest.mark.parametrize(
    "footer",
    [
        vmdk_footer(sectors=999),  # disagrees with the header
        vmdk_footer(gd_offset=0xFFFFFFFFFFFFFFFF),  # points at yet another footer
        vmdk_footer(marker_type=2),
        vmdk_footer(eos_type=1),
        b"\x00" * 100,  # cut short
    ],
)
def test_vmdk_footer_must_agree_with_the_header(footer: bytes) -> None:
    unsafe(make_vmdk(vmdk_descriptor("streamOptimized"), footer=footer), "vmdk", "footer")


def test_malformed_vmdk_headers_are_not_vmdk() -> None:
    data = bytearray(make_vmdk())
    data[28:36] = (5).to_bytes(8, "little")  # the descriptor is not at sector 1
    mismatch(bytes(data), "vmdk", "raw")
    mismatch(make_vmdk(version=7), "vmdk", "raw")
    mismatch(b"KDMV" + bytes(100), "vmdk", "raw")


def test_vmdk_declared_raw_is_refused() -> None:
    mismatch(make_vmdk(), "raw", "vmdk")


# --------------------------------------------------------------------------- VHD, VHDX, VDI


def test_vhd_claims() -> None:
    assert inspect(make_vhd(3 * GiB), "vhd").virtual_size == 3 * GiB
    mismatch(make_vhd(), "raw", "vhd")
    mismatch(make_vhd(), "qcow2", "vhd")
    mismatch(bytes(64 * 1024), "vhd", "raw")  # a fixed VHD (footer only at the end) is not inspectable
    err = refused(b"conectix" + bytes(100), "vhd")  # the footer copy cut short
    assert str(err) == "Incomplete file cannot be safety checked"


def test_vhdx_claims() -> None:
    data = make_vhdx(7 * GiB)
    ins = inspect(data, "vhdx", chunk=65536)
    assert ins.detected == "vhdx" and ins.virtual_size == 7 * GiB
    assert inspect(data, "vhdx", chunk=3000).virtual_size == 7 * GiB
    mismatch(data, "raw", "vhdx")
    mismatch(make_vhdx(region_signature=b"nope"), "vhdx", "raw")  # only the identifier: not VHDX
    err = refused(b"vhdxfile" + bytes(1000), "vhdx")  # the identifier, and nothing after it
    assert str(err) == "Incomplete file cannot be safety checked"


def test_vdi_claims() -> None:
    assert inspect(make_vdi(2 * GiB), "vdi").virtual_size == 2 * GiB
    mismatch(make_vdi(), "raw", "vdi")


# --------------------------------------------------------------------------- QED, LUKS


def test_qed_is_never_allowed() -> None:
    mismatch(make_qed(), "qcow2", "qed")
    unsafe(make_qed(), "raw", "banned")
    unsafe(make_qed(), "qcow2", "banned", container="ova")


def test_luks_claims() -> None:
    mismatch(make_luks(), "raw", "luks")
    unsafe(make_luks(version=2), "raw", "version")


# --------------------------------------------------------------------------- ISO


def test_iso_virtual_size_from_its_primary_volume_descriptor() -> None:
    ins = inspect(make_iso(blocks=300), "iso")
    assert ins.detected == "iso" and ins.virtual_size == 300 * 2048


def test_iso_declared_raw_is_refused() -> None:
    mismatch(make_iso(), "raw", "iso")


def test_a_bootable_iso_with_a_partition_table_is_an_iso() -> None:
    hybrid = make_iso(mbr=make_mbr(partition(0x80, 0x17, (0, 1, 1), 0, 400))[:512])
    assert inspect(hybrid, "iso").detected == "iso"


def test_an_iso_that_is_also_qcow2_is_refused() -> None:
    polyglot = make_qcow2(total=512) + make_iso()[512:]
    err = refused(polyglot, "iso")
    assert str(err) == "Multiple formats detected: iso,qcow2"
    err = refused(polyglot, "qcow2")
    assert str(err) == "Multiple formats detected: iso,qcow2"


def test_data_declared_iso_must_be_an_iso() -> None:
    mismatch(bytes(0x9000), "iso", "raw")
    mismatch(make_qcow2(), "iso", "qcow2")


# --------------------------------------------------------------------------- MBR / GPT in raw


def test_a_partitioned_raw_disk_is_accepted_as_raw() -> None:
    disk = make_mbr(partition(), partition(0x00, 0x82, start_lba=200000))
    ins = inspect(disk, "raw")
    assert ins.detected == "gpt" and ins.virtual_size == len(disk)
    assert inspect(protective_gpt(), "raw").detected == "gpt"


@pytest.mark.parametrize(
    "disk",
    [
        make_mbr(partition(boot=0x7F)),  # a boot flag that is neither 0x00 nor 0x80
        make_mbr(),  # a signature, but no partition at all
        protective_gpt(partition()),  # GPT plus a second MBR partition
        make_mbr(partition(0x00, 0xEE, (0, 2, 0), 2, 100)),  # protective entry not at LBA 1
        make_mbr(partition(0x00, 0xEE, (1, 1, 0), 1, 100)),  # nor at CHS 0/2/0
        make_mbr(partition(), partition(0x00, 0xEE, (0, 2, 0), 1, 100)),  # GPT entry not first
    ],
)
def test_raw_disks_with_funny_partition_tables_are_refused(disk: bytes) -> None:
    unsafe(disk, "raw", "mbr")


def test_a_fat_boot_sector_is_not_a_partition_table() -> None:
    assert inspect(make_fat_boot_sector(), "raw").detected == "raw"


# --------------------------------------------------------------------------- other formats and containers


def test_formats_that_cannot_be_inspected_take_unrecognized_data_only() -> None:
    for fmt in ("ami", "ari", "aki", "ploop"):
        ins = inspect(b"\x07" * 5000, fmt)
        assert ins.detected == "raw" and ins.virtual_size is None
        mismatch(make_qcow2(), fmt, "qcow2")


def test_archives_in_other_containers_need_not_match_but_must_be_safe() -> None:
    tar_like = b"disk.vmdk".ljust(512, b"\x00") * 200
    assert inspect(tar_like, "vmdk", container="ova").virtual_size is None
    assert inspect(make_qcow2(), "raw", container="docker").detected == "qcow2"
    unsafe(make_qcow2(backing_file=b"/etc/shadow"), "qcow2", "backing_file", container="ova")


def test_raw_virtual_size_is_the_data_size() -> None:
    ins = inspect(b"\x00" * 70_000, "raw")
    assert ins.virtual_size == 70_000
    assert inspect(b"", "raw").virtual_size is None  # no data, no size


def test_detect() -> None:
    assert detect(make_qcow2()) == "qcow2"
    assert detect(make_vmdk()) == "vmdk"
    assert detect(make_vhdx()) == "vhdx"
    assert detect(make_iso()) == "iso"
    assert detect(make_mbr(partition())) == "gpt"
    assert detect(bytes(1000)) is None


def test_parse_qcow2() -> None:
    hdr = parse_qcow2(make_qcow2(backing_file=b"x"))
    assert hdr is not None and hdr.virtual_size == GiB and hdr.checks() == ["backing_file"]
    assert parse_qcow2(bytes(512)) is None


# --------------------------------------------------------------------------- real files made by qemu-img


qemu_img = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(qemu_img is None, reason="qemu-img not installed")


def _qemu_img(*args: str) -> None:
    assert qemu_img is not None
    subprocess.run([qemu_img, *args], check=True, capture_output=True)


@needs_qemu_img
def test_real_qcow2_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", str(plain), "3G")
    assert inspect(plain.read_bytes(), "qcow2").virtual_size == 3 * GiB
    overlay = tmp_path / "overlay.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(plain), str(overlay))
    unsafe(overlay.read_bytes(), "qcow2", "backing_file")
    datafile = tmp_path / "data.qcow2"
    _qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'ext.raw'}", str(datafile), "1G")
    unsafe(datafile.read_bytes(), "qcow2", "data_file")


@needs_qemu_img
@pytest.mark.parametrize(
    ("fmt", "options", "declared"),
    [
        ("vmdk", [], "vmdk"),
        ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk"),
        ("vpc", [], "vhd"),
        ("vhdx", [], "vhdx"),
        ("vdi", [], "vdi"),
    ],
)
def test_real_files_of_other_formats(tmp_path: Path, fmt: str, options: list[str], declared: str) -> None:
    path = tmp_path / f"disk.{fmt}"
    _qemu_img("create", "-q", "-f", fmt, *options, str(path), "64M")
    ins = inspect(path.read_bytes(), declared, chunk=65536)
    assert ins.detected == declared
    assert ins.virtual_size is not None and 64 << 20 <= ins.virtual_size < (64 << 20) + (1 << 20)
    mismatch(path.read_bytes(), "raw", declared)


@needs_qemu_img
def test_real_monolithic_flat_vmdk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.vmdk"
    _qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(path), "16M")
    unsafe(path.read_bytes(), "vmdk", "descriptor")
    converted = tmp_path / "sparse.vmdk"
    _qemu_img("convert", "-f", "vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized", str(path), str(converted))
    assert inspect(converted.read_bytes(), "vmdk").detected == "vmdk"


# --------------------------------------------------------------------------- robustness


def test_corrupted_samples_are_refused_or_accepted_never_crash() -> None:
    """Random byte flips and truncations of every sample, fed in odd chunk
    sizes: the inspector answers (or raises FormatError), nothing else."""
    import random

    samples = [make_qcow2(), make_vmdk(), make_vmdk(vmdk_descriptor("streamOptimized"), footer=vmdk_footer()),
               make_vmdk_text(), make_vhd(), make_vhdx(), make_vdi(), make_iso(), protective_gpt(),
               make_mbr(partition()), make_luks(), make_qed()]
    rng = random.Random(20261205)
    for data in samples:
        for _ in range(40):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 12)):
                mutated[rng.randrange(min(len(mutated), 300_000))] = rng.randrange(256)
            if rng.random() < 0.3:
                mutated = mutated[: rng.randrange(len(mutated) + 1)]
            fmt = rng.choice(["raw", "qcow2", "vmdk", "vhdx", "iso", "ami"])
            try:
                inspect(bytes(mutated), fmt, chunk=rng.choice([997, 4096, 65536, 1 << 22]),
                        container=rng.choice(["bare", "ova"]))
            except FormatError:
                pass
