"""Where an instance's files are, and the driver's record of each instance.

``<instances_dir>/<uuid>/`` holds the instance's disks (``disk``, the root
overlay on a cached base; ``disk.eph0``, ``disk.swap``, ``disk.config``,
``disk.rescue``), its saved memory while suspended (``state.sav``), the disks
kept aside during a resize (``resize/``) and ``record.json``. QEMU's own
files (sockets, pid file, console log) live in the host layer's run directory.

The record is the driver's truth about an instance, as the domain XML is
libvirt's: the machine as it runs now (a host ``GuestSpec``, hot-plugged
devices included with their slots), the spec it was built from (a digest, for
an idempotent spawn), the cached images it uses, and whether it is suspended,
rescued or mid-resize. It is written before anything is made for the
instance, so that whatever a crash leaves behind can be found and removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from onestack.compute.virt.base import InstanceSpec, Vif
from onestack.host.qemu_spec import GuestSpec

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RECORD = "record.json"
ROOT = "disk"
EPHEMERAL = "disk.eph0"
SWAP = "disk.swap"
CONFIG = "disk.config"
RESCUE = "disk.rescue"
LOCAL_DISKS = (ROOT, EPHEMERAL, SWAP, CONFIG)
STATE = "state.sav"
RESIZE_DIR = "resize"


def is_instance_name(name: str) -> bool:
    return bool(UUID_RE.fullmatch(name))


@dataclass(frozen=True)
class InstanceFiles:
    """The paths of one instance's files."""

    directory: Path

    def __truediv__(self, name: str) -> Path:
        return self.directory / name

    @property
    def record(self) -> Path:
        return self.directory / RECORD

    @property
    def state(self) -> Path:
        return self.directory / STATE

    @property
    def resize_dir(self) -> Path:
        return self.directory / RESIZE_DIR


@dataclass
class Record:
    uuid: str
    spec_digest: str
    guest: GuestSpec
    vifs: list[Vif] = field(default_factory=list)  # the ports the guest's NICs are on
    bases: list[str] = field(default_factory=list)  # cached images in use
    vif_model: str = "virtio"  # what hot-plugged NICs are (the image's hw_vif_model)
    suspended: bool = False
    rescued: bool = False
    # during a resize: the machine (and the bases) before it, its disks in resize/
    resize_guest: GuestSpec | None = None
    resize_bases: list[str] = field(default_factory=list)
    building: bool = True  # until the guest first started

    def to_json(self) -> str:
        doc: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["guest"] = asdict(self.guest)
        doc["vifs"] = [asdict(v) for v in self.vifs]
        doc["resize_guest"] = asdict(self.resize_guest) if self.resize_guest else None
        return json.dumps(doc, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Record:
        doc = json.loads(text)
        doc["guest"] = GuestSpec.from_json(json.dumps(doc["guest"]))
        doc["vifs"] = [Vif(**v) for v in doc.get("vifs", [])]
        if doc.get("resize_guest"):
            doc["resize_guest"] = GuestSpec.from_json(json.dumps(doc["resize_guest"]))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})

    def all_bases(self) -> set[str]:
        return {*self.bases, *self.resize_bases}


def read_record(files: InstanceFiles) -> Record | None:
    """The record, or None if there is none (or it is unreadable: a crash
    while it was first written; the instance is then cleaned up as a leftover)."""
    try:
        return Record.from_json(files.record.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, TypeError, KeyError):
        return None


def write_record(files: InstanceFiles, record: Record) -> None:
    """Replaces the record atomically: a killed process leaves the old or the
    new one. (No fsync: what it guards against is onestack dying, and the
    kernel keeps what was written; a host crash takes the guests with it.)"""
    files.directory.mkdir(parents=True, exist_ok=True)
    tmp = files.record.with_name(RECORD + ".tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, files.record)


def spec_digest(spec: InstanceSpec) -> str:
    """What makes two specs the same instance build (config drive by content)."""
    doc = {f.name: getattr(spec, f.name) for f in fields(spec) if f.name != "config_drive"}
    if spec.config_drive is not None:
        doc["config_drive"] = {k: hashlib.sha256(v).hexdigest()
                               for k, v in sorted(spec.config_drive.items())}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=_plain).encode()).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    raise TypeError(f"cannot digest {type(value).__name__}")
