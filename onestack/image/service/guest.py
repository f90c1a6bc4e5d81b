"""The test guest image: registered once as a public image when it has been built."""

from __future__ import annotations

import logging
import uuid
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
    """Register the test guest built by ``onestack image build-test`` as a public image once."""
    from onestack.guest import image_path
    from onestack.image.data import DataSink
    from onestack.image.formats import Inspector

    path = image_path(svc.settings.state_dir)
    if not path.is_file():
        return None
    with svc.db.read() as s:
        if s.scalar(select(Image.id).where(Image.name == TEST_GUEST_NAME).limit(1)) is not None:
            return None
    owner = identity.admin_project_id(svc.cloud)
    image_id = str(uuid.uuid4())
    writer = svc.store.writer(image_id)
    sink = DataSink(writer, Inspector("qcow2"))
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(4 << 20):
                sink.write(chunk)
        got = sink.finish()
        location = writer.commit()
    except Exception:
        sink.abort()
        log.exception("could not register the test guest image %s", path)
        return None
    now = utcnow()
    with svc.db.write() as s:
        s.add(
            Image(
                id=image_id, name=TEST_GUEST_NAME, status="active", visibility="public", owner=owner,
                disk_format="qcow2", container_format="bare", size=got.size, virtual_size=got.virtual_size,
                checksum=got.checksum, os_hash_algo="sha512", os_hash_value=got.os_hash_value,
                min_disk=0, min_ram=0, protected=False, os_hidden=False, location=location, staging=None,
                tags=[], properties={"hw_rng_model": "virtio", "onestack_test_guest": "true"},
                created_at=now, updated_at=now,
            )
        )
    log.info("registered the test guest image %s as %s", path, image_id)
    return image_id
