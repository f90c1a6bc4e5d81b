"""What other services may ask of Image in-process - and nothing else.

Compute reaches Image through this module only (an import-linter contract
holds it): the image a server boots from, and the snapshot of a server
(``createImage``: a new image record, then its data streamed in; ``createBackup``
lists a server's backups to rotate them; the ``/images`` proxy of before 2.36
reads and writes image properties). Every call
acts for the caller's ``AuthContext``, so Glance's policy, visibility and
quotas apply exactly as through the REST API, and errors are the same
``ApiError`` subclasses (404, 403, 409, 413 ...). Services that run apart
from Image use its REST API instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from onestack.common.errors import NotFound
from onestack.common.web import run
from onestack.image.core import ImageService
from onestack.image.service import images, listing, upload

if TYPE_CHECKING:
    from onestack.common.auth import AuthContext
    from onestack.common.cloud import Cloud


def _image(cloud: Cloud) -> ImageService:
    svc = cloud.services.get(ImageService.name)
    if not isinstance(svc, ImageService):
        raise NotFound("The image service does not run in this process.")
    return svc


def get_image(cloud: Cloud, ctx: AuthContext, image_id: str) -> dict[str, Any]:
    """The image as ``GET /v2/images/{id}`` shows it (blocking: call it in a thread)."""
    return images.get_image(_image(cloud), ctx, image_id)


def list_images(cloud: Cloud, ctx: AuthContext, filters: dict[str, str]) -> list[dict[str, Any]]:
    """Every image ``ctx`` sees that matches ``filters`` (Glance's list filters,
    properties included), newest first, as ``GET /v2/images`` shows them,
    all pages (blocking). What Compute's ``createBackup`` rotation lists."""
    svc = _image(cloud)
    params = [*filters.items(), ("limit", "1000")]
    out: list[dict[str, Any]] = []
    while True:
        page = listing.list_images(svc, ctx, params)
        out.extend(page["images"])
        if "next" not in page or not page["images"]:
            return out
        params = [*filters.items(), ("limit", "1000"), ("marker", page["images"][-1]["id"])]


def update_image(cloud: Cloud, ctx: AuthContext, image_id: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
    """As ``PATCH /v2/images/{id}`` with the JSON-patch ``patch`` (``op``,
    ``path``, ``value``): what Compute's image metadata proxy writes
    properties with (blocking)."""
    return images.update_image(_image(cloud), ctx, image_id, images.parse_changes(patch))


def create_image(cloud: Cloud, ctx: AuthContext, body: dict[str, Any]) -> dict[str, Any]:
    """A new ``queued`` image, as ``POST /v2/images`` makes it (blocking)."""
    return images.create_image(_image(cloud), ctx, body)


def delete_image(cloud: Cloud, ctx: AuthContext, image_id: str) -> None:
    """Delete an image and its data, as ``DELETE /v2/images/{id}`` (blocking)."""
    images.delete_image(_image(cloud), ctx, image_id)


async def upload_image_data(
    cloud: Cloud,
    ctx: AuthContext,
    image_id: str,
    chunks: AsyncIterator[bytes],
    *,
    size: int | None = None,
) -> dict[str, Any]:
    """Stream ``chunks`` in as the data of a ``queued`` image, as
    ``PUT /v2/images/{id}/file`` does; returns the image, now ``active``.

    On any failure (the data is not the image's ``disk_format``, it is over
    the quota, the image was deleted meanwhile, ``chunks`` raised) nothing
    is kept, the image is ``queued`` again and the error propagates.
    """
    svc = _image(cloud)
    await upload.upload_image_data(svc, ctx, image_id, chunks, size=size)
    return await run(images.get_image, svc, ctx, image_id)


async def download_image_data(
    cloud: Cloud, ctx: AuthContext, image_id: str, *, chunk_size: int = 4 << 20
) -> AsyncIterator[bytes]:
    """The image's data, as ``GET /v2/images/{id}/file`` streams it (Glance's
    download policy and status rules); what a compute host's image cache
    fetches a base image, kernel or ramdisk through. Nothing is yielded for
    an image without data."""
    svc = _image(cloud)
    got = await run(upload.begin_download, svc, ctx, image_id)
    if got.location is None:
        return
    try:
        fh = await run(svc.store.open, got.location)
    except FileNotFoundError:
        raise NotFound("Image data not found in the store.") from None
    try:
        while chunk := await run(fh.read, chunk_size):
            yield chunk
    finally:
        await run(fh.close)
