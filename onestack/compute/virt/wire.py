"""Driver specs as JSON: an :class:`InstanceSpec` travels in a task's payload
from the conductor (which knows the server, its ports and its image) to the
agent of the host (which may run elsewhere, without the database)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from onestack.compute.virt.base import BlockDevice, ImageRef, InstanceSpec, Vif


def spec_to_dict(spec: InstanceSpec) -> dict[str, Any]:
    return {
        "uuid": spec.uuid, "name": spec.name, "hostname": spec.hostname, "vcpus": spec.vcpus,
        "memory_mb": spec.memory_mb, "root_gb": spec.root_gb, "ephemeral_gb": spec.ephemeral_gb,
        "swap_mb": spec.swap_mb,
        "image_path": str(spec.image_path) if spec.image_path is not None else None,
        "image_format": spec.image_format,
        "kernel_path": str(spec.kernel_path) if spec.kernel_path is not None else None,
        "ramdisk_path": str(spec.ramdisk_path) if spec.ramdisk_path is not None else None,
        "vifs": [{"port_id": v.port_id, "mac": v.mac, "tap": v.tap, "bridge": v.bridge,
                  "netns": v.netns, "mtu": v.mtu} for v in spec.vifs],
        "block_devices": [{"volume_id": b.volume_id, "path": str(b.path), "format": b.format,
                           "serial": b.serial, "readonly": b.readonly}
                          for b in spec.block_devices],
        "config_drive": ({name: base64.b64encode(data).decode()
                          for name, data in spec.config_drive.items()}
                         if spec.config_drive is not None else None),
        "properties": dict(spec.properties),
    }


def spec_from_dict(data: dict[str, Any]) -> InstanceSpec:
    drive = data.get("config_drive")
    return InstanceSpec(
        uuid=data["uuid"], name=data["name"], hostname=data["hostname"], vcpus=data["vcpus"],
        memory_mb=data["memory_mb"], root_gb=data["root_gb"],
        ephemeral_gb=data.get("ephemeral_gb", 0), swap_mb=data.get("swap_mb", 0),
        image_path=Path(data["image_path"]) if data.get("image_path") else None,
        image_format=data.get("image_format", "qcow2"),
        kernel_path=Path(data["kernel_path"]) if data.get("kernel_path") else None,
        ramdisk_path=Path(data["ramdisk_path"]) if data.get("ramdisk_path") else None,
        vifs=tuple(Vif(**v) for v in data.get("vifs", [])),
        block_devices=tuple(BlockDevice(volume_id=b["volume_id"], path=Path(b["path"]),
                                        format=b["format"], serial=b["serial"],
                                        readonly=b.get("readonly", False))
                            for b in data.get("block_devices", [])),
        config_drive=({name: base64.b64decode(text) for name, text in drive.items()}
                      if drive is not None else None),
        properties=dict(data.get("properties", {})),
    )


def image_ref_to_dict(ref: ImageRef) -> dict[str, Any]:
    return {"id": ref.id, "disk_format": ref.disk_format, "size": ref.size,
            "os_hash_algo": ref.os_hash_algo, "os_hash_value": ref.os_hash_value,
            "checksum": ref.checksum}


def image_ref_from_dict(data: dict[str, Any]) -> ImageRef:
    return ImageRef(id=data["id"], disk_format=data.get("disk_format") or "qcow2",
                    size=data.get("size"), os_hash_algo=data.get("os_hash_algo"),
                    os_hash_value=data.get("os_hash_value"), checksum=data.get("checksum"))
