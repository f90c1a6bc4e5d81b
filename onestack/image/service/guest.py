"""The test guest image: registered once as a public image when it has been built."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from onestack.common.ids import utcnow
from onestack.identity import interface as identity
from onestack.image.models import Image

if TYPE_CHECKING:
    from onestack.image.core import ImageService

log = logging.getLogger(__name__)


TEST_GUEST_NAME = "onestack-test-guest"


def register_test_guest(svc: ImageService) -> str | None:
    """Register the test guest built by ``onestack image build-test`` as a public
    image once. When the build exported its kernel and initramfs, they are
    registered too (``aki``/``ari`` images) and named by the disk's
    ``kernel_id``/``ramdisk_id`` with its ``os_command_line``, so that Compute
    boots it straight into its kernel (as Nova boots AMI/AKI/ARI images: the
    fastest boot of this guest); the disk still boots by itself."""
    from onestack.guest import boot_files, image_path

    path = image_path(svc.settings.state_dir)
    if not path.is_file():
        return None
    with svc.db.read() as s:
        if s.scalar(select(Image.id).where(Image.name == TEST_GUEST_NAME).limit(1)) is not None:
            return None
    owner = identity.admin_project_id(svc.cloud)
    properties = {"hw_rng_model": "virtio", "onestack_test_guest": "true"}
    kernel, initrd, cmdline = boot_files(path)
    if kernel.is_file() and initrd.is_file() and cmdline.is_file():
        kernel_id = _register(svc, kernel, f"{TEST_GUEST_NAME}-kernel", "aki", owner,
                              {"onestack_test_guest": "true"})
        ramdisk_id = _register(svc, initrd, f"{TEST_GUEST_NAME}-ramdisk", "ari", owner,
                               {"onestack_test_guest": "true"})
        if kernel_id and ramdisk_id:
            properties.update(kernel_id=kernel_id, ramdisk_id=ramdisk_id,
                              os_command_line=cmdline.read_text().strip())
    return _register(svc, path, TEST_GUEST_NAME, "qcow2", owner, properties)


def _register(svc: ImageService, path: Path, name: str, disk_format: str, owner: str | None,
              properties: dict[str, str]) -> str | None:
    from onestack.image.data import DataSink
    from onestack.image.formats import Inspector

    image_id = str(uuid.uuid4())
    writer = svc.store.writer(image_id)
    sink = DataSink(writer, Inspector(disk_format))
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(4 << 20):
                sink.write(chunk)
        got = sink.finish()
        location = writer.commit()
    except Exception:
        sink.abort()
        log.exception("could not register the test guest's %s", path)
        return None
    container = disk_format if disk_format in ("aki", "ari", "ami") else "bare"
    now = utcnow()
    with svc.db.write() as s:
        s.add(
            Image(
                id=image_id, name=name, status="active", visibility="public", owner=owner,
                disk_format=disk_format, container_format=container, size=got.size,
                virtual_size=got.virtual_size, checksum=got.checksum, os_hash_algo="sha512",
                os_hash_value=got.os_hash_value, min_disk=0, min_ram=0, protected=False,
                os_hidden=False, location=location, staging=None, tags=[],
                properties=properties, created_at=now, updated_at=now,
            )
        )
    log.info("registered the test guest's %s as %s", path, image_id)
    return image_id
