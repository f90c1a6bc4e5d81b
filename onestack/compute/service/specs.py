"""What a host's agent is handed for a server: its driver spec (flavor sizes,
image, NICs, config drive, the ``hw_*`` properties), built from the server
row and its ports, and what the metadata service and config drive say."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from onestack.compute.instance_metadata import InstanceData, InstanceMetadata
from onestack.compute.models import INJECTED_FILES, Server
from onestack.compute.virt.base import InstanceSpec, Vif
from onestack.compute.virt.wire import spec_to_dict

if TYPE_CHECKING:
    from onestack.compute.core import ComputeService

# Image properties and flavor extra specs the driver is told about.
_DRIVER_PROPERTIES = ("hw_disk_bus", "hw_vif_model", "hw_machine_type", "hw_rng_model",
                      "hw_cdrom_bus", "hw_firmware_type", "hw_video_model", "hw_qemu_guest_agent",
                      "os_type", "kernel_id", "ramdisk_id", "os_command_line")


def instance_name(server: Server) -> str:
    return f"instance-{server.internal_id:08x}"


def instance_data(server: Server, flavor: dict[str, Any] | None = None, *,
                  config_drive: bool = False) -> InstanceData:
    user_data = base64.b64decode(server.user_data) if server.user_data else None
    files: tuple[tuple[str, bytes], ...] = ()
    if config_drive:  # Nova's compute manager decodes the files for the drive
        files = tuple((str(path), base64.b64decode(content)) for path, content
                      in (server.system_metadata or {}).get(INJECTED_FILES) or ())
    return InstanceData(
        uuid=server.id, name=server.name, hostname=server.hostname,
        internal_id=server.internal_id, project_id=server.project_id,
        availability_zone=server.availability_zone or "", launch_index=server.launch_index,
        reservation_id=server.reservation_id, image_id=server.image_ref,
        flavor_name=str((flavor or server.flavor).get("name", "")),
        metadata={k: str(v) for k, v in (server.metadata_ or {}).items()},
        key_name=server.key_name, key_data=server.key_data, user_data=user_data,
        network_info=list(server.network_info or []),
        security_groups=tuple(server.security_groups or ()), password=server.password or "",
        files=files,
    )


def vifs(network_info: list[dict[str, Any]]) -> tuple[Vif, ...]:
    out = []
    for vif in network_info:
        port_id = str(vif["port_id"])
        details = vif.get("details") or {}
        out.append(Vif(port_id=port_id, mac=str(vif.get("mac") or ""), tap="tap" + port_id[:11],
                       bridge=str(details.get("bridge_name") or ""),
                       netns=details.get("netns"), mtu=int(vif.get("mtu") or 1500)))
    return tuple(out)


def properties(server: Server, flavor: dict[str, Any]) -> dict[str, str]:
    sysmeta = server.system_metadata or {}
    props: dict[str, str] = {}
    for name in _DRIVER_PROPERTIES:
        value = sysmeta.get(f"image_{name}")
        if value is not None:
            props[name] = str(value)
    for key, value in (flavor.get("extra_specs") or {}).items():
        if key.startswith("hw:") or key.startswith("hw_rng:"):
            props[key] = str(value)
    image = sysmeta.get("image_base_image_ref") or server.image_ref
    if image:
        props["image_id"] = str(image)
    fmt = sysmeta.get("image_disk_format")
    if fmt:
        props["image_disk_format"] = str(fmt)
    return props


def build_spec(svc: ComputeService, server: Server, *, flavor: dict[str, Any] | None = None,
               image_ref: str | None = None) -> InstanceSpec:
    flavor = flavor or server.flavor
    drive = None
    if server.config_drive or (server.system_metadata or {}).get("image_img_config_drive") \
            == "mandatory":
        drive = InstanceMetadata(instance_data(server, flavor, config_drive=True)).files()
    props = properties(server, flavor)
    if image_ref is not None:
        props["image_id"] = image_ref
    return InstanceSpec(
        uuid=server.id, name=instance_name(server), hostname=server.hostname,
        vcpus=int(flavor["vcpus"]), memory_mb=int(flavor["memory_mb"]),
        root_gb=int(flavor["root_gb"]), ephemeral_gb=int(flavor.get("ephemeral_gb") or 0),
        swap_mb=int(flavor.get("swap") or 0),
        image_format=str((server.system_metadata or {}).get("image_disk_format") or "qcow2"),
        vifs=vifs(server.network_info or []), config_drive=drive, properties=props,
    )


def spec_payload(svc: ComputeService, server: Server, **kw: Any) -> dict[str, Any]:
    return spec_to_dict(build_spec(svc, server, **kw))


def _image_ref(image: dict[str, Any]) -> dict[str, Any]:
    return {"id": image["id"], "disk_format": image.get("disk_format") or "qcow2",
            "size": image.get("size"), "os_hash_algo": image.get("os_hash_algo"),
            "os_hash_value": image.get("os_hash_value"), "checksum": image.get("checksum")}


def image_refs(svc: ComputeService, server: Server, image_id: str) -> dict[str, Any]:
    """The images the host must have in its cache to boot ``image_id``: the
    disk, and the kernel and ramdisk it names (direct kernel boot)."""
    from onestack.compute.service.netinfo import owner_context
    from onestack.image import interface as image_api

    ctx = owner_context(server)
    image = image_api.get_image(svc.cloud, ctx, image_id)
    refs: dict[str, Any] = {"root": _image_ref(image)}
    for role, key in (("kernel", "kernel_id"), ("ramdisk", "ramdisk_id")):
        other = image.get(key)
        if other:
            refs[role] = _image_ref(image_api.get_image(svc.cloud, ctx, str(other)))
    return refs


def task_payload(svc: ComputeService, server: Server, *, image_id: str | None = None,
                 flavor: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A host task's payload: the server, its driver spec, the images to
    fetch and whose they are."""
    image = image_id or server.image_ref
    payload: dict[str, Any] = {
        "server": server.id,
        "spec": spec_payload(svc, server, flavor=flavor, image_ref=image),
        "owner": {"user_id": server.user_id, "project_id": server.project_id},
        **extra,
    }
    if image:
        payload["images"] = image_refs(svc, server, image)
    return payload
