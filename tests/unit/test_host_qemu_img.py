"""qemu-img command lines: the format always stated, never probed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from onestack.host import qemu_img
from onestack.host.errors import HostError

P = Path("/i/a.qcow2")


def test_overlay_states_both_formats() -> None:
    assert qemu_img.create_argv(P, "qcow2", backing=Path("/i/base.raw"), backing_fmt="raw") == [
        "qemu-img", "create", "-q", "-f", "qcow2", "-b", "/i/base.raw", "-F", "raw", "/i/a.qcow2"]
    assert qemu_img.create_argv(P, "qcow2", 10 << 30, backing=Path("/b"), backing_fmt="qcow2",
                                options=["cluster_size=65536"])[-3:] == [
        "cluster_size=65536", "/i/a.qcow2", str(10 << 30)]
    with pytest.raises(HostError, match="never probed"):
        qemu_img.create_argv(P, "qcow2", backing=Path("/b"))
    with pytest.raises(HostError, match="size or a backing"):
        qemu_img.create_argv(P, "qcow2")


def test_convert_resize_info() -> None:
    assert qemu_img.convert_argv(Path("/a.raw"), "raw", P, "qcow2", compress=True) == [
        "qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", "/a.raw", "/i/a.qcow2"]
    assert qemu_img.resize_argv(P, "qcow2", 1 << 30, shrink=True) == [
        "qemu-img", "resize", "-q", "-f", "qcow2", "--shrink", "/i/a.qcow2", str(1 << 30)]
    assert qemu_img.info_argv(P, "qcow2", force_share=True, limited=False) == [
        "qemu-img", "info", "-f", "qcow2", "--output=json", "--force-share", "/i/a.qcow2"]
    limited = qemu_img.info_argv(P, "vmdk")
    if shutil.which("prlimit"):  # a crafted image cannot take more than 1 GiB / 30 s
        assert limited[:4] == ["prlimit", "--as=1073741824", "--cpu=30", "--"]
    assert limited[-5:] == ["info", "-f", "vmdk", "--output=json", "/i/a.qcow2"]


@pytest.mark.parametrize("call", [
    lambda: qemu_img.create_argv(P, "iso", 1),
    lambda: qemu_img.create_argv(P, "qcow2", 0),
    lambda: qemu_img.convert_argv(P, "auto", P, "raw"),
    lambda: qemu_img.resize_argv(P, "raw", -1),
    lambda: qemu_img.info_argv(P, ""),
])
def test_bad_arguments(call: object) -> None:
    with pytest.raises(HostError):
        call()  # type: ignore[operator]


def test_info_is_parsed() -> None:
    doc = {"virtual-size": 134217728, "filename": "/i/a.qcow2", "cluster-size": 65536,
           "format": "qcow2", "actual-size": 200704, "dirty-flag": False,
           "backing-filename": "base.qcow2", "full-backing-filename": "/i/base.qcow2",
           "backing-filename-format": "qcow2"}
    info = qemu_img.parse_info(json.dumps(doc))
    assert (info.format, info.virtual_size, info.actual_size, info.backing_file,
            info.backing_format, info.cluster_size, info.dirty) == (
        "qcow2", 134217728, 200704, "/i/base.qcow2", "qcow2", 65536, False)
    assert qemu_img.parse_info(json.dumps([doc, {"format": "qcow2", "virtual-size": 1}])) == info
    with pytest.raises(HostError, match="no JSON"):
        qemu_img.parse_info("qemu-img: error")


async def _roundtrip(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    await qemu_img.create(base, "raw", 1 << 20)
    over = tmp_path / "over.qcow2"
    await qemu_img.create_overlay(over, base, "raw", size=2 << 20)
    info = await qemu_img.info(over, "qcow2")
    assert (info.format, info.virtual_size, info.backing_format) == ("qcow2", 2 << 20, "raw")
    await qemu_img.resize(over, "qcow2", 4 << 20)
    assert (await qemu_img.info(over, "qcow2")).virtual_size == 4 << 20
    out = tmp_path / "flat.raw"
    await qemu_img.convert(over, "qcow2", out, "raw")
    assert out.stat().st_size == 4 << 20
    with pytest.raises(HostError, match="exited 1"):  # a raw file is not read as qcow2
        await qemu_img.info(base, "qcow2")


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_real_qemu_img_without_blocking_the_loop(tmp_path: Path) -> None:
    import asyncio

    asyncio.run(_roundtrip(tmp_path))


def test_copy_is_complete_or_absent(tmp_path: Path) -> None:
    import asyncio

    src = tmp_path / "o.qcow2"
    qemu_img.run(qemu_img.create_argv(src, "qcow2", 1 << 20))
    asyncio.run(qemu_img.copy(src, tmp_path / "c.qcow2"))
    assert (tmp_path / "c.qcow2").read_bytes() == src.read_bytes()
    with pytest.raises(HostError):
        asyncio.run(qemu_img.copy(tmp_path / "missing", tmp_path / "d.qcow2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.qcow2", "o.qcow2"]
