"""Compute tables: flavors, key pairs, servers and what hangs off them, the
compute hosts the scheduler claims on, server groups, instance actions and
console tokens.

As Nova does, a server keeps a copy of its flavor (``flavor``, and the old and
new ones while a resize waits for confirmation) and a cache of its network
information (``network_info``: the ports, their addresses and floating IPs),
so that a server is shown without asking Networking. Metadata, tags and
security group names are JSON columns on the row: a page of servers is read
in one query. A deleted server keeps its row (``deleted``) for
``changes-since`` and ``os-instance-actions``, as Nova's soft delete does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import Base

# system_metadata key of a server's personality files (see Server.system_metadata)
INJECTED_FILES = "injected_files"


class Flavor(Base):
    __tablename__ = "compute_flavor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    memory_mb: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)  # MiB
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    vcpu_weight: Mapped[int | None] = mapped_column(Integer, default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class FlavorAccess(Base):
    """A project that may use a private flavor."""

    __tablename__ = "compute_flavor_access"

    flavor_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("compute_flavor.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class KeyPair(Base):
    __tablename__ = "compute_keypair"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(255))
    public_key: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Server(Base):
    """An instance: Nova's ``instances`` row with its flavor, network info cache,
    metadata, tags and fault on it."""

    __tablename__ = "compute_server"
    __table_args__ = (
        Index("ix_compute_server_project_deleted_created", "project_id", "deleted", "created_at"),
        Index("ix_compute_server_deleted_created", "deleted", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The number in Nova's instance name ("instance-0000002a").
    internal_id: Mapped[int] = mapped_column(Integer, unique=True)
    project_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    image_ref: Mapped[str] = mapped_column(String(255), default="")
    flavor_id: Mapped[str] = mapped_column(String(255), index=True)  # the flavor's flavorid
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The current flavor's sizes, for quota counts and usage in SQL.
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    new_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    vm_state: Mapped[str] = mapped_column(String(32), index=True)
    task_state: Mapped[str | None] = mapped_column(String(32), default=None)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    host: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    node: Mapped[str | None] = mapped_column(String(255), default=None)
    availability_zone: Mapped[str | None] = mapped_column(String(255), default=None)
    # The zone the user asked for at create (or unshelve): 2.96's
    # pinned_availability_zone; None when the scheduler was free to choose.
    requested_availability_zone: Mapped[str | None] = mapped_column(String(255), default=None)
    key_name: Mapped[str | None] = mapped_column(String(255), default=None)
    key_data: Mapped[str | None] = mapped_column(Text, default=None)
    user_data: Mapped[str | None] = mapped_column(Text, default=None)
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    # What Nova keeps in system_metadata: the image's properties at boot
    # (image_*), the image a shelved server was offloaded to, the vm_state a
    # rescue returns to, the personality files of the boot or the last rebuild
    # (INJECTED_FILES: [[path, base64 contents], ...], for the config drive) ...
    system_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    security_groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # [{"port_id", "network_id", "network_name", "mac", "ips": [{"address",
    #   "version", "type": "fixed"|"floating", "subnet_id"}], "tag", "created_by_nova"}]
    network_info: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # What the boot request asked of Networking (ids, ports, fixed IPs, auto/none).
    requested_networks: Mapped[Any] = mapped_column(JSON, default=None)
    block_device_mapping: Mapped[list[Any]] = mapped_column(JSON, default=list)
    scheduler_hints: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trusted_certs: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    access_ip_v4: Mapped[str | None] = mapped_column(String(64), default=None)
    access_ip_v6: Mapped[str | None] = mapped_column(String(64), default=None)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_by: Mapped[str | None] = mapped_column(String(16), default=None)  # "owner" | "admin"
    locked_reason: Mapped[str | None] = mapped_column(String(255), default=None)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    reservation_id: Mapped[str] = mapped_column(String(255), default="")
    root_device_name: Mapped[str | None] = mapped_column(String(255), default=None)
    # The encrypted password the guest posted to the metadata service.
    password: Mapped[str | None] = mapped_column(Text, default=None)
    # {"code", "message", "details", "created"} of the last failure (ERROR).
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    terminated_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class ComputeNode(Base):
    """A compute host as its agent reports it: what the scheduler claims on and
    what ``os-hypervisors`` shows."""

    __tablename__ = "compute_node"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255))
    hypervisor_type: Mapped[str] = mapped_column(String(64))
    hypervisor_version: Mapped[int] = mapped_column(Integer)
    driver: Mapped[str] = mapped_column(String(32))
    accelerator: Mapped[str] = mapped_column(String(16), default="")
    host_ip: Mapped[str] = mapped_column(String(64), default="127.0.0.1")
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    local_gb: Mapped[int] = mapped_column(Integer)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float)
    ram_allocation_ratio: Mapped[float] = mapped_column(Float)
    disk_allocation_ratio: Mapped[float] = mapped_column(Float)
    reserved_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    reserved_disk_mb: Mapped[int] = mapped_column(Integer, default=0)
    availability_zone: Mapped[str] = mapped_column(String(255))
    cpu_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Allocation(Base):
    """Resources claimed on a host by a consumer: a server (its current flavor)
    or a resize in progress (the flavor it will return to on revert)."""

    __tablename__ = "compute_allocation"

    consumer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ServerGroup(Base):
    __tablename__ = "compute_server_group"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str] = mapped_column(String(255))
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ServerGroupMember(Base):
    __tablename__ = "compute_server_group_member"

    group_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("compute_server_group.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)


class InstanceAction(Base):
    __tablename__ = "compute_instance_action"
    __table_args__ = (Index("ix_compute_instance_action_server_start", "server_id", "start_time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server_id: Mapped[str] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(255))
    request_id: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    project_id: Mapped[str | None] = mapped_column(String(255), default=None)
    start_time: Mapped[datetime] = mapped_column(DateTime)
    finish_time: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    message: Mapped[str | None] = mapped_column(String(255), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class InstanceActionEvent(Base):
    __tablename__ = "compute_instance_action_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("compute_instance_action.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(255))
    start_time: Mapped[datetime] = mapped_column(DateTime)
    finish_time: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    result: Mapped[str | None] = mapped_column(String(255), default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    details: Mapped[str | None] = mapped_column(Text, default=None)


class VolumeAttachment(Base):
    """A volume attached to a server (Nova's block device mapping of a volume)."""

    __tablename__ = "compute_volume_attachment"
    __table_args__ = (UniqueConstraint("server_id", "volume_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # Nova's bdm_uuid
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    attachment_id: Mapped[str | None] = mapped_column(String(36), default=None)
    device: Mapped[str | None] = mapped_column(String(255), default=None)
    tag: Mapped[str | None] = mapped_column(String(255), default=None)
    delete_on_termination: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ConsoleToken(Base):
    """A short-lived remote console token (only its SHA-256 is kept)."""

    __tablename__ = "compute_console_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    console_type: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Aggregate(Base):
    """A host aggregate: hosts with metadata; its ``availability_zone``
    metadata puts its hosts in that zone."""

    __tablename__ = "compute_aggregate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    hosts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)


class Migration(Base):
    """A move of a server (Nova's migration record): here, resizes on the
    server's own host; listed by ``os-migrations``."""

    __tablename__ = "compute_migration"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    migration_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    source_compute: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_compute: Mapped[str | None] = mapped_column(String(255), default=None)
    source_node: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_node: Mapped[str | None] = mapped_column(String(255), default=None)
    dest_host: Mapped[str | None] = mapped_column(String(255), default=None)
    old_instance_type_id: Mapped[int | None] = mapped_column(Integer, default=None)
    new_instance_type_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
