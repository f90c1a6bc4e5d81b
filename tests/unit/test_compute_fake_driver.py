"""The fake driver's diagnostics follow the Driver protocol's rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from onestack.compute.virt.base import (
    BlockDevice,
    InstanceNotFound,
    InstanceSpec,
    InvalidInstanceState,
    PowerState,
    Vif,
)
from onestack.compute.virt.fake import FakeDriver

UUID = "6a1f8e2c-0000-4000-8000-000000000001"


def spec(**kw: object) -> InstanceSpec:
    base: dict[str, object] = dict(
        uuid=UUID, name="instance-00000001", hostname="vm", vcpus=2, memory_mb=256, root_gb=1,
        vifs=(Vif(port_id="p1", mac="fa:16:3e:00:00:01", tap="tapp1", bridge="br", netns=None),))
    base.update(kw)
    return InstanceSpec(**base)  # type: ignore[arg-type]


def test_diagnostics_of_a_running_guest(tmp_path: Path) -> None:
    async def body() -> None:
        driver = FakeDriver(state_dir=tmp_path)
        await driver.spawn(spec(ephemeral_gb=1, config_drive={"openstack/latest/x": b"{}"}))
        await driver.attach_volume(UUID, BlockDevice(volume_id="v1", path=tmp_path / "v1",
                                                     format="raw", serial="v1"))
        d = await driver.diagnostics(UUID)
        assert (d.state, d.num_cpus, d.memory_max_mb, d.config_drive) == (
            PowerState.RUNNING, 2, 256, True)
        assert [c.id for c in d.cpu_details] == [0, 1]
        assert [n.mac_address for n in d.nic_details] == ["fa:16:3e:00:00:01"]
        # root, ephemeral, config drive, the volume
        assert len(d.disk_details) == 4
        assert d.uptime is not None and d.uptime >= 0

    asyncio.run(body())


@pytest.mark.parametrize("stop", ["power_off", "pause", "suspend"])
def test_no_diagnostics_unless_running(tmp_path: Path, stop: str) -> None:
    async def body() -> None:
        driver = FakeDriver(state_dir=tmp_path)
        await driver.spawn(spec())
        await getattr(driver, stop)(UUID)
        with pytest.raises(InvalidInstanceState, match="is not running"):
            await driver.diagnostics(UUID)
        await driver.destroy(UUID)
        with pytest.raises(InstanceNotFound):
            await driver.diagnostics(UUID)

    asyncio.run(body())
