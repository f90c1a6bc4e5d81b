"""The host's image cache with the real qemu-img on small files (no root, no QEMU).

Fetched once however many ask, checked (size, hash, the format it claims, no
backing file), converted where the driver needs it, complete or absent, and
removed when unused by the cache's age and size rules.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onestack.compute.virt.base import ImageRef, VirtError
from onestack.compute.virt.qemu.imagecache import GRACE, ImageCache
from onestack.host.base import linux_host

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

MiB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def image(tmp_path: Path, fmt: str = "qcow2", size: str = "16M",
          backing: Path | None = None) -> bytes:
    path = tmp_path / f"src.{fmt}"
    path.unlink(missing_ok=True)
    extra = ["-b", str(backing), "-F", "qcow2"] if backing else []
    qemu_img("create", "-q", "-f", fmt, *extra, str(path), size)
    return path.read_bytes()


def ref(image_id: str, data: bytes, disk_format: str = "qcow2", **kw: object) -> ImageRef:
    fields: dict[str, object] = {"size": len(data), "os_hash_algo": "sha512",
                                 "os_hash_value": hashlib.sha512(data).hexdigest(),
                                 "checksum": hashlib.md5(data).hexdigest()}
    fields.update(kw)
    return ImageRef(image_id, disk_format, **fields)  # type: ignore[arg-type]


class Source:
    """The image service's data, counting how often it is opened."""

    def __init__(self, data: bytes, chunk: int = 1 << 16) -> None:
        self.data = data
        self.chunk = chunk
        self.opened = 0

    def __call__(self) -> AsyncIterator[bytes]:
        self.opened += 1
        return self._gen()

    async def _gen(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.chunk):
            await asyncio.sleep(0)
            yield self.data[i:i + self.chunk]


def cache(tmp_path: Path, clock: Clock | None = None, **kw: object) -> ImageCache:
    params: dict[str, object] = {"max_bytes": 1 << 40, "min_age": 3600.0}
    params.update(kw)
    return ImageCache(linux_host(tmp_path / "run"), tmp_path / "_base",
                      clock=clock or Clock(), **params)  # type: ignore[arg-type]


def test_fetched_once_and_shared(tmp_path: Path) -> None:
    data = image(tmp_path)
    c = cache(tmp_path)
    src = Source(data)

    async def go() -> None:
        got = await asyncio.gather(*(c.fetch(ref("img-1", data), src) for _ in range(3)))
        assert len({g.path for g in got}) == 1
        first = got[0]
        assert (first.format, first.virtual_size) == ("qcow2", 16 * MiB)
        assert first.path == tmp_path / "_base" / hashlib.sha1(b"img-1").hexdigest()
        assert first.path.read_bytes() == data
        assert await c.fetch(ref("img-1", data), src) == first

    asyncio.run(go())
    assert src.opened == 1
    assert sorted(p.name for p in (tmp_path / "_base").iterdir()) == sorted(
        [hashlib.sha1(b"img-1").hexdigest(), hashlib.sha1(b"img-1").hexdigest() + ".json"])


@pytest.mark.parametrize("case, message", [
    ("size", "got .* bytes of data, the image has"),
    ("sha512", "does not match its sha512 hash"),
    ("md5", "does not match its checksum"),
    ("format", "is not a qcow2 image|could not be prepared"),
    ("backing", "has a backing file; refused"),
    ("kind", "disk format 'ploop' cannot be run"),
])
def test_bad_data_is_refused_and_nothing_kept(tmp_path: Path, case: str, message: str) -> None:
    data = image(tmp_path)
    c = cache(tmp_path)
    if case == "size":
        r = ref("i", data, size=len(data) + 1)
    elif case == "sha512":
        r = ref("i", data, os_hash_value="0" * 128)
    elif case == "md5":
        r = ref("i", data, checksum="0" * 32)
    elif case == "format":
        data = b"\0" * MiB  # raw bytes declared qcow2
        r = ref("i", data)
    elif case == "backing":
        base = tmp_path / "secret.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", str(base), "1M")
        data = image(tmp_path, backing=base)
        r = ref("i", data)
    else:
        r = ref("i", data, disk_format="ploop")
    with pytest.raises(VirtError, match=message):
        asyncio.run(c.fetch(r, Source(data)))
    assert not (tmp_path / "_base").exists() or list((tmp_path / "_base").iterdir()) == []


def test_formats_are_converted_and_kernels_kept(tmp_path: Path) -> None:
    vmdk = image(tmp_path, "vmdk", "8M")
    raw = b"\x11" * MiB
    kernel = b"\x7fELF" + os.urandom(1000)
    c = cache(tmp_path)
    raw_cache = cache(tmp_path / "r", force_raw=True)
    qcow = image(tmp_path, "qcow2", "4M")

    async def go() -> None:
        got = await c.fetch(ref("vm", vmdk, "vmdk"), Source(vmdk))
        assert (got.format, got.virtual_size) == ("qcow2", 8 * MiB)
        assert got.path.read_bytes()[:4] == b"QFI\xfb"
        got = await c.fetch(ref("raw", raw, "raw"), Source(raw))
        assert (got.format, got.virtual_size) == ("raw", MiB)
        got = await c.fetch(ref("k", kernel, "aki"), Source(kernel))
        assert (got.format, got.path.read_bytes()) == ("raw", kernel)
        got = await raw_cache.fetch(ref("q", qcow, "qcow2"), Source(qcow))
        assert (got.format, got.virtual_size, got.path.stat().st_size) == ("raw", 4 * MiB,
                                                                           4 * MiB)

    asyncio.run(go())


def test_unused_images_go_by_age_then_by_size(tmp_path: Path) -> None:
    clock = Clock()
    c = cache(tmp_path, clock, max_bytes=3 * MiB, min_age=3600.0)
    blobs = {name: bytes([i]) * MiB for i, name in enumerate(["a", "b", "c", "d"])}

    async def fetch(name: str) -> Path:
        return (await c.fetch(ref(name, blobs[name], "raw"), Source(blobs[name]))).path

    async def go() -> None:
        paths = {}
        for name in "abcd":
            paths[name] = await fetch(name)
            clock.now += 10
        # over the size (4 MiB of 3), but everything is younger than the grace
        assert c.prune(set()) == []
        clock.now += GRACE
        # the oldest unused one goes until the cache fits; a used one stays
        assert c.prune({str(paths["a"])}) == [paths["b"]]
        clock.now += 3600
        assert sorted(c.prune({str(paths["a"])})) == sorted([paths["c"], paths["d"]])
        # a fetch touches: a used-again image is young again
        await fetch("a")
        clock.now += 100
        assert c.prune(set()) == []
        assert [e.path for e in c.entries()] == [paths["a"]]

    asyncio.run(go())


def test_temporaries_of_a_crash_are_swept(tmp_path: Path) -> None:
    c = cache(tmp_path)
    (tmp_path / "_base").mkdir()
    (tmp_path / "_base" / "abc.part-1234").write_bytes(b"x")
    assert c.sweep_partial() == 1
    assert list((tmp_path / "_base").iterdir()) == []
