"""An instance's local disks: made from the spec, copied, grown, snapshotted.

The root disk is a qcow2 overlay on the cached base image (grown to the
flavor's ``root_gb``; the image's own size when that is 0); ephemeral and
swap disks are blank qcow2 images of the flavor's sizes; the config drive is
an ISO 9660 image labelled ``config-2`` of the spec's files. Everything goes
through the host layer (``qemu-img``, ``genisoimage``), formats always
stated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from onestack.compute.virt.base import InstanceSpec, VirtError
from onestack.compute.virt.qemu import layout
from onestack.compute.virt.qemu.layout import InstanceFiles
from onestack.host.base import Host

GiB = 1 << 30
MiB = 1 << 20
CONFIG_DRIVE_LABEL = "config-2"


async def root_size(host: Host, spec: InstanceSpec, image_size: int | None = None
                    ) -> int | None:
    """The root disk's size in bytes (None: the image's), refusing a flavor
    whose disk is smaller than the image (Nova's FlavorDiskSmallerThanImage).
    ``image_size``: the image's virtual size when known (the cache's record
    of it), else ``qemu-img info`` asks."""
    if not spec.root_gb or spec.image_path is None:
        return None
    if image_size is None:
        info = await host.images.info(spec.image_path, spec.image_format, force_share=True)
        image_size = info.virtual_size
    want = spec.root_gb * GiB
    if want < image_size:
        raise VirtError(f"Flavor's disk is too small for requested image. Flavor disk is "
                        f"{want} bytes, image is {image_size} bytes.")
    return want


async def make_root(host: Host, spec: InstanceSpec, path: Path,
                    image_size: int | None = None) -> None:
    """An overlay on the spec's image, of the flavor's size."""
    if spec.image_path is None:
        return
    size = await root_size(host, spec, image_size)
    await host.images.create_overlay(path, spec.image_path, spec.image_format, size=size)


async def make_local(host: Host, spec: InstanceSpec, files: InstanceFiles, *,
                     image_size: int | None = None) -> None:
    """Every local disk the spec asks for, made at once (in parallel)."""
    work = []
    if spec.image_path is not None:
        work.append(make_root(host, spec, files / layout.ROOT, image_size))
    if spec.ephemeral_gb:
        work.append(host.images.create(files / layout.EPHEMERAL, "qcow2", spec.ephemeral_gb * GiB))
    if spec.swap_mb:
        work.append(host.images.create(files / layout.SWAP, "qcow2", spec.swap_mb * MiB))
    if spec.config_drive is not None:
        work.append(make_config_drive(host, spec, files))
    await gather(work)


async def make_config_drive(host: Host, spec: InstanceSpec, files: InstanceFiles) -> None:
    if spec.config_drive is not None:
        await host.images.make_iso(files / layout.CONFIG, CONFIG_DRIVE_LABEL, spec.config_drive)


async def gather(work: list) -> None:  # type: ignore[type-arg]
    """Runs ``work`` at once; waits for all of it, then raises the first failure."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def grow(host: Host, spec: InstanceSpec, path: Path) -> None:
    """The root disk grown to the (new) flavor's size; never shrunk (Nova refuses)."""
    if not spec.root_gb or spec.image_path is None:
        return
    have = (await host.images.info(path, "qcow2")).virtual_size
    want = spec.root_gb * GiB
    if want < have:
        raise VirtError("Unable to resize disk down.")
    if want > have:
        await host.images.resize(path, "qcow2", want)


async def snapshot(host: Host, src: Path, dest: Path) -> None:
    """A standalone qcow2 of ``src`` and its backing chain (the guest is
    paused or stopped: ``-U`` reads it while QEMU holds it); nothing at
    ``dest`` if it fails."""
    try:
        await host.images.convert(src, "qcow2", dest, "qcow2", force_share=True)
    except BaseException:
        await asyncio.to_thread(dest.unlink, True)
        raise
