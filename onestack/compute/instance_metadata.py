"""What a guest learns about itself: Nova's metadata content, in the OpenStack
style (``openstack/<version>/meta_data.json``, ``network_data.json``,
``user_data``, ``vendor_data.json``, ``vendor_data2.json``, ``password``)
and the EC2 style (``<version>/meta-data/...``, ``user-data``).

One builder serves both the metadata service (:meth:`InstanceMetadata.lookup`
answers a request path) and the config drive (:meth:`InstanceMetadata.files`
lists the files of the ``config-2`` ISO), so they say the same things.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Any

OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14")
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")
PASSWORD_SINCE = "2013-04-04"
VENDOR_DATA_SINCE = "2013-10-17"
NETWORK_DATA_SINCE = "2015-10-15"
VENDOR_DATA2_SINCE = "2016-10-06"
DHCP_DOMAIN = "novalocal"
PASSWORD_MAX = 256


@dataclass(frozen=True)
class InstanceData:
    """The facts of one server the metadata is made of."""

    uuid: str
    name: str
    hostname: str
    internal_id: int
    project_id: str
    availability_zone: str
    launch_index: int = 0
    reservation_id: str = ""
    image_id: str = ""
    flavor_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    key_name: str | None = None
    key_data: str | None = None
    key_type: str = "ssh"
    user_data: bytes | None = None
    network_info: list[dict[str, Any]] = field(default_factory=list)
    security_groups: tuple[str, ...] = ()
    password: str = ""
    # personality files (path, decoded contents): on the config drive only, as
    # Nova's metadata service is built without them
    files: tuple[tuple[str, bytes], ...] = ()


def _ec2_id(prefix: str, number: int) -> str:
    return f"{prefix}-{number:08x}"


def _image_ec2_id(image_id: str) -> str:
    return _ec2_id("ami", zlib.crc32(image_id.encode()) & 0xFFFFFFFF) if image_id else ""


class InstanceMetadata:
    def __init__(self, data: InstanceData, *, random_seed: bytes | None = None) -> None:
        self.data = data
        self.random_seed = random_seed if random_seed is not None else os.urandom(512)

    # --- OpenStack style ------------------------------------------------------------

    def meta_data(self, version: str) -> dict[str, Any]:
        d = self.data
        out: dict[str, Any] = {
            "uuid": d.uuid,
            "meta": dict(d.metadata),
            "hostname": f"{d.hostname}.{DHCP_DOMAIN}",
            "name": d.name,
            "launch_index": d.launch_index,
            "availability_zone": d.availability_zone,
        }
        if d.key_name and d.key_data:
            out["public_keys"] = {d.key_name: d.key_data}
            if version >= "2015-10-15" or version == "latest":
                out["keys"] = [{"name": d.key_name, "type": d.key_type, "data": d.key_data}]
        if version >= "2013-04-04" or version == "latest":
            out["random_seed"] = base64.b64encode(self.random_seed).decode()
        if version >= "2013-10-17" or version == "latest":
            out["project_id"] = d.project_id
        if version >= "2016-06-30" or version == "latest":
            out["devices"] = []
        if version >= "2020-10-14" or version == "latest":
            out["dedicated_cpus"] = []
        if d.files:
            out["files"] = [{"path": path, "content_path": f"/content/{index:04d}"}
                            for index, (path, _) in enumerate(d.files)]
        return out

    def network_data(self) -> dict[str, Any]:
        links: list[dict[str, Any]] = []
        networks: list[dict[str, Any]] = []
        for index, vif in enumerate(self.data.network_info):
            link_id = "tap" + str(vif["port_id"])[:11]
            links.append({
                "id": link_id, "vif_id": vif["port_id"], "type": "bridge",
                "mtu": vif.get("mtu") or 1500, "ethernet_mac_address": vif.get("mac"),
            })
            for ip in vif.get("ips", []):
                if ip.get("type") == "floating":
                    continue
                version = ipaddress.ip_address(ip["address"]).version
                networks.append({
                    "id": f"network{index}", "link": link_id,
                    "type": "ipv4_dhcp" if version == 4 else "ipv6_dhcp",
                    "network_id": vif.get("network_id"),
                })
        return {"links": links, "networks": networks, "services": []}

    def _openstack_file(self, version: str, name: str) -> bytes | None:
        d = self.data
        if name == "meta_data.json":
            return json.dumps(self.meta_data(version)).encode()
        if name == "user_data":
            return d.user_data
        after = version == "latest"
        if name == "vendor_data.json" and (after or version >= VENDOR_DATA_SINCE):
            return b"{}"
        if name == "vendor_data2.json" and (after or version >= VENDOR_DATA2_SINCE):
            return b"{}"
        if name == "network_data.json" and (after or version >= NETWORK_DATA_SINCE):
            return json.dumps(self.network_data()).encode()
        if name == "password" and (after or version >= PASSWORD_SINCE):
            return d.password.encode()
        return None

    def _openstack_listing(self, version: str) -> list[str]:
        names = ["meta_data.json"]
        if self.data.user_data is not None:
            names.append("user_data")
        after = version == "latest"
        if after or version >= PASSWORD_SINCE:
            names.append("password")
        if after or version >= VENDOR_DATA_SINCE:
            names.append("vendor_data.json")
        if after or version >= NETWORK_DATA_SINCE:
            names.append("network_data.json")
        if after or version >= VENDOR_DATA2_SINCE:
            names.append("vendor_data2.json")
        return names

    # --- EC2 style ------------------------------------------------------------------

    def _addresses(self) -> tuple[str, str]:
        local = public = ""
        for vif in self.data.network_info:
            for ip in vif.get("ips", []):
                if ip.get("type") == "floating" and not public:
                    public = ip["address"]
                elif ip.get("type") != "floating" and not local \
                        and ipaddress.ip_address(ip["address"]).version == 4:
                    local = ip["address"]
        return local, public

    def ec2_meta_data(self) -> dict[str, Any]:
        d = self.data
        local, public = self._addresses()
        hostname = f"{d.hostname}.{DHCP_DOMAIN}"
        out: dict[str, Any] = {
            "ami-id": _image_ec2_id(d.image_id),
            "ami-launch-index": str(d.launch_index),
            "ami-manifest-path": "FIXME",
            "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
            "hostname": hostname,
            "instance-action": "none",
            "instance-id": _ec2_id("i", d.internal_id),
            "instance-type": d.flavor_name,
            "local-hostname": hostname,
            "local-ipv4": local,
            "placement": {"availability-zone": d.availability_zone},
            "public-hostname": hostname,
            "public-ipv4": public,
            "reservation-id": d.reservation_id,
            "security-groups": "\n".join(d.security_groups),
        }
        if d.key_name and d.key_data:
            out["public-keys"] = {"0": {"_name": f"0={d.key_name}",
                                        "openssh-key": d.key_data}}
        return out

    # --- the request paths ---------------------------------------------------------

    def lookup(self, path: str) -> bytes | list[str] | None:
        """The content at ``path`` (a file's bytes, or a directory's entries),
        or None if there is nothing there."""
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts:
            return [*EC2_VERSIONS, "latest", "openstack"]
        if parts[0] == "openstack":
            versions = [*OPENSTACK_VERSIONS, "latest"]
            if len(parts) == 1:
                return versions
            version = parts[1]
            if version not in versions:
                return None
            if len(parts) == 2:
                return self._openstack_listing(version)
            if len(parts) == 3:
                return self._openstack_file(version, parts[2])
            return None
        version = parts[0]
        if version not in (*EC2_VERSIONS, "latest"):
            return None
        if len(parts) == 1:
            out = ["meta-data/"]
            if self.data.user_data is not None:
                out.append("user-data")
            return out
        if parts[1] == "user-data" and len(parts) == 2:
            return self.data.user_data
        if parts[1] != "meta-data":
            return None
        node: Any = self.ec2_meta_data()
        for part in parts[2:]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, dict) and part.split("=")[0] in node:
                node = node[part.split("=")[0]]
            else:
                return None
        if isinstance(node, dict):
            entries = []
            for key, value in node.items():
                if key == "_name":
                    continue
                if isinstance(value, dict):
                    entries.append(value.get("_name", key + "/"))
                else:
                    entries.append(key)
            return entries
        return str(node).encode()

    # --- the config drive -----------------------------------------------------------

    def files(self) -> dict[str, bytes]:
        """The files of a ``config-2`` config drive (Nova's layout)."""
        out: dict[str, bytes] = {}
        for version in (*OPENSTACK_VERSIONS, "latest"):
            for name in self._openstack_listing(version):
                if name == "password":
                    continue
                content = self._openstack_file(version, name)
                if content is not None:
                    out[f"openstack/{version}/{name}"] = content
        for version in ("2009-04-04", "latest"):
            meta = {k: v for k, v in self.ec2_meta_data().items()}
            out[f"ec2/{version}/meta-data.json"] = json.dumps(meta).encode()
            if self.data.user_data is not None:
                out[f"ec2/{version}/user-data"] = self.data.user_data
        for index, (_, content) in enumerate(self.data.files):
            out[f"openstack/content/{index:04d}"] = content
        return out
