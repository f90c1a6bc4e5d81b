"""The compute agent of a host: the durable-task handlers that drive its virt
driver, its heartbeat and resource report, and its reconciliation.

Handlers touch the host only through the driver and read only their task's
payload (the driver spec the conductor built); what they change in the
database is written by the kinds' hooks (``service/outcomes.py``) when the
outcome is recorded. Base images, kernels and ramdisks come into the host's
cache through the driver's ``fetch_image``, their data streamed from Image.

On start, and every ``sync_power_state_interval``, the agent compares what
runs on the host with what the database says (Nova's power-state sync): an
instance the database no longer has is destroyed; a server whose guest
stopped is ``SHUTOFF``; one whose instance the host lost is ``ERROR`` with a
fault saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onestack import __version__
from onestack.compute import kinds
from onestack.compute.service import reconcile
from onestack.compute.virt.base import InstanceNotFound, InstanceSpec, PowerState, Vif, VirtError
from onestack.compute.virt.wire import image_ref_from_dict, spec_from_dict

if TYPE_CHECKING:
    from onestack.common.tasks.worker import TaskContext
    from onestack.compute.core import ComputeService
    from onestack.compute.virt.base import Diagnostics, Driver

LOG = logging.getLogger(__name__)

Handler = Callable[["TaskContext"], Awaitable[Mapping[str, Any] | None]]


def load_driver(svc: ComputeService) -> Driver:
    name = svc.conf.driver
    if name == "fake":
        from onestack.compute.virt.fake import FakeDriver

        conf = svc.conf
        return FakeDriver(svc.this_host, vcpus=conf.fake_vcpus, memory_mb=conf.fake_memory_mb,
                          local_gb=conf.fake_local_gb, state_dir=svc.state_dir / "fake")
    if name == "qemu":
        from onestack.compute.virt.qemu.driver import QemuDriver

        return QemuDriver.for_settings(svc.settings)
    raise ValueError(f"unknown compute driver {name!r}")


def _failed(message: str) -> Exception:
    from onestack.common.tasks.errors import TaskFailed

    return TaskFailed(message, retry=False)


class ComputeAgent:
    """This host's agent (in the cloud's own process)."""

    def __init__(self, svc: ComputeService) -> None:
        self.svc = svc
        self.host = svc.this_host
        self._driver: Driver | None = None
        self._loops: list[asyncio.Task[None]] = []

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = load_driver(self.svc)
        return self._driver

    # --- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        await self.driver.init_host(self.host)
        await self.report(started=True)
        try:
            await reconcile.run(self.svc, self.host, self.driver)
        except Exception:
            LOG.exception("reconciling host %s failed", self.host)
        self._loops = [asyncio.create_task(self._reports(), name="compute-report"),
                       asyncio.create_task(self._syncs(), name="compute-power-sync")]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        close = getattr(self._driver, "close", None)
        if close is not None:
            await close()

    async def report(self, started: bool = False) -> None:
        resources = await self.driver.resources()
        await asyncio.to_thread(reconcile.report_node, self.svc, self.host, resources,
                                type(self.driver).__name__)
        await asyncio.to_thread(
            self.svc.cloud.hosts.heartbeat, self.host, kinds.COMPUTE_BINARY, topic="compute",
            availability_zone=self.svc.conf.default_availability_zone, version=__version__,
            started=started,
        )

    async def _reports(self) -> None:
        while True:
            await asyncio.sleep(self.svc.conf.report_interval)
            try:
                await self.report()
            except Exception as exc:
                LOG.warning("compute host report failed: %s", exc)

    async def _syncs(self) -> None:
        while True:
            await asyncio.sleep(self.svc.conf.sync_power_state_interval)
            try:
                await reconcile.run(self.svc, self.host, self.driver, destroy_strays=False)
            except Exception as exc:
                LOG.warning("power state sync failed: %s", exc)

    # --- images --------------------------------------------------------------------

    def _data(self, image_id: str, owner: Mapping[str, str]) -> Callable[[], AsyncIterator[bytes]]:
        from onestack.common.auth import AuthContext
        from onestack.image import interface as image_api

        ctx = AuthContext(token="", user_id=owner.get("user_id", ""),
                          project_id=owner.get("project_id"), roles=("member", "reader"))

        def opener() -> AsyncIterator[bytes]:
            return image_api.download_image_data(self.svc.cloud, ctx, image_id)

        return opener

    async def _with_images(self, spec: InstanceSpec, payload: Mapping[str, Any]) -> InstanceSpec:
        refs = payload.get("images") or {}
        owner = payload.get("owner") or {}
        changes: dict[str, Any] = {}
        for role, field_name in (("root", "image_path"), ("kernel", "kernel_path"),
                                 ("ramdisk", "ramdisk_path")):
            ref = refs.get(role)
            if not ref:
                continue
            image = image_ref_from_dict(ref)
            cached = await self.driver.fetch_image(image, self._data(image.id, owner))
            changes[field_name] = cached.path
            if role == "root":
                changes["image_format"] = cached.format
        return replace(spec, **changes) if changes else spec

    async def _spec(self, tctx: TaskContext, key: str = "spec") -> InstanceSpec:
        spec = spec_from_dict(tctx.payload[key])
        return await self._with_images(spec, tctx.payload)

    # --- handlers ------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        return {
            kinds.SPAWN: self.spawn, kinds.DELETE: self.delete, kinds.REBOOT: self.reboot,
            kinds.STOP: self.stop_server, kinds.START: self.start_server, kinds.PAUSE: self.pause,
            kinds.UNPAUSE: self.unpause, kinds.SUSPEND: self.suspend, kinds.RESUME: self.resume,
            kinds.REBUILD: self.rebuild, kinds.RESIZE: self.resize,
            kinds.CONFIRM_RESIZE: self.confirm_resize, kinds.REVERT_RESIZE: self.revert_resize,
            kinds.SNAPSHOT: self.snapshot, kinds.SHELVE: self.shelve, kinds.RESCUE: self.rescue,
            kinds.UNRESCUE: self.unrescue, kinds.ATTACH_INTERFACE: self.attach_interface,
            kinds.DETACH_INTERFACE: self.detach_interface, kinds.UNPLUG_VIF: self.unplug_vif,
        }

    async def spawn(self, tctx: TaskContext) -> dict[str, Any] | None:
        uuid = tctx.payload["server"]
        try:
            spec = await self._spec(tctx)
            await self.driver.spawn(spec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            LOG.warning("spawning %s failed: %s", uuid, exc)
            try:
                await self.driver.destroy(uuid)
            except Exception:
                LOG.exception("cleaning up the failed spawn of %s", uuid)
            raise _failed(f"Build of instance {uuid} aborted: {_reason(exc)}") from None
        return {"power_state": int(PowerState.RUNNING)}

    async def delete(self, tctx: TaskContext) -> dict[str, Any] | None:
        await self.driver.destroy(tctx.payload["server"])
        return None

    async def _act(self, action: Callable[[], Awaitable[Any]]) -> dict[str, Any] | None:
        try:
            await action()
        except VirtError as exc:
            raise _failed(_reason(exc)) from None
        return None

    async def reboot(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        return await self._act(lambda: self.driver.reboot(spec, bool(tctx.payload.get("hard"))))

    async def stop_server(self, tctx: TaskContext) -> dict[str, Any] | None:
        timeout = float(tctx.payload.get("timeout", self.svc.conf.shutdown_timeout))
        return await self._act(lambda: self.driver.power_off(tctx.payload["server"], timeout))

    async def start_server(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        return await self._act(lambda: self.driver.power_on(spec))

    async def pause(self, tctx: TaskContext) -> dict[str, Any] | None:
        return await self._act(lambda: self.driver.pause(tctx.payload["server"]))

    async def unpause(self, tctx: TaskContext) -> dict[str, Any] | None:
        return await self._act(lambda: self.driver.unpause(tctx.payload["server"]))

    async def suspend(self, tctx: TaskContext) -> dict[str, Any] | None:
        return await self._act(lambda: self.driver.suspend(tctx.payload["server"]))

    async def resume(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        return await self._act(lambda: self.driver.resume(spec))

    async def rebuild(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        power_on = bool(tctx.payload.get("power_on", True))
        return await self._act(lambda: self.driver.rebuild(spec, power_on))

    async def resize(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        power_on = bool(tctx.payload.get("power_on", True))
        return await self._act(lambda: self.driver.resize(spec, power_on))

    async def confirm_resize(self, tctx: TaskContext) -> dict[str, Any] | None:
        return await self._act(lambda: self.driver.confirm_resize(tctx.payload["server"]))

    async def revert_resize(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        power_on = bool(tctx.payload.get("power_on", True))
        return await self._act(lambda: self.driver.revert_resize(spec, power_on))

    def _snapshot_path(self, image_id: str) -> Path:
        directory = self.svc.state_dir / "snapshots"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{image_id}.qcow2"

    async def snapshot(self, tctx: TaskContext) -> dict[str, Any] | None:
        path = self._snapshot_path(tctx.payload["image_id"])
        try:
            fmt = await self.driver.snapshot(tctx.payload["server"], path)
        except VirtError as exc:
            path.unlink(missing_ok=True)
            raise _failed(_reason(exc)) from None
        return {"path": str(path), "format": fmt}

    async def shelve(self, tctx: TaskContext) -> dict[str, Any] | None:
        uuid = tctx.payload["server"]
        path = self._snapshot_path(tctx.payload["image_id"])
        timeout = float(tctx.payload.get("timeout", self.svc.conf.shutdown_timeout))
        try:
            if await self.driver.power_state(uuid) not in (PowerState.SHUTDOWN,
                                                            PowerState.NOSTATE):
                await self.driver.power_off(uuid, timeout)
            fmt = await self.driver.snapshot(uuid, path)
            await self.driver.destroy(uuid)
        except VirtError as exc:
            path.unlink(missing_ok=True)
            raise _failed(_reason(exc)) from None
        return {"path": str(path), "format": fmt}

    async def rescue(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        stable = tctx.payload.get("rescue_devices") or {}
        if stable:  # the rescue image's hw_rescue_device / hw_rescue_bus
            spec = replace(spec, properties={**spec.properties, **stable})
        ref = image_ref_from_dict(tctx.payload["rescue_image"])
        cached = await self.driver.fetch_image(
            ref, self._data(ref.id, tctx.payload.get("owner") or {}))
        return await self._act(lambda: self.driver.rescue(spec, cached.path, cached.format))

    async def unrescue(self, tctx: TaskContext) -> dict[str, Any] | None:
        spec = await self._spec(tctx)
        return await self._act(lambda: self.driver.unrescue(spec))

    async def attach_interface(self, tctx: TaskContext) -> dict[str, Any] | None:
        vif = Vif(**tctx.payload["vif"])
        return await self._act(lambda: self.driver.attach_interface(tctx.payload["server"], vif))

    async def detach_interface(self, tctx: TaskContext) -> dict[str, Any] | None:
        return await self._act(lambda: self.driver.detach_interface(
            tctx.payload["server"], tctx.payload["port_id"]))

    async def unplug_vif(self, tctx: TaskContext) -> dict[str, Any] | None:
        """A port deleted through Networking leaves the guest (nothing to do if
        the instance is gone meanwhile, or the NIC already)."""
        try:
            await self.driver.detach_interface(tctx.payload["server"], tctx.payload["port_id"])
        except InstanceNotFound:
            return None
        except VirtError as exc:
            raise _failed(_reason(exc)) from None
        return None

    # --- synchronous calls of the API (this host only) ------------------------------

    async def console_output(self, uuid: str, max_bytes: int) -> str:
        return await self.driver.console_output(uuid, max_bytes)

    async def diagnostics(self, uuid: str) -> Diagnostics:
        return await self.driver.diagnostics(uuid)

    async def set_admin_password(self, uuid: str, user: str, password: str) -> None:
        await self.driver.set_admin_password(uuid, user, password)

    async def serial_console(self, uuid: str) -> Path:
        return await self.driver.serial_console(uuid)

    async def vnc_console(self, uuid: str) -> Path:
        return await self.driver.vnc_console(uuid)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
