"""Image tables: images (with tags and free-form properties) and members.

Glance keeps properties and tags in side tables; here they are JSON columns on
the image row: the API always reads and writes them with the image, and the
list filters on them are applied after the SQL filters on the base columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base


class Image(Base):
    __tablename__ = "image"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    status: Mapped[str] = mapped_column(String(30), index=True)
    visibility: Mapped[str] = mapped_column(String(20), index=True)
    owner: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    disk_format: Mapped[str | None] = mapped_column(String(20), default=None)
    container_format: Mapped[str | None] = mapped_column(String(20), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    checksum: Mapped[str | None] = mapped_column(String(32), default=None)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), default=None)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), default=None)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # where the data lives in its store ("file://..."); never shown to users
    location: Mapped[str | None] = mapped_column(String(1024), default=None)
    # staged data of an interoperable import (glance-direct)
    staging: Mapped[str | None] = mapped_column(String(1024), default=None)
    # the cloud process (``process.id``) streaming the data in (saving, or
    # uploading while staging); never shown to users
    upload_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ImageMember(Base):
    __tablename__ = "image_member"

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image.id", ondelete="CASCADE"), primary_key=True
    )
    member: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class ImageTask(Base):
    """An asynchronous task on an image (an interoperable import), as Glance's tasks."""

    __tablename__ = "image_task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    type: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    image_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    user_id: Mapped[str | None] = mapped_column(String(64), default=None)
    input: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    message: Mapped[str] = mapped_column(String(2048), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class MetadefNamespace(Base):
    """A metadata definitions namespace with its objects, properties, tags and
    resource type associations (kept as JSON on the namespace row)."""

    __tablename__ = "metadef_namespace"

    namespace: Mapped[str] = mapped_column(String(80), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(80), default=None)
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    visibility: Mapped[str] = mapped_column(String(32), default="private")
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(255), default=None)
    resource_types: Mapped[list[Any]] = mapped_column(JSON, default=list)
    objects: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
