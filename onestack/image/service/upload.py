"""Image data: the upload and stage sequences, and downloads.

``upload_image_data`` is the whole upload: queued -> saving (policy, quota),
the bytes through a ``DataSink`` (hashes, format inspection, size limit) into
the store, then saving -> active - or back to queued, with nothing kept, when
anything fails. The HTTP API streams a request body into it; Compute's
snapshot calls it in-process (through ``image.interface``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from onestack.common.auth import AuthContext
from onestack.common.db import retrying
from onestack.common.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from onestack.common.ids import utcnow
from onestack.common.web import run
from onestack.image.data import DataSink, Received, TooLarge, pump
from onestack.image.formats import FormatError, Inspector
from onestack.image.models import Image
from onestack.image.service._access import authorize, is_admin, visible_image
from onestack.image.service.quotas import data_limit

if TYPE_CHECKING:
    from onestack.image.core import ImageService



@dataclass
class Upload:
    image_id: str
    disk_format: str | None
    limit: int
    limit_message: str
    previous_status: str
    container_format: str | None = "bare"


def begin_upload(
    svc: ImageService, ctx: AuthContext, image_id: str, content_length: int | None, *, stage: bool = False
) -> Upload:
    """queued -> saving (upload) or uploading (stage); checks policy and quota."""
    new_status = "uploading" if stage else "saving"
    with svc.db.write() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "stage_image" if stage else "upload_image", ctx, tgt)
        if img.status != "queued":
            raise Conflict(f"Image status transition from {img.status} to {new_status} is not allowed")
        if not stage and (img.disk_format is None or img.container_format is None):
            raise BadRequest("Properties disk_format, container_format must be set prior to saving data.")
        limit, message = data_limit(svc, s, img)
        if content_length is not None and content_length > limit:
            raise PayloadTooLarge(message)
        img.status = new_status
        img.upload_owner = svc.cloud.process_identity  # see recover_interrupted
        img.updated_at = utcnow()
        return Upload(img.id, img.disk_format, limit, message, "queued", img.container_format)


def finish_upload(svc: ImageService, up: Upload, location: str, size: int, checksum: str,
                  os_hash_value: str, virtual_size: int | None) -> None:
    """saving -> active with the data's facts; the data is dropped if the image went away.

    The write runs in a retrying scope of its own: a re-run of the whole call
    after a lost race (``common/db``) would find its data already dropped."""

    def record() -> ApiError | None:
        with svc.db.write() as s:
            img = s.get(Image, up.image_id)
            if img is None or img.status != "saving":
                raise Gone(
                    f"Image {up.image_id} could not be found after upload. "
                    "The image may have been deleted during the upload."
                )
            # the quota may have been used up by a concurrent upload
            limit, message = data_limit(svc, s, img)
            img.upload_owner = None
            if size > limit:
                img.status = "queued"
                img.updated_at = utcnow()
                return PayloadTooLarge(message)
            img.status = "active"
            img.size = size
            img.virtual_size = virtual_size
            img.checksum = checksum
            img.os_hash_algo = "sha512"
            img.os_hash_value = os_hash_value
            img.location = location
            img.updated_at = utcnow()
            return None

    keep = False
    try:
        error = retrying(record)
        keep = error is None
    finally:
        if not keep:
            svc.store.delete(location)
    if error is not None:
        raise error


def fail_upload(svc: ImageService, up: Upload, *, stage: bool = False) -> None:
    """Back to queued after a failed or aborted transfer (as Glance restores it)."""
    expected = "uploading" if stage else "saving"
    with svc.db.write() as s:
        img = s.get(Image, up.image_id)
        if img is not None and img.status == expected:
            img.status = "queued"
            img.upload_owner = None
            img.updated_at = utcnow()


def finish_stage(svc: ImageService, up: Upload, location: str) -> None:
    with svc.db.write() as s:
        img = s.get(Image, up.image_id)
        if img is None or img.status != "uploading":
            svc.staging.delete(location)
            raise Gone(
                f"Image {up.image_id} could not be found after upload. "
                "The image may have been deleted during the upload."
            )
        img.staging = location
        img.upload_owner = None
        img.updated_at = utcnow()


@dataclass
class Download:
    location: str | None
    size: int
    checksum: str | None


def begin_download(svc: ImageService, ctx: AuthContext, image_id: str) -> Download:
    with svc.db.read() as s:
        img, tgt = visible_image(svc, s, ctx, image_id)
        authorize(svc, "download_image", ctx, tgt)
        if img.status == "deactivated" and not is_admin(svc, ctx):
            raise Forbidden("The requested image has been deactivated. Image data download is prohibited.")
        if img.status != "active" and img.status != "deactivated" or not img.location:
            return Download(None, 0, None)
        return Download(img.location, int(img.size or 0), img.checksum)


# --------------------------------------------------------------------------- the sequences


async def upload_image_data(
    svc: ImageService,
    ctx: AuthContext,
    image_id: str,
    chunks: AsyncIterator[bytes],
    *,
    size: int | None = None,
) -> None:
    """Upload an image's data, as ``PUT /v2/images/{id}/file`` does: queued -> active.

    ``chunks`` are the bytes in order; ``size``, when known before the first
    byte (a Content-Length), is checked against the quota up front. Policy,
    status and quota errors are Glance's (404, 403, 409, 400, 413); data that
    is not the image's ``disk_format``, or unsafe, is Glance's 415
    (``formats``), more than the quota allows a
    413; whatever ``chunks`` raises propagates. On any failure nothing is kept
    and the image is ``queued`` again.
    """
    up = await run(begin_upload, svc, ctx, image_id, size)
    sink: DataSink | None = None
    try:
        writer = await run(svc.store.writer, up.image_id)
        sink = DataSink(writer, Inspector(up.disk_format, up.container_format), up.limit)
        got = await _receive(chunks, sink, up)
        location = await run(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if sink is not None:
                await run(sink.abort)
            await run(fail_upload, svc, up)
        raise
    await run(finish_upload, svc, up, location, got.size, got.checksum, got.os_hash_value, got.virtual_size)


async def stage_image_data(
    svc: ImageService,
    ctx: AuthContext,
    image_id: str,
    chunks: AsyncIterator[bytes],
    *,
    size: int | None = None,
) -> None:
    """Stage an image's data for ``glance-direct`` import (``PUT /v2/images/{id}/stage``):
    queued -> uploading, the bytes kept in the staging area, not yet inspected."""
    up = await run(begin_upload, svc, ctx, image_id, size, stage=True)
    sink: DataSink | None = None
    try:
        writer = await run(svc.staging.writer, up.image_id)
        sink = DataSink(writer, None, up.limit)
        await _receive(chunks, sink, up)
        location = await run(writer.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            if sink is not None:
                await run(sink.abort)
            await run(fail_upload, svc, up, stage=True)
        raise
    await run(finish_stage, svc, up, location)


async def _receive(chunks: AsyncIterator[bytes], sink: DataSink, up: Upload) -> Received:
    """The bytes through the sink; the errors of the data in Glance's terms.

    What ``chunks`` itself raises (a client gone, a disk that could not be
    read) propagates as it is: only the store's own I/O errors are a 500.
    """
    source_errors: list[BaseException] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except BaseException as exc:
            source_errors.append(exc)
            raise

    try:
        await pump(source(), sink.write)
        return await run(sink.finish)
    except TooLarge:
        raise PayloadTooLarge(up.limit_message) from None
    except FormatError as exc:  # Glance: InvalidImageData -> 415
        raise UnsupportedMediaType(str(exc)) from None
    except OSError as exc:
        if exc in source_errors:
            raise
        raise ApiError(f"Error storing the image data: {exc.strerror or exc}", status=500) from None
