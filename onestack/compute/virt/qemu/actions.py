"""Actions on an instance beyond power: hot-plug, snapshot, rebuild, resize, rescue.

Each is a function of the host's :class:`~machine.Instances` and runs under
the instance's lock (the driver takes it). Each is idempotent: a retried call
finds what the first one did (in the record and on the machine) and finishes
the job instead of doing it twice.

* Hot-plug goes into a free slot the record knows of (so that a suspended
  guest is restored with the very same PCI layout) and waits for the guest to
  let go of an unplugged device (``DEVICE_DELETED``). A stopped instance
  only has its record changed; its next start takes the device as it comes.
* A snapshot of a running guest pauses it around the copy (``qemu-img
  convert -U`` of the root disk and its backing chain into a standalone qcow2).
* Resize on the same host keeps copies of the local disks and the old machine
  in ``resize/`` until confirm (they go) or revert (they come back).
* Rescue boots a fresh overlay of the rescue image, the root disk second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import replace
from pathlib import Path

from onestack.compute.virt.base import (
    BlockDevice,
    InstanceSpec,
    InvalidInstanceState,
    Vif,
    VirtError,
)
from onestack.compute.virt.qemu import disks, domain, layout, taps
from onestack.compute.virt.qemu.machine import Instances
from onestack.host.errors import HostError
from onestack.host.qemu_spec import slot_address

UNPLUG_TIMEOUT = 60.0


# --- interfaces and volumes ------------------------------------------------------------


async def attach_interface(inst: Instances, uuid: str, vif: Vif) -> None:
    record = await inst.need(uuid)
    dev = domain.vif_device(vif)
    if any(n.id == dev for n in record.guest.nics):
        return  # attached already (a retry)
    running = await inst.running(uuid) is not None
    if running and vif.netns != record.guest.netns:
        raise VirtError(f"Port {vif.port_id} is in network namespace {vif.netns!r}; the "
                        f"instance runs in {record.guest.netns!r} and cannot reach it.")
    slot = domain.free_slot(record.guest)
    if slot is None:
        raise VirtError("The instance has no free PCI slot for another device "
                        "(hot-plug slots are made when it starts).")
    model = record.vif_model
    nic = domain.nic(vif, model, slot)
    if running:
        await taps.plug(inst.host, [vif])
        bus, addr = slot_address(record.guest, slot)
        try:
            async with inst.qmp(uuid) as q:
                await q.add_nic(dev, vif.tap, vif.mac, bus=bus, addr=addr, mtu=vif.mtu,
                                model=model)
        except (HostError, VirtError) as exc:
            await taps.unplug(inst.host, vif.netns, [vif.tap])
            raise VirtError(f"Attaching port {vif.port_id} failed: {exc}") from exc
    await inst.save(replace(record, guest=domain.with_device(record.guest, nic),
                            vifs=[*record.vifs, vif]))


async def detach_interface(inst: Instances, uuid: str, port_id: str) -> None:
    record = await inst.need(uuid)
    dev = domain.vif_device(port_id)
    nic = next((n for n in record.guest.nics if n.id == dev), None)
    if nic is None:
        return  # detached already
    if await inst.running(uuid) is not None:
        await _unplug(inst, uuid, dev, "nic")
    await taps.unplug(inst.host, record.guest.netns, [nic.tap])
    await inst.save(replace(record, guest=domain.without_device(record.guest, dev),
                            vifs=[v for v in record.vifs if v.port_id != port_id]))


async def attach_volume(inst: Instances, uuid: str, device: BlockDevice) -> None:
    record = await inst.need(uuid)
    dev = domain.volume_device(device)
    if any(d.id == dev for d in record.guest.disks):
        return
    slot = domain.free_slot(record.guest)
    if slot is None:
        raise VirtError("The instance has no free PCI slot for another device "
                        "(hot-plug slots are made when it starts).")
    disk = domain.volume_disk(device, slot)
    if await inst.running(uuid) is not None:
        bus, addr = slot_address(record.guest, slot)
        try:
            async with inst.qmp(uuid) as q:
                await q.add_disk(dev, device.path, device.format, bus=bus, addr=addr,
                                 readonly=device.readonly, serial=disk.serial)
        except HostError as exc:
            raise VirtError(f"Attaching volume {device.volume_id} failed: {exc}") from exc
    await inst.save(replace(record, guest=domain.with_device(record.guest, disk)))


async def detach_volume(inst: Instances, uuid: str, volume_id: str) -> None:
    record = await inst.need(uuid)
    dev = domain.volume_device(volume_id)
    if not any(d.id == dev for d in record.guest.disks):
        return
    if await inst.running(uuid) is not None:
        await _unplug(inst, uuid, dev, "disk")
    await inst.save(replace(record, guest=domain.without_device(record.guest, dev)))


async def _unplug(inst: Instances, uuid: str, dev: str, kind: str) -> None:
    try:
        async with inst.qmp(uuid) as q:
            if kind == "nic":
                await q.remove_nic(dev, timeout=UNPLUG_TIMEOUT)
            else:
                await q.remove_disk(dev, timeout=UNPLUG_TIMEOUT)
    except TimeoutError as exc:
        raise VirtError(f"The guest did not release device {dev} within "
                        f"{UNPLUG_TIMEOUT:g} s.") from exc
    except HostError as exc:
        if "not found" not in str(exc):  # gone already: a retry after a crash
            raise VirtError(f"Detaching {dev} failed: {exc}") from exc


# --- snapshot ----------------------------------------------------------------------------


async def snapshot(inst: Instances, uuid: str, dest: Path) -> str:
    await inst.need(uuid)
    root = inst.files(uuid) / layout.ROOT
    pause = await inst.status(uuid) == "running"
    if pause:
        async with inst.qmp(uuid) as q:
            await q.pause()
    try:
        await disks.snapshot(inst.host, root, dest)
    except HostError as exc:
        raise VirtError(f"Snapshot of the instance failed: {exc}") from exc
    finally:
        if pause:
            async with inst.qmp(uuid) as q:
                await q.resume()
    return "qcow2"


# --- rebuild -----------------------------------------------------------------------------


async def rebuild(inst: Instances, spec: InstanceSpec, shutdown_timeout: float,
                  power_on: bool = True) -> None:
    """New local disks from the (new) image; volumes and ports stay."""
    record = await inst.need(spec.uuid)
    files = inst.files(spec.uuid)
    await inst.stop(record, shutdown_timeout)
    await _remove_files(files, [*layout.LOCAL_DISKS, layout.RESCUE, layout.STATE])
    fresh = replace(await inst.new_record(spec), building=False)
    await inst.save(fresh)
    try:
        await disks.make_local(inst.host, spec, files)
    except HostError as exc:
        raise VirtError(f"Rebuilding the instance failed: {exc}") from exc
    await asyncio.to_thread(inst.cache.touch, set(record.bases) - set(fresh.bases))
    if power_on:
        await inst.start(fresh)


# --- resize ------------------------------------------------------------------------------


async def resize(inst: Instances, spec: InstanceSpec, shutdown_timeout: float,
                 power_on: bool = True) -> None:
    record = await inst.need(spec.uuid)
    files = inst.files(spec.uuid)
    await inst.stop(record, shutdown_timeout)
    if record.resize_guest is None:  # keep the disks as they are (not on a retry)
        kept = files.resize_dir
        await asyncio.to_thread(shutil.rmtree, kept, True)
        await asyncio.to_thread(kept.mkdir)
        try:
            for name in layout.LOCAL_DISKS:
                if await _exists(record, files / name):
                    await inst.host.images.copy(files / name, kept / name)
        except HostError as exc:
            await asyncio.to_thread(shutil.rmtree, kept, True)
            raise VirtError(f"Resizing the instance failed: {exc}") from exc
        record = replace(record, resize_guest=record.guest, resize_bases=record.bases)
        await inst.save(record)
    try:
        await disks.grow(inst.host, spec, files / layout.ROOT)
        await _blank(inst, files / layout.EPHEMERAL, spec.ephemeral_gb * disks.GiB)
        await _blank(inst, files / layout.SWAP, spec.swap_mb * disks.MiB)
        await disks.make_config_drive(inst.host, spec, files)
    except HostError as exc:
        raise VirtError(f"Resizing the instance failed: {exc}") from exc
    fresh = replace(await inst.new_record(spec), resize_guest=record.resize_guest,
                    resize_bases=record.resize_bases, building=False)
    await inst.save(fresh)
    if power_on:
        await inst.start(fresh)


async def confirm_resize(inst: Instances, uuid: str) -> None:
    record = await inst.need(uuid)
    await asyncio.to_thread(shutil.rmtree, inst.files(uuid).resize_dir, True)
    if record.resize_guest is not None:
        await inst.save(replace(record, resize_guest=None, resize_bases=[]))
        await asyncio.to_thread(inst.cache.touch, set(record.resize_bases) - set(record.bases))


async def revert_resize(inst: Instances, spec: InstanceSpec, power_on: bool = True) -> None:
    record = await inst.need(spec.uuid)
    files = inst.files(spec.uuid)
    if record.resize_guest is not None:
        await inst.stop(record, 0)
        kept = files.resize_dir

        def put_back() -> None:
            for name in layout.LOCAL_DISKS:
                (files / name).unlink(missing_ok=True)
                if (kept / name).exists():
                    os.replace(kept / name, files / name)
            shutil.rmtree(kept, ignore_errors=True)

        await asyncio.to_thread(put_back)
        record = replace(await inst.new_record(spec), building=False)
        await inst.save(record)
    if power_on and await inst.running(spec.uuid) is None:
        await inst.start(record)


async def _blank(inst: Instances, path: Path, size: int) -> None:
    """A blank disk of the new flavor's ``size`` where the old one had another
    size (the old one is in resize/); none where the new flavor has none."""
    if size:
        try:
            if (await inst.host.images.info(path, "qcow2")).virtual_size == size:
                return
        except HostError:
            pass  # none yet
    await asyncio.to_thread(path.unlink, True)
    if size:
        await inst.host.images.create(path, "qcow2", size)


# --- rescue ------------------------------------------------------------------------------


async def rescue(inst: Instances, spec: InstanceSpec, rescue_image: Path, rescue_format: str,
                 shutdown_timeout: float) -> None:
    record = await inst.need(spec.uuid)
    if record.rescued and await inst.running(spec.uuid) is not None:
        return
    if spec.image_path is None:
        raise InvalidInstanceState("An instance booted from a volume cannot be rescued here.")
    domain.stable_rescue(spec)  # a bad hw_rescue_* fails before the guest stops
    files = inst.files(spec.uuid)
    await inst.stop(record, shutdown_timeout)
    await _remove_files(files, [layout.RESCUE])
    try:
        await inst.host.images.create_overlay(files / layout.RESCUE, rescue_image, rescue_format)
    except HostError as exc:
        raise VirtError(f"Rescuing the instance failed: {exc}") from exc
    rescued = await inst.new_record(spec, rescue=rescue_image)
    await inst.start(replace(rescued, building=False, resize_guest=record.resize_guest,
                             resize_bases=record.resize_bases))


async def unrescue(inst: Instances, spec: InstanceSpec) -> None:
    record = await inst.need(spec.uuid)
    files = inst.files(spec.uuid)
    if record.rescued:
        await inst.stop(record, 0)
        await _remove_files(files, [layout.RESCUE])
        record = replace(await inst.new_record(spec), building=False)
        await inst.save(record)
        await asyncio.to_thread(inst.cache.touch, set(record.bases))
    if await inst.running(spec.uuid) is None:
        await inst.start(record)


# --- helpers -----------------------------------------------------------------------------


async def _remove_files(files: layout.InstanceFiles, names: list[str]) -> None:
    def remove() -> None:
        for name in names:
            (files / name).unlink(missing_ok=True)

    await asyncio.to_thread(remove)


async def _exists(record: layout.Record, path: Path) -> bool:
    """Whether the instance has this local disk (its machine lists it)."""
    return any(d.path == str(path) for d in record.guest.disks)

